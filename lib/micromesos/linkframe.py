# Node<->gateway link frames (docs/LINK.md §2-3): the 8-byte header checked and written in place.
# MIT licence. Bad bytes raise FrameError (a DecodeError) and nothing else; nothing here allocates per frame.
# The HELLO/WELCOME bodies (session start only) are linkhello.py's. The numbers below are public by name
# (linkframe.HELLO) through __getattr__ at the end.
from micropython import const

from .errors import DecodeError

_VERSION = const(1)  # high nibble of byte 0
_HEADER = const(8)  # vt, flags, session, sack, seq (u16), ack (u16); big-endian
# Frame types (low nibble of byte 0), LINK.md §3.
_HELLO = const(1)  # node -> gateway: who I am, my duty cycle, my receive limits
_WELCOME = const(2)  # gateway -> node: your session
_DATA = const(3)  # either way: one fragment of a message, sequenced
_ACK = const(4)  # either way: the header's ack/sack only
_WAKE = const(5)  # node -> gateway: I am listening now
_SLEEP = const(6)  # node -> gateway: I sleep for sleep_ms from now
_RESET = const(7)  # either way: I have no session with you: start again with HELLO
# Flags (byte 1).
_MORE = const(1)  # DATA: the message goes on in the next sequence number
_PENDING = const(2)  # the sender has more queued for the receiver: stay awake
# Limits (LINK.md §2).
_MIN_FRAME = const(64)  # the smallest max_frame a peer may announce
_MAX_FRAME = const(1400)  # the largest (UDP on any Ethernet/Wi-Fi path without IP fragments)
_MAX_WINDOW = const(8)  # frames in flight; sack has 8 bits, for ack+1 .. ack+8
_MAX_NAME = const(32)
_HELLO_FIXED = const(17)  # HELLO body before the name
# RESET reasons (its one body byte).
_NO_SESSION = const(1)
_BAD_HELLO = const(2)
_FULL = const(3)
_CLOSING = const(4)


class FrameError(DecodeError):
    # Bytes that are no valid link frame: the receiver counts and drops them, the link goes on.
    pass


def check(buf, n, mtu):
    """The type of the frame in buf[:n] after checking its header and length; FrameError otherwise.
    mtu: the most this receiver accepts (a longer datagram is refused, not cut)."""
    if n < _HEADER:
        raise FrameError("frame of %d bytes: header is 8" % n)
    if n > mtu:
        raise FrameError("frame of %d bytes over max_frame %d" % (n, mtu))
    vt = buf[0]
    t = vt & 15
    if vt >> 4 != _VERSION or not _HELLO <= t <= _RESET:
        raise FrameError("version/type 0x%02x" % vt)
    # Body lengths of the fixed-size control frames (0: header only), indexed by type; -1: variable.
    b = (-2, -1, 12, -1, 0, 0, 4, 1)[t]  # a constant: in flash when frozen
    if b >= 0:
        if n - _HEADER != b:
            raise FrameError("type %d with a %d-byte body" % (t, n - _HEADER))
    elif t == _DATA:
        if n == _HEADER:
            raise FrameError("DATA without a body")
    elif n < _HEADER + _HELLO_FIXED + 1 or n != _HEADER + _HELLO_FIXED + buf[_HEADER + 16]:
        raise FrameError("HELLO of %d bytes" % n)
    return t


def hand(t, buf, n):
    """t.on_frame(buf, n) for a node's transport t (linkudp, linkespnow, linkuart): a frame the link refuses
    counts in t.bad, a handler that failed on it in t.errors and t.last_error; the transport goes on."""
    try:
        t.on_frame(buf, n)
    except FrameError:
        t.bad += 1
    except Exception as e:  # noqa: BLE001  the owner's handler failed on one frame: counted
        t.errors += 1
        t.last_error = e


def put_header(buf, t, flags, session, sack, seq, ack):
    buf[0] = _VERSION << 4 | t
    buf[1] = flags
    buf[2] = session
    buf[3] = sack
    buf[4] = seq >> 8
    buf[5] = seq & 255
    buf[6] = ack >> 8
    buf[7] = ack & 255


def u32(buf, i):
    return buf[i] << 24 | buf[i + 1] << 16 | buf[i + 2] << 8 | buf[i + 3]


def put_u32(buf, i, v):
    # SLEEP's body (sleep_ms) and the HELLO/WELCOME fields: big-endian like every field on the link.
    buf[i] = v >> 24 & 255
    buf[i + 1] = v >> 16 & 255
    buf[i + 2] = v >> 8 & 255
    buf[i + 3] = v & 255


def __getattr__(name: str) -> int:
    # linkframe.HELLO and the other numbers above by name, for the gateway and tests: a node's modules fold them
    # in as their own consts, and a globals slot each would cost every node RAM (the table is built per call).
    v = {"VERSION": _VERSION, "HEADER": _HEADER, "HELLO": _HELLO, "WELCOME": _WELCOME, "DATA": _DATA, "ACK": _ACK,
         "WAKE": _WAKE, "SLEEP": _SLEEP, "RESET": _RESET, "MORE": _MORE, "PENDING": _PENDING,
         "MIN_FRAME": _MIN_FRAME, "MAX_FRAME": _MAX_FRAME, "MAX_WINDOW": _MAX_WINDOW, "MAX_NAME": _MAX_NAME,
         "NO_SESSION": _NO_SESSION, "BAD_HELLO": _BAD_HELLO, "FULL": _FULL, "CLOSING": _CLOSING}.get(name)
    if v is None:
        raise AttributeError(name)
    return v
