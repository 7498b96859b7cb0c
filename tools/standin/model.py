# The stand-in master's bookkeeping: agents, frameworks, tasks, resource pools, JSON file helpers.
# MIT licence. Enum numbers are the protobuf ones (PROTOCOL.md §3.5, §3.7, §3.9); scalars count in 1/1000 (§4.1).
import json
import math
import os

# TaskState (§3.9)
TASK_STATES = {
    6: "TASK_STAGING", 0: "TASK_STARTING", 1: "TASK_RUNNING", 8: "TASK_KILLING", 2: "TASK_FINISHED",
    3: "TASK_FAILED", 4: "TASK_KILLED", 7: "TASK_ERROR", 5: "TASK_LOST", 9: "TASK_DROPPED",
    10: "TASK_UNREACHABLE", 11: "TASK_GONE", 12: "TASK_GONE_BY_OPERATOR", 13: "TASK_UNKNOWN",
}
STATE_IDS = {v: k for k, v in TASK_STATES.items()}
TASK_STAGING, TASK_RUNNING, TASK_KILLED, TASK_LOST = 6, 1, 4, 5
TASK_UNREACHABLE, TASK_UNKNOWN = 10, 13
TERMINAL = {2, 3, 4, 7, 5, 9, 11, 12}  # protobuf_utils.cpp isTerminalState

SOURCE_MASTER = 0
REASON_FRAMEWORK_REMOVED, REASON_RECONCILIATION, REASON_SLAVE_DISCONNECTED = 3, 9, 10
REASON_SLAVE_REMOVED, REASON_SLAVE_REREGISTERED = 11, 32

# Value.Type (§3.2)
SCALAR, RANGES, SET, TEXT = 0, 1, 2, 3

# SlaveInfo.Capability.Type (§3.5)
AGENT_CAPS = {1: "MULTI_ROLE", 2: "HIERARCHICAL_ROLE", 3: "RESERVATION_REFINEMENT", 4: "RESOURCE_PROVIDER",
              5: "RESIZE_VOLUME", 6: "AGENT_OPERATION_FEEDBACK", 7: "AGENT_DRAINING",
              8: "TASK_RESOURCE_LIMITS"}
AGENT_MULTI_ROLE, AGENT_RESERVATION_REFINEMENT, AGENT_RESOURCE_PROVIDER = 1, 3, 4

# FrameworkInfo.Capability.Type (§3.7)
FRAMEWORK_CAPS = {"REVOCABLE_RESOURCES": 1, "TASK_KILLING_STATE": 2, "GPU_RESOURCES": 3,
                  "SHARED_RESOURCES": 4, "PARTITION_AWARE": 5, "MULTI_ROLE": 6,
                  "RESERVATION_REFINEMENT": 7, "REGION_AWARE": 8}
FW_PARTITION_AWARE, FW_MULTI_ROLE = 5, 6
# What mesos-execute sends, in its order (captured RunTaskMessage.framework).
MESOS_EXECUTE_CAPS = ("RESERVATION_REFINEMENT", "TASK_KILLING_STATE", "REVOCABLE_RESOURCES", "PARTITION_AWARE")

ACK_POLICIES = ("auto", "manual", "never")


def idv(x):
    """An ID field as a str whether the codec hands us 'x' or {'value': 'x'}."""
    return x.get("value") if isinstance(x, dict) else x


def millis(v):
    return int(math.floor(v * 1000 + 0.5))  # llround(v * 1000) for v >= 0 (values.cpp)


def parse_resources(text, role="*"):
    """'cpus:0.1;mem:32;sensors:{temp0};ports:[31000-31001]' -> Resource dicts carrying allocation_info,
    in the given order, as the master puts them in TaskInfo (§2.6). ValueError on bad syntax."""
    out = []
    for part in (p.strip() for p in (text or "").split(";")):
        if not part:
            continue
        name, sep, val = part.partition(":")
        name, val = name.strip(), val.strip()
        if not sep or not name or not val:
            raise ValueError("bad resource %r" % part)
        if val.startswith("{") and val.endswith("}"):
            items = [i.strip() for i in val[1:-1].split(",") if i.strip()]
            r = {"name": name, "type": SET, "set": {"item": items}}
        elif val.startswith("[") and val.endswith("]"):
            rng = []
            for span in val[1:-1].split(","):
                b, _, e = span.strip().partition("-")
                rng.append({"begin": int(b), "end": int(e or b)})
            r = {"name": name, "type": RANGES, "ranges": {"range": rng}}
        else:
            r = {"name": name, "type": SCALAR, "scalar": {"value": float(val)}}
        r["allocation_info"] = {"role": role}
        out.append(r)
    if not out:
        raise ValueError("no resources in %r" % (text,))
    return out


def format_resources(resources):
    parts = []
    for r in resources:
        t = r.get("type")
        if t == SCALAR:
            parts.append("%s:%s" % (r["name"], ("%.3f" % r["scalar"]["value"]).rstrip("0").rstrip(".")))
        elif t == SET:
            parts.append("%s:{%s}" % (r["name"], ",".join(r.get("set", {}).get("item", []))))
        elif t == RANGES:
            parts.append("%s:[%s]" % (r["name"], ",".join(
                "%d-%d" % (x["begin"], x["end"]) for x in r.get("ranges", {}).get("range", []))))
    return ";".join(parts)


class Pool:
    """Resource amounts by name (roles ignored: the fixture has one role). Scalars in 1/1000 units."""

    def __init__(self, resources=()):
        self.scalars, self.sets, self.ranges = {}, {}, {}
        for r in resources:
            self.add(r)

    def add(self, r):
        n, t = r["name"], r.get("type")
        if t == SCALAR:
            self.scalars[n] = self.scalars.get(n, 0) + millis(r["scalar"]["value"])
        elif t == SET:
            self.sets.setdefault(n, set()).update(r.get("set", {}).get("item", []))
        elif t == RANGES:
            cur = self.ranges.setdefault(n, [])
            cur.extend((x["begin"], x["end"]) for x in r.get("ranges", {}).get("range", []))
            self.ranges[n] = _merge(cur)

    def sub(self, r):
        n, t = r["name"], r.get("type")
        if t == SCALAR:
            self.scalars[n] = self.scalars.get(n, 0) - millis(r["scalar"]["value"])
        elif t == SET:
            self.sets.get(n, set()).difference_update(r.get("set", {}).get("item", []))
        elif t == RANGES:
            for x in r.get("ranges", {}).get("range", []):
                self.ranges[n] = _cut(self.ranges.get(n, []), x["begin"], x["end"])

    def minus(self, other):
        """A new pool: self less `other` (another Pool)."""
        out = Pool()
        out.scalars = {n: v - other.scalars.get(n, 0) for n, v in self.scalars.items()}
        out.sets = {n: v - other.sets.get(n, set()) for n, v in self.sets.items()}
        out.ranges = dict(self.ranges)
        for n, spans in other.ranges.items():
            for b, e in spans:
                out.ranges[n] = _cut(out.ranges.get(n, []), b, e)
        return out

    def lacks(self, resources):
        """None if every resource fits in this pool, else a human-readable reason."""
        need = Pool(resources)
        for n, v in need.scalars.items():
            if v > self.scalars.get(n, 0):
                return "%s: need %g, free %g" % (n, v / 1000, self.scalars.get(n, 0) / 1000)
        for n, items in need.sets.items():
            missing = items - self.sets.get(n, set())
            if missing:
                return "%s: items %s not free" % (n, ",".join(sorted(missing)))
        for n, spans in need.ranges.items():
            for b, e in spans:
                if not any(fb <= b and e <= fe for fb, fe in self.ranges.get(n, [])):
                    return "%s: range [%d-%d] not free" % (n, b, e)
        return None

    def summary(self):
        out = {n: v / 1000 for n, v in sorted(self.scalars.items())}
        out.update({n: "{%s}" % ",".join(sorted(v)) for n, v in sorted(self.sets.items())})
        out.update({n: "[%s]" % ",".join("%d-%d" % s for s in v) for n, v in sorted(self.ranges.items())})
        return out


def _merge(spans):
    out = []
    for b, e in sorted(spans):
        if out and b <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((b, e))
    return out


def _cut(spans, b, e):
    out = []
    for fb, fe in spans:
        if fe < b or fb > e:
            out.append((fb, fe))
            continue
        if fb < b:
            out.append((fb, b - 1))
        if fe > e:
            out.append((e + 1, fe))
    return out


class Framework:
    def __init__(self, info, ack="auto"):
        self.info = info          # FrameworkInfo dict, with id
        self.id = idv(info["id"])
        self.ack = ack
        self.completed = False
        self.pid = "@0.0.0.0:0"   # an HTTP framework's empty UPID, as the master prints it (§2.6)

    def caps(self):
        return {c.get("type") for c in self.info.get("capabilities", [])}

    @property
    def partition_aware(self):
        return FW_PARTITION_AWARE in self.caps()

    def roles(self):
        if FW_MULTI_ROLE in self.caps():
            return list(self.info.get("roles", []))
        return [self.info.get("role", "*")]


class Task:
    def __init__(self, framework_id, task_id, agent_id, name, resources, executor_id=None, state=TASK_STAGING):
        self.framework_id = framework_id
        self.task_id = task_id
        self.agent_id = agent_id
        self.name = name
        self.resources = resources    # Resource dicts (with allocation_info), as sent
        self.executor_id = executor_id
        self.state = state
        self.status_update_state = None  # state and uuid of the latest update received (Master::forward)
        self.status_update_uuid = None
        self.pending_acks = []        # [(uuid, state)] waiting for a manual ack
        self.kill_requested = False   # Slave::killedTasks: KillTask sent again on re-registration (§2.4)
        self.inconsistent_ack_fields = False  # §2.11: status_update_state xor status_update_uuid reported

    @property
    def terminal(self):
        return self.state in TERMINAL

    def to_json(self):
        return {"framework_id": self.framework_id, "task_id": self.task_id, "agent_id": self.agent_id,
                "name": self.name, "state": TASK_STATES.get(self.state, self.state),
                "executor_id": self.executor_id, "resources": format_resources(self.resources),
                "status_update_state": TASK_STATES.get(self.status_update_state),
                "pending_acks": len(self.pending_acks), "kill_requested": self.kill_requested}


class Agent:
    REGISTERED, RECOVERED, UNREACHABLE = "registered", "recovered", "unreachable"
    REMOVED, GONE = "removed", "gone"

    def __init__(self, agent_id, pid, info, capabilities=(), version=""):
        self.id = agent_id
        self.pid = pid                 # where every master message goes (§1.6)
        self.info = info               # SlaveInfo dict with id
        self.capabilities = set(capabilities)
        self.version = version
        self.state = Agent.REGISTERED
        self.connected = False
        self.observer = None           # the live Observer (pings), if any
        self.executors = {}            # (framework_id, executor_id) -> ExecutorInfo dict
        self.checkpointed = []         # master's view of checkpointed resources (sent after case A)
        self.resource_version_uuid = None
        self.reregister_timer = None

    def total(self):
        return Pool(self.info.get("resources", []))

    def to_json(self, used=None):
        out = {"id": self.id, "pid": self.pid, "state": self.state, "connected": self.connected,
               "hostname": self.info.get("hostname"), "version": self.version,
               "capabilities": sorted(AGENT_CAPS.get(c, str(c)) for c in self.capabilities),
               "observer": self.observer.upid if self.observer else None,
               "total": self.total().summary()}
        if used is not None:
            out["used"] = used.summary()
        return out


def save_json(path, obj):
    """Atomic write: a crash mid-write never leaves a half registry behind."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def load_json(path):
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
