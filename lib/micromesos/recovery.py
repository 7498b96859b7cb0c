# The agent's identity across reboots and the master's rare orders that change it: recovery from the
# checkpoint at boot, starting as a new agent, ShutdownMessage, UpdateFrameworkMessage and
# CheckpointResourcesMessage (PROTOCOL.md §2.2, §2.6). MIT licence. Split from registrar.py so that a
# registration (registrar.py) loads none of this: agent.py imports it for one call and drops it
# (Agent.cold(..., mod=_RECOVERY)). Every function here takes the Agent first.
from micropython import const

from . import codec, log

_CheckpointResourcesMessage = const(71)  # schema.CheckpointResourcesMessage
_ShutdownMessage = const(75)  # schema.ShutdownMessage
_UpdateFrameworkMessage = const(70)  # schema.UpdateFrameworkMessage
_FW_PARTITION_AWARE = const(5)  # schema.FW_PARTITION_AWARE
_FrameworkInfo = const(23)  # schema.FrameworkInfo
_REASON_RECONCILIATION = const(9)  # schema.REASON_RECONCILIATION
_SOURCE_SLAVE = const(1)  # schema.SOURCE_SLAVE
_TASK_DROPPED = const(9)  # schema.TASK_DROPPED
_TASK_LOST = const(5)  # schema.TASK_LOST

_CHECKPOINT = "agent"
_W = "agent"


# --- the master's rare messages (dispatched by Agent._on_message) -----------------------------------

def shutdown(a, msg):
    m = codec.decode(_ShutdownMessage, msg.buf, msg.start, msg.end)
    forget(a, "ShutdownMessage: %s" % m.get("message", ""))


def forget(a, why):
    from .agent import TERMINATING  # loaded: it called us

    log.warn(_W, "%s: stopping all tasks and registering as a new agent", why)
    a.state = TERMINATING
    start_fresh(a)
    a.become_disconnected(why)


def update_framework(a, msg):
    m = codec.decode(_UpdateFrameworkMessage, msg.buf, msg.start, msg.end)
    fid = m["framework_id"]
    if "framework_info" in m and fid in a.frameworks:
        a.frameworks[fid] = m["framework_info"]
        a.checkpoint()
    a.updates.resume(fid)


def checkpoint_resources(a, msg):
    m = codec.decode(_CheckpointResourcesMessage, msg.buf, msg.start, msg.end)
    a.checkpointed = m.get("resources", [])
    a.checkpoint()


# --- boot: recovery from the checkpoint -----------------------------------------------------------

def boot(a):
    """Recover, then log what the agent advertises (Agent.start)."""
    from .resfmt import fmt  # its only use: not resident after boot (tasks.drop_code)

    recover(a)
    log.info(_W, "agent %s at %s, master %s, resources %s", a.slave_id or "(new)", a.upid, a.master,
             ";".join(fmt(n, v) for n, v in a.totals))


def recover(a):
    """The identity, frameworks and checkpointed resources from flash, then the update streams and the
    tasks. -> True if an identity was recovered; False: a new agent (nothing of an old one kept)."""
    data = a.store.load(_CHECKPOINT)
    if data is None:
        start_fresh(a)
        return False
    try:
        if data.get("upid") != a.upid:
            # §1.6: the pid can't change for an agent id; after an address change the master would
            # answer ShutdownMessage, so start as a new agent right away.
            log.warn(_W, "address changed (%s -> %s): registering as a new agent", data.get("upid"), a.upid)
            start_fresh(a)
            return False
        a.slave_id = data["slave_id"]
        a.frameworks = {k: bytes.fromhex(v) for k, v in data["frameworks"].items()}
        a.checkpointed = [bytes.fromhex(r) for r in data["checkpointed_resources"]]
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        log.error(_W, "agent checkpoint unreadable (%s); registering as a new agent", e)
        start_fresh(a)
        return False
    n = a.updates.recover()
    if a.tasks is not None:
        a.tasks.recover()  # after the streams: it reports what did not survive the reboot
    log.info(_W, "recovered agent %s (%d unacknowledged status updates)", a.slave_id, n)
    return True


def start_fresh(a):
    # A new agent owns no tasks and no updates: whatever an old identity left on flash goes, so it can't
    # be reported under the new id after the next reboot.
    if a.tasks is not None:
        a.tasks.stop_all()
    a.updates.clear()
    a.slave_id = None
    a.frameworks = {}
    a.checkpointed = []
    a.drain_config = None  # a drain was the old identity's (drain.py)
    a.store.delete(_CHECKPOINT)
    a.store.delete("drain")


def reconcile(a, recs):
    """SlaveReregisteredMessage's reconciliations (registrar.reregistered): a task the master believes runs
    here and the agent does not know is reported lost (dropped to a partition-aware framework)."""
    for rec in recs:
        fid = rec["framework_id"]
        aware = False
        if "framework" in rec:
            fw = codec.decode(_FrameworkInfo, rec["framework"])
            aware = any(c.get("type") == _FW_PARTITION_AWARE for c in fw.get("capabilities", ()))
        for st in rec.get("statuses", ()):
            tid = st["task_id"]
            if (a.tasks and a.tasks.known(fid, tid)) or a.updates.latest(fid, tid) is not None:
                continue
            log.info(_W, "reconciliation: task %s unknown here", tid)
            a.updates.update(fid, tid, _TASK_DROPPED if aware else _TASK_LOST,
                             _SOURCE_SLAVE, reason=_REASON_RECONCILIATION,
                             message="Reconciliation: task unknown to the agent")
