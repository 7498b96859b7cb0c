# The stand-in master's registry: known agents, frameworks and tasks, kept across restart() and processes.
# MIT licence. Protobuf parts are stored as hex of their encoded bytes, so what comes back is byte-identical.
from . import pb
from .events import INFO
from .model import Agent, Framework, Task, load_json, save_json


def _hex(name, obj):
    return pb.encode(name, obj).hex()


def _unhex(name, s):
    return pb.decode(name, bytes.fromhex(s))


class Registry:
    """JSON file (--registry) or, without one, an in-memory snapshot that restart() reads back."""

    def __init__(self, master, path=None):
        self.m = master
        self.path = path
        self.snapshot = None

    def save(self):
        m = self.m
        snap = {
            "agents": [{
                "id": a.id, "pid": a.pid, "state": a.state, "version": a.version,
                "capabilities": sorted(a.capabilities), "info": _hex("SlaveInfo", a.info),
                "checkpointed": [_hex("Resource", r) for r in a.checkpointed],
                "executors": [_hex("ExecutorInfo", e) for e in a.executors.values()],
                "resource_version_uuid": pb.jsonable(a.resource_version_uuid),
            } for a in m.agents.values()],
            "frameworks": [{"info": _hex("FrameworkInfo", f.info), "ack": f.ack, "completed": f.completed}
                           for f in m.frameworks.values()],
            "tasks": [{
                "framework_id": t.framework_id, "task_id": t.task_id, "agent_id": t.agent_id, "name": t.name,
                "state": t.state, "executor_id": t.executor_id,
                "resources": [_hex("Resource", r) for r in t.resources],
                "status_update_state": t.status_update_state,
                "status_update_uuid": t.status_update_uuid.hex() if t.status_update_uuid else None,
                "kill_requested": t.kill_requested,
            } for t in m.tasks.values()],
        }
        self.snapshot = snap
        if self.path:
            save_json(self.path, snap)

    def recover(self):
        """Load what a restarted master knows. Registered agents come back as RECOVERED: no link, no
        pings, until they re-register (case B) or the re-register timeout marks them unreachable."""
        m = self.m
        snap = load_json(self.path) if self.path else self.snapshot
        if not snap:
            return
        for d in snap.get("agents", []):
            a = Agent(d["id"], d["pid"], _unhex("SlaveInfo", d["info"]), d.get("capabilities", ()),
                      d.get("version", ""))
            a.state = Agent.RECOVERED if d["state"] in (Agent.REGISTERED, Agent.RECOVERED) else d["state"]
            a.checkpointed = [_unhex("Resource", h) for h in d.get("checkpointed", [])]
            for h in d.get("executors", []):
                ex = _unhex("ExecutorInfo", h)
                a.executors[(ex.get("framework_id"), ex.get("executor_id"))] = ex
            a.resource_version_uuid = pb.from_jsonable(d.get("resource_version_uuid"))
            m.agents[a.id] = a
            if a.state == Agent.RECOVERED:
                m.start_reregister_timer(a, "did not re-register after master failover")
        for d in snap.get("frameworks", []):
            f = Framework(_unhex("FrameworkInfo", d["info"]), d.get("ack", "auto"))
            f.completed = d.get("completed", False)
            m.frameworks[f.id] = f
        for d in snap.get("tasks", []):
            t = Task(d["framework_id"], d["task_id"], d["agent_id"], d["name"],
                     [_unhex("Resource", h) for h in d["resources"]], d.get("executor_id"), d["state"])
            t.status_update_state = d.get("status_update_state")
            u = d.get("status_update_uuid")
            t.status_update_uuid = bytes.fromhex(u) if u else None
            t.kill_requested = d.get("kill_requested", False)
            m.tasks[(t.framework_id, t.task_id)] = t
        m.record(INFO, reason="registry: %d agent(s), %d framework(s), %d task(s)" % (
            len(m.agents), len(m.frameworks), len(m.tasks)))
