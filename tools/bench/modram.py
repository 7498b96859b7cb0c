#!/usr/bin/env python3
# Resident RAM of each agent module on the 32-bit device model: where the heap goes before any data.
# MIT licence. Usage: modram.py [--interp MICROPYTHON] [--frozen] [--json] | modram.py --anatomy MOD[,MOD...]
"""Per module of lib/micromesos: the heap it holds after import (gc.mem_alloc() delta after gc.collect(),
its dependencies imported first, each module measured in a fresh interpreter) and its .mpy size
(mpy-cross -O3, as tests/mpy.py compile_tree builds it for a board). Loaded build (default): the .mpy
files are read from the filesystem into RAM, as on stock firmware. --frozen: the interpreter has the
agent frozen in (H1's build/devmodel/frozen/micropython), so only objects built at import count.
--anatomy: what the RAM of a set of modules imported together from .mpy (loaded) is made of: bytecode, the
functions it is cut into, the names it interns, and the rest (function, class, dict and constant objects)."""
import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import mpy  # noqa: E402

LOADED_32 = os.path.join(ROOT, "build", "devmodel", "loaded", "micropython")
FROZEN_32 = os.path.join(ROOT, "build", "devmodel", "frozen", "micropython")
HEAPSIZE = "512k"  # room for everything at once; the figures don't depend on it

# Runs in MicroPython. argv: the modules to import first, "--", then the modules measured, imported together: the
# heap they hold, the names (qstr pools) before and after, and the modules their import brought in.
_MEASURE = r"""
import gc, sys, micropython
i = sys.argv.index("--")
for m in sys.argv[1:i]:
    __import__(m)
before = list(sys.modules)
gc.collect()
m0 = gc.mem_alloc()
micropython.qstr_info()
for m in sys.argv[i + 1:]:
    __import__(m)
gc.collect()
print("MODRAM", gc.mem_alloc() - m0, *[k for k in sys.modules if k not in before])
micropython.qstr_info()
"""


def modules():
    pkg = os.path.join(mpy.LIB, "micromesos")
    names = sorted(f[:-3] for f in os.listdir(pkg) if f.endswith(".py") and f != "manifest.py")
    return ["micromesos"] + ["micromesos." + n for n in names if n != "__init__"]


def _run(interp, path, mods, first=()):
    """Import `first`, then `mods` (measured) in a fresh interpreter -> (heap they hold, the modules their import
    brought in (themselves included), (names, bytes) of the qstr pools before, the same after)."""
    env = dict(os.environ, MICROPYPATH=path)
    p = subprocess.run([interp, "-X", "heapsize=" + HEAPSIZE, "-c", _MEASURE] + list(first) + ["--"] + list(mods),
                       capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    pools = re.findall(r"n_qstr=(\d+), n_str_data_bytes=\d+, n_total_bytes=(\d+)", p.stdout)
    held = re.search(r"^MODRAM (\d+)(.*)$", p.stdout, re.M)
    if len(pools) != 2 or not held:
        raise RuntimeError("%s: %s%s" % (" ".join(mods), p.stdout[-2000:], p.stderr[-2000:]))
    return int(held.group(1)), held.group(2).split(), tuple(map(int, pools[0])), tuple(map(int, pools[1]))


def _loaded_lib():
    """(the loaded model's /lib as its processes, started in ROOT, name it; the same as a full path)."""
    lib = mpy.device_code("loaded", ROOT)[0]
    return lib, os.path.join(ROOT, lib)


def measure(interp, frozen=False):
    """{module: (ram bytes, mpy bytes or None)} plus ("*all*", ...) for everything imported at once."""
    if frozen:
        path, tree = ".frozen", None
    else:
        lib, tree = _loaded_lib()
        path = ".frozen:" + lib  # .frozen: the port's own asyncio, json ...
    res = {}
    for m in modules():
        new = _run(interp, path, [m])[1]  # which modules importing m brings in (itself included)
        deps = [d for d in new if d != m]
        ram = _run(interp, path, [m], deps)[0]
        size = None
        if tree:
            f = os.path.join(tree, *m.split(".")) + ".mpy" if m != "micromesos" else \
                os.path.join(tree, "micromesos", "__init__.mpy")
            size = os.path.getsize(f)
        res[m] = (ram, size)
    # Everything at once, the stdlib modules the agent uses imported first (they are not ours).
    stdlib = [m for m in _run(interp, path, modules())[1] if not m.startswith("micromesos")]
    alltogether = _run(interp, path, modules(), stdlib)[0]
    res["*all*"] = (alltogether, sum(s for _, s in res.values() if s) if tree else None)
    return res


def _mpy_tool():
    """MicroPython's tools/mpy-tool.py (from the device model's source tree) as a module."""
    import importlib.util

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import devmodel
    finally:
        sys.path.pop(0)
    tree = devmodel.source_tree()
    spec = importlib.util.spec_from_file_location("mpy_tool", os.path.join(tree, "tools", "mpy-tool.py"))
    tool = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.join(tree, "py"))  # its makeqstrdata
    try:
        spec.loader.exec_module(tool)
    finally:
        sys.path.pop(0)
    tool.global_qstrs = tool.GlobalQStrList()  # read_mpy() interns into this module global
    return tool


def anatomy(mods, interp):
    """What `mods` (module names, imported together from the loaded tree) hold in RAM: {"ram", "bytecode",
    "functions", "strings", "string_bytes", "names", "names_bytes"}. strings: the str and bytes constants (log
    and error texts, wire fragments, tables) and their length. bytecode/functions: the .mpy files' code, each
    function (module body, class body, method, lambda, comprehension) one piece loaded into its own heap block;
    names and names_bytes: micropython.qstr_info()'s n_qstr and n_total_bytes grown by the imports (interned
    names: pools and text).
    A module of the port's own (asyncio) counts in ram only: frozen, its code is in the firmware. What the modules
    import besides themselves is imported before the measurement, so it counts nowhere."""
    lib, tree = _loaded_lib()
    tool = _mpy_tool()
    code = funs = consts = const_bytes = 0
    for m in mods:
        rel = m.split(".") + (["__init__"] if m == "micromesos" else [])
        f = os.path.join(tree, *rel) + ".mpy"
        if not os.path.exists(f):
            continue  # the port's own (asyncio): frozen, its code is in the firmware
        cm = tool.read_mpy(f)
        for o in cm.obj_table:  # constants a loaded module makes heap objects of (a str or bytes: two blocks)
            if isinstance(o, (str, bytes)):
                consts += 1
                const_bytes += len(o)
        todo = [cm.raw_code]
        while todo:
            rc = todo.pop()
            code += len(rc.fun_data)
            funs += 1
            todo.extend(rc.children)
    path = ".frozen:" + lib
    held, new, pools0, pools1 = _run(interp, path, mods)
    deps = [m for m in new if m not in mods]  # what importing mods brings in besides them: imported first instead
    if deps:
        held, _, pools0, pools1 = _run(interp, path, mods, deps)
    return {"ram": held, "bytecode": code, "functions": funs, "strings": consts, "string_bytes": const_bytes,
            "names": pools1[0] - pools0[0], "names_bytes": pools1[1] - pools0[1]}


def anatomy_line(a):
    rest = a["ram"] - a["bytecode"] - a["names_bytes"]
    return ("%s: bytecode %s in %d functions; %d names interned, %s; the rest %s (%d B per function): function, "
            "class and dict objects and %d str/bytes constants of %s" % (
                _kb(a["ram"]), _kb(a["bytecode"]), a["functions"], a["names"], _kb(a["names_bytes"]), _kb(rest),
                rest // a["functions"], a["strings"], _kb(a["string_bytes"])))


def _kb(n):
    return "%.1f KB" % (n / 1024)


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
    ap.add_argument("--anatomy", metavar="MODS", help="comma-separated modules (loaded build): what their RAM is")
    a = ap.parse_args()
    if a.anatomy:
        print(anatomy_line(anatomy(a.anatomy.split(","), a.interp or mpy.device_cmd("loaded"))))
        return
    interp = a.interp or (FROZEN_32 if a.frozen else os.environ.get("MICROPY_MICROPYTHON") or LOADED_32)
    res = measure(interp, a.frozen)
    if a.json:
        print(json.dumps(res, indent=1, sort_keys=True))
    else:
        print("%s (%s build), -X heapsize=%s\n" % (interp, "frozen" if a.frozen else "loaded .mpy", HEAPSIZE))
        print(table(res, a.frozen))


if __name__ == "__main__":
    main()
