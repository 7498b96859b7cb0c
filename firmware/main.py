# Boot sequence: config, board, Wi-Fi and clock (a supervisor task keeps them), then the agent with a
# watchdog fed from asyncio.
# MIT licence. Device: /main.py after boot.py. Host (the unix port, from the repository root; boards/unix
# is the virtual board, and the config's "master" must be listening, e.g. tools/standin_master.py):
#   MICROPYPATH=.frozen:lib:boards/unix .venv/bin/micropython firmware/main.py boards/unix/config.json
import gc
import sys
import time

from micropython import const

import board
from micromesos import __version__, log
from micromesos.errors import ConfigError

_WDT_MS = const(8000)            # <= 8388 ms, the RP2040's limit
_FEED_MS = const(2000)
_CRASH_HOLD_MS = const(10000)    # pause before a reset so Ctrl-C can still reach the REPL...
_HOLD_STEP_MS = const(500)       # ...feeding the armed watchdog every step of it (< _WDT_MS)


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


def _clear_marker(inv):
    # Before a deliberate reset: rp2's machine.reset() is a watchdog reboot (reset_cause() WDT_RESET), so
    # a marker left set (Ctrl-C mid-step) would blame that task for hanging the loop after the reboot.
    m = getattr(inv, "marker", None)
    if m is not None:
        m.write(0)


def _on_address(inv):
    def changed(old, new):
        # The master sends everything to the pid it registered and a pid can't change for an agent id
        # (PROTOCOL.md §1.6): reboot, and the agent registers as a new one (agent.recover: pid mismatch).
        log.warn("main", "address changed %s -> %s: rebooting to register as a new agent", old, new)
        _clear_marker(inv)
        import machine

        machine.reset()
    return changed


async def _run(cfg, inv, nic, creds):
    import asyncio

    from micromesos import agent

    if nic is not None:
        from micromesos.wifi import Supervisor

        sup = Supervisor(nic, creds[0], creds[1], cfg["ntp_host"])
        if cfg["advertise_ip"] is None:
            sup.on_address = _on_address(inv)  # advertised = the Wi-Fi address: it must not move
        asyncio.create_task(sup.run())
        ip = await sup.up()  # first association and clock; the board's own watchdog isn't armed yet
        if cfg["advertise_ip"] is None:
            cfg["advertise_ip"] = ip  # the master must reach us at a routable address (§1.6, §1.7)
    gc.collect()
    wdt = board.watchdog(_WDT_MS)
    _state["wdt"] = wdt
    if wdt is not None:
        asyncio.create_task(_feed(wdt))
        if nic is not None:
            sup.feed = wdt.feed
    hook = None
    if nic is not None:
        def hook(a):
            sup.on_reconnect = a.reconnect  # re-register at once after Wi-Fi comes back

    await agent.main(cfg, inv, hook)


def _load_config(path, wifi):
    """(cfg, Wi-Fi credentials or None). The config module is read once at boot and dropped, so its
    code does not sit in the heap next to the tasks; the credentials reader lives in it for that reason."""
    import micromesos
    from micromesos import config

    try:
        cfg = config.load(path, wifi=wifi)
        creds = None
        if wifi:
            slash = path.rfind("/")
            creds = config.wifi(path[:slash + 1] + "wifi.json")
        return cfg, creds
    finally:
        del sys.modules["micromesos.config"]
        del micromesos.config


_state = {"wdt": None}  # the armed watchdog, for the crash path once asyncio.run returned


def boot(config_path="config.json"):
    """Bring the board up and run the agent. Returns an exit code (only on failure)."""
    nic = board.wlan()
    try:
        cfg, creds = _load_config(config_path, nic is not None)
    except ConfigError as e:
        # One line naming the key, before anything else happens (no Wi-Fi, no agent).
        print("micromesos: config error: %s" % e)
        return 2
    log.set_level(cfg["log_level"])
    inv = board.inventory(cfg)
    _state["inv"] = inv
    v = sys.implementation.version
    log.info("main", "micromesos %s on %s (%s), MicroPython %d.%d.%d", __version__, inv.board,
             inv.arch, v[0], v[1], v[2])
    rc = _agent(cfg, inv, nic, creds)
    if rc == 130:
        # Ctrl-C (or mpremote) stopped the agent; an armed watchdog cannot be stopped on ESP32/RP2040,
        # so keep feeding it from a timer and the REPL stays usable until the next hard reset.
        _clear_marker(inv)
        _release()
        _stopped(_state["wdt"])
    return rc


def _agent(cfg, inv, nic, creds):
    """Run the agent: 0 if it returned, 130 if Ctrl-C stopped it, 1 if it failed."""
    import asyncio

    gc.collect()
    asyncio.get_event_loop().set_exception_handler(_on_task_error)  # before asyncio.run
    try:
        asyncio.run(_run(cfg, inv, nic, creds))
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # anything the agent could not recover from: report, then start over
        print("micromesos: agent failed: %r" % (e,))
        sys.print_exception(e)
        return 1
    return 0


def _release():
    # The stopped agent's heap back to the REPL, where mpremote copies files next (make task-upload):
    # its tasks, buffers and sockets go with asyncio's state (cur_task, the queues), its code with the
    # modules. asyncio is frozen into the firmware: only its module state is freed.
    for name in list(sys.modules):
        if name == "micromesos" or name.startswith("micromesos.") or name.startswith("asyncio"):
            del sys.modules[name]
    _state["inv"] = None
    gc.collect()


def _stopped(wdt):
    if wdt is not None:
        board.feed_in_background(wdt, _FEED_MS)
    print("micromesos: stopped")


def _reset_after(rc):
    # On a board (no sys.argv) a crashed agent means a clean reboot after a pause; a config error
    # or Ctrl-C leaves the REPL up instead. The watchdog armed at boot can't be stopped, so the pause
    # keeps feeding it; Ctrl-C during it hands the feeding to a timer, as after a Ctrl-C above.
    if rc != 1:
        return
    wdt = _state["wdt"]
    print("micromesos: rebooting in %d s (Ctrl-C for the REPL)" % (_CRASH_HOLD_MS // 1000))
    t0 = time.ticks_ms()
    try:
        while time.ticks_diff(time.ticks_ms(), t0) < _CRASH_HOLD_MS:
            if wdt is not None:
                wdt.feed()
            time.sleep_ms(_HOLD_STEP_MS)
    except KeyboardInterrupt:
        _stopped(wdt)
        return
    _clear_marker(_state.get("inv"))
    import machine

    machine.reset()


if __name__ == "__main__":
    _rc = boot(sys.argv[1] if len(sys.argv) > 1 else "config.json")
    if sys.argv:
        sys.exit(_rc)  # launched from a command line (unix port): report through the exit code
    _reset_after(_rc)
