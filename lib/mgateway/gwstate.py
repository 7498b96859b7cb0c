# GET /slave(N)/state for one virtual agent (docs/GATEWAY.md §2): the shape of the agent's /state where the
# web UI reads it (id, pid, hostname, resources, attributes, frameworks with their tasks), plus "node": what
# the gateway knows of the node's link and sleep. MIT licence.
import json
import time

from micropython import const

from micromesos import codec, schema

_Resource = const(14)  # schema.Resource (codec table numbers)
_FrameworkInfo = const(23)  # schema.FrameworkInfo
_SCALAR = const(0)
_RANGES = const(1)
_SET = const(2)
_TEXT = const(3)


def _resources(raw):
    out = {}
    for r in raw:
        d = codec.decode(_Resource, r)
        t = d.get("type")
        if t == _SCALAR:
            out[d["name"]] = out.get(d["name"], 0) + d["scalar"]["value"]
        elif t == _RANGES:
            out[d["name"]] = "[" + ", ".join("%d-%d" % (x["begin"], x["end"])
                                             for x in d["ranges"].get("range", ())) + "]"
        elif t == _SET:
            out[d["name"]] = "{" + ", ".join(d["set"].get("item", ())) + "}"
    return out


def _attributes(attrs):
    out = {}
    for a in attrs:
        t = a.get("type")
        if t == _TEXT:
            out[a["name"]] = a["text"]["value"]
        elif t == _SCALAR:
            out[a["name"]] = a["scalar"]["value"]
    return out


def state(va):
    """The /state document of VAgent va, as a JSON string."""
    si = va.slave_info(va.slave_id is not None) if va.info else {}
    fws = {}
    for (fid, tid), t in va.tasks.items():
        fws.setdefault(fid, []).append({
            "id": tid, "name": t.get("name", tid), "framework_id": fid, "slave_id": va.slave_id,
            "state": schema.task_state_name(t["state"]), "resources": _resources(t.get("resources", ()))})
    frameworks = []
    for fid, raw in va.frameworks.items():
        fi = codec.decode(_FrameworkInfo, raw)
        frameworks.append({"id": fid, "name": fi.get("name", ""), "user": fi.get("user", ""),
                           "tasks": fws.get(fid, [])})
    p = va.peer
    hub = va.gw.hub
    doc = {
        "version": "1.12.0", "id": va.slave_id or "", "pid": va.upid, "hostname": va.gw.hostname,
        "resources": _resources(si.get("resources", ())), "attributes": _attributes(si.get("attributes", ())),
        "frameworks": frameworks, "completed_frameworks": [],
        "node": {"name": va.name, "registered": va.state == 2, "awake": p.awake, "vouched": hub.vouch(p),
                 "due_in_ms": time.ticks_diff(p.due, time.ticks_ms()), "wake_ms": p.wake_ms,
                 "listen_ms": p.listen_ms, "sleeps": p.sleeps, "held": va.relay.outstanding(),
                 "unacknowledged_updates": va.relay.pending(), "pings": va.pings, "pongs": va.pongs}}
    return json.dumps(doc)
