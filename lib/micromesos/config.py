# The device's JSON config: defaults, types and ranges checked once at boot.
# MIT licence. A bad value raises ConfigError naming the key; Wi-Fi credentials live in wifi.json, not here.
import json

from micropython import const

from .errors import ConfigError

# key: (default, kind). Kinds: "upid-addr" ip:port, "port", "ip", "str", "num", "res" (Mesos
# resource string or {name: value}), "attr" (string "k:v;k:v" or {name: value}), "bool", "host" (a
# DNS name or IPv4 address).
_SCHEMA = {
    "master": (None, "addr"),          # "ip:port" of the leading mesos-master (required)
    "check_master_ip": (True, "bool"),  # the master's messages must come from its IP (false: NAT)
    "ip": ("0.0.0.0", "ip"),          # address the listener binds
    "port": (5051, "port"),            # listener port, also SlaveInfo.port
    "advertise_ip": (None, "ip"),      # address the master must reach (NAT; PROTOCOL.md §1.7)
    "advertise_port": (None, "port"),
    "resources": ({}, "res"),          # override or add resources, e.g. "mem:64;sensors:{a,b}"
    "attributes": ({}, "attr"),        # add attributes, e.g. "rack:lab1"
    "log_level": ("info", "level"),
    "state_dir": ("state", "str"),     # under the board's fs root
    "tasks_dir": ("tasks", "str"),
    "frozen_tasks": ("hello,thermo,blink", "str"),  # task modules looked for among frozen ones (fetch.find)
    "task_slice_ms": (200, "int"),     # a task step longer than this fails the task (tasks.py fairness)
    "fetch_max_bytes": (65536, "int"),  # largest CommandInfo.URI file fetched into tasks_dir
    "recv_buffer": (2048, "int"),      # bytes per inbound connection: the largest message taken (libprocess)
    "outbox_size": (1024, "int"),      # bytes of small messages queued per destination (larger ones stream)
    "max_connections": (3, "int"),     # inbound connections served at once (each holds a recv_buffer)
    "heap_reserve": (24576, "int"),    # bytes of heap kept for the agent itself (not offered as mem)
    "registration_backoff_factor": (1.0, "num0"),  # seconds (PROTOCOL.md §2.3); 0: no initial wait
    "registration_backoff_max": (60.0, "num"),
    "ping_timeout": (None, "num"),     # seconds; overrides the master's total_ping_timeout_seconds
    "status_update_retry_min": (10.0, "num"),     # seconds (§2.7)
    "status_update_retry_max": (600.0, "num"),
    "fs": (None, "str"),               # board filesystem root (virtual boards)
    "seed": (None, "int"),             # simulated sensors (unix board)
    "ntp_host": ("pool.ntp.org", "host"),  # clock source (ntptime.host); an IP skips DNS (no-internet labs)
}
_MAX_CRED = const(128)  # wifi.json values, bytes: an SSID is <= 32, a WPA2 passphrase <= 63


def _ip_ok(s):
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isdigit() or int(p) > 255:
            return False
    return True


def _host_ok(s):
    # RFC 1123 host name or IPv4 literal: letters, digits, hyphens in dot-separated labels.
    if not 0 < len(s) <= 253:
        return False
    for label in s.split("."):
        if not 0 < len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return False
        for c in label:
            if not (c.isalpha() or c.isdigit() or c == "-") or ord(c) > 127:
                return False
    return True


def _check(key, kind, v):
    if kind == "addr":
        if isinstance(v, str) and ":" in v:
            host, _, port = v.rpartition(":")
            if _ip_ok(host) and host != "0.0.0.0" and port.isdigit() and 0 < int(port) < 65536:
                return v
        raise ConfigError("%s: expected \"a.b.c.d:port\" (an IPv4 address), got %r" % (key, v))
    if kind == "ip":
        if isinstance(v, str) and _ip_ok(v):
            return v
        raise ConfigError("%s: expected an IPv4 address \"a.b.c.d\", got %r" % (key, v))
    if kind == "port":
        if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 65536:
            return v
        raise ConfigError("%s: expected a port number 1-65535, got %r" % (key, v))
    if kind == "int":
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return v
        raise ConfigError("%s: expected a whole number >= 0, got %r" % (key, v))
    if kind == "num":
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
        raise ConfigError("%s: expected a positive number, got %r" % (key, v))
    if kind == "num0":
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
            return float(v)
        raise ConfigError("%s: expected a number >= 0, got %r" % (key, v))
    if kind == "bool":
        if isinstance(v, bool):
            return v
        raise ConfigError("%s: expected true or false, got %r" % (key, v))
    if kind == "host":
        if isinstance(v, str) and _host_ok(v):
            return v
        raise ConfigError("%s: expected a host name or IPv4 address, got %r" % (key, v))
    if kind == "str":
        if isinstance(v, str) and v:
            return v
        raise ConfigError("%s: expected a non-empty string, got %r" % (key, v))
    if kind == "level":
        if v in ("error", "warn", "warning", "info", "debug"):
            return v
        raise ConfigError("%s: expected one of error, warn, info, debug, got %r" % (key, v))
    if kind in ("res", "attr"):
        if isinstance(v, (str, dict)):
            return v
        raise ConfigError("%s: expected a string like \"name:value;...\" or an object, got %r" % (key, v))
    raise ConfigError("%s: unknown kind %s" % (key, kind))


def check(raw):
    """Defaults filled in and every value checked; ConfigError names the first bad key."""
    if not isinstance(raw, dict):
        raise ConfigError("config: expected a JSON object")
    for k in raw:
        if k not in _SCHEMA:
            raise ConfigError("%s: unknown key (known: %s)" % (k, ", ".join(sorted(_SCHEMA))))
    cfg = {}
    for k, (default, kind) in _SCHEMA.items():
        v = raw.get(k)
        cfg[k] = default if v is None else _check(k, kind, v)
    if cfg["master"] is None:
        raise ConfigError("master: missing; set it to the mesos-master's \"ip:port\"")
    # Resource and attribute strings are parsed here so a typo fails at boot, not at registration.
    from . import resources

    try:
        cfg["resources"] = resources.parse(cfg["resources"])
    except ValueError as e:
        raise ConfigError("resources: %s" % e)
    try:
        cfg["attributes"] = resources.parse_attributes(cfg["attributes"])
    except ValueError as e:
        raise ConfigError("attributes: %s" % e)
    return cfg


def load(path="config.json", overrides=None):
    """Read and check the config file; `overrides` (e.g. from a command line) win over the file."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError:
        raise ConfigError("%s: cannot read the config file" % path)
    except ValueError as e:
        raise ConfigError("%s: not valid JSON (%s)" % (path, e))
    if overrides and isinstance(raw, dict):
        raw.update(overrides)
    return check(raw)


def wifi(path):
    """(ssid, password) from wifi.json; ConfigError names the file and key."""
    try:
        with open(path) as f:
            raw = f.read(1024)
        w = json.loads(raw)
    except OSError:
        raise ConfigError('%s: cannot read it (needs {"ssid": "...", "password": "..."})' % path)
    except ValueError:
        raise ConfigError("%s: not valid JSON" % path)
    if not isinstance(w, dict):
        raise ConfigError("%s: expected a JSON object" % path)
    ssid = w.get("ssid")
    pw = w.get("password", "")
    if not isinstance(ssid, str) or not 0 < len(ssid) <= _MAX_CRED:
        raise ConfigError("ssid: expected a non-empty string in %s" % path)
    if not isinstance(pw, str) or len(pw) > _MAX_CRED:
        raise ConfigError("password: expected a string in %s" % path)
    return ssid, pw
