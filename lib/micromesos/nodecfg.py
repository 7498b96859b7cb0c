# A node's JSON config (the node side of issue 11, docs/GATEWAY.md §8): its keys, defaults and ranges, checked by
# config.values() like the agent's. MIT licence. Boot only: firmware/node_main.py imports it and drops it after.

from . import drop
from .errors import ConfigError

# key: (default, kind[, lo, hi]) as config._SCHEMA. Durations in ms: a test scales them all the same way.
_SCHEMA = {
    "gateway": (None, "addr"),         # "ip:port" of the gateway's link socket (transport udp; required)
    "transport": ("udp", "str"),       # the link's transport (LINK.md §6): udp, uart or espnow
    "uart": (None, "str"),             # transport uart: a UART id ("1") on a board, a tty path on the unix port
    "baud": (115200, "int", 1200, 4000000),
    "gateway_mac": (None, "str"),      # transport espnow: the gateway's MAC, "aa:bb:cc:dd:ee:ff"
    "link_key": (None, "str"),         # 32..128 hex digits: keyed link, session keys, tags, counters (LINK.md §8)
    "name": (None, "str"),             # the node's stable identity: 1..32 of A-Z a-z 0-9 . _ - (required)
    "ip": ("0.0.0.0", "ip"),           # local address the link's socket binds
    "ntp_host": ("pool.ntp.org", "str"),  # transport udp on a Wi-Fi board: the clock for status update timestamps
    "wake_ms": (60000, "int", 0, 86400000),   # W: wakes every W ms (0: never sleeps; LINK.md §3.1)
    "listen_ms": (200, "int", 1, 600000),     # A: listens at least A ms after each wake
    "ack_wait_ms": (500, "int", 0, 600000),   # stays awake up to this past A while a status update awaits its ack
    "mtu": (512, "int", 64, 1400),     # max_frame: the largest frame taken (ESP-NOW 250, LINK.md §2)
    "window": (2, "int", 1, 8),        # out-of-order frames kept (receive window)
    "max_message": (2048, "int", 256, 32768),  # the largest message put together from fragments (LINK.md §4.6)
    "link_rto_ms": (300, "int", 10, 60000),     # the link's first retransmission timeout (LINK.md §4.4)
    "link_rto_max_ms": (4000, "int", 10, 600000),
    "max_tasks": (8, "int", 1, 32),    # task records held (running + terminal awaiting their ack)
    "resources": ({}, "res"),
    "attributes": ({}, "attr"),
    "log_level": ("info", "level"),
    "state_dir": ("state", "str"),
    "tasks_dir": ("tasks", "str"),
    "frozen_tasks": ("hello,thermo,blink", "str"),
    "task_slice_ms": (200, "int", 1, 600000),
    "fetch_max_bytes": (65536, "int", 1, 16777216),
    "heap_reserve": (8192, "int", 0, 16777216),  # bytes of heap kept for the node (not offered as mem)
    "status_update_retry_min": (10.0, "num"),  # seconds (PROTOCOL.md §2.7), as the agent's
    "status_update_retry_max": (600.0, "num"),
    "fs": (None, "str"),
    "seed": (None, "int", 0, 0x3FFFFFFF),
    "require_pinned_uris": (False, "bool"),
    "allowed_modules": (None, "str"),
}
TRANSPORTS = ("udp", "uart", "espnow")


def _name_ok(s):
    if not 0 < len(s) <= 32:
        return False
    for c in s:
        if not (c.isalpha() or c.isdigit() or c in "._-") or ord(c) > 127:
            return False
    return True


def check(raw):
    """A node config dict: defaults filled in, every value checked; ConfigError names the first bad key."""
    from . import config

    try:
        return _more(config.values(raw, _SCHEMA))
    finally:
        drop("micromesos.config")


def load(path):
    """Read and check a node config file (config.load's syntax checks); ConfigError names the key."""
    from . import config

    try:
        return _more(config.load(path, wifi=False, keys=_SCHEMA))
    finally:
        drop("micromesos.config")


def _more(cfg):
    if cfg["name"] is None or not _name_ok(cfg["name"]):
        raise ConfigError("name: expected 1..32 of A-Z a-z 0-9 . _ - (the node's identity at the gateway), got %r"
                          % (cfg["name"],))
    if cfg["transport"] not in TRANSPORTS:
        raise ConfigError("transport: expected one of %s, got %r" % (", ".join(TRANSPORTS), cfg["transport"]))
    if cfg["transport"] == "udp" and cfg["gateway"] is None:
        raise ConfigError("gateway: missing; set it to the gateway's link address \"ip:port\"")
    if cfg["transport"] == "uart" and not cfg["uart"]:
        raise ConfigError("uart: missing; set it to the UART id (\"1\") or, on the unix port, a tty path")
    if cfg["transport"] == "espnow":
        m = mac(cfg["gateway_mac"])
        if m is None:
            raise ConfigError("gateway_mac: expected the gateway's MAC as \"aa:bb:cc:dd:ee:ff\", got %r"
                              % (cfg["gateway_mac"],))
        if cfg["mtu"] > 250:
            raise ConfigError("mtu: %d is over ESP-NOW's 250-byte frames" % cfg["mtu"])
        cfg["gateway_mac"] = m  # the 6 bytes the radio takes
    if cfg["wake_ms"] and cfg["listen_ms"] > cfg["wake_ms"]:
        raise ConfigError("listen_ms: %d is longer than wake_ms (%d)" % (cfg["listen_ms"], cfg["wake_ms"]))
    if cfg["link_key"] is not None:
        from .linkauth import key_bytes

        k = key_bytes(cfg["link_key"])
        if k is None:
            raise ConfigError("link_key: expected 32..128 hex digits (16..64 bytes), the gateway's link_keys entry")
        cfg["link_key"] = k
    if cfg["link_rto_max_ms"] < cfg["link_rto_ms"]:
        raise ConfigError("link_rto_max_ms: %d is less than link_rto_ms (%d)" % (cfg["link_rto_max_ms"],
                                                                               cfg["link_rto_ms"]))
    return cfg


def mac(s):
    """The 6 bytes of "aa:bb:cc:dd:ee:ff", or None."""
    parts = s.split(":") if isinstance(s, str) else ()
    if len(parts) != 6:
        return None
    try:
        b = bytes(int(h, 16) for h in parts)
    except ValueError:
        return None
    return b if all(len(h) == 2 for h in parts) else None
