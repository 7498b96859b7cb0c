# The libprocess listener: messages handed to the agent, GET routes, streamed responses (connections: gate).
# MIT licence. PROTOCOL.md §1.4-§1.5 (messages), §5 (HTTP endpoints; their answers are jsonw's, loaded per request).
# The Libprocess transport inherits it.
import time

from micropython import const

from micromesos import http, log, names
from micromesos.gate import Gate, _Conn  # noqa: F401 (re-exported)

_W = "libprocess"
_SLASH = const(47)


class Message:
    """The reused view of one inbound message, valid only during the handler call.
    kind: names id (0 = unknown name); the body is buf[start:end]; the sender's UPID is buf[s0:s1] (what a
    reply goes to); conn: the inbound connection it came on (opaque, .peer is (ip, port))."""

    def __init__(self):
        self.kind = 0
        self.buf = None
        self.start = self.end = 0
        self.conn = None
        self.s0 = self.s1 = 0  # sender UPID in buf
        self._n0 = self._n1 = 0  # message name in buf

    def name(self):  # allocates: for logs
        return log.text(self.buf, self._n0, self._n1)

    def sender(self):  # allocates: for logs and for keeping the master's UPID
        return log.text(self.buf, self.s0, self.s1)

    def sender_is(self, u):
        """The sender equals the UPID u (str or bytes). In place."""
        return self.s1 - self.s0 == len(u) and self.buf.startswith(u, self.s0)

    def sender_id_startswith(self, prefix):
        """The sender's id (before '@') starts with prefix, e.g. b"slave-observer(" (§0.1)."""
        at = self.buf.find(b"@", self.s0, self.s1)
        return at - self.s0 >= len(prefix) and self.buf.startswith(prefix, self.s0)

    def sender_host_is(self, u):
        """The sender's ip:port equals that of the UPID u (str or bytes). In place."""
        b = self.buf
        at = b.find(b"@", self.s0, self.s1) + 1
        s = isinstance(u, str)
        ua = (u.find("@") if s else u.find(b"@")) + 1
        n = len(u) - ua
        if at <= 0 or ua <= 0 or self.s1 - at != n:
            return False
        for k in range(n):
            c = u[ua + k]
            if (ord(c) if s else c) != b[at + k]:
                return False
        return True


class Listener(Gate):
    """The inbound half of micromesos.libprocess.Libprocess, which sets up the state it uses."""

    max_http = 2  # of max_conns, plain HTTP clients; at most max_conns - 1, so one is left for the master
    send_timeout_ms = 5000  # an HTTP client not taking a streamed chunk within this is dropped
    out_size = 512  # the streamed-response buffer (jsonw.Writer): one response at a time, made per response
    streaming = False  # a response is being streamed (jsonw.stream: one at a time); on the class as Gate.refused
    oversize = 0  # messages dropped because their body exceeded the buffer (answered 202)
    # A second process of this agent while it lives: (id bytes, handler(msg)); the SASL authenticatee
    # crammd5-authenticatee(N) (authn.py), as the real agent runs one per attempt. Its messages go to its
    # handler; those for any other id than these two are answered 404. On the class as Gate.refused.
    second = None

    def __init__(self, id):
        Gate.__init__(self)
        self._id = id.encode()  # the process id messages must be addressed to
        self.handler = None
        self._routes = {}
        self._msg = Message()

    def route(self, path, fn):
        """GET path -> fn(jsonw.Request) -> (status, content_type, body). The body is bytes or str, an
        iterable of parts (collected, sent with a Content-Length), or a callable produce(out) whose
        iterator writes the body through the jsonw.Writer `out`, streamed (jsonw.respond)."""
        self._routes[path] = fn

    async def _serve(self, c, r, w):
        p = c.parser
        while True:
            n = await r.readinto(p.recv_view())
            if n is None:
                continue
            if n == 0:
                return  # EOF
            p.received(n)
            c.last = time.ticks_ms()
            if not c.req:
                c.req = True
                c.t0 = c.last
            while p.parse():
                keep = self._dispatch(c, p, w)
                p.done()
                c.req = p.fill > 0  # pipelined bytes: the next request is under way
                c.t0 = time.ticks_ms()
                if c.stream is not None:  # in order: nothing more is parsed until it has gone
                    keep = await self._stream(c, w) and keep
                if not keep:
                    await w.drain()
                    return
            if c.broken:
                return
            await w.drain()

    async def _stream(self, c, w):
        # jsonw.serve left a streamed response in c.stream: jsonw (still imported) writes it. A method of its
        # own: a local in _serve's frame, which lives as long as the connection, would keep jsonw in RAM.
        from micromesos import jsonw

        return await jsonw.stream(self, c, w, self._write, self._freed)

    def _write(self, c, w, data):
        # Write errors on our answers are normal (temporary connections close at once, §1.5):
        # the messages already buffered are still delivered, then the connection closes.
        if not c.broken:
            try:
                w.write(data)
            except OSError:
                c.broken = True

    def _dispatch(self, c, p, w):
        buf = p.buf
        if buf[p.target0] != _SLASH:
            self._write(c, w, http.BAD_REQUEST)  # as libprocess does (§1.4)
            return False
        if p.snd0 >= 0:  # a message: a POST with Libprocess-From or "libprocess/" in User-Agent (§1.4)
            self._message(c, p, w, p.snd0, p.snd1)
            return p.keep_alive
        return self._http(c, p, w) and p.keep_alive

    def _message(self, c, p, w, s0, s1):
        buf = p.buf
        t0 = p.target0 + 1
        t1 = p.path1
        sl = buf.find(b"/", t0, t1)
        n0 = sl + 1 if sl >= 0 else t1
        i1 = sl if sl >= 0 else t1  # the receiver id is buf[t0:i1]
        m = http.pct_equal(buf, t0, i1, self._id)
        h = self.handler
        two = self.second
        if m == 0 and two is not None:  # not ours: maybe the second process's
            m = http.pct_equal(buf, t0, i1, two[0])
            h = two[1]
        if m <= 0:
            # 404: no process of that id here; 500: an undecodable id (§1.4).
            self._write(c, w, http.NOT_FOUND if m == 0 else http.SERVER_ERROR)
            return
        c.link = True
        self._write(c, w, http.ACCEPTED)
        if p.dropped:
            # Its body was larger than the buffer and went as it came (discard mode, http.py): the
            # connection and its later messages stay; what was lost is said once.
            self.oversize += 1
            try:
                log.warn(_W, "dropped %s from %s: its %d-byte body exceeds recv_buffer (%d B)",
                         log.text(buf, n0, t1), log.text(buf, s0, s1), p.dropped, p.cap)
            except MemoryError:  # the line is lost, not the connection
                pass
            return
        msg = self._msg
        msg.buf = buf
        msg.start = p.body0
        msg.end = p.body1
        msg.conn = c
        msg.s0 = s0
        msg.s1 = s1
        msg._n0 = n0
        msg._n1 = t1
        msg.kind = names.lookup(buf, n0, t1)
        if h is not None:
            try:
                h(msg)
            except Exception as e:  # the agent's bug must not take the master's link down
                log.error(_W, "handler failed on %s: %r", msg.name(), e)

    def _http(self, c, p, w):
        # A plain HTTP request; False if the connection must close after the answer.
        if not c.http:
            # At most max_http connections (and never all of them) serve HTTP clients (§1.2: the
            # master needs its link and, at times, a temporary connection).
            n = 0
            for x in self._conns:
                if x.http:
                    n += 1
            if n >= min(self.max_http, self.max_conns - 1):
                self.refused += 1
                self._write(c, w, http.UNAVAILABLE)
                return False
            c.http = True
        try:
            path = bytes(p.buf[p.target0:p.path1]).decode()
        except UnicodeError:
            self._write(c, w, http.BAD_REQUEST)
            return False
        fn = self._routes.get(path)
        if fn is None or "/.." in path:
            self._write(c, w, http.NOT_FOUND)
            return True
        # The answer's code is loaded per request, like the views (endpoints drops it with them after the
        # route ran; jsonw.serve running keeps it until the answer is written).
        from micromesos import jsonw

        return jsonw.serve(c, p, w, path, fn, self._write, self._freed)
