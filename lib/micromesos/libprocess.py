# The libprocess transport: ordered senders to the master and its observers; the listener is listener.py.
# MIT licence. Spec: PROTOCOL.md §1; byte-level truth: golden/captured/master-agent.jsonl.
import asyncio
import errno
import random
import socket

from micropython import const

from micromesos import http, log, upid
from micromesos.errors import ProtocolError
from micromesos.gate import Stream
from micromesos.listener import Listener, Message, _Conn  # noqa: F401 (the listener's half, re-exported)

_W = "libprocess"
_SLASH = const(47)
_CONNECT_POLL_MS = const(10)
_DRAIN_READS = const(16)  # reads of the peer's 202s per write at most (64 B each: 1 KB, ~20 answers)

# Fixed parts of an outbound message, in the order MessageEncoder writes them (§1.3).
_POST = b"POST /"
_END_HEAD = b"\r\n\r\n"
_CHUNKED = b"\r\nTransfer-Encoding: chunked\r\n\r\n"
_LAST_CHUNK = b"\r\n0\r\n\r\n"
_HEX = b"0123456789abcdef"


def _put(ob, pos, data):
    n = len(data)
    ob[pos : pos + n] = data  # slice store from a whole object: no allocation
    return pos + n


class _Dest:
    # One destination ip:port: a bounded outbox and one persistent, ordered connection (§1.2).
    # A message that does not fit the outbox's free room is queued by reference (big): its head in a
    # buffer of its own, its body streamed from the caller's object; order is kept by the outbox
    # offset it was queued at.
    def __init__(self, lp, hostport):
        self.lp = lp
        self.hostport = hp = bytes(hostport)  # b"ip:port": the key and the Host header
        colon = hp.find(b":")
        self.ip = hp[:colon].decode()
        self.port = upid.port_value(hp, colon + 1, len(hp))
        self.addr = socket.getaddrinfo(self.ip, self.port)[0][-1]  # an IPv4 literal: no DNS
        self.ob = lp._spare_outbox()
        self.mv = memoryview(self.ob)
        self.n = 0  # bytes queued in ob
        self.big = []  # [outbox offset, head, body]: after ob[:offset] went, head + body + end mark go
        self.cur = None  # (head, body) of the big message being sent: sent again whole after a reconnect
        self.ev = asyncio.Event()
        self.stream = None
        self.task = asyncio.create_task(self._run())  # the only task: connects, writes, reads the 202s

    def _head(self, ob, pos, src, id0, id1, name, nb, k, mid):
        pos = _put(ob, pos, _POST)
        for i in range(id0, id1):  # byte by byte: slicing src would allocate (ids only, ~20 bytes)
            ob[pos] = src[i]
            pos += 1
        ob[pos] = _SLASH
        pos = _put(ob, pos + 1, name)
        pos = _put(ob, pos, mid)
        pos = _put(ob, pos, self.hostport)
        if not nb:  # an empty body has no framing header at all
            return _put(ob, pos, _END_HEAD)
        pos = _put(ob, pos, _CHUNKED)  # one chunk, size in lowercase hex, then the terminator
        for i in range(k):
            ob[pos + k - 1 - i] = _HEX[(nb >> (4 * i)) & 15]
        return _put(ob, pos + k, b"\r\n")

    def put(self, src, id0, id1, name, body, mid=None):
        # Append one request exactly as libprocess writes it (§1.3, the captured agent
        # requests); the receiver id is src[id0:id1]; mid: the sender's header part (Libprocess.mid),
        # None for the agent's own. False if the queue is at its limit.
        if mid is None:
            mid = self.lp._mid
        if isinstance(name, str):
            name = name.encode()
        if isinstance(body, str):
            body = body.encode()
        pieces = isinstance(body, list)  # bytes-like pieces sent back to back (SENDS_PIECES)
        if pieces:
            nb = 0
            for p in body:
                nb += len(p)
        else:
            nb = len(body)
        k = http.hexlen(nb)
        pos = self.n
        head = 7 + id1 - id0 + len(name) + len(mid) + len(self.hostport)
        head += len(_CHUNKED) + k + 2 if nb else len(_END_HEAD)
        ob = self.ob
        if pos + head + (nb + len(_LAST_CHUNK) if nb else 0) <= len(ob):
            pos = self._head(ob, pos, src, id0, id1, name, nb, k, mid)
            if nb:
                if pieces:
                    for p in body:
                        pos = _put(ob, pos, p)
                else:
                    pos = _put(ob, pos, body)
                pos = _put(ob, pos, _LAST_CHUNK)
            self.n = pos
        else:
            if len(self.big) >= self.lp.max_streamed:
                return False
            h = bytearray(head)
            self._head(h, 0, src, id0, id1, name, nb, k, mid)
            if not pieces and not isinstance(body, bytes):
                body = bytes(body)  # the caller may reuse its buffer
            self.big.append([pos, h, body])
        self.ev.set()
        return True

    def _next_big(self):
        # ob[:offset] went out: the rest moves to the front, the big message becomes cur.
        off, h, body = self.big.pop(0)
        rest = self.n - off
        if off and rest:
            http.move(self.mv, 0, off, rest)
        self.n = rest
        for b in self.big:
            b[0] -= off
        self.cur = (h, body)

    async def _send_big(self):
        h, body = self.cur  # type: ignore[misc]  # set by _next_big
        st = self.stream
        st.write(h)
        if not body:  # a whole message in h
            self.cur = None
            await st.drain()
            return
        await st.drain()
        step = len(self.ob)  # what the stream may have to keep a copy of at once
        for part in body if isinstance(body, list) else (body,):
            mv = memoryview(part)
            for i in range(0, len(part), step):
                st.write(mv[i : i + step])
                await st.drain()
        st.write(_LAST_CHUNK)
        self.cur = None
        await st.drain()

    async def _run(self):
        lp = self.lp
        delay = lp.backoff_min_ms
        while True:
            while self.n == 0 and not self.big and self.cur is None:  # connect lazily, once there is a message
                self.ev.clear()
                await self.ev.wait()
            connected = False
            try:
                await self._connect()
                connected = True
                delay = lp.backoff_min_ms
                while self._open():
                    if self.cur is not None:
                        await self._send_big()
                        continue
                    n = self.n
                    if self.big:
                        n = self.big[0][0]
                        if n == 0:
                            self._next_big()
                            continue
                    elif n == 0:
                        self.ev.clear()
                        await self.ev.wait()
                        continue
                    # One write per batch. The stream keeps what the socket does not take at
                    # once, so the outbox is free when write() returns; if write() raises,
                    # nothing was taken and the batch goes out again after reconnecting.
                    self.stream.write(self.mv[:n])
                    if self.big:
                        self._next_big()
                    else:
                        self.n = 0
                    await self.stream.drain()
                log.debug(_W, "%s:%d closed the connection", self.ip, self.port)
            except OSError as e:
                if connected:
                    log.warn(_W, "sending to %s:%d failed: %r", self.ip, self.port, e)
                else:  # what is queued stays and goes once it connects
                    log.warn(_W, "cannot connect to %s:%d (%s): is it up? retrying", self.ip, self.port,
                             errno.errorcode.get(e.errno, e.errno))
            self._drop()
            # Capped exponential backoff, jittered over [delay/2, delay).
            await asyncio.sleep_ms(delay // 2 + ((random.getrandbits(16) * (delay - delay // 2)) >> 16))
            delay = min(delay * 2, lp.backoff_max_ms)

    async def _connect(self):
        # Waited for before the stream takes any bytes: a batch handed to a socket that never connects would
        # be lost; the socket is closed on failure, so a timeout leaks nothing. Connecting is rare: dial's
        # code is in RAM only meanwhile (it drops itself; a method, so no frame that lives on holds it).
        from micromesos import dial

        self.stream = Stream(await dial.connect(self.addr, self.lp.connect_timeout_ms, _CONNECT_POLL_MS))

    def _open(self):
        # Before each write: the peer answers every message with an empty 202 nobody needs (§1.4),
        # read here and dropped (no reader task per destination); EOF means it closed the connection,
        # so the batch waits for a new one. A reset raises OSError. Bounded: a peer that keeps
        # sending can't hold the loop (what is left is read next time).
        s = self.stream.s
        buf = self.lp._scratch
        for _ in range(_DRAIN_READS):
            n = s.readinto(buf)
            if n is None:  # nothing more waiting
                break
            if n == 0:
                return False
        return True

    def _drop(self):
        if self.stream is not None:
            self.stream.s.close()
            self.stream = None

    def close(self):
        self.task.cancel()
        self._drop()
        if not self.lp._outboxes:
            self.lp._outboxes.append(self.ob)  # the slot's next destination takes it over


class Libprocess(Listener):
    """The agent's libprocess endpoint (docs/ARCHITECTURE.md "transport"); receiving is listener.py's."""

    # Bytes of small messages queued per destination, copied: the pong path (a pong is ~210 B: two fit). A
    # bigger message (a status update is 550-600 B) is queued by reference to its encoded body (max_streamed).
    outbox_size = 512
    max_streamed = 4  # messages queued by reference per destination (those not fitting the outbox)
    SENDS_PIECES = True  # send() takes a body as a list of bytes-like pieces: no contiguous copy of the whole
    max_dests = 2  # outbound destinations (master@ and slave-observer(N)@ share one address)
    backoff_min_ms = 100
    backoff_max_ms = 10000
    connect_timeout_ms = 5000
    # Set by agentinit.transport, this class's __init__ body kept out of RAM (annotations only: no code on a board).
    ip: str
    port: int
    upid: str
    _mid: bytes
    _dests: list
    _outboxes: list

    def __init__(self, id="slave(1)", ip=None, port=5051, advertise_ip=None, advertise_port=None, cfg=None):
        # Runs once: its body is agentinit.transport (this class's own code, in RAM only for the call; it alone
        # sets the _private attributes this class starts with). ConfigError for a bad address or buffer size.
        from . import agentinit, drop

        try:
            agentinit.transport(self, id, ip, port, advertise_ip, advertise_port, cfg)
        finally:
            drop("micromesos.agentinit")

    @staticmethod
    def mid(upid_):
        """Everything between the message name and the Host value for messages from upid_ (str):
        the same for every message of that sender (§1.3). Pass it to send() to send as another process."""
        u = upid_.encode()
        return (b" HTTP/1.1\r\nUser-Agent: libprocess/" + u + b"\r\nLibprocess-From: " + u
                + b"\r\nConnection: Keep-Alive\r\nHost: ")

    async def start(self):
        """Listen (accept loop, deadline sweep) on ip:port; the rest of the body is agentinit.listen's (boot only)."""
        # The master's outbox and link parser first, while the heap is still in one piece (before agentinit's
        # code splits it): the master's link never needs a fresh block. Other parsers are made per connection.
        self._outboxes = [bytearray(self.outbox_size)]
        self._spare = self._new_parser(self.recv_size)
        from . import agentinit, drop

        try:
            agentinit.listen(self)
        finally:
            drop("micromesos.agentinit")

    async def close(self):
        self._closing = True
        for t in (self._server, self._sweeper):
            if t is not None:
                t.cancel()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for c in list(self._conns):
            if c.task is not None:
                c.task.cancel()
        for d in self._dests:
            d.close()
        self._dests = []
        await asyncio.sleep_ms(0)  # the cancelled tasks close their sockets

    def _spare_outbox(self):
        return self._outboxes.pop() if self._outboxes else bytearray(self.outbox_size)

    def _master_ip(self, ip):
        # A connection from an address the agent sends to (the master's) may push other clients out.
        for d in self._dests:
            if d.ip == ip:
                return True
        return False

    # -- sending ------------------------------------------------------------------------

    def send(self, to, name, body=b"", mid=None):
        """Queue POST /<id>/<name> for the UPID `to` (str or bytes) on its destination's
        ordered connection. A body of any size goes (one that does not fit the outbox is streamed
        from the object given, which must not change afterwards); it may be a list of bytes-like
        pieces, sent back to back, so a large message needs no contiguous block. False only when the queue is at
        its limit: the outbox full and max_streamed messages already queued by reference, or no
        destination slot (max_dests, all with messages queued). ProtocolError for a bad UPID.
        mid: from another process of this agent (Libprocess.mid), None for the agent's own UPID."""
        u = to.encode() if isinstance(to, str) else to
        at = upid.check(u, 0, len(u))
        return self._queue(u, 0, at, len(u), name, body, mid)

    def reply(self, msg, name, body=b""):
        """send() to msg's sender, read in place from msg.buf: with a bytes name and the
        connection already made, this allocates nothing (the pong path, §2.5)."""
        try:
            at = upid.check(msg.buf, msg.s0, msg.s1)
        except ProtocolError as e:
            log.warn(_W, "cannot reply to %s: %s", msg.sender(), e)
            return False
        return self._queue(msg.buf, msg.s0, at, msg.s1, name, body)

    def _queue(self, u, s0, at, s1, name, body, mid=None):
        d = None
        n = s1 - at - 1
        for x in self._dests:
            if len(x.hostport) == n and u.startswith(x.hostport, at + 1):
                d = x
                break
        if d is None:
            if len(self._dests) >= self.max_dests:
                for x in self._dests:
                    if x.n == 0 and not x.big and x.cur is None:  # nothing queued: its slot is taken over
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
        if d is None or not d.put(u, s0, at, name, body, mid):
            log.warn(_W, "send queue full: dropped a message for %s", bytes(u[s0:s1]))
            return False
        return True
