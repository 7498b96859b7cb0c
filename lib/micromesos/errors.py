# The micro agent's exception hierarchy: one base, one class per kind of bad input.
# MIT licence.


class MesosError(Exception):
    # A board that loads .mpy files keeps the literal texts out of RAM (tools/logtext.py): the build turns
    # `raise E("text %d" % x)` into `raise E(offset, x)`, and the error's text becomes a Text, read when printed.
    def __init__(self, *a):
        if a and type(a[0]) is int:
            a = (Text(*a),)
        super().__init__(*a)


class Text:
    # An error's text still in flash (micromesos/logtext.txt at `at`), with its format's operand, if any: str()
    # reads and formats it, repr() quotes it, so the error prints as it would with the literal.
    def __init__(self, at, *operand):
        self.at = at
        self.operand = operand

    def __str__(self):
        from . import log

        t = log.stored(self.at)
        if self.operand:
            try:
                t = t % self.operand[0]
            except (TypeError, ValueError):
                t = "%s %r" % (t, self.operand[0])
        return t

    def __repr__(self):
        return repr(str(self))


class DecodeError(MesosError):
    # Bytes that are not a valid protobuf message of the expected type.
    pass


class ProtocolError(MesosError):
    # Valid bytes, wrong conversation: bad HTTP framing, oversize input, bad UPID.
    pass


class ConfigError(MesosError):
    # Config file on the device is missing a key or holds a bad value; the message names the key.
    pass
