# The gateway process (docs/GATEWAY.md): config, the link hub, one virtual agent per node, the checkpoint,
# run(). MIT licence. `micropython -m mgateway.gateway CONFIG.json` on the unix port.
import gc
import json
import sys
import time

import asyncio

from micromesos import log, upid
from micromesos.errors import ConfigError
from micromesos.link import Link
from micromesos.linkauth import TRAILER, Key, key_bytes

from . import gwstore
from .hub import LinkHub
from .procs import Processes
from .udp import UDPHub
from .vagent import RUNNING, VAgent, unix_time

_W = "gateway"
_STATUS_MS = 60000  # a status line this often

# key: (default, kind). Durations in ms: tests scale them all down together (GATEWAY.md §7).
DEFAULTS = {
    "master": (None, "str"),  # ip:port of the Mesos master
    "ip": ("127.0.0.1", "str"),  # libprocess: the address the master reaches the virtual agents at
    "port": (5051, "int"),
    "advertise_ip": (None, "str"),
    "advertise_port": (None, "int"),
    "link": ("udp", "str"),  # the nodes' transport: "udp", or "espnow" on an ESP32 bridge (LINK.md §6.2, §10)
    "link_ip": ("127.0.0.1", "str"),  # the nodes' UDP link (LINK.md §6.1)
    "link_port": (5052, "int"),
    "checkpoint_dir": ("gateway-state", "str"),
    "max_nodes": (128, "int"),
    "link_keys": (None, "dict"),  # node name -> its key, 32..128 hex digits: tagged frames (LINK.md §8)
    "nodes": (None, "list"),  # the node names that may attach (None: any; LINK.md §8: v1 has no authentication)
    "grace_ms": (None, "int"),  # None: max(2000, wake_ms / 10) per node
    "ping_timeout_ms": (75000, "int"),  # until the master says its own (MasterSlaveConnection)
    "registration_backoff_ms": (1000, "int"),  # first retry of a (re-)registration, doubling ...
    "registration_backoff_max_ms": (60000, "int"),  # ... up to this
    "status_update_retry_min_ms": (10000, "int"),  # as the agent's status_update_retry_min (§2.7)
    "status_update_retry_max_ms": (600000, "int"),
    "link_uarts": (None, "list"),  # serial lines, one node each (LINK.md §6.3): tty paths, e.g. ["/dev/ttyUSB0"]
    "link_baud": (115200, "int"),
    "link_mtu": (512, "int"),
    "link_window": (4, "int"),
    "link_max_message": (8192, "int"),  # largest message a node may send (reassembly buffer per node)
    "link_rto_ms": (None, "int"),  # the Link's first retransmission timeout (None: link.py's default)
    "link_rto_max_ms": (None, "int"),
    "http_buffer": (65536, "int"),  # libprocess: largest message from the master, and outbox per connection
    "tick_ms": (50, "int"),  # the gateway's clock: registration retries, update retries, the journal
    "check_master_ip": (True, "bool"),  # the master's messages must come from its IP, as the agent's (false: NAT)
    "log_level": ("info", "str"),
    "log_rate": (0, "int"),  # lines a second printed, more counted (micromesos.log.set_level); 0: all (a host's stdout)
}


def check(cfg):
    """The config with defaults filled in; ConfigError for an unknown key or a value of the wrong kind."""
    out = {}
    for k in cfg:
        if k not in DEFAULTS:
            raise ConfigError("%s: unknown gateway config key" % k)
    for k, (d, kind) in DEFAULTS.items():
        v = cfg.get(k, d)
        if kind == "bool":
            ok = isinstance(v, bool)
        elif kind == "list":  # of non-empty strings
            ok = v is None or (isinstance(v, list) and all(isinstance(x, str) and x for x in v))
        elif kind == "dict":  # node name -> key
            ok = v is None or (isinstance(v, dict) and all(key_bytes(x) is not None for x in v.values()))
        else:
            ok = v is None or (isinstance(v, int if kind == "int" else str) and not isinstance(v, bool))
        if not ok:
            raise ConfigError("%s: expected %s, got %r" % (k, kind, v))
        out[k] = v
    if out["link"] not in ("udp", "espnow"):
        raise ConfigError("link: \"udp\" or \"espnow\", got %r" % (out["link"],))
    if not 4096 <= out["http_buffer"] <= 65536:
        raise ConfigError("http_buffer: 4096..65536 bytes, got %d" % out["http_buffer"])
    if not 0 <= out["log_rate"] <= 1000:
        raise ConfigError("log_rate: 0..1000 lines a second, got %d" % out["log_rate"])
    m = out["master"]
    if not isinstance(m, str) or not upid.valid("master@" + m):
        raise ConfigError("master: ip:port of the Mesos master (an IPv4 address) is required, got %r" % (m,))
    return out


def dirname(name):
    """A node's checkpoint directory: its name if that is safe as a file name, else 'x' + hex."""
    ok = 0 < len(name) <= 64 and name[0] != "."
    for c in name:
        if not (c.isalpha() or c.isdigit() or c in "-_."):
            ok = False
    return name if ok else "x" + name.encode().hex()


class Lines:
    """Several transports as one (the UDPHub surface): a UDP socket and serial lines, each node reached by
    the transport its frames came in on (a line's address is its name, a UDP one an (ip, port))."""

    def __init__(self, hubs):
        self.hubs = hubs

    @property
    def on_frame(self):
        return self.hubs[0].on_frame

    @on_frame.setter
    def on_frame(self, fn):
        for h in self.hubs:
            h.on_frame = fn

    def sender(self, addr):
        for h in self.hubs[1:]:
            if getattr(h, "addr", None) == addr:
                return h.sender(addr)
        return self.hubs[0].sender(addr)

    async def run(self):
        for h in self.hubs[1:]:
            asyncio.create_task(h.run())
        await self.hubs[0].run()

    def close(self):
        for h in self.hubs:
            h.close()


class Gateway:
    """link: the nodes' transport with the UDPHub surface (on_frame, sender(addr), run(), close()), e.g.
    mgateway.espnow.ESPNowHub or mgateway.uart.UARTHub; None: a UDPHub on link_ip:link_port."""

    def __init__(self, cfg, link=None):
        cfg = check(cfg)
        self.cfg = cfg
        log.set_level(cfg["log_level"], cfg["log_rate"])
        self.master = "master@" + cfg["master"]
        # The peer IP the master's connections must come from (None: not checked, for NAT). Its messages must
        # also name the configured master's ip:port in Libprocess-From (VAgent.on_message).
        self.master_ips = [cfg["master"].rpartition(":")[0]] if cfg["check_master_ip"] else None
        self.retry_min_ms = cfg["status_update_retry_min_ms"]
        self.retry_max_ms = cfg["status_update_retry_max_ms"]
        self.reg_min_ms = cfg["registration_backoff_ms"]
        self.reg_max_ms = cfg["registration_backoff_max_ms"]
        self.ping_timeout_ms = cfg["ping_timeout_ms"]
        if cfg["link_rto_ms"]:
            Link.rto_ms = cfg["link_rto_ms"]
        if cfg["link_rto_max_ms"]:
            Link.rto_max_ms = cfg["link_rto_max_ms"]
        self.lp = Processes(cfg["ip"], cfg["port"], cfg["advertise_ip"], cfg["advertise_port"],
                            {"outbox_size": cfg["http_buffer"], "recv_buffer": cfg["http_buffer"], "max_connections": 8})
        self.lp.max_streamed = 64
        self.lp.max_http = 4
        self.hostname, _, port = self.lp.host.rpartition(":")
        self.port = int(port)
        if link is None and cfg["link"] == "espnow":
            from .espnow import ESPNowHub

            link = ESPNowHub(cfg["link_mtu"])
        if link is None:
            link = UDPHub(cfg["link_ip"], cfg["link_port"], cfg["link_mtu"])
            if cfg["link_uarts"]:
                from .uart import UARTHub, open_tty

                link = Lines([link] + [UARTHub(open_tty(t, cfg["link_baud"]), cfg["link_mtu"], t)
                                       for t in cfg["link_uarts"]])
        mtu = cfg["link_mtu"]
        keys = None
        if cfg["link_keys"]:
            # Keyed datagrams, a key per session (LINK.md §8); only the listed names can attach at all.
            keys = {n: Key(key_bytes(h)) for n, h in cfg["link_keys"].items()}
            mtu -= TRAILER
        self.udp = link
        self.hub = LinkHub(self.udp.sender, mtu, cfg["link_window"], cfg["link_max_message"], cfg["grace_ms"],
                           keys)
        self.hub.max_nodes = cfg["max_nodes"]
        if cfg["nodes"] is not None:
            self.hub.allowed = set(cfg["nodes"])  # type: ignore[assignment]  # (LinkHub.allowed: None or a set)
        self.hub.unix_time = unix_time
        self.udp.on_frame = self.hub.frame
        self.lp.on_link_closed = self._link_closed
        self.hub.on_session = self._session
        self.hub.on_message = self._message
        self.root = cfg["checkpoint_dir"]
        self.agents = {}  # node name -> VAgent
        self.next_n = 1
        self._restore()

    def _restore(self):
        # Every node of the checkpoint, before any speaks (GATEWAY.md §5).
        for d in gwstore.nodes(self.root):
            st = gwstore.NodeStore(self.root, d)
            try:
                state, held, unacked, acked = st.load()
                if state is None:
                    continue
                name = state["name"]
                p = self.hub.restore(name, state["nonce"], state["wake_ms"], state["listen_ms"])
                va = VAgent(self, state["n"], name, p, st)
                va.restore(state, held, unacked, acked)
            except (KeyError, ValueError, TypeError) as e:
                log.error(_W, "checkpoint of %s unreadable (%r): skipped", d, e)
                continue
            self.agents[name] = va
            self.next_n = max(self.next_n, va.n + 1)
            log.info(_W, "restored node %s as %s (agent %s, %d held, %d unacknowledged updates)", name, va.upid,
                     va.slave_id, len(held), len(unacked))

    def _session(self, p, fresh):
        va = self.agents.get(p.name)
        if va is None:
            va = VAgent(self, self.next_n, p.name, p, gwstore.NodeStore(self.root, dirname(p.name)))
            self.next_n += 1
            self.agents[p.name] = va
            log.info(_W, "node %s attached as %s", p.name, va.upid)
        va.peer = va.relay.peer = p
        va.session(fresh)
        va.checkpoint()  # nonce, wake_ms, listen_ms as announced; AGENT follows its NODE_INFO

    def _link_closed(self, ip, port):
        # The master's link broke: it marks the agents behind it disconnected (PROTOCOL.md §1.5); they
        # re-register now rather than at the next ping that says connected=false.
        for va in self.agents.values():
            if va.state == RUNNING and va.link == (ip, port):
                va.disconnect("master's link closed")

    def _message(self, p, kind, buf, start, end):
        va = self.agents.get(p.name)
        if va is None:
            return
        try:
            va.on_node(kind, buf, start, end)
        except Exception as e:  # a node's bad message must not take the gateway down
            va.dropped += 1
            log.error(_W, "node %s: bad message %d: %r", p.name, kind, e)

    def status(self):
        """One line: nodes, registered, awake, vouched for, held messages, unacknowledged updates, heap."""
        reg = awake = vouched = held = ups = 0
        for va in self.agents.values():
            reg += va.state == RUNNING
            awake += va.peer.awake
            vouched += self.hub.vouch(va.peer)
            held += va.relay.outstanding()
            ups += va.relay.pending()
        h, t = self.hub, self.udp
        return ("%d nodes: %d registered, %d awake, %d vouched for; %d held, %d updates unacknowledged; heap %d B; "
                "link: %d refused (%d for want of heap), %d bad, %d forged, %d replayed, %d failed (last: %r)"
                % (len(self.agents), reg, awake, vouched, held, ups, gc.mem_alloc(), h.refused, h.no_room,
                   getattr(t, "bad", 0) + h.bad, h.forged, h.replays, getattr(t, "errors", 0),
                   getattr(t, "last_error", None)))

    async def _clock(self):
        every = self.cfg["tick_ms"]
        last = time.ticks_ms()
        while True:
            now = time.ticks_ms()
            for va in self.agents.values():
                try:
                    va.tick(now)
                except Exception as e:
                    log.error(_W, "%s: %r", va.upid, e)
            if time.ticks_diff(now, last) >= _STATUS_MS:
                last = now
                log.info(_W, "%s", self.status())
            await asyncio.sleep_ms(every)

    async def start(self):
        await self.lp.start()
        asyncio.create_task(self.udp.run())
        asyncio.create_task(self.hub.run(every_ms=min(100, self.cfg["tick_ms"])))
        asyncio.create_task(self._clock())
        log.info(_W, "gateway for master %s: libprocess %s, link %s, %d node(s) restored", self.master,
                 self.lp.host, type(self.udp).__name__, len(self.agents))

    async def run(self):
        await self.start()
        while True:
            await asyncio.sleep(3600)


def load(path):
    with open(path) as f:
        return json.load(f)


def main(argv):
    if len(argv) < 2:
        print("usage: micropython -m mgateway.gateway CONFIG.json")
        sys.exit(2)
    try:
        gw = Gateway(load(argv[1]))
    except (ConfigError, OSError, ValueError) as e:
        print("gateway: %s" % e)
        sys.exit(2)
    asyncio.run(gw.run())


if __name__ == "__main__":
    main(sys.argv)
