# Status update manager: one stream per task, one update in flight, resent until acknowledged.
# MIT licence. Mirrors the real agent's task_status_update_manager (PROTOCOL.md §2.7).
import os
import time

import asyncio
from micropython import const

from . import codec, log, schema
from .names import STATUS_UPDATE

_TERMINAL = (schema.TASK_FINISHED, schema.TASK_FAILED, schema.TASK_KILLED, schema.TASK_ERROR,
             schema.TASK_LOST, schema.TASK_DROPPED, schema.TASK_GONE, schema.TASK_GONE_BY_OPERATOR)
# Never sent by an agent (§3.9): the master owns these, and UNKNOWN can crash it (§2.11).
_FORBIDDEN = (schema.TASK_UNREACHABLE, schema.TASK_GONE_BY_OPERATOR, schema.TASK_UNKNOWN,
              schema.TASK_ERROR)
_CHECKPOINT = "updates"
_MAX_PENDING = const(16)  # updates queued per task; a task that floods ctx.update() is refused

# Seconds between 1970 and the port's epoch (2000 on some embedded ports).
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0
# Ports built with single-precision floats can't hold epoch seconds (24-bit mantissa): send whole
# seconds as an int there; the codec encodes an int into a double exactly.
_DOUBLE = 1.0 + 2.0 ** -30 != 1.0


def now():
    """Seconds since 1970 for TaskStatus.timestamp (a double on the wire)."""
    if _DOUBLE:
        return time.time_ns() / 1e9 + _EPOCH if hasattr(time, "time_ns") else time.time() + _EPOCH
    return int(time.time()) + _EPOCH


def uuid4():
    """16 random bytes made an RFC-4122 version-4 UUID (the master rejects others, §0.8)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return bytes(b)


def is_terminal(state):
    return state in _TERMINAL


class _Stream:
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

    def __init__(self, agent, store, retry_min, retry_max):
        self.agent = agent
        self.store = store
        self.retry_min = int(retry_min * 1000)
        self.retry_max = int(retry_max * 1000)
        self.streams = {}  # (fid, tid) -> _Stream
        self.on_terminal_acked = None  # fn(fid, tid): the task may be forgotten
        self._wake = asyncio.Event()
        self._dirty = False  # streams changed since the last checkpoint
        self.sent = 0
        self.acked = 0

    # --- producing updates ---------------------------------------------------------------------

    def update(self, fid, tid, state, source, executor_id=None, reason=None, message=None,
               data=None):
        """Queue a reliable update; False (logged) if the task already had its terminal update."""
        if state in _FORBIDDEN:
            raise ValueError("an agent must not send state %d" % state)
        key = (fid, tid)
        s = self.streams.get(key)
        if s is None:
            s = self.streams[key] = _Stream(fid, tid)
        if s.terminal:
            log.warn("updates", "task %s: update after its terminal update refused", tid)
            return False
        if len(s.pending) >= _MAX_PENDING and not is_terminal(state):
            log.warn("updates", "task %s: %d updates unacknowledged; update dropped", tid, len(s.pending))
            return False
        u = {"task_id": tid, "state": state, "source": source, "timestamp": now(), "uuid": uuid4()}
        if executor_id is not None:
            u["executor_id"] = executor_id
        if reason is not None:
            u["reason"] = reason
        if message is not None:
            u["message"] = message
        if data is not None:
            u["data"] = data
        s.pending.append(u)
        s.latest = state
        s.terminal = is_terminal(state)
        self._dirty = True  # written by run() before anything is sent: one write for a burst
        self._wake.set()
        if len(s.pending) == 1:
            s.due = time.ticks_ms()  # head: send now (if connected)
            s.backoff = self.retry_min
            self._wake.set()
        return True

    def encode(self, s, u):
        st = {"task_id": u["task_id"], "state": u["state"], "slave_id": self.agent.slave_id,
              "timestamp": u["timestamp"], "source": u["source"], "uuid": u["uuid"]}
        up = {"framework_id": s.fid, "slave_id": self.agent.slave_id, "status": st,
              "timestamp": u["timestamp"], "uuid": u["uuid"], "latest_state": s.latest}
        for k in ("executor_id", "reason", "message", "data"):
            if k in u:
                st[k] = u[k]
        if "executor_id" in u:
            up["executor_id"] = u["executor_id"]
        return codec.encode(schema.StatusUpdateMessage, {"update": up, "pid": self.agent.upid})

    def _send_head(self, s, now_ms):
        if not s.pending or not self.agent.connected():
            return
        if self.agent.send_to_master(STATUS_UPDATE, self.encode(s, s.pending[0])):
            self.sent += 1
        s.due = time.ticks_add(now_ms, s.backoff)
        s.backoff = min(s.backoff * 2, self.retry_max)

    # --- acknowledgements ------------------------------------------------------------------------

    def ack(self, fid, tid, uuid):
        """Advance the stream if `uuid` is its head; duplicates and strays are ignored."""
        s = self.streams.get((fid, tid))
        if s is None or not s.pending or s.pending[0]["uuid"] != uuid:
            log.debug("updates", "ack for %s ignored (duplicate or unknown)", tid)
            return False
        head = s.pending.pop(0)
        self.acked += 1
        if not s.pending and is_terminal(head["state"]):
            del self.streams[(fid, tid)]
            if self.on_terminal_acked:
                self.on_terminal_acked(fid, tid)
        elif s.pending:
            s.due = time.ticks_ms()  # the next one goes out now
            s.backoff = self.retry_min
        self._dirty = True
        self._wake.set()
        return True

    # --- connection changes --------------------------------------------------------------------

    def resume(self, fid=None):
        """After (re-)registration or UpdateFrameworkMessage: resend every head now (§2.7)."""
        t = time.ticks_ms()
        for s in self.streams.values():
            if s.pending and (fid is None or s.fid == fid):
                s.due = t
                s.backoff = self.retry_min
        self._wake.set()

    def drop_framework(self, fid):
        for key in [k for k in self.streams if k[0] == fid]:
            del self.streams[key]
        self.checkpoint()

    def clear(self):
        self.streams = {}
        self.checkpoint()

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
        return sum(len(s.pending) for s in self.streams.values())

    # --- the retry loop: one long-lived task ------------------------------------------------------

    def flush(self):
        """Write the checkpoint if anything changed (before any update leaves the board)."""
        if self._dirty:
            self.checkpoint()

    async def run(self):
        while True:
            self.flush()
            t = time.ticks_ms()
            wait = self.retry_max
            if self.agent.connected():
                for s in list(self.streams.values()):
                    if s.pending and s.due is not None:
                        if time.ticks_diff(s.due, t) <= 0:
                            self._send_head(s, t)
                        wait = min(wait, max(time.ticks_diff(s.due, t), 0))
            self._wake.clear()
            try:
                await asyncio.wait_for_ms(self._wake.wait(), max(wait, 1))
            except asyncio.TimeoutError:
                pass

    # --- checkpoint ----------------------------------------------------------------------------

    def checkpoint(self):
        self._dirty = False
        out = []
        for s in self.streams.values():
            out.append([s.fid, s.tid, s.latest, s.terminal, [_to_json(u) for u in s.pending]])
        self.store.save(_CHECKPOINT, out)

    def recover(self):
        data = self.store.load(_CHECKPOINT)
        if not data:
            return 0
        n = 0
        try:
            for fid, tid, latest, terminal, pending in data:
                s = _Stream(fid, tid)
                s.latest, s.terminal = latest, terminal
                s.pending = [_from_json(u) for u in pending]
                if s.pending:
                    s.due = time.ticks_ms()
                    s.backoff = self.retry_min
                self.streams[(fid, tid)] = s
                n += len(s.pending)
        except (ValueError, TypeError, KeyError) as e:
            log.error("updates", "update checkpoint unreadable (%s); starting without it", e)
            self.streams = {}
            return 0
        return n


def _to_json(u):
    out = dict(u)
    out["uuid"] = u["uuid"].hex()
    if "data" in u:
        out["data"] = u["data"].hex()
    return out


def _from_json(u):
    u["uuid"] = bytes.fromhex(u["uuid"])
    if "data" in u:
        u["data"] = bytes.fromhex(u["data"])
    return u


