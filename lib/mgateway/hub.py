# The gateway's end of the link (docs/LINK.md §3, §7.3): a bounded table of nodes, sessions (HELLO -> WELCOME,
# RESET), one Link per node, its wake clock (awake, asleep, due) and the held queue fed to its Link. MIT licence.
# Transport-agnostic: frame(addr, buf, n) takes a datagram, sender(addr) makes a Link's out().
import time

import asyncio
from micropython import const

from micromesos import linkhello
from micromesos.link import Link
from micromesos.linkframe import (ACK, BAD_HELLO, FULL, HEADER, HELLO, NO_SESSION, RESET, SLEEP, WAKE,
                        FrameError, check, put_header, u32)

_RESET_EVERY_MS = const(1000)  # at most one RESET per address per second (LINK.md §3.3)
_MAX_RESET_ADDRS = const(256)
_KEEPALIVE_MS = const(10000)  # wake_ms 0: the node never sleeps and sends a frame at least this often


class Peer:
    """One node as the gateway sees it. Read: name, nonce, wake_ms, listen_ms, addr, session, link, awake,
    due (ticks_ms the node is due by while asleep), held (messages waiting for room in the Link)."""

    def __init__(self, name):
        self.name = name
        self.nonce = self.attempt = -1
        self.wake_ms = self.listen_ms = 0
        self.addr = None
        self.session = 0
        self.link = None
        self.awake = False
        self.last = time.ticks_ms()  # its last frame
        self.due = self.last
        self.held = []  # [kind, body] in order, not yet given to the Link
        self.welcome = None  # the WELCOME frame of the current session, sent again for a repeated HELLO
        self.sleeps = 0



def take(t, addr, buf, n, touched):
    """A gateway transport's one received frame to t.on_frame, counted on t when refused (bad: FrameError;
    errors, last_error: the owner failed on it); the Link it touched joins `touched` (flush() those after
    the batch: flush_all). Shared by mgateway.udp and mgateway.espnow."""
    try:
        lk = t.on_frame(addr, buf, n)
    except FrameError:
        t.bad += 1
        return
    except Exception as e:  # the owner's handler failed on one frame: counted, the transport goes on
        t.errors += 1
        t.last_error = e
        return
    if lk is not None and lk not in touched:
        touched.append(lk)


def flush_all(touched):
    for lk in touched:
        lk.flush()
    touched.clear()

class LinkHub:
    """on_session(peer, fresh): a node started a session (fresh: a new nonce, it lost its RAM);
    on_message(peer, kind, buf, start, end): a whole message from a node (buf valid during the call)."""

    max_nodes = 128
    # Node names that may attach (a set), or None: any. Version 1 of the link has no authentication (LINK.md
    # §8): this keeps strangers on the link's network from registering agents of their own with the master,
    # not from posing as a listed node.
    allowed = None

    def __init__(self, sender, mtu=512, window=4, max_message=32768, grace_ms=None):
        self.sender = sender  # sender(addr) -> out(frame) for that address
        self.mtu = mtu
        self.window = window
        self.max_message = max_message
        self.grace_ms = grace_ms  # None: max(2000, wake_ms // 10) per node
        self.peers = {}  # name -> Peer
        self.by_addr = {}  # addr -> Peer
        self.on_session = None
        self.on_message = None
        self.buf = bytearray(HEADER + 12)  # WELCOME, ACK and RESET frames are written here
        self._resets = {}  # addr -> ticks_ms of the last RESET sent
        self.unix_time = lambda: 0
        self.bad = self.refused = 0

    def restore(self, name, nonce, wake_ms, listen_ms):
        """A node known from the gateway's checkpoint, before it speaks (GATEWAY.md §5): asleep, due within
        one wake_ms from now; its next frame gets RESET and its HELLO with the same nonce is not fresh."""
        p = self.peers.get(name)
        if p is None:
            p = self.peers[name] = Peer(name)
        p.nonce = nonce
        p.wake_ms = wake_ms
        p.listen_ms = listen_ms
        p.awake = False
        p.due = time.ticks_add(time.ticks_ms(), wake_ms or _KEEPALIVE_MS)
        return p

    # --- frames in ------------------------------------------------------------------------------

    def frame(self, addr, buf, n):
        """One datagram from addr; the Link it touched (flush() it after the batch), or None. FrameError."""
        t = check(buf, n, self.mtu)
        if t == HELLO:
            self._hello(addr, buf, n)
            return None
        p = self.by_addr.get(addr)
        if p is None or p.link is None or buf[2] != p.session:
            self._reset(addr, buf[2], NO_SESSION)
            return None
        lk = p.link
        lk.input(buf, n)
        p.last = time.ticks_ms()
        if t == WAKE:
            lk.ack_due = True  # answered by the DATA that goes now (it carries the ack), else by an ACK
        if t == SLEEP:
            self._sleep(p, u32(buf, HEADER))
        elif not p.awake or lk.down:
            p.awake = True
            lk.release()  # what it holds goes now (LINK.md §7.3); a dead link comes back
        if p.awake:
            self._feed(p)
        return lk

    def _hello(self, addr, buf, n):
        try:
            nonce, wake_ms, listen_ms, max_frame, window, name = linkhello.read_hello(buf, n)
        except FrameError:
            self._reset(addr, 0, BAD_HELLO)
            raise
        attempt = buf[4] << 8 | buf[5]
        if self.allowed is not None and name not in self.allowed:
            self.refused += 1
            self._reset(addr, 0, BAD_HELLO)
            return
        p = self.peers.get(name)
        if p is None:
            if len(self.peers) >= self.max_nodes:
                self.refused += 1
                self._reset(addr, 0, FULL)
                return
            p = self.peers[name] = Peer(name)
        if p.addr != addr:
            if p.addr is not None:
                self.by_addr.pop(p.addr, None)
            other = self.by_addr.get(addr)
            if other is not None and other is not p:
                other.addr = None  # another name took over this address
            self.by_addr[addr] = p
            p.addr = addr
            self._drop_link(p)  # a new out() for the new address
        if p.link is not None and nonce == p.nonce and attempt == p.attempt and p.welcome:
            p.last = time.ticks_ms()  # still connecting (our WELCOME was lost): heard from, awake
            if not p.awake:
                p.awake = True
                p.link.hold = False
            self.sender(addr)(p.welcome)  # a repeat of the HELLO we answered: the same WELCOME
            return
        fresh = nonce != p.nonce
        p.nonce = nonce
        p.attempt = attempt
        p.wake_ms = wake_ms
        p.listen_ms = listen_ms
        p.session = p.session % 255 + 1  # 1..255, never the previous one
        if p.link is None or len(p.link.txlen) < window:  # send slots for the window it announced
            self._drop_link(p)
            p.link = Link(self.sender(addr), self.mtu, self.window, window, self.max_message)
            p.link.deliver = self._deliverer(p)
        lk = p.link
        lk.limits(window, max_frame)
        lk.start(p.session)
        lk.hold = False  # a new session of a node that slept: its Link may still hold (nothing would go)
        p.awake = True
        p.last = time.ticks_ms()
        p.welcome = bytes(self.buf[: linkhello.welcome(self.buf, p.session, nonce, self.window, self.mtu,
                                                       self.unix_time())])
        lk.out(p.welcome)
        if self.on_session:
            self.on_session(p, fresh)
        self._feed(p)

    def _drop_link(self, p):
        # What the old Link had not got acknowledged goes back to the front of the held queue, in order.
        if p.link is not None:
            p.held[:0] = [[m[0], m[1]] for m in p.link.q]
            p.link = None

    def _deliverer(self, p):
        def deliver(kind, buf, start, end):
            if self.on_message:
                self.on_message(p, kind, buf, start, end)
        return deliver

    def _sleep(self, p, sleep_ms):
        # SLEEP: acked at once; with nothing for it, the node sleeps and its Link holds (LINK.md §3.3).
        lk = p.link
        busy = self._busy(p)
        lk.more = bool(p.held)
        n = lk.control(self.buf, ACK, 0)  # PENDING if busy
        lk.out(memoryview(self.buf)[:n])
        if not busy:
            p.awake = False
            p.sleeps += 1
            p.due = time.ticks_add(time.ticks_ms(), min(sleep_ms, p.wake_ms) if p.wake_ms else sleep_ms)
            lk.hold = True

    def _reset(self, addr, session, reason):
        now = time.ticks_ms()
        last = self._resets.get(addr)
        if last is not None and time.ticks_diff(now, last) < _RESET_EVERY_MS:
            return
        if len(self._resets) >= _MAX_RESET_ADDRS:
            self._resets.clear()
        self._resets[addr] = now
        b = self.buf
        put_header(b, RESET, 0, session, 0, 0, 0)
        b[HEADER] = reason
        self.sender(addr)(memoryview(b)[: HEADER + 1])

    # --- messages out ---------------------------------------------------------------------------

    def send(self, p, kind, body, first=False):
        """Queue a message for node p, in order (first: ahead of everything still held, for AGENT: a node
        takes the master's messages only once it knows who it is); it goes when the node listens."""
        if first:
            p.held.insert(0, [kind, body])
        else:
            p.held.append([kind, body])
        if p.link is not None and p.awake:  # asleep: it stays here, where the gateway may still take it back
            self._feed(p)

    def _busy(self, p):
        return bool(p.held) or (p.link is not None and not p.link.idle())

    def _feed(self, p):
        lk = p.link
        held = p.held
        while held and lk.send(held[0][0], held[0][1]):
            held.pop(0)
        lk.more = bool(held)

    # --- the wake clock -------------------------------------------------------------------------

    def vouch(self, p):
        """True while the gateway may answer the master's pings for p (GATEWAY.md §4): awake, or asleep and
        not later than due + grace."""
        if p.awake:
            return True
        grace = self.grace_ms if self.grace_ms is not None else max(2000, (p.wake_ms or _KEEPALIVE_MS) // 10)
        return time.ticks_diff(time.ticks_ms(), p.due) <= grace

    def tick(self):
        """Nodes awake without a frame for listen_ms (+ one rto) went to sleep without a SLEEP: their Links
        hold, due by last frame + wake_ms. Call a few times per listen_ms (run() does)."""
        now = time.ticks_ms()
        for p in self.peers.values():
            if p.awake and p.link is not None:
                w = p.wake_ms or _KEEPALIVE_MS  # a node that never sleeps still says WAKE this often
                if time.ticks_diff(now, p.last) > (p.listen_ms if p.wake_ms else w) + p.link.rto_max_ms:
                    p.awake = False
                    p.link.hold = True
                    p.due = time.ticks_add(p.last, w)

    async def run(self, every_ms=100):
        """The retransmission timers of every Link, and tick(): one task for all nodes."""
        while True:
            for p in self.peers.values():
                if p.link is not None:
                    p.link.poll()
            self.tick()
            await asyncio.sleep_ms(every_ms)

