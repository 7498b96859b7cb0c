# The agent's HTTP endpoints for the Mesos web UI and tools: route table, finished-task history.
# MIT licence. PROTOCOL.md §5. The views (webstate, metrics, sandbox) are imported per request and dropped after.
import sys
import time

from micropython import const

from . import drop
from .updates import now

# path -> (module, function(ep, request)). Both spellings where the real agent answers both: libprocess
# hands paths without a process id to the agent, its delegate (§5); /metrics, /version and /files are
# processes of their own there, so they have no /slave(1) form.
_ROUTES = {
    "/state": ("webstate", "state"), "/slave(1)/state": ("webstate", "state"),
    "/metrics/snapshot": ("metrics", "metrics"),
    "/health": ("webstate", "health"), "/slave(1)/health": ("webstate", "health"),
    "/monitor/statistics": ("metrics", "monitor"), "/slave(1)/monitor/statistics": ("metrics", "monitor"),
    "/flags": ("webstate", "flags"), "/slave(1)/flags": ("webstate", "flags"),
    "/version": ("webstate", "version"),
    "/files/browse": ("sandbox", "browse"), "/files/read": ("sandbox", "read"),
    "/files/download": ("sandbox", "download"),
}
# Imported by a request, dropped once no response is using them (jsonw: the listener's streamed responses).
_VIEWS = ("micromesos.webstate", "micromesos.metrics", "micromesos.sandbox", "micromesos.query", "micromesos.jsonw",
          "micromesos.resources", "micromesos.resfmt")
_STALE_MS = const(60000)  # a counted stream this old was abandoned before it started (see route)


def _names():
    # Never called. `import a.b` makes "a.b" a name (qstr) of this module: in flash when frozen, interned
    # when this module loads otherwise. Importing a view then interns nothing: a runtime qstr pool that is
    # full would grow in the middle of a request, by one ~600-byte block (a 32-bit board at 48 KB lacks it).
    import micromesos.jsonw
    import micromesos.metrics
    import micromesos.query
    import micromesos.resfmt
    import micromesos.resources
    import micromesos.sandbox
    import micromesos.webstate  # noqa: F401


del _names


def install(agent):
    """Register every endpoint on agent.lp and hook the task runner's end-of-task history. -> Endpoints."""
    ep = Endpoints(agent)
    r = ep.route  # one bound method for every path, not one object per path
    for p in _ROUTES:
        agent.lp.route(p, r)
    if agent.tasks is not None:
        agent.tasks.on_status = ep.status
        agent.tasks.on_finished = ep.finished
    return ep


class Endpoints:
    """Serves the routes from the live agent. What it keeps, bounded: each task's statuses (the first and
    the newest: MAX_STATUSES), and a history of finished tasks: MAX_COMPLETED records, the newest
    KEEP_LOGS of them with their stdout/stderr rings (a sandbox)."""

    MAX_STATUSES = 4
    MAX_COMPLETED = 8
    KEEP_LOGS = 2

    def __init__(self, agent):
        self.agent = agent
        self.statuses = {}  # (fid, tid) -> [(state, timestamp)] of a task's updates, while it runs
        # Records [fid, executor id, tid, name, state, statuses, grant, (stdout, stderr) or None, FrameworkInfo]
        self.completed = []
        self.requests = 0
        self.streams = 0  # streamed responses handed to the listener and not finished yet
        self._since = time.ticks_ms()

    def route(self, req):
        mod, fn = _ROUTES[req.path]
        self.requests += 1
        if self.streams and time.ticks_diff(time.ticks_ms(), self._since) > _STALE_MS:
            self.streams = 0  # the listener gave up on one before running it: it can't hold a view now
        try:
            __import__("micromesos." + mod)
            status, ctype, body = getattr(sys.modules["micromesos." + mod], fn)(self, req)
        except Exception:
            self._drop()
            raise
        if callable(body):
            # A streamed body runs the view's code after this returns: the views go when the last one ends.
            self.streams += 1
            self._since = time.ticks_ms()
            return status, ctype, self._counted(body)
        self._drop()
        return status, ctype, body

    def _counted(self, produce):
        def run(out):
            try:
                yield from produce(out)
            finally:  # jsonw.respond closes the generator when the response fails half-way
                if self.streams > 0:
                    self.streams -= 1
                self._since = time.ticks_ms()
                self._drop()
        return run

    def _drop(self):
        # The views' bytecode lives in the heap when lib/ is loaded from .mpy files (several KB each): an agent
        # between requests keeps none of it. Out of sys.modules and the package, it is freed once the last
        # response holding its functions is done; the next request imports it again.
        if self.streams > 0:
            return
        for v in _VIEWS:
            drop(v)

    def status(self, c, state):
        """tasks.on_status: an update for task c was just queued; keep its state and timestamp (the
        very one the master gets) for /state. Kept here, not on the ctx: its attribute table stays as
        the runner sized it (a step must not grow it)."""
        key = (c.framework_id, c.task_id)
        st = self.statuses.get(key)
        try:
            if st is None:
                if len(self.statuses) >= 2 * self.agent.tasks.MAX_TASKS:
                    return  # tasks that ended unseen (they are not held for ever)
                st = self.statuses[key] = []
            elif len(st) >= self.MAX_STATUSES:
                st.pop(1)
            s = self.agent.updates.streams.get(key)
            st.append((state, s.pending[-1]["timestamp"] if s is not None and s.pending else now()))
        except MemoryError:
            pass  # statuses are for people browsing: an update must not fail for them

    def finished(self, c, state):
        """tasks.on_finished: keep a small record of the task and, for a while, its sandbox."""
        h = self.completed
        if len(h) >= self.MAX_COMPLETED:
            h.pop(0)
        if len(h) >= self.KEEP_LOGS:
            h[len(h) - self.KEEP_LOGS][7] = None  # an older sandbox goes: its rings can be freed
        try:
            st = self.statuses.pop((c.framework_id, c.task_id), None) or []
            if not st or st[-1][0] != state:  # a silent end (framework shut down) sent no update
                st.append((state, now()))
            # stderr by its property: the runner writes its end note there right after this (rings are
            # created on first write), and the record must hold that very ring.
            h.append([c.framework_id, c.executor_id, c.task_id, c.name, state, st, c._res, (c._out, c.stderr),
                      self.agent.frameworks.get(c.framework_id)])
        except MemoryError:
            pass  # the history is for people browsing: a task's end must not fail for it
