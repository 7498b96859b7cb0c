# Draining (operator DRAIN_AGENT, Mesos >= 1.9; PROTOCOL.md §2.8): kill every task, refuse launches till none left.
# MIT licence. As src/slave/slave.cpp Slave::drain, __run, updateDrainStatus. Imported per call (Agent._drain).
from micropython import const

from . import codec, kill, log, names, schema
from .ctx import DONE
from .tasks import DEFAULT_GRACE_MS, grace_ms
_RUN_TASK = const(7)  # names.RUN_TASK
_RUN_TASK_GROUP = const(8)  # names.RUN_TASK_GROUP
_ExecutorInfo = const(38)  # schema.ExecutorInfo
_FW_PARTITION_AWARE = const(5)  # schema.FW_PARTITION_AWARE
_FrameworkInfo = const(23)  # schema.FrameworkInfo
_RunTaskGroupMessage = const(66)  # schema.RunTaskGroupMessage
_RunTaskMessage = const(65)  # schema.RunTaskMessage
_SOURCE_SLAVE = const(1)  # schema.SOURCE_SLAVE
_TASK_DROPPED = const(9)  # schema.TASK_DROPPED
_TASK_LOST = const(5)  # schema.TASK_LOST

# lib/ reads only schema's own globals (tests/test_codec_vectors.py), and these two are not among them:
# their numbers, checked against schema by tests/test_drain.py.
_DRAIN_SLAVE_MESSAGE = const(77)   # schema.DrainSlaveMessage
_REASON_SLAVE_DRAINING = const(34)  # schema.REASON_SLAVE_DRAINING
_CHECKPOINT = "drain"  # agent.drain_config on flash, so a drain outlives a reboot as the real agent's (agent.start)
_W = "agent"
_REFUSED = "Task was received while agent was already draining"  # Slave::__run's words


def handle(a, kind, msg):
    """agent.py's entry: DrainSlaveMessage, a launch while draining, or (kind 0, msg the checkpoint's
    contents) the drain the agent was doing before a reboot."""
    if kind == 0:
        recover(a, msg)
    elif kind == _RUN_TASK or kind == _RUN_TASK_GROUP:
        launch(a, kind, msg)
    else:
        drain(a, codec.decode(_DRAIN_SLAVE_MESSAGE, msg.buf, msg.start, msg.end)["config"])


def drained(a):
    """Nothing of any framework left here: no task record (running, or terminal and not yet
    acknowledged) and no executor (Slave::updateDrainStatus: no frameworks)."""
    r = a.tasks
    return r is None or (not r.live and not r.executors)


def drain(a, cfg):
    """Slave::drain: an agent with nothing to drain has nothing to do; otherwise the DrainConfig is
    checkpointed and every task is killed, with max_grace_period where it is shorter than the task's
    own kill policy (or the task has none). Sent again on every re-registration while draining."""
    if drained(a):
        log.info(_W, "drain: no tasks here, so draining is already complete")
        return
    a.store.save(_CHECKPOINT, {"slave_id": a.slave_id, "config": cfg})
    a.drain_config = cfg
    top = grace_ms(cfg["max_grace_period"]) if "max_grace_period" in cfg else -1
    runner = a.tasks
    n = 0
    for c in list(runner.live.values()):
        if c.phase == DONE:
            continue
        g = c._grace_ms  # -1: the task has no kill policy
        if top >= 0 and (g < 0 or g > top):
            g = top
        kill.stop(runner, c, g if g >= 0 else DEFAULT_GRACE_MS, "the agent is draining")
        n += 1
    log.warn(_W, "draining: %d task(s) killed (grace %s); launches are refused until none is left", n,
             "%d ms at most" % top if top >= 0 else "their own")


def launch(a, kind, msg):
    """A launch while draining: each task TASK_DROPPED (PARTITION_AWARE) or TASK_LOST, REASON_SLAVE_DRAINING
    (Slave::__run), and ExitedExecutorMessage for an executor it would have started. Once nothing is
    left the drain is over, and the launch goes ahead as usual."""
    runner = a.tasks
    if drained(a):
        finish(a)
        runner.handler(kind)(msg)
        return
    one = kind == _RUN_TASK
    m = codec.decode(_RunTaskMessage if one else _RunTaskGroupMessage, msg.buf, msg.start, msg.end)
    infos = [m["task"]] if one else m["task_group"].get("tasks", ())
    fw = codec.decode(_FrameworkInfo, m["framework"])
    fid = fw["id"]
    ex = m["task"].get("executor") if one else m["executor"]
    eid = codec.decode(_ExecutorInfo, ex)["executor_id"] if ex is not None else None
    aware = False
    for cap in fw.get("capabilities", ()):
        aware = aware or cap.get("type") == _FW_PARTITION_AWARE
    for t in infos:
        tid = t["task_id"]
        if t["slave_id"] != a.slave_id or (fid, tid) in runner.live:
            continue  # ignored as launch.py ignores them: another agent id's, or a live task's
        log.warn(_W, "task %s of framework %s refused: the agent is draining", tid, fid)
        runner.updates.update(fid, tid, _TASK_DROPPED if aware else _TASK_LOST, _SOURCE_SLAVE,
                              executor_id=eid or tid, reason=_REASON_SLAVE_DRAINING, message=_REFUSED)
    if m.get("launch_executor") and eid is not None and (fid, eid) not in runner.executors:
        runner.exited(fid, eid)  # the master expects the executor it asked for: it never started


def recover(a, data):
    """At boot, after the tasks were recovered: the drain in progress before the reboot, if it was
    this agent's. Over at once if nothing is left (the master sends it again on re-registration)."""
    try:
        ok = data["slave_id"] == a.slave_id and a.slave_id is not None and isinstance(data["config"], dict)
    except (KeyError, TypeError):
        ok = False
    if not ok:
        a.store.delete(_CHECKPOINT)  # another (or no) agent id's, or unreadable
        return
    a.drain_config = data["config"]
    if drained(a):
        finish(a)
    else:
        log.warn(_W, "draining (recovered): launches are refused until no task is left")


def finish(a):
    """Slave::updateDrainStatus: nothing left, so the agent is drained and takes launches again (the master
    keeps it deactivated until the operator reactivates it)."""
    if a.drain_config is not None:
        log.info(_W, "agent finished draining")
    a.drain_config = None
    a.store.delete(_CHECKPOINT)
