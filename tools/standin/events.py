# The stand-in master's event record: every message seen and sent, every drop, crash and state change.
# MIT licence. Tests read it to assert what a real Mesos 1.12 master would have done with the agent's bytes.
import json
import time

from .model import TASK_STATES
from .pb import jsonable

RECV, SEND = "recv", "send"
DROPPED = "dropped"   # the real master would drop this silently (PROTOCOL.md §2.12)
CRASH = "crash"       # the real master would CHECK-fail on this (§2.11)
WARN = "warn"         # accepted by the real master, but a mistake worth seeing
INFO = "info"         # the master's own state changes (agent registered, task lost, ...)
REFUSED = "refused"   # a fixture command the real master would not have turned into a message
ERROR = "error"       # a bug in this fixture while handling a message (never expected; fails tests too)
PROBLEMS = (DROPPED, CRASH, ERROR)


class Event:
    __slots__ = ("seq", "time", "kind", "name", "src", "dst", "body", "reason", "agent")

    def __init__(self, seq, kind, name=None, src=None, dst=None, body=None, reason=None, agent=None):
        self.seq = seq
        self.time = time.time()
        self.kind = kind
        self.name = name      # short message name, e.g. "SlaveRegisteredMessage"
        self.src = src        # sender UPID
        self.dst = dst        # receiver UPID
        self.body = body      # decoded protobuf dict (bytes kept as bytes)
        self.reason = reason
        self.agent = agent    # agent id, when one is concerned

    def to_json(self):
        d = {"seq": self.seq, "time": self.time, "kind": self.kind}
        for k in ("name", "src", "dst", "reason", "agent"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.body is not None:
            d["body"] = jsonable(self.body)
        return d

    def matches(self, what, kind=None):
        if kind is not None and self.kind != kind:
            return False
        if callable(what):
            return bool(what(self))
        return self.name == what or self.kind == what

    def line(self, t0=0.0):
        """One human-readable line, for `make sim` and failing-test output."""
        t = "%9.3f" % (self.time - t0)
        if self.kind in (RECV, SEND):
            arrow = "<-" if self.kind == RECV else "->"
            peer = self.src if self.kind == RECV else self.dst
            if self.kind == RECV and self.dst not in (None, "master"):
                peer += " to " + self.dst  # a pong's observer, the §0.1 trap made visible
            return "%s %s %-40s %s %s" % (t, arrow, self.name, peer, summarize(self.name, self.body))
        what = self.name + ": " if self.name else ""
        return "%s %s: %s%s" % (t, self.kind.upper(), what, self.reason or "")

    def __repr__(self):
        return "<Event %s>" % self.line()


def _sid(x):
    return x.get("value") if isinstance(x, dict) else x


def _st(s):
    return TASK_STATES.get(s, str(s))


def summarize(name, body):
    """A few key fields of a message, never the whole body."""
    if not body:
        return ""
    b = body
    try:
        if name == "PingSlaveMessage":
            return "connected=%s" % str(b.get("connected")).lower()
        if name in ("SlaveRegisteredMessage", "SlaveReregisteredMessage"):
            n = len(b.get("reconciliations", []))
            return "slave_id=%s%s" % (_sid(b.get("slave_id")), " reconciliations=%d" % n if n else "")
        if name in ("RegisterSlaveMessage", "ReregisterSlaveMessage"):
            s = b.get("slave", {})
            extra = " id=%s tasks=%d" % (_sid(s.get("id")), len(b.get("tasks", []))) if "id" in s else ""
            return "hostname=%s version=%s%s" % (s.get("hostname"), b.get("version"), extra)
        if name == "StatusUpdateMessage":
            u = b.get("update", {})
            st = u.get("status", {})
            return "task=%s state=%s uuid=%s" % (_sid(st.get("task_id")), _st(st.get("state")),
                                                 (u.get("uuid") or b"").hex()[:8])
        if name == "StatusUpdateAcknowledgementMessage":
            return "task=%s uuid=%s" % (_sid(b.get("task_id")), (b.get("uuid") or b"").hex()[:8])
        if name == "RunTaskMessage":
            t = b.get("task", {})
            return "task=%s command=%r" % (_sid(t.get("task_id")), t.get("command", {}).get("value"))
        if name == "RunTaskGroupMessage":
            return "tasks=%s" % ",".join(_sid(t.get("task_id")) for t in b.get("task_group", {}).get("tasks", []))
        if name == "KillTaskMessage":
            return "task=%s" % _sid(b.get("task_id"))
        if "framework_id" in b:
            return "framework=%s" % _sid(b.get("framework_id"))
    except (AttributeError, TypeError):
        pass
    return ""


class EventLog:
    """Append-only list with an optional JSON-lines file and a print callback."""

    def __init__(self, path=None, on_event=None):
        self.events = []
        self._file = open(path, "a", buffering=1) if path else None
        self._on_event = on_event

    def add(self, kind, **kw):
        ev = Event(len(self.events), kind, **kw)
        self.events.append(ev)
        if self._file is not None:
            self._file.write(json.dumps(ev.to_json(), sort_keys=True) + "\n")
        if self._on_event is not None:
            self._on_event(ev)
        return ev

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
