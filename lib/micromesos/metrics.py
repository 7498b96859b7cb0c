# The agent's numbers: /metrics/snapshot (the real agent's slave/* names, and the micro agent's own) and
# /monitor/statistics. MIT licence. PROTOCOL.md §5; names of src/slave/metrics.cpp, shape of src/slave/monitor.cpp.
import gc
import time

from . import log, schema
from .ctx import DONE, KILLING
from .jsonw import json_body
from .updates import now
from .webstate import BASIC, frameworks, live_executors, state_of, total
from micropython import const
_TASK_KILLING = const(8)  # schema.TASK_KILLING
_TASK_STAGING = const(6)  # schema.TASK_STAGING
_TASK_STARTING = const(0)  # schema.TASK_STARTING


def scalar(pairs, name):
    for n, v in pairs:
        if n == name and isinstance(v, float):
            return v
    return 0.0


def metrics(ep, req):
    return json_body(req.query, _metrics, ep)


def _metrics(out, ep):
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
            if c.phase == KILLING or s == _TASK_KILLING:
                n[3] += 1
            elif s == _TASK_STAGING:
                n[0] += 1
            elif s == _TASK_STARTING:
                n[1] += 1
            else:
                n[2] += 1
            heap += c.heap
            if (f, c.executor_id) not in execs:
                execs.append((f, c.executor_id))
    k = t.counters if t is not None else {}
    # The real agent's names (src/slave/metrics.cpp); the web UI's agent page reads slave/tasks_*.
    out.t(b'{"slave/uptime_secs":%,"slave/registered":%,"slave/frameworks_active":%,"slave/tasks_staging":%,'
          b'"slave/tasks_starting":%,"slave/tasks_running":%,"slave/tasks_killing":%,"slave/tasks_finished":%,'
          b'"slave/tasks_failed":%,"slave/tasks_killed":%,"slave/tasks_lost":%,"slave/executors_running":%,'
          b'"slave/valid_status_updates":%', time.ticks_diff(time.ticks_ms(), a.started_ms) / 1000,
          1 if a.connected() else 0, len(frameworks(ep)[0]), n[0], n[1], n[2], n[3], k.get("finished", 0),
          k.get("failed", 0), k.get("killed", 0), k.get("lost", 0), len(execs), a.updates.acked)
    used = total(t.leases.used.values()) if t is not None else ()
    for r in BASIC:
        tot = scalar(a.totals, r)
        u = scalar(used, r)
        out.t(b',%:%,%:%,%:%', "slave/" + r + "_total", tot, "slave/" + r + "_used", u, "slave/" + r + "_percent",
              u / tot if tot else 0.0)
    yield
    # The micro agent's own figures. The heap after a collection: without one, garbage counts as used
    # and the figures swing with the collector's timing (a collection costs a few ms on a board).
    gc.collect()
    free = gc.mem_free()
    used = gc.mem_alloc()
    out.t(b',"micromesos/heap_free_bytes":%,"micromesos/heap_used_bytes":%,"micromesos/heap_total_bytes":%,'
          b'"micromesos/task_heap_growth_bytes":%,"micromesos/loop_lag_max_ms":%,"micromesos/task_hogs":%',
          free, used, free + used, heap, t.watch.max_lag_ms if t is not None else 0, k.get("hogs", 0))
    for name in ("registrations", "reregistrations", "disconnects", "pings", "dropped", "invalid"):
        out.t(b',%:%', "micromesos/agent_" + name, a.counters.get(name, 0))
    out.t(b',"micromesos/status_updates_pending":%,"micromesos/status_updates_sent":%,'
          b'"micromesos/status_updates_no_heap":%,'
          b'"micromesos/http_connections_refused":%,"micromesos/http_connections_dropped":%,'
          b'"micromesos/http_requests":%,"micromesos/log_lines_dropped":%}', a.updates.pending_count(), a.updates.sent,
          a.updates.no_heap, getattr(a.lp, "refused", 0), getattr(a.lp, "evicted", 0), ep.requests, log.dropped)


def monitor(ep, req):
    return json_body(req.query, _monitor, ep)


def _monitor(out, ep):
    # One entry per executor, as the real ResourceMonitor. mem_rss_bytes is the heap its tasks hold now as
    # far as a shared heap can tell (ctx.heap: their steps' gc.mem_alloc deltas, net of what was freed in
    # them; steps.py): the nearest a MicroPython board has to RSS. It goes down when a task frees memory.
    ts = now()
    c = 91
    for fid in frameworks(ep)[0]:
        for eid, ctxs in live_executors(ep, fid).items():
            g = total([x._res for x in ctxs])
            out.byte(c)
            c = 44
            out.t(b'{"executor_id":%,"executor_name":"","framework_id":%,"source":%,"statistics":{"timestamp":%,'
                  b'"cpus_limit":%,"mem_limit_bytes":%,"mem_rss_bytes":%,"micromesos_steps":%,'
                  b'"micromesos_max_step_ms":%}}', eid, fid, eid, ts, scalar(g, "cpus"),
                  int(scalar(g, "mem") * 1048576), sum(x.heap for x in ctxs), sum(x.steps for x in ctxs),
                  max([x.max_step_ms for x in ctxs] or [0]))
            yield
    if c == 91:
        out.byte(91)
    out.byte(93)
