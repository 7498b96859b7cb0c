# The agent's HTTP endpoints for the Mesos web UI and tools: route table, finished-task history, query helpers.
# MIT licence. PROTOCOL.md §5. The views (webstate, metrics, sandbox) are imported by their first request.
import sys

from micropython import const

from .updates import now

_JSON = "application/json"
_JSONP = "text/javascript"  # §5: with ?jsonp=<cb> the body is cb(<json>)
_MAX_CALLBACK = const(64)

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


def install(agent):
    """Register every endpoint on agent.lp and hook the task runner's end-of-task history. -> Endpoints."""
    ep = Endpoints(agent)
    for p in _ROUTES:
        agent.lp.route(p, ep.route)
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

    def route(self, req):
        mod, fn = _ROUTES[req.path]
        self.requests += 1
        name = "micromesos." + mod
        m = sys.modules.get(name)
        if m is None:
            # The views' bytecode is loaded by the first request: an agent nobody browses doesn't
            # carry it in the heap (it does when lib/ is not frozen into the firmware).
            __import__(name)
            m = sys.modules[name]
        return getattr(m, fn)(self, req)

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
            h.append([c.framework_id, c.executor_id, c.task_id, c.name, state, st, c._res, (c._out, c._err),
                      self.agent.frameworks.get(c.framework_id)])
        except MemoryError:
            pass  # the history is for people browsing: a task's end must not fail for it


# --- query strings and JSON(P) bodies for the views ------------------------------------------------------

def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    c |= 32
    return c - 87 if 97 <= c <= 102 else -1


def unquote(s):
    """Percent-decoding of a query value ('+' is a space); ValueError for a bad escape or bad UTF-8."""
    if "%" not in s and "+" not in s:
        return s
    b = s.encode()
    out = bytearray()
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c == 37:  # '%'
            if i + 2 >= n:
                raise ValueError("bad percent escape")
            hi = _hexval(b[i + 1])
            lo = _hexval(b[i + 2])
            if hi < 0 or lo < 0:
                raise ValueError("bad percent escape")
            c = hi * 16 + lo
            i += 2
        elif c == 43:  # '+'
            c = 32
        out.append(c)
        i += 1
    return out.decode()


def arg(query, name):
    """The decoded value of `name` in a query string, or None."""
    for part in query.split("&"):
        k, _, v = part.partition("=")
        if k == name:
            return unquote(v)
    return None


def _callback(query):
    # A JSONP callback is a JavaScript name path (angular.callbacks._0, jQuery36_17): anything else is
    # refused, so a crafted link can't make the agent serve script of someone else's choosing.
    cb = arg(query, "jsonp")
    if cb is None:
        return None
    if not 0 < len(cb) <= _MAX_CALLBACK:
        raise ValueError("bad jsonp callback")
    for ch in cb:
        if not (ch.isalpha() or ch.isdigit() or ch in "_$."):
            raise ValueError("bad jsonp callback")
    return cb


def bad(msg):
    return 400, "text/plain", msg


def json_body(query, produce):
    """(status, content type, body) for a JSON endpoint: produce(out) writes the value, wrapped in the
    JSONP callback when the query names one."""
    try:
        cb = _callback(query)
    except ValueError:
        return bad(b"Invalid 'jsonp' callback.\n")
    if cb is None:
        return 200, _JSON, produce

    def wrapped(out):
        out.raw(cb.encode())
        out.byte(40)
        for x in produce(out):
            yield x
        out.byte(41)
    return 200, _JSONP, wrapped
