# The task runner as it starts (Tasks.__init__'s body) and the watchdog's task marker it reads at boot.
# MIT licence. Boot only: tasks.Tasks imports this for that call and drops it with its other occasional code
# (tasks.drop_code), so none of it is in RAM once the agent runs (a board that loads .mpy files).
from . import log
from .ctx import Ctx
from .steps import FileMarker, Watch


def init(runner, agent):
    """Tasks.__init__'s body (boot only): the runner's tables, settings and watchdog marker."""
    from .tasks import Leases

    cfg = agent.cfg
    d = runner.DROP_CODE
    runner.drop_code = not _from_source() if d is None else d
    runner.agent = agent
    runner.updates = agent.updates
    runner.store = agent.store
    runner.live = {}  # (fid, tid) -> Ctx, until its terminal update is acked; presized by presize()
    runner.executors = {}  # (fid, eid) -> [raw ExecutorInfo, live tasks, shutdown grace ms]
    runner.leases = Leases(agent.totals)
    if not runner.drop_code:
        runner.presize()  # code and tables kept from the start: made now, while the heap is in one piece
    fs = agent.inv.fs.rstrip("/")
    runner.tasks_dir = (fs + "/" if fs else "/") + cfg["tasks_dir"]
    runner.fetch_max = cfg.get("fetch_max_bytes") or 65536
    frozen = []
    for n in (cfg.get("frozen_tasks") or "").split(","):
        n = n.strip()
        if n:
            frozen.append(n)
    runner.frozen = tuple(frozen)
    runner.modules = {}     # task module -> [live tasks using it, sha256 pin or "frozen", modules it imported]
    runner.fetch_lock = None  # download.fetch_all: one transfer at a time
    runner.next_slot = 1    # checkpoint slot numbers (0 = none in the marker)
    runner.running = 0      # tasks in RUNNING or KILLING
    runner.watch = Watch(runner, cfg.get("task_slice_ms") or 200)
    runner.counters = {"launched": 0, "finished": 0, "failed": 0, "killed": 0, "lost": 0, "hogs": 0}
    runner.marker = marker(agent)
    runner.boot_marker = 0
    if runner.marker is not None:
        n = runner.marker.read()  # a task mid-step when the board was reset: kept for taskstore.recover if the
        runner.boot_marker = n if n and watchdog_reset() else 0  # watchdog reset it; cleared now, can't go stale
        runner.marker.write(0)
    agent.updates.on_terminal_acked = runner._acked
    runner.on_status = None    # fn(ctx, state) for each update queued: /state's statuses (endpoints.py)
    runner.on_finished = None  # fn(ctx, state) at each task's end: endpoints keeps a bounded history
    Ctx._runner = runner  # one runner per agent: not a reference in every task's record


def _machine():
    try:
        import machine
    except ImportError:
        return None
    return machine


def marker(agent):
    """The board's marker (inventory.marker), a FileMarker on the unix port, or None on a board without
    one: rewriting a flash file twice per step would wear it out."""
    m = getattr(agent.inv, "marker", None)
    if m is not None:
        return m
    mach = _machine()
    if mach is not None and hasattr(mach, "reset_cause"):
        log.info("tasks", "no inventory.marker: a task hanging the loop can't be named after a watchdog reset")
        return None
    return FileMarker(agent.store.dir + "/running")


def watchdog_reset():
    """Was the last reset the watchdog's? On the unix port (no reset_cause) a marker left set means the
    process died mid-step: tests kill it the way the watchdog resets a board."""
    mach = _machine()
    rc = getattr(mach, "reset_cause", None) if mach else None
    return rc is None or rc() == getattr(mach, "WDT_RESET", -1)


def _from_source():
    # Was this package compiled from .py files when imported? A frozen module's __file__ names no file.
    f = globals().get("__file__", "")
    if not f.endswith(".py"):
        return False
    import os

    try:
        os.stat(f)
        return True
    except OSError:
        return False
