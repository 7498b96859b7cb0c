# Launching tasks (PROTOCOL.md §2.6): RunTaskMessage / RunTaskGroupMessage checks, leases, code lookup, start.
# MIT licence. Functions of the runner (tasks.Tasks); imported per launch message (Tasks._call).
import gc

import asyncio
from micropython import const

from . import codec, drop, log
from .ctx import Ctx
from .errors import MesosError
from .steps import Step
from .tasks import describe, field_id, grace_ms, load
_ExecutorInfo = const(38)  # schema.ExecutorInfo
_LAUNCHING = const(0)  # ctx.LAUNCHING
_FW_PARTITION_AWARE = const(5)  # schema.FW_PARTITION_AWARE
_KillPolicy = const(17)  # schema.KillPolicy
_REASON_CONTAINER_LAUNCH_FAILED = const(21)  # schema.REASON_CONTAINER_LAUNCH_FAILED
_REASON_CONTAINER_LIMITATION_MEMORY = const(8)  # schema.REASON_CONTAINER_LIMITATION_MEMORY
_REASON_EXECUTOR_TERMINATED = const(1)  # schema.REASON_EXECUTOR_TERMINATED
_REASON_TASK_INVALID = const(14)  # schema.REASON_TASK_INVALID
_Resource = const(14)  # schema.Resource
_RunTaskGroupMessage = const(66)  # schema.RunTaskGroupMessage
_RunTaskMessage = const(65)  # schema.RunTaskMessage
_SOURCE_SLAVE = const(1)  # schema.SOURCE_SLAVE
_TASK_DROPPED = const(9)  # schema.TASK_DROPPED
_TASK_FAILED = const(3)  # schema.TASK_FAILED
_TASK_LOST = const(5)  # schema.TASK_LOST

_EXECUTOR_GRACE_MS = const(5000)  # no shutdown_grace_period: EXECUTOR_SHUTDOWN_GRACE_PERIOD
# Its messages are written where they are used: with a name each, its 31 globals would need a 37-slot table,
# 296 B in one block at a small node's launch (29 fit a 232 B one: docs/GATEWAY.md §8, dict tables).


class Invalid(MesosError):
    # A TaskInfo the agent refuses before recording it: TASK_FAILED, REASON_TASK_INVALID (§3.9).
    pass


def run_task(runner, msg):
    """RunTaskMessage: a command task, or a task for a custom executor (TaskInfo.executor)."""
    try:
        m = codec.decode(_RunTaskMessage, msg.buf, msg.start, msg.end)
    except MemoryError:  # good bytes, too many dicts for this heap: its tasks fail, none stays STAGING
        gc.collect()
        runner.refuse_launch(msg, True, "the agent has no heap for this launch message")
        return
    t = m["task"]
    a = m["framework"], t.get("executor"), [t], m.get("launch_executor")
    m = t = None  # the message may go once its tasks are recorded: _launch empties the list (a small heap)
    _guarded(runner, *a)


def run_task_group(runner, msg):
    """RunTaskGroupMessage: every task of the group for one (usually DEFAULT) executor."""
    try:
        m = codec.decode(_RunTaskGroupMessage, msg.buf, msg.start, msg.end)
    except MemoryError:
        gc.collect()
        runner.refuse_launch(msg, True, "the agent has no heap for this launch message")
        return
    _guarded(runner, m["framework"], m["executor"], m["task_group"].get("tasks", []), m.get("launch_executor"))


def _guarded(runner, fw_raw, ex_raw, infos, launch_executor):
    n = len(infos)  # _launch empties the list
    try:
        _launch(runner, fw_raw, ex_raw, infos, launch_executor)
    except MemoryError:
        # Even the refusal found no heap: the master's reconciliation settles these tasks (§2.4).
        gc.collect()
        log.error("tasks", "out of memory launching %d task(s)", n)


def _launch(runner, fw_raw, ex_raw, infos, launch_executor):
    agent = runner.agent
    fid = field_id(fw_raw, 0, len(fw_raw), 3)  # FrameworkInfo.id, read in place: no dict of the whole info
    if fid is None:
        raise KeyError("FrameworkInfo.id")
    for t in infos:
        why = None
        if t["slave_id"] != agent.slave_id:  # Slave::run ignores tasks meant for an old agent id
            why = "is for agent " + t["slave_id"]
        elif (fid, t["task_id"]) in runner.live:  # an update would corrupt the live task's stream
            why = "already exists here"
        if why:
            agent.counters["dropped"] += 1
            log.warn("tasks", "task %s %s: launch ignored", t["task_id"], why)
            return
    if agent.frameworks.get(fid) != fw_raw:
        agent.frameworks[fid] = fw_raw
        agent.checkpoint()
    for k in agent.frameworks:
        if k == fid:
            fid = k  # the framework's one id string, not a copy in each task's record
            break
    ex = eid = None
    if ex_raw is not None:
        ex = codec.decode(_ExecutorInfo, ex_raw)
        eid = ex["executor_id"]
        if "framework_id" not in ex:  # required when echoed in a re-registration (§2.11)
            ex["framework_id"] = fid
            ex_raw = codec.encode(_ExecutorInfo, ex)
    tids = [t["task_id"] for t in infos]  # what a refusal names: the TaskInfos go before the record is written
    exists = eid is not None and (fid, eid) in runner.executors
    starts = eid is not None and not exists  # this launch would start the executor
    # The launch_executor checks of Slave::__run; "drop" = TASK_DROPPED or TASK_LOST (§2.6).
    why = None
    if eid is None:
        for t in infos:
            if (fid, t["task_id"]) in runner.executors:
                why = _REASON_TASK_INVALID, "an executor with id %s exists" % t["task_id"]
    elif launch_executor is True and exists:
        why = _REASON_EXECUTOR_TERMINATED, "executor %s is already running" % eid
    elif launch_executor is False and not exists:
        why = _REASON_EXECUTOR_TERMINATED, "executor %s is not running" % eid
    if why is not None:
        _refuse(runner, fid, eid, tids, _TASK_DROPPED if runner.caps(fid, _FW_PARTITION_AWARE)
                else _TASK_LOST, why[0], why[1], launch_executor and starts)
        return
    if len(runner.live) + len(infos) > runner.MAX_TASKS:  # no record: a flood of launches can't grow the table
        _refuse(runner, fid, eid, tids, _TASK_FAILED, _REASON_CONTAINER_LAUNCH_FAILED,
                "the agent holds %d tasks already (MAX_TASKS %d)" % (len(runner.live), runner.MAX_TASKS), starts)
        return
    try:  # every resource decoded and checked before anything is recorded
        want = _resources(ex.get("resources", ())) if starts else None
        grants = [_resources(t.get("resources", ())) for t in infos]
    except Invalid as e:
        _refuse(runner, fid, eid, tids, _TASK_FAILED, _REASON_TASK_INVALID, str(e), starts)
        return
    ctxs = []
    try:
        if starts:
            g = ex.get("shutdown_grace_period")
            runner.executors[(fid, eid)] = [ex_raw, 0, grace_ms(g) if g else _EXECUTOR_GRACE_MS]
        for t, grant in zip(infos, grants):
            ctxs.append(_admit(runner, fid, eid, ex, t, grant))
        # What the tasks keep of their TaskInfos is in ctxs (ids, CommandInfo): the rest goes before the
        # record is written and their code is looked for (a small heap's launch peak).
        t = None
        del grants
        infos.clear()
        fail = _lease(runner, fid, eid, want, ctxs)
    except Exception as e:  # MemoryError, ...: nothing stays recorded
        for c, _ in ctxs:
            runner.live.pop((fid, c.task_id), None)
            runner.leases.release(c)
        if starts:
            runner.executors.pop((fid, eid), None)
            runner.leases.release((fid, eid))
        oom = isinstance(e, MemoryError)
        gc.collect()
        _refuse(runner, fid, eid, tids, _TASK_FAILED, _REASON_CONTAINER_LIMITATION_MEMORY if oom
                else _REASON_CONTAINER_LAUNCH_FAILED, "the agent is out of memory for another task" if oom
                else "the agent could not record the task: " + describe(e), starts)
        return
    del tids
    if fail:
        for c, _ in ctxs:
            runner.finish(c, _TASK_FAILED, _SOURCE_SLAVE, _REASON_CONTAINER_LAUNCH_FAILED, fail)
        return
    # Recorded in RAM. Each is checkpointed, its code found and started by an asyncio task of its own (_begin), on
    # the next turn of the loop: the frames and bytes of this message are gone by then (a small heap's launch peak).
    for c, cmd in ctxs:
        try:
            c._atask = asyncio.create_task(_begin(runner, c, cmd))
        except MemoryError:  # no block for its coroutine or Task: it fails now rather than stay STAGING for good
            gc.collect()
            runner.finish(c, _TASK_FAILED, _SOURCE_SLAVE, _REASON_CONTAINER_LIMITATION_MEMORY,
                          "out of memory starting the task")


def _resources(raws):
    """[(name, value)] of TaskInfo/ExecutorInfo resources; Invalid names the first unusable one."""
    resources = load("resources")  # not a global: it leaves RAM before the task's code is imported (_begin)
    out = []
    for r in raws:
        try:
            n, v = resources.from_resource(codec.decode(_Resource, r))
        except (ValueError, KeyError, TypeError, MesosError) as e:
            raise Invalid("unusable resource: %s" % describe(e))
        if isinstance(v, float):
            # 1e9: far above any board; a Mesos scalar is fixed point, int64 thousandths (§4.1)
            if not 0 <= v <= 1e9:  # false for nan as well as for inf and negatives
                raise Invalid("resource %s: %r is not a number in [0, 1000000000]" % (n[:32], v))
        elif isinstance(v, list):
            for lo, hi in v:
                if not 0 <= lo <= hi:
                    raise Invalid("resource %s: [%d-%d] is not a range" % (n[:32], lo, hi))
        out.append((n, v))
    return out


def _refuse(runner, fid, eid, tids, state, reason, message, exited):
    """Terminal updates for the tasks `tids` of a launch that gets no record (§2.6); ExitedExecutorMessage if it
    would have started an executor, so that the master releases the executor's resources."""
    for tid in tids:
        runner.updates.update(fid, tid, state, _SOURCE_SLAVE, executor_id=eid or tid,
                              reason=reason, message=message)
    if exited:
        runner.exited(fid, eid)


def _admit(runner, fid, eid, ex, t, grant):
    """A Ctx for TaskInfo t, recorded as live. -> (ctx, CommandInfo dict)."""
    c = Ctx(runner, fid, t["task_id"], t["name"], eid, t.get("resources", []), grant)
    c._n = runner.next_slot
    runner.next_slot += 1
    runner.live[(fid, c.task_id)] = c
    if eid is not None:
        runner.executors[(fid, eid)][1] += 1
    # A command task, a task group task (the master copies the executor in), or a custom executor's.
    cmd = t.get("command") or (ex.get("command") if ex else None) or {}
    if "data" in t:
        c.data = t["data"]
    if "arguments" in cmd:
        c.arguments = cmd["arguments"]
    env = cmd.get("environment")
    if env:
        c.env = {v["name"]: v.get("value", "") for v in env.get("variables", ())
                 if v.get("type", 1) == 1}  # VALUE only: SECRET values never reach a task
    kp = t.get("kill_policy")
    if kp:
        c._grace_ms = grace_ms(codec.decode(_KillPolicy, kp).get("grace_period"))
    return c, cmd


def _lease(runner, fid, eid, want, ctxs):
    """Lease every resource of the launch, or none: None, or why not (resources.Leases)."""
    leases = runner.leases
    granted = []
    try:
        if want is not None:
            why = leases.shortfall(want)
            if why:
                return "executor " + why
            leases.grant((fid, eid), want)
            granted.append((fid, eid))
        for c, _ in ctxs:
            why = leases.shortfall(c._res)
            if why:
                return why
            leases.grant(c, c._res)
            granted.append(c)
        granted = []
        return None
    except (ValueError, KeyError, TypeError, MesosError) as e:  # TypeError: a scalar asked of a set
        return "unusable resource: %s" % e
    finally:
        for owner in granted:  # a launch that failed half way holds nothing
            leases.release(owner)


async def _begin(runner, c, cmd):
    # A task recorded in RAM (STAGING): its record written to flash, its code found, fetched first if it must be,
    # and started. A kill before it starts cancels it: kill.terminate reported it (TASK_KILLED during launch).
    # The handler makes this coroutine at the launch's peak: its frame holds only its arguments (112 B in one
    # piece on a 32-bit board; 160 B with the work in it). The work is in _find_and_start, a plain call.
    try:
        if _find_and_start(runner, c, cmd, None) is None:  # its code is to be fetched first (CommandInfo.uris)
            await _fetch(runner, c, cmd)
    finally:
        runner.drop()  # the runner kept its code loaded while a task was launching


async def _fetch(runner, c, cmd):
    # CommandInfo.uris into tasks_dir, then the task's code found and started (or its failure reported).
    try:
        from . import download  # only now: a task without URIs to fetch launches without it

        await download.fetch_all(runner, cmd.get("uris", ()))
        e: object = True  # or what the fetch raised
    except asyncio.CancelledError:
        return  # killed during the fetch: kill.terminate reported it
    except Exception as x:  # FetchError, MemoryError, OSError, ...: _find_and_start reports it
        e = x
    if c.phase == _LAUNCHING:
        _find_and_start(runner, c, cmd, e)


def _find_and_start(runner, c, cmd, fetched):
    """_begin's work: the task table's checkpoint (the first call, fetched None), the task's code found and
    main(ctx) started, or TASK_FAILED with the cause. fetched: True once its URIs are fetched, or what the fetch
    raised. None if its code must be fetched first (_fetch calls again)."""
    reason = _REASON_CONTAINER_LAUNCH_FAILED
    why = None
    try:
        if fetched is None:
            drop("micromesos.resources")  # the leases' arithmetic: its part of the launch is over
            gc.collect()  # from a shallow stack: the launch message's garbage goes (the allocator's own may not)
            if c._n >= runner.saved:  # not in the checkpoint yet (one write for the tasks of a group, or none)
                # Written here, not in the launch handler: on a 24 KB node that peak had the RunTask's bytes and
                # decoded dicts beside it. Still before any update or code of the task: a reboot from now on finds
                # the record (taskstore.recover); one before it leaves the task to the master's reconciliation.
                try:
                    runner.save()
                except Exception as e:  # MemoryError, a checkpoint that can't be written (flash full, ...)
                    gc.collect()
                    if isinstance(e, MemoryError):
                        reason = _REASON_CONTAINER_LIMITATION_MEMORY
                        why = "the agent is out of memory for another task"
                    else:
                        why = "the agent could not record the task: " + describe(e)
                    return True
        try:
            from . import fetch
        except MemoryError:
            reason, why = _REASON_CONTAINER_LIMITATION_MEMORY, "out of memory finding the task's code"
            return True
        name = cmd.get("value")
        try:
            if isinstance(fetched, Exception):
                raise fetched  # the fetch's failure, reported as if it happened here
            mod = fetch.find(runner, name, cmd.get("uris", ()), fetched is True)
            if mod is None:
                return None
            gc.collect()  # the import's garbage goes before the task's lasting objects are made: they fill its holes
            _start(runner, c, name, mod)
        except fetch.FetchError as e:
            why = str(e)
        except MemoryError:
            gc.collect()
            reason, why = _REASON_CONTAINER_LIMITATION_MEMORY, "out of memory starting the task"
        except Exception as e:  # OSError, a CommandInfo the code could not use: the task fails, it isn't stuck
            why = describe(e)
    finally:
        if why is not None and c.phase == _LAUNCHING:
            runner.finish(c, _TASK_FAILED, _SOURCE_SLAVE, reason, why)
    return True


def _start(runner, c, name, mod):
    main = getattr(mod, "main", None)
    why = None
    coro = None
    if main is None or not callable(main):
        why = "module %s has no main(ctx)" % name
    elif type(main) is type(_start):  # a plain function: `def main`, not `async def main`
        why = "%s.main must be `async def main(ctx)`" % name
    else:
        try:
            coro = main(c)
        except BaseException as e:  # noqa: B036  calling it is task code; nothing here awaits
            why = "%s.main(ctx): %s" % (name, describe(e))
        if why is None and not hasattr(coro, "send"):
            why = "%s.main(ctx) did not return a coroutine" % name
    if why is not None:
        runner.unload(name)
        runner.finish(c, _TASK_FAILED, _SOURCE_SLAVE, _REASON_CONTAINER_LAUNCH_FAILED, why)
        return
    runner.started(c, name, asyncio.create_task(Step(c, coro)))  # type: ignore[arg-type]  # only send/throw
