# Stopping tasks at the master's request: KillTaskMessage, ShutdownFrameworkMessage, ShutdownExecutorMessage.
# MIT licence. PROTOCOL.md §2.8. Functions of the runner (tasks.Tasks); imported per message (Tasks._call).
from . import codec, log, schema
from .ctx import DONE, LAUNCHING, RUNNING
from .tasks import DEFAULT_GRACE_MS, grace_ms

_W = "tasks"
_KILLED = schema.TASK_KILLED, schema.SOURCE_EXECUTOR, None, "killed by the framework"


def kill(runner, msg):
    m = codec.decode(schema.KillTaskMessage, msg.buf, msg.start, msg.end)
    fid = m["framework_id"]
    tid = m["task_id"]
    c = runner.live.get((fid, tid))
    if c is None:
        if fid not in runner.agent.frameworks:
            log.warn(_W, "kill of %s for unknown framework %s ignored", tid, fid)
            return
        if runner.updates.latest(fid, tid) is None:
            runner.counters["lost"] += 1
            runner.updates.update(fid, tid, schema.TASK_DROPPED if runner.caps(fid, schema.FW_PARTITION_AWARE)
                                  else schema.TASK_LOST, schema.SOURCE_SLAVE, executor_id=tid,
                                  reason=schema.REASON_EXECUTOR_TERMINATED, message="no such task on this agent")
        return
    kp = m.get("kill_policy")
    grace = grace_ms(kp["grace_period"]) if kp and "grace_period" in kp else _grace_of(c)
    if c.phase == RUNNING and runner.caps(fid, schema.FW_TASK_KILLING_STATE):
        runner.send(c, schema.TASK_KILLING, schema.SOURCE_EXECUTOR)
    terminate(runner, c, _KILLED, grace)


def _grace_of(c):
    return c._grace_ms if c._grace_ms >= 0 else DEFAULT_GRACE_MS


def terminate(runner, c, outcome, grace):
    """While its code is being fetched a task ends now (TASK_KILLED, REASON_TASK_KILLED_DURING_LAUNCH,
    §2.8); running, it is cancelled and given `grace` ms (steps.Watch); done, nothing happens."""
    if c.phase == LAUNCHING:
        runner.force(c, (schema.TASK_KILLED, schema.SOURCE_SLAVE, schema.REASON_TASK_KILLED_DURING_LAUNCH,
                         outcome[3] + " while its code was being fetched"))
    elif c.phase != DONE:
        runner.watch.stop(c, outcome, grace)


def shutdown_framework(runner, msg):
    fid = codec.decode(schema.ShutdownFrameworkMessage, msg.buf, msg.start, msg.end)["framework_id"]
    keys = [k for k in runner.live if k[0] == fid]
    if not keys and fid not in runner.agent.frameworks:
        return  # sent to every agent, including those that never ran it (§2.8)
    for k in keys:
        c = runner.live.pop(k)
        c._silent = True  # the master already counts its tasks KILLED; pending updates are pointless
        terminate(runner, c, (schema.TASK_KILLED, schema.SOURCE_EXECUTOR, schema.REASON_FRAMEWORK_REMOVED,
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
    m = codec.decode(schema.ShutdownExecutorMessage, msg.buf, msg.start, msg.end)
    fid = m.get("framework_id")
    eid = m.get("executor_id")
    e = runner.executors.get((fid, eid))
    outcome = (schema.TASK_KILLED, schema.SOURCE_EXECUTOR, None, "executor shut down")
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
