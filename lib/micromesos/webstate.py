# The agent as the web UI and tools read it: /state, /flags, /version, /health (and Mesos values as JSON).
# MIT licence. PROTOCOL.md §5; the shapes of src/slave/http.cpp (Http::state) and src/common/http.cpp (model()).
# Few globals: this module's dict is made per request, and past 29 names it needs one more 296-byte block
# (sys and time are imported where they are used).
from . import MESOS_VERSION, __version__, codec, ctx, schema
from .jsonw import json_body
from .updates import now
from micropython import const
_EXECUTOR_CUSTOM = const(2)  # schema.EXECUTOR_CUSTOM
_EXECUTOR_DEFAULT = const(1)  # schema.EXECUTOR_DEFAULT
_ExecutorInfo = const(38)  # schema.ExecutorInfo
_FrameworkInfo = const(23)  # schema.FrameworkInfo
_TASK_STAGING = const(6)  # schema.TASK_STAGING

BASIC = ("cpus", "gpus", "mem", "disk")  # always present in a resources object (model(Resources))


# --- Mesos values as JSON -------------------------------------------------------------------------------

def value(v):
    """A resource or attribute value for val(): a number, TEXT as it is, or the text form of a set "{a, b}"
    or of ranges "[1-2, 4-5]" (src/common/values.cpp puts ", " between items)."""
    if isinstance(v, tuple):
        return "{" + ", ".join(v) + "}"
    if isinstance(v, list):
        r = []
        for b, e in v:
            r.append("%d-%d" % (b, e))
        return "[" + ", ".join(r) + "]"
    return v


def res_object(out, pairs, basic=BASIC):
    """[(name, value)] as an object of name -> value(); the names in `basic` always there (0 if not in
    pairs): cpus, gpus, mem and disk in a resources object (model(Resources))."""
    c = b"{%:%"
    for b in basic:
        v = 0
        for n, x in pairs:
            if n == b:
                v = x
        out.t(c, b, value(v))
        c = b",%:%"
    for n, x in pairs:
        if n not in basic:
            out.t(c, n, value(x))
            c = b",%:%"
    out.raw(b"{}" if c[0] == 123 else b"}")


def total(grants):
    """The sum of [(name, value)] grants as [[name, value]]: scalars added (Mesos keeps 3 decimals), sets
    and ranges merged."""
    acc = []
    for g in grants:
        for n, v in g:
            for a in acc:
                if a[0] == n:
                    x = a[1]
                    if isinstance(v, float):
                        a[1] = round(x + v, 3)
                    elif isinstance(v, tuple):
                        a[1] = tuple(sorted(set(x) | set(v)))
                    else:
                        a[1] = _merge_ranges(x + v)
                    break
            else:
                acc.append([n, v])
    return acc


def _merge_ranges(rs):
    out = []
    for b, e in sorted(rs):
        if out and b <= out[-1][1] + 1:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((b, e))
    return out


def flags_object(out, cfg):
    """The config as the agent's flags: every value a string, as the real agent shows its flags. Written
    as it goes: a list of them all would be the peak of /state."""
    c = b"{%:%"
    for k in sorted(cfg):
        v = cfg[k]
        if isinstance(v, list):
            from .resfmt import fmt  # not resident; dropped with the views (endpoints)

            r = []
            for n, x in v:
                r.append(fmt(n, x))
            v = ";".join(r)
        elif v is True or v is False:
            v = "true" if v else "false"
        if v is not None:
            out.t(c, k, str(v))
            c = b",%:%"
    out.raw(b"{}" if c[0] == 123 else b"}")


# --- the task runner's live view ----------------------------------------------------------------------

def live_executors(ep, fid):
    """{executor id: [ctx, ...]} of fid's tasks not yet DONE, and its executors without a task left."""
    ex = {}
    t = ep.agent.tasks
    if t is None:
        return ex
    for (f, _), c in t.live.items():
        if f == fid and c.phase != ctx.DONE:
            ex.setdefault(c.executor_id, []).append(c)
    for (f, e) in t.executors:
        if f == fid and e not in ex:
            ex[e] = []
    return ex


def state_of(ep, c):
    if c.phase == ctx.LAUNCHING:
        return _TASK_STAGING
    s = ep.agent.updates.latest(c.framework_id, c.task_id)
    return _TASK_STAGING if s is None else s


def frameworks(ep):
    """(ids of frameworks with a live task or executor, ids known only from the history)."""
    live = []
    t = ep.agent.tasks
    if t is not None:
        for (f, _), c in t.live.items():
            if c.phase != ctx.DONE and f not in live:
                live.append(f)
        for (f, _) in t.executors:
            if f not in live:
                live.append(f)
    done = []
    for r in ep.completed:
        if r[0] not in live and r[0] not in done:
            done.append(r[0])
    return live, done


# --- routes ---------------------------------------------------------------------------------------------
# Each object is written from one template (jsonw.Writer.t): its keys in the order the real agent's
# src/slave/http.cpp writes them.

def health(ep, req):
    return 200, None, b""  # src/slave/http.cpp Http::health: 200, empty


def version(ep, req):
    def produce(out):
        import sys

        v = sys.implementation.version
        out.t(b'{"version":%,"micromesos_version":%,"micropython_version":%}', MESOS_VERSION, __version__,
              "%d.%d.%d" % (v[0], v[1], v[2]))
        yield
    return json_body(req.query, produce)


def flags(ep, req):
    def produce(out):
        out.raw(b'{"flags":')
        flags_object(out, ep.agent.cfg)
        out.byte(125)
        yield
    return json_body(req.query, produce)


def state(ep, req):
    return json_body(req.query, _state, ep)


def _host(upid):
    return upid.partition("@")[2].rpartition(":")[0]


def _state(out, ep):
    import time

    a = ep.agent
    t = a.tasks
    # capabilities: what registrar.py registers with (§3.5); test_endpoints checks them against the message.
    out.t(b'{"version":%,"micromesos_version":%,"start_time":%,"id":%,"pid":%,"hostname":%,"capabilities":'
          b'["MULTI_ROLE","HIERARCHICAL_ROLE","RESERVATION_REFINEMENT","AGENT_DRAINING"],"resources":',
          MESOS_VERSION, __version__,
          now() - time.ticks_diff(time.ticks_ms(), a.started_ms) / 1000, a.slave_id or "", a.upid,
          _host(a.upid))  # hostname: SlaveInfo.hostname (§3.5)
    res_object(out, a.totals)
    out.raw(b',"unreserved_resources":')  # nothing is reserved on the agent (resources.parse refuses roles)
    res_object(out, a.totals)
    out.raw(b',"reserved_resources":{},"unreserved_resources_allocated":')
    res_object(out, total(t.leases.used.values()) if t is not None else ())
    out.raw(b',"reserved_resources_allocated":{},"attributes":')
    res_object(out, a.attributes, ())
    out.t(b',"master_hostname":%,"flags":', _host(a.master))
    flags_object(out, a.cfg)
    yield
    live, done = frameworks(ep)
    for fids, tpl in ((live, b',"frameworks":['), (done, b'],"completed_frameworks":[')):
        out.raw(tpl)
        for i in range(len(fids)):
            if i:
                out.byte(44)
            for x in _framework(ep, out, fids[i], fids is live):
                yield x
    out.raw(b"]}")


def _framework(ep, out, fid, active):
    raw = ep.agent.frameworks.get(fid)
    history = list(ep.completed)  # a copy: the history may change at a checkpoint
    if raw is None:
        for r in history:
            if r[0] == fid and r[8] is not None:
                raw = r[8]
    fw = codec.decode(_FrameworkInfo, raw) if raw is not None else {}
    out.t(b'{"id":%,"name":%,"user":%,"failover_timeout":%,"checkpoint":%,"hostname":%', fid, fw.get("name", ""),
          fw.get("user", ""), fw.get("failover_timeout", 0.0), fw.get("checkpoint", False), fw.get("hostname", ""))
    if "principal" in fw:
        out.t(b',"principal":%', fw["principal"])
    roles = fw.get("roles")
    if roles is not None:  # MULTI_ROLE: `role` stays unset, FrameworkWriter mirrors the proto
        out.t(b',"roles":%', roles)
        role = roles[0] if roles else "*"
    else:
        role = fw.get("role", "*")
        out.t(b',"role":%', role)
    fw = None
    live = live_executors(ep, fid) if active else {}
    out.raw(b',"executors":[')
    c = 0
    for eid, ctxs in live.items():
        _executor(ep, out, c, fid, eid, ctxs, role, history)
        c = 44
        yield
    out.raw(b'],"completed_executors":[')
    seen = []
    for r in history:
        if r[0] == fid and r[1] not in live and r[1] not in seen:
            seen.append(r[1])
            _executor(ep, out, len(seen) > 1, fid, r[1], (), role, history)
            yield
    out.raw(b"]}")


def _executor(ep, out, comma, fid, eid, ctxs, role, history):
    t = ep.agent.tasks
    e = t.executors.get((fid, eid)) if t is not None else None
    info = codec.decode(_ExecutorInfo, e[0]) if e is not None else None
    if info is not None:
        name, src = info.get("name", ""), info.get("source", "")
    else:  # a command task's, named after it (§2.6); or an executor that is gone, with its ExecutorInfo
        name = src = ""
        for r in history:
            if r[1] == eid == r[2]:
                src = None
        for x in ctxs:
            if x._eid is None:
                src = None
        if src is None:
            name, src = "Command Executor (Task: " + eid + ")", eid
    grants = []
    for x in ctxs:
        grants.append(x._res)
    if e is not None:
        grants.append(t.leases.used.get((fid, eid), ()))
    if comma:
        out.byte(44)
    # directory: its sandbox (sandbox.py); resources: Executor::allocatedResources, its own and its tasks'
    out.t(b'{"id":%,"name":%,"source":%,"container":"","directory":%,"role":%,"resources":', eid, name, src,
          "/frameworks/" + fid + "/executors/" + eid, role)
    res_object(out, total(grants))
    if info is not None and "type" in info:
        x = info["type"]
        out.t(b',"type":%', "DEFAULT" if x == _EXECUTOR_DEFAULT else "CUSTOM" if x == _EXECUTOR_CUSTOM
              else "UNKNOWN")
    info = None
    out.raw(b',"tasks":[')
    c = 0
    for x in ctxs:
        if c:
            out.byte(44)
        _task(ep, out, fid, eid if x._eid is not None else "", x.task_id, x.name, state_of(ep, x), x._res,
              ep.statuses.get((fid, x.task_id), ()), role)
        c = 1
    out.raw(b'],"queued_tasks":[],"completed_tasks":[')
    c = 0
    for r in history:
        if r[0] == fid and r[1] == eid:
            if c:
                out.byte(44)
            _task(ep, out, fid, eid if eid != r[2] else "", r[2], r[3], r[4], r[6], r[5], role)
            c = 1
    out.raw(b"]}")


def _task(ep, out, fid, eid, tid, name, st, grant, statuses, role):
    # model(Task) in src/common/http.cpp: a command task has no executor_id, written "".
    out.t(b'{"id":%,"name":%,"framework_id":%,"executor_id":%,"slave_id":%,"state":%,"role":%,"resources":',
          tid, name, fid, eid, ep.agent.slave_id or "", schema.task_state_name(st), role)
    res_object(out, grant)
    out.raw(b',"statuses":[')
    c = 0
    for s, ts in statuses:
        if c:
            out.byte(44)
        out.t(b'{"state":%,"timestamp":%}', schema.task_state_name(s), ts)
        c = 1
    out.raw(b"]}")
