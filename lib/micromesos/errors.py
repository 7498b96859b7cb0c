# The micro agent's exception hierarchy: one base, one class per kind of bad input.
# MIT licence.


class MesosError(Exception):
    pass


class DecodeError(MesosError):
    # Bytes that are not a valid protobuf message of the expected type.
    pass


class ProtocolError(MesosError):
    # Valid bytes, wrong conversation: bad HTTP framing, oversize input, bad UPID.
    pass


class ConfigError(MesosError):
    # Config file on the device is missing a key or holds a bad value; the message names the key.
    pass
