# The Mesos message tables the codec walks (PROTOCOL.md §3), enum constants, libprocess kind -> message type.
# MIT licence. Numbers and types: apache/mesos include/mesos/mesos.proto, src/messages/messages.proto.
from micropython import const

# A message type is a small int named as in the proto; nested types join with an underscore
# (schema.SlaveInfo, schema.Value_Scalar for Value.Scalar, schema.SlaveInfo_Capability). TYPES[T] is its
# descriptor, a tuple built once at import:
#     ("Value_Scalar", f0, "name0", f1, "name1", ...)     fields in field-number order (protoc's order)
# The type name is the same string as the module attribute, so the two share one interned qstr. Each f:
#     bits 0-7 field number | 8-11 kind (K_*) | 12-13 label | 14 raw | 15+ sub-message type
# Label: optional 0, required REQ, repeated REP. RAW marks sub-messages the agent echoes back unchanged
# (§1.8): decode(raw=True) returns their exact wire bytes. Sub-message type 0 (OPAQUE) is a message the
# micro agent never looks inside (DiskInfo, Secret, CheckInfo, DomainInfo, ...): always kept as bytes.
# RAM (measured on the 64-bit unix port, see tools/bench/bench_codec.py): every table here is a qstr or a
# tuple slot, so types the agent never reads (MasterInfo, DomainInfo, operation messages) are left out.
# K_ID is a message whose only field is `1: string value` (SlaveID, FrameworkID, TaskID, ExecutorID,
# OfferID, ResourceProviderID, OperationID): the codec represents it as the plain str, both ways.

FN_MASK = const(0xFF)
KIND_SHIFT = const(8)
REQ = const(1 << 12)
REP = const(2 << 12)
RAW = const(1 << 14)
SUB_SHIFT = const(15)

K_INT32 = const(0)
K_INT64 = const(1)
K_UINT32 = const(2)
K_UINT64 = const(3)
K_BOOL = const(4)
K_ENUM = const(5)  # int32 on the wire
K_DOUBLE = const(6)
K_STRING = const(7)
K_BYTES = const(8)
K_MSG = const(9)
K_ID = const(10)

_I32 = const(K_INT32 << 8)
_I64 = const(K_INT64 << 8)
_U32 = const(K_UINT32 << 8)
_U64 = const(K_UINT64 << 8)
_BOOL = const(K_BOOL << 8)
_ENUM = const(K_ENUM << 8)
_DBL = const(K_DOUBLE << 8)
_STR = const(K_STRING << 8)
_BYT = const(K_BYTES << 8)
_MSG = const(K_MSG << 8)
_ID = const(K_ID << 8)
_RQ = const(REQ)
_RP = const(REP)
_RAW = const(RAW)
_S = const(SUB_SHIFT)

# --- message type ids ---------------------------------------------------------------------------
OPAQUE = const(0)
Value_Scalar = const(1)
Value_Range = const(2)
Value_Ranges = const(3)
Value_Set = const(4)
Value_Text = const(5)
Value = const(6)
Attribute = const(7)
Label = const(8)
Labels = const(9)
Resource_AllocationInfo = const(10)
Resource_ReservationInfo = const(11)
Resource_RevocableInfo = const(12)
Resource_SharedInfo = const(13)
Resource = const(14)
DurationInfo = const(15)
TimeInfo = const(16)
KillPolicy = const(17)
UUID = const(18)
SlaveInfo_Capability = const(19)
SlaveInfo = const(20)
FrameworkInfo_Capability = const(21)
FrameworkInfo_OfferFiltersEntry = const(22)
FrameworkInfo = const(23)
CommandInfo_URI = const(24)
Environment_Variable = const(25)
Environment = const(26)
CommandInfo = const(27)
NetworkInfo_IPAddress = const(28)
NetworkInfo_PortMapping = const(29)
NetworkInfo = const(30)
ContainerInfo = const(31)
HealthCheck_HTTPCheckInfo = const(32)
HealthCheck_TCPCheckInfo = const(33)
HealthCheck = const(34)
Port = const(35)
Ports = const(36)
DiscoveryInfo = const(37)
ExecutorInfo = const(38)
TaskInfo_LimitsEntry = const(39)
TaskInfo = const(40)
TaskGroupInfo = const(41)
ContainerID = const(42)
ContainerStatus = const(43)
CheckStatusInfo_Command = const(44)
CheckStatusInfo_Http = const(45)
CheckStatusInfo_Tcp = const(46)
CheckStatusInfo = const(47)
TaskResourceLimitation = const(48)
TaskStatus = const(49)
Task = const(50)
StatusUpdate = const(51)
StatusUpdateMessage = const(52)
StatusUpdateAcknowledgementMessage = const(53)
RegisterSlaveMessage = const(54)
Archive_Framework = const(55)
ReregisterSlaveMessage = const(56)
MasterSlaveConnection = const(57)
SlaveRegisteredMessage = const(58)
ReconcileTasksMessage = const(59)
SlaveReregisteredMessage = const(60)
PingSlaveMessage = const(61)
PongSlaveMessage = const(62)
UnregisterSlaveMessage = const(63)
ResourceVersionUUID = const(64)
RunTaskMessage = const(65)
RunTaskGroupMessage = const(66)
KillTaskMessage = const(67)
ShutdownFrameworkMessage = const(68)
ShutdownExecutorMessage = const(69)
UpdateFrameworkMessage = const(70)
CheckpointResourcesMessage = const(71)
ExitedExecutorMessage = const(72)
ExecutorToFrameworkMessage = const(73)
FrameworkToExecutorMessage = const(74)
ShutdownMessage = const(75)
DrainConfig = const(76)
DrainSlaveMessage = const(77)
UpdateSlaveMessage_Operations = const(78)
UpdateSlaveMessage_ResourceProviders = const(79)
UpdateSlaveMessage = const(80)

# --- enums (numbers from mesos.proto; §3.2, §3.5, §3.7, §3.9) -------------------------------------
# Value.Type
SCALAR = const(0)
RANGES = const(1)
SET = const(2)
TEXT = const(3)
# TaskState
TASK_STARTING = const(0)
TASK_RUNNING = const(1)
TASK_FINISHED = const(2)
TASK_FAILED = const(3)
TASK_KILLED = const(4)
TASK_LOST = const(5)
TASK_STAGING = const(6)
TASK_ERROR = const(7)
TASK_KILLING = const(8)
TASK_DROPPED = const(9)
TASK_UNREACHABLE = const(10)
TASK_GONE = const(11)
TASK_GONE_BY_OPERATOR = const(12)
TASK_UNKNOWN = const(13)
# TaskStatus.Source
SOURCE_MASTER = const(0)
SOURCE_SLAVE = const(1)
SOURCE_EXECUTOR = const(2)
# TaskStatus.Reason
REASON_COMMAND_EXECUTOR_FAILED = const(0)
REASON_EXECUTOR_TERMINATED = const(1)
REASON_EXECUTOR_UNREGISTERED = const(2)
REASON_FRAMEWORK_REMOVED = const(3)
REASON_GC_ERROR = const(4)
REASON_INVALID_FRAMEWORKID = const(5)
REASON_INVALID_OFFERS = const(6)
REASON_MASTER_DISCONNECTED = const(7)
REASON_CONTAINER_LIMITATION_MEMORY = const(8)
REASON_RECONCILIATION = const(9)
REASON_SLAVE_DISCONNECTED = const(10)
REASON_SLAVE_REMOVED = const(11)
REASON_SLAVE_RESTARTED = const(12)
REASON_SLAVE_UNKNOWN = const(13)
REASON_TASK_INVALID = const(14)
REASON_TASK_UNAUTHORIZED = const(15)
REASON_TASK_UNKNOWN = const(16)
REASON_CONTAINER_PREEMPTED = const(17)
REASON_RESOURCES_UNKNOWN = const(18)
REASON_CONTAINER_LIMITATION = const(19)
REASON_CONTAINER_LIMITATION_DISK = const(20)
REASON_CONTAINER_LAUNCH_FAILED = const(21)
REASON_CONTAINER_UPDATE_FAILED = const(22)
REASON_EXECUTOR_REGISTRATION_TIMEOUT = const(23)
REASON_EXECUTOR_REREGISTRATION_TIMEOUT = const(24)
REASON_TASK_GROUP_INVALID = const(25)
REASON_TASK_GROUP_UNAUTHORIZED = const(26)
REASON_IO_SWITCHBOARD_EXITED = const(27)
REASON_TASK_CHECK_STATUS_UPDATED = const(28)
REASON_TASK_HEALTH_CHECK_STATUS_UPDATED = const(29)
REASON_TASK_KILLED_DURING_LAUNCH = const(30)
REASON_SLAVE_REMOVED_BY_OPERATOR = const(31)
REASON_SLAVE_REREGISTERED = const(32)
REASON_MAX_COMPLETION_TIME_REACHED = const(33)
REASON_SLAVE_DRAINING = const(34)
# SlaveInfo.Capability.Type
MULTI_ROLE = const(1)
HIERARCHICAL_ROLE = const(2)
RESERVATION_REFINEMENT = const(3)
RESOURCE_PROVIDER = const(4)
RESIZE_VOLUME = const(5)
AGENT_OPERATION_FEEDBACK = const(6)
AGENT_DRAINING = const(7)
TASK_RESOURCE_LIMITS = const(8)
# FrameworkInfo.Capability.Type: its own numbering, hence the FW_ prefix
FW_REVOCABLE_RESOURCES = const(1)
FW_TASK_KILLING_STATE = const(2)
FW_GPU_RESOURCES = const(3)
FW_SHARED_RESOURCES = const(4)
FW_PARTITION_AWARE = const(5)
FW_MULTI_ROLE = const(6)
FW_RESERVATION_REFINEMENT = const(7)
FW_REGION_AWARE = const(8)
# ExecutorInfo.Type
EXECUTOR_DEFAULT = const(1)
EXECUTOR_CUSTOM = const(2)

# /state prints task states by name (§5). Other enums' names live in the tests, not on the device.
TASK_STATE_NAMES = ("TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED",
                    "TASK_LOST", "TASK_STAGING", "TASK_ERROR", "TASK_KILLING", "TASK_DROPPED",
                    "TASK_UNREACHABLE", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN")


def task_state_name(state):
    """'TASK_RUNNING' for 1; None for a number this table doesn't know."""
    return TASK_STATE_NAMES[state] if 0 <= state < len(TASK_STATE_NAMES) else None


def name(T):
    """The name of message type T, e.g. 'Value_Scalar' for Value.Scalar (for logs and errors)."""
    return TYPES[T][0]


# --- descriptors, indexed by type id ------------------------------------------------------------


def _t(*d):
    return d


# Built by calls on purpose, not as constant tuples: in a .mpy, strings inside constant tuples load as
# separate str objects (measured: +17 KB on the unix port), while strings passed as arguments are the
# module's interned qstrs, shared with every decoded dict's keys. No global name per table either.
TYPES = (
    _t("OPAQUE",),
    _t("Value_Scalar", 1 | _DBL | _RQ, "value"),
    _t("Value_Range", 1 | _U64 | _RQ, "begin", 2 | _U64 | _RQ, "end"),
    _t("Value_Ranges", 1 | _MSG | _RP | Value_Range << _S, "range"),
    _t("Value_Set", 1 | _STR | _RP, "item"),
    _t("Value_Text", 1 | _STR | _RQ, "value"),
    _t("Value", 1 | _ENUM | _RQ, "type", 2 | _MSG | Value_Scalar << _S, "scalar",
       3 | _MSG | Value_Ranges << _S, "ranges", 4 | _MSG | Value_Set << _S, "set",
       5 | _MSG | Value_Text << _S, "text"),
    # Attribute: set is 6 and text 5, the other way round from Resource (§3.3).
    _t("Attribute", 1 | _STR | _RQ, "name", 2 | _ENUM | _RQ, "type",
       3 | _MSG | Value_Scalar << _S, "scalar", 4 | _MSG | Value_Ranges << _S, "ranges",
       5 | _MSG | Value_Text << _S, "text", 6 | _MSG | Value_Set << _S, "set"),
    _t("Label", 1 | _STR | _RQ, "key", 2 | _STR, "value"),
    _t("Labels", 1 | _MSG | _RP | Label << _S, "labels"),
    _t("Resource_AllocationInfo", 1 | _STR, "role"),
    _t("Resource_ReservationInfo", 1 | _STR, "principal", 2 | _MSG | Labels << _S, "labels",
       3 | _STR, "role", 4 | _ENUM, "type"),
    _t("Resource_RevocableInfo",),
    _t("Resource_SharedInfo",),
    # Resource.disk (DiskInfo: volumes, CSI sources) is opaque: the micro agent offers no volumes.
    _t("Resource", 1 | _STR | _RQ, "name", 2 | _ENUM | _RQ, "type",
       3 | _MSG | Value_Scalar << _S, "scalar", 4 | _MSG | Value_Ranges << _S, "ranges",
       5 | _MSG | Value_Set << _S, "set", 6 | _STR, "role", 7 | _MSG, "disk",
       8 | _MSG | Resource_ReservationInfo << _S, "reservation",
       9 | _MSG | Resource_RevocableInfo << _S, "revocable",
       10 | _MSG | Resource_SharedInfo << _S, "shared",
       11 | _MSG | Resource_AllocationInfo << _S, "allocation_info", 12 | _ID, "provider_id",
       13 | _MSG | _RP | Resource_ReservationInfo << _S, "reservations"),
    _t("DurationInfo", 1 | _I64 | _RQ, "nanoseconds"),
    _t("TimeInfo", 1 | _I64 | _RQ, "nanoseconds"),
    _t("KillPolicy", 1 | _MSG | DurationInfo << _S, "grace_period"),
    _t("UUID", 1 | _BYT | _RQ, "value"),
    _t("SlaveInfo_Capability", 1 | _ENUM, "type"),
    # SlaveInfo.domain is opaque: the micro agent leaves it out (§3.5).
    _t("SlaveInfo", 1 | _STR | _RQ, "hostname", 3 | _MSG | _RP | _RAW | Resource << _S, "resources",
       5 | _MSG | _RP | Attribute << _S, "attributes", 6 | _ID, "id", 7 | _BOOL, "checkpoint",
       8 | _I32, "port", 10 | _MSG, "domain"),
    _t("FrameworkInfo_Capability", 1 | _ENUM, "type"),
    # map<string, OfferFilters> is a repeated entry message {1: key, 2: value} (§1.8); the value is opaque.
    _t("FrameworkInfo_OfferFiltersEntry", 1 | _STR, "key", 2 | _MSG, "value"),
    _t("FrameworkInfo", 1 | _STR | _RQ, "user", 2 | _STR | _RQ, "name", 3 | _ID, "id",
       4 | _DBL, "failover_timeout", 5 | _BOOL, "checkpoint", 6 | _STR, "role", 7 | _STR, "hostname",
       8 | _STR, "principal", 9 | _STR, "webui_url",
       10 | _MSG | _RP | FrameworkInfo_Capability << _S, "capabilities",
       11 | _MSG | Labels << _S, "labels", 12 | _STR | _RP, "roles",
       13 | _MSG | _RP | FrameworkInfo_OfferFiltersEntry << _S, "offer_filters"),
    _t("CommandInfo_URI", 1 | _STR | _RQ, "value", 2 | _BOOL, "executable", 3 | _BOOL, "extract",
       4 | _BOOL, "cache", 5 | _STR, "output_file"),
    _t("Environment_Variable", 1 | _STR | _RQ, "name", 2 | _STR, "value", 3 | _ENUM, "type",
       4 | _MSG, "secret"),
    _t("Environment", 1 | _MSG | _RP | Environment_Variable << _S, "variables"),
    _t("CommandInfo", 1 | _MSG | _RP | CommandInfo_URI << _S, "uris",
       2 | _MSG | Environment << _S, "environment", 3 | _STR, "value", 5 | _STR, "user",
       6 | _BOOL, "shell", 7 | _STR | _RP, "arguments"),
    _t("NetworkInfo_IPAddress", 1 | _ENUM, "protocol", 2 | _STR, "ip_address"),
    _t("NetworkInfo_PortMapping", 1 | _U32 | _RQ, "host_port", 2 | _U32 | _RQ, "container_port",
       3 | _STR, "protocol"),
    _t("NetworkInfo", 3 | _STR | _RP, "groups", 4 | _MSG | Labels << _S, "labels",
       5 | _MSG | _RP | NetworkInfo_IPAddress << _S, "ip_addresses", 6 | _STR, "name",
       7 | _MSG | _RP | NetworkInfo_PortMapping << _S, "port_mappings"),
    # Docker/Mesos images, volumes, Linux and rlimit settings are opaque: the micro agent runs no containers.
    _t("ContainerInfo", 1 | _ENUM | _RQ, "type", 2 | _MSG | _RP, "volumes", 3 | _MSG, "docker",
       4 | _STR, "hostname", 5 | _MSG, "mesos", 7 | _MSG | _RP | NetworkInfo << _S, "network_infos",
       8 | _MSG, "linux_info", 9 | _MSG, "rlimit_info", 10 | _MSG, "tty_info"),
    _t("HealthCheck_HTTPCheckInfo", 1 | _U32 | _RQ, "port", 2 | _STR, "path", 3 | _STR, "scheme",
       4 | _U32 | _RP, "statuses", 5 | _ENUM, "protocol"),
    _t("HealthCheck_TCPCheckInfo", 1 | _U32 | _RQ, "port", 2 | _ENUM, "protocol"),
    _t("HealthCheck", 1 | _MSG | HealthCheck_HTTPCheckInfo << _S, "http", 2 | _DBL, "delay_seconds",
       3 | _DBL, "interval_seconds", 4 | _DBL, "timeout_seconds", 5 | _U32, "consecutive_failures",
       6 | _DBL, "grace_period_seconds", 7 | _MSG | CommandInfo << _S, "command", 8 | _ENUM, "type",
       9 | _MSG | HealthCheck_TCPCheckInfo << _S, "tcp"),
    _t("Port", 1 | _U32 | _RQ, "number", 2 | _STR, "name", 3 | _STR, "protocol", 4 | _ENUM, "visibility",
       5 | _MSG | Labels << _S, "labels"),
    _t("Ports", 1 | _MSG | _RP | Port << _S, "ports"),
    _t("DiscoveryInfo", 1 | _ENUM | _RQ, "visibility", 2 | _STR, "name", 3 | _STR, "environment",
       4 | _STR, "location", 5 | _STR, "version", 6 | _MSG | Ports << _S, "ports",
       7 | _MSG | Labels << _S, "labels"),
    _t("ExecutorInfo", 1 | _ID | _RQ, "executor_id", 4 | _BYT, "data",
       5 | _MSG | _RP | _RAW | Resource << _S, "resources", 7 | _MSG | CommandInfo << _S, "command",
       8 | _ID, "framework_id", 9 | _STR, "name", 10 | _STR, "source",
       11 | _MSG | ContainerInfo << _S, "container", 12 | _MSG | DiscoveryInfo << _S, "discovery",
       13 | _MSG | DurationInfo << _S, "shutdown_grace_period", 14 | _MSG | Labels << _S, "labels",
       15 | _ENUM, "type"),
    _t("TaskInfo_LimitsEntry", 1 | _STR, "key", 2 | _MSG | Value_Scalar << _S, "value"),
    # The TaskInfo parts a re-registration Task copies (§3.12) are RAW; TaskInfo.check is opaque.
    _t("TaskInfo", 1 | _STR | _RQ, "name", 2 | _ID | _RQ, "task_id", 3 | _ID | _RQ, "slave_id",
       4 | _MSG | _RP | _RAW | Resource << _S, "resources", 5 | _MSG | _RAW | ExecutorInfo << _S, "executor",
       6 | _BYT, "data", 7 | _MSG | CommandInfo << _S, "command",
       8 | _MSG | _RAW | HealthCheck << _S, "health_check",
       9 | _MSG | _RAW | ContainerInfo << _S, "container",
       10 | _MSG | _RAW | Labels << _S, "labels", 11 | _MSG | _RAW | DiscoveryInfo << _S, "discovery",
       12 | _MSG | _RAW | KillPolicy << _S, "kill_policy", 13 | _MSG, "check",
       14 | _MSG | DurationInfo << _S, "max_completion_time",
       15 | _MSG | _RP | _RAW | TaskInfo_LimitsEntry << _S, "limits"),
    _t("TaskGroupInfo", 1 | _MSG | _RP | TaskInfo << _S, "tasks"),
    _t("ContainerID", 1 | _STR | _RQ, "value", 2 | _MSG | ContainerID << _S, "parent"),
    _t("ContainerStatus", 1 | _MSG | _RP | NetworkInfo << _S, "network_infos", 2 | _MSG, "cgroup_info",
       3 | _U32, "executor_pid", 4 | _MSG | ContainerID << _S, "container_id"),
    _t("CheckStatusInfo_Command", 1 | _I32, "exit_code"),
    _t("CheckStatusInfo_Http", 1 | _U32, "status_code"),
    _t("CheckStatusInfo_Tcp", 1 | _BOOL, "succeeded"),
    _t("CheckStatusInfo", 1 | _ENUM, "type", 2 | _MSG | CheckStatusInfo_Command << _S, "command",
       3 | _MSG | CheckStatusInfo_Http << _S, "http", 4 | _MSG | CheckStatusInfo_Tcp << _S, "tcp"),
    _t("TaskResourceLimitation", 1 | _MSG | _RP | _RAW | Resource << _S, "resources"),
    _t("TaskStatus", 1 | _ID | _RQ, "task_id", 2 | _ENUM | _RQ, "state", 3 | _BYT, "data",
       4 | _STR, "message", 5 | _ID, "slave_id", 6 | _DBL, "timestamp", 7 | _ID, "executor_id",
       8 | _BOOL, "healthy", 9 | _ENUM, "source", 10 | _ENUM, "reason", 11 | _BYT, "uuid",
       12 | _MSG | Labels << _S, "labels", 13 | _MSG | ContainerStatus << _S, "container_status",
       14 | _MSG | TimeInfo << _S, "unreachable_time", 15 | _MSG | CheckStatusInfo << _S, "check_status",
       16 | _MSG | TaskResourceLimitation << _S, "limitation"),
    # Task numbers differ from TaskInfo (slave_id 5, resources 7): copy the parts, not the bytes (§3.12).
    _t("Task", 1 | _STR | _RQ, "name", 2 | _ID | _RQ, "task_id", 3 | _ID | _RQ, "framework_id",
       4 | _ID, "executor_id", 5 | _ID | _RQ, "slave_id", 6 | _ENUM | _RQ, "state",
       7 | _MSG | _RP | _RAW | Resource << _S, "resources", 8 | _MSG | _RP | TaskStatus << _S, "statuses",
       9 | _ENUM, "status_update_state", 10 | _BYT, "status_update_uuid",
       11 | _MSG | _RAW | Labels << _S, "labels", 12 | _MSG | _RAW | DiscoveryInfo << _S, "discovery",
       13 | _MSG | _RAW | ContainerInfo << _S, "container", 14 | _STR, "user",
       15 | _MSG | _RAW | HealthCheck << _S, "health_check",
       16 | _MSG | _RAW | KillPolicy << _S, "kill_policy",
       17 | _MSG | _RP | _RAW | TaskInfo_LimitsEntry << _S, "limits"),
    _t("StatusUpdate", 1 | _ID | _RQ, "framework_id", 2 | _ID, "executor_id", 3 | _ID, "slave_id",
       4 | _MSG | _RQ | TaskStatus << _S, "status", 5 | _DBL | _RQ, "timestamp", 6 | _BYT, "uuid",
       7 | _ENUM, "latest_state"),
    _t("StatusUpdateMessage", 1 | _MSG | _RQ | StatusUpdate << _S, "update", 2 | _STR, "pid"),
    _t("StatusUpdateAcknowledgementMessage", 1 | _ID | _RQ, "slave_id",
       2 | _ID | _RQ, "framework_id", 3 | _ID | _RQ, "task_id", 4 | _BYT | _RQ, "uuid"),
    _t("RegisterSlaveMessage", 1 | _MSG | _RQ | SlaveInfo << _S, "slave", 2 | _STR, "version",
       3 | _MSG | _RP | _RAW | Resource << _S, "checkpointed_resources",
       4 | _MSG | _RP | SlaveInfo_Capability << _S, "agent_capabilities",
       5 | _MSG | UUID << _S, "resource_version_uuid"),
    _t("Archive_Framework", 1 | _MSG | _RQ | _RAW | FrameworkInfo << _S, "framework_info",
       2 | _STR, "pid", 3 | _MSG | _RP | Task << _S, "tasks"),
    _t("ReregisterSlaveMessage", 2 | _MSG | _RQ | SlaveInfo << _S, "slave",
       3 | _MSG | _RP | Task << _S, "tasks",
       4 | _MSG | _RP | _RAW | ExecutorInfo << _S, "executor_infos",
       5 | _MSG | _RP | Archive_Framework << _S, "completed_frameworks", 6 | _STR, "version",
       7 | _MSG | _RP | _RAW | Resource << _S, "checkpointed_resources",
       8 | _MSG | _RP | _RAW | FrameworkInfo << _S, "frameworks",
       9 | _MSG | _RP | SlaveInfo_Capability << _S, "agent_capabilities",
       10 | _MSG | UUID << _S, "resource_version_uuid"),
    _t("MasterSlaveConnection", 1 | _DBL, "total_ping_timeout_seconds"),
    _t("SlaveRegisteredMessage", 1 | _ID | _RQ, "slave_id",
       2 | _MSG | MasterSlaveConnection << _S, "connection"),
    _t("ReconcileTasksMessage", 1 | _ID | _RQ, "framework_id",
       2 | _MSG | _RP | TaskStatus << _S, "statuses",
       3 | _MSG | _RAW | FrameworkInfo << _S, "framework"),
    _t("SlaveReregisteredMessage", 1 | _ID | _RQ, "slave_id",
       2 | _MSG | _RP | ReconcileTasksMessage << _S, "reconciliations",
       3 | _MSG | MasterSlaveConnection << _S, "connection"),
    _t("PingSlaveMessage", 1 | _BOOL | _RQ, "connected"),
    _t("PongSlaveMessage",),
    _t("UnregisterSlaveMessage", 1 | _ID | _RQ, "slave_id"),
    _t("ResourceVersionUUID", 1 | _ID, "resource_provider_id", 2 | _MSG | _RQ | UUID << _S, "uuid"),
    _t("RunTaskMessage", 1 | _ID, "framework_id", 2 | _MSG | _RQ | _RAW | FrameworkInfo << _S, "framework",
       3 | _STR, "pid", 4 | _MSG | _RQ | TaskInfo << _S, "task",
       5 | _MSG | _RP | ResourceVersionUUID << _S, "resource_version_uuids", 6 | _BOOL, "launch_executor"),
    _t("RunTaskGroupMessage", 1 | _MSG | _RQ | _RAW | FrameworkInfo << _S, "framework",
       2 | _MSG | _RQ | _RAW | ExecutorInfo << _S, "executor",
       3 | _MSG | _RQ | TaskGroupInfo << _S, "task_group",
       4 | _MSG | _RP | ResourceVersionUUID << _S, "resource_version_uuids",
       5 | _BOOL, "launch_executor"),
    _t("KillTaskMessage", 1 | _ID | _RQ, "framework_id", 2 | _ID | _RQ, "task_id",
       3 | _MSG | KillPolicy << _S, "kill_policy"),
    _t("ShutdownFrameworkMessage", 1 | _ID | _RQ, "framework_id"),
    _t("ShutdownExecutorMessage", 1 | _ID, "executor_id", 2 | _ID, "framework_id"),
    _t("UpdateFrameworkMessage", 1 | _ID | _RQ, "framework_id", 2 | _STR, "pid",
       3 | _MSG | _RAW | FrameworkInfo << _S, "framework_info"),
    _t("CheckpointResourcesMessage", 1 | _MSG | _RP | _RAW | Resource << _S, "resources"),
    _t("ExitedExecutorMessage", 1 | _ID | _RQ, "slave_id", 2 | _ID | _RQ, "framework_id",
       3 | _ID | _RQ, "executor_id", 4 | _I32 | _RQ, "status"),
    _t("ExecutorToFrameworkMessage", 1 | _ID | _RQ, "slave_id", 2 | _ID | _RQ, "framework_id",
       3 | _ID | _RQ, "executor_id", 4 | _BYT | _RQ, "data"),
    _t("FrameworkToExecutorMessage", 1 | _ID | _RQ, "slave_id", 2 | _ID | _RQ, "framework_id",
       3 | _ID | _RQ, "executor_id", 4 | _BYT | _RQ, "data"),
    _t("ShutdownMessage", 1 | _STR, "message"),
    _t("DrainConfig", 1 | _MSG | DurationInfo << _S, "max_grace_period", 2 | _BOOL, "mark_gone"),
    _t("DrainSlaveMessage", 1 | _MSG | _RQ | DrainConfig << _S, "config"),
    # UpdateSlaveMessage is only sent by agents with resource providers (§2.9); Operation and
    # ResourceProvider entries are opaque.
    _t("UpdateSlaveMessage_Operations", 1 | _MSG | _RP, "operations"),
    _t("UpdateSlaveMessage_ResourceProviders", 1 | _MSG | _RP, "providers"),
    _t("UpdateSlaveMessage", 1 | _ID | _RQ, "slave_id",
       2 | _MSG | _RP | _RAW | Resource << _S, "oversubscribed_resources",
       5 | _BOOL, "update_oversubscribed_resources",
       6 | _MSG | UpdateSlaveMessage_Operations << _S, "operations",
       7 | _MSG | UUID << _S, "resource_version_uuid",
       8 | _MSG | UpdateSlaveMessage_ResourceProviders << _S, "resource_providers"),
)

# libprocess message kind (names.py ids) -> message type. The operation messages (the last three) have no
# table: they only reach agents claiming RESOURCE_PROVIDER / AGENT_OPERATION_FEEDBACK (§2.8).
BY_KIND = (0, RegisterSlaveMessage, ReregisterSlaveMessage, SlaveRegisteredMessage, SlaveReregisteredMessage,
           PingSlaveMessage, PongSlaveMessage, RunTaskMessage, RunTaskGroupMessage, KillTaskMessage,
           StatusUpdateMessage, StatusUpdateAcknowledgementMessage, ShutdownFrameworkMessage,
           ShutdownExecutorMessage, UpdateFrameworkMessage, CheckpointResourcesMessage,
           FrameworkToExecutorMessage, ExecutorToFrameworkMessage, ShutdownMessage, DrainSlaveMessage,
           ExitedExecutorMessage, UnregisterSlaveMessage, UpdateSlaveMessage, OPAQUE, OPAQUE, OPAQUE)
