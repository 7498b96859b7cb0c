#!/usr/bin/env python3
# Which objects make up the agent's data heap after registration, on the 32-bit device model. MIT licence.
# Usage: .venv/bin/python tools/bench/datacensus.py [--device loaded|frozen|wheel]
"""Boots the agent against the stand-in master (census_probe.py, as agent_probe.py does) and prints what each
constructor left on the heap, the unit cost of each kind of resident object (buffers, asyncio tasks), the
total data heap as agent_probe.py counts it, and DATA: the same less the RAM of the modules still resident
(measured in a fresh interpreter), which stays right when the agent drops modules after use."""
import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for p in (os.path.join(ROOT, "tests"), os.path.join(ROOT, "tools"), HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

import bench_agent  # noqa: E402
import mpy  # noqa: E402
from standin import StandinMaster  # noqa: E402

bench_agent.PROBE = os.path.join(HERE, "census_probe.py")


_CODE = r"""
import gc, sys
gc.collect()
m0 = gc.mem_alloc()
for m in sys.argv[1:]:
    __import__(m)
gc.collect()
print("CODE", gc.mem_alloc() - m0)
"""


def resident_code(device, mods):
    """RAM the modules `mods` hold after import in a fresh interpreter (the probe drops some after use, which
    makes agent_probe.py's data figure look smaller by their size)."""
    p = subprocess.run(mpy.mpy_argv("384k", device) + ["-c", _CODE] + mods, capture_output=True, text=True,
                       env=mpy.mpy_env((), {"MICROPYPATH": bench_agent.probe_path(device)}, device), cwd=ROOT,
                       timeout=60)
    for line in p.stdout.splitlines():
        if line.startswith("CODE "):
            return int(line.split()[1])
    raise RuntimeError(p.stdout + p.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="loaded", choices=("loaded", "frozen", "wheel"))
    ap.add_argument("--heapsize", default="384k")
    a = ap.parse_args()
    async def run():
        async with StandinMaster(ping_interval=0.25) as m:
            cfg = bench_agent.board_cfg(m.port, tempfile.mkdtemp(prefix="census-board-"))
            p = await asyncio.create_subprocess_exec(
                *mpy.mpy_argv(a.heapsize, a.device), bench_agent.PROBE, json.dumps(cfg),
                env=mpy.mpy_env((), {"MICROPYPATH": bench_agent.probe_path(a.device)}, a.device),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
            out = []
            try:
                while True:
                    line = await asyncio.wait_for(p.stdout.readline(), 60)
                    if not line:
                        break
                    line = line.decode(errors="replace").rstrip()
                    out.append(line)
                    if line == "CENSUS END":
                        break
            finally:
                if p.returncode is None:
                    p.kill()
                await p.wait()
            return out

    out = asyncio.run(run())
    print("device model: %s, -X heapsize=%s" % (a.device, a.heapsize))
    for line in out:
        if line.startswith("RESIDENT "):
            _, used, *mods = line.split()
            code = resident_code(a.device, mods)
            print("DATA   heap in use less base less the RAM of the modules still resident (%d B, measured alone)"
                  "%s %6d" % (code, " " * 4, int(used) - code))
    for line in out:
        if line.startswith(("CENSUS ", "UNIT ")):
            tag, _, rest = line.partition(" ")
            k, bar, v = rest.rpartition("|")
            print("%-6s %-92s %6s" % (tag, k, v) if bar else "%-6s %s" % (tag, rest))
        elif "Traceback" in line or "Error" in line:
            print(line)


if __name__ == "__main__":
    main()
