#!/usr/bin/env python3
# Device-model figures for `make bench`: the agent on the 32-bit unix port (`make devmodel`) in both flavours,
# loaded (stock firmware: .mpy files read into RAM) and frozen (`make firmware`). MIT licence.
# Run alone: .venv/bin/python tools/bench/run.py --only devmodel
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for p in (os.path.join(ROOT, "tests"), os.path.join(ROOT, "tools", "hostcompat"), os.path.join(ROOT, "tools"),
          os.path.join(ROOT, "lib"), HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

import mpy  # noqa: E402
import modram  # noqa: E402
from bench_agent import probe, probe_path  # noqa: E402
from devboot import STAGES, Boot  # noqa: E402
from standin import StandinMaster  # noqa: E402

DEVICES = ("loaded", "frozen")
PROBE_HEAP = "384k"   # room for everything: the figures below do not depend on it
STEP_KB = 4           # binary-search resolution of the smallest heap
HOLD_S = 3            # pings answered for this long at the last stage of a smallest-heap trial
RANGE_KB = {"frozen": (16, 256), "loaded": (32, 512), mpy.SPLIT: (32, 512)}  # the upper end must pass
# Stock ESP32 firmware (v1.28) starts Python with one heap area of this size and, when first short, adds another as
# large (ports/esp32/mpconfigport.h MICROPY_GC_INITIAL_HEAP_SIZE; py/gc.c gc_try_add_heap doubles the total): the
# split model's board heap (mpy.SPLIT_HEAPSIZE) is those two areas.
ESP32_AREA_KB = mpy.heap_kb(mpy.SPLIT_HEAPSIZE) // 2


def kb(n):
    return "%.1f KB" % (n / 1024)


async def _probe(device):
    async with StandinMaster(ping_interval=0.25) as m:
        f, _ = await probe(m.port, PROBE_HEAP, 2, device=device)
    if not f:
        return {}
    out = {k: int(v[0]) for k, v in f.items() if v[0].lstrip("-").isdigit()}
    if f.get("resident"):  # the modules resident after registration (agent_probe's first code= line)
        out["resident"] = f["resident"][0].split(",")
    return out


def smallest(device, tmp):
    """{stage: smallest -X heapsize in KB that passes it}, searched stage after stage (each needs at least
    what the one before it did), and the trials made."""
    lo, hi = RANGE_KB[device]
    out, tried = {}, []
    for stage in STAGES:
        s_lo, s_hi = lo - STEP_KB, hi
        while s_hi - s_lo > STEP_KB:
            mid = (s_lo + s_hi) // 2 // STEP_KB * STEP_KB
            b = Boot(device, "%dk" % mid, tmp, hold_s=HOLD_S, upto=stage).run()
            tried.append("%s %dk %s" % (stage, mid, "ok" if b.error is None else "fails"))
            if b.error is None:
                s_hi = mid
            else:
                s_lo = mid
        out[stage] = s_hi
        lo = s_hi
    return out, tried


def qstr_headroom(device):
    """(names a board can still intern with every agent module imported once, bytes of the pool the next one
    allocates, names interned then, heap bytes their pools and text hold), from qstr_probe.py on the device
    model."""
    pkg = os.path.join(ROOT, "lib", "micromesos")
    mods = ["asyncio", "json"] + sorted(  # the agent's modules: a node's (node*, link*) never run on an agent
        "micromesos." + f[:-3] for f in os.listdir(pkg)
        if f.endswith(".py") and f != "__init__.py" and not f.startswith(("node", "link")))
    p = subprocess.run(mpy.mpy_argv(PROBE_HEAP, device) + [os.path.join(HERE, "qstr_probe.py")] + mods,
                       env=mpy.mpy_env((), {"MICROPYPATH": probe_path(device)}, device), capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    held = re.search(r"n_qstr=(\d+), .*n_total_bytes=(\d+)", p.stdout)
    for line in p.stdout.splitlines():
        if line.startswith("QSTR_HEADROOM ") and held:
            n, b = line.split()[1:]
            return int(n), int(b), int(held.group(1)), int(held.group(2))
    return None


def firmware_bytes(path):
    """text + data of a binary (what a firmware image holds in flash), from binutils' size."""
    line = subprocess.run(["size", path], capture_output=True, text=True, check=True).stdout.splitlines()[1]
    text, data = line.split()[:2]
    return int(text) + int(data)


def measure(device, tmp, into):
    into[device] = {"probe": asyncio.run(_probe(device)), "smallest": smallest(device, tmp),
                    "qstr": qstr_headroom(device)}
    if device == "loaded":  # the same code in stock ESP32 firmware's heap shape: two equal areas
        into[mpy.SPLIT] = {"smallest": smallest(mpy.SPLIT, tmp)}


def run():
    bins = {d: mpy.device_cmd(d) for d in DEVICES + (mpy.SPLIT,)}  # built first, one at a time
    tmp = tempfile.mkdtemp(prefix="bench-devmodel-")
    res = {}
    threads = [threading.Thread(target=measure, args=(d, tmp, res)) for d in DEVICES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flash = firmware_bytes(bins["frozen"]) - firmware_bytes(bins["loaded"])
    rows = []

    def row(label, fn):
        rows.append("| %s | %s |" % (label, " | ".join(fn(d) for d in DEVICES)))

    def p(d, k):
        return res[d]["probe"].get(k)

    row("heap in use after registration (gc.mem_alloc() after gc.collect(), interpreter and probe included)",
        lambda d: kb(p(d, "used")) if p(d, "used") is not None else "did not register")
    row("data heap after registration: heap in use less the interpreter's own and less code in RAM (goal: <= 12 KB)",
        lambda d: kb(p(d, "data")) if p(d, "data") is not None else "-")
    row("code in RAM: heap held by exactly the modules in sys.modules after registration, imported in a fresh "
        "interpreter (loaded: bytecode and all; frozen: module dicts, classes and tables built at import)",
        lambda d: kb(p(d, "code")) if p(d, "code") else "-")
    resident = p("loaded", "resident")
    rows.append("| what the loaded code in RAM is: those modules imported again (tools/bench/modram.py --anatomy) "
                "| %s | - |" % (modram.anatomy_line(modram.anatomy(resident, bins["loaded"])) if resident else "-"))
    tree = _tree_bytes()
    rows.append("| code in flash: firmware size delta, `size` text+data of frozen minus loaded binary | "
                "0 (the .mpy files sit in the filesystem: %s of them, and %s of log and error texts) | %s |"
                % (kb(tree[0]), kb(tree[1]), kb(flash)))
    goal = {"register": "", "tasks": "", "state": " (goal: %s)"}
    for stage, label in (("register", "registers and stays registered %d s" % HOLD_S),
                         ("tasks", "+ 2 idle tasks running"),
                         ("state", "+ `/state` 200 listing both")):
        row("smallest -X heapsize (%d KB steps): %s" % (STEP_KB, label),
            lambda d, stage=stage: "%d KB%s" % (res[d]["smallest"][0][stage],
                                               goal[stage] % mpy.GOAL_HEAPSIZE[d] if goal[stage] else ""))
    row("names (qstrs) a board can still intern with every agent module imported once (tools/bench/qstr_probe.py; "
        "loaded: a .mpy's names go to the heap for good), then the next pool: one block of",
        lambda d: "%d, then %s" % (res[d]["qstr"][0], kb(res[d]["qstr"][1])) if res[d]["qstr"] else "-")
    row("names (qstrs) interned in the heap then (micropython.qstr_info()): names / heap their pools and text hold"
        " (frozen: the firmware's own are in flash)",
        lambda d: "%d / %s" % (res[d]["qstr"][2], kb(res[d]["qstr"][3])) if res[d]["qstr"] else "-")
    # Flash writes per status update (issue 9 part 5): the journal measured inside each device model.
    import bench_flash

    fl = {d: bench_flash.per_update(d) for d in DEVICES}
    row("flash per status update, one task (tools/bench/bench_flash.py): write operations / bytes / renames",
        lambda d: "%.2f / %.0f B / %.2f" % (fl[d][0][0] + fl[d][0][1], fl[d][0][2], fl[d][0][3]))
    row("flash per acknowledgement: write operations / bytes / renames",
        lambda d: "%.2f / %.0f B / %.2f" % (fl[d][1][0] + fl[d][1][1], fl[d][1][2], fl[d][1][3]))
    out = ["## 32-bit device model (issue 9)", "",
           "MicroPython v1.28 unix port built as an x86-32 binary by `make devmodel` (tools/devmodel.py); "
           "the agent boots as firmware/main.py does, against the stand-in master (tests/devboot.py), "
           "heap figures from tools/bench/agent_probe.py. Board heaps: stock ESP32 firmware starts with %d KB and "
           "grows it (below); issue 9 budgets ~100 KB." % ESP32_AREA_KB, "",
           "| measure | loaded (stock firmware + `make deploy`) | frozen (`make firmware`) |", "|---|---|---|"]
    out += rows
    # Before the RAM work: quoted from issue 9 (commit 66928c8, the same boot on a 32-bit v1.28 build); that
    # tree has no `make devmodel`, so this bench cannot remeasure it.
    out += ["", "Before the RAM work (issue 9's own measurement of commit 66928c8, quoted): heap in use after "
            "registration 146 KB loaded (129 KB of it code) / 65 KB frozen (~30 KB module RAM, ~33 KB data); "
            "smallest -X heapsize register / +2 idle tasks / +`/state`: loaded 160 / 160 / 168 KB, "
            "frozen 72 / 80 / 80 KB."]
    sp = res[mpy.SPLIT]["smallest"][0]
    out += ["", "Stock ESP32 firmware's heap shape (`tools/devmodel.py split`: the loaded model with its -X heapsize in "
            "two equal areas; `python3 tests/devboot.py split HEAPSIZE` boots it): ESP32 v1.28 starts Python with one "
            "%d KB area and adds one as large when it is first short, %d KB in two areas, then more only while "
            "the system heap has a free block. Smallest -X heapsize (%d KB steps) register / +2 idle tasks / "
            "+`/state`: %d / %d / %d KB." % (ESP32_AREA_KB, mpy.heap_kb(mpy.SPLIT_HEAPSIZE), STEP_KB,
                                            sp["register"], sp["tasks"], sp["state"])]
    out += ["", "Smallest-heap trials: " + "; ".join("%s: %s" % (d, ", ".join(res[d]["smallest"][1]))
                                                    for d in DEVICES + (mpy.SPLIT,))]
    return "\n".join(out) + "\n"


def _tree_bytes():
    """Bytes of the .mpy files `make deploy` (ROLE=agent) puts on a board (lib/ less what deploy.on_a_board leaves
    out) and its board module; bytes of the log texts file it puts beside them."""
    from deploy import on_a_board
    from logtext import TEXT_FILE

    code = mpy.device_code("loaded")[0]
    n = 0
    for base, _dirs, files in os.walk(code):
        for f in files:
            rel = os.path.relpath(os.path.join(base, f), code)
            if f.endswith(".mpy") and (f == "board.mpy" or on_a_board(rel[:-4] + ".py", "agent")):
                n += os.path.getsize(os.path.join(base, f))
    return n, os.path.getsize(os.path.join(code, "micromesos", TEXT_FILE))


if __name__ == "__main__":
    print(run())
