#!/usr/bin/env python3
# Resident RAM of each agent module on the 32-bit device model: where the heap goes before any data.
# MIT licence. Usage: modram.py [--interp MICROPYTHON] [--frozen] [--json]
"""Per module of lib/micromesos: the heap it holds after import (gc.mem_alloc() delta after gc.collect(),
its dependencies imported first, each module measured in a fresh interpreter) and its .mpy size
(mpy-cross -O3, as tests/mpy.py compile_tree builds it for a board). Loaded build (default): the .mpy
files are read from the filesystem into RAM, as on stock firmware. --frozen: the interpreter has the
agent frozen in (H1's build/devmodel/frozen/micropython), so only objects built at import count."""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import mpy  # noqa: E402

INTERP_32 = "/tmp/mp/micropython-1.28.0/ports/unix/build-32/micropython"
FROZEN_32 = os.path.join(ROOT, "build", "devmodel", "frozen", "micropython")
HEAPSIZE = "512k"  # room for everything at once; the figures don't depend on it

# Runs in MicroPython. argv: module to measure ("" for the package alone), then the ones to import first.
_MEASURE = r"""
import gc, sys
for d in sys.argv[2:]:
    __import__(d)
gc.collect()
m0 = gc.mem_alloc()
before = [k for k in sys.modules]
if sys.argv[1]:
    __import__(sys.argv[1])
gc.collect()
m1 = gc.mem_alloc()
print("MODRAM", m1 - m0, " ".join(k for k in sys.modules if k not in before))
"""


def modules():
    pkg = os.path.join(mpy.LIB, "micromesos")
    names = sorted(f[:-3] for f in os.listdir(pkg) if f.endswith(".py") and f != "manifest.py")
    return ["micromesos"] + ["micromesos." + n for n in names if n != "__init__"]


def _run(interp, path, mod, deps):
    env = dict(os.environ, MICROPYPATH=path)
    p = subprocess.run([interp, "-X", "heapsize=" + HEAPSIZE, "-c", _MEASURE, mod] + list(deps),
                       capture_output=True, text=True, env=env, timeout=60)
    for line in p.stdout.splitlines():
        if line.startswith("MODRAM "):
            parts = line.split()
            return int(parts[1]), parts[2:]
    raise RuntimeError("%s: %s%s" % (mod, p.stdout[-2000:], p.stderr[-2000:]))


def measure(interp, frozen=False):
    """{module: (ram bytes, mpy bytes or None)} plus ("*all*", ...) for everything imported at once."""
    if frozen:
        path, tree = ".frozen", None
    else:
        tree = mpy.compile_tree(os.path.join(ROOT, "build", "modram-mpy"))
        path = ".frozen:" + tree  # .frozen: the port's own asyncio, json ...
    res = {}
    for m in modules():
        _, new = _run(interp, path, m, ())  # which modules importing m brings in (itself included)
        deps = [d for d in new if d != m]
        ram, _ = _run(interp, path, m, deps)
        size = None
        if tree:
            f = os.path.join(tree, *m.split(".")) + ".mpy" if m != "micromesos" else \
                os.path.join(tree, "micromesos", "__init__.mpy")
            size = os.path.getsize(f)
        res[m] = (ram, size)
    # Everything at once, the stdlib modules the agent uses imported first (they are not ours).
    loaded = _run_all(interp, path, (), modules())[1]
    stdlib = [m for m in loaded if not m.startswith("micromesos")]
    alltogether = _run_all(interp, path, stdlib, modules())[0]
    res["*all*"] = (alltogether, sum(s for _, s in res.values() if s) if tree else None)
    return res


def _run_all(interp, path, first, ours):
    prog = ("import gc, sys\nfor d in %r:\n    __import__(d)\ngc.collect()\nm0 = gc.mem_alloc()\n"
            "for d in %r:\n    __import__(d)\ngc.collect()\nprint('MODRAM', gc.mem_alloc() - m0, *sys.modules)\n"
            % (tuple(first), tuple(ours)))
    env = dict(os.environ, MICROPYPATH=path)
    p = subprocess.run([interp, "-X", "heapsize=" + HEAPSIZE, "-c", prog], capture_output=True, text=True,
                       env=env, timeout=60)
    for line in p.stdout.splitlines():
        if line.startswith("MODRAM "):
            parts = line.split()
            return int(parts[1]), parts[2:]
    raise RuntimeError(p.stdout[-2000:] + p.stderr[-2000:])


def table(res, frozen):
    rows = sorted(((k, v) for k, v in res.items() if k != "*all*"), key=lambda kv: -kv[1][0])
    out = ["| module | RAM after import, B | .mpy B |" if not frozen else "| module | RAM after import, B |",
           "|---|--:|--:|" if not frozen else "|---|--:|"]
    for k, (ram, size) in rows:
        out.append("| %s | %d | %s |" % (k, ram, size) if not frozen else "| %s | %d |" % (k, ram))
    s = sum(v[0] for _, v in rows)
    a, sz = res["*all*"]
    out.append("| sum of the above | %d | %s |" % (s, sz) if not frozen else "| sum of the above | %d |" % s)
    out.append("| all imported together | %d | |" % a if not frozen else "| all imported together | %d |" % a)
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interp", help="MicroPython binary (default: the 32-bit device model)")
    ap.add_argument("--frozen", action="store_true", help="the interpreter has the agent frozen in")
    ap.add_argument("--json", action="store_true", help="print {module: [ram, mpy]} as JSON")
    a = ap.parse_args()
    interp = a.interp or (FROZEN_32 if a.frozen else os.environ.get("MICROPY_MICROPYTHON") or INTERP_32)
    res = measure(interp, a.frozen)
    if a.json:
        print(json.dumps(res, indent=1, sort_keys=True))
    else:
        print("%s (%s build), -X heapsize=%s\n" % (interp, "frozen" if a.frozen else "loaded .mpy", HEAPSIZE))
        print(table(res, a.frozen))


if __name__ == "__main__":
    main()
