# Logging that costs nothing when off (the level is checked before any formatting) and never raises.
# MIT licence. Lines go to stdout (the REPL/serial console on a board): "<ms> LEVEL where: text".
#
# At most `limit` lines a second are printed (set_level; twice that in a burst; a line counts once per 100
# characters); the others are counted, and the next line printed says how many were not. On a board stdout is
# the console, and writing to it holds the event loop: the ESP32 port waits whenever the UART's 128-byte FIFO
# is full (ports/esp32/uart.c; at 115200 baud, 10 bits a character, 100 take 8.7 ms), the Pico's USB CDC waits for a
# connected host up to 500 ms a write (shared/tinyusb/mp_usbd_cdc.c). Many lines are what network input
# causes (a dropped message, a refused connection): without a limit a flood of bad traffic would keep the
# loop printing.
from micropython import const
import time

# Private but DEBUG (node.py reads it): a public name is a globals slot, and the limit's state below needed two.
_ERROR = const(40)
_WARN = const(30)
_INFO = const(20)
DEBUG = const(10)

level = _INFO
# The limit's state in one list: every module-level name is an interned string on a board that loads .mpy
# files (tests/test_devmodel.py guards how many the agent has). _RATE: lines a second (set_level); _ROOM: lines
# that may be printed now, in thousandths, refilled at _RATE a second up to 2 seconds' worth (below 0 after a
# long line: a debt); _AT: ticks_ms of the last refill; _HELD: lines not printed since the last one that was.
_RATE = const(0)
_ROOM = const(1)
_AT = const(2)
_HELD = const(3)
_b = None  # [_RATE, _ROOM, _AT, _HELD] once set_level sets a limit
_TEXT_MAX = const(160)  # the longest text tools/logtext.py moves out of a module (its TEXT_MAX)
dropped = 0  # lines not printed since boot (/metrics/snapshot)


def set_level(name, limit=0):
    """Set the level from a config string (ValueError for an unknown name) and print at most `limit` lines a
    second (2 * limit at once after a quiet spell; a line counts once per 100 characters; 0: every line). One
    function, not two: on a node at the edge of its heap a function object and a globals slot count."""
    global level, _b
    n = None
    if isinstance(name, str):  # the table is built per call (boot): no dict resident for it
        n = {"error": _ERROR, "warn": _WARN, "warning": _WARN, "info": _INFO, "debug": DEBUG}.get(name.lower())
    if n is None:
        raise ValueError("unknown log level %r" % (name,))
    level = n
    _b = [limit, 2000 * limit, time.ticks_ms(), 0] if limit else None


def text(buf, start, end):
    """buf[start:end] as a str for a log line: UTF-8 as it is, anything else escaped. Never raises
    UnicodeError: names and sender UPIDs from the network are arbitrary bytes."""
    b = bytes(buf[start:end])
    try:
        return b.decode()
    except UnicodeError:
        return repr(b)[2:-1]


def stored(at):
    """A text the build moved to flash (tools/logtext.py: a .mpy's log calls and errors pass its offset in
    logtext.txt, beside this module), read now: when its line or error is printed; it is never held."""
    try:
        with open(__file__[: __file__.rfind("/") + 1] + "logtext.txt", "rb") as f:
            f.seek(at)
            b = f.read(_TEXT_MAX + 1)  # one read, not readline's one per byte: a text is at most _TEXT_MAX bytes
        e = b.find(b"\n")
        if e >= 0:
            return b[:e].decode()
    except (OSError, UnicodeError, ValueError, NameError):  # NameError: a port without __file__
        pass
    return "text #%d" % at  # no such file or line: the line still says which text it was


def _emit(tag, where, msg, args):
    # A log line must never take its caller down: a bad format (a bug) prints the raw parts instead,
    # and with no heap left for the line it is lost.
    global dropped
    b = _b
    if b is not None:
        t = time.ticks_ms()
        d = time.ticks_diff(t, b[_AT])
        b[_AT] = t
        full = 2000 * b[_RATE]
        b[_ROOM] = full if d < 0 or d > 2000 else min(full, b[_ROOM] + d * b[_RATE])  # d < 0: days without a line
        if b[_ROOM] < 1000:
            b[_HELD] += 1
            dropped += 1
            return
        b[_ROOM] -= 1000
    try:
        if isinstance(msg, int):
            msg = stored(msg)
        if args:
            try:
                msg = msg % args
            except (TypeError, ValueError):
                msg = "%s %r" % (msg, args)
        if b is not None:
            b[_ROOM] -= 1000 * (len(msg) // 100)  # a line counts once per 100 characters (the UART's time): a debt
            if b[_HELD]:
                print("%s WARN log: %d lines not shown (more than %d a second)" % (time.ticks_ms(), b[_HELD], b[_RATE]))
                b[_HELD] = 0
        print("%s %s %s: %s" % (time.ticks_ms(), tag, where, msg))  # ticks: an int, opaque to the stubs
    except MemoryError:
        pass


def error(where, msg, *args):
    if level <= _ERROR:
        _emit("ERROR", where, msg, args)


def warn(where, msg, *args):
    if level <= _WARN:
        _emit("WARN", where, msg, args)


def info(where, msg, *args):
    if level <= _INFO:
        _emit("INFO", where, msg, args)


def debug(where, msg, *args):
    if level <= DEBUG:
        _emit("DEBUG", where, msg, args)
