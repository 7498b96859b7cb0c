# What the task runner keeps across a reboot: its checkpoint, the recovery report, the re-registration list.
# MIT licence. PROTOCOL.md §2.4 (what a re-registration carries), §2.10 (reboot with state), §2.11, §3.12.
from . import log, schema
from .ctx import DONE, Ctx
from .steps import watchdog_reset
from .updates import is_terminal

_W = "tasks"
_CHECKPOINT = "tasks"


def save(tasks):
    """Every task record (running, or terminal and unacknowledged) with its slot and raw resources."""
    tasks.store.save(_CHECKPOINT, {
        "slave_id": tasks.agent.slave_id, "next": tasks._next,
        "tasks": [[c._n, fid, tid, c.name, c._eid, [r.hex() for r in c._raw]]
                  for (fid, tid), c in tasks.live.items()]})


def recover(tasks):
    """After the agent recovered its id and update streams: no task survives a reboot. Each one that was
    running is reported TASK_GONE (PARTITION_AWARE) or TASK_LOST with SOURCE_SLAVE, REASON_SLAVE_RESTARTED,
    or TASK_FAILED if the watchdog reset the board while it held the loop (the marker names it). The
    updates go out after re-registration, like every queued update (§2.10). -> how many were reported."""
    data = tasks.store.load(_CHECKPOINT)
    hog = tasks._boot_marker if tasks._boot_marker and watchdog_reset() else 0
    if not data or data.get("slave_id") != tasks.agent.slave_id:
        save(tasks)  # another agent's (or no) checkpoint: start clean
        return 0
    updates = tasks.updates
    n = 0
    try:
        tasks._next = int(data["next"])
        for slot, fid, tid, name, eid, raw in data["tasks"]:
            c = Ctx(tasks, fid, tid, name, eid, [bytes.fromhex(r) for r in raw], [])
            c._n = slot
            c.phase = DONE  # kept (for re-registration) until its terminal update is acknowledged
            tasks.live[(fid, tid)] = c
            latest = updates.latest(fid, tid)
            if latest is not None and is_terminal(latest):
                continue  # its terminal update is still unacknowledged: resent after re-registration
            n += 1
            if slot == hog:
                tasks._send(c, schema.TASK_FAILED, schema.SOURCE_SLAVE, schema.REASON_CONTAINER_LIMITATION,
                            "the watchdog reset the board while this task held the event loop")
            else:
                tasks._send(c, schema.TASK_GONE if tasks._caps(fid, schema.FW_PARTITION_AWARE) else schema.TASK_LOST,
                            schema.SOURCE_SLAVE, schema.REASON_SLAVE_RESTARTED,
                            "the agent restarted; the task did not survive it")
    except (KeyError, ValueError, TypeError) as e:
        log.error(_W, "task checkpoint unreadable (%s); ignoring it", e)
        for k in list(tasks.live):
            del tasks.live[k]
    save(tasks)
    log.info(_W, "recovered %d task record(s); %d did not survive the restart", len(tasks.live), n)
    return n


def reregistration(tasks):
    """(Task dicts, raw ExecutorInfos, framework ids) for ReregisterSlaveMessage: live non-command executors
    only; every task record, in its latest state, with status_update_state/uuid of its oldest unacknowledged
    update (both or neither, §2.11) and its TaskInfo resources unchanged (they carry allocation_info)."""
    sid = tasks.agent.slave_id
    updates = tasks.updates
    execs = []
    fids = set()
    for (fid, _), e in tasks.executors.items():
        execs.append(e[0])
        fids.add(fid)
    out = []
    for (fid, tid), c in tasks.live.items():
        if not c._raw:
            continue  # a Task without resources is undefined behaviour in the master (§2.11)
        state = updates.latest(fid, tid)
        t = {"name": c.name, "task_id": tid, "framework_id": fid, "slave_id": sid,
             "state": schema.TASK_STAGING if state is None else state, "resources": c._raw}
        if c._eid is not None and (fid, c._eid) in tasks.executors:
            t["executor_id"] = c._eid  # only with its ExecutorInfo listed: the master checks (§2.4)
        u = updates.unacked(fid, tid)
        if u is not None:
            t["status_update_state"], t["status_update_uuid"] = u
        out.append(t)
        fids.add(fid)
    return out, execs, fids
