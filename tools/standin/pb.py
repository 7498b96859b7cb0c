# The stand-in master's window onto the project codec (lib/micromesos/codec.py, schema.py) under CPython.
# MIT licence. Message types by their proto names; everything decoded (raw=False); JSON-friendly views for events.
import re

from micromesos import codec, errors, schema

from .lphttp import MAX_BODY


class BodyError(Exception):
    """A body the real master could not parse (ParseFromString failed): it would drop it silently (§0.2)."""


def T(name):
    t = getattr(schema, name, None) if name.isidentifier() else None
    if not isinstance(t, int) or not 0 < t < schema.NTYPES or schema.name(t) != name:
        raise KeyError("schema has no message type %r" % name)
    return t


def has_type(name):
    try:
        T(name)
    except KeyError:
        return False
    return True


def decode(name, body):
    """Decode a whole message body. BodyError where protobuf parsing fails, which the codec reports for a
    missing required field anywhere in the tree too (protobuf's IsInitialized check, §1.8)."""
    body = bytes(body)
    # The device codec caps a message at MAX_MESSAGE; a real master has no such cap. Lift it for this
    # one synchronous call only, so nothing else in the process sees a changed codec.
    saved = codec.MAX_MESSAGE
    codec.MAX_MESSAGE = max(saved, MAX_BODY)
    try:
        return codec.decode(T(name), body, 0, len(body), raw=False)
    except errors.DecodeError as e:
        raise BodyError("undecodable %s body: %s" % (name, named(str(e))))
    finally:
        codec.MAX_MESSAGE = saved


def named(text):
    """The codec's error text with its message type numbers as names: "#20.hostname" -> "SlaveInfo.hostname"."""
    return re.sub(r"#(\d+)", lambda m: schema.name(int(m.group(1))) if int(m.group(1)) < schema.NTYPES
                  else m.group(0), text)


def encode(name, obj):
    return bytes(codec.encode(T(name), obj))


def jsonable(x):
    """Decoded protobuf -> JSON-safe value (bytes become 'hex:...')."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (bytes, bytearray, memoryview)):
        return "hex:" + bytes(x).hex()
    return x


def from_jsonable(x):
    if isinstance(x, dict):
        return {k: from_jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [from_jsonable(v) for v in x]
    if isinstance(x, str) and x.startswith("hex:"):
        return bytes.fromhex(x[4:])
    return x
