# What the task runner keeps across a reboot: the recovery report from its checkpoint (Tasks.save writes it)
# and the re-registration task list. MIT licence. PROTOCOL.md §2.4, §2.10 (reboot with state), §2.11, §3.12.
# Functions of the runner (tasks.Tasks), imported when needed (Tasks.DROP_CODE).
from . import log, schema
from .ctx import DONE, Ctx
from .updates import is_terminal
from micropython import const
_FW_PARTITION_AWARE = const(5)  # schema.FW_PARTITION_AWARE
_REASON_CONTAINER_LIMITATION = const(19)  # schema.REASON_CONTAINER_LIMITATION
_REASON_SLAVE_RESTARTED = const(12)  # schema.REASON_SLAVE_RESTARTED
_SOURCE_SLAVE = const(1)  # schema.SOURCE_SLAVE
_TASK_FAILED = const(3)  # schema.TASK_FAILED
_TASK_GONE = const(11)  # schema.TASK_GONE
_TASK_LOST = const(5)  # schema.TASK_LOST
_TASK_STAGING = const(6)  # schema.TASK_STAGING

_W = "tasks"
_CHECKPOINT = "tasks"  # as Tasks.save names it


def recover(runner):
    """After the agent recovered its id and update streams: no task survives a reboot. Each one that was
    running is reported TASK_GONE (PARTITION_AWARE) or TASK_LOST with SOURCE_SLAVE, REASON_SLAVE_RESTARTED,
    or TASK_FAILED if the watchdog reset the board while it held the loop (the marker names it). The
    updates go out after re-registration, like every queued update (§2.10). -> how many were reported."""
    data = runner.store.load(_CHECKPOINT)
    hog = runner.boot_marker  # the task the watchdog reset the board in (taskinit.init), or 0
    if not data or data.get("slave_id") != runner.agent.slave_id:
        runner.save()  # another agent's (or no) checkpoint: start clean
        return 0
    updates = runner.updates
    n = 0
    try:
        runner.next_slot = int(data["next"])
        if data["tasks"]:
            runner.presize()
        for slot, fid, tid, name, eid, raw in data["tasks"]:
            c = Ctx(runner, fid, tid, name, eid, [bytes.fromhex(r) for r in raw], [])
            c._n = slot
            c.phase = DONE  # kept (for re-registration) until its terminal update is acknowledged
            runner.live[(fid, tid)] = c
            latest = updates.latest(fid, tid)
            if latest is not None and is_terminal(latest):
                continue  # its terminal update is still unacknowledged: resent after re-registration
            n += 1
            if slot == hog:
                runner.send(c, _TASK_FAILED, _SOURCE_SLAVE, _REASON_CONTAINER_LIMITATION,
                            "the watchdog reset the board while this task held the event loop")
            else:
                runner.send(c, _TASK_GONE if runner.caps(fid, _FW_PARTITION_AWARE) else _TASK_LOST,
                            _SOURCE_SLAVE, _REASON_SLAVE_RESTARTED,
                            "the agent restarted; the task did not survive it")
    except (KeyError, ValueError, TypeError) as e:
        log.error(_W, "task checkpoint unreadable (%s); ignoring it", e)
        for k in list(runner.live):
            del runner.live[k]
    runner.save()
    log.info(_W, "recovered %d task record(s); %d did not survive the restart", len(runner.live), n)
    return n


def reregistration(runner):
    """(Task dicts, raw ExecutorInfos, framework ids) for ReregisterSlaveMessage: live non-command executors
    only; every task record, in its latest state, with status_update_state/uuid of its oldest unacknowledged
    update (both or neither, §2.11) and its TaskInfo resources unchanged (they carry allocation_info)."""
    sid = runner.agent.slave_id
    updates = runner.updates
    execs = []
    fids = set()
    for (fid, _), e in runner.executors.items():
        execs.append(e[0])
        fids.add(fid)
    out = []
    for (fid, tid), c in runner.live.items():
        if not c._raw:
            continue  # a Task without resources is undefined behaviour in the master (§2.11)
        state = updates.latest(fid, tid)
        t = {"name": c.name, "task_id": tid, "framework_id": fid, "slave_id": sid,
             "state": _TASK_STAGING if state is None else state, "resources": c._raw}
        if c._eid is not None and (fid, c._eid) in runner.executors:
            t["executor_id"] = c._eid  # only with its ExecutorInfo listed: the master checks (§2.4)
        u = updates.unacked(fid, tid)
        if u is not None:
            t["status_update_state"], t["status_update_uuid"] = u
        out.append(t)
        fids.add(fid)
    return out, execs, fids
