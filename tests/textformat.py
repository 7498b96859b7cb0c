# CPython reader for protoc's text format, turned into the codec's dict form through the schema tables.
# MIT licence. Test-only: the expectations come from Google's protoc output, never from our own codec.
import struct

from micromesos import schema

# Enum names, by (proto message, field). They live here, not on the device (the device keeps numbers
# only, plus the task state names for /state). Numbers transcribed from apache/mesos include/mesos/mesos.proto.
VALUE_TYPE = {"SCALAR": 0, "RANGES": 1, "SET": 2, "TEXT": 3}
TASK_STATE = {"TASK_STAGING": 6, "TASK_STARTING": 0, "TASK_RUNNING": 1, "TASK_KILLING": 8, "TASK_FINISHED": 2,
              "TASK_FAILED": 3, "TASK_KILLED": 4, "TASK_ERROR": 7, "TASK_LOST": 5, "TASK_DROPPED": 9,
              "TASK_UNREACHABLE": 10, "TASK_GONE": 11, "TASK_GONE_BY_OPERATOR": 12, "TASK_UNKNOWN": 13}
SOURCE = {"SOURCE_MASTER": 0, "SOURCE_SLAVE": 1, "SOURCE_EXECUTOR": 2}
REASON = {"REASON_COMMAND_EXECUTOR_FAILED": 0, "REASON_CONTAINER_LAUNCH_FAILED": 21,
          "REASON_CONTAINER_LIMITATION": 19, "REASON_CONTAINER_LIMITATION_DISK": 20,
          "REASON_CONTAINER_LIMITATION_MEMORY": 8, "REASON_CONTAINER_PREEMPTED": 17,
          "REASON_CONTAINER_UPDATE_FAILED": 22, "REASON_MAX_COMPLETION_TIME_REACHED": 33,
          "REASON_EXECUTOR_REGISTRATION_TIMEOUT": 23, "REASON_EXECUTOR_REREGISTRATION_TIMEOUT": 24,
          "REASON_EXECUTOR_TERMINATED": 1, "REASON_EXECUTOR_UNREGISTERED": 2, "REASON_FRAMEWORK_REMOVED": 3,
          "REASON_GC_ERROR": 4, "REASON_INVALID_FRAMEWORKID": 5, "REASON_INVALID_OFFERS": 6,
          "REASON_IO_SWITCHBOARD_EXITED": 27, "REASON_MASTER_DISCONNECTED": 7, "REASON_RECONCILIATION": 9,
          "REASON_RESOURCES_UNKNOWN": 18, "REASON_SLAVE_DISCONNECTED": 10, "REASON_SLAVE_DRAINING": 34,
          "REASON_SLAVE_REMOVED": 11, "REASON_SLAVE_REMOVED_BY_OPERATOR": 31, "REASON_SLAVE_REREGISTERED": 32,
          "REASON_SLAVE_RESTARTED": 12, "REASON_SLAVE_UNKNOWN": 13, "REASON_TASK_KILLED_DURING_LAUNCH": 30,
          "REASON_TASK_CHECK_STATUS_UPDATED": 28, "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED": 29,
          "REASON_TASK_GROUP_INVALID": 25, "REASON_TASK_GROUP_UNAUTHORIZED": 26, "REASON_TASK_INVALID": 14,
          "REASON_TASK_UNAUTHORIZED": 15, "REASON_TASK_UNKNOWN": 16}
AGENT_CAPABILITY = {"UNKNOWN": 0, "MULTI_ROLE": 1, "HIERARCHICAL_ROLE": 2, "RESERVATION_REFINEMENT": 3,
                    "RESOURCE_PROVIDER": 4, "RESIZE_VOLUME": 5, "AGENT_OPERATION_FEEDBACK": 6,
                    "AGENT_DRAINING": 7, "TASK_RESOURCE_LIMITS": 8}
FRAMEWORK_CAPABILITY = {"UNKNOWN": 0, "REVOCABLE_RESOURCES": 1, "TASK_KILLING_STATE": 2, "GPU_RESOURCES": 3,
                        "SHARED_RESOURCES": 4, "PARTITION_AWARE": 5, "MULTI_ROLE": 6,
                        "RESERVATION_REFINEMENT": 7, "REGION_AWARE": 8}
CHECK_TYPE = {"UNKNOWN": 0, "COMMAND": 1, "HTTP": 2, "TCP": 3}
PROTOCOL = {"IPv4": 1, "IPv6": 2}
VISIBILITY = {"FRAMEWORK": 0, "CLUSTER": 1, "EXTERNAL": 2}
ENUMS = {
    ("Value", "type"): VALUE_TYPE, ("Attribute", "type"): VALUE_TYPE, ("Resource", "type"): VALUE_TYPE,
    ("Resource_ReservationInfo", "type"): {"UNKNOWN": 0, "STATIC": 1, "DYNAMIC": 2},
    ("SlaveInfo_Capability", "type"): AGENT_CAPABILITY,
    ("FrameworkInfo_Capability", "type"): FRAMEWORK_CAPABILITY,
    ("Environment_Variable", "type"): {"UNKNOWN": 0, "VALUE": 1, "SECRET": 2},
    ("NetworkInfo_IPAddress", "protocol"): PROTOCOL, ("HealthCheck_HTTPCheckInfo", "protocol"): PROTOCOL,
    ("HealthCheck_TCPCheckInfo", "protocol"): PROTOCOL, ("ContainerInfo", "type"): {"DOCKER": 1, "MESOS": 2},
    ("HealthCheck", "type"): CHECK_TYPE, ("CheckStatusInfo", "type"): CHECK_TYPE,
    ("Port", "visibility"): VISIBILITY, ("DiscoveryInfo", "visibility"): VISIBILITY,
    ("ExecutorInfo", "type"): {"UNKNOWN": 0, "DEFAULT": 1, "CUSTOM": 2},
    ("TaskStatus", "state"): TASK_STATE, ("TaskStatus", "source"): SOURCE, ("TaskStatus", "reason"): REASON,
    ("Task", "state"): TASK_STATE, ("Task", "status_update_state"): TASK_STATE,
    ("StatusUpdate", "latest_state"): TASK_STATE,
}

BY_NAME = {schema.name(t): t for t in range(1, schema.NTYPES)}  # "Value_Scalar" -> type id


def type_of(full_name):
    """'mesos.internal.RunTaskMessage' -> schema.RunTaskMessage."""
    if full_name.startswith("mesos."):
        return BY_NAME[full_name.split(".", 2)[-1]]
    return BY_NAME[full_name.replace(".", "_")]


def fields(T):
    """[(name, number, kind, label, raw, sub)] of message type T, label "opt", "req" or "rep"."""
    return [(n, num, kind, ("opt", "req", "rep")[label], raw, sub) for n, num, kind, label, raw, sub in schema.fields(T)]


# --- the text format --------------------------------------------------------------------------------

_ESC = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, "'": 39, '"': 34, "?": 63}


def _tokens(text):
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{}:":
            yield c, c
            i += 1
        elif c in "\"'":
            out = bytearray()
            i += 1
            while text[i] != c:
                if text[i] == "\\":
                    e = text[i + 1]
                    if e in "01234567":  # up to three octal digits: protoc's CEscape of bytes
                        j = i + 1
                        while j < i + 4 and text[j] in "01234567":
                            j += 1
                        out.append(int(text[i + 1:j], 8))
                        i = j
                    elif e == "x":
                        j = i + 2
                        while j < i + 4 and text[j] in "0123456789abcdefABCDEF":
                            j += 1
                        out.append(int(text[i + 2:j], 16))
                        i = j
                    else:
                        out.append(_ESC[e])
                        i += 2
                else:
                    out += text[i].encode("utf-8")
                    i += 1
            i += 1
            yield "str", bytes(out)
        else:
            j = i
            while j < n and (text[j].isalnum() or text[j] in "_.-+"):
                j += 1
            if j == i:
                raise ValueError("text format: unexpected %r at %d" % (c, i))
            yield "word", text[i:j]
            i = j


def parse(text):
    """protoc text -> [(field name, value)], value being ("str", bytes), ("word", text) or a nested list."""
    stack = [[]]
    toks = list(_tokens(text))
    i = 0
    while i < len(toks):
        kind, tok = toks[i]
        if kind == "}":
            done = stack.pop()
            stack[-1][-1] = (stack[-1][-1][0], done)
            i += 1
            continue
        if kind != "word":
            raise ValueError("text format: field name expected, got %r" % (tok,))
        if toks[i + 1][0] == ":":
            value = toks[i + 2]
            if value[0] == "{":  # `name: { ... }` is legal too
                stack[-1].append((tok, None))
                stack.append([])
                i += 3
                continue
            stack[-1].append((tok, value))
            i += 3
        elif toks[i + 1][0] == "{":
            stack[-1].append((tok, None))
            stack.append([])
            i += 2
        else:
            raise ValueError("text format: ':' or '{' expected after %s" % tok)
    if len(stack) != 1:
        raise ValueError("text format: unbalanced braces")
    return stack[0]


def to_codec(T, tree):
    """The dict the codec should produce for message type T (raw=False) from a parsed text tree."""
    spec = {f[0]: f for f in fields(T)}
    out = {}
    tname = schema.name(T)
    for name, value in tree:
        if name not in spec:
            raise KeyError("schema has no field %s.%s (protoc knows it)" % (tname, name))
        _, _, kind, label, _, sub = spec[name]
        v = _value(tname, name, kind, sub, value)
        if label == "rep":
            out.setdefault(name, []).append(v)
        else:
            out[name] = v
    return out


def _value(tname, name, kind, sub, value):
    if kind == schema.K_MSG:
        if sub == schema.OPAQUE:
            if value:
                raise NotImplementedError("%s.%s is opaque to the codec: no expectation" % (tname, name))
            return b""
        return to_codec(sub, value)
    if kind == schema.K_ID:
        if [n for n, _ in value] != ["value"]:
            raise ValueError("%s.%s: an ID holds exactly one value" % (tname, name))
        return value[0][1][1].decode("utf-8")
    tag, tok = value
    if kind == schema.K_STRING:
        return tok.decode("utf-8")
    if kind == schema.K_BYTES:
        return tok
    if kind == schema.K_ENUM:
        return ENUMS[(tname, name)][tok]
    if kind == schema.K_BOOL:
        return {"true": True, "false": False}[tok]
    if kind == schema.K_DOUBLE:
        return float(tok)
    return int(tok)


# --- canonical JSON shared with the unix port (floats by their bits, types tagged) -------------------

def canon(o):
    if isinstance(o, dict):
        return {k: canon(v) for k, v in o.items()}
    if isinstance(o, list):
        return [canon(x) for x in o]
    if isinstance(o, bool):
        return ["B", o]
    if isinstance(o, int):
        return ["i", str(o)]
    if isinstance(o, float):
        return ["d", struct.pack("<d", o).hex()]
    if isinstance(o, str):
        return ["s", o]
    if isinstance(o, (bytes, bytearray)):
        return ["b", bytes(o).hex()]
    raise TypeError("canon: %r" % (o,))


# What the agent echoes back unchanged (§1.8, §3.12), stated independently of the schema's RAW bits:
# every FrameworkInfo, Resource and ExecutorInfo, and the TaskInfo parts a re-registration Task copies.
RAW_TYPES = {"FrameworkInfo", "Resource", "ExecutorInfo"}
RAW_PARTS = {(m, f) for m in ("TaskInfo", "Task")
             for f in ("labels", "discovery", "container", "health_check", "kill_policy", "limits")}


def should_be_raw(T, name, sub):
    return schema.name(sub) in RAW_TYPES or (schema.name(T), name) in RAW_PARTS


def raw_count(T, obj):
    """How many sub-messages decode(raw=True) must hand back as bytes in this (raw=False) dict."""
    n = 0
    for name, _, kind, label, _, sub in fields(T):
        if name not in obj or kind != schema.K_MSG:
            continue
        vals = obj[name] if label == "rep" else [obj[name]]
        for v in vals:
            if sub == schema.OPAQUE or should_be_raw(T, name, sub):
                n += 1
            else:
                n += raw_count(sub, v)
    return n


def decoded_blocks(path):
    """master-agent-decoded.txt -> {seq: protoc text of the body} ('' for an empty body)."""
    out = {}
    seq = None
    for line in open(path, encoding="utf-8"):
        if line.startswith("#"):
            seq = int(line[1:].split()[0])
            out[seq] = []
        elif seq is not None and line.startswith("    |"):
            out[seq].append(line[6:].rstrip("\n"))
    return {k: "\n".join(v) for k, v in out.items()}
