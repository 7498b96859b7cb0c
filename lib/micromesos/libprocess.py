# The libprocess transport: listener for the master's messages, ordered senders, GET routes.
# MIT licence. Spec: PROTOCOL.md §1; byte-level truth: golden/captured/master-agent.jsonl.
import asyncio
import errno
import random
import select
import socket
import time

from micropython import const

from micromesos import http, jsonw, log, names, upid
from micromesos.errors import ConfigError, ProtocolError

_W = "libprocess"
_SLASH = const(47)
_UA_SKIP = const(11)  # len(b"libprocess/")
_CONNECT_POLL_MS = const(10)

# Fixed parts of an outbound message, in the order MessageEncoder writes them (§1.3).
_POST = b"POST /"
_END_HEAD = b"\r\n\r\n"
_CHUNKED = b"\r\nTransfer-Encoding: chunked\r\n\r\n"
_LAST_CHUNK = b"\r\n0\r\n\r\n"
_HEX = b"0123456789abcdef"


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


def _copy(ob, pos, src, a, b):
    # ob[pos:] = src[a:b] byte by byte: slicing src would allocate (ids only, ~20 bytes).
    for i in range(a, b):
        ob[pos] = src[i]
        pos += 1
    return pos


def _put(ob, pos, data):
    n = len(data)
    ob[pos : pos + n] = data  # slice store from a whole object: no allocation
    return pos + n


def _hexlen(n):
    k = 1
    while n >= 16:
        n >>= 4
        k += 1
    return k


class _Dest:
    # One destination ip:port: a bounded outbox and one persistent, ordered connection (§1.2).
    def __init__(self, lp, hostport):
        self.lp = lp
        self.hostport = hp = bytes(hostport)  # b"ip:port": the key and the Host header
        colon = hp.find(b":")
        self.ip = hp[:colon].decode()
        self.port = upid.port_value(hp, colon + 1, len(hp))
        self.addr = socket.getaddrinfo(self.ip, self.port)[0][-1]  # an IPv4 literal: no DNS
        self.ob = bytearray(lp.outbox_size)
        self.mv = memoryview(self.ob)
        self.n = 0  # bytes queued in ob
        self.ev = asyncio.Event()
        self.stream = self.rx = None
        self.rxbuf = bytearray(64)
        self.dead = False
        self.task = asyncio.create_task(self._run())

    def put(self, src, id0, id1, name, body):
        # Append one request exactly as libprocess writes it (§1.3, the captured agent
        # requests); the receiver id is src[id0:id1]. False if the outbox has no room.
        if isinstance(name, str):
            name = name.encode()
        if isinstance(body, str):
            body = body.encode()
        mid = self.lp._mid
        hp = self.hostport
        nb = len(body)
        k = _hexlen(nb)
        pos = self.n
        need = 7 + id1 - id0 + len(name) + len(mid) + len(hp)
        need += len(_CHUNKED) + k + 2 + nb + len(_LAST_CHUNK) if nb else len(_END_HEAD)
        if pos + need > len(self.ob):
            return False
        ob = self.ob
        pos = _put(ob, pos, _POST)
        pos = _copy(ob, pos, src, id0, id1)
        ob[pos] = _SLASH
        pos = _put(ob, pos + 1, name)
        pos = _put(ob, pos, mid)
        pos = _put(ob, pos, hp)
        if nb:  # one chunk, size in lowercase hex, then the terminator
            pos = _put(ob, pos, _CHUNKED)
            for i in range(k):
                ob[pos + k - 1 - i] = _HEX[(nb >> (4 * i)) & 15]
            pos = _put(ob, pos + k, b"\r\n")
            pos = _put(ob, pos, body)
            pos = _put(ob, pos, _LAST_CHUNK)
        else:  # an empty body has no framing header at all
            pos = _put(ob, pos, _END_HEAD)
        self.n = pos
        self.ev.set()
        return True

    async def _run(self):
        lp = self.lp
        delay = lp.backoff_min_ms
        while True:
            while self.n == 0:  # connect lazily, when there is something to send
                self.ev.clear()
                await self.ev.wait()
            try:
                await self._connect()
                delay = lp.backoff_min_ms
                while not self.dead:
                    n = self.n
                    if n == 0:
                        self.ev.clear()
                        await self.ev.wait()
                        continue
                    # One write per batch. The stream keeps what the socket does not take at
                    # once, so the outbox is free when write() returns; if write() raises,
                    # nothing was taken and the batch goes out again after reconnecting.
                    self.stream.write(self.mv[:n])
                    self.n = 0
                    await self.stream.drain()
                log.debug(_W, "%s:%d closed the connection", self.ip, self.port)
            except OSError as e:
                log.warn(_W, "sending to %s:%d failed: %r", self.ip, self.port, e)
            self._drop()
            # Capped exponential backoff, jittered over [delay/2, delay).
            await asyncio.sleep_ms(delay // 2 + ((random.getrandbits(16) * (delay - delay // 2)) >> 16))
            delay = min(delay * 2, lp.backoff_max_ms)

    async def _connect(self):
        s = socket.socket()
        ok = False
        try:
            s.setblocking(False)
            try:
                s.connect(self.addr)
            except OSError as e:
                if e.errno != errno.EINPROGRESS:
                    raise
            # Wait for the connect before the stream takes any bytes: a batch handed to a
            # socket that never connects would be lost. Polled (connecting is rare), and the
            # socket is ours to close on failure, so a timeout leaks nothing.
            p = select.poll()
            p.register(s, select.POLLOUT)
            t0 = time.ticks_ms()
            while True:
                ev = p.poll(0)
                if ev:
                    if ev[0][1] & (select.POLLERR | select.POLLHUP):
                        raise OSError(errno.ECONNREFUSED)
                    break
                if time.ticks_diff(time.ticks_ms(), t0) > self.lp.connect_timeout_ms:
                    raise OSError(errno.ETIMEDOUT)
                await asyncio.sleep_ms(_CONNECT_POLL_MS)
            p.unregister(s)
            ok = True
        finally:
            if not ok:
                s.close()
        self.stream = st = asyncio.StreamWriter(s)
        self.dead = False
        self.rx = asyncio.create_task(self._read(st))

    async def _read(self, st):
        # The peer answers each message with an empty 202 nobody needs (§1.4): read and drop
        # it. EOF or an error means the connection is gone.
        try:
            while await st.readinto(self.rxbuf) != 0:
                pass
        except OSError:
            pass
        if st is self.stream:
            self.dead = True
            self.ev.set()

    def _drop(self):
        if self.rx is not None:
            self.rx.cancel()
            self.rx = None
        if self.stream is not None:
            self.stream.s.close()
            self.stream = None

    def close(self):
        self.task.cancel()
        self._drop()


class Libprocess:
    """The agent's libprocess endpoint (docs/ARCHITECTURE.md "transport")."""

    max_conns = 3  # inbound at once: the master's link, a temporary one, an HTTP client
    max_http = 2  # of them plain HTTP clients; at most max_conns - 1, so one is always left for the master
    accept_wait_ms = 4000  # a connection finding every parser busy waits this long for one, then gets 503
    stale_ms = 3000  # a connection silent this long mid-request (or before its first) may be dropped
    link_idle_ms = 45000  # a link silent this long (3 pings missed, §2.5) may be replaced by a new one
    send_timeout_ms = 5000  # an HTTP client not taking a streamed chunk within this is dropped
    out_size = 1024  # the streamed-response buffer (jsonw.Writer), shared: one response at a time
    outbox_size = 4096  # bytes queued per destination before send() says False
    max_dests = 2  # outbound destinations (master@ and slave-observer(N)@ share one address)
    backoff_min_ms = 100
    backoff_max_ms = 10000
    connect_timeout_ms = 5000
    parser = http.HTTPParser

    def __init__(self, id="slave(1)", ip=None, port=5051, advertise_ip=None, advertise_port=None):
        if not ip:
            raise ConfigError("ip: the address to listen on is required")
        self.ip = ip
        self.port = port
        try:
            self.upid = upid.format(id, advertise_ip or ip, advertise_port or port)
        except ProtocolError as e:
            raise ConfigError("advertise_ip/advertise_port: %s" % e)  # 0.0.0.0 is no UPID (§1.1)
        u = self.upid.encode()
        self._id = id.encode()
        # Everything between the message name and the Host value: the same for every message.
        self._mid = (b" HTTP/1.1\r\nUser-Agent: libprocess/" + u + b"\r\nLibprocess-From: " + u
                     + b"\r\nConnection: Keep-Alive\r\nHost: ")
        self.handler = None
        self.on_link_closed = None
        self._routes = {}
        self._msg = Message()
        self._pool = []
        self._conns = []
        self._dests = []
        self._server = None
        self._closing = False
        self._out = self._out_lock = self._freed = None
        self.refused = self.evicted = 0  # connections answered 503, connections dropped for a new one

    async def start(self):
        # Connection buffers are allocated once, up front: the heap does not fragment later.
        self._pool = [self.parser() for _ in range(self.max_conns)]
        self._out = jsonw.Writer(self.out_size)
        self._out_lock = asyncio.Lock()
        self._freed = asyncio.Event()  # a parser came back, or a connection went idle
        self._server = await asyncio.start_server(self._accept, self.ip, self.port,
                                                  self.max_conns + 2)
        log.info(_W, "listening as %s", self.upid)

    async def close(self):
        self._closing = True
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for c in list(self._conns):
            c.task.cancel()
        for d in self._dests:
            d.close()
        self._dests = []
        await asyncio.sleep_ms(0)  # the cancelled tasks close their sockets

    def route(self, path, fn):
        """GET path -> fn(http.Request) -> (status, content_type, body). The body is bytes or str, an
        iterable of parts (collected, sent with a Content-Length), or a callable produce(out) whose
        iterator writes the body through the jsonw.Writer `out`, streamed (jsonw.respond)."""
        self._routes[path] = fn

    # -- sending ------------------------------------------------------------------------

    def send(self, to, name, body=b""):
        """Queue POST /<id>/<name> for the UPID `to` (str or bytes) on its destination's
        ordered connection. False if that outbox is full; ProtocolError for a bad UPID."""
        u = to.encode() if isinstance(to, str) else to
        at = upid.check(u, 0, len(u))
        return self._queue(u, 0, at, len(u), name, body)

    def reply(self, msg, name, body=b""):
        """send() to msg's sender, read in place from msg.buf: with a bytes name and the
        connection already made, this allocates nothing (the pong path, §2.5)."""
        try:
            at = upid.check(msg.buf, msg._s0, msg._s1)
        except ProtocolError as e:
            log.warn(_W, "cannot reply to %s: %s", msg.sender(), e)
            return False
        return self._queue(msg.buf, msg._s0, at, msg._s1, name, body)

    def _queue(self, u, s0, at, s1, name, body):
        d = None
        n = s1 - at - 1
        for x in self._dests:
            if len(x.hostport) == n and u.startswith(x.hostport, at + 1):
                d = x
                break
        if d is None:
            if len(self._dests) >= self.max_dests:
                for x in self._dests:
                    if x.n == 0:  # take over the slot of a destination with nothing queued
                        x.close()
                        self._dests.remove(x)
                        break
            if len(self._dests) < self.max_dests:
                try:
                    d = _Dest(self, u[at + 1 : s1])
                except OSError as e:  # getaddrinfo: the network may be down
                    log.warn(_W, "no route to %s: %r", bytes(u[at + 1 : s1]), e)
                    return False
                self._dests.append(d)
        if d is None or not d.put(u, s0, at, name, body):
            log.warn(_W, "outbox full: dropped a message for %s", bytes(u[s0:s1]))
            return False
        return True

    # -- receiving ----------------------------------------------------------------------

    async def _accept(self, r, w):
        c = _Conn(w)
        if not await self._slot():
            self.refused += 1
            log.warn(_W, "refused %s:%d: all connections busy", c.peer[0], c.peer[1])
            try:
                w.s.write(http.UNAVAILABLE)  # best effort: the socket is non-blocking, the answer tiny
            except OSError:
                pass
            w.s.close()
            return
        c.parser = p = self._pool.pop()
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
            if r < best or (r == best and r < 3 and time.ticks_diff(x.last, v.last) < 0):
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
        if self._freed is not None:
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
