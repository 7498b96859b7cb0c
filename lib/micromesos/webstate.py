# The agent as the web UI and tools read it: /state, /flags, /version, /health (and Mesos values as JSON).
# MIT licence. PROTOCOL.md §5; the shapes of src/slave/http.cpp (Http::state) and src/common/http.cpp (model()).
import sys
import time

from . import MESOS_VERSION, __version__, codec, resources, schema
from .ctx import DONE, LAUNCHING
from .jsonw import json_body
from .updates import now

BASIC = ("cpus", "gpus", "mem", "disk")  # always present in a resources object (model(Resources))
# What agent.py registers with (§3.5); test_endpoints checks them against the RegisterSlaveMessage.
_CAPS = ("MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT")
_EXEC_TYPES = {schema.EXECUTOR_DEFAULT: "DEFAULT", schema.EXECUTOR_CUSTOM: "CUSTOM"}


# --- Mesos values as JSON -------------------------------------------------------------------------------

def value(out, v):
    """A resource or attribute value: a number, TEXT as it is, or the text form of a set "{a, b}" or of
    ranges "[1-2, 4-5]" (src/common/values.cpp puts ", " between items)."""
    if isinstance(v, tuple):
        out.sopen()
        out.byte(123)
        for i in range(len(v)):
            if i:
                out.raw(b", ")
            out.spart(v[i])
        out.byte(125)
        out.sclose()
    elif isinstance(v, list):
        out.sopen()
        out.byte(91)
        for i in range(len(v)):
            if i:
                out.raw(b", ")
            out.spart(v[i][0])
            out.byte(45)
            out.spart(v[i][1])
        out.byte(93)
        out.sclose()
    else:
        out.val(v)


def res_object(out, pairs):
    """[(name, value)] as an object of name -> value; cpus, gpus, mem and disk are always there."""
    out.obj()
    for b in BASIC:
        v = 0
        for n, x in pairs:
            if n == b:
                v = x
        out.key(b)
        value(out, v)
    for n, x in pairs:
        if n not in BASIC:
            out.key(n)
            value(out, x)
    out.end()


def total(grants):
    """The sum of [(name, value)] grants: scalars added (Mesos keeps 3 decimals), sets and ranges merged."""
    acc = {}
    order = []
    for g in grants:
        for n, v in g:
            if n not in acc:
                order.append(n)
                acc[n] = v
            elif isinstance(v, float):
                acc[n] = round(acc[n] + v, 3)
            elif isinstance(v, tuple):
                acc[n] = tuple(sorted(set(acc[n]) | set(v)))
            else:
                acc[n] = _merge_ranges(acc[n] + v)
    return [(n, acc[n]) for n in order]


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
    """The config as the agent's flags: every value a string, as the real agent shows its flags."""
    out.obj()
    for k in sorted(cfg):
        v = cfg[k]
        if v is None:
            continue
        if isinstance(v, list):
            v = ";".join(resources.fmt(n, x) for n, x in v)
        elif v is True or v is False:
            v = "true" if v else "false"
        out.field(k, str(v))
    out.end()


# --- the task runner's live view ----------------------------------------------------------------------

def live_executors(ep, fid):
    """{executor id: [ctx, ...]} of fid's tasks not yet DONE, and its executors without a task left."""
    ex = {}
    t = ep.agent.tasks
    if t is None:
        return ex
    for (f, _), c in t.live.items():
        if f == fid and c.phase != DONE:
            ex.setdefault(c.executor_id, []).append(c)
    for (f, e) in t.executors:
        if f == fid and e not in ex:
            ex[e] = []
    return ex


def state_of(ep, c):
    if c.phase == LAUNCHING:
        return schema.TASK_STAGING
    s = ep.agent.updates.latest(c.framework_id, c.task_id)
    return schema.TASK_STAGING if s is None else s


def frameworks(ep):
    """(ids of frameworks with a live task or executor, ids known only from the history)."""
    live = []
    t = ep.agent.tasks
    if t is not None:
        for (f, _), c in t.live.items():
            if c.phase != DONE and f not in live:
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

def health(ep, req):
    return 200, None, b""  # src/slave/http.cpp Http::health: 200, empty


def version(ep, req):
    def produce(out):
        v = sys.implementation.version
        out.obj()
        out.fields(b"version micromesos_version micropython_version", MESOS_VERSION, __version__,
                   "%d.%d.%d" % (v[0], v[1], v[2]))
        out.end()
        yield
    return json_body(req.query, produce)


def flags(ep, req):
    def produce(out):
        out.obj()
        out.key(b"flags")
        flags_object(out, ep.agent.cfg)
        out.end()
        yield
    return json_body(req.query, produce)


def state(ep, req):
    return json_body(req.query, lambda out: _state(ep, out))


def _state(ep, out):
    a = ep.agent
    t = a.tasks
    out.obj()
    out.fields(b"version micromesos_version start_time id pid hostname", MESOS_VERSION, __version__,
               now() - time.ticks_diff(time.ticks_ms(), a.started_ms) / 1000, a.slave_id or "", a.upid,
               a.upid.partition("@")[2].rpartition(":")[0])  # hostname: SlaveInfo.hostname (§3.5)
    out.key(b"capabilities")
    out.arr()
    for c in _CAPS:
        out.val(c)
    out.end()
    out.key(b"resources")
    res_object(out, a.totals)
    out.key(b"unreserved_resources")  # nothing is reserved on the agent (resources.parse refuses roles)
    res_object(out, a.totals)
    out.item(b'"reserved_resources":{}')
    out.key(b"unreserved_resources_allocated")
    res_object(out, total(t.leases.used.values()) if t is not None else ())
    out.item(b'"reserved_resources_allocated":{}')
    out.key(b"attributes")
    out.obj()
    for n, v in a.attributes:
        out.key(n)
        value(out, v)
    out.end()
    out.field(b"master_hostname", a.master.partition("@")[2].rpartition(":")[0])
    out.key(b"flags")
    flags_object(out, a.cfg)
    yield
    live, done = frameworks(ep)
    out.key(b"frameworks")
    out.arr()
    for fid in live:
        for x in _framework(ep, out, fid, True):
            yield x
    out.end()
    out.key(b"completed_frameworks")
    out.arr()
    for fid in done:
        for x in _framework(ep, out, fid, False):
            yield x
    out.end()
    out.end()


def _framework(ep, out, fid, active):
    raw = ep.agent.frameworks.get(fid)
    history = list(ep.completed)  # a copy: the history may change at a checkpoint
    if raw is None:
        for r in history:
            if r[0] == fid and r[8] is not None:
                raw = r[8]
    fw = codec.decode(schema.FrameworkInfo, raw) if raw is not None else {}
    out.obj()
    out.fields(b"id name user failover_timeout checkpoint hostname", fid, fw.get("name", ""), fw.get("user", ""),
               fw.get("failover_timeout", 0.0), fw.get("checkpoint", False), fw.get("hostname", ""))
    if "principal" in fw:
        out.field(b"principal", fw["principal"])
    roles = fw.get("roles")
    if roles is not None:  # MULTI_ROLE: `role` stays unset, FrameworkWriter mirrors the proto
        out.key(b"roles")
        out.arr()
        for r in roles:
            out.val(r)
        out.end()
        role = roles[0] if roles else "*"
    else:
        role = fw.get("role", "*")
        out.field(b"role", role)
    fw = None
    live = live_executors(ep, fid) if active else {}
    out.key(b"executors")
    out.arr()
    for eid, ctxs in live.items():
        _executor(ep, out, fid, eid, ctxs, role, history)
        yield
    out.end()
    out.key(b"completed_executors")
    out.arr()
    seen = []
    for r in history:
        if r[0] == fid and r[1] not in live and r[1] not in seen:
            seen.append(r[1])
            _executor(ep, out, fid, r[1], (), role, history)
            yield
    out.end()
    out.end()


def _executor(ep, out, fid, eid, ctxs, role, history):
    t = ep.agent.tasks
    e = t.executors.get((fid, eid)) if t is not None else None
    info = codec.decode(schema.ExecutorInfo, e[0]) if e is not None else None
    if info is not None:
        name, src = info.get("name", ""), info.get("source", "")
    elif any(c._eid is None for c in ctxs) or any(r[1] == eid == r[2] for r in history):
        name, src = "Command Executor (Task: " + eid + ")", eid  # a command task's, named after it (§2.6)
    else:  # an executor that is gone: its ExecutorInfo went with it
        name, src = "", ""
    out.obj()
    out.fields(b"id name source container directory role", eid, name, src, "",
               "/frameworks/" + fid + "/executors/" + eid, role)  # directory: its sandbox (sandbox.py)
    grants = [c._res for c in ctxs]
    if e is not None:
        grants.append(t.leases.used.get((fid, eid), ()))
    out.key(b"resources")  # Executor::allocatedResources: its own and its tasks'
    res_object(out, total(grants))
    if info is not None and "type" in info:
        out.field(b"type", _EXEC_TYPES.get(info["type"], "UNKNOWN"))
    info = None
    out.key(b"tasks")
    out.arr()
    for c in ctxs:
        _task(ep, out, fid, eid if c._eid is not None else "", c.task_id, c.name, state_of(ep, c),
              c._res, ep.statuses.get((fid, c.task_id), ()), role)
    out.end()
    out.item(b'"queued_tasks":[]')
    out.key(b"completed_tasks")
    out.arr()
    for r in history:
        if r[0] == fid and r[1] == eid:
            _task(ep, out, fid, eid if eid != r[2] else "", r[2], r[3], r[4], r[6], r[5], role)
    out.end()
    out.end()


def _task(ep, out, fid, eid, tid, name, st, grant, statuses, role):
    # model(Task) in src/common/http.cpp: a command task has no executor_id, written "".
    out.obj()
    out.fields(b"id name framework_id executor_id slave_id state role", tid, name, fid, eid,
               ep.agent.slave_id or "", schema.task_state_name(st), role)
    out.key(b"resources")
    res_object(out, grant)
    out.key(b"statuses")
    out.arr()
    for s, ts in statuses:
        out.obj()
        out.fields(b"state timestamp", schema.task_state_name(s), ts)
        out.end()
    out.end()
    out.end()
