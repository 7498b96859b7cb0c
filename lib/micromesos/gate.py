# Inbound connections for the libprocess listener: a bounded accept loop, a parser lent per connection,
# deadlines. MIT licence. Bursts, slowloris and clients that keep sending must not wedge the agent (§1.5).
import asyncio
import time

from micropython import const

from micromesos import drop, http, log
from micromesos.errors import ProtocolError

if False:  # for mypy only: the compiler drops this block (no import, no RAM on a board)
    from typing import Any, Callable  # noqa: F401

_W = "libprocess"
_SWEEP_MS = const(250)  # how often deadlines are checked
_MASTER_EXTRA = const(2)  # connections from a master's address may wait beyond max_waiting


class Stream:
    """asyncio's StreamWriter as far as the transport uses it (write, drain, readinto; the same code as
    extmod/asyncio/stream.py), without importing asyncio.stream: ~0.9 KB of RAM on a board."""

    def __init__(self, s):
        self.s = s
        self.out_buf = b""

    def readinto(self, buf):  # awaitable: waits until s is readable
        yield asyncio.core._io_queue.queue_read(self.s)  # type: ignore[attr-defined]
        return self.s.readinto(buf)

    def write(self, buf):
        # Written at once if the socket takes it all; the rest is kept (a copy) until drain().
        if not self.out_buf:
            n = self.s.write(buf)
            if n == len(buf):
                return
            if n is not None:
                buf = buf[n:]
        self.out_buf += buf

    def drain(self):  # awaitable; always yields, so a loop of write + drain can't hold the loop
        if not self.out_buf:
            return (yield from asyncio.sleep_ms(0))  # type: ignore[misc]
        mv = memoryview(self.out_buf)
        off = 0
        while off < len(mv):
            yield asyncio.core._io_queue.queue_write(self.s)  # type: ignore[attr-defined]
            n = self.s.write(mv[off:])
            if n is not None:
                off += n
        self.out_buf = b""


class _Conn:
    # One inbound connection: its task, parser (None while it waits for one), whether it carried
    # messages for us (link) or plain HTTP requests (http), a streamed response waiting to go (stream)
    # or going (busy); req: a request is under way since t0 (its first byte, or being given a parser).
    # Defaults live on the class: a connection's attribute table only holds what differs.
    parser = stream = None
    link = broken = http = busy = gone = req = master = False

    def __init__(self, w, addr=None, master=False):
        self.task = None  # every connection gets one (Gate._admit)
        self.last = self.t0 = time.ticks_ms()
        if master:
            self.master = True  # it comes from an address we send to (the master's)
        a = w.get_extra_info("peername") if addr is None else addr
        if not isinstance(a, tuple):  # the unix port hands over a raw struct sockaddr_in
            a = ("%d.%d.%d.%d" % (a[4], a[5], a[6], a[7]), a[2] << 8 | a[3])
        self.peer = a  # (ip, port)


class Gate:
    """Accepts inbound connections within bounds and runs each as a task with a parser; the listener
    (micromesos.listener.Listener) provides _serve(c, r, w) and _write(c, w, data). Listening starts in
    agentinit.listen (boot only) and stops in Libprocess.close: neither is code a running agent keeps."""

    max_conns = 3  # served at once, each with a parser: the master's link, a temporary one, an HTTP client
    max_waiting = 4  # accepted connections waiting for a parser; any beyond are closed at once
    # A parser's buffer: the largest request (head and framed body) a connection takes. The largest a
    # real master sent in the captured sessions is 563 B (a RunTaskMessage); `recv_buffer` sets it.
    recv_size = 2048
    # A new connection's parser starts this small (a web client's GET; a ping) and grows to recv_size once
    # a request needs it (http.HTTPParser._fit): /state's peak holds no 2 KB block for the client. 256 B:
    # on a fragmented 48 KB heap a 512 B hole is often missing; a streamed answer borrows it (jsonw.MIN_SIZE).
    start_size = 256
    accept_wait_ms = 4000  # a connection finding every parser busy waits this long for one, then gets 503
    stale_ms = 3000  # a connection silent this long mid-request (or before its first) may be dropped
    head_grace_ms = 500  # a request head not complete after this may be dropped for a waiting connection
    head_timeout_ms = 5000  # a request head not complete after this is dropped (slowloris)
    request_timeout_ms = 15000  # ... and a whole request (head and body)
    http_idle_ms = 15000  # an HTTP client idle between requests this long is closed (its parser freed)
    link_idle_ms = 45000  # a link silent this long (3 pings missed, §2.5) may be replaced by a new one
    refuse_drain = 1024  # bytes read from a refused connection before its 503, 64 per loop turn
    parser = http.HTTPParser
    # Counters and a flag that stay at these until something happens: on the class, so the instance's attribute
    # table (8 B a slot, grown in steps) holds only what changed.
    refused = 0  # connections answered 503 or closed at once
    evicted = 0  # connections dropped to make room for a new one, or past a deadline
    _closing = False  # Libprocess.close() ran
    # The listener's (annotations only: no code, no RAM on a board).
    _serve: "Callable[..., Any]"
    _write: "Callable[..., Any]"

    def __init__(self):
        self.on_link_closed = None
        self._spare = None  # a parser kept while no connection holds one (the master's next link)
        self._parsers = 0  # parsers in existence
        self._conns = []
        self._sock = self._server = self._sweeper = None
        from micromesos import dial  # outbound connects and socket options: rare, not kept in RAM

        try:
            self._nodelay = dial.nodelay_option()
        finally:
            drop("micromesos.dial")
        self._freed = asyncio.Event()  # a parser came back, or a connection went idle
        self._scratch = bytearray(64)  # bytes read only to be dropped: a refused connection's, the 202s

    def _master_ip(self, ip):
        return False  # Libprocess: an address it sends to

    def _new_parser(self, size):
        p = self.parser(bytearray(size))
        p.cap = p.max_body = self.recv_size  # the buffer is the limit
        self._parsers += 1
        return p

    async def _accept_loop(self, s):
        # Not asyncio.start_server: it makes a stream and a task for every connection before anyone
        # can say no, and an exception there (MemoryError in a burst) ends its accept loop for good.
        # Waiting for the socket is done as asyncio's own server does it.
        while True:
            yield asyncio.core._io_queue.queue_read(s)  # type: ignore[attr-defined]  # asyncio is Python, the same on every port
            try:
                s2, addr = s.accept()
            except OSError:
                continue
            except Exception:  # MemoryError making the socket object: wait for heap, go on
                await asyncio.sleep_ms(50)
                continue
            try:
                self._admit(s2, addr)
            except Exception as e:  # MemoryError above all: this connection goes, the loop stays
                self.refused += 1
                s2.close()
                if not isinstance(e, MemoryError):
                    log.error(_W, "accept failed: %r", e)

    def _admit(self, s, addr):
        s.setblocking(False)
        c = _Conn(None, addr)
        c.master = self._master_ip(c.peer[0])
        if not self._can_serve(c):
            n = 0
            for x in self._conns:
                if x.parser is None and not x.gone:
                    n += 1
            if n >= self.max_waiting + (_MASTER_EXTRA if c.master else 0):
                v = self._heaviest_waiter(c)
                if v is not None:
                    # The address with the most connections waiting gives up its oldest (503): one
                    # client renewing connections can't keep others out of the queue.
                    v.gone = True
                    self._freed.set()
                else:
                    # Closed at once, unread: a burst costs no task, no buffer, no loop turn each.
                    self.refused += 1
                    try:
                        s.write(http.UNAVAILABLE)
                    except OSError:
                        pass
                    s.close()
                    return
        w = Stream(s)
        self._conns.append(c)
        try:
            c.task = asyncio.create_task(self._conn_main(c, w))
        except BaseException:
            self._conns.remove(c)
            raise

    def _heaviest_waiter(self, new):
        # The oldest waiting connection of the address with the most waiting, if that is not new's.
        v = None
        most = 1
        for x in self._conns:
            if x.parser is not None or x.gone:
                continue
            k = 1 if x.peer[0] == new.peer[0] else 0
            for y in self._conns:
                if y.parser is None and not y.gone and y.peer[0] == x.peer[0]:
                    k += 1
            if k > most or (k == most and v is not None and time.ticks_diff(x.t0, v.t0) < 0):
                v = x
                most = k
        if v is None or v.peer[0] == new.peer[0]:
            return None
        return v

    async def _conn_main(self, c, w):
        try:
            if not await self._slot(c):
                c.gone = True  # out of the line (_next_in_line) while its 503 goes
                self.refused += 1
                log.warn(_W, "refused %s:%d: all connections busy", c.peer[0], c.peer[1])
                await self._refuse(w.s)
                return
            if self._nodelay is not None:
                try:
                    # A streamed response is several writes: Nagle would hold each after the first until
                    # the client's delayed ACK (~40 ms). Every write carries a whole chunk (jsonw.Writer).
                    w.s.setsockopt(self._nodelay[0], self._nodelay[1], 1)
                except OSError:
                    pass
            await self._serve(c, w, w)
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
        except MemoryError:  # no block for its parser to grow into: this connection goes, the listener stays
            self.refused += 1
            self._write(c, w, http.UNAVAILABLE)
        finally:
            self._conns.remove(c)
            p = c.parser  # its parser comes back
            c.parser = None
            if p is not None:
                if self._spare is None and (self._parsers == 1 or len(p.buf) >= self.recv_size):
                    p.clear()
                    self._spare = p  # one stays, full-size if it can: the master's next link needs no fresh block
                else:
                    self._parsers -= 1  # freed with the connection
            self._freed.set()
            w.s.close()
            cb = self.on_link_closed
            if c.link and cb is not None and not self._closing:
                try:
                    cb(c.peer[0], c.peer[1])
                except Exception as e:
                    log.error(_W, "on_link_closed failed: %r", e)

    async def _refuse(self, s):
        # Read what the client sent first (closing a socket with unread input sends a reset, which may
        # destroy the answer), but boundedly: one small read per loop turn, refuse_drain bytes at most.
        n = 0
        try:
            while n < self.refuse_drain:
                k = s.readinto(self._scratch)
                if not k:  # None: nothing more waiting; 0: EOF
                    break
                n += k
                await asyncio.sleep_ms(0)
            s.write(http.UNAVAILABLE)  # best effort: the socket is non-blocking, the answer tiny
        except OSError:
            pass

    def _can_serve(self, c):
        n = 0
        for x in self._conns:
            if x.parser is not None:
                n += 1
        return n < self.max_conns

    async def _slot(self, c):
        # A parser for a new connection: a free one, or one a connection that can go hands back
        # (_evict), within accept_wait_ms. Waiting (not refusing at once) serves the web UI's
        # parallel requests one after another; the bytes wait in the socket meanwhile.
        t0 = time.ticks_ms()
        while not self._can_serve(c) or self._next_in_line() is not c:
            left = self.accept_wait_ms - time.ticks_diff(time.ticks_ms(), t0)
            if left <= 0 or self._closing or c.gone:
                return False
            if not self._can_serve(c):
                self._evict(c)
            self._freed.clear()
            try:
                # Woken when a parser comes back or a connection goes idle; staleness is a matter of
                # time, so look again at least every 250 ms.
                await asyncio.wait_for_ms(self._freed.wait(), min(left, 250))
            except asyncio.TimeoutError:
                pass
        if c.gone or self._closing:
            # Given up (_admit's 503 for the heaviest waiter) while a parser came back: taking it would
            # leave a connection that no deadline or eviction looks at (both skip gone ones) holding it.
            return False
        if self._spare is not None:
            c.parser = self._spare
            self._spare = None
        else:
            try:
                c.parser = self._new_parser(min(self.start_size, self.recv_size))
            except MemoryError:
                log.error(_W, "no heap for a connection from %s:%d", c.peer[0], c.peer[1])
                return False
        c.req = True  # the first request's head is due from now
        c.last = c.t0 = time.ticks_ms()
        return True

    def _next_in_line(self):
        # Who takes the next free parser: a master's address first, then the address holding the fewest
        # parsers, then the oldest. Not whoever wakes first: an attacker's queued connections would win
        # most turns, and one plain client could wait out accept_wait_ms behind them.
        best = None
        bk = 0
        for x in self._conns:
            if x.parser is not None or x.gone:
                continue
            k = 0 if x.master else 64
            for y in self._conns:
                if y.parser is not None and y.peer[0] == x.peer[0]:
                    k += 1
            if best is None or k < bk or (k == bk and time.ticks_diff(x.t0, best.t0) < 0):
                best = x
                bk = k
        return best

    def _evict(self, new):
        # Every parser in use: drop the connection that can best go, oldest first within a rank:
        # 0 an HTTP client idle between requests; 1 a connection silent for stale_ms in the middle
        # of a request or before its first, or whose request head is still coming after
        # head_grace_ms, or any non-link when `new` comes from a master's address; 2 a link silent
        # for link_idle_ms (a half-open old link must not lock the master out, §1.5). A live link or
        # a response being sent never goes, so no HTTP client can push the master out.
        now = time.ticks_ms()
        v = None
        best = 3
        for x in self._conns:
            p = x.parser
            if p is None or x.busy or x.gone:
                continue
            quiet = time.ticks_diff(now, x.last)
            if x.link:
                r = 2 if quiet >= self.link_idle_ms else 3
            elif x.http and not x.req:
                r = 0
            elif (quiet >= self.stale_ms or (new.master and not x.master)
                  or (p.in_head() and time.ticks_diff(now, x.t0) >= self.head_grace_ms)):
                r = 1
            else:
                r = 3
            if r < best or (r == best and r < 3 and v is not None and time.ticks_diff(x.last, v.last) < 0):
                v = x
                best = r
        if v is None:
            return False
        self._drop(v, "for a new one")
        return True

    def _drop(self, c, why):
        c.gone = True
        self.evicted += 1
        log.warn(_W, "dropping connection from %s:%d %s", c.peer[0], c.peer[1], why)
        c.task.cancel()

    async def _sweep(self):
        # Deadlines: a request head or a whole request taking too long (a client trickling bytes holds
        # a parser and would lock /health and the master out), an HTTP client idle too long.
        while True:
            await asyncio.sleep_ms(_SWEEP_MS)
            now = time.ticks_ms()
            try:
                for c in self._conns:
                    if c.parser is None or c.busy or c.gone:
                        continue
                    if c.req:
                        t = time.ticks_diff(now, c.t0)
                        if t >= self.request_timeout_ms or (t >= self.head_timeout_ms and c.parser.in_head()):
                            self._drop(c, "past its request deadline")
                    elif c.http and time.ticks_diff(now, c.last) >= self.http_idle_ms:
                        self._drop(c, "idle")
            except Exception:  # MemoryError in a log line: the deadlines go on next time
                pass
