# MicroPython program run by bench_agent.py: boots the agent like firmware/main.py and prints heap and
# timing figures measured inside the board. MIT licence. Usage: agent_probe.py CONFIG_JSON HOLD_S
#
# "code" is the RAM the modules still in sys.modules at a moment hold, measured by importing exactly those
# in a fresh interpreter (the same binary and MICROPYPATH); "data" is the heap in use then, less the
# interpreter's own (base) and that code. The agent imports rarely-run modules when needed and drops them
# after, so what was imported at the start says nothing about what is resident later.
import gc
import sys
import time

t0 = time.ticks_ms()
_base_mods = list(sys.modules)
gc.collect()
base = gc.mem_alloc()  # the interpreter's own objects, before any of ours

import asyncio  # noqa: E402
import json  # noqa: E402

import board  # noqa: E402
import micromesos  # noqa: E402
from micromesos import agent as A  # noqa: E402
from micromesos import log  # noqa: E402

# Runs in the fresh interpreter: import the modules named, drop whatever else that pulled in (as the agent
# drops a module: out of sys.modules and its package), and print the RAM they hold.
_CODE = ("import gc,sys\n"
         "gc.collect()\n"
         "b=list(sys.modules)\n"
         "w=sys.argv[1:]\n"
         "m0=gc.mem_alloc()\n"
         "for m in w:\n"
         "    __import__(m)\n"
         "for k in list(sys.modules):\n"
         "    if k not in w and k not in b:\n"
         "        del sys.modules[k]\n"
         "        p,_,n=k.rpartition('.')\n"
         "        if p in sys.modules and hasattr(sys.modules[p],n):\n"
         "            delattr(sys.modules[p],n)\n"
         "gc.collect()\n"
         "print(gc.mem_alloc()-m0)\n")


def resident(held=0):
    """(heap in use less base, the modules imported since the start and still in sys.modules); `held`:
    bytes the probe keeps from an earlier call (its list), not counted."""
    gc.collect()
    used = gc.mem_alloc() - base - held
    m0 = gc.mem_alloc()
    mods = [k for k in sys.modules if k not in _base_mods]
    gc.collect()
    return used, mods, gc.mem_alloc() - m0


def code_ram(mods, out):
    """RAM of importing exactly `mods` in a fresh interpreter; None if that could not be run."""
    import os  # only now: not part of what is measured

    try:
        os.remove(out)
    except OSError:
        pass
    rc = os.system('%s -X heapsize=512k -c "%s" %s > %s 2>&1' % (sys.executable, _CODE, " ".join(mods), out))
    try:
        with open(out) as f:
            text = f.read().strip()
    except OSError:
        text = ""
    last = text.rsplit("\n", 1)[-1]
    if rc != 0 or not last.isdigit():
        print("PROBE_ERROR fresh interpreter rc=%d: %s" % (rc, text[-400:]))
        return None
    return int(last)


async def main(cfg, hold_s):
    # The agent as firmware/main.py runs it: agent.main (the task runner, the web UI's endpoints, the log limit);
    # the probe only watches it, from a task of its own.
    inv = board.inventory(cfg)
    box = []
    asyncio.create_task(A.main(cfg, inv, box.append))
    while not box or box[0].state != A.RUNNING:
        await asyncio.sleep_ms(2)
    a = box[0]
    print("PROBE registered_ms=%d" % time.ticks_diff(time.ticks_ms(), t0))
    await asyncio.sleep_ms(300)  # the reboot-race re-registration and its reply (§2.2)
    at_reg = resident()
    print("PROBE base=%d used=%d free=%d" % (base, gc.mem_alloc(), gc.mem_free()))
    p0 = a.counters["pings"]
    await asyncio.sleep(hold_s)
    held = resident(at_reg[2])
    print("PROBE held_s=%d state=%s pings=%d free=%d disconnects=%d" % (
        hold_s, "RUNNING" if a.state == A.RUNNING else a.state, a.counters["pings"] - p0, gc.mem_free(),
        a.counters["disconnects"]))
    return at_reg, held


def _check_config(raw):
    # As firmware/main.py: the config module is read once and dropped (it is not resident later).
    from micromesos import config

    try:
        return config.check(raw)
    finally:
        del sys.modules["micromesos.config"]
        del micromesos.config


cfg = _check_config(json.loads(sys.argv[1]))
log.set_level(cfg["log_level"], cfg["log_rate"])
stages = asyncio.run(main(cfg, int(sys.argv[2])))
# After the agent's loop: starting an interpreter blocks this one for a while (no pings are due any more).
for used, mods, _ in stages:  # registration, then after HOLD_S: data=, code= in that order
    code = code_ram(mods, cfg["fs"].rstrip("/") + "/probe_code.out")
    if code is not None:
        print("PROBE code=%d data=%d resident=%s" % (code, used - code, ",".join(mods)))
