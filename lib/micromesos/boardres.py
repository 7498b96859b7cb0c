# The board's resources and attributes: the config's --resources / --attributes syntax parsed, the board
# measured (PROTOCOL.md §4). MIT licence. Boot only (config.check, Agent.__init__): imported then and
# dropped after (tasks.drop_code); resources.<name> still reaches every name here.
import gc
import os
import sys

_MB = 1048576


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
