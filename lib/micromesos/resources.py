# Mesos resources in the agent's form (PROTOCOL.md §4): decoded from the wire, formatted, leased to tasks.
# MIT licence. Values here: float (SCALAR), tuple of str (SET), list of (begin, end) (RANGES), str (TEXT).
# Not resident: imported by a launch (and config.py at boot), and dropped after (tasks.drop_code). Small,
# as those peaks carry it: the boot-only half (parsing the config, measuring the board) is boardres.py.
from . import schema
from micropython import const
_RANGES = const(1)  # schema.RANGES
_SCALAR = const(0)  # schema.SCALAR
_SET = const(2)  # schema.SET


def __getattr__(name):
    # The names of the other halves still work here (config, tools and tests), each importing its module:
    # fmt (resfmt.py); SlaveInfo's Resource and Attribute dicts (registrar.py, registration only); parse,
    # parse_attributes, collapse, measure, attributes (boardres.py, boot only).
    if name[:2] == "__":
        raise AttributeError(name)
    if name == "fmt":  # resfmt.py: /state needs it without the rest of this module
        from .resfmt import fmt

        return fmt
    if name in ("to_resource", "to_attribute"):
        from . import registrar

        return getattr(registrar, name)
    from . import boardres

    v = getattr(boardres, name, None)
    if v is None:
        raise AttributeError(name)
    return v


# --- to and from the wire -----------------------------------------------------------------------

def from_resource(r):
    """(name, value) from a decoded Resource dict (raw=False)."""
    t = r["type"]
    if t == _SCALAR:
        return r["name"], float(r["scalar"]["value"])
    if t == _SET:
        return r["name"], tuple(r.get("set", {}).get("item", ()))
    if t == _RANGES:
        return r["name"], [(x["begin"], x["end"]) for x in r.get("ranges", {}).get("range", ())]
    raise ValueError("%s: unsupported resource type %d" % (r["name"], t))


# --- leases: what is handed to running tasks (the bookkeeping is tasks.Leases) --------------------

def _millis(x):
    return int(x * 1000 + 0.5)  # Mesos fixed point: llround(v * 1000) (§4.1)


def shortfall(totals, used, wanted):
    """None if every (name, value) of `wanted` fits in what is free, else a reason naming the resource.
    totals: [(name, value)] of the board; used: {owner: [(name, value)]} granted (tasks.Leases)."""
    for name, v in wanted:
        total = None
        for n, t in totals:
            if n == name:
                total = t
        if total is None:
            return "the board has no resource %r" % name
        held = [u for grant in used.values() for n, u in grant if n == name]
        if isinstance(v, float):
            if _millis(v) + sum(_millis(u) for u in held) > _millis(total):
                return "%s: asked %s, free %s" % (name, v, (_millis(total) - sum(_millis(u) for u in held)) / 1000)
        elif isinstance(v, tuple):
            items = set(i for u in held for i in u)
            for item in v:
                if item not in total or item in items:
                    return "%s: %s is not free on this board" % (name, item)
        else:
            for b, e in v:
                if not any(tb <= b and e <= te for tb, te in total):
                    return "%s: [%d-%d] is not on this board" % (name, b, e)
                for u in held:
                    for ub, ue in u:
                        if b <= ue and ub <= e:
                            return "%s: [%d-%d] is already leased" % (name, b, e)
    return None
