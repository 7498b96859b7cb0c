# The virtual board (MicroPython unix port): simulated sensors and pins, a directory as filesystem.
# MIT licence. Readings are deterministic for a given config "seed", so tests and demos repeat.
import os

from micropython import const

from micromesos.inventory import Inventory, mpy_arch

NAME = "unix"
_LCG_A = const(1103515245)
_LCG_C = const(12345)
_LCG_MASK = const(0x3FFFFFFF)  # 30 bits: stays a small int on 32-bit builds too
_DEFAULT_SEED = const(1)
_GPIO = (2, 3, 4, 5, 12, 13, 14, 15)  # simulated free pins, shaped like a devkit's (a literal: kept in flash)


class SimSensor:
    """A bounded random walk around `centre` (+- span), driven by its own LCG seeded per instance."""

    def __init__(self, seed, centre, span):
        self._state = seed & _LCG_MASK
        self.centre = centre
        self.span = span
        self._pos = 0.0  # -1.0 .. 1.0

    def read(self):
        s = self._state = (self._state * _LCG_A + _LCG_C) & _LCG_MASK  # the LCG's next state
        step = ((s >> 14) & 0xFFFF) / 0xFFFF - 0.5  # -0.5 .. 0.5
        p = self._pos + step * 0.4
        if p > 1.0:
            p = 2.0 - p
        elif p < -1.0:
            p = -2.0 - p
        self._pos = p
        # Two decimals, like a real sensor driver would report; keeps logs and tests readable.
        return round(self.centre + p * self.span, 2)


class SimPin:
    """A machine.Pin stand-in: remembers mode and level; value(), on(), off() as on a board."""

    IN = const(0)
    OUT = const(1)

    def __init__(self, n, mode=-1, value=None):
        self.n = n
        self.mode = mode
        self._v = 0
        if value is not None:
            self._v = 1 if value else 0

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if value is not None:
            self._v = 1 if value else 0

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0
        return None

    def on(self):
        self._v = 1

    def off(self):
        self._v = 0

    def __repr__(self):
        return "SimPin(%d)" % self.n


_pins = None  # n -> its SimPin, made on its first use: an idle board holds none


def _pin(n, *args, **kw):
    # inventory.pin: the one SimPin for n (args as Pin.init's); ValueError for pins the board lacks. A function,
    # not a class: no class object in RAM for it.
    global _pins
    if n not in _GPIO:
        raise ValueError("no pin %r on this board" % (n,))
    if _pins is None:
        _pins = {}
    p = _pins.get(n)
    if p is None:
        p = _pins[n] = SimPin(n)
    if args or kw:
        p.init(*args, **kw)
    return p


def inventory(config):
    """The virtual board's Inventory; config "seed" fixes the readings, "fs" the filesystem root."""
    # Boot-only values are literals here, not module globals: the board module's globals table stays a size
    # smaller for as long as the board runs.
    config = config or {}
    seed = config.get("seed")
    if seed is None:
        seed = _DEFAULT_SEED
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError("seed: expected a whole number")
    fs = config.get("fs") or "./var/board"
    _makedirs(fs)
    sensors = {}
    # kind, instance, centre, half-span: what the simulated board measures.
    sim = (
        ("temperature", "temp0", 22.0, 3.0),
        ("temperature", "temp1", 35.0, 5.0),
        ("humidity", "hum0", 45.0, 10.0),
        ("light", "light0", 300.0, 250.0),
    )
    for i, (kind, name, centre, span) in enumerate(sim):
        # Each instance gets its own stream, so reading one sensor never shifts another's values.
        sensors.setdefault(kind, {})[name] = SimSensor(seed * 7919 + i * 104729 + 1, centre, span)
    led = SimPin(25, SimPin.OUT, 0)
    return Inventory(
        NAME, mpy_arch(), sensors=sensors, actuators={"led": {"led0": led}}, gpio=_GPIO,
        pin=_pin, attributes={"features": "sim"}, fs=fs)


def wlan():
    """No radio: the host's network is already up."""
    return None


def watchdog(timeout_ms):
    """No hardware watchdog on the host."""
    return None


def _makedirs(path):
    # os.makedirs is not in MicroPython's os: walk the path once at boot.
    cur = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if part in ("", "."):
            continue
        cur = cur + part if cur in ("", "/") else cur + "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass  # exists; a real problem shows up as an error on first write
