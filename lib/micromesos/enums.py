# Every message type and enum value by its proto name, and the source of schema's tables: tools and tests.
# MIT licence. The agent never imports this: lib/ reads only schema's globals (tests/test_codec_vectors.py).
from . import schema

# The message types in type-id order (schema.X is its index here), each with its fields in field-number order
# (protoc's order): "number name kind [req|rep] [raw]". kind: int32 int64 uint32 uint64 bool enum double
# string bytes; id, a message whose only field is `1: string value` (SlaveID, FrameworkID, TaskID,
# ExecutorID, OfferID, ResourceProviderID, OperationID), which the codec represents as the plain str; msg, a
# message the micro agent never looks inside (DiskInfo, Secret, CheckInfo, DomainInfo, ...: always bytes);
# or a message type's name. raw marks sub-messages the agent echoes back unchanged (§1.8): decode(raw=True)
# returns their exact wire bytes. Types the agent never reads (MasterInfo, operation messages) are left out.
# schema.py holds these as flat bytes (tools/genschema.py writes them; a test checks they agree).
TYPES = (
    "OPAQUE",
    "Value_Scalar: 1 value double req",
    "Value_Range: 1 begin uint64 req; 2 end uint64 req",
    "Value_Ranges: 1 range Value_Range rep",
    "Value_Set: 1 item string rep",
    "Value_Text: 1 value string req",
    "Value: 1 type enum req; 2 scalar Value_Scalar; 3 ranges Value_Ranges; 4 set Value_Set; 5 text Value_Text",
    # Attribute: set is 6 and text 5, the other way round from Resource (§3.3).
    "Attribute: 1 name string req; 2 type enum req; 3 scalar Value_Scalar; 4 ranges Value_Ranges; "
    "5 text Value_Text; 6 set Value_Set",
    "Label: 1 key string req; 2 value string",
    "Labels: 1 labels Label rep",
    "Resource_AllocationInfo: 1 role string",
    "Resource_ReservationInfo: 1 principal string; 2 labels Labels; 3 role string; 4 type enum",
    "Resource_RevocableInfo",
    "Resource_SharedInfo",
    # Resource.disk (DiskInfo: volumes, CSI sources) is opaque: the micro agent offers no volumes.
    "Resource: 1 name string req; 2 type enum req; 3 scalar Value_Scalar; 4 ranges Value_Ranges; "
    "5 set Value_Set; 6 role string; 7 disk msg; 8 reservation Resource_ReservationInfo; "
    "9 revocable Resource_RevocableInfo; 10 shared Resource_SharedInfo; "
    "11 allocation_info Resource_AllocationInfo; 12 provider_id id; "
    "13 reservations Resource_ReservationInfo rep",
    "DurationInfo: 1 nanoseconds int64 req",
    "TimeInfo: 1 nanoseconds int64 req",
    "KillPolicy: 1 grace_period DurationInfo",
    "UUID: 1 value bytes req",
    "SlaveInfo_Capability: 1 type enum",
    # SlaveInfo.domain is opaque: the micro agent leaves it out (§3.5).
    "SlaveInfo: 1 hostname string req; 3 resources Resource rep raw; 5 attributes Attribute rep; 6 id id; "
    "7 checkpoint bool; 8 port int32; 10 domain msg",
    "FrameworkInfo_Capability: 1 type enum",
    # map<string, OfferFilters> is a repeated entry message {1: key, 2: value} (§1.8); the value is opaque.
    "FrameworkInfo_OfferFiltersEntry: 1 key string; 2 value msg",
    "FrameworkInfo: 1 user string req; 2 name string req; 3 id id; 4 failover_timeout double; "
    "5 checkpoint bool; 6 role string; 7 hostname string; 8 principal string; 9 webui_url string; "
    "10 capabilities FrameworkInfo_Capability rep; 11 labels Labels; 12 roles string rep; "
    "13 offer_filters FrameworkInfo_OfferFiltersEntry rep",
    "CommandInfo_URI: 1 value string req; 2 executable bool; 3 extract bool; 4 cache bool; "
    "5 output_file string",
    "Environment_Variable: 1 name string req; 2 value string; 3 type enum; 4 secret msg",
    "Environment: 1 variables Environment_Variable rep",
    "CommandInfo: 1 uris CommandInfo_URI rep; 2 environment Environment; 3 value string; 5 user string; "
    "6 shell bool; 7 arguments string rep",
    "NetworkInfo_IPAddress: 1 protocol enum; 2 ip_address string",
    "NetworkInfo_PortMapping: 1 host_port uint32 req; 2 container_port uint32 req; 3 protocol string",
    "NetworkInfo: 3 groups string rep; 4 labels Labels; 5 ip_addresses NetworkInfo_IPAddress rep; "
    "6 name string; 7 port_mappings NetworkInfo_PortMapping rep",
    # Docker/Mesos images, volumes, Linux and rlimit settings are opaque: the micro agent runs no containers.
    "ContainerInfo: 1 type enum req; 2 volumes msg rep; 3 docker msg; 4 hostname string; 5 mesos msg; "
    "7 network_infos NetworkInfo rep; 8 linux_info msg; 9 rlimit_info msg; 10 tty_info msg",
    "HealthCheck_HTTPCheckInfo: 1 port uint32 req; 2 path string; 3 scheme string; 4 statuses uint32 rep; "
    "5 protocol enum",
    "HealthCheck_TCPCheckInfo: 1 port uint32 req; 2 protocol enum",
    "HealthCheck: 1 http HealthCheck_HTTPCheckInfo; 2 delay_seconds double; 3 interval_seconds double; "
    "4 timeout_seconds double; 5 consecutive_failures uint32; 6 grace_period_seconds double; "
    "7 command CommandInfo; 8 type enum; 9 tcp HealthCheck_TCPCheckInfo",
    "Port: 1 number uint32 req; 2 name string; 3 protocol string; 4 visibility enum; 5 labels Labels",
    "Ports: 1 ports Port rep",
    "DiscoveryInfo: 1 visibility enum req; 2 name string; 3 environment string; 4 location string; "
    "5 version string; 6 ports Ports; 7 labels Labels",
    "ExecutorInfo: 1 executor_id id req; 4 data bytes; 5 resources Resource rep raw; 7 command CommandInfo; "
    "8 framework_id id; 9 name string; 10 source string; 11 container ContainerInfo; "
    "12 discovery DiscoveryInfo; 13 shutdown_grace_period DurationInfo; 14 labels Labels; 15 type enum",
    "TaskInfo_LimitsEntry: 1 key string; 2 value Value_Scalar",
    # The TaskInfo parts a re-registration Task copies (§3.12) are raw; TaskInfo.check is opaque.
    "TaskInfo: 1 name string req; 2 task_id id req; 3 slave_id id req; 4 resources Resource rep raw; "
    "5 executor ExecutorInfo raw; 6 data bytes; 7 command CommandInfo; 8 health_check HealthCheck raw; "
    "9 container ContainerInfo raw; 10 labels Labels raw; 11 discovery DiscoveryInfo raw; "
    "12 kill_policy KillPolicy raw; 13 check msg; 14 max_completion_time DurationInfo; "
    "15 limits TaskInfo_LimitsEntry rep raw",
    "TaskGroupInfo: 1 tasks TaskInfo rep",
    "ContainerID: 1 value string req; 2 parent ContainerID",
    "ContainerStatus: 1 network_infos NetworkInfo rep; 2 cgroup_info msg; 3 executor_pid uint32; "
    "4 container_id ContainerID",
    "CheckStatusInfo_Command: 1 exit_code int32",
    "CheckStatusInfo_Http: 1 status_code uint32",
    "CheckStatusInfo_Tcp: 1 succeeded bool",
    "CheckStatusInfo: 1 type enum; 2 command CheckStatusInfo_Command; 3 http CheckStatusInfo_Http; "
    "4 tcp CheckStatusInfo_Tcp",
    "TaskResourceLimitation: 1 resources Resource rep raw",
    "TaskStatus: 1 task_id id req; 2 state enum req; 3 data bytes; 4 message string; 5 slave_id id; "
    "6 timestamp double; 7 executor_id id; 8 healthy bool; 9 source enum; 10 reason enum; 11 uuid bytes; "
    "12 labels Labels; 13 container_status ContainerStatus; 14 unreachable_time TimeInfo; "
    "15 check_status CheckStatusInfo; 16 limitation TaskResourceLimitation",
    # Task numbers differ from TaskInfo (slave_id 5, resources 7): copy the parts, not the bytes (§3.12).
    "Task: 1 name string req; 2 task_id id req; 3 framework_id id req; 4 executor_id id; 5 slave_id id req; "
    "6 state enum req; 7 resources Resource rep raw; 8 statuses TaskStatus rep; 9 status_update_state enum; "
    "10 status_update_uuid bytes; 11 labels Labels raw; 12 discovery DiscoveryInfo raw; "
    "13 container ContainerInfo raw; 14 user string; 15 health_check HealthCheck raw; "
    "16 kill_policy KillPolicy raw; 17 limits TaskInfo_LimitsEntry rep raw",
    "StatusUpdate: 1 framework_id id req; 2 executor_id id; 3 slave_id id; 4 status TaskStatus req; "
    "5 timestamp double req; 6 uuid bytes; 7 latest_state enum",
    "StatusUpdateMessage: 1 update StatusUpdate req; 2 pid string",
    "StatusUpdateAcknowledgementMessage: 1 slave_id id req; 2 framework_id id req; 3 task_id id req; "
    "4 uuid bytes req",
    "RegisterSlaveMessage: 1 slave SlaveInfo req; 2 version string; "
    "3 checkpointed_resources Resource rep raw; 4 agent_capabilities SlaveInfo_Capability rep; "
    "5 resource_version_uuid UUID",
    "Archive_Framework: 1 framework_info FrameworkInfo req raw; 2 pid string; 3 tasks Task rep",
    "ReregisterSlaveMessage: 2 slave SlaveInfo req; 3 tasks Task rep; 4 executor_infos ExecutorInfo rep raw; "
    "5 completed_frameworks Archive_Framework rep; 6 version string; "
    "7 checkpointed_resources Resource rep raw; 8 frameworks FrameworkInfo rep raw; "
    "9 agent_capabilities SlaveInfo_Capability rep; 10 resource_version_uuid UUID",
    "MasterSlaveConnection: 1 total_ping_timeout_seconds double",
    "SlaveRegisteredMessage: 1 slave_id id req; 2 connection MasterSlaveConnection",
    "ReconcileTasksMessage: 1 framework_id id req; 2 statuses TaskStatus rep; 3 framework FrameworkInfo raw",
    "SlaveReregisteredMessage: 1 slave_id id req; 2 reconciliations ReconcileTasksMessage rep; "
    "3 connection MasterSlaveConnection",
    "PingSlaveMessage: 1 connected bool req",
    "PongSlaveMessage",
    "UnregisterSlaveMessage: 1 slave_id id req",
    "ResourceVersionUUID: 1 resource_provider_id id; 2 uuid UUID req",
    "RunTaskMessage: 1 framework_id id; 2 framework FrameworkInfo req raw; 3 pid string; "
    "4 task TaskInfo req; 5 resource_version_uuids ResourceVersionUUID rep; 6 launch_executor bool",
    "RunTaskGroupMessage: 1 framework FrameworkInfo req raw; 2 executor ExecutorInfo req raw; "
    "3 task_group TaskGroupInfo req; 4 resource_version_uuids ResourceVersionUUID rep; 5 launch_executor bool",
    "KillTaskMessage: 1 framework_id id req; 2 task_id id req; 3 kill_policy KillPolicy",
    "ShutdownFrameworkMessage: 1 framework_id id req",
    "ShutdownExecutorMessage: 1 executor_id id; 2 framework_id id",
    "UpdateFrameworkMessage: 1 framework_id id req; 2 pid string; 3 framework_info FrameworkInfo raw",
    "CheckpointResourcesMessage: 1 resources Resource rep raw",
    "ExitedExecutorMessage: 1 slave_id id req; 2 framework_id id req; 3 executor_id id req; "
    "4 status int32 req",
    "ExecutorToFrameworkMessage: 1 slave_id id req; 2 framework_id id req; 3 executor_id id req; "
    "4 data bytes req",
    "FrameworkToExecutorMessage: 1 slave_id id req; 2 framework_id id req; 3 executor_id id req; "
    "4 data bytes req",
    "ShutdownMessage: 1 message string",
    "DrainConfig: 1 max_grace_period DurationInfo; 2 mark_gone bool",
    "DrainSlaveMessage: 1 config DrainConfig req",
    # UpdateSlaveMessage is only sent by agents with resource providers (§2.9); Operation and
    # ResourceProvider entries are opaque.
    "UpdateSlaveMessage_Operations: 1 operations msg rep",
    "UpdateSlaveMessage_ResourceProviders: 1 providers msg rep",
    "UpdateSlaveMessage: 1 slave_id id req; 2 oversubscribed_resources Resource rep raw; "
    "5 update_oversubscribed_resources bool; 6 operations UpdateSlaveMessage_Operations; "
    "7 resource_version_uuid UUID; 8 resource_providers UpdateSlaveMessage_ResourceProviders",
)
_KINDS = "int32 int64 uint32 uint64 bool enum double string bytes msg id"  # schema's kind numbers, in order
_REQ = 0x10  # schema's flag bits
_REP = 0x20
_RAW = 0x40

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
    # fields() kinds
    "0 K_INT32 K_INT64 K_UINT32 K_UINT64 K_BOOL K_ENUM K_DOUBLE K_STRING K_BYTES K_MSG K_ID",
)

# libprocess message kind (names.py ids) -> message type. The operation messages (the last three) have no
# table: they only reach agents claiming RESOURCE_PROVIDER / AGENT_OPERATION_FEEDBACK (§2.8).
BY_KIND = (0, "RegisterSlaveMessage", "ReregisterSlaveMessage", "SlaveRegisteredMessage",
           "SlaveReregisteredMessage", "PingSlaveMessage", "PongSlaveMessage", "RunTaskMessage",
           "RunTaskGroupMessage", "KillTaskMessage", "StatusUpdateMessage", "StatusUpdateAcknowledgementMessage",
           "ShutdownFrameworkMessage", "ShutdownExecutorMessage", "UpdateFrameworkMessage",
           "CheckpointResourcesMessage", "FrameworkToExecutorMessage", "ExecutorToFrameworkMessage",
           "ShutdownMessage", "DrainSlaveMessage", "ExitedExecutorMessage", "UnregisterSlaveMessage",
           "UpdateSlaveMessage", 0, 0, 0)


def name(T):
    """The name of message type T, e.g. 'Value_Scalar' for Value.Scalar (what schema's name(T) gives)."""
    if not 0 <= T < len(TYPES):
        raise ValueError("no message type %r" % (T,))
    return TYPES[T].split(":")[0]


def fields(T):
    """[(name, number, kind, label, raw, sub)] of message type T as schema's tables hold it (schema's fields(T));
    label 0 optional, 1 required, 2 repeated."""
    F = schema.FIELDS
    A = schema.FIRST
    out = []
    for i in range(A[2 * T] | A[2 * T + 1] << 8, A[2 * T + 2] | A[2 * T + 3] << 8):
        f = F[4 * i + 1]
        out.append((schema.KEYS[F[4 * i + 3]], F[4 * i], f & 15, 1 if f & _REQ else 2 if f & _REP else 0,
                    bool(f & _RAW), F[4 * i + 2]))
    return out


def tables():
    """(FIELDS, FIRST, KEYS) built from TYPES, as the schema module holds them:
        FIELDS  4 bytes per field, each type's fields in field-number order:
                number | flags: kind bits 0-3, REQ 0x10, REP 0x20, RAW 0x40 | sub-message type | index into KEYS
        FIRST   2 bytes per type (little-endian): the index of its first field; one more entry ends the last
        KEYS    the field names, in order of first use."""
    ids = {}
    for T in range(len(TYPES)):
        ids[name(T)] = T
    kinds = _KINDS.split(" ")
    flags = {"req": _REQ, "rep": _REP, "raw": _RAW}
    fs = bytearray()
    first = bytearray()
    keys = []
    for T in range(len(TYPES)):
        n = len(fs) >> 2
        first += bytes((n & 0xFF, n >> 8))
        spec = TYPES[T].split(":")
        for f in spec[1].split(";") if len(spec) > 1 else ():
            w = f.split()
            k = kinds.index(w[2]) if w[2] in kinds else 9
            for x in w[3:]:
                k |= flags[x]
            if w[1] not in keys:
                keys.append(w[1])
            fs += bytes((int(w[0]), k, 0 if w[2] in kinds else ids[w[2]], keys.index(w[1])))
    n = len(fs) >> 2
    first += bytes((n & 0xFF, n >> 8))
    return bytes(fs), bytes(first), tuple(keys)


def value(n):
    """The number of the message type or enum value named n; AttributeError if there is none."""
    for T in range(len(TYPES)):
        if name(T) == n:
            return T
    for s in range(schema.TASK_UNKNOWN + 1):
        if schema.task_state_name(s) == n:
            return s
    for g in _GROUPS:
        words = g.split(" ")
        if n in words[1:]:
            return int(words[0]) + words.index(n) - 1
    raise AttributeError(n)


def attr(n):
    """What schema's __getattr__ answers: name(), fields(), or value(n)."""
    if n == "name":
        return name
    if n == "fields":
        return fields
    return value(n)
