# Boot sequence: config, Wi-Fi, clock, board, then the agent with a watchdog fed from asyncio.
# MIT licence. Device: /main.py after boot.py. Host: `micropython firmware/main.py [config.json]`.
import sys
import time

from micropython import const

import board
from micromesos import __version__, log
from micromesos.errors import ConfigError

_WIFI_WAIT_MS = const(20000)     # one association attempt
_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(60000)   # Wi-Fi retry cap; an unattended board keeps trying forever
_NTP_TRIES = const(3)
_WDT_MS = const(8000)            # <= 8388 ms, the RP2040's limit
_FEED_MS = const(2000)
_CRASH_HOLD_MS = const(10000)    # pause before a reset so Ctrl-C can still reach the REPL
_MAX_CRED = const(128)           # bytes: SSID is <= 32, WPA2 passphrase <= 63


def _wifi_creds(path):
    """(ssid, password) from wifi.json; ConfigError names the file and key."""
    import json

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


def _jitter(ms):
    import random

    return ms + random.getrandbits(16) % (ms // 4 + 1)  # up to +25 %, so boards don't retry in step


def wifi_up(nic, ssid, password):
    """Associate, retrying with capped, jittered backoff until it works; returns the IPv4 address."""
    nic.active(True)
    backoff = _BACKOFF_MIN_MS
    while True:
        if not nic.isconnected():
            log.info("main", "wifi: connecting to %s", ssid)
            nic.connect(ssid, password)
            t0 = time.ticks_ms()
            while not nic.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < _WIFI_WAIT_MS:
                time.sleep_ms(200)
        if nic.isconnected():
            ip = nic.ipconfig("addr4")[0]
            log.info("main", "wifi: up, %s", ip)
            return ip
        log.warn("main", "wifi: not connected (status %s), retry in %d ms", nic.status(), backoff)
        nic.disconnect()
        time.sleep_ms(_jitter(backoff))
        backoff = min(backoff * 2, _BACKOFF_MAX_MS)


def set_clock():
    """UTC from NTP: status-update timestamps (TaskStatus.timestamp) are wall-clock seconds."""
    import ntptime

    for _ in range(_NTP_TRIES):
        try:
            ntptime.settime()
            log.info("main", "clock set from NTP: %d", time.time())
            return True
        except (OSError, OverflowError) as e:
            log.warn("main", "ntp: %r", e)
            time.sleep_ms(1000)
    log.warn("main", "clock not set: status-update timestamps will be wrong")
    return False


def _on_task_error(loop, context):
    # A task died with an exception nobody awaited: log it and keep the agent running.
    log.error("main", "task error: %s", context.get("message"))
    e = context.get("exception")
    if e is not None:
        sys.print_exception(e)


async def _feed(wdt):
    import asyncio

    while True:
        wdt.feed()
        await asyncio.sleep_ms(_FEED_MS)


async def _run(cfg, inv, wdt):
    import asyncio

    from micromesos import agent

    if wdt is not None:
        asyncio.create_task(_feed(wdt))
    await agent.main(cfg, inv)


def _load_config(path):
    import micromesos
    from micromesos import config

    try:
        return config.load(path)
    finally:
        # Read once at boot: drop the module so its code does not sit in the heap next to the tasks.
        del sys.modules["micromesos.config"]
        del micromesos.config


def boot(config_path="config.json"):
    """Bring the board up and run the agent. Returns an exit code (only on failure)."""
    try:
        cfg = _load_config(config_path)
        slash = config_path.rfind("/")
        nic = board.wlan()
        creds = _wifi_creds(config_path[:slash + 1] + "wifi.json") if nic is not None else None
    except ConfigError as e:
        # One line naming the key, before anything else happens (no Wi-Fi, no agent).
        print("micromesos: config error: %s" % e)
        return 2
    log.set_level(cfg["log_level"])
    if nic is not None and creds is not None:
        ip = wifi_up(nic, creds[0], creds[1])
        if cfg["advertise_ip"] is None:
            cfg["advertise_ip"] = ip  # the master must reach us at a routable address (§1.6, §1.7)
        set_clock()
    inv = board.inventory(cfg)
    v = sys.implementation.version
    log.info("main", "micromesos %s on %s (%s), MicroPython %d.%d.%d", __version__, inv.board,
             inv.arch, v[0], v[1], v[2])
    import gc

    import asyncio

    gc.collect()
    wdt = board.watchdog(_WDT_MS)
    asyncio.get_event_loop().set_exception_handler(_on_task_error)  # before asyncio.run
    try:
        asyncio.run(_run(cfg, inv, wdt))
    except KeyboardInterrupt:
        # Ctrl-C (or mpremote) stops the agent; an armed watchdog cannot be stopped on ESP32/RP2040,
        # so keep feeding it from a timer and the REPL stays usable until the next hard reset.
        if wdt is not None:
            board.feed_in_background(wdt, _FEED_MS)
        print("micromesos: stopped")
        return 130
    except Exception as e:  # anything the agent could not recover from: report, then start over
        print("micromesos: agent failed: %r" % (e,))
        sys.print_exception(e)
        return 1
    return 0


def _reset_after(rc):
    # On a board (no sys.argv) a crashed agent means a clean reboot after a pause; a config error
    # or Ctrl-C leaves the REPL up instead.
    if rc != 1:
        return
    print("micromesos: rebooting in %d s (Ctrl-C for the REPL)" % (_CRASH_HOLD_MS // 1000))
    time.sleep_ms(_CRASH_HOLD_MS)
    import machine

    machine.reset()


if __name__ == "__main__":
    _rc = boot(sys.argv[1] if len(sys.argv) > 1 else "config.json")
    if sys.argv:
        sys.exit(_rc)  # launched from a command line (unix port): report through the exit code
    _reset_after(_rc)
