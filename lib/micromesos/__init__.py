# micromesos: an Apache Mesos agent for MicroPython microcontrollers.
# MIT licence.

__version__ = "0.1.0"

# The Mesos protocol version the agent speaks (RegisterSlaveMessage.version, PROTOCOL.md §0.3).
MESOS_VERSION = "1.12.0"


def drop(*names):
    """Modules micromesos.<name> out of sys.modules and this package: what they hold leaves RAM at the next
    collection once nothing else refers to it (on a board that loads .mpy files, their bytecode too), and
    the next import loads them again. Rarely run code is imported for its use and dropped after."""
    import sys

    g = globals()
    for n in names:
        sys.modules.pop("micromesos." + n, None)
        g.pop(n, None)
