# micromesos: an Apache Mesos agent for MicroPython microcontrollers.
# MIT licence.

__version__ = "0.1.0"

# The Mesos protocol version the agent speaks (RegisterSlaveMessage.version, PROTOCOL.md §0.3).
MESOS_VERSION = "1.12.0"


def drop(name):
    """Module `name` ("micromesos.x", in full) out of sys.modules and this package: what it holds leaves RAM
    at the next collection once nothing else refers to it (on a board that loads .mpy files, its bytecode
    too), and the next import loads it again. Rarely run code is imported for its use and dropped after.
    Allocates nothing (the short name is an interned string): it runs when the heap is exhausted."""
    import sys

    sys.modules.pop(name, None)
    globals().pop(name[11:], None)
