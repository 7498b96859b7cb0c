# What the real master checks in an agent's messages, as pure functions returning a reason or None.
# MIT licence. PROTOCOL.md §0, §2.2, §2.4, §2.7, §2.11, §4.1; mesos src/master/validation.cpp, resources.cpp.
import math
import re

from .model import (AGENT_MULTI_ROLE, FW_MULTI_ROLE, RANGES, SCALAR, SET, TASK_RUNNING, TASK_UNREACHABLE,
                    TEXT, idv, millis)

_NUM = re.compile(r"^(0|[1-9][0-9]*)$")
_IDENT = re.compile(r"^[0-9A-Za-z-]+$")
MINIMUM_AGENT_VERSION = (1, 0, 0)


def check_id(s, what="ID"):
    """src/common/validation.cpp validateID: not empty, '.', '..', no control chars, '/', '\\'."""
    if not isinstance(s, str) or s == "":
        return "%s is empty" % what
    if s in (".", ".."):
        return "%s %r is '.' or '..'" % (what, s)
    if len(s) > 255:
        return "%s longer than NAME_MAX" % what
    if any(ord(c) < 32 or ord(c) == 127 or c in "/\\" for c in s):
        return "%s %r contains a control character, '/' or '\\'" % (what, s)
    return None


def parse_version(v):
    """stout Version::parse: up to 3 numeric components, optional -prerelease and +build. -> tuple or None."""
    if not isinstance(v, str) or not v:
        return None
    core, _, build = v.partition("+")
    core, _, pre = core.partition("-")
    for extra in (build, pre):
        if extra and not all(_IDENT.match(i) for i in extra.split(".")):
            return None
    if ("+" in v and not build) or ("-" in v.split("+")[0] and not pre):
        return None
    nums = core.split(".")
    if len(nums) > 3 or not all(_NUM.match(n) for n in nums):
        return None
    t = tuple(int(n) for n in nums)
    return t + (0,) * (3 - len(t))


def check_version(v):
    """§0.3 / §2.2 step 6: the version must parse as SemVer and be >= 1.0.0."""
    if v is None:
        return "no version (RegisterSlaveMessage.version is required in practice, §0.3)"
    t = parse_version(v)
    if t is None:
        return "version %r does not parse as SemVer" % (v,)
    if t < MINIMUM_AGENT_VERSION:
        return "version %r is below the minimum agent version 1.0.0" % (v,)
    return None


def check_uuid(b):
    """stout UUID::fromBytes: 16 bytes, RFC-4122 version 1..5 in the high nibble of byte 6 (§0.8)."""
    if not isinstance(b, (bytes, bytearray)) or len(b) != 16:
        return "uuid is %s, not 16 raw bytes" % ("missing" if b is None else "%d bytes" % len(b))
    if not 1 <= (b[6] >> 4) <= 5:
        return "uuid version nibble is %d, not 1..5" % (b[6] >> 4)
    return None


def check_resource(r):
    """Resources::validate for one Resource (§4.1, §2.12)."""
    name = r.get("name")
    if not name:
        return "resource without a name"
    t = r.get("type")
    if t == SCALAR:
        if "scalar" not in r or "ranges" in r or "set" in r:
            return "%s: SCALAR resource must carry exactly a scalar" % name
        v = r["scalar"].get("value")
        if not isinstance(v, (int, float)) or math.isnan(v) or math.isinf(v):
            return "%s: scalar %r is not a finite number" % (name, v)
        if v < 0:
            return "%s: negative scalar %r" % (name, v)
        if v != 0 and millis(v) == 0:
            return "%s: scalar %r rounds to 0 at 3 decimal places (< 0.0005)" % (name, v)
    elif t == RANGES:
        if "ranges" not in r or "scalar" in r or "set" in r:
            return "%s: RANGES resource must carry exactly ranges" % name
        spans = sorted((x.get("begin", 0), x.get("end", 0)) for x in r["ranges"].get("range", []))
        for b, e in spans:
            if b > e:
                return "%s: range [%d-%d] has begin > end" % (name, b, e)
        for (b1, e1), (b2, e2) in zip(spans, spans[1:]):
            if b2 <= e1:
                return "%s: overlapping ranges [%d-%d] and [%d-%d]" % (name, b1, e1, b2, e2)
    elif t == SET:
        if "set" not in r or "scalar" in r or "ranges" in r:
            return "%s: SET resource must carry exactly a set" % name
        items = r["set"].get("item", [])
        if len(set(items)) != len(items):
            return "%s: duplicate set items" % name
    elif t == TEXT:
        return "%s: TEXT resources are not supported (attributes only)" % name
    else:
        return "%s: unknown Value.Type %r" % (name, t)
    if "disk" in r and name != "disk":
        return "%s: DiskInfo on a non-disk resource" % name
    for res in r.get("reservations", []):
        if res.get("role") in (None, "*"):
            return "%s: reservation without a role or with role '*'" % name
    return None


def check_resources(resources, what="resources"):
    for r in resources or []:
        why = check_resource(r)
        if why:
            return "invalid %s: %s" % (what, why)
    return None


def check_slave_info(info, checkpointed):
    """§2.2 step 2 (and the same rules in re-registration)."""
    if "id" in info:
        why = check_id(idv(info["id"]), "SlaveInfo.id")
        if why:
            return why
    why = check_resources(info.get("resources"), "SlaveInfo.resources")
    if why:
        return why
    if checkpointed and not info.get("checkpoint", False):
        return "checkpointed_resources sent with SlaveInfo.checkpoint=false"
    return check_resources(checkpointed, "checkpointed_resources")


def check_registration(msg, reregister):
    """Drops of §2.2 steps 2, 6, 7 (and §2.4's shared rules). Returns a reason or None."""
    info = msg.get("slave", {})
    why = check_slave_info(info, msg.get("checkpointed_resources", []))
    if why:
        return why
    if reregister and "id" not in info:
        return "ReregisterSlaveMessage.slave has no id"
    why = check_version(msg.get("version"))
    if why:
        return why
    if "domain" in info:
        return "SlaveInfo.domain is set but this master has no domain (§2.2 step 7)"
    return None


def registration_warnings(msg):
    """Legal but unwise choices the real master accepts silently (§3.4, §3.5, §4.3): -> list of reasons."""
    out = []
    info = msg.get("slave", {})
    res = info.get("resources", [])
    if any("allocation_info" in r for r in res):
        out.append("SlaveInfo.resources carry allocation_info (never in totals, §3.4)")
    if any(r.get("name") == "gpus" for r in res):
        out.append("a `gpus` resource hides the agent from frameworks without GPU_RESOURCES (§4.3)")
    caps = {c.get("type") for c in msg.get("agent_capabilities", [])}
    if AGENT_MULTI_ROLE not in caps:
        out.append("no MULTI_ROLE capability: hidden from every MULTI_ROLE framework (§3.5)")
    sc = {r.get("name"): r.get("scalar", {}).get("value", 0) for r in res if r.get("type") == SCALAR}
    if sc.get("cpus", 0) < 0.01 and sc.get("mem", 0) < 32:
        out.append("below --min_allocatable_resources (cpus:0.01|mem:32): never offered (§0.9)")
    return out


def check_framework_info(fw):
    """framework::validate as used by message::reregisterSlave (§2.4)."""
    caps = {c.get("type") for c in fw.get("capabilities", [])}
    if FW_MULTI_ROLE in caps and "role" in fw:
        return "MULTI_ROLE FrameworkInfo %s has `role` set" % idv(fw.get("id"))
    if FW_MULTI_ROLE not in caps and fw.get("roles"):
        return "non-MULTI_ROLE FrameworkInfo %s has `roles` set" % idv(fw.get("id"))
    for role in fw.get("roles", []) + ([fw["role"]] if "role" in fw else []):
        if role in ("", ".", "..") or role.startswith("-") or any(c in role for c in " \t\n\\"):
            return "invalid role %r" % role
    if "id" in fw:
        why = check_id(idv(fw["id"]), "FrameworkInfo.id")
        if why:
            return why
    ft = fw.get("failover_timeout", 0.0)
    if math.isnan(ft) or math.isinf(ft) or ft < 0:
        return "invalid failover_timeout %r" % ft
    return None


def check_reregistration(msg):
    """message::reregisterSlave beyond the shared rules: frameworks, executors, tasks (§2.4). -> reason|None."""
    slave_id = idv(msg["slave"].get("id"))
    fids = set()
    for fw in msg.get("frameworks", []):
        why = check_framework_info(fw)
        if why:
            return why
        if "id" in fw:
            fid = idv(fw["id"])
            if fid in fids:
                return "framework %s reported twice" % fid
            fids.add(fid)
    execs = set()
    for ex in msg.get("executor_infos", []):
        eid = idv(ex.get("executor_id"))
        etype = ex.get("type")
        if etype == 1 and "command" in ex:
            return "DEFAULT executor %s has a command" % eid
        if etype == 2 and "command" not in ex:
            return "CUSTOM executor %s has no command" % eid
        why = check_resources(ex.get("resources"), "resources of executor %s" % eid)
        if why:
            return why
        if "framework_id" in ex:
            fid = idv(ex["framework_id"])
            if fid not in fids:
                return "executor %s belongs to unreported framework %s" % (eid, fid)
            if (fid, eid) in execs:
                return "executor %s reported twice for framework %s" % (eid, fid)
            execs.add((fid, eid))
    for t in msg.get("tasks", []):
        tid = idv(t.get("task_id"))
        why = check_id(tid, "TaskID")
        if why:
            return why
        if idv(t.get("slave_id")) != slave_id:
            return "task %s has slave_id %s, not the agent's %s" % (tid, idv(t.get("slave_id")), slave_id)
        fid = idv(t.get("framework_id"))
        if fid not in fids:
            return "task %s belongs to unreported framework %s" % (tid, fid)
        if "executor_id" in t and t.get("state") == TASK_RUNNING and (fid, idv(t["executor_id"])) not in execs:
            return ("RUNNING task %s names executor %s, which is not in executor_infos (leave executor_id "
                    "out for command tasks, §3.12)" % (tid, idv(t["executor_id"])))
        why = check_resources(t.get("resources"), "resources of task %s" % tid)
        if why:
            return why
    return None


def reregistration_crashes(msg, agent_caps, adds_tasks):
    """CHECK/FATAL triggers of §2.11 in a ReregisterSlaveMessage that passed validation. `adds_tasks`
    is True for cases B/C (the master builds its Slave from the message). -> list of reasons."""
    out = []
    frameworks = {idv(f["id"]): f for f in msg.get("frameworks", []) if "id" in f}
    for fw in msg.get("frameworks", []):
        if "id" not in fw:
            out.append("FrameworkInfo without id in re-registration (CHECK in updateSlaveFrameworks)")
    for ex in msg.get("executor_infos", []):
        if "framework_id" not in ex:
            out.append("ExecutorInfo %s without framework_id (CHECK in %s)" % (
                idv(ex.get("executor_id")), "Slave constructor" if adds_tasks else "reconcileKnownSlave"))
    if not adds_tasks:
        return out
    seen = set()
    for t in msg.get("tasks", []):
        fid, tid = idv(t.get("framework_id")), idv(t.get("task_id"))
        if (fid, tid) in seen:
            out.append("task %s reported twice for framework %s (CHECK in Slave::addTask)" % (tid, fid))
        seen.add((fid, tid))
        if t.get("state") == TASK_UNREACHABLE:
            out.append("task %s in TASK_UNREACHABLE (CHECK in Slave::addTask)" % tid)
        if not t.get("resources"):
            out.append("task %s has no resources (master JSON dereferences the first one)" % tid)
    holders = [("task %s" % idv(t.get("task_id")), idv(t.get("framework_id")), t.get("resources", []))
               for t in msg.get("tasks", [])]
    holders += [("executor %s" % idv(e.get("executor_id")), idv(e.get("framework_id")), e.get("resources", []))
                for e in msg.get("executor_infos", [])]
    for what, fid, resources in holders:
        if all("allocation_info" in r for r in resources):
            continue
        if AGENT_MULTI_ROLE in agent_caps:
            out.append("%s resources lack allocation_info on a MULTI_ROLE agent (CHECK in Slave::addTask)" % what)
        else:
            fw = frameworks.get(fid, {})
            caps = {c.get("type") for c in fw.get("capabilities", [])}
            if FW_MULTI_ROLE in caps and len(fw.get("roles", [])) != 1:
                out.append("%s resources lack allocation_info and framework %s has %d roles (LOG(FATAL))"
                           % (what, fid, len(fw.get("roles", []))))
    return out + checkpoint_crashes(msg.get("checkpointed_resources", []))


def checkpoint_crashes(resources):
    """The master-side Slave constructor applies checkpointed resources and CHECKs that each is a dynamic
    reservation or a persistent volume (applyCheckpointedResources, §2.11). -> list of reasons."""
    return ["checkpointed resource %s is neither a reservation nor a volume (applyCheckpointedResources)"
            % r.get("name") for r in resources or []
            if not (r.get("reservations") or "reservation" in r or "disk" in r)]


def tasks_lacking_allocation_info(msg):
    """Ids of reported tasks whose resources lack allocation_info (a case-A warning)."""
    return [idv(t.get("task_id")) for t in msg.get("tasks", [])
            if not all("allocation_info" in r for r in t.get("resources", []))]
