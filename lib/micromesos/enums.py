# Every message type and enum value by its proto name, for tools and tests: schema.__getattr__ looks here.
# MIT licence. The agent never imports this: lib/ reads only schema's globals (tests/test_codec_vectors.py).
from . import schema

# Each enum: its first value, then its names in number order (numbers from mesos.proto). TaskState's names
# are schema's own (/state prints them).
_GROUPS = (
    "0 SCALAR RANGES SET TEXT",  # Value.Type
    "0 SOURCE_MASTER SOURCE_SLAVE SOURCE_EXECUTOR",  # TaskStatus.Source
    # TaskStatus.Reason
    "0 REASON_COMMAND_EXECUTOR_FAILED REASON_EXECUTOR_TERMINATED REASON_EXECUTOR_UNREGISTERED "
    "REASON_FRAMEWORK_REMOVED REASON_GC_ERROR REASON_INVALID_FRAMEWORKID REASON_INVALID_OFFERS "
    "REASON_MASTER_DISCONNECTED REASON_CONTAINER_LIMITATION_MEMORY REASON_RECONCILIATION "
    "REASON_SLAVE_DISCONNECTED REASON_SLAVE_REMOVED REASON_SLAVE_RESTARTED REASON_SLAVE_UNKNOWN "
    "REASON_TASK_INVALID REASON_TASK_UNAUTHORIZED REASON_TASK_UNKNOWN REASON_CONTAINER_PREEMPTED "
    "REASON_RESOURCES_UNKNOWN REASON_CONTAINER_LIMITATION REASON_CONTAINER_LIMITATION_DISK "
    "REASON_CONTAINER_LAUNCH_FAILED REASON_CONTAINER_UPDATE_FAILED REASON_EXECUTOR_REGISTRATION_TIMEOUT "
    "REASON_EXECUTOR_REREGISTRATION_TIMEOUT REASON_TASK_GROUP_INVALID REASON_TASK_GROUP_UNAUTHORIZED "
    "REASON_IO_SWITCHBOARD_EXITED REASON_TASK_CHECK_STATUS_UPDATED REASON_TASK_HEALTH_CHECK_STATUS_UPDATED "
    "REASON_TASK_KILLED_DURING_LAUNCH REASON_SLAVE_REMOVED_BY_OPERATOR REASON_SLAVE_REREGISTERED "
    "REASON_MAX_COMPLETION_TIME_REACHED REASON_SLAVE_DRAINING",
    # SlaveInfo.Capability.Type
    "1 MULTI_ROLE HIERARCHICAL_ROLE RESERVATION_REFINEMENT RESOURCE_PROVIDER RESIZE_VOLUME "
    "AGENT_OPERATION_FEEDBACK AGENT_DRAINING TASK_RESOURCE_LIMITS",
    # FrameworkInfo.Capability.Type: its own numbering, hence the FW_ prefix
    "1 FW_REVOCABLE_RESOURCES FW_TASK_KILLING_STATE FW_GPU_RESOURCES FW_SHARED_RESOURCES "
    "FW_PARTITION_AWARE FW_MULTI_ROLE FW_RESERVATION_REFINEMENT FW_REGION_AWARE",
    "1 EXECUTOR_DEFAULT EXECUTOR_CUSTOM",  # ExecutorInfo.Type
    # schema.fields() kinds
    "0 K_INT32 K_INT64 K_UINT32 K_UINT64 K_BOOL K_ENUM K_DOUBLE K_STRING K_BYTES K_MSG K_ID",
)


def value(n):
    """The number of the message type or enum value named n; AttributeError if there is none."""
    for T in range(schema.NTYPES):
        if schema.name(T) == n:
            return T
    for s in range(schema.TASK_UNKNOWN + 1):
        if schema.task_state_name(s) == n:
            return s
    for g in _GROUPS:
        words = g.split(" ")
        if n in words[1:]:
            return int(words[0]) + words.index(n) - 1
    raise AttributeError(n)
