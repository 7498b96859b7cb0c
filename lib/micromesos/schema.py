# The Mesos message tables the codec walks (PROTOCOL.md §3), the enum constants lib/ uses.
# MIT licence. Numbers and types: apache/mesos include/mesos/mesos.proto, src/messages/messages.proto.
from micropython import const

# A message type is a small int named as in the proto; nested types join with an underscore
# (schema.SlaveInfo, schema.Value_Scalar for Value.Scalar, schema.SlaveInfo_Capability). The readable
# source of every type, field and enum is micromesos.enums (tools and tests only); tools/genschema.py
# writes the tables below from it, and tests/test_codec_vectors.py checks they agree.
#
# RAM (32-bit device model; tools/bench/modram.py): every public module-level name is a globals-dict slot,
# and on a board that loads .mpy files every identifier is also an interned string. lib/ folds the numbers
# it needs in as local consts (`_X = const(N)  # schema.X`, checked by tests/test_codec_vectors.py), so the
# numbers below are private (folded here, no slot: 1.6 KB less on a loaded board); the globals are the
# tables, task_state_name, NTYPES and TASK_UNKNOWN (enums reads them). Every type and enum value, name(T)
# and fields(T) are found through __getattr__ (micromesos.enums; tools and tests only: it imports, scans
# and allocates). The tables are literals, not built at import: frozen, FIELDS
# and FIRST stay in flash; loaded, each is one bytes object:
#     FIELDS  bytes, 4 per field, each type's fields in field-number order (protoc's order):
#             number | flags: kind bits 0-3, _REQ, _REP, _RAW | sub-message type | index into KEYS
#     FIRST   bytes, 2 per type (little-endian): the index of its first field; one more entry ends the last
#     KEYS    the field names as interned strings (qstrs), the keys of every decoded dict: no str per key
#             per decode. A literal: frozen, the tuple and its strings stay in flash (a tuple built at
#             import held 576 B of RAM). Loaded, a literal tuple's strings would each be a str object
#             (~32 B, twice a qstr) but for one rule: a .mpy interns its names before it loads its constants,
#             and a constant string that is already a qstr loads as that qstr. _qstrs(), never called,
#             names every field as an attribute so that each one is such a name (it comes first: compiled
#             from source, the same holds for the names the parser has seen).
# Kinds (K_*, enums._KINDS): 0 int32, 1 int64, 2 uint32, 3 uint64, 4 bool, 5 enum, 6 double, 7 string,
# 8 bytes, 9 message (sub-message type 0: opaque, always bytes), 10 ID ({1: string value} as its str).
_REQ = const(0x10)  # flags: label required / repeated (optional: neither), RAW (codec mirrors these)
_REP = const(0x20)
_RAW = const(0x40)

# --- message type ids lib/ uses (each type's index in enums.TYPES) -----------------------------------
_Value_Scalar = const(1)
_Resource = const(14)
_KillPolicy = const(17)
_SlaveInfo_Capability = const(19)
_SlaveInfo = const(20)
_FrameworkInfo = const(23)
_ExecutorInfo = const(38)
_Task = const(50)
_StatusUpdateMessage = const(52)
_StatusUpdateAcknowledgementMessage = const(53)
_RegisterSlaveMessage = const(54)
_ReregisterSlaveMessage = const(56)
_SlaveRegisteredMessage = const(58)
_SlaveReregisteredMessage = const(60)
_RunTaskMessage = const(65)
_RunTaskGroupMessage = const(66)
_KillTaskMessage = const(67)
_ShutdownFrameworkMessage = const(68)
_ShutdownExecutorMessage = const(69)
_UpdateFrameworkMessage = const(70)
_CheckpointResourcesMessage = const(71)
_ExitedExecutorMessage = const(72)
_ExecutorToFrameworkMessage = const(73)
_FrameworkToExecutorMessage = const(74)
_ShutdownMessage = const(75)
NTYPES = const(81)

# --- enums lib/ uses (numbers from mesos.proto; §3.2, §3.5, §3.7, §3.9; the rest: micromesos.enums) ----
# Value.Type
_SCALAR = const(0)
_RANGES = const(1)
_SET = const(2)
_TEXT = const(3)
# TaskState
_TASK_STARTING = const(0)
_TASK_RUNNING = const(1)
_TASK_FINISHED = const(2)
_TASK_FAILED = const(3)
_TASK_KILLED = const(4)
_TASK_LOST = const(5)
_TASK_STAGING = const(6)
_TASK_ERROR = const(7)
_TASK_KILLING = const(8)
_TASK_DROPPED = const(9)
_TASK_UNREACHABLE = const(10)
_TASK_GONE = const(11)
_TASK_GONE_BY_OPERATOR = const(12)
TASK_UNKNOWN = const(13)
# TaskStatus.Source
_SOURCE_SLAVE = const(1)
_SOURCE_EXECUTOR = const(2)
# TaskStatus.Reason
_REASON_EXECUTOR_TERMINATED = const(1)
_REASON_FRAMEWORK_REMOVED = const(3)
_REASON_CONTAINER_LIMITATION_MEMORY = const(8)
_REASON_RECONCILIATION = const(9)
_REASON_SLAVE_RESTARTED = const(12)
_REASON_TASK_INVALID = const(14)
_REASON_CONTAINER_LIMITATION = const(19)
_REASON_CONTAINER_LAUNCH_FAILED = const(21)
_REASON_TASK_KILLED_DURING_LAUNCH = const(30)
# SlaveInfo.Capability.Type
_MULTI_ROLE = const(1)
_HIERARCHICAL_ROLE = const(2)
_RESERVATION_REFINEMENT = const(3)
# FrameworkInfo.Capability.Type: its own numbering, hence the FW_ prefix
_FW_TASK_KILLING_STATE = const(2)
_FW_PARTITION_AWARE = const(5)
# ExecutorInfo.Type
_EXECUTOR_DEFAULT = const(1)
_EXECUTOR_CUSTOM = const(2)

# --- task state names, for task_state_name() (/state prints states by name, §5) --------------------------
# One plain string: one object (in flash when frozen), no interned string or globals slot per name.
_STATES = ("TASK_STARTING TASK_RUNNING TASK_FINISHED TASK_FAILED TASK_KILLED TASK_LOST TASK_STAGING TASK_ERROR "
           "TASK_KILLING TASK_DROPPED TASK_UNREACHABLE TASK_GONE TASK_GONE_BY_OPERATOR TASK_UNKNOWN")


def __getattr__(n):
    """Any message type or enum value by its proto name (schema.Value_Range, schema.REASON_GC_ERROR,
    schema.K_MSG), and name(T) / fields(T), found in micromesos.enums: for tools and tests (it imports, scans
    and allocates). lib/ reads only the globals here."""
    if n.startswith("__"):
        raise AttributeError(n)
    from . import enums
    return enums.attr(n)


def task_state_name(state):
    """'TASK_RUNNING' for 1; None for a number this table doesn't know."""
    if not 0 <= state <= TASK_UNKNOWN:
        return None
    s = _STATES
    i = 0
    for _ in range(state):
        i = s.index(" ", i) + 1
    e = s.find(" ", i)
    return s[i:] if e < 0 else s[i:e]


# --- generated by tools/genschema.py from enums.TYPES; do not edit by hand ---
FIELDS = (
    b"\x01\x16\x00\x00"  # Value_Scalar
    b"\x01\x13\x00\x01\x02\x13\x00\x02"  # Value_Range
    b"\x01\x29\x02\x03"  # Value_Ranges
    b"\x01\x27\x00\x04"  # Value_Set
    b"\x01\x17\x00\x00"  # Value_Text
    b"\x01\x15\x00\x05\x02\x09\x01\x06\x03\x09\x03\x07\x04\x09\x04\x08\x05\x09\x05\x09"  # Value
    b"\x01\x17\x00\x0a\x02\x15\x00\x05\x03\x09\x01\x06\x04\x09\x03\x07\x05\x09\x05\x09\x06\x09\x04\x08"  # Attribute
    b"\x01\x17\x00\x0b\x02\x07\x00\x00"  # Label
    b"\x01\x29\x08\x0c"  # Labels
    b"\x01\x07\x00\x0d"  # Resource_AllocationInfo
    b"\x01\x07\x00\x0e\x02\x09\x09\x0c\x03\x07\x00\x0d\x04\x05\x00\x05"  # Resource_ReservationInfo
    b"\x01\x17\x00\x0a\x02\x15\x00\x05\x03\x09\x01\x06\x04\x09\x03\x07\x05\x09\x04\x08\x06\x07\x00\x0d"  # Resource
    b"\x07\x09\x00\x0f\x08\x09\x0b\x10\x09\x09\x0c\x11\x0a\x09\x0d\x12\x0b\x09\x0a\x13\x0c\x0a\x00\x14"
    b"\x0d\x29\x0b\x15"
    b"\x01\x11\x00\x16"  # DurationInfo
    b"\x01\x11\x00\x16"  # TimeInfo
    b"\x01\x09\x0f\x17"  # KillPolicy
    b"\x01\x18\x00\x00"  # UUID
    b"\x01\x05\x00\x05"  # SlaveInfo_Capability
    b"\x01\x17\x00\x18\x03\x69\x0e\x19\x05\x29\x07\x1a\x06\x0a\x00\x1b\x07\x04\x00\x1c\x08\x00\x00\x1d"  # SlaveInfo
    b"\x0a\x09\x00\x1e"
    b"\x01\x05\x00\x05"  # FrameworkInfo_Capability
    b"\x01\x07\x00\x0b\x02\x09\x00\x00"  # FrameworkInfo_OfferFiltersEntry
    b"\x01\x17\x00\x1f\x02\x17\x00\x0a\x03\x0a\x00\x1b\x04\x06\x00\x20\x05\x04\x00\x1c\x06\x07\x00\x0d"  # FrameworkInfo
    b"\x07\x07\x00\x18\x08\x07\x00\x0e\x09\x07\x00\x21\x0a\x29\x15\x22\x0b\x09\x09\x0c\x0c\x27\x00\x23"
    b"\x0d\x29\x16\x24"
    b"\x01\x17\x00\x00\x02\x04\x00\x25\x03\x04\x00\x26\x04\x04\x00\x27\x05\x07\x00\x28"  # CommandInfo_URI
    b"\x01\x17\x00\x0a\x02\x07\x00\x00\x03\x05\x00\x05\x04\x09\x00\x29"  # Environment_Variable
    b"\x01\x29\x19\x2a"  # Environment
    b"\x01\x29\x18\x2b\x02\x09\x1a\x2c\x03\x07\x00\x00\x05\x07\x00\x1f\x06\x04\x00\x2d\x07\x27\x00\x2e"  # CommandInfo
    b"\x01\x05\x00\x2f\x02\x07\x00\x30"  # NetworkInfo_IPAddress
    b"\x01\x12\x00\x31\x02\x12\x00\x32\x03\x07\x00\x2f"  # NetworkInfo_PortMapping
    b"\x03\x27\x00\x33\x04\x09\x09\x0c\x05\x29\x1c\x34\x06\x07\x00\x0a\x07\x29\x1d\x35"  # NetworkInfo
    b"\x01\x15\x00\x05\x02\x29\x00\x36\x03\x09\x00\x37\x04\x07\x00\x18\x05\x09\x00\x38\x07\x29\x1e\x39"  # ContainerInfo
    b"\x08\x09\x00\x3a\x09\x09\x00\x3b\x0a\x09\x00\x3c"
    b"\x01\x12\x00\x1d\x02\x07\x00\x3d\x03\x07\x00\x3e\x04\x22\x00\x3f\x05\x05\x00\x2f"  # HealthCheck_HTTPCheckInfo
    b"\x01\x12\x00\x1d\x02\x05\x00\x2f"  # HealthCheck_TCPCheckInfo
    b"\x01\x09\x20\x40\x02\x06\x00\x41\x03\x06\x00\x42\x04\x06\x00\x43\x05\x02\x00\x44\x06\x06\x00\x45"  # HealthCheck
    b"\x07\x09\x1b\x46\x08\x05\x00\x05\x09\x09\x21\x47"
    b"\x01\x12\x00\x48\x02\x07\x00\x0a\x03\x07\x00\x2f\x04\x05\x00\x49\x05\x09\x09\x0c"  # Port
    b"\x01\x29\x23\x4a"  # Ports
    b"\x01\x15\x00\x49\x02\x07\x00\x0a\x03\x07\x00\x2c\x04\x07\x00\x4b\x05\x07\x00\x4c\x06\x09\x24\x4a"  # DiscoveryInfo
    b"\x07\x09\x09\x0c"
    b"\x01\x1a\x00\x4d\x04\x08\x00\x4e\x05\x69\x0e\x19\x07\x09\x1b\x46\x08\x0a\x00\x4f\x09\x07\x00\x0a"  # ExecutorInfo
    b"\x0a\x07\x00\x50\x0b\x09\x1f\x51\x0c\x09\x25\x52\x0d\x09\x0f\x53\x0e\x09\x09\x0c\x0f\x05\x00\x05"
    b"\x01\x07\x00\x0b\x02\x09\x01\x00"  # TaskInfo_LimitsEntry
    b"\x01\x17\x00\x0a\x02\x1a\x00\x54\x03\x1a\x00\x55\x04\x69\x0e\x19\x05\x49\x26\x56\x06\x08\x00\x4e"  # TaskInfo
    b"\x07\x09\x1b\x46\x08\x49\x22\x57\x09\x49\x1f\x51\x0a\x49\x09\x0c\x0b\x49\x25\x52\x0c\x49\x11\x58"
    b"\x0d\x09\x00\x59\x0e\x09\x0f\x5a\x0f\x69\x27\x5b"
    b"\x01\x29\x28\x5c"  # TaskGroupInfo
    b"\x01\x17\x00\x00\x02\x09\x2a\x5d"  # ContainerID
    b"\x01\x29\x1e\x39\x02\x09\x00\x5e\x03\x02\x00\x5f\x04\x09\x2a\x60"  # ContainerStatus
    b"\x01\x00\x00\x61"  # CheckStatusInfo_Command
    b"\x01\x02\x00\x62"  # CheckStatusInfo_Http
    b"\x01\x04\x00\x63"  # CheckStatusInfo_Tcp
    b"\x01\x05\x00\x05\x02\x09\x2c\x46\x03\x09\x2d\x40\x04\x09\x2e\x47"  # CheckStatusInfo
    b"\x01\x69\x0e\x19"  # TaskResourceLimitation
    b"\x01\x1a\x00\x54\x02\x15\x00\x64\x03\x08\x00\x4e\x04\x07\x00\x65\x05\x0a\x00\x55\x06\x06\x00\x66"  # TaskStatus
    b"\x07\x0a\x00\x4d\x08\x04\x00\x67\x09\x05\x00\x50\x0a\x05\x00\x68\x0b\x08\x00\x69\x0c\x09\x09\x0c"
    b"\x0d\x09\x2b\x6a\x0e\x09\x10\x6b\x0f\x09\x2f\x6c\x10\x09\x30\x6d"
    b"\x01\x17\x00\x0a\x02\x1a\x00\x54\x03\x1a\x00\x4f\x04\x0a\x00\x4d\x05\x1a\x00\x55\x06\x15\x00\x64"  # Task
    b"\x07\x69\x0e\x19\x08\x29\x31\x3f\x09\x05\x00\x6e\x0a\x08\x00\x6f\x0b\x49\x09\x0c\x0c\x49\x25\x52"
    b"\x0d\x49\x1f\x51\x0e\x07\x00\x1f\x0f\x49\x22\x57\x10\x49\x11\x58\x11\x69\x27\x5b"
    b"\x01\x1a\x00\x4f\x02\x0a\x00\x4d\x03\x0a\x00\x55\x04\x19\x31\x70\x05\x16\x00\x66\x06\x08\x00\x69"  # StatusUpdate
    b"\x07\x05\x00\x71"
    b"\x01\x19\x33\x72\x02\x07\x00\x73"  # StatusUpdateMessage
    b"\x01\x1a\x00\x55\x02\x1a\x00\x4f\x03\x1a\x00\x54\x04\x18\x00\x69"  # StatusUpdateAcknowledgementMessage
    b"\x01\x19\x14\x74\x02\x07\x00\x4c\x03\x69\x0e\x75\x04\x29\x13\x76\x05\x09\x12\x77"  # RegisterSlaveMessage
    b"\x01\x59\x17\x78\x02\x07\x00\x73\x03\x29\x32\x5c"  # Archive_Framework
    b"\x02\x19\x14\x74\x03\x29\x32\x5c\x04\x69\x26\x79\x05\x29\x37\x7a\x06\x07\x00\x4c\x07\x69\x0e\x75"  # ReregisterSlaveMessage
    b"\x08\x69\x17\x7b\x09\x29\x13\x76\x0a\x09\x12\x77"
    b"\x01\x06\x00\x7c"  # MasterSlaveConnection
    b"\x01\x1a\x00\x55\x02\x09\x39\x7d"  # SlaveRegisteredMessage
    b"\x01\x1a\x00\x4f\x02\x29\x31\x3f\x03\x49\x17\x7e"  # ReconcileTasksMessage
    b"\x01\x1a\x00\x55\x02\x29\x3b\x7f\x03\x09\x39\x7d"  # SlaveReregisteredMessage
    b"\x01\x14\x00\x80"  # PingSlaveMessage
    b"\x01\x1a\x00\x55"  # UnregisterSlaveMessage
    b"\x01\x0a\x00\x81\x02\x19\x12\x69"  # ResourceVersionUUID
    b"\x01\x0a\x00\x4f\x02\x59\x17\x7e\x03\x07\x00\x73\x04\x19\x28\x82\x05\x29\x40\x83\x06\x04\x00\x84"  # RunTaskMessage
    b"\x01\x59\x17\x7e\x02\x59\x26\x56\x03\x19\x29\x85\x04\x29\x40\x83\x05\x04\x00\x84"  # RunTaskGroupMessage
    b"\x01\x1a\x00\x4f\x02\x1a\x00\x54\x03\x09\x11\x58"  # KillTaskMessage
    b"\x01\x1a\x00\x4f"  # ShutdownFrameworkMessage
    b"\x01\x0a\x00\x4d\x02\x0a\x00\x4f"  # ShutdownExecutorMessage
    b"\x01\x1a\x00\x4f\x02\x07\x00\x73\x03\x49\x17\x78"  # UpdateFrameworkMessage
    b"\x01\x69\x0e\x19"  # CheckpointResourcesMessage
    b"\x01\x1a\x00\x55\x02\x1a\x00\x4f\x03\x1a\x00\x4d\x04\x10\x00\x70"  # ExitedExecutorMessage
    b"\x01\x1a\x00\x55\x02\x1a\x00\x4f\x03\x1a\x00\x4d\x04\x18\x00\x4e"  # ExecutorToFrameworkMessage
    b"\x01\x1a\x00\x55\x02\x1a\x00\x4f\x03\x1a\x00\x4d\x04\x18\x00\x4e"  # FrameworkToExecutorMessage
    b"\x01\x07\x00\x65"  # ShutdownMessage
    b"\x01\x09\x0f\x86\x02\x04\x00\x87"  # DrainConfig
    b"\x01\x19\x4c\x88"  # DrainSlaveMessage
    b"\x01\x29\x00\x89"  # UpdateSlaveMessage_Operations
    b"\x01\x29\x00\x8a"  # UpdateSlaveMessage_ResourceProviders
    b"\x01\x1a\x00\x55\x02\x69\x0e\x8b\x05\x04\x00\x8c\x06\x09\x4e\x89\x07\x09\x12\x77\x08\x09\x4f\x8d"  # UpdateSlaveMessage
)
FIRST = (
    b"\x00\x00\x00\x00\x01\x00\x03\x00\x04\x00\x05\x00\x06\x00\x0b\x00\x11\x00\x13\x00\x14\x00\x15\x00"
    b"\x19\x00\x19\x00\x19\x00\x26\x00\x27\x00\x28\x00\x29\x00\x2a\x00\x2b\x00\x32\x00\x33\x00\x35\x00"
    b"\x42\x00\x47\x00\x4b\x00\x4c\x00\x52\x00\x54\x00\x57\x00\x5c\x00\x65\x00\x6a\x00\x6c\x00\x75\x00"
    b"\x7a\x00\x7b\x00\x82\x00\x8e\x00\x90\x00\x9f\x00\xa0\x00\xa2\x00\xa6\x00\xa7\x00\xa8\x00\xa9\x00"
    b"\xad\x00\xae\x00\xbe\x00\xcf\x00\xd6\x00\xd8\x00\xdc\x00\xe1\x00\xe4\x00\xed\x00\xee\x00\xf0\x00"
    b"\xf3\x00\xf6\x00\xf7\x00\xf7\x00\xf8\x00\xfa\x00\x00\x01\x05\x01\x08\x01\x09\x01\x0b\x01\x0e\x01"
    b"\x0f\x01\x13\x01\x17\x01\x1b\x01\x1c\x01\x1e\x01\x1f\x01\x20\x01\x21\x01\x27\x01"
)


def _qstrs(o):  # never called: its attribute names are KEYS (below)
    return (
        o.value, o.begin, o.end, o.range, o.item, o.type, o.scalar, o.ranges, o.set, o.text, o.name, o.key,
        o.labels, o.role, o.principal, o.disk, o.reservation, o.revocable, o.shared, o.allocation_info,
        o.provider_id, o.reservations, o.nanoseconds, o.grace_period, o.hostname, o.resources, o.attributes,
        o.id, o.checkpoint, o.port, o.domain, o.user, o.failover_timeout, o.webui_url, o.capabilities, o.roles,
        o.offer_filters, o.executable, o.extract, o.cache, o.output_file, o.secret, o.variables, o.uris,
        o.environment, o.shell, o.arguments, o.protocol, o.ip_address, o.host_port, o.container_port, o.groups,
        o.ip_addresses, o.port_mappings, o.volumes, o.docker, o.mesos, o.network_infos, o.linux_info,
        o.rlimit_info, o.tty_info, o.path, o.scheme, o.statuses, o.http, o.delay_seconds, o.interval_seconds,
        o.timeout_seconds, o.consecutive_failures, o.grace_period_seconds, o.command, o.tcp, o.number,
        o.visibility, o.ports, o.location, o.version, o.executor_id, o.data, o.framework_id, o.source,
        o.container, o.discovery, o.shutdown_grace_period, o.task_id, o.slave_id, o.executor, o.health_check,
        o.kill_policy, o.check, o.max_completion_time, o.limits, o.tasks, o.parent, o.cgroup_info,
        o.executor_pid, o.container_id, o.exit_code, o.status_code, o.succeeded, o.state, o.message,
        o.timestamp, o.healthy, o.reason, o.uuid, o.container_status, o.unreachable_time, o.check_status,
        o.limitation, o.status_update_state, o.status_update_uuid, o.status, o.latest_state, o.update, o.pid,
        o.slave, o.checkpointed_resources, o.agent_capabilities, o.resource_version_uuid, o.framework_info,
        o.executor_infos, o.completed_frameworks, o.frameworks, o.total_ping_timeout_seconds, o.connection,
        o.framework, o.reconciliations, o.connected, o.resource_provider_id, o.task, o.resource_version_uuids,
        o.launch_executor, o.task_group, o.max_grace_period, o.mark_gone, o.config, o.operations, o.providers,
        o.oversubscribed_resources, o.update_oversubscribed_resources, o.resource_providers,
    )


del _qstrs
KEYS = (
    "value", "begin", "end", "range", "item", "type", "scalar", "ranges", "set", "text", "name", "key",
    "labels", "role", "principal", "disk", "reservation", "revocable", "shared", "allocation_info",
    "provider_id", "reservations", "nanoseconds", "grace_period", "hostname", "resources", "attributes", "id",
    "checkpoint", "port", "domain", "user", "failover_timeout", "webui_url", "capabilities", "roles",
    "offer_filters", "executable", "extract", "cache", "output_file", "secret", "variables", "uris",
    "environment", "shell", "arguments", "protocol", "ip_address", "host_port", "container_port", "groups",
    "ip_addresses", "port_mappings", "volumes", "docker", "mesos", "network_infos", "linux_info", "rlimit_info",
    "tty_info", "path", "scheme", "statuses", "http", "delay_seconds", "interval_seconds", "timeout_seconds",
    "consecutive_failures", "grace_period_seconds", "command", "tcp", "number", "visibility", "ports",
    "location", "version", "executor_id", "data", "framework_id", "source", "container", "discovery",
    "shutdown_grace_period", "task_id", "slave_id", "executor", "health_check", "kill_policy", "check",
    "max_completion_time", "limits", "tasks", "parent", "cgroup_info", "executor_pid", "container_id",
    "exit_code", "status_code", "succeeded", "state", "message", "timestamp", "healthy", "reason", "uuid",
    "container_status", "unreachable_time", "check_status", "limitation", "status_update_state",
    "status_update_uuid", "status", "latest_state", "update", "pid", "slave", "checkpointed_resources",
    "agent_capabilities", "resource_version_uuid", "framework_info", "executor_infos", "completed_frameworks",
    "frameworks", "total_ping_timeout_seconds", "connection", "framework", "reconciliations", "connected",
    "resource_provider_id", "task", "resource_version_uuids", "launch_executor", "task_group",
    "max_grace_period", "mark_gone", "config", "operations", "providers", "oversubscribed_resources",
    "update_oversubscribed_resources", "resource_providers",
)
# --- end of generated tables ---
