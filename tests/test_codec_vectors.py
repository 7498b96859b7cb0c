# The codec, run in the unix port, against every protobuf body Google's protoc encoded (golden/vectors.jsonl).
# MIT licence. Expectations come from protoc's text decodings; CPython only prepares inputs and compares.
import json
import os

import pytest

import mpy
import textformat
from micromesos import codec, schema

# Runs inside MicroPython: one line of JSON in per body, one line of JSON out.
MPY_HARNESS = r"""
import sys, json, struct
from binascii import hexlify, unhexlify
from micromesos import codec, schema

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
        return ["d", hexlify(struct.pack("<d", o)).decode()]
    if isinstance(o, str):
        return ["s", o]
    if isinstance(o, bytes):
        return ["b", hexlify(o).decode()]
    raise TypeError("canon: %r" % (o,))

def uncanon(o):
    if isinstance(o, dict):
        return {k: uncanon(v) for k, v in o.items()}
    if len(o) == 2 and isinstance(o[0], str):
        t, v = o
        if t == "i":
            return int(v)
        if t == "d":
            return struct.unpack("<d", unhexlify(v))[0]
        if t == "b":
            return unhexlify(v)
        return v
    return [uncanon(x) for x in o]

def expand(T, obj, count):
    # decode(raw=True) result -> the raw=False form, decoding every kept-bytes sub-message further.
    out = {}
    for name, _, kind, label, raw, sub in schema.fields(T):
        if name not in obj:
            continue
        v = obj[name]
        if kind == schema.K_MSG:
            vals = v if label == 2 else [v]
            new = []
            for x in vals:
                if isinstance(x, bytes):
                    count[0] += 1
                    x = codec.decode(sub, x, raw=False) if sub else x
                elif not raw:
                    x = expand(sub, x, count)
                else:
                    raise ValueError("RAW field %s.%s was not kept as bytes" % (schema.name(T), name))
                new.append(x)
            v = new if label == 2 else new[0]
        out[name] = v
    return out

for line in open(sys.argv[1]):
    job = json.loads(line)
    T = job["type"]
    res = {"id": job["id"]}
    try:
        b = unhexlify(job["hex"])
        full = codec.decode(T, b, raw=False)
        rawd = codec.decode(T, b)
        count = [0]
        res["full"] = canon(full)
        res["expanded"] = canon(expand(T, rawd, count))
        res["raw_count"] = count[0]
        res["reenc_full"] = hexlify(codec.encode(T, full)).decode()
        res["reenc_raw"] = hexlify(codec.encode(T, rawd)).decode()
        # The same body in the middle of a reused receive buffer, as libprocess hands it over.
        big = bytearray(b"\xff" * 7) + b + b"\xee" * 5
        res["at_offset"] = canon(codec.decode(T, big, 7, 7 + len(b), raw=False)) == res["full"]
        if job.get("values") is not None:
            res["enc_text"] = hexlify(codec.encode(T, uncanon(job["values"]))).decode()
    except Exception as e:
        res["error"] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(res))
"""


def run_jobs(jobs, tmp_dir):
    """Run MPY_HARNESS over jobs [{id, type, hex, values}] in the unix port; {id: result}."""
    jpath = os.path.join(tmp_dir, "jobs.jsonl")
    spath = os.path.join(tmp_dir, "harness.py")
    with open(jpath, "w") as f:
        for j in jobs:
            f.write(json.dumps(j) + "\n")
    with open(spath, "w") as f:
        f.write(MPY_HARNESS)
    # The harness holds every expectation as JSON at once: give it room. The codec's own RAM use at the
    # device-like heap is measured by the fuzz run and tools/bench/bench_codec.py.
    r = mpy.run_mpy(script=spath, args=[jpath], heapsize="1m", timeout=120).check()
    out = {}
    for line in r.lines():
        res = json.loads(line)
        out[res["id"]] = res
    assert len(out) == len(jobs), r.out[-2000:]
    return out


def check_result(res, T, hexbody, expected, must_encode_text=True):
    assert "error" not in res, res.get("error")
    want = textformat.canon(expected)
    assert res["full"] == want
    assert res["expanded"] == want
    assert res["at_offset"] is True
    assert res["raw_count"] == textformat.raw_count(T, expected)
    assert res["reenc_full"] == hexbody
    assert res["reenc_raw"] == hexbody
    if must_encode_text:
        assert res["enc_text"] == hexbody


def _vectors():
    with open(os.path.join(mpy.GOLDEN, "vectors.jsonl")) as f:
        return [json.loads(line) for line in f]


VECTORS = _vectors()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    jobs = []
    for v in VECTORS:
        T = textformat.type_of(v["type"])
        expected = textformat.to_codec(T, textformat.parse(v["text"]))
        jobs.append({"id": v["name"], "type": T, "hex": v["hex"], "values": textformat.canon(expected)})
    return run_jobs(jobs, str(tmp_path_factory.mktemp("vectors")))


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(v, results):
    """Decodes to protoc's values (raw and full); re-encodes byte-identically, from our decode and from
    the text values alone; raw sub-messages echo byte-for-byte."""
    T = textformat.type_of(v["type"])
    expected = textformat.to_codec(T, textformat.parse(v["text"]))
    check_result(results[v["name"]], T, v["hex"], expected)


def test_cpython_codec_agrees_with_golden():
    # The stand-in master imports the same codec under CPython (tools/hostcompat): same bytes, same values.
    for v in VECTORS:
        T = textformat.type_of(v["type"])
        body = bytes.fromhex(v["hex"])
        expected = textformat.to_codec(T, textformat.parse(v["text"]))
        assert textformat.canon(codec.decode(T, body, raw=False)) == textformat.canon(expected), v["name"]
        assert codec.encode(T, expected).hex() == v["hex"], v["name"]
        assert codec.encode(T, codec.decode(T, body)).hex() == v["hex"], v["name"]
        assert codec.size(T, expected) == len(body)


def test_vectors_cover_both_directions_and_raw_keeping(results):
    # Guards against a vacuous pass: real work in both directions, raw bytes actually kept.
    dirs = {v["direction"] for v in VECTORS}
    assert dirs == {"agent->master", "master->agent"}
    assert results["run_task"]["raw_count"] >= 6  # framework + 4 resources + labels + kill_policy
    assert results["status_update_running"]["raw_count"] == 0
    assert sum(1 for v in VECTORS if v["hex"]) >= 25


def test_ids_are_plain_strings_and_reencode_identically(results):
    ack = results["status_update_ack"]["full"]
    for key in ("slave_id", "framework_id", "task_id"):
        assert ack[key][0] == "s"  # a str, not a {value: ...} dict
    assert results["status_update_ack"]["reenc_raw"] == next(v["hex"] for v in VECTORS
                                                              if v["name"] == "status_update_ack")


def test_textformat_reads_protoc_escapes():
    # The expectations are only as good as this reader: octal, named and quote escapes as protoc prints them.
    tree = textformat.parse('uuid: "l~\\033\\335\\017\\003M\\360"\nmessage: "a\\"b\\\\c\\n\\\'d"\n'
                            'statuses {\n  state: TASK_RUNNING\n  timestamp: 1795612342.9980781\n}\n')
    assert tree[0] == ("uuid", ("str", b"l~\x1b\xdd\x0f\x03M\xf0"))
    assert tree[1] == ("message", ("str", b"a\"b\\c\n'd"))
    assert tree[2] == ("statuses", [("state", ("word", "TASK_RUNNING")),
                                    ("timestamp", ("word", "1795612342.9980781"))])
    status = textformat.to_codec(schema.TaskStatus, textformat.parse(
        'task_id { value: "t" }\nstate: TASK_KILLED\nsource: SOURCE_EXECUTOR\nuuid: "\\214\\035>Z"\n'
        'timestamp: 1795000000.25\nhealthy: false'))
    assert status == {"task_id": "t", "state": 4, "source": 2, "uuid": b"\x8c\x1d>Z",
                      "timestamp": 1795000000.25, "healthy": False}


def test_zero_enums_are_written():
    # §0.6: TASK_STARTING, SCALAR and SOURCE_MASTER are 0 and must still be on the wire.
    st = next(v for v in VECTORS if v["name"] == "status_update_starting")
    T = textformat.type_of(st["type"])
    exp = textformat.to_codec(T, textformat.parse(st["text"]))
    assert exp["update"]["status"]["state"] == 0
    assert "1000" in st["hex"]  # state (field 2) = 0 inside TaskStatus


def test_schema_enum_constants_match_mesos_proto():
    for table in (textformat.TASK_STATE, textformat.SOURCE, textformat.REASON, textformat.VALUE_TYPE):
        for name, number in table.items():
            assert getattr(schema, name) == number, name
    for name, number in textformat.AGENT_CAPABILITY.items():
        if name != "UNKNOWN":
            assert getattr(schema, name) == number, name
    for name, number in textformat.FRAMEWORK_CAPABILITY.items():
        if name != "UNKNOWN":
            assert getattr(schema, "FW_" + name) == number, name
    for name, number in textformat.TASK_STATE.items():
        assert schema.task_state_name(number) == name
    assert schema.task_state_name(99) is None


def test_schema_tables_are_consistent():
    from micromesos import names
    kinds = {schema.K_INT32, schema.K_INT64, schema.K_UINT32, schema.K_UINT64, schema.K_BOOL, schema.K_ENUM,
             schema.K_DOUBLE, schema.K_STRING, schema.K_BYTES, schema.K_MSG, schema.K_ID}
    assert len(kinds) == 11 and schema.K_ID == 10
    for T in range(1, schema.NTYPES):
        fs = textformat.fields(T)
        nums = [f[1] for f in fs]
        assert nums == sorted(set(nums)), schema.name(T)  # field-number order, no duplicates
        assert len({f[0] for f in fs}) == len(fs)
        for fname, num, kind, label, raw, sub in fs:
            assert 0 < num <= 255 and kind in kinds, (schema.name(T), fname)
            assert sub < schema.NTYPES
            assert (kind == schema.K_MSG) or (sub == 0 and not raw), (schema.name(T), fname)
            if kind == schema.K_MSG and sub:
                assert raw == textformat.should_be_raw(T, fname, sub), (schema.name(T), fname)
            if kind == schema.K_ENUM:
                assert (schema.name(T), fname) in textformat.ENUMS, "no enum table for %s.%s" % (
                    schema.name(T), fname)
    # libprocess kinds map onto the right message types
    from micromesos import enums
    assert len(enums.BY_KIND) == names.COUNT
    for kind in range(1, names.COUNT):
        if enums.BY_KIND[kind]:
            assert "mesos.internal." + enums.BY_KIND[kind] == names.name(kind).decode()
            assert schema.__getattr__(enums.BY_KIND[kind])
    assert sum(1 for T in enums.BY_KIND if T) == names.COUNT - 4  # all but the operation messages
    # codec mirrors the table layout with its own consts (MicroPython can't import a const)
    assert (codec._REQ, codec._REP, codec._RAW, codec._NTYPES) == (schema._REQ, schema._REP, schema._RAW,
                                                                   schema.NTYPES)
    assert (codec._MSG, codec._ID, codec._STRING, codec._DOUBLE) == (schema.K_MSG, schema.K_ID,
                                                                    schema.K_STRING, schema.K_DOUBLE)


def test_schema_names_agree_with_ids():
    # Each type and enum value has its number twice: a const (public, or _private) in schema.py and its place
    # in the name strings name(), task_state_name() and __getattr__ read. Under CPython both are attributes.
    from micromesos import enums
    words = [enums.name(T) for T in range(len(enums.TYPES))]
    assert len(words) == schema.NTYPES and words[0] == "OPAQUE"
    consts = vars(schema)
    for T, n in enumerate(words):
        assert schema.name(T) == n and schema.__getattr__(n) == T
        if n in consts:
            assert consts[n] == T, n
    groups = [("0 " + schema._STATES).split(" ")] + [g.split(" ") for g in enums._GROUPS]
    for first, *ns in groups:
        for i, n in enumerate(ns):
            assert schema.__getattr__(n) == int(first) + i, n
            if n in consts or "_" + n in consts:
                assert consts.get(n, consts.get("_" + n)) == int(first) + i, n
    for bad in ("", "0", "1", "TASK", "TASK_RUNNING ", "Value_", "no_such_name", "__path__"):
        with pytest.raises(AttributeError):
            getattr(schema, bad)


LIB_NAMES = r"""
import sys
from micromesos import schema
print(" ".join(n for n in sys.argv[1:] if n not in schema.__dict__))
"""


def test_lib_reads_only_real_schema_globals(mpy_run):
    # What lib/ (and boards, firmware, tasks) reads as schema.X must be a global of the module as the
    # board loads it, not a __getattr__ name scan that allocates on every use.
    import re
    used = set()
    for top in ("lib", "boards", "firmware", "tasks"):
        for base, _dirs, files in os.walk(os.path.join(mpy.ROOT, top)):
            for f in files:
                if f.endswith(".py") and f != "schema.py":
                    with open(os.path.join(base, f)) as fh:
                        code = "\n".join(line.split("#")[0] for line in fh)  # not the comments
                    used |= set(re.findall(r"\bschema\.([A-Za-z_]\w*)", code))
    assert "KEYS" in used and "FIELDS" in used  # (protocol numbers are folded in as local consts, above)
    missing = mpy_run(LIB_NAMES, args=sorted(used)).check().out.split()
    assert missing == [], "make these public in schema.py: %s" % missing


def test_local_copies_of_schema_and_names_constants_agree():
    # A module may fold a protocol number in as its own const (no globals slot, no qstr, no attribute
    # lookup on a board): `_X = const(N)  # schema.Y` (or names.Y). N must be what schema/names say.
    import re
    from micromesos import names
    mods = {"schema": schema, "names": names}
    seen = []
    for top in ("lib", "boards", "firmware", "tasks"):
        for base, _dirs, files in os.walk(os.path.join(mpy.ROOT, top)):
            for f in files:
                if not f.endswith(".py"):
                    continue
                with open(os.path.join(base, f)) as fh:
                    for line in fh:
                        m = re.match(r"\s*_\w+ = const\(([-\w]+)\)\s*#\s*(schema|names)\.(\w+)", line)
                        if m:
                            seen.append((f, m.group(3)))
                            assert int(m.group(1), 0) == getattr(mods[m.group(2)], m.group(3)), (f, line)
    assert ("codec.py", "NTYPES") in seen


QSTR_KEYS = r"""
import gc
from micromesos import codec, schema
# A qstr is an immediate object (MicroPython's object representation A: ...010), a str object a pointer.
print(len(schema.KEYS), sum(1 for k in schema.KEYS if id(k) & 7 != 2))
d = codec.decode(schema.TaskStatus, codec.encode(schema.TaskStatus, {
    "task_id": "t", "state": 1, "container_status": {"executor_pid": 7}, "unreachable_time": {"nanoseconds": 1}}))
print(all(any(k is x for x in schema.KEYS) for k in d["container_status"]) and "unreachable_time" in d)
"""


@pytest.mark.parametrize("device", ["loaded", "frozen", "wheel"])
def test_field_names_are_interned_on_the_device_models(device):
    # Decoded dicts' keys are schema.KEYS themselves (nothing allocated per key), and each is an interned
    # string: a .mpy loads a literal tuple's strings, and any string argument over 10 characters, as a str
    # object of its own (~32 B each, twice a qstr; 52 of the 142 names were such objects) unless that name
    # is a qstr by then (schema._qstrs). The wheel compiles schema.py from source: the same rule, at parse.
    r = mpy.run_mpy(QSTR_KEYS, device=device).check()
    assert r.lines() == ["%d 0" % len(schema.KEYS), "True"]


def test_schema_tables_are_generated_from_enums():
    # schema.py holds FIELDS/FIRST/KEYS as literals; enums.TYPES is their readable source.
    import subprocess
    import sys
    from micromesos import enums
    assert enums.tables() == (schema.FIELDS, schema.FIRST, schema.KEYS)
    r = subprocess.run([sys.executable, os.path.join(mpy.ROOT, "tools", "genschema.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
