# Boot sequence: config, board, Wi-Fi and clock (a supervisor task keeps them), then the agent with a
# watchdog fed from asyncio.
# MIT licence. Device: /main.py after boot.py. Host (the unix port, from the repository root; boards/unix
# is the virtual board, and the config's "master" must be listening, e.g. tools/standin_master.py):
#   MICROPYPATH=.frozen:lib:boards/unix .venv/bin/micropython firmware/main.py boards/unix/config.json
import gc
import sys

import board
from micromesos import __version__, log, reboot
from micromesos.errors import ConfigError


def _on_task_error(loop, context):
    # A task died with an exception nobody awaited: log it and keep the agent running.
    log.error("main", "task error: %s", context.get("message"))
    e = context.get("exception")
    if e is not None:
        sys.print_exception(e)


def _on_address(inv):
    def changed(old, new):
        # The master sends everything to the pid it registered and a pid can't change for an agent id
        # (PROTOCOL.md §1.6): reboot, and the agent registers as a new one (agent.recover: pid mismatch).
        log.warn("main", "address changed %s -> %s: rebooting to register as a new agent", old, new)
        reboot.now(inv)
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
    wdt = _state["wdt"] = reboot.arm()
    if wdt is not None and nic is not None:
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
    log.set_level(cfg["log_level"], cfg["log_rate"])
    inv = board.inventory(cfg)
    _state["inv"] = inv
    v = sys.implementation.version
    log.info("main", "micromesos %s on %s (%s), MicroPython %d.%d.%d", __version__, inv.board,
             inv.arch, v[0], v[1], v[2])
    rc = _agent(cfg, inv, nic, creds)
    if rc == 130:
        # Ctrl-C (or mpremote) stopped the agent; an armed watchdog cannot be stopped on ESP32/RP2040,
        # so keep feeding it from a timer and the REPL stays usable until the next hard reset.
        reboot.clear_marker(inv)
        _release()
        reboot.stopped(_state["wdt"])
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


if __name__ == "__main__":
    _rc = boot(sys.argv[1] if len(sys.argv) > 1 else "config.json")
    if sys.argv:
        sys.exit(_rc)  # launched from a command line (unix port): report through the exit code
    reboot.after_crash(_rc, _state["wdt"], _state.get("inv"))  # a crash: reboot after a pause
