# Board inventory -> Mesos resources and attributes (PROTOCOL.md §4); leases handed to tasks.
# MIT licence. Values here: float (SCALAR), tuple of str (SET), list of (begin, end) (RANGES), str (TEXT).
import gc
import os
import sys

from . import schema

_MB = 1048576


def __getattr__(name):
    # SlaveInfo's Resource and Attribute dicts are built for registration only: in registrar.py, which the
    # agent drops after each use. The names still work here (tools and tests); each imports registrar.py.
    if name in ("to_resource", "to_attribute"):
        from . import registrar

        return getattr(registrar, name)
    raise AttributeError(name)


# --- parsing the Mesos "--resources" / "--attributes" syntax -----------------------------------

def _ranges(s):
    out = []
    for part in s.strip()[1:-1].split(","):
        part = part.strip()
        if not part:
            continue
        b, _, e = part.partition("-")
        b = int(b)
        e = int(e) if e else b
        if e < b or b < 0:
            raise ValueError("bad range %r" % part)
        out.append((b, e))
    out.sort()
    for i in range(1, len(out)):
        if out[i][0] <= out[i - 1][1]:
            raise ValueError("overlapping ranges in %r" % s)
    return out


def _items(s):
    items = tuple(x.strip() for x in s.strip()[1:-1].split(",") if x.strip())
    if len(set(items)) != len(items):
        raise ValueError("duplicate set items in %r" % s)
    return items


def _value(name, v, text_ok):
    if isinstance(v, bool):
        raise ValueError("%s: booleans are not resource values" % name)
    if isinstance(v, (int, float)):
        return _scalar(name, v)
    if isinstance(v, (list, tuple)):
        return _items("{" + ",".join(str(x) for x in v) + "}")
    s = str(v).strip()
    if s.startswith("[") and s.endswith("]"):
        return _ranges(s)
    if s.startswith("{") and s.endswith("}"):
        return _items(s)
    try:
        x = float(s)
    except ValueError:
        if text_ok:
            return s
        raise ValueError("%s: %r is not a number, {set} or [ranges]" % (name, s))
    return _scalar(name, x)


def _scalar(name, x):
    x = float(x)
    # Mesos keeps 3 decimals; a non-zero value that rounds to 0 voids the whole registration (§0.10).
    if x < 0 or (x != 0 and x < 0.0005):
        raise ValueError("%s: %s is negative or rounds to 0 at 3 decimals" % (name, x))
    return x


def _pairs(spec, text_ok):
    if isinstance(spec, dict):
        pairs = list(spec.items())
    else:
        pairs = []
        for part in spec.split(";"):
            if not part.strip():
                continue
            name, sep, v = part.partition(":")
            if not sep or not name.strip():
                raise ValueError("expected name:value, got %r" % part)
            pairs.append((name.strip(), v))
    out = []
    for name, v in pairs:
        if "(" in name:
            raise ValueError("%s: reserved roles are not supported on the agent" % name)
        out.append((name, _value(name, v, text_ok)))
    return out


def parse(spec):
    """'cpus:1;mem:64;gpio:[2-5];temperature:{temp0}' or a dict -> [(name, value)]."""
    return _pairs(spec, False)


def parse_attributes(spec):
    """'rack:lab1;floor:2' or a dict -> [(name, value)]; non-numbers are TEXT."""
    return _pairs(spec, True)


def collapse(numbers):
    """[2, 3, 4, 5, 12, 13] -> [(2, 5), (12, 13)]."""
    out = []
    for n in sorted(numbers):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


# --- measuring the board --------------------------------------------------------------------------

def _mb(nbytes):
    return round(max(nbytes, 0) / _MB, 3)


def measure(inv, cfg):
    """[(name, value)] measured from the board, then overridden/extended by cfg["resources"]."""
    gc.collect()
    res = [("cpus", 1.0),  # one cooperative core; >= 0.01 cpus keeps the agent offerable (§0.9)
           ("mem", _mb(gc.mem_free() - cfg["heap_reserve"]))]
    try:
        st = os.statvfs(inv.fs)
        res.append(("disk", _mb(st[0] * st[4])))
    except OSError:
        pass
    for group in (inv.sensors, inv.actuators):
        for kind in sorted(group):
            res.append((kind, tuple(sorted(group[kind]))))
    if inv.gpio:
        res.append(("gpio", collapse(inv.gpio)))
    return _merge(res, cfg["resources"])


def _merge(base, extra):
    out = list(base)
    for name, v in extra:
        for i in range(len(out)):
            if out[i][0] == name:
                out[i] = (name, v)
                break
        else:
            out.append((name, v))
    return out


def attributes(inv, cfg):
    impl = sys.implementation
    mpy = getattr(impl, "_mpy", 0)
    base = [("board", inv.board), ("arch", inv.arch),
            ("micropython", "%d.%d.%d" % impl.version[:3])]
    if mpy:
        # The .mpy version this firmware loads: major.minor, e.g. 6.3 (tasks compiled by mpy-cross).
        base.append(("mpy_version", float("%d.%d" % (mpy & 0xFF, (mpy >> 8) & 3))))
    base = _merge(base, sorted(inv.attributes.items()))
    return _merge(base, cfg["attributes"])


# --- to and from the wire -----------------------------------------------------------------------

def from_resource(r):
    """(name, value) from a decoded Resource dict (raw=False)."""
    t = r["type"]
    if t == schema.SCALAR:
        return r["name"], float(r["scalar"]["value"])
    if t == schema.SET:
        return r["name"], tuple(r.get("set", {}).get("item", ()))
    if t == schema.RANGES:
        return r["name"], [(x["begin"], x["end"]) for x in r.get("ranges", {}).get("range", ())]
    raise ValueError("%s: unsupported resource type %d" % (r["name"], t))


def fmt(name, v):
    """Mesos text form for logs and the web UI: cpus:1, sensors:{a,b}, gpio:[2-5]."""
    if isinstance(v, float):
        s = ("%.3f" % v).rstrip("0").rstrip(".")
    elif isinstance(v, tuple):
        s = "{" + ",".join(v) + "}"
    elif isinstance(v, list):
        s = "[" + ",".join("%d-%d" % r for r in v) + "]"
    else:
        s = str(v)
    return name + ":" + s


# --- leases: what is handed to running tasks ----------------------------------------------------

def _millis(x):
    return int(x * 1000 + 0.5)  # Mesos fixed point: llround(v * 1000) (§4.1)


class Leases:
    """Free/used bookkeeping so a task gets only what the board has and nobody else holds."""

    def __init__(self, totals):
        self.totals = totals
        self.used = {}  # owner -> [(name, value)]

    def _used(self, name):
        acc = []
        for grant in self.used.values():
            for n, v in grant:
                if n == name:
                    acc.append(v)
        return acc

    def shortfall(self, wanted):
        """None if every (name, value) fits in what is free, else a reason naming the resource."""
        for name, v in wanted:
            total = None
            for n, t in self.totals:
                if n == name:
                    total = t
            if total is None:
                return "the board has no resource %r" % name
            used = self._used(name)
            if isinstance(v, float):
                if _millis(v) + sum(_millis(u) for u in used) > _millis(total):
                    return "%s: asked %s, free %s" % (name, v, (_millis(total) - sum(_millis(u) for u in used)) / 1000)
            elif isinstance(v, tuple):
                held = set(i for u in used for i in u)
                for item in v:
                    if item not in total or item in held:
                        return "%s: %s is not free on this board" % (name, item)
            else:
                for b, e in v:
                    if not any(tb <= b and e <= te for tb, te in total):
                        return "%s: [%d-%d] is not on this board" % (name, b, e)
                    for u in used:
                        for ub, ue in u:
                            if b <= ue and ub <= e:
                                return "%s: [%d-%d] is already leased" % (name, b, e)
        return None

    def grant(self, owner, wanted):
        self.used[owner] = wanted

    def release(self, owner):
        self.used.pop(owner, None)
