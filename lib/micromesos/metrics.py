# The agent's numbers: /metrics/snapshot (the real agent's slave/* names, and the micro agent's own) and
# /monitor/statistics. MIT licence. PROTOCOL.md §5; names of src/slave/metrics.cpp, shape of src/slave/monitor.cpp.
import gc
import time

from . import schema
from .ctx import DONE, KILLING
from .jsonw import json_body
from .updates import now
from .webstate import BASIC, frameworks, live_executors, state_of, total


def scalar(pairs, name):
    for n, v in pairs:
        if n == name and isinstance(v, float):
            return v
    return 0.0


def metrics(ep, req):
    return json_body(req.query, lambda out: _metrics(ep, out))


def _metrics(ep, out):
    a = ep.agent
    t = a.tasks
    n = [0, 0, 0, 0]  # staging, starting, running, killing
    execs = []
    heap = 0
    if t is not None:
        for (f, _), c in t.live.items():
            if c.phase == DONE:
                continue
            s = state_of(ep, c)
            if c.phase == KILLING or s == schema.TASK_KILLING:
                n[3] += 1
            elif s == schema.TASK_STAGING:
                n[0] += 1
            elif s == schema.TASK_STARTING:
                n[1] += 1
            else:
                n[2] += 1
            heap += c.heap
            if (f, c.executor_id) not in execs:
                execs.append((f, c.executor_id))
    k = t.counters if t is not None else {}
    # The real agent's names (src/slave/metrics.cpp); the web UI's agent page reads slave/tasks_*.
    out.obj()
    out.field(b"slave/uptime_secs", time.ticks_diff(time.ticks_ms(), a.started_ms) / 1000)
    out.field(b"slave/registered", 1 if a.connected() else 0)
    out.field(b"slave/frameworks_active", len(frameworks(ep)[0]))
    out.field(b"slave/tasks_staging", n[0])
    out.field(b"slave/tasks_starting", n[1])
    out.field(b"slave/tasks_running", n[2])
    out.field(b"slave/tasks_killing", n[3])
    out.field(b"slave/tasks_finished", k.get("finished", 0))
    out.field(b"slave/tasks_failed", k.get("failed", 0))
    out.field(b"slave/tasks_killed", k.get("killed", 0))
    out.field(b"slave/tasks_lost", k.get("lost", 0))
    out.field(b"slave/executors_running", len(execs))
    out.field(b"slave/valid_status_updates", a.updates.acked)
    used = total(t.leases.used.values()) if t is not None else ()
    for r in BASIC:
        tot = scalar(a.totals, r)
        u = scalar(used, r)
        out.field("slave/" + r + "_total", tot)
        out.field("slave/" + r + "_used", u)
        out.field("slave/" + r + "_percent", u / tot if tot else 0.0)
    yield
    # The micro agent's own figures. The heap after a collection: without one, garbage counts as used
    # and the figures swing with the collector's timing (a collection costs a few ms on a board).
    gc.collect()
    free = gc.mem_free()
    used = gc.mem_alloc()
    out.field(b"micromesos/heap_free_bytes", free)
    out.field(b"micromesos/heap_used_bytes", used)
    out.field(b"micromesos/heap_total_bytes", free + used)
    out.field(b"micromesos/task_heap_growth_bytes", heap)
    out.field(b"micromesos/loop_lag_max_ms", t.watch.max_lag_ms if t is not None else 0)
    out.field(b"micromesos/task_hogs", k.get("hogs", 0))
    for name in ("registrations", "reregistrations", "disconnects", "pings", "dropped", "invalid"):
        out.field("micromesos/agent_" + name, a.counters.get(name, 0))
    out.field(b"micromesos/status_updates_pending", a.updates.pending_count())
    out.field(b"micromesos/status_updates_sent", a.updates.sent)
    out.field(b"micromesos/http_connections_refused", getattr(a.lp, "refused", 0))
    out.field(b"micromesos/http_connections_dropped", getattr(a.lp, "evicted", 0))
    out.field(b"micromesos/http_requests", ep.requests)
    out.end()


def monitor(ep, req):
    return json_body(req.query, lambda out: _monitor(ep, out))


def _monitor(ep, out):
    # One entry per executor, as the real ResourceMonitor. mem_rss_bytes is the heap its tasks grew by
    # over their steps (ctx.heap, gc.mem_alloc deltas): the nearest a shared MicroPython heap has to RSS.
    ts = now()
    out.arr()
    for fid in frameworks(ep)[0]:
        for eid, ctxs in live_executors(ep, fid).items():
            g = total([c._res for c in ctxs])
            out.obj()
            out.field(b"executor_id", eid)
            out.field(b"executor_name", "")
            out.field(b"framework_id", fid)
            out.field(b"source", eid)
            out.key(b"statistics")
            out.obj()
            out.field(b"timestamp", ts)
            out.field(b"cpus_limit", scalar(g, "cpus"))
            out.field(b"mem_limit_bytes", int(scalar(g, "mem") * 1048576))
            out.field(b"mem_rss_bytes", sum(c.heap for c in ctxs))
            out.field(b"micromesos_steps", sum(c.steps for c in ctxs))
            out.field(b"micromesos_max_step_ms", max([c.max_step_ms for c in ctxs] or [0]))
            out.end()
            out.end()
            yield
    out.end()
