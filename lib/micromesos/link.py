# The link's reliable datagram layer (docs/LINK.md §4): sequence numbers, cumulative + selective acks,
# retransmission with backoff, duplicate suppression, in-order delivery, fragments. MIT licence.
# Transport-agnostic: frames go out through link.out(memoryview) and come in through link.input(buf, n).
import asyncio
import time

from micropython import const

from .linkframe import check, put_header

# linkframe's numbers folded in: no globals slot each (tests/test_node.py checks they agree).
_HEADER = const(8)  # linkframe.HEADER
_DATA = const(3)  # linkframe.DATA
_ACK = const(4)  # linkframe.ACK
_MORE = const(1)  # linkframe.MORE
_PENDING = const(2)  # linkframe.PENDING
_MIN_FRAME = const(64)  # linkframe.MIN_FRAME
_MAX_FRAME = const(1400)  # linkframe.MAX_FRAME
_MAX_WINDOW = const(8)  # linkframe.MAX_WINDOW

_HALF = const(0x8000)  # serial arithmetic on u16 sequence numbers: a difference >= this is "before"
_MASK = const(0xFFFF)
_NEVER = const(-1)  # poll(): no timer running
_RETRY_MS = const(20)
_MAX_QUEUE = const(8)  # LINK.md §4.4's max_queue: messages queued or unacknowledged at once; send() is False beyond
_IDLE_MS = const(3600000)  # timers() with nothing in flight: until a frame goes (it is roused then)
_DATA_VT = const(0x13)  # byte 0 of a DATA frame: VERSION << 4 | DATA (a test checks)
# Per send slot, three entries of one list (one list, not three: -64 B at window 1): the frame's length, its
# transmissions (0: acknowledged out of order, never sent again), ticks_ms of the last one.
_LEN = const(0)
_TRIES = const(1)
_AT = const(2)


def _drop(kind, buf, start, end):
    pass  # no owner yet: messages are acknowledged and dropped


class Link:
    """One end of a link with one peer. Sending: send(kind, body) queues a message (bytes-like, kept by
    reference until acknowledged: it must not change); it is cut into DATA frames of at most `mtu` bytes
    and at most `peer_window` of them are in flight. Receiving: input(buf, n) takes one datagram; every
    whole message, in order and once, goes to deliver(kind, buf, start, end): a message of one frame in
    that frame's buffer (start 9; valid during the call only), one put together from fragments in a
    bytearray of its own (start 1; the owner may keep it). Call flush() after a batch of input() (the ack),
    poll() when its returned ms have passed (retransmissions), or run timers() as a task."""

    rto_ms = 300  # first retransmission timeout; doubled per try up to rto_max_ms (LINK.md §4.4)
    rto_max_ms = 4000
    max_tries = 12  # transmissions of one frame before the peer counts as gone (on_dead): 36.5 s at the
    # defaults; at 20 % loss each way a frame still gets through 1 - 0.36**12 of the time (LINK.md §4.4)
    # Counters (LINK.md §4.8): zeros here, a slot in the instance only once one counts (dups, beyond,
    # oversize, dead: seldom ever; a node's RAM and the gateway's per node).
    sent = resent = received = dups = beyond = oversize = dead = 0
    # Defaults here, not instance slots, for what a node never sets (its instance dict stays one table size
    # smaller, with room for the counters above, so a first count never needs a larger block mid-launch).
    on_dead = None  # on_dead(): a frame was sent max_tries times without an ack
    more = False  # the owner (a gateway) holds more messages for the peer than it gave us (PENDING, LINK.md §7)
    rx: bytes | bytearray = b""  # window 1: no out-of-order frames kept
    rxlen: list[int] | tuple[int] = (0,)  # window 1: its one slot never holds a frame (a constant, no list)

    def __init__(self, out, mtu=512, window=4, peer_window=None, max_message=2048):
        self.out = out  # out(frame): send one datagram (the transport; it must not raise)
        self.deliver = _drop  # deliver(kind, buf, start, end): a whole message
        self.mtu = mtu  # slot size: the largest frame we take and keep
        self.frame = mtu  # the largest frame we send: min(mtu, the peer's max_frame), set at the session start
        self.win = window  # our receive window: out-of-order frames we keep
        self.pwin = peer_window or window  # frames in flight at most (the peer's receive window)
        if not 1 <= self.win <= _MAX_WINDOW or not 1 <= self.pwin <= _MAX_WINDOW:
            raise ValueError("window: 1..%d" % _MAX_WINDOW)
        if not _MIN_FRAME <= mtu <= _MAX_FRAME or max_message < 1:
            raise ValueError("mtu: %d..%d; max_message: 1 or more" % (_MIN_FRAME, _MAX_FRAME))
        self.tx = bytearray(mtu * self.pwin)  # one slot per frame in flight, kept for retransmission
        self.txv = memoryview(self.tx)
        self.txs = [0] * (3 * self.pwin)  # slot i at 3 * i: _LEN, _TRIES, _AT
        # Out-of-order frames wait here (window 1: none kept, the sender sends them again).
        if self.win > 1:
            self.rx = bytearray(mtu * self.win)
            self.rxlen = [0] * self.win
        # A message of several fragments is put together here: made at its first fragment, grown per
        # fragment up to max_message, let go once delivered (an idle link holds no reassembly buffer). Its
        # length is the bytes taken so far (no count of its own: the instance dict stays a table size smaller).
        self.msg = None
        self.max_message = max_message
        self.ackbuf = bytearray(_HEADER)  # the ACK frame, written in place
        self.nomem = 0  # counted when there is no heap: its slot must exist before
        self.q = []  # [kind, body, last seq or -1]: messages not yet wholly acknowledged, in order
        self.timer = None  # the timers() task (a hub polls instead): a frame put in flight rouses it
        self.hold = False  # the peer sleeps: nothing is sent, no timer runs (release() resends)
        self.start(0)

    def limits(self, window, max_frame):
        """The peer's receive window and max_frame from its HELLO/WELCOME; call before start()."""
        self.pwin = min(window, len(self.txs) // 3)
        self.frame = min(max_frame, self.mtu)

    def quiet(self):
        """Nothing to send or resend, nothing half-received: a node may sleep (LINK.md §7.1)."""
        if self.q or self.msg or self.skip:
            return False
        for n in self.rxlen:
            if n:
                return False
        return True

    def start(self, session):
        """A new session (HELLO/WELCOME, LINK.md §4.1): sequence numbers from 0 both ways. Messages not
        wholly acknowledged are sent again from their first fragment (at least once across sessions)."""
        self.session = session
        self.una = self.nxt = 0  # oldest unacknowledged, next to assign
        self.rnxt = 0  # next sequence number we deliver
        for i in range(self.win if self.win > 1 else 0):
            self.rxlen[i] = 0
        self.msg = None
        self.skip = False  # the message being put together is over max_message (or the heap): dropped at its end
        self.frag = 0  # bytes of q[self.cur] already cut into frames (the kind byte counts as one)
        self.cur = 0  # index in q of the message being cut into frames
        for m in self.q:
            m[2] = -1
        if self.more:  # set only when true (a node never sets it): see the class
            self.more = False
        self.ack_due = False
        self.down = False
        self._fill()

    def resume(self, session, nxt, rnxt):
        """Go on with a session kept across a deep sleep (LINK.md §7.2): a node sleeps only when idle(), so
        (session, nxt, rnxt), as saved() gave them before the sleep, are all the link state there is.
        Messages queued before resume() go out numbered from nxt."""
        q = self.q
        self.q = []
        self.start(session)
        self.una = self.nxt = nxt & _MASK
        self.rnxt = rnxt & _MASK
        self.q = q
        self._fill()

    def saved(self):
        """(session, nxt, rnxt) to keep across a deep sleep (5 bytes in RTC memory); only when idle()."""
        return self.session, self.nxt, self.rnxt

    # --- sending ----------------------------------------------------------------------------------

    def send(self, kind, body=b""):
        """Queue one message (kind 0..255, LINK.md §5); False when _MAX_QUEUE messages are waiting."""
        if len(self.q) >= _MAX_QUEUE:
            return False
        self.q.append([kind, body, -1])
        self._fill()
        return True

    def idle(self):
        """True when every message sent was acknowledged."""
        return not self.q

    def _fill(self):
        # Cut queued messages into frames while the peer's window has room.
        while self.cur < len(self.q) and (self.nxt - self.una) & _MASK < self.pwin and not self.down:
            m = self.q[self.cur]
            body = m[1]
            seq = self.nxt
            slot = seq % self.pwin
            a = slot * self.mtu
            tx = self.tx
            p = a + _HEADER
            room = self.frame - _HEADER
            if self.frag == 0:  # the first fragment starts with the kind byte (LINK.md §5)
                tx[p] = m[0]
                p += 1
                room -= 1
            off = self.frag - 1 if self.frag else 0
            k = len(body) - off
            if k > room:
                k = room
            if k:
                tx[p : p + k] = memoryview(body)[off : off + k]
            self.frag = off + k + 1  # the kind byte and the body bytes cut so far
            last = off + k >= len(body)
            tx[a + 1] = 0 if last else _MORE  # the rest of the header is written at each transmission
            self.txs[3 * slot + _LEN] = p + k - a
            self.txs[3 * slot + _TRIES] = 1
            self.nxt = (seq + 1) & _MASK
            if last:
                m[2] = seq
                self.cur += 1
                self.frag = 0
            self._transmit(slot, seq)
            self.sent += 1

    def _transmit(self, slot, seq):
        self.txs[3 * slot + _AT] = time.ticks_ms()  # type: ignore[call-overload]  # ticks are small ints
        if self.hold:
            return
        a = slot * self.mtu
        tx = self.tx
        # The header is written at each transmission: it carries our latest ack/sack (piggybacked).
        tx[a] = _DATA_VT
        # PENDING: something follows this frame (a later frame, an uncut message, the owner's held ones).
        tx[a + 1] = tx[a + 1] & _MORE | (_PENDING if self.more or self.cur < len(self.q)
                                        or (seq + 1) & _MASK != self.nxt else 0)
        tx[a + 2] = self.session
        tx[a + 3] = self._sack()
        tx[a + 4] = seq >> 8
        tx[a + 5] = seq & 255
        tx[a + 6] = self.rnxt >> 8
        tx[a + 7] = self.rnxt & 255
        self.ack_due = False  # the ack rides on this frame
        self.out(self.txv[a : a + self.txs[3 * slot + _LEN]])
        t = self.timer
        if t is not None and t is not asyncio.core.cur_task:  # type: ignore[attr-defined]
            # Its sleep brought forward to now, as Task.cancel() does: no Event, no wait_for (a task and
            # closures per wait); it awaits nothing but sleep_ms() (steps.rouse, for the runner's tasks).
            q = asyncio.core._task_queue  # type: ignore[attr-defined]
            q.remove(t)
            q.push(t)

    def _acked(self, ack, sack):
        # The peer's cumulative ack (all before `ack` received) and sack (bit i: ack + 1 + i received).
        inflight = (self.nxt - self.una) & _MASK
        d = (ack - self.una) & _MASK
        if d > inflight:
            return  # acknowledges what was never sent: stale or forged, ignored
        if d:
            self.una = ack
            q = self.q
            while q and q[0][2] >= 0 and (ack - q[0][2] - 1) & _MASK < _HALF:  # its last fragment is acked
                q.pop(0)
                self.cur -= 1
        s = ack
        top = -1
        while sack:
            s = (s + 1) & _MASK
            if sack & 1 and (s - self.una) & _MASK < (self.nxt - self.una) & _MASK:
                self.txs[3 * (s % self.pwin) + _TRIES] = 0
                top = s
            sack >>= 1
        if top >= 0:
            self._fast(top)
        if d:
            self._fill()

    def _fast(self, top):
        # A frame the peer got after a gap: the gap's frames are sent again now rather than at their
        # timeout, if they went at least rto_ms/2 ago (younger ones may only be late: reordered).
        now = time.ticks_ms()
        s = self.una
        while s != top:
            slot = s % self.pwin
            i = 3 * slot
            n = self.txs[i + _TRIES]
            if n and n < self.max_tries and time.ticks_diff(now, self.txs[i + _AT]) >= self.rto_ms >> 1:
                self.txs[i + _TRIES] = n + 1
                self.resent += 1
                self._transmit(slot, s)
            s = (s + 1) & _MASK

    def poll(self):
        """Send again every frame whose timeout passed; ms until the next timeout, or -1 if none runs."""
        if self.hold or self.down:
            return _NEVER
        now = time.ticks_ms()
        wait = _NEVER
        s = self.una
        while s != self.nxt:
            slot = s % self.pwin
            i = 3 * slot
            n = self.txs[i + _TRIES]
            if n:
                rto = self.rto_ms << (n - 1) if n < 16 else self.rto_max_ms
                if rto > self.rto_max_ms:
                    rto = self.rto_max_ms
                left = rto - time.ticks_diff(now, self.txs[i + _AT])
                if left <= 0:
                    if n >= self.max_tries:
                        self.down = True
                        self.dead += 1
                        if self.on_dead:
                            self.on_dead()
                        return _NEVER
                    self.txs[i + _TRIES] = n + 1
                    self.resent += 1
                    self._transmit(slot, s)
                    left = rto * 2 if rto * 2 < self.rto_max_ms else self.rto_max_ms
                if wait < 0 or left < wait:
                    wait = left
            s = (s + 1) & _MASK
        return wait

    def release(self):
        """The peer listens again (after hold, or a dead link it came back on): everything unacknowledged
        goes now, each frame with its tries counted from 1."""
        self.hold = False
        self.down = False
        s = self.una
        while s != self.nxt:
            slot = s % self.pwin
            if self.txs[3 * slot + _TRIES]:
                self.txs[3 * slot + _TRIES] = 1
                self._transmit(slot, s)
            s = (s + 1) & _MASK
        self._fill()

    async def timers(self):
        """The retransmission timer as a task: sleeps while nothing is in flight."""
        self.timer = asyncio.current_task()
        try:
            while True:
                try:
                    w = self.poll()
                except MemoryError:  # a frame's view found no heap (a small board): it goes again soon
                    w = _RETRY_MS
                await asyncio.sleep_ms(_IDLE_MS if w < 0 else w)
        finally:
            self.timer = None

    # --- receiving --------------------------------------------------------------------------------

    def input(self, buf, n):
        """One datagram from the peer. Returns its type (the owner handles HELLO, WELCOME, WAKE, SLEEP,
        RESET); the header's acks are taken from every frame of this session, DATA is delivered in order.
        FrameError for bytes that are no frame; -1 for a frame of another session (the owner may RESET)."""
        t = check(buf, n, self.mtu)
        if buf[2] != self.session or t < _DATA:
            return t if t < _DATA else -1
        self._acked(buf[6] << 8 | buf[7], buf[3])
        if t == _DATA:
            self.ack_due = True
            d = ((buf[4] << 8 | buf[5]) - self.rnxt) & _MASK
            if d >= _HALF:
                self.dups += 1  # delivered before: our ack was lost; the next ack says so again
            elif d >= self.win:
                self.beyond += 1  # past our window: the sender broke the rules or it is forged
            elif d:
                slot = (self.rnxt + d) % self.win
                if self.rxlen[slot]:
                    self.dups += 1
                else:
                    a = slot * self.mtu
                    try:
                        self.rx[a : a + n] = memoryview(buf)[:n]  # kept until the gap before it is filled
                        self.rxlen[slot] = n
                    except MemoryError:  # not kept, not in the sack: the peer sends it again
                        self.nomem += 1
            else:
                if self.win > 1:
                    self.rxlen[self.rnxt % self.win] = 0  # a copy kept for want of heap: this one replaces it
                self.rnxt = (self.rnxt + 1) & _MASK
                if not self._take(buf, n):
                    self.rnxt = (self.rnxt - 1) & _MASK
                    return t  # not taken (no heap): left unacknowledged, the peer sends it again (§4.6)
            self._drain()  # also after a deliver() that raised: what waits is not stranded
        return t

    def _drain(self):
        # Frames kept out of order whose turn has come.
        while True:
            slot = self.rnxt % self.win
            n = self.rxlen[slot]
            if not n or self.win == 1:
                return
            a = slot * self.mtu
            try:
                b = memoryview(self.rx)[a : a + n]
            except MemoryError:
                return  # kept in its slot (the peer has its sack): flush() tries again after the next batch
            self.rxlen[slot] = 0
            self.rnxt = (self.rnxt + 1) & _MASK
            if not self._take(b, n):
                self.rxlen[slot] = n
                self.rnxt = (self.rnxt - 1) & _MASK
                return

    def _take(self, buf, n):
        # One in-order fragment; a message in one frame is delivered straight from buf (no copy). False: a
        # fragment that found no heap to be kept in is not taken (the caller leaves it unacknowledged).
        if buf[1] & _MORE == 0 and not self.msg and not self.skip:
            self.received += 1
            self.deliver(buf[_HEADER], buf, _HEADER + 1, n)
            return True
        k = n - _HEADER
        m = len(self.msg) if self.msg else 0
        if self.skip or m + k > self.max_message:
            self.skip = True
        else:
            try:
                if m:
                    self.msg.extend(memoryview(buf)[_HEADER:n])
                else:
                    self.msg = bytearray(memoryview(buf)[_HEADER:n])
            except MemoryError:  # no heap for it now (a small board): not taken, the peer sends it again
                self.nomem += 1
                return False
        self.received += 1
        if self.skip:
            self.msg = None
        if buf[1] & _MORE == 0:
            b = self.msg
            self.msg = None
            if self.skip:
                self.skip = False
                self.oversize += 1  # over max_message: acknowledged and dropped whole (LINK.md §4.6)
            else:
                self.deliver(b[0], b, 1, len(b))  # type: ignore[arg-type]  # b: the bytearray put together
        return True

    def _sack(self):
        s = 0
        for i in range(1, self.win):
            if self.rxlen[(self.rnxt + i) % self.win]:
                s |= 1 << (i - 1)
        return s

    def flush(self):
        """Send the ack now if a DATA frame came in since the last frame we sent (call after a batch)."""
        if self.win > 1 and self.rxlen[self.rnxt % self.win]:
            self._drain()  # a kept frame that found no heap before
        if self.ack_due and not self.hold:
            self.ack_due = False
            put_header(self.ackbuf, _ACK, _PENDING if self.more or self.q else 0, self.session, self._sack(),
                       self.nxt, self.rnxt)  # PENDING: anything unacknowledged or still held by the owner
            self.out(self.ackbuf)

    def control(self, buf, t, body):
        """Write a header-only or small control frame (WAKE, SLEEP, ...) of this session carrying our
        acks into buf; its length (the owner sends it). body: bytes after the header, already in buf."""
        put_header(buf, t, _PENDING if self.more or self.q else 0, self.session, self._sack(), self.nxt, self.rnxt)
        self.ack_due = False
        return _HEADER + body


