# Stopping tasks at the master's request: KillTaskMessage, ShutdownFrameworkMessage, ShutdownExecutorMessage.
# MIT licence. PROTOCOL.md §2.8. Functions of the runner (tasks.Tasks); imported per message (Tasks._call).
from micropython import const

from . import codec, log, schema
from .ctx import DONE, LAUNCHING, RUNNING
from .tasks import DEFAULT_GRACE_MS, grace_ms
_FW_PARTITION_AWARE = const(5)  # schema.FW_PARTITION_AWARE
_FW_TASK_KILLING_STATE = const(2)  # schema.FW_TASK_KILLING_STATE
_KillTaskMessage = const(67)  # schema.KillTaskMessage
_REASON_EXECUTOR_TERMINATED = const(1)  # schema.REASON_EXECUTOR_TERMINATED
_REASON_FRAMEWORK_REMOVED = const(3)  # schema.REASON_FRAMEWORK_REMOVED
_REASON_TASK_KILLED_DURING_LAUNCH = const(30)  # schema.REASON_TASK_KILLED_DURING_LAUNCH
_SOURCE_EXECUTOR = const(2)  # schema.SOURCE_EXECUTOR
_SOURCE_SLAVE = const(1)  # schema.SOURCE_SLAVE
_ShutdownExecutorMessage = const(69)  # schema.ShutdownExecutorMessage
_ShutdownFrameworkMessage = const(68)  # schema.ShutdownFrameworkMessage
_TASK_DROPPED = const(9)  # schema.TASK_DROPPED
_TASK_KILLED = const(4)  # schema.TASK_KILLED
_TASK_KILLING = const(8)  # schema.TASK_KILLING
_TASK_LOST = const(5)  # schema.TASK_LOST

_W = "tasks"
_KILLED = _TASK_KILLED, _SOURCE_EXECUTOR, None, "killed by the framework"
_REASON_SLAVE_DRAINING = const(34)  # schema.REASON_SLAVE_DRAINING (not a schema global; tests/test_drain.py)


def kill(runner, msg):
    m = codec.decode(_KillTaskMessage, msg.buf, msg.start, msg.end)
    fid = m["framework_id"]
    tid = m["task_id"]
    c = runner.live.get((fid, tid))
    if c is None:
        if fid not in runner.agent.frameworks:
            log.warn(_W, "kill of %s for unknown framework %s ignored", tid, fid)
            return
        if runner.updates.latest(fid, tid) is None:
            runner.counters["lost"] += 1
            runner.updates.update(fid, tid, _TASK_DROPPED if runner.caps(fid, _FW_PARTITION_AWARE)
                                  else _TASK_LOST, _SOURCE_SLAVE, executor_id=tid,
                                  reason=_REASON_EXECUTOR_TERMINATED, message="no such task on this agent")
        return
    kp = m.get("kill_policy")
    stop(runner, c, grace_ms(kp["grace_period"]) if kp and "grace_period" in kp else _grace_of(c), _KILLED[3])


def stop(runner, c, grace, why):
    """Kill task c (a framework's kill, a drain): TASK_KILLING first if it runs and its framework has the
    TASK_KILLING_STATE capability, then TASK_KILLED after at most `grace` ms (terminate)."""
    if c.phase == RUNNING and runner.caps(c.framework_id, _FW_TASK_KILLING_STATE):
        runner.send(c, _TASK_KILLING, _SOURCE_EXECUTOR, _reason(runner, None))
    terminate(runner, c, (_TASK_KILLED, _SOURCE_EXECUTOR, None, why), grace)


def _grace_of(c):
    return c._grace_ms if c._grace_ms >= 0 else DEFAULT_GRACE_MS


def _reason(runner, reason):
    # While the agent drains, every TASK_KILLING and TASK_KILLED says REASON_SLAVE_DRAINING, whatever
    # killed the task (Slave::statusUpdate overwrites the reason; drain.py).
    return _REASON_SLAVE_DRAINING if runner.agent.drain_config is not None else reason


def _draining(runner, o):
    return o if o[0] != _TASK_KILLED else (o[0], o[1], _reason(runner, o[2]), o[3])


def terminate(runner, c, outcome, grace):
    """While its code is being fetched a task ends now (TASK_KILLED, REASON_TASK_KILLED_DURING_LAUNCH,
    §2.8); running, it is cancelled and given `grace` ms (steps.Watch); done, nothing happens."""
    if runner.agent.drain_config is not None and c._outcome is not None:
        c._outcome = _draining(runner, c._outcome)  # killed before the drain, still in its grace period
    if c.phase == LAUNCHING:
        runner.force(c, (_TASK_KILLED, _SOURCE_SLAVE,
                         _reason(runner, _REASON_TASK_KILLED_DURING_LAUNCH),
                         outcome[3] + " while its code was being fetched"))
    elif c.phase != DONE:
        runner.watch.stop(c, _draining(runner, outcome), grace)


def shutdown_framework(runner, msg):
    fid = codec.decode(_ShutdownFrameworkMessage, msg.buf, msg.start, msg.end)["framework_id"]
    keys = [k for k in runner.live if k[0] == fid]
    if not keys and fid not in runner.agent.frameworks:
        return  # sent to every agent, including those that never ran it (§2.8)
    for k in keys:
        c = runner.live.pop(k)
        c._silent = True  # the master already counts its tasks KILLED; pending updates are pointless
        terminate(runner, c, (_TASK_KILLED, _SOURCE_EXECUTOR, _REASON_FRAMEWORK_REMOVED,
                              "framework removed"), _grace_of(c))
    for k in [k for k in runner.executors if k[0] == fid]:
        del runner.executors[k]
        runner.leases.release(k)
    runner.updates.drop_framework(fid)
    if runner.agent.frameworks.pop(fid, None) is not None:
        runner.agent.checkpoint()
    runner.save()
    log.info(_W, "framework %s shut down: %d task(s) stopped", fid, len(keys))


def shutdown_executor(runner, msg):
    m = codec.decode(_ShutdownExecutorMessage, msg.buf, msg.start, msg.end)
    fid = m.get("framework_id")
    eid = m.get("executor_id")
    e = runner.executors.get((fid, eid))
    outcome = (_TASK_KILLED, _SOURCE_EXECUTOR, None, "executor shut down")
    if e is None:
        c = runner.live.get((fid, eid))  # a command task's executor id is its task id
        if c is not None and c._eid is None:
            terminate(runner, c, outcome, _grace_of(c))
        return
    n = 0
    for c in list(runner.live.values()):
        if c.framework_id == fid and c._eid == eid and c.phase != DONE:
            terminate(runner, c, outcome, e[2])
            n += 1
    if not n:
        runner.exited(fid, eid)  # nothing left to wait for
