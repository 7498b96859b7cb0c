# The gateway's end of the link (docs/LINK.md §3, §7.3): a bounded table of nodes, sessions (HELLO -> WELCOME,
# RESET), one Link per node, its wake clock (awake, asleep, due) and the held queue fed to its Link; with keys,
# keyed datagrams and sessions that start only when the node shows their key (§8). MIT licence.
# Transport-agnostic: frame(addr, buf, n) takes a datagram, sender(addr) makes a Link's out().
import os
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
_OLD_NONCES = const(4)  # keys: a node's earlier nonces whose HELLOs are replays (LINK.md §8.3)


class Peer:
    """One node as the gateway sees it. Read: name, nonce, wake_ms, listen_ms, addr, session, link, awake,
    due (ticks_ms the node is due by while asleep), held (messages waiting for room in the Link), max_message
    (the largest message it takes, from its HELLO; 0: not said)."""

    def __init__(self, name):
        self.name = name
        self.nonce = self.attempt = -1
        self.wake_ms = self.listen_ms = self.max_message = 0
        self.addr = None
        self.session = 0
        self.link = None
        self.awake = False
        self.last = time.ticks_ms()  # its last frame
        self.due = self.last
        self.held = []  # [kind, body] in order, not yet given to the Link
        self.welcome = None  # the WELCOME frame of the current session, sent again for a repeated HELLO
        self.sleeps = 0
        self.s = None  # keys only: the session's linkauth.Session (key, counters)
        self.pend = None  # keys only: a session offered by WELCOME, taken when a frame under its key comes
        self.old = None  # keys only: the nonces of its last sessions before this one (earlier boots)


class _Pending:
    # A keyed session offered to a node (LINK.md §8.2): it replaces the running one only when the node shows
    # it holds its key (a frame tagged with it), so a replayed HELLO changes nothing.
    def __init__(self, addr, hello, session, s, welcome):
        self.addr = addr
        self.hello = hello  # (nonce, attempt, wake_ms, listen_ms, max_frame, window, max_message)
        self.session = session
        self.s = s
        self.welcome = welcome  # the keyed WELCOME datagram, sent again for a repeat of that HELLO



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
    # Node names that may attach (a set), or None: any. Without keys the link has no authentication (LINK.md
    # §8.6): this keeps strangers on the link's network from registering agents of their own with the master,
    # not from posing as a listed node.
    allowed = None

    def __init__(self, sender, mtu=512, window=4, max_message=32768, grace_ms=None, keys=None):
        self.sender = sender  # sender(addr) -> out(frame) for that address
        # keys: {node name: linkauth.Key}, the long-term keys (LINK.md §8): then only those names attach, every
        # datagram is keyed (mtu: the link's frames, the transport's datagrams are TRAILER longer) and a session
        # starts only when the node shows it holds its key. None: no tags, no cost.
        self.keys = keys
        self.pend = {}  # keys: addr -> Peer with a session offered there
        self.forged = self.replays = 0  # keys: datagrams dropped: tags that fail; frames seen before
        if keys is not None:
            from micromesos import linkauth

            self._auth = linkauth
            self._sbuf = bytearray(mtu + linkauth.TRAILER)  # each keyed datagram is put together here
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
        self.no_room = 0  # new nodes refused because the heap could not hold them (also in refused)

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
        if self.keys is not None:
            return self._keyed(addr, buf, n)
        t = check(buf, n, self.mtu)
        if t == HELLO:
            self._hello(addr, buf, n)
            return None
        p = self.by_addr.get(addr)
        if p is None or p.link is None or buf[2] != p.session:
            self._reset(addr, buf[2], NO_SESSION)
            return None
        return self._frame(p, buf, n)

    def _frame(self, p, buf, n):
        # A frame of p's session, checked (and, keyed, opened).
        lk = p.link
        if lk is None or buf[2] != p.session:
            return None  # keyed: not expected (the key is the session's), checked all the same
        t = lk.input(buf, n)
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

    def _keyed(self, addr, buf, n):
        # A keyed datagram (LINK.md §8): the frame checked first (no hashing of junk), then its tag: HELLO's under
        # the long-term key of the name it carries, the rest under the session's key with a counter not seen yet.
        a = self._auth
        if n > 0 and buf[0] & 15 == HELLO:
            m = n - a.TAG
            check(buf, m, self.mtu)
            ln = buf[24]
            name = None
            if 25 + ln == m:
                try:
                    name = bytes(buf[25:m]).decode()
                except UnicodeError:
                    pass
            k = self.keys.get(name) if name is not None else None
            if k is None or not k.check(a.NODE, buf, n):
                self.forged += 1
                return None
            self._hello(addr, buf, m)
            return None
        check(buf, n - a.TRAILER, self.mtu)
        p = self.by_addr.get(addr)
        m = p.s.open(buf, n) if p is not None and p.s is not None else a.FORGED
        if m == a.FORGED:
            q = self.pend.get(addr)
            if q is not None and q.pend is not None and q.pend.s.open(buf, n) >= 0:
                p = q
                m = n - a.TRAILER
                self._take(p)  # the node holds the offered session's key: that session starts now
        if m == a.REPLAY:
            self.replays += 1
            return None
        if m < 0:
            self.forged += 1
            return None
        return self._frame(p, buf, m)

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
        hello = (nonce, attempt, wake_ms, listen_ms, max_frame, window, linkhello.max_message(buf))
        if self.keys is not None:
            self._offer(p, addr, hello)
            return
        self._move(p, addr)
        if p.link is not None and nonce == p.nonce and attempt == p.attempt and p.welcome:
            p.last = time.ticks_ms()  # still connecting (our WELCOME was lost): heard from, awake
            if not p.awake:
                p.awake = True
                p.link.hold = False
            self.sender(addr)(p.welcome)  # a repeat of the HELLO we answered: the same WELCOME
            return
        session = p.session % 255 + 1  # 1..255, never the previous one
        self._begin(p, hello, session,
                    bytes(self.buf[: linkhello.welcome(self.buf, session, nonce, self.window, self.mtu,
                                                       self.unix_time())]))

    def _move(self, p, addr):
        if p.addr != addr:
            if p.addr is not None:
                self.by_addr.pop(p.addr, None)
            other = self.by_addr.get(addr)
            if other is not None and other is not p:
                other.addr = None  # another name took over this address
            self.by_addr[addr] = p
            p.addr = addr
            self._drop_link(p)  # a new out() for the new address

    def _offer(self, p, addr, hello):
        # Keyed (LINK.md §8.2): a HELLO verified under p's long-term key. It cannot be told from a replay, so the
        # running session goes on; a new one is offered (a fresh gateway nonce: a key no earlier session had)
        # and starts when a frame under its key comes (_take). Dropped as duplicates or replays: a HELLO no newer
        # than the running session's or the offer's (same nonce, attempt not after theirs), the offer's own from
        # another address, one with the nonce of one of the node's last sessions (an earlier boot).
        nonce, attempt = hello[0], hello[1]
        q = p.pend
        if q is not None and q.hello[0] == nonce:
            d = (attempt - q.hello[1]) & 0xFFFF
            if d == 0 and q.addr == addr:
                self.sender(addr)(q.welcome)  # a repeat (our WELCOME was lost): the same WELCOME
                return
            if d == 0 or d >= 0x8000:
                self.replays += 1
                return
        if (p.s is not None and nonce == p.nonce and not 0 < (attempt - p.attempt) & 0xFFFF < 0x8000
                or p.old is not None and nonce in p.old):
            self.replays += 1
            return
        a = self._auth
        gnonce = os.urandom(a.GNONCE)
        session = p.session % 255 + 1  # 1..255, never the running one
        s = a.Session(a.session_key(self.keys[p.name], nonce, attempt, gnonce, session), a.GATEWAY, a.NODE)
        b = self._sbuf
        n = linkhello.welcome(b, session, nonce, self.window, self.mtu, self.unix_time(), attempt)
        b[n : n + a.GNONCE] = gnonce
        n += a.GNONCE
        b[n : n + a.TAG] = s.key.tag(a.GATEWAY, b, n)
        w = bytes(b[: n + a.TAG])
        if q is not None and self.pend.get(q.addr) is p:
            del self.pend[q.addr]
        p.pend = _Pending(addr, hello, session, s, w)
        self.pend[addr] = p
        self.sender(addr)(w)

    def _take(self, p):
        # Keyed: a frame under the offered session's key came: the node holds it; that session starts now.
        q = p.pend
        p.pend = None
        if self.pend.get(q.addr) is p:
            del self.pend[q.addr]
        self._move(p, q.addr)
        p.s = q.s
        if q.hello[0] != p.nonce and p.nonce >= 0:  # a new boot: its last nonce is an old one now
            p.old = ([p.nonce] + (p.old or []))[:_OLD_NONCES]
        self._begin(p, q.hello, q.session, q.welcome)

    def _out(self, p):
        # The Link's out() for p: the transport's sender for its address; keyed, each frame sealed on the way.
        raw = self.sender(p.addr)
        if self.keys is None:
            return raw
        b = self._sbuf

        def sealed(frame):
            s = p.s
            if s is not None:
                n = len(frame)
                b[0:n] = frame
                raw(memoryview(b)[: s.seal(b, n)])

        return sealed

    def _begin(self, p, hello, session, welcome):
        new = p.nonce < 0 and p.link is None  # never attached (nor restored from the checkpoint)
        try:
            self._start(p, hello, session, welcome)
        except MemoryError:
            if not new:
                raise  # counted by the transport (take); the node's next HELLO tries again
            # A node that does not fit the heap (a board-sized gateway, GATEWAY.md §10) is not taken in half:
            # forgotten, told FULL as for max_nodes, and the gateway goes on serving the others.
            self.peers.pop(p.name, None)
            if self.by_addr.get(p.addr) is p:
                del self.by_addr[p.addr]
            p.link = None
            self.refused += 1
            self.no_room += 1
            if self.keys is None:
                self._reset(p.addr, 0, FULL)

    def _start(self, p, hello, session, welcome):
        # A session starts: the Link from sequence number 0, the node awake; its WELCOME sent unless keyed (sent
        # with the offer already).
        nonce, attempt, wake_ms, listen_ms, max_frame, window, p.max_message = hello
        fresh = nonce != p.nonce
        p.nonce = nonce
        p.attempt = attempt
        p.wake_ms = wake_ms
        p.listen_ms = listen_ms
        p.session = session
        if p.link is None or len(p.link.tx) < window * p.link.mtu:  # send slots for the window it announced
            self._drop_link(p)
            p.link = Link(self._out(p), self.mtu, self.window, window, self.max_message)
            p.link.deliver = self._deliverer(p)
        lk = p.link
        lk.limits(window, max_frame)
        lk.start(p.session)
        lk.hold = False  # a new session of a node that slept: its Link may still hold (nothing would go)
        p.awake = True
        p.last = time.ticks_ms()
        p.welcome = welcome
        if self.keys is None:
            lk.out(welcome)
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
        if self.keys is not None:
            return  # keyed: a RESET could be tagged only with a key a replay could reuse; the node says HELLO
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

