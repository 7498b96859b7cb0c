# The wire layer's RAM rules on the 32-bit device model (issue 9), and the integer kinds at the edges where
# a 32-bit board's small ints end. MIT licence.
import io
import json
import os
import tokenize

import pytest

import mpy

# (type, field, kind) of one integer field per kind; Value_Range.end is required, so it rides along as 0.
INT_FIELDS = [("CheckStatusInfo_Command", "exit_code", "int32"), ("DurationInfo", "nanoseconds", "int64"),
              ("CheckStatusInfo_Http", "status_code", "uint32"), ("Value_Range", "begin", "uint64"),
              ("SlaveInfo_Capability", "type", "enum")]
EDGES = [0, 1, 2**30 - 1, 2**30, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 5, 2**62, 2**63 - 1, 2**63,
         2**64 - 1]
RANGE = {"int32": (-2**31, 2**31), "enum": (-2**31, 2**31), "int64": (-2**63, 2**63), "uint32": (0, 2**32),
         "uint64": (0, 2**64)}


def varint(u):
    out = bytearray()
    while u > 0x7F:
        out.append(u & 0x7F | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def decoded(kind, u):
    """What protobuf makes of the unsigned 64-bit varint u in a field of this kind."""
    if kind in ("int32", "enum", "uint32"):
        u &= 0xFFFFFFFF
        return u - 2**32 if kind != "uint32" and u >= 2**31 else u
    return u - 2**64 if kind == "int64" and u >= 2**63 else u


INTS = r"""
import sys, json
from binascii import hexlify, unhexlify
from micromesos import codec, schema
out = []
for tname, field, bodies, values in json.loads(sys.stdin.read()):
    T = getattr(schema, tname)
    extra = {"end": 0} if tname == "Value_Range" else {}
    out.append([codec.decode(T, unhexlify(b))[field] for b in bodies])
    enc = []
    for x in values:
        d = {field: x}
        d.update(extra)
        try:
            enc.append(hexlify(codec.encode(T, d)).decode())
        except ValueError:
            enc.append("range")
    out.append(enc)
print(json.dumps(out))
"""


@pytest.mark.parametrize("device", ["wheel", "loaded"])
def test_integer_kinds_at_the_small_int_edges(device):
    # 2**30 is the first long int on a 32-bit board, 2**62 on the 64-bit wheel: both must agree with protobuf.
    values = EDGES + [-x for x in EDGES if x] + [2**64, -2**64 - 1]
    cases = []
    for tname, field, kind in INT_FIELDS:
        tail = b"\x10\x00" if tname == "Value_Range" else b""
        cases.append([tname, field, [(b"\x08" + varint(u) + tail).hex() for u in EDGES], values])
    r = mpy.run_mpy(INTS, stdin=json.dumps(cases), device=device, heapsize="512k").check()
    out = json.loads(r.lines()[-1])
    for i, (tname, field, kind) in enumerate(INT_FIELDS):
        tail = "1000" if tname == "Value_Range" else ""
        lo, hi = RANGE[kind]
        assert out[2 * i] == [decoded(kind, u) for u in EDGES], kind
        want = [("08" + varint(x % 2**64).hex() + tail) if lo <= x < hi else "range" for x in values]
        assert out[2 * i + 1] == want, kind


def test_codec_and_wire_hold_no_long_int_constants():
    # Every int literal from 2**30 up is a heap object of its module on a 32-bit board (a .mpy loads each
    # one into RAM): the codec shifts instead. Comments and strings may say what they like.
    for name in ("codec.py", "wire.py"):
        with open(os.path.join(mpy.LIB, "micromesos", name)) as f:
            toks = tokenize.generate_tokens(io.StringIO(f.read()).readline)
            big = [t.string for t in toks if t.type == tokenize.NUMBER and t.string.isalnum()
                   and not t.string.lower().endswith("j") and abs(int(t.string, 0)) > 0x3FFFFFFF]
        assert big == [], (name, big)


SCHEMA_RAM = r"""
import gc
gc.collect()
m0 = gc.mem_alloc()
from micromesos import schema
gc.collect()
print(gc.mem_alloc() - m0, len(schema.KEYS))
"""


def test_schema_tables_cost_no_ram_when_frozen():
    # Frozen, FIELDS, FIRST and KEYS (with its strings) are literals in flash: what the import leaves is the
    # globals of the names lib/ reads (672 B when this was written; a KEYS tuple built at import alone is
    # 576 B). It also imports in a 4 KB heap: building that tuple from keyword arguments needed ~4 KB more.
    r = mpy.run_mpy(SCHEMA_RAM, device="frozen", heapsize="4k").check()
    ram, nkeys = map(int, r.lines()[-1].split())
    assert nkeys == 142
    assert ram < 1024, ram


NESTED = r"""
from micromesos import codec, schema
codec.MAX_MESSAGE = 1 << 20
ok = []
for n in (0, 100, 122, 123, 124, 125, 126, 127, 128, 129, 16370, 16374, 16375, 16376, 16383, 16384, 16385, 70000):
    st = {"task_id": "t", "state": 1, "message": "x" * n, "timestamp": 1.5, "container_status": {
        "executor_pid": 7, "container_id": {"value": "c" * (n // 3), "parent": {"value": "p" * (n // 5)}}}}
    m = {"update": {"framework_id": "f", "status": st, "timestamp": 2, "uuid": b"u" * 16}, "pid": "s@1.2.3.4:5"}
    e = codec.encode(schema.StatusUpdateMessage, m)
    ok.append(codec.decode(schema.StatusUpdateMessage, e, raw=False) == m and codec.size(
        schema.StatusUpdateMessage, m) == len(e))
print(ok.count(True), len(ok))
"""


@pytest.mark.parametrize("device", ["wheel", "loaded"])
def test_sub_message_lengths_of_one_two_and_three_bytes(device):
    # encode() writes each sub-message after a 1-byte length and moves the body up when the length needs
    # more: bodies around 127/128 and 16383/16384 bytes, three levels deep, must decode back unchanged.
    r = mpy.run_mpy(NESTED, device=device, heapsize="2m").check()
    assert r.lines()[-1] == "18 18"
