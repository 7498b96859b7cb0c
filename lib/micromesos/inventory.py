# What a board hands the agent: its sensors, actuators and free pins, as handles plus names.
# MIT licence. Built only by boards/<name>/board.py; the agent turns it into Mesos resources.
import sys

# .mpy feature byte >> 2: native architecture (py/persistentcode.h MP_NATIVE_ARCH_*), named as mpy-cross
# -march names it. The one copy: boards and fetch use it through arch_name() / mpy_arch().
_ARCHS = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
          "xtensa", "xtensawin", "rv32imc", "rv64imc")


def arch_name(n):
    """mpy-cross -march name of native arch number n (ESP32-S2/S3 are xtensawin, C3/C6 rv32imc)."""
    return _ARCHS[n] if 0 <= n < len(_ARCHS) else "arch %d" % n


def mpy_arch(mpy=None):
    """Native arch name of this firmware from sys.implementation._mpy (feature byte >> 2)."""
    if mpy is None:
        mpy = getattr(sys.implementation, "_mpy", 0)
    return arch_name((mpy >> 10) & 0x3F)


class Inventory:
    """A board's inventory.

    board        board name, also the `board` attribute ("esp32", "rp2", "unix")
    arch         mpy-cross -march of the port ("xtensawin", "armv6m", "x64"), the `arch` attribute
    sensors      {kind: {instance: driver}}; a driver has read() -> number. Each kind becomes a SET
                 resource of its instances, e.g. temperature:{temp0}
    actuators    {kind: {instance: handle}} such as {"led": {"led0": Pin}}; SET resources too
    gpio         free GPIO numbers, advertised as the RANGES resource gpio:[2-5,12-15]
    pin          callable(n) -> machine.Pin-like; only ever called for pins granted to a task
    attributes   extra {name: str | int | float} attributes (TEXT or SCALAR)
    fs           filesystem root for state/ and tasks/ ("/" on a board, a directory on unix)
    marker       read() -> int / write(int) storage that survives the watchdog's reset (steps: names the
                 task that hung the loop), or None: then the unix port uses a file, other boards none
    """

    marker = None

    def __init__(self, board, arch, sensors=None, actuators=None, gpio=(), pin=None,
                 attributes=None, fs="/", marker=None):
        self.board = board
        self.arch = arch
        self.sensors = sensors or {}
        self.actuators = actuators or {}
        g = tuple(sorted(gpio))
        self.gpio = gpio if g == gpio else g  # the board's own tuple if sorted (in flash when frozen)
        self.pin = pin
        self.attributes = attributes or {}
        self.fs = fs
        if marker is not None:  # else the class's None: the instance dict stays a table size smaller
            self.marker = marker

