# The device's JSON config: strict JSON syntax, defaults, types and ranges checked once at boot.
# MIT licence. A bad value raises ConfigError naming the key (bad syntax: line and column); Wi-Fi: wifi.json.
import json

from micropython import const

from .errors import ConfigError

# key: (default, kind) or, for "int", (default, "int", lo, hi). Kinds: "addr" ip:port, "port", "ip", "str",
# "num" (> 0), "num0" (>= 0), "int", "res" (Mesos resource string or {name: value}), "attr" (string "k:v;k:v"
# or {name: value}), "bool", "level", "host" (a DNS name or IPv4 address).
# Keyword arguments, not a {"key": ...} literal: the names are interned (qstrs), so the config the agent keeps
# holds no string object of this module's once it is dropped (a loaded .mpy's long string constants would stay
# alive as its keys: the agent's data heap after registration is 0.5 KB smaller on the 32-bit device model).
_SCHEMA = dict(
    master=(None, "addr"),          # "ip:port" of the leading mesos-master (required)
    check_master_ip=(True, "bool"),  # the master's messages must come from its IP (false: NAT)
    ip=("0.0.0.0", "ip"),          # address the listener binds
    port=(5051, "port"),            # listener port, also SlaveInfo.port
    advertise_ip=(None, "ip"),      # address the master must reach (NAT; PROTOCOL.md §1.7)
    advertise_port=(None, "port"),
    resources=({}, "res"),          # override or add resources, e.g. "mem:64;sensors:{a,b}"
    attributes=({}, "attr"),        # add attributes, e.g. "rack:lab1"
    log_level=("info", "level"),
    log_rate=(20, "int", 0, 1000),  # lines a second the console prints; more are counted, not shown (0: all)
    state_dir=("state", "str"),     # under the board's fs root
    tasks_dir=("tasks", "str"),
    frozen_tasks=("hello,thermo,blink", "str"),  # task modules looked for among frozen ones (fetch.find)
    task_slice_ms=(200, "int", 1, 600000),  # a task step longer than this fails the task (steps.Watch)
    fetch_max_bytes=(65536, "int", 1, 16777216),  # largest CommandInfo.URI file fetched into tasks_dir
    # The next three: agentinit.py's _SIZES ranges (it raises at agent start; here they fail the boot).
    recv_buffer=(2048, "int", 1024, 65536),  # bytes per inbound connection: the largest message taken
    outbox_size=(512, "int", 512, 65536),    # bytes of small messages queued per destination (pongs)
    max_connections=(3, "int", 2, 8),        # inbound connections served at once (each a recv_buffer)
    heap_reserve=(24576, "int", 0, 16777216),  # bytes of heap kept for the agent (not offered as mem)
    registration_backoff_factor=(1.0, "num0"),  # seconds (PROTOCOL.md §2.3); 0: no initial wait
    registration_backoff_max=(60.0, "num"),
    ping_timeout=(None, "num"),     # seconds; overrides the master's total_ping_timeout_seconds
    status_update_retry_min=(10.0, "num"),     # seconds (§2.7)
    status_update_retry_max=(600.0, "num"),
    fs=(None, "str"),               # board filesystem root (virtual boards)
    seed=(None, "int", 0, 0x3FFFFFFF),  # simulated sensors (unix board)
    ntp_host=("pool.ntp.org", "host"),  # clock source (ntptime.host); an IP skips DNS (no-internet labs)
    # Agent authentication (SASL CRAM-MD5, authn.py): the `mesos-agent --credential` JSON file, under fs
    # unless absolute; the secret stays in that file, never in this config. Timeouts: seconds (§7).
    credential=(None, "str"),
    authentication_backoff_factor=(1.0, "num0"),
    authentication_timeout_min=(5.0, "num"),
    authentication_timeout_max=(60.0, "num"),
    # Task code integrity (launch.py): refuse URIs without a #sha256= pin; the modules frameworks may
    # launch, "a,b" (absent: any).
    require_pinned_uris=(False, "bool"),
    allowed_modules=(None, "str"),
)
_MAX_CRED = const(128)  # wifi.json values, bytes: an SSID is <= 32, a WPA2 passphrase <= 63
_MAX_FILE = const(8192)  # bytes of config.json read; a config is a few hundred


def _ip_ok(s, any_ok=True):
    # A dotted quad as upid.ipv4_ok takes it (no leading zeros, not 0.0.0.0), or 0.0.0.0 to bind to.
    if not isinstance(s, str):
        return False
    if s == "0.0.0.0":
        return any_ok
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isdigit() or int(p) > 255 or (p[0] == "0" and p != "0"):
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


def _check(key, spec, v):
    # One raise for every kind: each kind only says what it expected (RAM: one message format, not ten).
    kind = spec[1]
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    whole = num and isinstance(v, int)
    if kind == "addr":
        host, _, port = v.rpartition(":") if isinstance(v, str) else ("", "", "")
        ok = _ip_ok(host, False) and port.isdigit() and 0 < int(port) < 65536
        what = '"a.b.c.d:port" (an IPv4 address)'
    elif kind == "ip":  # advertise_ip: not 0.0.0.0 (no UPID, §1.1)
        ok, what = _ip_ok(v, key == "ip"), 'an IPv4 address "a.b.c.d"'
    elif kind == "port":
        ok, what = whole and 0 < v < 65536, "a port number 1-65535"
    elif kind == "int":
        ok, what = whole and spec[2] <= v <= spec[3], "a whole number %d-%d" % (spec[2], spec[3])
    elif kind == "num":
        ok, what = num and v > 0, "a positive number"
    elif kind == "num0":
        ok, what = num and v >= 0, "a number >= 0"
    elif kind == "bool":
        ok, what = isinstance(v, bool), "true or false"
    elif kind == "host":
        ok, what = isinstance(v, str) and _host_ok(v), "a host name or IPv4 address"
    elif kind == "str":
        ok, what = isinstance(v, str) and v != "", "a non-empty string"
    elif kind == "level":
        ok, what = v in ("error", "warn", "warning", "info", "debug"), "one of error, warn, info, debug"
    else:  # "res", "attr"
        ok, what = isinstance(v, (str, dict)), 'a string like "name:value;..." or an object'
    if not ok:
        raise ConfigError("%s: expected %s, got %r" % (key, what, v))
    return float(v) if kind[:3] == "num" else v


def check(raw, wifi=True):
    """Defaults filled in and every value checked; ConfigError names the first bad key. wifi: the board
    has a Wi-Fi interface that supplies the advertised address when "ip" is 0.0.0.0."""
    cfg = values(raw, _SCHEMA)
    if cfg["master"] is None:
        raise ConfigError("master: missing; set it to the mesos-master's \"ip:port\"")
    if cfg["advertise_ip"] is None and cfg["ip"] == "0.0.0.0" and not wifi:
        # Without Wi-Fi nothing learns the address the master must reach (libprocess would fail later).
        raise ConfigError("advertise_ip: missing; \"ip\" is 0.0.0.0 and no Wi-Fi tells the board's address")
    return cfg


def values(raw, keys):
    """raw checked against `keys` (keys as _SCHEMA's: (default, kind[, lo, hi])), defaults filled in,
    "resources"/"attributes" (both in every table) parsed; ConfigError names the first unknown or bad
    key. check() is this for the agent's keys; another program on the board (micromesos.nodecfg) brings
    its own."""
    if not isinstance(raw, dict):
        raise ConfigError("config: expected a JSON object")
    for k in raw:
        if k not in keys:
            raise ConfigError("%s: unknown key (known: %s)" % (k, ", ".join(sorted(keys))))
    cfg = {}
    for k, spec in keys.items():
        v = raw.get(k)
        cfg[k] = spec[0] if v is None else _check(k, spec, v)
    # Resource and attribute strings are parsed here so a typo fails at boot, not at registration. boardres,
    # not the resources shim: the agent measures the board with it right after (the shim would be one more
    # module loaded at boot, and its names interned for good on a board that loads .mpy files).
    from . import boardres

    try:
        cfg["resources"] = boardres.parse(cfg["resources"])
    except ValueError as e:
        raise ConfigError("resources: %s" % e)
    try:
        cfg["attributes"] = boardres.parse_attributes(cfg["attributes"])
    except ValueError as e:
        raise ConfigError("attributes: %s" % e)
    return cfg


def load(path="config.json", overrides=None, wifi=True, keys=None):
    """Read and check the config file; `overrides` (e.g. from a command line) win over the file.
    keys: another program's keys, checked by values() instead of check() (micromesos.nodecfg)."""
    raw = _read(path, _MAX_FILE, "cannot read the config file")
    if overrides and isinstance(raw, dict):
        raw.update(overrides)
    return check(raw, wifi) if keys is None else values(raw, keys)


def _read(path, limit, unreadable):
    # The file's JSON value. MicroPython's json takes trailing commas, a missing ':' and leading zeros
    # without a word, and says only "syntax error": the strict check below finds the place.
    try:
        with open(path, "rb") as f:
            n = f.seek(0, 2)  # one block of the file's size: read(limit + 1) would take limit + 1 first
            if n > limit:
                raise ConfigError("%s: larger than %d bytes" % (path, limit))
            f.seek(0)
            b = f.read(n)
    except OSError:
        raise ConfigError("%s: %s" % (path, unreadable))
    import sys

    from . import jsoncheck  # only for this: its code leaves RAM right after

    try:
        bad = jsoncheck.syntax(b)
    finally:
        del sys.modules["micromesos.jsoncheck"]
        del sys.modules["micromesos"].jsoncheck
    if bad is not None:
        i, why = bad
        raise ConfigError("%s: not valid JSON at line %d column %d: %s" % (
            path, b.count(b"\n", 0, i) + 1, i - b.rfind(b"\n", 0, i), why))
    try:
        return json.loads(b)
    except ValueError as e:  # e.g. a \u escape MicroPython can't decode
        raise ConfigError("%s: not valid JSON (%s)" % (path, e))


def wifi(path):
    """(ssid, password) from wifi.json; ConfigError names the file and key."""
    w = _read(path, 1024, 'cannot read it (needs {"ssid": "...", "password": "..."})')
    if not isinstance(w, dict):
        raise ConfigError("%s: expected a JSON object" % path)
    ssid = w.get("ssid")
    pw = w.get("password", "")
    if not isinstance(ssid, str) or not 0 < len(ssid) <= _MAX_CRED:
        raise ConfigError("ssid: expected a non-empty string in %s" % path)
    if not isinstance(pw, str) or len(pw) > _MAX_CRED:
        raise ConfigError("password: expected a string in %s" % path)
    return ssid, pw
