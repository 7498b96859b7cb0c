# The libprocess listener: inbound connections, messages handed to the agent, GET routes, streamed responses.
# MIT licence. PROTOCOL.md §1.4-§1.5 (messages), §5 (HTTP endpoints); the Libprocess transport inherits it.
import asyncio
import time

from micropython import const

from micromesos import http, log, names
from micromesos.errors import ProtocolError

_W = "libprocess"
_SLASH = const(47)
_UA_SKIP = const(11)  # len(b"libprocess/")
_IPPROTO_TCP = const(6)  # the same numbers in lwIP and Linux
_TCP_NODELAY = const(1)


class Message:
    """The reused view of one inbound message, valid only during the handler call.
    kind: names id (0 = unknown name); the body is buf[start:end]; conn: the inbound
    connection it came on (opaque, .peer is (ip, port))."""

    def __init__(self):
        self.kind = 0
        self.buf = None
        self.start = self.end = 0
        self.conn = None
        self._s0 = self._s1 = 0  # sender UPID in buf
        self._n0 = self._n1 = 0  # message name in buf

    def name(self):  # allocates: for logs
        return bytes(self.buf[self._n0 : self._n1]).decode()

    def sender(self):  # allocates: for logs and for keeping the master's UPID
        return bytes(self.buf[self._s0 : self._s1]).decode()

    def sender_is(self, u):
        """The sender equals the UPID u (str or bytes). In place."""
        return self._s1 - self._s0 == len(u) and self.buf.startswith(u, self._s0)

    def sender_id_startswith(self, prefix):
        """The sender's id (before '@') starts with prefix, e.g. b"slave-observer(" (§0.1)."""
        at = self.buf.find(b"@", self._s0, self._s1)
        return at - self._s0 >= len(prefix) and self.buf.startswith(prefix, self._s0)

    def sender_host_is(self, u):
        """The sender's ip:port equals that of the UPID u (str or bytes). In place."""
        b = self.buf
        at = b.find(b"@", self._s0, self._s1) + 1
        s = isinstance(u, str)
        ua = (u.find("@") if s else u.find(b"@")) + 1
        n = len(u) - ua
        if at <= 0 or ua <= 0 or self._s1 - at != n:
            return False
        for k in range(n):
            c = u[ua + k]
            if (ord(c) if s else c) != b[at + k]:
                return False
        return True


class _Conn:
    # One inbound connection: its task, parser, whether it carried messages for us (link) or plain
    # HTTP requests (http), a streamed response waiting to go (stream) or going (busy).
    def __init__(self, w):
        self.task = self.parser = self.stream = None
        self.last = time.ticks_ms()
        self.link = self.broken = self.http = self.busy = self.gone = False
        a = w.get_extra_info("peername")
        if not isinstance(a, tuple):  # the unix port hands over a raw struct sockaddr_in
            a = ("%d.%d.%d.%d" % (a[4], a[5], a[6], a[7]), a[2] << 8 | a[3])
        self.peer = a  # (ip, port)


class Listener:
    """The inbound half of micromesos.libprocess.Libprocess, which sets up the state it uses."""

    max_conns = 3  # inbound at once: the master's link, a temporary one, an HTTP client
    max_http = 2  # of them plain HTTP clients; at most max_conns - 1, so one is always left for the master
    accept_wait_ms = 4000  # a connection finding every parser busy waits this long for one, then gets 503
    stale_ms = 3000  # a connection silent this long mid-request (or before its first) may be dropped
    link_idle_ms = 45000  # a link silent this long (3 pings missed, §2.5) may be replaced by a new one
    send_timeout_ms = 5000  # an HTTP client not taking a streamed chunk within this is dropped
    out_size = 1024  # the streamed-response buffer (jsonw.Writer), shared: one response at a time
    parser = http.HTTPParser

    def __init__(self, id):
        self._id = id.encode()  # the process id messages must be addressed to
        self.handler = None
        self.on_link_closed = None
        self._routes = {}
        self._msg = Message()
        self._pool = []
        self._conns = []
        self._server = None
        self._closing = False
        self._outbuf = None  # the buffer streamed responses take turns with (_stream) ...
        self._out = None  # ... and its jsonw.Writer, made by the first one
        self._out_lock = asyncio.Lock()
        self._freed = asyncio.Event()  # a parser came back, or a connection went idle
        self.refused = 0  # connections answered 503
        self.evicted = 0  # connections dropped to make room for a new one
        self._scratch = bytearray(64)  # a refused connection's input is read into it and dropped

    async def listen(self, ip, port):
        # Connection and response buffers are allocated once, up front: a fragmented heap later can't
        # refuse them.
        self._pool = [self.parser() for _ in range(self.max_conns)]
        self._outbuf = bytearray(self.out_size)
        self._server = await asyncio.start_server(self._accept, ip, port, self.max_conns + 2)

    def route(self, path, fn):
        """GET path -> fn(http.Request) -> (status, content_type, body). The body is bytes or str, an
        iterable of parts (collected, sent with a Content-Length), or a callable produce(out) whose
        iterator writes the body through the jsonw.Writer `out`, streamed (jsonw.respond)."""
        self._routes[path] = fn

    async def _accept(self, r, w):
        c = _Conn(w)
        if not await self._slot():
            self.refused += 1
            log.warn(_W, "refused %s:%d: all connections busy", c.peer[0], c.peer[1])
            s = w.s
            try:
                # Read what the client sent first: closing a socket with unread input sends a reset,
                # which may destroy the answer before the client reads it.
                while s.readinto(self._scratch):
                    pass
                s.write(http.UNAVAILABLE)  # best effort: the socket is non-blocking, the answer tiny
            except OSError:
                pass
            s.close()
            return
        c.parser = p = self._pool.pop()
        c.last = time.ticks_ms()  # staleness counts from here, not from the wait for a parser
        try:
            # A streamed response is several writes: Nagle would hold each after the first until the
            # client's delayed ACK (~40 ms). Every write carries a whole chunk (jsonw.Writer).
            w.s.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except OSError:
            pass
        c.task = asyncio.current_task()
        self._conns.append(c)
        try:
            await self._serve(c, r, w)
        except ProtocolError as e:
            # A protocol violation closes this connection only; the listener keeps serving.
            log.warn(_W, "closing connection from %s:%d: %s", c.peer[0], c.peer[1], e)
            self._write(c, w, http.BAD_REQUEST)
            try:
                await w.drain()
            except OSError:
                pass
        except OSError as e:
            log.debug(_W, "connection from %s:%d: %r", c.peer[0], c.peer[1], e)
        finally:
            self._conns.remove(c)
            p.clear()
            self._pool.append(p)
            self._freed.set()
            w.s.close()
            cb = self.on_link_closed
            if c.link and cb is not None and not self._closing:
                try:
                    cb(c.peer[0], c.peer[1])
                except Exception as e:
                    log.error(_W, "on_link_closed failed: %r", e)

    async def _slot(self):
        # A parser for a new connection: a free one, or one a connection that can go hands back
        # (_evict), within accept_wait_ms. Waiting (not refusing at once) serves the web UI's
        # parallel requests one after another; the bytes wait in the socket meanwhile.
        t0 = time.ticks_ms()
        while not self._pool:
            left = self.accept_wait_ms - time.ticks_diff(time.ticks_ms(), t0)
            if left <= 0 or self._closing:
                return False
            self._evict()
            self._freed.clear()
            try:
                # Woken when a parser comes back or a connection goes idle; staleness is a matter of
                # time, so look again at least every 500 ms.
                await asyncio.wait_for_ms(self._freed.wait(), min(left, 500))
            except asyncio.TimeoutError:
                pass
        return True

    def _evict(self):
        # Every parser in use: drop the connection that can best go, oldest first within a rank:
        # 0 an HTTP client idle between requests; 1 a connection silent for stale_ms in the middle
        # of a request or before its first; 2 a link silent for link_idle_ms (a half-open old link
        # must not lock the master out, §1.5). A live link or a response being sent never goes, so
        # no HTTP client can push the master out.
        now = time.ticks_ms()
        v = None
        best = 3
        for x in self._conns:
            if x.busy or x.gone:
                continue
            quiet = time.ticks_diff(now, x.last)
            if x.link:
                r = 2 if quiet >= self.link_idle_ms else 3
            elif x.http and x.parser.fill == 0:
                r = 0
            else:
                r = 1 if quiet >= self.stale_ms else 3
            if r < best or (r == best and r < 3 and v is not None and time.ticks_diff(x.last, v.last) < 0):
                v = x
                best = r
        if v is None:
            return False
        v.gone = True
        self.evicted += 1
        log.warn(_W, "dropping idle connection from %s:%d for a new one", v.peer[0], v.peer[1])
        v.task.cancel()
        return True

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
            while p.parse():
                keep = self._dispatch(c, p, w)
                p.done()
                if c.stream is not None:  # in order: nothing more is parsed until it has gone
                    keep = await self._stream(c, w) and keep
                if not keep:
                    await w.drain()
                    return
            if c.broken:
                return
            await w.drain()

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
        if p.method == http.POST:
            # A message is a POST with Libprocess-From or "libprocess/" in User-Agent (§1.4).
            s0 = s1 = -1
            if p.from0 >= 0:
                s0 = p.from0
                s1 = p.from1
            elif p.ua0 >= 0:
                s0 = buf.find(b"libprocess/", p.ua0, p.ua1)
                if s0 >= 0:
                    s0 += _UA_SKIP
                    s1 = p.ua1
            if s0 >= 0:
                self._message(c, p, w, s0, s1)
                return p.keep_alive
        return self._http(c, p, w) and p.keep_alive

    def _message(self, c, p, w, s0, s1):
        buf = p.buf
        t0 = p.target0 + 1
        t1 = p.path1
        sl = buf.find(b"/", t0, t1)
        n0 = sl + 1 if sl >= 0 else t1
        m = http.pct_equal(buf, t0, sl if sl >= 0 else t1, self._id)
        if m <= 0:
            # 404: no process of that id here; 500: an undecodable id (§1.4).
            self._write(c, w, http.NOT_FOUND if m == 0 else http.SERVER_ERROR)
            return
        c.link = True
        self._write(c, w, http.ACCEPTED)
        msg = self._msg
        msg.buf = buf
        msg.start = p.body0
        msg.end = p.body1
        msg.conn = c
        msg._s0 = s0
        msg._s1 = s1
        msg._n0 = n0
        msg._n1 = t1
        msg.kind = names.lookup(buf, n0, t1)
        h = self.handler
        if h is not None:
            try:
                h(msg)
            except Exception as e:  # the agent's bug must not take the master's link down
                log.error(_W, "handler failed on %s: %r", msg.name(), e)

    async def _stream(self, c, w):
        status, ctype, produce, keep, head, chunked_ok = c.stream
        c.stream = None
        c.busy = True
        try:
            await self._out_lock.acquire()  # one buffer: streamed responses take turns
            try:
                try:
                    # Like the views, the writer's code is loaded by the first request that needs it.
                    from micromesos import jsonw

                    if self._out is None:
                        self._out = jsonw.Writer(self._outbuf)
                except MemoryError:
                    log.error(_W, "no heap for the response writer")
                    self._write(c, w, http.SERVER_ERROR)
                    return True
                return await jsonw.respond(self._out, w, status, ctype, produce, keep, head, chunked_ok,
                                           self.send_timeout_ms)
            finally:
                self._out_lock.release()
        finally:
            c.busy = False
            c.last = time.ticks_ms()
            self._freed.set()

    def _http_conns(self):
        n = 0
        for x in self._conns:
            if x.http:
                n += 1
        return n

    def _http(self, c, p, w):
        # A plain HTTP request; False if the connection must close after the answer.
        if not c.http:
            # At most max_http connections (and never all of them) serve HTTP clients (§1.2: the
            # master needs its link and, at times, a temporary connection).
            if self._http_conns() >= min(self.max_http, self.max_conns - 1):
                self.refused += 1
                self._write(c, w, http.UNAVAILABLE)
                return False
            c.http = True
        try:
            req = http.Request(p)
        except UnicodeError:
            self._write(c, w, http.BAD_REQUEST)
            return False
        fn = self._routes.get(req.path)
        if fn is None or "/.." in req.path:
            self._write(c, w, http.NOT_FOUND)
            return True
        status, ctype, body = 405, None, b""
        if p.method == http.GET or p.method == http.HEAD:
            try:
                status, ctype, body = fn(req)
            except Exception as e:
                log.error(_W, "route %s failed: %r", req.path, e)
                status, ctype, body = 500, None, b""
        if callable(body) and not c.broken:  # streamed by _serve once this returns (_stream)
            c.stream = (status, ctype, body, p.keep_alive, p.method == http.HEAD, p.version == 11)
            return True
        self._freed.set()  # this connection is idle again: a waiting one may take its parser
        if not c.broken:
            try:
                http.write_response(w, status, ctype, body, p.keep_alive, p.method == http.HEAD)
            except OSError:
                c.broken = True
            except (TypeError, ValueError) as e:  # the route returned a body it cannot write
                log.error(_W, "route %s returned a bad body: %r", req.path, e)
                self._write(c, w, http.SERVER_ERROR)
        return True
