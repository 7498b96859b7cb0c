# Launching tasks (PROTOCOL.md §2.6): RunTaskMessage / RunTaskGroupMessage checks, leases, code lookup, start.
# MIT licence. Functions of the runner (`tasks`, a tasks.Tasks): its tables live, executors, leases, loader.
import gc

import asyncio
from micropython import const

from . import codec, log, resources, schema
from .ctx import LAUNCHING, RUNNING, Ctx
from .errors import MesosError
from .fetch import FetchError
from .steps import Step

DEFAULT_GRACE_MS = const(3000)    # no KillPolicy: EXECUTOR_SIGNAL_ESCALATION_TIMEOUT (src/slave/constants.cpp)
_EXECUTOR_GRACE_MS = const(5000)  # no shutdown_grace_period: EXECUTOR_SHUTDOWN_GRACE_PERIOD
_MAX_GRACE_MS = const(600000)
_FUNC = type(lambda: 0)  # a plain function: `def main`, not `async def main`
_W = "tasks"


def grace_ms(duration):
    """DurationInfo dict -> ms, clamped to [0, 10 min]."""
    ns = duration.get("nanoseconds", 0) if duration else 0
    return max(0, min(ns // 1000000, _MAX_GRACE_MS))


def run_task(tasks, msg):
    """RunTaskMessage: a command task, or a task for a custom executor (TaskInfo.executor)."""
    m = codec.decode(schema.RunTaskMessage, msg.buf, msg.start, msg.end)
    t = m["task"]
    _guarded(tasks, m["framework"], t.get("executor"), [t], m.get("launch_executor"))


def run_task_group(tasks, msg):
    """RunTaskGroupMessage: every task of the group for one (usually DEFAULT) executor."""
    m = codec.decode(schema.RunTaskGroupMessage, msg.buf, msg.start, msg.end)
    _guarded(tasks, m["framework"], m["executor"], m["task_group"].get("tasks", []), m.get("launch_executor"))


def _guarded(tasks, fw_raw, ex_raw, infos, launch_executor):
    try:
        _launch(tasks, fw_raw, ex_raw, infos, launch_executor)
    except MemoryError:
        # Even the refusal found no heap: the master's reconciliation settles these tasks (§2.4).
        gc.collect()
        log.error(_W, "out of memory launching %s", ",".join(t["task_id"] for t in infos))


def _launch(tasks, fw_raw, ex_raw, infos, launch_executor):
    agent = tasks.agent
    fid = codec.decode(schema.FrameworkInfo, fw_raw)["id"]
    for t in infos:
        why = None
        if t["slave_id"] != agent.slave_id:  # Slave::run ignores tasks meant for an old agent id
            why = "is for agent " + t["slave_id"]
        elif (fid, t["task_id"]) in tasks.live:  # an update would corrupt the live task's stream
            why = "already exists here"
        if why:
            agent.counters["dropped"] += 1
            log.warn(_W, "task %s %s: launch ignored", t["task_id"], why)
            return
    if agent.frameworks.get(fid) != fw_raw:
        agent.frameworks[fid] = fw_raw
        agent.checkpoint()
    ex = eid = None
    if ex_raw is not None:
        ex = codec.decode(schema.ExecutorInfo, ex_raw)
        eid = ex["executor_id"]
        if "framework_id" not in ex:  # required when echoed in a re-registration (§2.11)
            ex["framework_id"] = fid
            ex_raw = codec.encode(schema.ExecutorInfo, ex)
    exists = eid is not None and (fid, eid) in tasks.executors
    # The launch_executor checks of Slave::__run; "drop" = TASK_DROPPED or TASK_LOST (§2.6).
    why = None
    if eid is None:
        for t in infos:
            if (fid, t["task_id"]) in tasks.executors:
                why = schema.REASON_TASK_INVALID, "an executor with id %s exists" % t["task_id"]
    elif launch_executor is True and exists:
        why = schema.REASON_EXECUTOR_TERMINATED, "executor %s is already running" % eid
    elif launch_executor is False and not exists:
        why = schema.REASON_EXECUTOR_TERMINATED, "executor %s is not running" % eid
    if why is not None:
        _refuse(tasks, fid, eid, infos, schema.TASK_DROPPED if tasks._caps(fid, schema.FW_PARTITION_AWARE)
                else schema.TASK_LOST, why[0], why[1], launch_executor and eid is not None and not exists)
        return
    if len(tasks.live) + len(infos) > tasks.MAX_TASKS:  # no record: a flood of launches can't grow the table
        _refuse(tasks, fid, eid, infos, schema.TASK_FAILED, schema.REASON_CONTAINER_LAUNCH_FAILED,
                "the agent holds %d tasks already (MAX_TASKS %d)" % (len(tasks.live), tasks.MAX_TASKS),
                eid is not None and not exists)
        return
    try:
        if eid is not None and not exists:
            g = ex.get("shutdown_grace_period")
            tasks.executors[(fid, eid)] = [ex_raw, 0, grace_ms(g) if g else _EXECUTOR_GRACE_MS]
        ctxs = [_admit(tasks, fid, eid, ex, t) for t in infos]
        fail = _lease(tasks, fid, eid, ex if not exists else None, ctxs)
        tasks._save()
    except MemoryError:  # the heap can't hold another task: undo the admission, refuse it, go on
        for t in infos:
            tasks.leases.release(tasks.live.pop((fid, t["task_id"]), None))
        if eid is not None and not exists:
            tasks.executors.pop((fid, eid), None)
            tasks.leases.release((fid, eid))
        gc.collect()
        _refuse(tasks, fid, eid, infos, schema.TASK_FAILED, schema.REASON_CONTAINER_LIMITATION_MEMORY,
                "the agent is out of memory for another task", eid is not None and not exists)
        return
    for c, cmd in ctxs:
        reason = schema.REASON_CONTAINER_LAUNCH_FAILED
        try:
            if fail:
                raise FetchError(fail)
            mod = tasks.loader.find(cmd.get("value"), cmd.get("uris", ()))
            if mod is None:
                c._atask = asyncio.create_task(_fetch_then_start(tasks, c, cmd))
            else:
                _start(tasks, c, cmd["value"], mod)
            continue
        except FetchError as e:
            why = str(e)
        except MemoryError:
            gc.collect()
            reason, why = schema.REASON_CONTAINER_LIMITATION_MEMORY, "out of memory starting the task"
        tasks._finish(c, schema.TASK_FAILED, schema.SOURCE_SLAVE, reason, why)


def _refuse(tasks, fid, eid, infos, state, reason, message, exited):
    """Terminal updates for a launch that gets no record (§2.6); ExitedExecutorMessage if it would have
    started an executor, so that the master releases the executor's resources."""
    for t in infos:
        tasks.updates.update(fid, t["task_id"], state, schema.SOURCE_SLAVE, executor_id=eid or t["task_id"],
                             reason=reason, message=message)
    if exited:
        tasks._exited(fid, eid)


def _admit(tasks, fid, eid, ex, t):
    """A Ctx for TaskInfo t, recorded as live. -> (ctx, CommandInfo dict)."""
    c = Ctx(tasks, fid, t["task_id"], t["name"], eid, t.get("resources", []), [])
    c._n = tasks._next
    tasks._next += 1
    tasks.live[(fid, c.task_id)] = c
    if eid is not None:
        tasks.executors[(fid, eid)][1] += 1
    # A command task, a task group task (the master copies the executor in), or a custom executor's.
    cmd = t.get("command") or (ex.get("command") if ex else None) or {}
    c.data = t.get("data")
    c.arguments = cmd.get("arguments", ())
    c.env = {v["name"]: v.get("value", "") for v in cmd.get("environment", {}).get("variables", ())
             if v.get("type", 1) == 1}  # VALUE only: SECRET values never reach a task
    kp = t.get("kill_policy")
    if kp:
        c._grace_ms = grace_ms(codec.decode(schema.KillPolicy, kp).get("grace_period"))
    return c, cmd


def _lease(tasks, fid, eid, ex, ctxs):
    """Lease every resource of the launch, or none: None, or why not (resources.Leases)."""
    granted = []
    try:
        if ex is not None:
            want = [resources.from_resource(codec.decode(schema.Resource, r)) for r in ex.get("resources", ())]
            why = tasks.leases.shortfall(want)
            if why:
                return "executor " + why
            tasks.leases.grant((fid, eid), want)
            granted.append((fid, eid))
        for c, _ in ctxs:
            c._res = [resources.from_resource(codec.decode(schema.Resource, r)) for r in c._raw]
            why = tasks.leases.shortfall(c._res)
            if why:
                return why
            tasks.leases.grant(c, c._res)
            granted.append(c)
        granted = []
        return None
    except (ValueError, KeyError, TypeError, MesosError) as e:  # TypeError: a scalar asked of a set
        return "unusable resource: %s" % e
    finally:
        for owner in granted:  # a launch that failed half way holds nothing
            tasks.leases.release(owner)


async def _fetch_then_start(tasks, c, cmd):
    uris = cmd.get("uris", ())
    try:
        await tasks.loader.fetch_all(uris)
        mod = tasks.loader.find(cmd["value"], uris, True) if c.phase == LAUNCHING else None
    except asyncio.CancelledError:
        return  # killed during launch: tasks._terminate reported it
    except (FetchError, OSError) as e:
        if c.phase == LAUNCHING:
            tasks._finish(c, schema.TASK_FAILED, schema.SOURCE_SLAVE, schema.REASON_CONTAINER_LAUNCH_FAILED,
                          str(e))
        return
    if c.phase == LAUNCHING:
        _start(tasks, c, cmd["value"], mod)


def _start(tasks, c, name, mod):
    main = getattr(mod, "main", None)
    why = None
    coro = None
    if main is None or not callable(main):
        why = "module %s has no main(ctx)" % name
    elif type(main) is _FUNC:
        why = "%s.main must be `async def main(ctx)`" % name
    else:
        try:
            coro = main(c)
        except Exception as e:
            why = "%s.main(ctx): %s: %s" % (name, type(e).__name__, e)
        if why is None and not hasattr(coro, "send"):
            why = "%s.main(ctx) did not return a coroutine" % name
    if why is not None:
        tasks._finish(c, schema.TASK_FAILED, schema.SOURCE_SLAVE, schema.REASON_CONTAINER_LAUNCH_FAILED, why)
        return
    c._atask = asyncio.create_task(Step(c, coro))  # type: ignore[arg-type]  # asyncio needs only send/throw
    c.phase = RUNNING
    tasks._running += 1
    tasks.counters["launched"] += 1
    # What mesos-executor sends once the command runs (§2.6); RUNNING leaves after STARTING's ack.
    tasks._send(c, schema.TASK_STARTING, schema.SOURCE_EXECUTOR)
    tasks._send(c, schema.TASK_RUNNING, schema.SOURCE_EXECUTOR)
    tasks.watch.wake()

