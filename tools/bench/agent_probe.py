# MicroPython program run by bench_agent.py: boots the agent like firmware/main.py and prints heap and
# timing figures measured inside the board. MIT licence. Usage: agent_probe.py CONFIG_JSON HOLD_S
import gc
import sys
import time

t0 = time.ticks_ms()
gc.collect()
base = gc.mem_alloc()  # the interpreter's own objects, before any of ours

import asyncio  # noqa: E402
import json  # noqa: E402

import board  # noqa: E402
from micromesos import agent as A  # noqa: E402
from micromesos import config, log  # noqa: E402
from micromesos.tasks import Tasks  # noqa: E402

# Every module the agent may import later, so that "code" below is all of it.
for _m in ("codec", "schema", "wire", "libprocess", "http", "upid", "updates", "store", "resources", "names",
           "ctx", "fetch", "steps", "taskstore", "sensors", "inventory", "errors", "log", "launch",
           "endpoints", "jsonw", "listener", "sandbox", "webstate", "metrics"):
    try:
        __import__("micromesos." + _m)
    except ImportError:
        pass

gc.collect()
# Loaded from .mpy: bytecode, qstrs, module globals. Frozen: only what importing builds in RAM (module
# dicts, classes, tables made at import); the bytecode stays in flash.
code = gc.mem_alloc() - base


async def main(cfg, hold_s):
    inv = board.inventory(cfg)
    a = A.Agent(cfg, inv)
    a.tasks = Tasks(a)
    await a.start()
    while a.state != A.RUNNING:
        await asyncio.sleep_ms(2)
    print("PROBE registered_ms=%d" % time.ticks_diff(time.ticks_ms(), t0))
    await asyncio.sleep_ms(300)  # the reboot-race re-registration and its reply (§2.2)
    gc.collect()
    data = gc.mem_alloc() - base - code
    print("PROBE base=%d code=%d data=%d used=%d free=%d" % (base, code, data, gc.mem_alloc(), gc.mem_free()))
    p0 = a.counters["pings"]
    await asyncio.sleep(hold_s)
    gc.collect()
    print("PROBE held_s=%d state=%s pings=%d data=%d free=%d disconnects=%d" % (
        hold_s, "RUNNING" if a.state == A.RUNNING else a.state, a.counters["pings"] - p0, gc.mem_alloc() - base - code,
        gc.mem_free(), a.counters["disconnects"]))


cfg = config.check(json.loads(sys.argv[1]))
log.set_level(cfg["log_level"])
asyncio.run(main(cfg, int(sys.argv[2])))
