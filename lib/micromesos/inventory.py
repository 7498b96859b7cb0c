# What a board hands the agent: its sensors, actuators and free pins, as handles plus names.
# MIT licence. Built only by boards/<name>/board.py; the agent turns it into Mesos resources.


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
    """

    def __init__(self, board, arch, sensors=None, actuators=None, gpio=(), pin=None,
                 attributes=None, fs="/"):
        self.board = board
        self.arch = arch
        self.sensors = sensors or {}
        self.actuators = actuators or {}
        self.gpio = tuple(sorted(gpio))
        self.pin = pin
        self.attributes = attributes or {}
        self.fs = fs

    def handle(self, kind, name):
        """The driver or handle for one granted instance; KeyError if the board has none."""
        group = self.sensors.get(kind)
        if group is None:
            group = self.actuators[kind]
        return group[name]
