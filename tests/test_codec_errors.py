# Bad input, edge cases and the allocation-free paths of the codec, all run in the MicroPython unix port.
# MIT licence. Each error class gets one case: DecodeError with a message saying what and where.
import json
import os

import pytest

import mpy


def numbered(text):
    # The codec names a message type by its number in errors ("#61.connected": names take RAM on a board);
    # the cases below say "PingSlaveMessage.connected" for the reader.
    import re
    from micromesos import schema
    return re.sub(r"\b([A-Z][A-Za-z_]*)(?=\.| of | has | must | nests)",
                  lambda m: "#%d" % getattr(schema, m.group(1)), text)


# (case id, message type, body hex, the DecodeError message expected)
DECODE_ERRORS = [
    ("truncated-varint", "PingSlaveMessage", "0880", "truncated varint at 1"),
    ("varint-over-10-bytes", "PingSlaveMessage", "08" + "ff" * 10 + "01", "varint longer than 10 bytes at 1"),
    ("length-past-end", "ShutdownMessage", "0a05616263", "length 5 past the end at 1"),
    ("absurd-length", "ShutdownMessage", "0affffffff0f", "length 4294967295 past the end at 1"),
    ("wrong-wire-type", "PingSlaveMessage", "090000000000000000",
     "wrong wire type 1 for PingSlaveMessage.connected at 0"),
    ("wrong-wire-type-nested", "StatusUpdateMessage", "0a041a020801",
     "wrong wire type 0 for StatusUpdate.slave_id at 4"),
    ("missing-required", "PingSlaveMessage", "", "missing required PingSlaveMessage.connected before 0"),
    ("missing-required-nested", "StatusUpdateMessage", "0a09" + "0a030a0161" + "22021001",
     "missing required TaskStatus.task_id before 11"),
    ("missing-id-value", "ShutdownFrameworkMessage", "0a00",
     "missing required value in ShutdownFrameworkMessage.framework_id before 2"),
    ("invalid-utf8", "ShutdownMessage", "0a02fffe", "invalid UTF-8 in ShutdownMessage.message at 2"),
    ("utf8-surrogate", "ShutdownMessage", "0a03eda080", "invalid UTF-8 in ShutdownMessage.message at 2"),
    ("utf8-overlong", "ShutdownMessage", "0a02c080", "invalid UTF-8 in ShutdownMessage.message at 2"),
    ("utf8-above-10ffff", "ShutdownMessage", "0a04f4908080", "invalid UTF-8 in ShutdownMessage.message at 2"),
    ("utf8-truncated", "ShutdownMessage", "0a0261e2", "invalid UTF-8 in ShutdownMessage.message at 2"),
    ("bad-key-field-0", "PingSlaveMessage", "0001", "bad field key at 0"),
    ("bad-wire-type-group", "PingSlaveMessage", "0801" + "0b", "bad wire type 3 at 2"),
    ("bad-wire-type-7", "PingSlaveMessage", "0f", "bad wire type 7 at 0"),
    ("truncated-double", "SlaveRegisteredMessage", "0a030a0161" + "1204" + "09000000",
     "truncated double at 8"),
    ("truncated-fixed32", "PingSlaveMessage", "08017d0000", "truncated fixed32 at 3"),
]


@pytest.fixture(scope="module")
def decode_errors():
    code = """
import json
from binascii import unhexlify
from micromesos import codec, schema
from micromesos.errors import DecodeError
out = {}
for cid, tname, hexbody, _ in json.loads(%r):
    try:
        out[cid] = ["ok", repr(codec.decode(getattr(schema, tname), unhexlify(hexbody), raw=False))]
    except DecodeError as e:
        out[cid] = ["DecodeError", str(e)]
    except Exception as e:
        out[cid] = [type(e).__name__, str(e)]
# the caller keeps running: a good body right after all that
out["after"] = codec.decode(schema.PingSlaveMessage, b"\\x08\\x01")["connected"]
print(json.dumps(out))
""" % json.dumps(DECODE_ERRORS)
    return json.loads(mpy.run_mpy(code=code).check().out)


@pytest.mark.parametrize("case", DECODE_ERRORS, ids=[c[0] for c in DECODE_ERRORS])
def test_decode_error(case, decode_errors):
    assert decode_errors[case[0]] == ["DecodeError", numbered(case[3])]


@pytest.mark.parametrize("case", DECODE_ERRORS, ids=[c[0] for c in DECODE_ERRORS])
def test_decode_error_same_in_cpython(case):
    # Both runtimes must refuse the same bytes with the same words (e.g. UTF-8 strictness differs natively).
    from micromesos import codec, schema
    from micromesos.errors import DecodeError
    with pytest.raises(DecodeError) as e:
        codec.decode(getattr(schema, case[1]), bytes.fromhex(case[2]), raw=False)
    assert str(e.value) == numbered(case[3])


def test_decoder_keeps_working_after_errors(decode_errors):
    assert decode_errors["after"] is True


def test_oversize_and_over_deep(mpy_run):
    code = """
from micromesos import codec, schema
from micromesos.errors import DecodeError
def chain(n):
    b = b"\\x0a\\x01x"                      # ContainerID{value: "x"}
    for _ in range(n):
        b = b"\\x0a\\x01x\\x12" + bytes([len(b)]) + b
    return b
ok = codec.decode(schema.ContainerID, chain(codec.MAX_DEPTH), raw=False)
depth = 0
while "parent" in ok:
    ok = ok["parent"]
    depth += 1
print(depth)
for body in (chain(codec.MAX_DEPTH + 1), bytes(codec.MAX_MESSAGE + 1)):
    try:
        codec.decode(schema.ContainerID, body)
    except DecodeError as e:
        print(e)
"""
    lines = mpy_run(code).check().lines()
    assert lines[0] == "12"
    # 13 wrappings of 5 bytes (0a 01 78 12 len) around the innermost: level 12's parent key is at 12 * 5 + 3
    assert lines[1] == numbered("ContainerID.parent nests deeper than MAX_DEPTH (12) at 63")
    assert lines[2] == numbered("ContainerID of 32769 bytes is over MAX_MESSAGE (32768)")


def test_decode_edge_cases(mpy_run):
    code = r"""
from binascii import unhexlify as u
from micromesos import codec, schema
D = codec.decode
# unknown fields of every wire type are skipped (newer masters add fields); field 257 is not field 1
print(D(schema.PingSlaveMessage, u("0801" + "a00605" + "a9060102030405060708" + "b20603616263"
                                   + "bd0601020304" + "881000")))
# packed and unpacked repeated scalars, mixed
print(D(schema.HealthCheck_HTTPCheckInfo, u("0850" + "2204c801c801" + "20ac02")))
# int32: -1 as 10 bytes and as protobuf's 5-byte form; int64 and uint64 extremes
print(D(schema.ExitedExecutorMessage,
        u("0a030a0161" + "12030a0162" + "1a030a0163" + "20ffffffffffffffffff01"))["status"],
      D(schema.CheckStatusInfo_Command, u("08ffffffff0f"))["exit_code"],
      D(schema.DurationInfo, u("0880808080808080808001"))["nanoseconds"],
      D(schema.Value_Range, u("0800" + "10ffffffffffffffffff01"))["end"])
# a singular sub-message sent twice merges, as protobuf does; a scalar sent twice: last one wins
print(D(schema.SlaveRegisteredMessage, u("0a030a0161" + "1209090000000000c05240" + "1200" + "0a030a0162")))
# raw=True keeps RAW sub-messages as bytes, decoded later on demand
m = D(schema.UpdateFrameworkMessage, u("0a030a0161" + "1a090a04726f6f7412017a"))
print(repr(m["framework_info"]), sorted(D(schema.FrameworkInfo, m["framework_info"]).items()))
print(D(schema.PongSlaveMessage, b""), D(schema.CheckpointResourcesMessage, b""))
"""
    lines = mpy_run(code).check().lines()
    assert lines[0] == "{'connected': True}"
    assert eval(lines[1]) == {"port": 80, "statuses": [200, 200, 300]}
    assert lines[2] == "-1 -1 -9223372036854775808 18446744073709551615"
    assert eval(lines[3]) == {"slave_id": "b", "connection": {"total_ping_timeout_seconds": 75.0}}
    assert lines[4] == "b'\\n\\x04root\\x12\\x01z' [('name', 'z'), ('user', 'root')]"
    assert lines[5] == "{} {}"


def test_encode_rejects_bad_input(mpy_run):
    code = r"""
from micromesos import codec, schema
E = codec.encode
for T, obj in ((schema.PingSlaveMessage, {}),
               (schema.PingSlaveMessage, {"connected": True, "conected": False}),
               (schema.ShutdownMessage, {"message": 5}),
               (schema.ShutdownMessage, {"message": b"bytes for a string"}),
               (schema.ExitedExecutorMessage, {"slave_id": "a", "framework_id": "b", "executor_id": "c",
                                               "status": 2 ** 31}),
               (schema.ContainerStatus, {"executor_pid": -1}),
               (schema.ContainerStatus, {"cgroup_info": {"net_cls": {}}}),
               (schema.Value_Set, {"item": "a"}),
               (schema.Value_Scalar, {"value": True}),
               (schema.SlaveRegisteredMessage, {"slave_id": "a", "connection": 7})):
    try:
        E(T, obj)
        print("encoded", obj)
    except (ValueError, TypeError) as e:
        print(type(e).__name__, e)
"""
    assert mpy_run(code).check().lines() == [numbered(x) for x in (
        "ValueError missing required PingSlaveMessage.connected",
        "ValueError PingSlaveMessage has no field ['conected']",
        "TypeError ShutdownMessage.message: str expected",
        "TypeError ShutdownMessage.message: str expected",
        "ValueError ExitedExecutorMessage.status: 2147483648 out of range",
        "ValueError ContainerStatus.executor_pid: -1 out of range",
        "TypeError ContainerStatus.cgroup_info is kept opaque: bytes expected",
        "TypeError Value_Set.item is repeated: list or tuple",
        "TypeError Value_Scalar.value: number expected",
        "TypeError MasterSlaveConnection must be a dict or bytes, not int",
    )]


def test_encode_writes_zero_values_and_raw_bytes(mpy_run):
    code = r"""
from binascii import hexlify
from micromesos import codec, schema
# §0.6: required zero values are written (TaskStatus.state = TASK_STARTING = 0, Value.Type SCALAR = 0)
print(hexlify(codec.encode(schema.TaskStatus, {"task_id": "t", "state": schema.TASK_STARTING})).decode())
res = {"name": "c", "type": schema.SCALAR, "scalar": {"value": 0.0}}
print(hexlify(codec.encode(schema.Resource, res)).decode())
# bytes-like sub-messages are echoed verbatim; IDs written as {1: value}; negative int32 as 10 bytes
fw = codec.encode(schema.FrameworkInfo, {"user": "u", "name": "n"})
m = {"framework_id": "f", "framework_info": memoryview(fw)}
out = codec.encode(schema.UpdateFrameworkMessage, m)
print(hexlify(out).decode(), codec.size(schema.UpdateFrameworkMessage, m) == len(out))
ee = {"slave_id": "a", "framework_id": "b", "executor_id": "c", "status": -1}
print(hexlify(codec.encode(schema.ExitedExecutorMessage, ee)).decode())
try:
    codec.encode(schema.ShutdownMessage, {"message": "m", "reason": "x"})
except ValueError as e:
    print(e)
"""
    assert mpy_run(code).check().lines() == [numbered(x) for x in (
        "0a030a01741000",
        "0a016310001a09090000000000000000",
        "0a030a01661a060a01751201 6e".replace(" ", "") + " True",
        "0a030a016112030a01621a030a016320ffffffffffffffffff01",
        "ShutdownMessage has no field ['reason']",
    )]


def test_ping_connected(mpy_run):
    code = r"""
from micromesos import codec
from micromesos.errors import DecodeError
P = codec.ping_connected
buf = bytearray(b"junk\x08\x01\x12\x01z\x08\x00junk")
print(P(b"\x08\x01"), P(b"\x08\x00"), P(buf, 4, 9), P(buf, 4, 11), P(b"\x08\x02"))
for bad in (b"", b"\x12\x00", b"\x0a\x00", b"\x08", b"\x08\x01\xff"):
    try:
        P(bad)
        print("accepted", bad)
    except DecodeError as e:
        print(e)
"""
    assert mpy_run(code).check().lines() == [numbered(x) for x in (
        "True False True False True",
        "missing required PingSlaveMessage.connected",
        "missing required PingSlaveMessage.connected",
        "wrong wire type 2 for PingSlaveMessage.connected at 0",
        "truncated varint at 1",
        "truncated varint at 2",
    )]


def test_good_bytes_that_find_no_heap_raise_memoryerror_not_decodeerror(mpy_run):
    # A full board must never take a good message for a bad sender (the agent and the node count and log
    # the two apart): the dict that finds no heap is a MemoryError, whatever depth it happens at.
    lines = mpy_run("""
import gc
from micromesos import codec, schema
from micromesos.errors import DecodeError
T = schema.Value
body = codec.encode(T, {"type": schema.SET, "set": {"item": ["item-%d" % i for i in range(60)]}})
print(len(codec.decode(T, body)["set"]["item"]))

def squeezed():
    # The heap is filled to the last block by a chain of small tuples (no list that must grow: a
    # failed list growth would leave its whole request free), then the last links are let go: room
    # for the reader and a few fields, not for 60 strings. Locals only: a new global grows the
    # globals dict, an allocation of its own.
    gc.collect()
    head = None
    for size in (256, 16, 0):
        try:
            while True:
                head = (head, bytearray(size))
        except MemoryError:
            pass
    for _ in range(8):
        head = head[0]
    gc.collect()
    try:
        codec.decode(T, body)
        return "decoded"
    except MemoryError:
        return "MemoryError"
    except DecodeError:
        return "DecodeError"

print(squeezed())
""", heapsize="64k").check().lines()
    assert lines == ["60", "MemoryError"], lines


# Allocation-free paths. heap_lock() turns any allocation into MemoryError, but MicroPython quietly puts
# a call frame bigger than 11 words on the C stack instead of the heap while locked; mem_total() (every
# byte ever allocated) also catches those, so both are checked.
ALLOC_FREE = r"""
import micropython, json
from binascii import unhexlify
from micromesos import codec, schema
from micromesos.wire import Reader

def ping_loop(n, buf):
    c = 0
    m0 = micropython.mem_total()
    micropython.heap_lock()
    try:
        for _ in range(n):
            if codec.ping_connected(buf, 0, -1):
                c += 1
    finally:
        micropython.heap_unlock()
    return micropython.mem_total() - m0, c

def walk(r, buf, T, stack, n):
    # Every field of every modelled sub-message, keys and varints read, no recursion (explicit stack).
    F = schema.FIELDS
    A = schema.FIRST
    fields = 0
    m0 = micropython.mem_total()
    micropython.heap_lock()
    try:
        for _ in range(n):
            r.reset(buf, 0, -1)
            sp = 0
            t = T
            while True:
                fn = r.next()
                if fn == 0:
                    if sp == 0:
                        break
                    sp -= 2
                    r.end = stack[sp]
                    t = stack[sp + 1]
                    continue
                fields += 1
                k = 0
                sub = 0
                for i in range(4 * (A[2 * t] | A[2 * t + 1] << 8), 4 * (A[2 * t + 2] | A[2 * t + 3] << 8), 4):
                    if F[i] == fn:
                        k = F[i + 1] & 15
                        sub = F[i + 2]
                if r.wt == 0:
                    r.varint()
                elif r.wt == 2 and k == 9 and sub:
                    end = r.lendelim()
                    stack[sp] = r.end
                    stack[sp + 1] = t
                    sp += 2
                    r.end = end
                    t = sub
                else:
                    r.skip()
    finally:
        micropython.heap_unlock()
    return micropython.mem_total() - m0, fields

out = {}
out["ping"] = ping_loop(2000, b"\x08\x01")
out["ping_unknown_fields"] = ping_loop(2000, b"\x12\x03abc\x08\x01\xa9\x06\x01\x02\x03\x04\x05\x06\x07\x08")
r = Reader()
stack = [0] * 64
for line in open(%r):
    v = json.loads(line)
    if v["name"] in ("run_task", "reregister_slave", "slave_reregistered", "status_update_running"):
        T = getattr(schema, v["type"].split(".")[-1])
        out[v["name"]] = walk(r, unhexlify(v["hex"]), T, stack, 200)
print(json.dumps(out))
"""


def test_ping_and_reader_allocate_nothing(mpy_run, golden_dir):
    out = json.loads(mpy_run(ALLOC_FREE % os.path.join(golden_dir, "vectors.jsonl")).check().out)
    assert out["ping"] == [0, 2000]
    assert out["ping_unknown_fields"] == [0, 2000]
    for name in ("run_task", "reregister_slave", "slave_reregistered", "status_update_running"):
        allocated, fields = out[name]
        assert allocated == 0, name
        assert fields >= 200 * 16, (name, fields)  # really walked the nested fields, 200 times
    print("fields walked per pass:", {k: v[1] // 200 for k, v in out.items() if not k.startswith("ping")})
