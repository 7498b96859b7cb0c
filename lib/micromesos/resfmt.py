# A resource's Mesos text form, for logs and the web UI. MIT licence. A module of its own: /state (webstate)
# and the boot log line need only this, not the rest of resources.py (resources.fmt still finds it here).
# Not resident: dropped with the views (endpoints) and with the runner's occasional code (tasks.drop_code).


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
