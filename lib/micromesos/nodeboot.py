# A node's boot (issue 11 part 3): config, board, the link's transport, then micromesos.node's duty cycle.
# MIT licence. firmware/node_main.py calls boot(); here, not there, so that a frozen build keeps this code in
# flash (a script is compiled into RAM at every boot and its code stays there while it runs).
#
# Sleep on a board (not built here; Node.deep_sleep is the hook): a node with a live task must keep its RAM,
# so it naps in asyncio with the link held (the unix port does exactly that) or, on an ESP32, in
# machine.lightsleep() between its tasks' timers. A node with no live task and nothing unsent may deep-sleep:
# the hook keeps linkhello.kept(node.nl, node.transport if keyed) in RTC memory (machine.RTC().memory(): 11
# bytes, 51 with a link_key: the session key and counters too), calls machine.deepsleep(ms), and the next boot
# gives them to linkhello.resume(node.nl, b, transport) before run(): it wakes with WAKE, not HELLO (LINK.md
# §7.2, §8.3).
import gc
import sys

from . import drop, log
from .errors import ConfigError


def _on_task_error(loop, context):
    log.error("main", "task error: %s", context.get("message"))
    e = context.get("exception")
    if e is not None:
        sys.print_exception(e)


def boot(config_path="config.json", on_board=False):
    """Bring the node up and run it. Returns an exit code (only on failure): 2 config, 1 crash (a heap in
    pieces included: node.run), 130 Ctrl-C. on_board (firmware/node_main.py on a board, no sys.argv): after a
    crash the board reboots after a pause instead (reboot.after_crash), its identity and unacknowledged updates
    recovered from flash."""
    from . import nodeinit

    try:
        a = nodeinit.setup(config_path)
    except ConfigError as e:
        print("micromesos: config error: %s" % e)
        return 2
    finally:
        del nodeinit
        drop("micromesos.nodeinit")  # boot-only code: out of RAM before the node's is loaded
    gc.collect()
    import asyncio

    from . import node

    main = node.main(*a[:4])
    inv = a[1]
    wdt = _supervise(a[4])
    a = None  # this frame lives as long as the node: main() keeps only what it reads later
    gc.collect()
    asyncio.get_event_loop().set_exception_handler(_on_task_error)
    try:
        asyncio.run(main)
        return 0
    except KeyboardInterrupt:
        rc = 130
    except Exception as e:  # noqa: BLE001  anything the node could not recover from: report it
        del main
        asyncio.new_event_loop()  # the node's tasks (and the heap they hold) go: room for the report
        gc.collect()
        print("micromesos: node failed: %r" % (e,))
        sys.print_exception(e)
        rc = 1
    from . import reboot

    if rc == 130:
        reboot.clear_marker(inv)
        reboot.stopped(wdt)  # the REPL stays up: the armed watchdog is fed from a timer
    elif on_board:
        reboot.after_crash(rc, wdt, inv)
    return rc


def _supervise(wifi):
    # The board's watchdog armed, its feeding task made (it runs once the node's loop does): a task that holds the
    # loop resets the board, and the marker names it (steps.py). On a Wi-Fi board (wifi: nodeinit.setup's) the
    # station associated and kept so, the clock set by NTP (micromesos.wifi, as for the agent); until then the
    # node's wakes go unanswered. -> the watchdog, or None. reboot's code is dropped: only its feeding task stays.
    from . import reboot

    try:
        wdt = reboot.arm()
    finally:
        drop("micromesos.reboot")
    if wifi is not None:
        import asyncio

        from .wifi import Supervisor

        s = Supervisor(*wifi)
        if wdt is not None:
            s.feed = wdt.feed  # NTP's wait blocks the loop
        asyncio.create_task(s.run())
    return wdt
