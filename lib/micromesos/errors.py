# The micro agent's exception hierarchy: one base, one class per kind of bad input.
# MIT licence.


class MesosError(Exception):
    # A board that loads .mpy files keeps the literal texts out of RAM (tools/logtext.py): the build turns
    # `raise E("text %d" % x)` into `raise E(offset, x)`, and the text is read from flash here, so the error holds
    # and prints it as the source's would. No class or module more for it: a frozen node has none to spare.
    def __init__(self, *a):
        if a and type(a[0]) is int:
            from .log import stored

            try:
                t = stored(a[0])
                if len(a) > 1:
                    try:
                        t = t % a[1]
                    except (TypeError, ValueError):
                        t = "%s %r" % (t, a[1])
                a = (t,)
            except MemoryError:
                pass  # no heap for the text now: the error carries its offset (and operand) as they are
        super().__init__(*a)


class DecodeError(MesosError):
    # Bytes that are not a valid protobuf message of the expected type.
    pass


class ProtocolError(MesosError):
    # Valid bytes, wrong conversation: bad HTTP framing, oversize input, bad UPID.
    pass


class ConfigError(MesosError):
    # Config file on the device is missing a key or holds a bad value; the message names the key.
    pass
