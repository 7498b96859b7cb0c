# A board's watchdog and its deliberate reboots, for the code that boots the agent (firmware/main.py), a node
# (micromesos.nodeboot) and the bridge (firmware/gateway_main.py). MIT licence. The watchdog, once armed, can't be
# stopped on ESP32 or RP2040: whatever stops the program keeps feeding it (stopped(), after_crash()).
import time

import board
from micropython import const

_WDT_MS = const(8000)  # <= 8388 ms, the RP2040's limit
_FEED_MS = const(2000)
_CRASH_HOLD_MS = const(10000)  # pause before a reset so Ctrl-C can still reach the REPL...
_HOLD_STEP_MS = const(500)  # ...feeding the armed watchdog every step of it (< _WDT_MS)


def arm():
    """The board's watchdog armed and fed from an asyncio task (made now; it runs with the loop, so arm just
    before asyncio.run or inside it): code that holds the loop for _WDT_MS resets the board, and the task
    marker names a task that did (steps.py).
    -> the watchdog, or None on a board without one (the unix port)."""
    import asyncio

    wdt = board.watchdog(_WDT_MS)
    if wdt is not None:
        asyncio.create_task(_feed(wdt))
    return wdt


async def _feed(wdt):
    import asyncio

    while True:
        wdt.feed()
        await asyncio.sleep_ms(_FEED_MS)


def clear_marker(inv):
    # Before a deliberate reset: rp2's machine.reset() is a watchdog reboot (reset_cause() WDT_RESET), so
    # a marker left set (Ctrl-C mid-step) would blame that task for hanging the loop after the reboot.
    m = getattr(inv, "marker", None)
    if m is not None:
        m.write(0)


def now(inv):
    """Reboot the board at once (machine.reset()), the task marker cleared first."""
    clear_marker(inv)
    import machine

    machine.reset()


def stopped(wdt):
    """Ctrl-C stopped the program: a timer feeds the armed watchdog from now on, and the REPL stays usable
    until the next hard reset."""
    if wdt is not None:
        board.feed_in_background(wdt, _FEED_MS)
    print("micromesos: stopped")


def after_crash(rc, wdt, inv):
    """On a board (no sys.argv): exit code 1 (a crash) means a clean reboot after a pause; a config error (2)
    or Ctrl-C (130) leaves the REPL up. The pause keeps feeding the armed watchdog; Ctrl-C during it hands the
    feeding to a timer, as stopped() does."""
    if rc != 1:
        return
    print("micromesos: rebooting in %d s (Ctrl-C for the REPL)" % (_CRASH_HOLD_MS // 1000))
    t0 = time.ticks_ms()
    try:
        while time.ticks_diff(time.ticks_ms(), t0) < _CRASH_HOLD_MS:
            if wdt is not None:
                wdt.feed()
            time.sleep_ms(_HOLD_STEP_MS)
    except KeyboardInterrupt:
        stopped(wdt)
        return
    now(inv)
