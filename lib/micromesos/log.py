# Logging that costs nothing when off (the level is checked before any formatting) and never raises.
# MIT licence. Lines go to stdout (the REPL/serial console on a board): "<ms> LEVEL where: text".
from micropython import const
import time

ERROR = const(40)
WARN = const(30)
INFO = const(20)
DEBUG = const(10)

level = INFO


def set_level(name):
    """Set the level from a config string; ValueError for an unknown name."""
    global level
    n = None
    if isinstance(name, str):  # the table is built per call (boot): no dict resident for it
        n = {"error": ERROR, "warn": WARN, "warning": WARN, "info": INFO, "debug": DEBUG}.get(name.lower())
    if n is None:
        raise ValueError("unknown log level %r" % (name,))
    level = n


def text(buf, start, end):
    """buf[start:end] as a str for a log line: UTF-8 as it is, anything else escaped. Never raises
    UnicodeError: names and sender UPIDs from the network are arbitrary bytes."""
    b = bytes(buf[start:end])
    try:
        return b.decode()
    except UnicodeError:
        return repr(b)[2:-1]


def _emit(tag, where, msg, args):
    # A log line must never take its caller down: a bad format (a bug) prints the raw parts instead,
    # and with no heap left for the line it is lost.
    try:
        if args:
            try:
                msg = msg % args
            except (TypeError, ValueError):
                msg = "%s %r" % (msg, args)
        print("%s %s %s: %s" % (time.ticks_ms(), tag, where, msg))  # ticks: an int, opaque to the stubs
    except MemoryError:
        pass


def error(where, msg, *args):
    if level <= ERROR:
        _emit("ERROR", where, msg, args)


def warn(where, msg, *args):
    if level <= WARN:
        _emit("WARN", where, msg, args)


def info(where, msg, *args):
    if level <= INFO:
        _emit("INFO", where, msg, args)


def debug(where, msg, *args):
    if level <= DEBUG:
        _emit("DEBUG", where, msg, args)
