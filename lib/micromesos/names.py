# libprocess message names <-> small int ids, looked up in place without allocating.
# MIT licence. The name on the wire is the full protobuf type name (PROTOCOL.md §1.3).
from micropython import const

# Ids, in the order of _ALL below. 0 means "not a name we know" (dropped and logged by the agent). Only the
# ids other modules read are public: each public name is a globals slot (and a qstr when loaded).
_UNKNOWN = const(0)
REGISTER_SLAVE = const(1)
REREGISTER_SLAVE = const(2)
SLAVE_REGISTERED = const(3)
SLAVE_REREGISTERED = const(4)
PING_SLAVE = const(5)
_PONG_SLAVE = const(6)
RUN_TASK = const(7)
RUN_TASK_GROUP = const(8)
KILL_TASK = const(9)
STATUS_UPDATE = const(10)
STATUS_UPDATE_ACK = const(11)
SHUTDOWN_FRAMEWORK = const(12)
SHUTDOWN_EXECUTOR = const(13)
UPDATE_FRAMEWORK = const(14)
CHECKPOINT_RESOURCES = const(15)
FRAMEWORK_TO_EXECUTOR = const(16)
EXECUTOR_TO_FRAMEWORK = const(17)
SHUTDOWN = const(18)
_DRAIN_SLAVE = const(19)
EXITED_EXECUTOR = const(20)
_UNREGISTER_SLAVE = const(21)
_UPDATE_SLAVE = const(22)
_APPLY_OPERATION = const(23)
_RECONCILE_OPERATIONS = const(24)
_ACK_OPERATION_STATUS = const(25)

COUNT = const(26)  # ids 0 .. COUNT - 1

# Every name is "mesos.internal." and a type name: the prefix once, then the type names back to back, and their
# lengths in id order from 1. Two literals: in flash when frozen, two objects when loaded (a bytes object per
# name and a hash table built at import held 1.2 KB more on the loaded 32-bit build, 144 B more frozen).
_PREFIX = const(15)
_ALL = (
    b"mesos.internal."
    b"RegisterSlaveMessageReregisterSlaveMessageSlaveRegisteredMessageSlaveReregisteredMessage"
    b"PingSlaveMessagePongSlaveMessageRunTaskMessageRunTaskGroupMessageKillTaskMessage"
    b"StatusUpdateMessageStatusUpdateAcknowledgementMessageShutdownFrameworkMessage"
    b"ShutdownExecutorMessageUpdateFrameworkMessageCheckpointResourcesMessage"
    b"FrameworkToExecutorMessageExecutorToFrameworkMessageShutdownMessageDrainSlaveMessage"
    b"ExitedExecutorMessageUnregisterSlaveMessageUpdateSlaveMessageApplyOperationMessage"
    b"ReconcileOperationsMessageAcknowledgeOperationStatusMessage"
)
_LEN = b"\x00\x14\x16\x16\x18\x10\x10\x0e\x13\x0f\x13\x22\x18\x17\x16\x1a\x1a\x1a\x0f\x11\x15\x16\x12\x15\x1a\x21"
PONG = b"mesos.internal.PongSlaveMessage"  # the pong path sends this object: nothing allocated per ping


def lookup(buf, start, end):
    """Id of the message name held in buf[start:end], or 0 if it is none of these. Allocates nothing (every frame here stays
    within the 11 words MicroPython keeps off the heap)."""
    end -= start  # from here on: the name's length
    if end <= _PREFIX or _differ(buf, start, 0, _PREFIX):
        return _UNKNOWN
    start += _PREFIX
    end -= _PREFIX
    p = _PREFIX
    for i in range(1, COUNT):
        if _LEN[i] == end and not _differ(buf, start, p, end):
            return i
        p += _LEN[i]
    return _UNKNOWN


def _differ(buf, start, p, n):
    for p in range(p, p + n):
        if buf[start] != _ALL[p]:
            return True
        start += 1
    return False


def _span(i):
    p = _PREFIX
    for j in range(1, i):
        p += _LEN[j]
    return p, p + _LEN[i]


def name(i):
    """b"mesos.internal.PingSlaveMessage" for PING_SLAVE (allocates: for sends; the pong has PONG)."""
    if not 0 < i < COUNT:
        raise ValueError("no message id %r" % (i,))
    a, b = _span(i)
    return _ALL[:_PREFIX] + _ALL[a:b]


def short(i):
    """'PingSlaveMessage' for logs (allocates; not for hot paths)."""
    if not 0 < i < COUNT:
        return "?"
    a, b = _span(i)
    return _ALL[a:b].decode()
