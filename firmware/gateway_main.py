# A board as the gateway (docs/GATEWAY.md §10): an ESP32 bridging Wi-Fi (the master) and ESP-NOW (the nodes).
# MIT licence. Needs the bridge firmware (`make firmware BOARD=esp32 ROLE=bridge`: the gateway's code frozen
# into flash; from .mpy files it would not fit the heap). Device: /main.py, with the gateway's config as
# /gateway.json and the Wi-Fi credentials as /wifi.json. Host (the 32-bit device model of that firmware):
#   MICROPYPATH=.frozen build/devmodel/bridge/micropython firmware/gateway_main.py gateway.json
import gc
import sys

import board
from micromesos import log, reboot

_W = "bridge"
_state = {"wdt": None}  # the armed watchdog, for the paths that stop the gateway


async def _run(cfg, nic, creds):
    import asyncio

    from mgateway.gateway import Gateway

    ntp_host = cfg.pop("ntp_host", "pool.ntp.org")  # the bridge's own key: not a gateway config key
    if nic is not None:
        from micromesos.wifi import Supervisor

        sup = Supervisor(nic, creds[0], creds[1], ntp_host)
        asyncio.create_task(sup.run())
        ip = await sup.up()
        if hasattr(nic, "PM_NONE"):
            nic.config(pm=nic.PM_NONE)  # ESP-NOW frames are missed while the station dozes
        cfg.setdefault("ip", ip)  # libprocess listens there; the master must reach it (PROTOCOL.md §1.6)
    cfg.setdefault("link", "espnow")
    gw = Gateway(cfg)
    gc.collect()
    wdt = _state["wdt"] = reboot.arm()
    if wdt is not None and nic is not None:
        sup.feed = wdt.feed
    log.info(_W, "gateway bridge up: heap %d B used, %d B free", gc.mem_alloc(), gc.mem_free())
    await gw.run()


def boot(path="gateway.json"):
    """Read the config, join Wi-Fi, run the gateway. Returns an exit code (only on failure)."""
    import asyncio
    import json

    from micromesos.errors import ConfigError

    nic = board.wlan()
    try:
        with open(path) as f:
            cfg = json.load(f)
        if not isinstance(cfg, dict):
            raise ConfigError("%s: expected a JSON object" % path)
        creds = None
        if nic is not None:
            from micromesos import config

            creds = config.wifi(path[: path.rfind("/") + 1] + "wifi.json")
            del sys.modules["micromesos.config"]
    except (OSError, ValueError, ConfigError) as e:
        print("gateway: config error: %s" % e)
        return 2
    try:
        asyncio.run(_run(cfg, nic, creds))
    except ConfigError as e:
        print("gateway: config error: %s" % e)
        return 2
    except KeyboardInterrupt:
        reboot.stopped(_state["wdt"])  # the REPL stays up: the armed watchdog is fed from a timer
        return 130
    except Exception as e:  # noqa: BLE001  anything the gateway could not recover from: report, then start over
        print("gateway: failed: %r" % (e,))
        sys.print_exception(e)
        return 1
    return 0


if __name__ == "__main__":
    _rc = boot(sys.argv[1] if len(sys.argv) > 1 else "gateway.json")
    if sys.argv:
        sys.exit(_rc)  # launched from a command line (unix port): report through the exit code
    reboot.after_crash(_rc, _state["wdt"], None)  # a crash: reboot after a pause
