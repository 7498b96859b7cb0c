# Logging that costs nothing when off: the level is checked before any formatting.
# MIT licence. Lines go to stdout (the REPL/serial console on a board): "<ms> LEVEL where: text".
from micropython import const
import time

ERROR = const(40)
WARN = const(30)
INFO = const(20)
DEBUG = const(10)

_NAMES = {"error": ERROR, "warn": WARN, "warning": WARN, "info": INFO, "debug": DEBUG}
level = INFO


def set_level(name):
    """Set the level from a config string; ValueError for an unknown name."""
    global level
    n = _NAMES.get(name.lower()) if isinstance(name, str) else None
    if n is None:
        raise ValueError("unknown log level %r" % (name,))
    level = n


def _emit(tag, where, msg, args):
    if args:
        msg = msg % args
    print("%s %s %s: %s" % (time.ticks_ms(), tag, where, msg))  # ticks: an int, opaque to the stubs


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
