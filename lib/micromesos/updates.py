# Status update manager: one stream per task, one update in flight, resent until acknowledged.
# MIT licence. Mirrors the real agent's task_status_update_manager (PROTOCOL.md §2.7).
import time

import asyncio
from micropython import const

from . import codec, drop, log
from .steps import rouse
_STATUS_UPDATE = const(10)  # names.STATUS_UPDATE
_StatusUpdateMessage = const(52)  # schema.StatusUpdateMessage
_TASK_DROPPED = const(9)  # schema.TASK_DROPPED
_TASK_ERROR = const(7)  # schema.TASK_ERROR
_TASK_FAILED = const(3)  # schema.TASK_FAILED
_TASK_FINISHED = const(2)  # schema.TASK_FINISHED
_TASK_GONE = const(11)  # schema.TASK_GONE
_TASK_GONE_BY_OPERATOR = const(12)  # schema.TASK_GONE_BY_OPERATOR
_TASK_KILLED = const(4)  # schema.TASK_KILLED
_TASK_LOST = const(5)  # schema.TASK_LOST
_TASK_UNKNOWN = const(13)  # schema.TASK_UNKNOWN
_TASK_UNREACHABLE = const(10)  # schema.TASK_UNREACHABLE

JOURNAL = "updates"  # the store file (micromesos.journal reads and rewrites it too)
_REFUSED_MS = const(200)  # an update the outbox refused (a burst of them) is offered again after this
_MAX_PENDING = const(16)  # updates queued per task; a task that floods ctx.update() is refused
# TaskStatus.message in bytes of UTF-8: a longer one is cut (on a character boundary) and marked where it
# enters, in update(), so every update fits the outbox and the journal.
MAX_MESSAGE = const(1024)
_MARK = const(32)  # room kept for the marker: 3 bytes of U+2026 + " [truncated N bytes]", N < 10**10
# The journal (PROTOCOL.md §2.7: an update is on flash before it is sent; an ack is on flash before the
# next write) is one JSON list per line (the records: micromesos.journal), appended once per burst: an
# update record [0, ...] per update, an ack record [1, uuid hex] per acknowledgement. Replaying it at boot
# and rewriting it with only the live records once it passes max(_JOURNAL_MIN, twice its size after the
# last rewrite) are micromesos.journal's, imported for that and dropped after (_load_journal).
# RAM: what is used in one place is a literal or a local import there, not a global (23 globals fit a 23-slot
# table, 30 took 37 slots), and the state sets are literal tuples of consts (in the code, not in RAM).
_UPDATE = const(0)
_JOURNAL_MIN = const(4096)

# Seconds from the port's time.time() to Unix time: its epoch (2000 on some embedded ports); on a node whose clock
# is off and can't be set (no RTC: the unix port), corrected from its gateway's (linkhello.set_clock, LINK.md §3.2).
EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0
# Ports built with single-precision floats can't hold epoch seconds (24-bit mantissa): send whole
# seconds as an int there; the codec encodes an int into a double exactly.
_DOUBLE = 1.0 + 2.0 ** -30 != 1.0


def now():
    """Seconds since 1970 for TaskStatus.timestamp (a double on the wire)."""
    if _DOUBLE:
        return time.time_ns() / 1e9 + EPOCH if hasattr(time, "time_ns") else time.time() + EPOCH
    return int(time.time()) + EPOCH


def is_terminal(state):
    return state in (_TASK_FINISHED, _TASK_FAILED, _TASK_KILLED, _TASK_ERROR,
                     _TASK_LOST, _TASK_DROPPED, _TASK_GONE, _TASK_GONE_BY_OPERATOR)


class Stream:
    def __init__(self, fid, tid):
        self.fid = fid
        self.tid = tid
        self.pending = []      # update dicts, oldest (the one in flight) first
        self.latest = None     # newest state generated: StatusUpdate.latest_state
        self.terminal = False  # a terminal update was generated; nothing may follow it
        self.due = None        # ticks_ms when the head is (re)sent; None = not yet sent
        self.backoff = 0


class StatusUpdates:
    """Owned by the agent; `send` is agent.send_to_master(name_id, body) -> bool."""

    no_heap = 0  # sends put off because the update found no heap to be encoded in (an instance slot once one counts)

    def __init__(self, agent, store, retry_min, retry_max):
        self.agent = agent
        self.ready = agent.connected  # may run() send now? (a node: only while it listens, micromesos.node)
        self.store = store
        self.retry_min = int(retry_min * 1000)
        self.retry_max = int(retry_max * 1000)
        self.streams = {}  # (fid, tid) -> Stream
        self.on_terminal_acked = None  # fn(fid, tid): the task may be forgotten
        self._woken = False  # kick()ed since run() last looked
        self._sleeper = None  # run()'s task while it sleeps (kick() rouses it)
        # Journal records not yet on flash, oldest first: (stream, update) or an acked uuid. The list's
        # slots are reused (self._jn of them in use) so the ack path allocates nothing once it has grown.
        self._jq = []
        self._jn = 0
        self._rewrite = False  # the journal must be rewritten from the streams (dropped framework, error)
        self._jbytes = 0  # journal size on flash
        self._jmax = _JOURNAL_MIN  # rewrite it once it has grown past this
        self.sent = 0
        self.acked = 0

    # --- producing updates ---------------------------------------------------------------------

    def update(self, fid, tid, state, source, executor_id=None, reason=None, message=None,
               data=None):
        """Queue a reliable update; False (logged) if the task already had its terminal update."""
        # Never sent by an agent (§3.9): the master owns these, and UNKNOWN can crash it (§2.11).
        if state in (_TASK_UNREACHABLE, _TASK_GONE_BY_OPERATOR, _TASK_UNKNOWN, _TASK_ERROR):
            raise ValueError("an agent must not send state %d" % state)
        key = (fid, tid)
        s = self.streams.get(key)
        if s is None:
            s = self.streams[key] = Stream(fid, tid)
        if s.terminal:
            log.warn("updates", "task %s: update after its terminal update refused", tid)
            return False
        if len(s.pending) >= _MAX_PENDING and not is_terminal(state):
            log.warn("updates", "task %s: %d updates unacknowledged; update dropped", tid, len(s.pending))
            return False
        import os  # here, not a function of its own: one function object less resident

        b = bytearray(os.urandom(16))  # made an RFC-4122 version-4 UUID (the master rejects others, §0.8)
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        u = {"task_id": tid, "state": state, "source": source, "timestamp": now(), "uuid": bytes(b)}
        if executor_id is not None:
            u["executor_id"] = executor_id
        if reason is not None:
            u["reason"] = reason
        if message is not None:
            u["message"] = clip(message)
        if data is not None:
            u["data"] = data
        s.pending.append(u)
        s.latest = state
        s.terminal = is_terminal(state)
        self._journal((s, u))  # written by run() before anything is sent: one write for a burst
        if len(s.pending) == 1:
            s.due = time.ticks_ms()  # head: send now (if connected)
            s.backoff = self.retry_min
        return True

    def encode(self, s, u):
        st = {"task_id": u["task_id"], "state": u["state"], "timestamp": u["timestamp"], "source": u["source"],
              "uuid": u["uuid"]}
        up = {"framework_id": s.fid, "status": st, "timestamp": u["timestamp"], "uuid": u["uuid"],
              "latest_state": s.latest}
        m = {"update": up}
        if self.agent.ids_in_updates:
            st["slave_id"] = up["slave_id"] = self.agent.slave_id
            m["pid"] = self.agent.upid
        for k in ("executor_id", "reason", "message", "data"):
            if k in u:
                st[k] = u[k]
        if "executor_id" in u:
            up["executor_id"] = u["executor_id"]
        return codec.encode_buf(_StatusUpdateMessage, m)  # sent, never kept

    def _send_head(self, s, now_ms):
        """Send the head of s; False if the transport refused it (outbox full): tried again soon, as it
        never left, so its backoff does not grow."""
        try:
            ok = self.agent.send_to_master(_STATUS_UPDATE, self.encode(s, s.pending[0]))
        except MemoryError:  # no heap to encode it now (a small board): offered again soon, as if refused;
            ok = False  # run() must not die of it, or no update would ever go again
            self.no_heap += 1  # counted, not logged (a log line needs heap too): /metrics, the node's wake line
        if not ok:
            s.due = time.ticks_add(now_ms, _REFUSED_MS)
            return False
        self.sent += 1
        s.due = time.ticks_add(now_ms, s.backoff)
        s.backoff = min(s.backoff * 2, self.retry_max)
        return True

    # --- acknowledgements ------------------------------------------------------------------------

    def ack(self, fid, tid, uuid):
        """Advance the stream if `uuid` is its head; duplicates and strays are ignored."""
        s = self.streams.get((fid, tid))
        if s is None or not s.pending or s.pending[0]["uuid"] != uuid:
            log.debug("updates", "ack for %s ignored (duplicate or unknown)", tid)
            return False
        self.acked += 1
        self._journal(uuid)
        if self._advance(s):
            if self.on_terminal_acked:
                self.on_terminal_acked(fid, tid)
        elif s.pending:
            s.due = time.ticks_ms()  # the next one goes out now
            s.backoff = self.retry_min
        return True

    def _advance(self, s):
        """Drop the head of s; True if that ended the stream (its terminal update is acknowledged)."""
        head = s.pending.pop(0)
        if not s.pending and is_terminal(head["state"]):
            del self.streams[(s.fid, s.tid)]
            return True
        return False

    # --- connection changes --------------------------------------------------------------------

    def resume(self, fid=None):
        """After (re-)registration or UpdateFrameworkMessage: resend every head now (§2.7)."""
        t = time.ticks_ms()
        for s in self.streams.values():
            if s.pending and (fid is None or s.fid == fid):
                s.due = t
                s.backoff = self.retry_min
        self.kick()

    def kick(self):
        """run() looks now (a record queued, the transport listens again: a node's wake): heads already due
        go now; none is made due early (its ack may be on its way) and no backoff restarts, unlike resume()."""
        self._woken = True
        rouse(self._sleeper)

    def drop_framework(self, fid):
        for key in list(self.streams):
            if key[0] == fid:
                del self.streams[key]
        self._rewrite = True  # by run(), like every journal write (see flush())
        self.kick()

    def clear(self):
        """A new identity owns no updates: the journal goes now (rare: boot, ShutdownMessage)."""
        self.streams = {}
        self._drop_queue()
        self._rewrite = False
        self.store.delete(JOURNAL)
        self._jbytes = 0

    def unacked(self, fid, tid):
        """(state, uuid) of the oldest unacknowledged update, for Task.status_update_* (§3.12)."""
        s = self.streams.get((fid, tid))
        if s and s.pending:
            return s.pending[0]["state"], s.pending[0]["uuid"]
        return None

    def latest(self, fid, tid):
        s = self.streams.get((fid, tid))
        return s.latest if s else None

    def pending_count(self):
        n = 0
        for s in self.streams.values():
            n += len(s.pending)
        return n

    # --- the retry loop: one long-lived task ------------------------------------------------------

    # The only place the journal is written. Handlers (ack(), update(), the ping) never touch flash:
    # they queue a record and kick() run(). The ping handler queues its pong in the master's outbox,
    # which wakes that destination's sender task. asyncio's run queue is stable (FIFO among tasks due
    # at the same tick), so sleep_ms(0) puts this task behind every task made runnable so far, e.g. a
    # sender woken by a ping read in the same segment as an ack: that pong reaches the socket before
    # the write starts. Only a ping arriving during a write waits for it, and that write is one small
    # append per burst (a rewrite every few KB). It always precedes this task's sends: an update is on
    # flash before it goes to the master, as the real agent checkpoints before forwarding (§2.7).

    def flush(self):
        """Put the queued journal records on flash: one append for a burst, or a rewrite when the
        journal has grown past its bound or was marked for one. A rewrite whose code can't be loaded
        now (no heap) is an append instead, and tried again at the next flush. A failed write is logged
        and the journal rewritten at the next turn; updates are still sent (a lost reboot guarantee is
        better than a board that never reports again)."""
        if not (self._jn or self._rewrite):
            return
        try:
            if (self._rewrite or self._jbytes >= self._jmax) and self._compact():
                return
            if self._jn:
                self._jbytes += self.store.append(JOURNAL, self._queued())
        except (OSError, MemoryError) as e:
            log.error("updates", "journal write failed (%r); rewriting it", e)
            self._drop_queue()
            self._rewrite = True

    def _compact(self):
        # The journal rewritten with only the live records; False if its code can't be loaded now.
        j = _load_journal(False)
        if j is None:
            return False
        try:
            self._rewrite = False
            self._drop_queue()  # the rewrite holds everything the queue did
            n = j.rewrite(self)
        finally:
            j = None
            drop("micromesos.journal")
        self._jbytes = n
        self._jmax = max(_JOURNAL_MIN, 2 * n)
        return True

    async def run(self):
        while True:
            if self._jn or self._rewrite:
                await asyncio.sleep_ms(0)  # pongs queued in this turn leave first (see above)
                self.flush()
            t = time.ticks_ms()
            wait = self.retry_max
            if self.ready():
                full = False  # the outbox refused one: the rest wait for the next round unencoded
                for s in list(self.streams.values()):
                    if s.pending and s.due is not None:
                        if time.ticks_diff(s.due, t) <= 0:
                            if full:
                                s.due = time.ticks_add(t, _REFUSED_MS)
                            else:
                                full = not self._send_head(s, t)
                        wait = min(wait, max(time.ticks_diff(s.due, t), 0))
            if self._woken:  # kicked while it ran: look again after one turn of the loop
                self._woken = False
                wait = 0
            # Not wait_for_ms(an Event): a task and closures per turn (~500 B); kick() rouses this sleep.
            self._sleeper = asyncio.current_task()
            try:
                await asyncio.sleep_ms(max(wait, 1))
            finally:
                self._sleeper = None

    # --- journal -------------------------------------------------------------------------------

    def _journal(self, rec):
        q = self._jq
        if self._jn < len(q):
            q[self._jn] = rec
        else:
            q.append(rec)
        self._jn += 1
        self.kick()

    def _drop_queue(self):
        q = self._jq
        for i in range(self._jn):
            q[i] = None  # the slots stay; what they held may go
        self._jn = 0

    def _queued(self):
        # The queued records as the store's JSON lines will hold them: a burst (tasks starting together) can
        # be many KB, and the store streams what it can't join in one block (no MemoryError on a fragmented
        # heap).
        q = self._jq
        out = []
        for i in range(self._jn):
            r = q[i]
            out.append([1, r.hex()] if isinstance(r, bytes) else update_record(r[0], r[1]))  # an ack: its uuid
        self._drop_queue()
        return out

    def recover(self):
        """Rebuild the streams from the journal (micromesos.journal, loaded for it: at boot, where a
        MemoryError is the boot's), then rewrite it with only what is live.
        -> how many unacknowledged updates were recovered."""
        j = _load_journal(True)
        try:
            n = j.recover(self)
            self._rewrite = True
            self.flush()  # its rewrite finds the module still loaded
        finally:
            j = None
            drop("micromesos.journal")
        return n


def _load_journal(must):
    """micromesos.journal for one call (then dropped). With the heap short: a collection and a second
    try; then MemoryError if `must`, else None (logged: the caller goes on without it, tries later)."""
    for attempt in range(2):
        try:
            from . import journal
            return journal
        except MemoryError:
            drop("micromesos.journal")  # whatever the failed import left
            import gc

            gc.collect()
            if attempt and must:
                raise
    log.error("updates", "no heap to load the journal's rewrite: appended instead, rewritten later")
    return None


def clip(message):
    """TaskStatus.message as it may be sent: at most MAX_MESSAGE bytes of UTF-8; a longer one is cut on a
    character boundary and ends with "… [truncated N bytes]" (N: how many bytes were dropped)."""
    if not isinstance(message, str):
        message = str(message)
    if len(message) <= MAX_MESSAGE // 4:
        return message  # at most 4 bytes a character: fits without encoding it
    b = message.encode()
    if len(b) <= MAX_MESSAGE:
        return message
    cut = MAX_MESSAGE - _MARK
    while cut and b[cut] & 0xC0 == 0x80:
        cut -= 1  # a continuation byte: the character starts further back
    try:
        head = b[:cut].decode()
    except UnicodeError:
        head, cut = "", 0
    return head + "\u2026 [truncated %d bytes]" % (len(b) - cut)


def update_record(s, u):
    """The journal's record of update u of stream s (micromesos.journal)."""
    d = u.get("data")
    return [_UPDATE, s.fid, s.tid, u["state"], u["source"], u["timestamp"], u["uuid"].hex(),
            u.get("executor_id"), u.get("reason"), u.get("message"), None if d is None else d.hex()]
