# A node's identity as an agent, the rarely run part of micromesos.node (issue 11 part 3, docs/GATEWAY.md §8):
# AGENT from the gateway, the identity recovered at boot, the TASKS report after a reboot. MIT licence.
# Node imports it per use and drops it after (as linkhello for a session's start): none of it stays resident.
from micropython import const

from . import codec, drop, log

_Task = const(50)  # schema.Task
_CHECKPOINT = "node"  # the store key Node.checkpoint() writes
_W = "node"


def recover(node):
    """The identity and frameworks from flash, then the update streams and the task records (as
    registrar.recover). -> an identity recovered? (then TASKS goes in the first session)"""
    data = node.store.load(_CHECKPOINT)
    if data is not None:
        try:
            node.slave_id = data["slave_id"]
            node.upid = data["upid"]
            node.frameworks = {k: bytes.fromhex("".join(v)) for k, v in data["frameworks"].items()}
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            log.error(_W, "node checkpoint unreadable (%s): starting as a new node", e)
            data = None
    if data is None:
        forget(node)
        return False
    n = node.updates.recover()
    node.tasks.recover()
    node.nl.on_session = node._session  # TASKS in the next session (once)
    log.info(_W, "recovered agent %s (%d unacknowledged status updates)", node.slave_id, n)
    return True


def forget(node):
    # A new identity owns no tasks and no updates (recovery.start_fresh).
    if node.tasks is not None:
        node.tasks.stop_all()
    node.updates.clear()
    node.slave_id = node.upid = None
    node.frameworks = {}
    node.store.delete(_CHECKPOINT)


def tasks_body(node):
    """TASKS (LINK.md §5): u16 length + Task, for each task the node holds."""
    out = bytearray()
    for t in node.tasks.reregistration()[0]:
        b = codec.encode(_Task, t)
        out.append(len(b) >> 8)
        out.append(len(b) & 255)
        out.extend(b)
    return bytes(out)


def agent(node, buf, start, end):
    """AGENT (LINK.md §5): the agent id and UPID the gateway registered the node under. Another id than
    the one held means the master forgot the old agent: its tasks and updates go (registrar.forget)."""
    n = buf[start] if start < end else 0
    i = start + 1 + n
    k = buf[i] if 0 < n and i < end else 0
    if not k or i + 1 + k != end:
        raise ValueError("AGENT: bad lengths")
    mv = memoryview(buf)
    sid = str(mv[start + 1:i], "utf-8")  # no copy but the str: AGENT may come in a heap at its edge
    pid = str(mv[i + 1:end], "utf-8")
    from . import upid

    try:
        ok = upid.valid(pid)
    finally:
        drop("micromesos.upid")
    if not ok:
        raise ValueError("AGENT: bad agent id or UPID")
    if sid == node.slave_id and pid == node.upid:
        return
    if node.slave_id is not None and sid != node.slave_id:
        log.warn(_W, "the gateway says agent %s, not %s: stopping all tasks", sid, node.slave_id)
        forget(node)
    node.slave_id = sid
    node.upid = pid
    node.checkpoint()
    log.info(_W, "agent %s (%s)", sid, pid)
    node.updates.kick()
