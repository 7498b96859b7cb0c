# The Mesos message tables the codec walks (PROTOCOL.md §3), enum constants, libprocess kind -> message type.
# MIT licence. Numbers and types: apache/mesos include/mesos/mesos.proto, src/messages/messages.proto.
from micropython import const

# A message type is a small int named as in the proto; nested types join with an underscore
# (schema.SlaveInfo, schema.Value_Scalar for Value.Scalar, schema.SlaveInfo_Capability).
#
# RAM (32-bit device model; tools/bench/modram.py): every public module-level name is a globals-dict slot,
# and on a board that loads .mpy files every identifier is also an interned string. So only the names
# lib/ reads as schema.X are globals (tests/test_codec_vectors.py checks that lib/ uses no other); every
# other type and enum value is found by its proto name through __getattr__ (micromesos.enums; tools and
# tests only: it imports, scans and allocates). The tables are three flat objects built once at import
# (the tuple-per-type tables they replace held 3.6 KB more on the loaded 32-bit build, 15.2 -> 11.6 KB):
#     FIELDS  bytes, 4 per field, each type's fields in field-number order (protoc's order):
#             number | flags: kind (K_*) bits 0-3, _REQ, _REP, _RAW | sub-message type | index into KEYS
#     FIRST   bytes, 2 per type (little-endian): the index of its first field; one more entry ends the last
#     KEYS    the field names: the module's interned strings, so decoded dicts' keys cost nothing per decode
# RAW marks sub-messages the agent echoes back unchanged (§1.8): decode(raw=True) returns their exact wire
# bytes. Sub-message type 0 (OPAQUE) is a message the micro agent never looks inside (DiskInfo, Secret,
# CheckInfo, DomainInfo, ...): always kept as bytes. Types the agent never reads (MasterInfo, operation
# messages) are left out. K_ID is a message whose only field is `1: string value` (SlaveID, FrameworkID,
# TaskID, ExecutorID, OfferID, ResourceProviderID, OperationID): the codec represents it as the plain str.

_K_INT32 = const(0)
_K_INT64 = const(1)
_K_UINT32 = const(2)
_K_UINT64 = const(3)
_K_BOOL = const(4)
_K_ENUM = const(5)  # int32 on the wire
_K_DOUBLE = const(6)
_K_STRING = const(7)
_K_BYTES = const(8)
_K_MSG = const(9)
_K_ID = const(10)
_REQ = const(0x10)  # flags: label required / repeated (optional: neither), RAW
_REP = const(0x20)
_RAW = const(0x40)

# In the table sources below a field is written as one int, number | kind << 8 | label | raw | sub << 15.
_I32 = const(_K_INT32 << 8)
_I64 = const(_K_INT64 << 8)
_U32 = const(_K_UINT32 << 8)
_U64 = const(_K_UINT64 << 8)
_BOOL = const(_K_BOOL << 8)
_ENUM = const(_K_ENUM << 8)
_DBL = const(_K_DOUBLE << 8)
_STR = const(_K_STRING << 8)
_BYT = const(_K_BYTES << 8)
_MSG = const(_K_MSG << 8)
_ID = const(_K_ID << 8)
_RQ = const(_REQ << 8)
_RP = const(_REP << 8)
_RW = const(_RAW << 8)
_S = const(15)

# --- message type ids: no underscore where lib/ reads it as schema.X ---------------------------------
_OPAQUE = const(0)
Value_Scalar = const(1)
_Value_Range = const(2)
_Value_Ranges = const(3)
_Value_Set = const(4)
_Value_Text = const(5)
_Value = const(6)
_Attribute = const(7)
_Label = const(8)
_Labels = const(9)
_Resource_AllocationInfo = const(10)
_Resource_ReservationInfo = const(11)
_Resource_RevocableInfo = const(12)
_Resource_SharedInfo = const(13)
Resource = const(14)
_DurationInfo = const(15)
_TimeInfo = const(16)
KillPolicy = const(17)
_UUID = const(18)
SlaveInfo_Capability = const(19)
SlaveInfo = const(20)
_FrameworkInfo_Capability = const(21)
_FrameworkInfo_OfferFiltersEntry = const(22)
FrameworkInfo = const(23)
_CommandInfo_URI = const(24)
_Environment_Variable = const(25)
_Environment = const(26)
_CommandInfo = const(27)
_NetworkInfo_IPAddress = const(28)
_NetworkInfo_PortMapping = const(29)
_NetworkInfo = const(30)
_ContainerInfo = const(31)
_HealthCheck_HTTPCheckInfo = const(32)
_HealthCheck_TCPCheckInfo = const(33)
_HealthCheck = const(34)
_Port = const(35)
_Ports = const(36)
_DiscoveryInfo = const(37)
ExecutorInfo = const(38)
_TaskInfo_LimitsEntry = const(39)
_TaskInfo = const(40)
_TaskGroupInfo = const(41)
_ContainerID = const(42)
_ContainerStatus = const(43)
_CheckStatusInfo_Command = const(44)
_CheckStatusInfo_Http = const(45)
_CheckStatusInfo_Tcp = const(46)
_CheckStatusInfo = const(47)
_TaskResourceLimitation = const(48)
_TaskStatus = const(49)
_Task = const(50)
_StatusUpdate = const(51)
StatusUpdateMessage = const(52)
StatusUpdateAcknowledgementMessage = const(53)
RegisterSlaveMessage = const(54)
_Archive_Framework = const(55)
ReregisterSlaveMessage = const(56)
_MasterSlaveConnection = const(57)
SlaveRegisteredMessage = const(58)
_ReconcileTasksMessage = const(59)
SlaveReregisteredMessage = const(60)
_PingSlaveMessage = const(61)
_PongSlaveMessage = const(62)
_UnregisterSlaveMessage = const(63)
_ResourceVersionUUID = const(64)
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
_DrainConfig = const(76)
_DrainSlaveMessage = const(77)
_UpdateSlaveMessage_Operations = const(78)
_UpdateSlaveMessage_ResourceProviders = const(79)
_UpdateSlaveMessage = const(80)
NTYPES = const(81)

# --- enums lib/ reads (numbers from mesos.proto; §3.2, §3.5, §3.7, §3.9; the rest: micromesos.enums) ----
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
SOURCE_SLAVE = const(1)
SOURCE_EXECUTOR = const(2)
# TaskStatus.Reason
REASON_EXECUTOR_TERMINATED = const(1)
REASON_FRAMEWORK_REMOVED = const(3)
REASON_CONTAINER_LIMITATION_MEMORY = const(8)
REASON_RECONCILIATION = const(9)
REASON_SLAVE_RESTARTED = const(12)
REASON_TASK_INVALID = const(14)
REASON_CONTAINER_LIMITATION = const(19)
REASON_CONTAINER_LAUNCH_FAILED = const(21)
REASON_TASK_KILLED_DURING_LAUNCH = const(30)
# SlaveInfo.Capability.Type
MULTI_ROLE = const(1)
HIERARCHICAL_ROLE = const(2)
RESERVATION_REFINEMENT = const(3)
# FrameworkInfo.Capability.Type: its own numbering, hence the FW_ prefix
FW_TASK_KILLING_STATE = const(2)
FW_PARTITION_AWARE = const(5)
# ExecutorInfo.Type
EXECUTOR_DEFAULT = const(1)
EXECUTOR_CUSTOM = const(2)

# --- names, for name(), task_state_name() and __getattr__ -------------------------------------------
# Type names in type-id order, task states in number order. Plain strings: one object each (in flash when
# frozen), no interned string or globals slot per name. Every other enum's names are in micromesos.enums.
_TYPE_NAMES = ("OPAQUE Value_Scalar Value_Range Value_Ranges Value_Set Value_Text Value Attribute Label "
               "Labels Resource_AllocationInfo Resource_ReservationInfo Resource_RevocableInfo "
               "Resource_SharedInfo Resource DurationInfo TimeInfo KillPolicy UUID SlaveInfo_Capability "
               "SlaveInfo FrameworkInfo_Capability FrameworkInfo_OfferFiltersEntry FrameworkInfo "
               "CommandInfo_URI Environment_Variable Environment CommandInfo NetworkInfo_IPAddress "
               "NetworkInfo_PortMapping NetworkInfo ContainerInfo HealthCheck_HTTPCheckInfo "
               "HealthCheck_TCPCheckInfo HealthCheck Port Ports DiscoveryInfo ExecutorInfo "
               "TaskInfo_LimitsEntry TaskInfo TaskGroupInfo ContainerID ContainerStatus "
               "CheckStatusInfo_Command CheckStatusInfo_Http CheckStatusInfo_Tcp CheckStatusInfo "
               "TaskResourceLimitation TaskStatus Task StatusUpdate StatusUpdateMessage "
               "StatusUpdateAcknowledgementMessage RegisterSlaveMessage Archive_Framework "
               "ReregisterSlaveMessage MasterSlaveConnection SlaveRegisteredMessage ReconcileTasksMessage "
               "SlaveReregisteredMessage PingSlaveMessage PongSlaveMessage UnregisterSlaveMessage "
               "ResourceVersionUUID RunTaskMessage RunTaskGroupMessage KillTaskMessage "
               "ShutdownFrameworkMessage ShutdownExecutorMessage UpdateFrameworkMessage "
               "CheckpointResourcesMessage ExitedExecutorMessage ExecutorToFrameworkMessage "
               "FrameworkToExecutorMessage ShutdownMessage DrainConfig DrainSlaveMessage "
               "UpdateSlaveMessage_Operations UpdateSlaveMessage_ResourceProviders UpdateSlaveMessage")
_STATES = ("TASK_STARTING TASK_RUNNING TASK_FINISHED TASK_FAILED TASK_KILLED TASK_LOST TASK_STAGING TASK_ERROR "
           "TASK_KILLING TASK_DROPPED TASK_UNREACHABLE TASK_GONE TASK_GONE_BY_OPERATOR TASK_UNKNOWN")


def __getattr__(n):
    """Any message type or enum value by its proto name (schema.Value_Range, schema.REASON_GC_ERROR,
    schema.K_MSG), found in micromesos.enums: for tools and tests (it imports, scans and allocates).
    lib/ reads only the globals above."""
    if n.startswith("__"):
        raise AttributeError(n)
    from . import enums
    return enums.value(n)


def name(T):
    """The name of message type T, e.g. 'Value_Scalar' for Value.Scalar (for logs and errors; allocates)."""
    return _word(_TYPE_NAMES, T)


def task_state_name(state):
    """'TASK_RUNNING' for 1; None for a number this table doesn't know. /state prints states by name (§5)."""
    return _word(_STATES, state) if 0 <= state <= TASK_UNKNOWN else None


def _word(s, k):
    i = 0
    for _ in range(k):
        i = s.index(" ", i) + 1
    e = s.find(" ", i)
    return s[i:] if e < 0 else s[i:e]


def fields(T):
    """[(name, number, kind, label, raw, sub)] of message type T; label 0 optional, 1 required, 2 repeated
    (for tools and tests; allocates)."""
    out = []
    for i in range(FIRST[2 * T] | FIRST[2 * T + 1] << 8, FIRST[2 * T + 2] | FIRST[2 * T + 3] << 8):
        f = FIELDS[4 * i + 1]
        out.append((KEYS[FIELDS[4 * i + 3]], FIELDS[4 * i], f & 15, 1 if f & _REQ else 2 if f & _REP else 0,
                    bool(f & _RAW), FIELDS[4 * i + 2]))
    return out


# --- descriptors, indexed by type id --------------------------------------------------------------
_fields = bytearray()
_first = bytearray()
_keys = {}


def _t(T, *d):
    n = len(_fields) >> 2
    if T != len(_first) >> 1 or n > 0xFFFF:
        raise ImportError("schema: type %d out of order" % T)  # caught by the tests
    _first.append(n & 0xFF)
    _first.append(n >> 8)
    for i in range(0, len(d), 2):
        p = d[i]
        k = _keys.get(d[i + 1])
        if k is None:
            k = _keys[d[i + 1]] = len(_keys)
        _fields.append(p & 0xFF)
        _fields.append((p >> 8) & 0x7F)
        _fields.append(p >> _S)
        _fields.append(k)


# The field names are passed as arguments, not held in constant tuples: in a .mpy, strings inside constant
# tuples load as separate str objects, while arguments are the module's interned strings.
_t(_OPAQUE)
_t(Value_Scalar, 1 | _DBL | _RQ, "value")
_t(_Value_Range, 1 | _U64 | _RQ, "begin", 2 | _U64 | _RQ, "end")
_t(_Value_Ranges, 1 | _MSG | _RP | _Value_Range << _S, "range")
_t(_Value_Set, 1 | _STR | _RP, "item")
_t(_Value_Text, 1 | _STR | _RQ, "value")
_t(_Value, 1 | _ENUM | _RQ, "type", 2 | _MSG | Value_Scalar << _S, "scalar",
   3 | _MSG | _Value_Ranges << _S, "ranges", 4 | _MSG | _Value_Set << _S, "set",
   5 | _MSG | _Value_Text << _S, "text")
# Attribute: set is 6 and text 5, the other way round from Resource (§3.3).
_t(_Attribute, 1 | _STR | _RQ, "name", 2 | _ENUM | _RQ, "type",
   3 | _MSG | Value_Scalar << _S, "scalar", 4 | _MSG | _Value_Ranges << _S, "ranges",
   5 | _MSG | _Value_Text << _S, "text", 6 | _MSG | _Value_Set << _S, "set")
_t(_Label, 1 | _STR | _RQ, "key", 2 | _STR, "value")
_t(_Labels, 1 | _MSG | _RP | _Label << _S, "labels")
_t(_Resource_AllocationInfo, 1 | _STR, "role")
_t(_Resource_ReservationInfo, 1 | _STR, "principal", 2 | _MSG | _Labels << _S, "labels",
   3 | _STR, "role", 4 | _ENUM, "type")
_t(_Resource_RevocableInfo)
_t(_Resource_SharedInfo)
# Resource.disk (DiskInfo: volumes, CSI sources) is opaque: the micro agent offers no volumes.
_t(Resource, 1 | _STR | _RQ, "name", 2 | _ENUM | _RQ, "type",
   3 | _MSG | Value_Scalar << _S, "scalar", 4 | _MSG | _Value_Ranges << _S, "ranges",
   5 | _MSG | _Value_Set << _S, "set", 6 | _STR, "role", 7 | _MSG, "disk",
   8 | _MSG | _Resource_ReservationInfo << _S, "reservation",
   9 | _MSG | _Resource_RevocableInfo << _S, "revocable",
   10 | _MSG | _Resource_SharedInfo << _S, "shared",
   11 | _MSG | _Resource_AllocationInfo << _S, "allocation_info", 12 | _ID, "provider_id",
   13 | _MSG | _RP | _Resource_ReservationInfo << _S, "reservations")
_t(_DurationInfo, 1 | _I64 | _RQ, "nanoseconds")
_t(_TimeInfo, 1 | _I64 | _RQ, "nanoseconds")
_t(KillPolicy, 1 | _MSG | _DurationInfo << _S, "grace_period")
_t(_UUID, 1 | _BYT | _RQ, "value")
_t(SlaveInfo_Capability, 1 | _ENUM, "type")
# SlaveInfo.domain is opaque: the micro agent leaves it out (§3.5).
_t(SlaveInfo, 1 | _STR | _RQ, "hostname", 3 | _MSG | _RP | _RW | Resource << _S, "resources",
   5 | _MSG | _RP | _Attribute << _S, "attributes", 6 | _ID, "id", 7 | _BOOL, "checkpoint",
   8 | _I32, "port", 10 | _MSG, "domain")
_t(_FrameworkInfo_Capability, 1 | _ENUM, "type")
# map<string, OfferFilters> is a repeated entry message {1: key, 2: value} (§1.8); the value is opaque.
_t(_FrameworkInfo_OfferFiltersEntry, 1 | _STR, "key", 2 | _MSG, "value")
_t(FrameworkInfo, 1 | _STR | _RQ, "user", 2 | _STR | _RQ, "name", 3 | _ID, "id",
   4 | _DBL, "failover_timeout", 5 | _BOOL, "checkpoint", 6 | _STR, "role", 7 | _STR, "hostname",
   8 | _STR, "principal", 9 | _STR, "webui_url",
   10 | _MSG | _RP | _FrameworkInfo_Capability << _S, "capabilities",
   11 | _MSG | _Labels << _S, "labels", 12 | _STR | _RP, "roles",
   13 | _MSG | _RP | _FrameworkInfo_OfferFiltersEntry << _S, "offer_filters")
_t(_CommandInfo_URI, 1 | _STR | _RQ, "value", 2 | _BOOL, "executable", 3 | _BOOL, "extract",
   4 | _BOOL, "cache", 5 | _STR, "output_file")
_t(_Environment_Variable, 1 | _STR | _RQ, "name", 2 | _STR, "value", 3 | _ENUM, "type",
   4 | _MSG, "secret")
_t(_Environment, 1 | _MSG | _RP | _Environment_Variable << _S, "variables")
_t(_CommandInfo, 1 | _MSG | _RP | _CommandInfo_URI << _S, "uris",
   2 | _MSG | _Environment << _S, "environment", 3 | _STR, "value", 5 | _STR, "user",
   6 | _BOOL, "shell", 7 | _STR | _RP, "arguments")
_t(_NetworkInfo_IPAddress, 1 | _ENUM, "protocol", 2 | _STR, "ip_address")
_t(_NetworkInfo_PortMapping, 1 | _U32 | _RQ, "host_port", 2 | _U32 | _RQ, "container_port",
   3 | _STR, "protocol")
_t(_NetworkInfo, 3 | _STR | _RP, "groups", 4 | _MSG | _Labels << _S, "labels",
   5 | _MSG | _RP | _NetworkInfo_IPAddress << _S, "ip_addresses", 6 | _STR, "name",
   7 | _MSG | _RP | _NetworkInfo_PortMapping << _S, "port_mappings")
# Docker/Mesos images, volumes, Linux and rlimit settings are opaque: the micro agent runs no containers.
_t(_ContainerInfo, 1 | _ENUM | _RQ, "type", 2 | _MSG | _RP, "volumes", 3 | _MSG, "docker",
   4 | _STR, "hostname", 5 | _MSG, "mesos", 7 | _MSG | _RP | _NetworkInfo << _S, "network_infos",
   8 | _MSG, "linux_info", 9 | _MSG, "rlimit_info", 10 | _MSG, "tty_info")
_t(_HealthCheck_HTTPCheckInfo, 1 | _U32 | _RQ, "port", 2 | _STR, "path", 3 | _STR, "scheme",
   4 | _U32 | _RP, "statuses", 5 | _ENUM, "protocol")
_t(_HealthCheck_TCPCheckInfo, 1 | _U32 | _RQ, "port", 2 | _ENUM, "protocol")
_t(_HealthCheck, 1 | _MSG | _HealthCheck_HTTPCheckInfo << _S, "http", 2 | _DBL, "delay_seconds",
   3 | _DBL, "interval_seconds", 4 | _DBL, "timeout_seconds", 5 | _U32, "consecutive_failures",
   6 | _DBL, "grace_period_seconds", 7 | _MSG | _CommandInfo << _S, "command", 8 | _ENUM, "type",
   9 | _MSG | _HealthCheck_TCPCheckInfo << _S, "tcp")
_t(_Port, 1 | _U32 | _RQ, "number", 2 | _STR, "name", 3 | _STR, "protocol", 4 | _ENUM, "visibility",
   5 | _MSG | _Labels << _S, "labels")
_t(_Ports, 1 | _MSG | _RP | _Port << _S, "ports")
_t(_DiscoveryInfo, 1 | _ENUM | _RQ, "visibility", 2 | _STR, "name", 3 | _STR, "environment",
   4 | _STR, "location", 5 | _STR, "version", 6 | _MSG | _Ports << _S, "ports",
   7 | _MSG | _Labels << _S, "labels")
_t(ExecutorInfo, 1 | _ID | _RQ, "executor_id", 4 | _BYT, "data",
   5 | _MSG | _RP | _RW | Resource << _S, "resources", 7 | _MSG | _CommandInfo << _S, "command",
   8 | _ID, "framework_id", 9 | _STR, "name", 10 | _STR, "source",
   11 | _MSG | _ContainerInfo << _S, "container", 12 | _MSG | _DiscoveryInfo << _S, "discovery",
   13 | _MSG | _DurationInfo << _S, "shutdown_grace_period", 14 | _MSG | _Labels << _S, "labels",
   15 | _ENUM, "type")
_t(_TaskInfo_LimitsEntry, 1 | _STR, "key", 2 | _MSG | Value_Scalar << _S, "value")
# The TaskInfo parts a re-registration Task copies (§3.12) are RAW; TaskInfo.check is opaque.
_t(_TaskInfo, 1 | _STR | _RQ, "name", 2 | _ID | _RQ, "task_id", 3 | _ID | _RQ, "slave_id",
   4 | _MSG | _RP | _RW | Resource << _S, "resources", 5 | _MSG | _RW | ExecutorInfo << _S, "executor",
   6 | _BYT, "data", 7 | _MSG | _CommandInfo << _S, "command",
   8 | _MSG | _RW | _HealthCheck << _S, "health_check",
   9 | _MSG | _RW | _ContainerInfo << _S, "container",
   10 | _MSG | _RW | _Labels << _S, "labels", 11 | _MSG | _RW | _DiscoveryInfo << _S, "discovery",
   12 | _MSG | _RW | KillPolicy << _S, "kill_policy", 13 | _MSG, "check",
   14 | _MSG | _DurationInfo << _S, "max_completion_time",
   15 | _MSG | _RP | _RW | _TaskInfo_LimitsEntry << _S, "limits")
_t(_TaskGroupInfo, 1 | _MSG | _RP | _TaskInfo << _S, "tasks")
_t(_ContainerID, 1 | _STR | _RQ, "value", 2 | _MSG | _ContainerID << _S, "parent")
_t(_ContainerStatus, 1 | _MSG | _RP | _NetworkInfo << _S, "network_infos", 2 | _MSG, "cgroup_info",
   3 | _U32, "executor_pid", 4 | _MSG | _ContainerID << _S, "container_id")
_t(_CheckStatusInfo_Command, 1 | _I32, "exit_code")
_t(_CheckStatusInfo_Http, 1 | _U32, "status_code")
_t(_CheckStatusInfo_Tcp, 1 | _BOOL, "succeeded")
_t(_CheckStatusInfo, 1 | _ENUM, "type", 2 | _MSG | _CheckStatusInfo_Command << _S, "command",
   3 | _MSG | _CheckStatusInfo_Http << _S, "http", 4 | _MSG | _CheckStatusInfo_Tcp << _S, "tcp")
_t(_TaskResourceLimitation, 1 | _MSG | _RP | _RW | Resource << _S, "resources")
_t(_TaskStatus, 1 | _ID | _RQ, "task_id", 2 | _ENUM | _RQ, "state", 3 | _BYT, "data",
   4 | _STR, "message", 5 | _ID, "slave_id", 6 | _DBL, "timestamp", 7 | _ID, "executor_id",
   8 | _BOOL, "healthy", 9 | _ENUM, "source", 10 | _ENUM, "reason", 11 | _BYT, "uuid",
   12 | _MSG | _Labels << _S, "labels", 13 | _MSG | _ContainerStatus << _S, "container_status",
   14 | _MSG | _TimeInfo << _S, "unreachable_time", 15 | _MSG | _CheckStatusInfo << _S, "check_status",
   16 | _MSG | _TaskResourceLimitation << _S, "limitation")
# Task numbers differ from TaskInfo (slave_id 5, resources 7): copy the parts, not the bytes (§3.12).
_t(_Task, 1 | _STR | _RQ, "name", 2 | _ID | _RQ, "task_id", 3 | _ID | _RQ, "framework_id",
   4 | _ID, "executor_id", 5 | _ID | _RQ, "slave_id", 6 | _ENUM | _RQ, "state",
   7 | _MSG | _RP | _RW | Resource << _S, "resources", 8 | _MSG | _RP | _TaskStatus << _S, "statuses",
   9 | _ENUM, "status_update_state", 10 | _BYT, "status_update_uuid",
   11 | _MSG | _RW | _Labels << _S, "labels", 12 | _MSG | _RW | _DiscoveryInfo << _S, "discovery",
   13 | _MSG | _RW | _ContainerInfo << _S, "container", 14 | _STR, "user",
   15 | _MSG | _RW | _HealthCheck << _S, "health_check",
   16 | _MSG | _RW | KillPolicy << _S, "kill_policy",
   17 | _MSG | _RP | _RW | _TaskInfo_LimitsEntry << _S, "limits")
_t(_StatusUpdate, 1 | _ID | _RQ, "framework_id", 2 | _ID, "executor_id", 3 | _ID, "slave_id",
   4 | _MSG | _RQ | _TaskStatus << _S, "status", 5 | _DBL | _RQ, "timestamp", 6 | _BYT, "uuid",
   7 | _ENUM, "latest_state")
_t(StatusUpdateMessage, 1 | _MSG | _RQ | _StatusUpdate << _S, "update", 2 | _STR, "pid")
_t(StatusUpdateAcknowledgementMessage, 1 | _ID | _RQ, "slave_id",
   2 | _ID | _RQ, "framework_id", 3 | _ID | _RQ, "task_id", 4 | _BYT | _RQ, "uuid")
_t(RegisterSlaveMessage, 1 | _MSG | _RQ | SlaveInfo << _S, "slave", 2 | _STR, "version",
   3 | _MSG | _RP | _RW | Resource << _S, "checkpointed_resources",
   4 | _MSG | _RP | SlaveInfo_Capability << _S, "agent_capabilities",
   5 | _MSG | _UUID << _S, "resource_version_uuid")
_t(_Archive_Framework, 1 | _MSG | _RQ | _RW | FrameworkInfo << _S, "framework_info",
   2 | _STR, "pid", 3 | _MSG | _RP | _Task << _S, "tasks")
_t(ReregisterSlaveMessage, 2 | _MSG | _RQ | SlaveInfo << _S, "slave",
   3 | _MSG | _RP | _Task << _S, "tasks",
   4 | _MSG | _RP | _RW | ExecutorInfo << _S, "executor_infos",
   5 | _MSG | _RP | _Archive_Framework << _S, "completed_frameworks", 6 | _STR, "version",
   7 | _MSG | _RP | _RW | Resource << _S, "checkpointed_resources",
   8 | _MSG | _RP | _RW | FrameworkInfo << _S, "frameworks",
   9 | _MSG | _RP | SlaveInfo_Capability << _S, "agent_capabilities",
   10 | _MSG | _UUID << _S, "resource_version_uuid")
_t(_MasterSlaveConnection, 1 | _DBL, "total_ping_timeout_seconds")
_t(SlaveRegisteredMessage, 1 | _ID | _RQ, "slave_id",
   2 | _MSG | _MasterSlaveConnection << _S, "connection")
_t(_ReconcileTasksMessage, 1 | _ID | _RQ, "framework_id",
   2 | _MSG | _RP | _TaskStatus << _S, "statuses",
   3 | _MSG | _RW | FrameworkInfo << _S, "framework")
_t(SlaveReregisteredMessage, 1 | _ID | _RQ, "slave_id",
   2 | _MSG | _RP | _ReconcileTasksMessage << _S, "reconciliations",
   3 | _MSG | _MasterSlaveConnection << _S, "connection")
_t(_PingSlaveMessage, 1 | _BOOL | _RQ, "connected")
_t(_PongSlaveMessage)
_t(_UnregisterSlaveMessage, 1 | _ID | _RQ, "slave_id")
_t(_ResourceVersionUUID, 1 | _ID, "resource_provider_id", 2 | _MSG | _RQ | _UUID << _S, "uuid")
_t(RunTaskMessage, 1 | _ID, "framework_id", 2 | _MSG | _RQ | _RW | FrameworkInfo << _S, "framework",
   3 | _STR, "pid", 4 | _MSG | _RQ | _TaskInfo << _S, "task",
   5 | _MSG | _RP | _ResourceVersionUUID << _S, "resource_version_uuids", 6 | _BOOL, "launch_executor")
_t(RunTaskGroupMessage, 1 | _MSG | _RQ | _RW | FrameworkInfo << _S, "framework",
   2 | _MSG | _RQ | _RW | ExecutorInfo << _S, "executor",
   3 | _MSG | _RQ | _TaskGroupInfo << _S, "task_group",
   4 | _MSG | _RP | _ResourceVersionUUID << _S, "resource_version_uuids",
   5 | _BOOL, "launch_executor")
_t(KillTaskMessage, 1 | _ID | _RQ, "framework_id", 2 | _ID | _RQ, "task_id",
   3 | _MSG | KillPolicy << _S, "kill_policy")
_t(ShutdownFrameworkMessage, 1 | _ID | _RQ, "framework_id")
_t(ShutdownExecutorMessage, 1 | _ID, "executor_id", 2 | _ID, "framework_id")
_t(UpdateFrameworkMessage, 1 | _ID | _RQ, "framework_id", 2 | _STR, "pid",
   3 | _MSG | _RW | FrameworkInfo << _S, "framework_info")
_t(CheckpointResourcesMessage, 1 | _MSG | _RP | _RW | Resource << _S, "resources")
_t(ExitedExecutorMessage, 1 | _ID | _RQ, "slave_id", 2 | _ID | _RQ, "framework_id",
   3 | _ID | _RQ, "executor_id", 4 | _I32 | _RQ, "status")
_t(ExecutorToFrameworkMessage, 1 | _ID | _RQ, "slave_id", 2 | _ID | _RQ, "framework_id",
   3 | _ID | _RQ, "executor_id", 4 | _BYT | _RQ, "data")
_t(FrameworkToExecutorMessage, 1 | _ID | _RQ, "slave_id", 2 | _ID | _RQ, "framework_id",
   3 | _ID | _RQ, "executor_id", 4 | _BYT | _RQ, "data")
_t(ShutdownMessage, 1 | _STR, "message")
_t(_DrainConfig, 1 | _MSG | _DurationInfo << _S, "max_grace_period", 2 | _BOOL, "mark_gone")
_t(_DrainSlaveMessage, 1 | _MSG | _RQ | _DrainConfig << _S, "config")
# UpdateSlaveMessage is only sent by agents with resource providers (§2.9); Operation and
# ResourceProvider entries are opaque.
_t(_UpdateSlaveMessage_Operations, 1 | _MSG | _RP, "operations")
_t(_UpdateSlaveMessage_ResourceProviders, 1 | _MSG | _RP, "providers")
_t(_UpdateSlaveMessage, 1 | _ID | _RQ, "slave_id",
   2 | _MSG | _RP | _RW | Resource << _S, "oversubscribed_resources",
   5 | _BOOL, "update_oversubscribed_resources",
   6 | _MSG | _UpdateSlaveMessage_Operations << _S, "operations",
   7 | _MSG | _UUID << _S, "resource_version_uuid",
   8 | _MSG | _UpdateSlaveMessage_ResourceProviders << _S, "resource_providers")

_first.append((len(_fields) >> 2) & 0xFF)
_first.append(len(_fields) >> 10)
if len(_keys) > 0xFF or len(_first) != 2 * NTYPES + 2:
    raise ImportError("schema: table layout")
_names = [""] * len(_keys)
for _k in _keys:
    _names[_keys[_k]] = _k
KEYS = tuple(_names)
FIELDS = bytes(_fields)
FIRST = bytes(_first)
del _t, _keys, _k, _names, _fields, _first

# libprocess message kind (names.py ids) -> message type, for tools and tests. The operation messages (the
# last three) have no table: they only reach agents claiming RESOURCE_PROVIDER / AGENT_OPERATION_FEEDBACK (§2.8).
BY_KIND = bytes((0, RegisterSlaveMessage, ReregisterSlaveMessage, SlaveRegisteredMessage, SlaveReregisteredMessage,
                 _PingSlaveMessage, _PongSlaveMessage, RunTaskMessage, RunTaskGroupMessage, KillTaskMessage,
                 StatusUpdateMessage, StatusUpdateAcknowledgementMessage, ShutdownFrameworkMessage,
                 ShutdownExecutorMessage, UpdateFrameworkMessage, CheckpointResourcesMessage,
                 FrameworkToExecutorMessage, ExecutorToFrameworkMessage, ShutdownMessage, _DrainSlaveMessage,
                 ExitedExecutorMessage, _UnregisterSlaveMessage, _UpdateSlaveMessage, _OPAQUE, _OPAQUE, _OPAQUE))
