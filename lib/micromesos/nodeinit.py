# A node's boot-only setup (issue 11 part 3): its config, the board's inventory, the link's transport, and
# NODE_INFO's SlaveInfo on flash. MIT licence. nodeboot.boot() imports this module for setup() and drops it
# before the node's code is loaded (as the agent's agentinit.py): none of its code stays resident while the
# node runs (frozen: its function objects; loaded: its bytecode too).
import board
from micropython import const

from . import drop, log
from .errors import ConfigError

_SLAVE_INFO = const(20)  # schema.SlaveInfo
# The names the node's imports intern (a module's full name, and a short name the package binds): named here, in
# frozen code, they are in the firmware's qstr pool in flash; otherwise each import puts its name in a qstr pool in
# RAM (~20 B each, and a second pool, ~300 B, past the first 20). Never read: the literals are what counts (a .mpy
# build interns them when this module loads, as the imports would). tests/test_node_ram.py checks the list.
_NAMES = ("micromesos.log", "micromesos.errors", "micromesos.inventory", "micromesos.linkframe",
          "micromesos.linkudp", "micromesos.codec", "micromesos.schema", "micromesos.wire", "micromesos.store",
          "micromesos.nodeboot", "micromesos.node", "micromesos.ctx", "micromesos.steps", "micromesos.updates",
          "micromesos.link", "micromesos.linknode", "micromesos.tasks", "micromesos.reboot", "micromesos.wifi",
          "asyncio.core", "nodeboot", "linkhello")


def setup(config_path):
    """(cfg, inv, transport, totals, wifi) for node.main() (the first four) and nodeboot: ConfigError for a bad
    config or transport. wifi: (WLAN, ssid, password, ntp_host) on a board with a Wi-Fi station and transport
    udp (the credentials from wifi.json beside the config, as the agent's), else None."""
    cfg = load_config(config_path)
    log.set_level(cfg["log_level"])
    inv = board.inventory(cfg)
    w = _wifi(cfg, config_path)
    t = transport(cfg)
    return cfg, inv, t, node_info(inv, cfg), w


def _wifi(cfg, path):
    nic = board.wlan() if cfg["transport"] == "udp" else None  # None: no station (the unix port, a Pico)
    if nic is None:
        return None
    from . import config

    try:
        ssid, pw = config.wifi(path[:path.rfind("/") + 1] + "wifi.json")
    finally:
        drop("micromesos.config")
    return nic, ssid, pw, cfg["ntp_host"]


def load_config(path):
    # The config code is read once at boot and dropped (as firmware/main.py does).
    from . import nodecfg

    try:
        return nodecfg.load(path)
    finally:
        drop("micromesos.nodecfg")


def transport(cfg):
    """The link's transport for cfg["transport"] (LINK.md §6): an object with linkudp.UDPNode's surface; with
    a link_key, its frames tagged (LINK.md §8) and cfg["mtu"] lowered by the tag for the link."""
    t = _transport(cfg)
    if cfg["link_key"] is not None:
        from .linkauth import Key, Sealed

        t = Sealed(t, Key(cfg["link_key"]))
        cfg["mtu"] = t.mtu
    return t


def _transport(cfg):
    if cfg["transport"] == "udp":
        from .linkudp import UDPNode

        ip, _, port = cfg["gateway"].rpartition(":")
        return UDPNode(ip, int(port), cfg["mtu"], cfg["ip"])
    if cfg["transport"] == "uart":
        from .linkuart import UARTNode, open_tty

        u = cfg["uart"]
        if u.isdigit():  # a board's UART; non-blocking reads (timeout=0), room for a few frames
            import machine

            s = machine.UART(int(u), cfg["baud"], timeout=0, rxbuf=1024)
        else:  # the unix port: a tty (a USB serial adapter, a pty)
            s = open_tty(u, cfg["baud"])
        return UARTNode(s, cfg["mtu"])
    if cfg["transport"] == "espnow":
        import network

        from .linkespnow import ESPNowNode

        network.WLAN(network.STA_IF).active(True)  # ESP-NOW needs the radio on, no association
        return ESPNowNode(cfg["gateway_mac"], cfg["mtu"], cfg["window"])
    raise ConfigError("transport: %s is not built into this firmware" % cfg["transport"])


def node_info(inv, cfg):
    """The totals (what the runner leases from); NODE_INFO's SlaveInfo bytes into the state directory's
    node_info.bin (Node._node_info reads it; written only if they changed: flash wear): the resources and
    attributes as the agent advertises them (boardres: the board measured, then the config's), hostname = the
    node's name, no id (LINK.md §5). Before the node's code is loaded (boot's peak on a board that loads .mpy
    files): boardres and registrar are imported for it and dropped after."""
    from . import boardres, codec, registrar
    from .store import makedirs

    fs = inv.fs.rstrip("/")
    d = (fs + "/" if fs else "/") + cfg["state_dir"]  # as node.Node's store
    makedirs(d)
    path = d + "/node_info.bin"
    try:
        totals = boardres.measure(inv, cfg)
        info = codec.encode(_SLAVE_INFO, {
            "hostname": cfg["name"], "checkpoint": True,
            "resources": [registrar.to_resource(n, v) for n, v in totals],
            "attributes": [registrar.to_attribute(n, v) for n, v in boardres.attributes(inv, cfg)]})
    finally:
        for m in ("micromesos.registrar", "micromesos.boardres", "micromesos.names"):  # names: registrar's
            drop(m)
    try:
        with open(path, "rb") as f:
            same = f.read() == info
    except OSError:
        same = False
    if not same:
        with open(path, "wb") as f:
            f.write(info)
    return totals
