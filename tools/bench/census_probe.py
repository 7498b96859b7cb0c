# MicroPython program run by datacensus.py: boots the agent as agent_probe.py does and says which objects make
# up the data heap after registration. MIT licence. Usage: census_probe.py CONFIG_JSON
# Every figure is a gc.mem_alloc() difference after gc.collect(): what a constructor left reachable (wrapped
# below) and what one object of a kind costs (measured alone). The census's own functions and closures add ~1 KB.
import gc
import sys
import time

gc.collect()
base = gc.mem_alloc()

import asyncio  # noqa: E402
import json  # noqa: E402

import board  # noqa: E402
from micromesos import agent as A  # noqa: E402
from micromesos import config, log  # noqa: E402
from micromesos.tasks import Tasks  # noqa: E402

for _m in ("codec", "schema", "wire", "libprocess", "http", "upid", "updates", "store", "resources", "names",
           "ctx", "fetch", "steps", "taskstore", "sensors", "inventory", "errors", "log", "launch",
           "endpoints", "jsonw", "listener", "sandbox", "webstate", "metrics", "gate"):
    try:
        __import__("micromesos." + _m)
    except ImportError:
        pass
from micromesos import gate, libprocess, listener, store, updates  # noqa: E402

_imported = [k for k in sys.modules]
gc.collect()
code = gc.mem_alloc() - base
depth = [0]  # nothing kept per row: the census itself must not grow the heap it measures


def used():
    gc.collect()
    return gc.mem_alloc()


def row(label, n):
    print("CENSUS %s|%d" % ("  " * depth[0] + label, n))


def wrap(owner, name, label):
    f = getattr(owner, name)

    def w(*a, **k):
        depth[0] += 1
        m0 = used()
        r = f(*a, **k)
        n = used() - m0
        depth[0] -= 1
        row(label, n)
        return r

    setattr(owner, name, w)


def wrap_async(owner, name, label):
    f = getattr(owner, name)

    async def w(*a, **k):
        m0 = used()
        r = await f(*a, **k)
        row(label + " [other tasks ran meanwhile]", used() - m0)
        return r

    setattr(owner, name, w)


_create_task = asyncio.create_task


def create_task(coro):
    print("CENSUS task %s" % repr(coro).split(" at ")[0])
    return _create_task(coro)


asyncio.create_task = create_task
wrap(board, "inventory", "board.inventory()")
wrap(gate.Gate, "_new_parser", "Gate._new_parser (a parser and its recv buffer)")
wrap(libprocess.Libprocess, "_spare_outbox", "Libprocess._spare_outbox (an outbox)")
# agentinit.init imports these from their modules when it runs: wrapped there (the classes after their methods).
wrap(libprocess, "Libprocess", "Libprocess.__init__ (transport object)")
wrap(store, "Store", "Store(state_dir)")
wrap(updates, "StatusUpdates", "StatusUpdates (updates)")
wrap_async(libprocess._Dest, "_connect", "_Dest._connect (socket, stream)")
wrap(libprocess, "_Dest", "_Dest(...) (a destination: outbox, event, its task)")
wrap(gate.Gate, "_admit", "Gate._admit (an inbound connection: _Conn, stream, task)")
wrap(A.Agent, "_on_message", "Agent._on_message (what handling one inbound message left)")




def cost(label, make):
    """Bytes one object of a kind holds, alone."""
    m0 = used()
    o = make()
    n = used() - m0
    print("UNIT %s|%d" % (label, n))
    del o
    return n


async def main(cfg):
    row("config dict (config.check of the JSON config, held by the agent)", cfg_bytes)
    m0 = used()
    inv = board.inventory(cfg)
    a = A.Agent(cfg, inv)
    row("Agent(...) total, inventory included", used() - m0)
    m1 = used()
    a.tasks = Tasks(a)
    row("Tasks(agent) (task runner)", used() - m1)
    m1 = used()
    from micromesos import endpoints  # as agent.main: the web UI's routes before the agent starts

    endpoints.install(a)
    row("endpoints.install(agent) (routes, the finished-task history)", used() - m1)
    m1 = used()
    await a.lp.start()
    row("lp.start(): listening socket, spare parser, spare outbox, accept + sweep tasks", used() - m1)
    # The rest of Agent.start, as it is written (recover, registrar, watchdog, updates.run).
    lp_start = a.lp.start

    async def nothing():
        pass

    a.lp.start = nothing
    m1 = used()
    await a.start()
    row("Agent.start() after lp.start (recover + 3 tasks)", used() - m1)
    a.lp.start = lp_start
    m1 = used()
    while a.state != A.RUNNING:
        await asyncio.sleep_ms(2)
    row("registration: start -> RUNNING (dest, link, ids, checkpoint)", used() - m1)
    m1 = used()
    await asyncio.sleep_ms(300)
    row("300 ms more (the reboot-race re-registration, pings)", used() - m1)
    total = used() - base - code
    print("CENSUS TOTAL_data=%d code=%d (data = heap in use - base - code imported at the start, as agent_probe.py)"
          % (total, code))
    print("CENSUS modules not resident any more (dropped: their RAM makes data look smaller): %s" % " ".join(
        k for k in _imported if k not in sys.modules))
    print("RESIDENT %d %s" % (used() - base, " ".join(k for k in _imported if k in sys.modules)))
    lp = a.lp
    print("CENSUS dests=%d conns=%d parsers=%d spare_parser=%s spare_outboxes=%d" % (
        len(lp._dests), len(lp._conns), lp._parsers, lp._spare is not None, len(lp._outboxes)))
    for d in lp._dests:
        print("CENSUS dest %s outbox=%d stream=%s" % (d.hostport, len(d.ob), d.stream is not None))
    for c in lp._conns:
        print("CENSUS conn %s link=%s parser=%s" % (c.peer, c.link, None if c.parser is None else len(c.parser.buf)))
    # Unit costs: what one of each kind holds.
    cost("bytearray(64)", lambda: bytearray(64))
    cost("bytearray(1024)", lambda: bytearray(1024))
    cost("Event", asyncio.Event)
    cost("Lock", asyncio.Lock)
    cost("_Conn", lambda: gate._Conn(None, ("127.0.0.1", 1)))
    cost("Message", listener.Message)
    cost("generator Gate._sweep", lambda: lp._sweep())
    cost("generator Gate._accept_loop", lambda: lp._accept_loop(None))
    cost("generator Gate._conn_main", lambda: lp._conn_main(None, None))
    if lp._dests:
        d = lp._dests[0]
        cost("generator _Dest._run", lambda: d._run())
    cost("generator Agent._run", lambda: a._run())
    cost("generator StatusUpdates.run", lambda: a.updates.run())

    async def g():
        await asyncio.sleep_ms(1)

    cost("Task of a trivial coroutine (task + generator)", lambda: _create_task(g()))
    await asyncio.sleep_ms(5)
    print("CENSUS END")


_m0 = used()
cfg = config.check(json.loads(sys.argv[1]))
cfg_bytes = used() - _m0
log.set_level(cfg["log_level"], cfg["log_rate"])
asyncio.run(main(cfg))
