# Agent.__init__'s, Libprocess.__init__'s and Libprocess.start's bodies: set once at boot. MIT licence. agent.py
# and libprocess.py import this module for that call and drop it after (as registrar.py), so its code is not in
# RAM once the agent runs, nor next to the registrar's while a registration is built.
import socket
import time

import asyncio
from micropython import const

from .errors import ConfigError

# Config keys sizing the transport's buffers per board: (key, Libprocess attribute, smallest, largest).
# config.check refuses the same (tests/test_config.py checks they agree); sizes() for a cfg that skipped it.
_SIZES = (("recv_buffer", "recv_size", 1024, 65536), ("outbox_size", "outbox_size", 512, 65536),
          ("max_connections", "max_conns", 2, 8))
_DEFAULT_PING_TIMEOUT_MS = const(75000)  # DEFAULT_MASTER_PING_TIMEOUT (§2.2; registrar.py's too)
_RECOVERING = const(0)  # the agent's state until Agent.start is done (then agent.DISCONNECTED)


def transport(lp, id, ip, port, advertise_ip, advertise_port, cfg):
    """Libprocess.__init__'s body (boot only): its address, UPID and buffer sizes (from cfg, if given)."""
    from . import upid
    from .errors import ProtocolError
    from .listener import Listener

    if not ip:
        raise ConfigError("ip: the address to listen on is required")
    lp.ip = ip
    lp.port = port
    try:
        lp.upid = upid.format(id, advertise_ip or ip, advertise_port or port)
    except ProtocolError as e:
        raise ConfigError("advertise_ip/advertise_port: %s" % e)  # 0.0.0.0 is no UPID (§1.1)
    Listener.__init__(lp, id)
    lp._mid = lp.mid(lp.upid)
    lp._dests = []
    lp._outboxes = []  # a free outbox for the next _Dest (at most one is kept)
    if cfg:
        sizes(lp, cfg)


def listen(lp):
    """Libprocess.start's body once its buffers are made: the listening socket, its accept loop and the
    deadline sweep."""
    from . import log

    s = socket.socket()
    s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(socket.getaddrinfo(lp.ip, lp.port)[0][-1])
    s.listen(lp.max_conns + 2)
    lp._sock = s
    lp._server = asyncio.create_task(lp._accept_loop(s))
    lp._sweeper = asyncio.create_task(lp._sweep())
    log.info("libprocess", "listening as %s", lp.upid)


def sizes(lp, cfg):
    """The Libprocess lp's buffer sizes from cfg (transport() with a cfg calls it). ConfigError for a bad one."""
    for key, attr, lo, hi in _SIZES:
        v = cfg.get(key)
        if v is not None:
            if not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError("%s: expected a whole number %d-%d, got %r" % (key, lo, hi, v))
            setattr(lp, attr, v)


def init(a, cfg, inventory, transport):
    """Agent.__init__'s body: every attribute of the agent but `tasks`. transport: a Libprocess, made
    from cfg when None."""
    # Imported here, not at the top: Libprocess() imports this module for transport() alone (a gateway's).
    from . import boardres  # boot only: not resident (the runner drops it: tasks.drop_code)
    from .libprocess import Libprocess
    from .store import Store
    from .updates import StatusUpdates

    a.cfg = cfg
    a.inv = inventory
    if transport is None:
        transport = Libprocess("slave(1)", cfg["ip"], cfg["port"], cfg["advertise_ip"],
                               cfg["advertise_port"], cfg)
    a.lp = transport
    a.lp.handler = a._on_message
    a.lp.on_link_closed = a._on_link_closed
    a._configured = "master@" + cfg["master"]
    a.master = a._configured  # current master UPID (re-noted on registration)
    # Peer IPs the master's connections may come from: the configured master's, the noted master's.
    a._ip0 = a._ip1 = cfg["master"].rpartition(":")[0]
    a._check_ip = cfg["check_master_ip"]
    a.state = _RECOVERING
    a.slave_id = None
    a.link = None            # inbound connection the master registered us over (§1.5)
    a.ping_timeout_ms = _DEFAULT_PING_TIMEOUT_MS
    a.last_ping = time.ticks_ms()
    a.frameworks = {}        # framework id -> raw FrameworkInfo bytes, echoed verbatim
    a.checkpointed = []      # raw Resource bytes from CheckpointResourcesMessage
    a.fresh_registration = False
    a.drain_config = None    # DrainConfig dict while draining (drain.py): launches are refused
    a.authenticated = False  # the master took our SASL exchange (only with a credential)
    a.authentications = 0    # attempts so far: N of crammd5-authenticatee(N)
    a.started_ms = time.ticks_ms()
    # Keywords: interned names, so the keys are no strings of this module's, which is dropped (config._SCHEMA).
    a.counters = dict(registrations=0, reregistrations=0, pings=0, dropped=0, disconnects=0, invalid=0)
    fs = inventory.fs.rstrip("/")
    a.store = Store((fs + "/" if fs else "/") + cfg["state_dir"])
    a.updates = StatusUpdates(a, a.store, cfg["status_update_retry_min"], cfg["status_update_retry_max"])
    a._registered = asyncio.Event()  # set while RUNNING (agent._run)
    a.totals = boardres.measure(inventory, cfg)
    a.attributes = boardres.attributes(inventory, cfg)
