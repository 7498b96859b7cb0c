# libprocess message names <-> small int ids, looked up in place without allocating.
# MIT licence. The name on the wire is the full protobuf type name (PROTOCOL.md §1.3).
from micropython import const

# Ids: index into NAMES. 0 means "not a name we know" (dropped and logged by the agent).
UNKNOWN = const(0)
REGISTER_SLAVE = const(1)
REREGISTER_SLAVE = const(2)
SLAVE_REGISTERED = const(3)
SLAVE_REREGISTERED = const(4)
PING_SLAVE = const(5)
PONG_SLAVE = const(6)
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
DRAIN_SLAVE = const(19)
EXITED_EXECUTOR = const(20)
UNREGISTER_SLAVE = const(21)
UPDATE_SLAVE = const(22)
APPLY_OPERATION = const(23)
RECONCILE_OPERATIONS = const(24)
ACK_OPERATION_STATUS = const(25)

NAMES = (
    b"",
    b"mesos.internal.RegisterSlaveMessage",
    b"mesos.internal.ReregisterSlaveMessage",
    b"mesos.internal.SlaveRegisteredMessage",
    b"mesos.internal.SlaveReregisteredMessage",
    b"mesos.internal.PingSlaveMessage",
    b"mesos.internal.PongSlaveMessage",
    b"mesos.internal.RunTaskMessage",
    b"mesos.internal.RunTaskGroupMessage",
    b"mesos.internal.KillTaskMessage",
    b"mesos.internal.StatusUpdateMessage",
    b"mesos.internal.StatusUpdateAcknowledgementMessage",
    b"mesos.internal.ShutdownFrameworkMessage",
    b"mesos.internal.ShutdownExecutorMessage",
    b"mesos.internal.UpdateFrameworkMessage",
    b"mesos.internal.CheckpointResourcesMessage",
    b"mesos.internal.FrameworkToExecutorMessage",
    b"mesos.internal.ExecutorToFrameworkMessage",
    b"mesos.internal.ShutdownMessage",
    b"mesos.internal.DrainSlaveMessage",
    b"mesos.internal.ExitedExecutorMessage",
    b"mesos.internal.UnregisterSlaveMessage",
    b"mesos.internal.UpdateSlaveMessage",
    b"mesos.internal.ApplyOperationMessage",
    b"mesos.internal.ReconcileOperationsMessage",
    b"mesos.internal.AcknowledgeOperationStatusMessage",
)

_MASK = const(0xFFFFFF)  # h * 33 + c stays below 2**30: a small int on 32-bit ports, no allocation


def _hash(buf, start, end):
    h = 5381
    for i in range(start, end):
        h = (h * 33 + buf[i]) & _MASK
    return h


_BY_HASH = {}
for _i in range(1, len(NAMES)):
    _BY_HASH[_hash(NAMES[_i], 0, len(NAMES[_i]))] = _i
if len(_BY_HASH) != len(NAMES) - 1:
    raise ImportError("names: hash collision")  # caught at build time by the tests


def lookup(buf, start, end):
    """Id of the message name held in buf[start:end], or UNKNOWN. Allocates nothing."""
    i = _BY_HASH.get(_hash(buf, start, end), 0)
    if i:
        name = NAMES[i]
        if len(name) != end - start:
            return UNKNOWN
        for j in range(end - start):
            if buf[start + j] != name[j]:
                return UNKNOWN
    return i


def short(i):
    """'PingSlaveMessage' for logs (allocates; not for hot paths)."""
    return NAMES[i][15:].decode() if 0 < i < len(NAMES) else "?"
