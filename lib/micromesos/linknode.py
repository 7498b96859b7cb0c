# A node's session with its gateway (docs/LINK.md §3, §7): HELLO until WELCOME, WAKE after a sleep, SLEEP when
# quiet. MIT licence. Messages go through self.link (micromesos.link.Link); the owner decides when to sleep.
import sys
import time

import asyncio
from micropython import const

from . import drop
from .link import Link

# linkframe's numbers folded in: no globals slot each (tests/test_node.py checks they agree).
_HEADER = const(8)  # linkframe.HEADER
_DATA = const(3)  # linkframe.DATA
_ACK = const(4)  # linkframe.ACK
_WELCOME = const(2)  # linkframe.WELCOME
_WAKE = const(5)  # linkframe.WAKE
_SLEEP = const(6)  # linkframe.SLEEP
_RESET = const(7)  # linkframe.RESET
_PENDING = const(2)  # linkframe.PENDING

_NONE = const(0)  # no session: connect() next
_UP = const(1)
_HELLO = "micromesos.linkhello"  # session-start bodies: imported per connect(), dropped after
_MAX_HELLO = const(57)  # 8 + 17 + 32
_ASK_POLL_MS = const(2)  # _ask: how often an answer is looked for (adds at most this to a handshake)
_LINGER_STEP_MS = const(10)  # linger: how often quiet() is looked at
_SLEEP_TRIES = const(3)  # SLEEP repeats without an answer before sleeping anyway (LINK.md §3.3)
_WAKE_TRIES = const(6)  # WAKE repeats (every rto_ms) before the gateway counts as gone: the owner connect()s


def _hello_module():
    m = sys.modules.get(_HELLO)
    if m is None:
        __import__(_HELLO)
        m = sys.modules[_HELLO]
    return m


class NodeLink:
    """out(frame) sends one frame to the gateway (the transport); input(buf, n) takes one from it.
    await connect() -> bool; await wake() -> bool; await linger(since, listen_ms) until sleeping is allowed;
    await sleep(ms) -> ms to sleep, or -1 (stay awake); link.send(kind, body) for messages,
    link.deliver for what arrives. first = (kind, body) goes first in every session (NODE_INFO);
    on_session(session) runs after each WELCOME."""

    def __init__(self, out, name, wake_ms, listen_ms, mtu=250, window=2, max_message=2048, nonce=None):
        import random  # here and put_u32 in sleep(), not at the top: this module's globals table a size smaller

        # out is the link's (link.out). This dict holds 16 of its 17 slots (the class's, 12 of 12: a
        # counter here, not there).
        self.link = Link(out, mtu, window, max_message=max_message)
        self.name = name
        self.wake_ms = wake_ms
        self.listen_ms = listen_ms
        self.nonce = random.getrandbits(32) if nonce is None else nonce  # keep it across deep sleep
        self.attempt = 0
        self.state = _NONE
        self.pending = False  # the gateway's last frame said PENDING: stay awake
        self.heard_at = time.ticks_ms()  # when a frame of the session last came
        self.heard = False  # a WELCOME, or any frame of the session came (answers WAKE and SLEEP): _ask polls it
        self.heard_type = 0  # the type of that frame: only an ACK answers SLEEP
        self.ctl = bytearray(_MAX_HELLO)
        self.first = None  # (kind, body): the first message of every session (NODE_INFO, LINK.md §5)
        self.on_session = None
        self.sessions = 0
        self.resets = 0  # sessions the gateway ended (RESET)

    def up(self):
        return self.state == _UP

    def end(self):
        """Give the session up (the node lost what only a new one brings again): connect() next. The message
        being delivered and what the gateway sends after it go unacknowledged: they come in the new session,
        in their order (a launch behind the AGENT it needs)."""
        lk = self.link
        lk.ack_due = False
        lk.session = 0  # "none yet" (LINK.md §2): its frames are another session's from now
        self.state = _NONE

    def input(self, buf, n):
        """One frame from the gateway (FrameError for bytes that are none). Returns its type."""
        lk = self.link
        t = lk.input(buf, n)
        if t == _RESET:
            if self.state == _UP:
                self.state = _NONE
                self.resets += 1
                self.heard = True
        elif t >= _DATA and self.state == _UP:
            self.heard_type = t
            self.pending = buf[1] & _PENDING != 0
            self.heard_at = time.ticks_ms()
            self.heard = True
        elif t == _WELCOME and self.state == _NONE:  # (a repeated WELCOME is ignored: the session runs)
            # Handled here, not in a method of its own: the class dict stays a table size smaller.
            try:
                session, nonce, window, max_frame, clock = _hello_module().read_welcome(buf)
                if clock and nonce == self.nonce:  # 0: the gateway has no clock
                    _hello_module().set_clock(clock)  # updates are stamped with the gateway's if ours is off
            finally:
                drop(_HELLO)
            if nonce == self.nonce:  # else for an earlier boot, or another node
                lk.limits(window, max_frame)
                f = self.first
                if f is not None:
                    # Ahead of what the last session left unacknowledged (start() sends that again), and once.
                    q = lk.q
                    for i in range(len(q) - 1, -1, -1):
                        if q[i][0] == f[0]:
                            q.pop(i)
                    q.insert(0, [f[0], f[1], -1])
                lk.hold = False  # a RESET may have answered our SLEEP: the link held since; a new session sends
                lk.start(session)
                self.state = _UP
                self.pending = False
                self.sessions += 1
                self.heard = True
                if self.on_session:
                    self.on_session(session)
        return t

    async def _ask(self, n, tries, backoff):
        # Send ctl[:n] until the gateway answers (heard), every rto (doubling if backoff); True if it did.
        # Polled every _ASK_POLL_MS, not wait_for_ms(): that makes a task and closures (~500 B on a 32-bit
        # board) per call, and a node asks twice per wake (WAKE, SLEEP).
        rto = self.link.rto_ms
        for _ in range(tries):
            self.heard = False
            self.link.out(memoryview(self.ctl)[:n])
            t0 = time.ticks_ms()
            while not self.heard and time.ticks_diff(time.ticks_ms(), t0) < rto:
                await asyncio.sleep_ms(_ASK_POLL_MS)
            if self.heard:
                return True
            if backoff:
                rto = min(rto * 2, self.link.rto_max_ms)
        return False

    async def connect(self, tries=8):
        """HELLO until a WELCOME for our nonce (LINK.md §3.1); True when the session runs."""
        self.state = _NONE
        self.attempt = (self.attempt + 1) & 0xFFFF
        lk = self.link
        try:
            n = _hello_module().hello(self.ctl, self.nonce, self.wake_ms, self.listen_ms, lk.mtu, lk.win,
                                      self.name, self.attempt, lk.max_message)
        finally:
            drop(_HELLO)
        return await self._ask(n, tries, True) and self.state == _UP

    async def wake(self):
        """After a sleep: WAKE until the gateway answers; what it held starts coming. False: no answer, or it
        lost our session (RESET): connect() again."""
        if self.state != _UP:
            return False
        lk = self.link
        lk.release()
        n = lk.control(self.ctl, _WAKE, 0)
        # Every rto_ms, no backoff: the gateway vouches for us only until due + grace (LINK.md §7.3).
        return await self._ask(n, _WAKE_TRIES, False) and self.state == _UP

    async def linger(self, since, listen_ms):
        """Stay awake until listen_ms have passed since `since` (ticks_ms of the wake) and quiet() (LINK.md
        §7.1). While the gateway has more for us (PENDING) and has said nothing for rto_ms, WAKE again: it
        may have lost our frames and taken us for asleep. False if the session went (connect() again)."""
        lk = self.link
        poked = time.ticks_ms()
        while self.state == _UP and not lk.down:
            now = time.ticks_ms()
            if time.ticks_diff(now, since) >= listen_ms and self.quiet():
                return True
            if (self.pending and time.ticks_diff(now, self.heard_at) >= lk.rto_ms
                    and time.ticks_diff(now, poked) >= lk.rto_ms):
                poked = now
                lk.out(memoryview(self.ctl)[: lk.control(self.ctl, _WAKE, 0)])
            await asyncio.sleep_ms(_LINGER_STEP_MS)
        return False

    def quiet(self):
        """Sleeping is allowed (LINK.md §7.1): every message sent acknowledged, nothing half-received, the
        gateway's last frame without PENDING. The owner also keeps listen_ms since the wake."""
        return self.state == _UP and not self.pending and self.link.quiet()

    async def sleep(self, sleep_ms):
        """SLEEP(sleep_ms) until the gateway answers (LINK.md §3.3). Returns the ms to sleep now: sleep_ms less
        what the handshake took, so the wake is never later than the gateway expects it; -1: stay awake (the
        gateway has more for us, or we for it). The link holds until wake()."""
        lk = self.link
        if not self.quiet():
            return -1
        t0 = time.ticks_ms()
        from .linkframe import put_u32

        n = lk.control(self.ctl, _SLEEP, 4)
        put_u32(self.ctl, _HEADER, sleep_ms)
        answered = await self._ask(n, _SLEEP_TRIES, True)
        if answered and (self.pending or not lk.quiet() or self.heard_type != _ACK):
            # Not an ACK (e.g. a DATA the gateway sent again, our SLEEP lost): it doesn't know we sleep.
            # Stay awake; the owner's next sleep() says SLEEP again (LINK.md §3.3).
            return -1
        lk.hold = True  # nothing goes out while we sleep
        return max(0, sleep_ms - time.ticks_diff(time.ticks_ms(), t0))
