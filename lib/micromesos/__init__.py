# micromesos: an Apache Mesos agent for MicroPython microcontrollers.
# MIT licence.

__version__ = "0.1.0"

# The Mesos protocol version the agent speaks (RegisterSlaveMessage.version, PROTOCOL.md §0.3).
MESOS_VERSION = "1.12.0"
