# The link's session-start bodies (docs/LINK.md §3.1-3.2): HELLO and WELCOME written and read; and the other way
# a node's session goes on, after a deep sleep (§7.2): what it keeps, put back. MIT licence. Rare (once per
# session or sleep): imported when needed and dropped after, like registrar.py.
from micropython import const

from .linkframe import FrameError, put_header, put_u32, u32

# linkframe's numbers folded in: no globals slot each, so that this module's import (at every connect) needs
# no large block for its globals table (tests/test_node.py checks they agree).
_HELLO = const(1)  # linkframe.HELLO
_WELCOME = const(2)  # linkframe.WELCOME
_MIN_FRAME = const(64)  # linkframe.MIN_FRAME
_MAX_FRAME = const(1400)  # linkframe.MAX_FRAME
_MAX_WINDOW = const(8)  # linkframe.MAX_WINDOW
_MAX_NAME = const(32)  # linkframe.MAX_NAME
_HELLO_FIXED = const(17)  # HELLO body bytes before the name (linkframe checks the same)


def u16(buf, i):
    return buf[i] << 8 | buf[i + 1]


def put_u16(buf, i, v):
    buf[i] = v >> 8 & 255
    buf[i + 1] = v & 255


def name_ok(b, i, e):
    """b[i:e] is a node name: 1..32 bytes of A-Z a-z 0-9 . _ - (safe in file names, UPIDs and logs)."""
    if not 0 < e - i <= _MAX_NAME:
        return False
    for j in range(i, e):
        c = b[j]
        if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 45 or c == 46 or c == 95):
            return False
    return True


def hello(buf, nonce, wake_ms, listen_ms, max_frame, window, name, attempt=0, max_message=0):
    """Write a HELLO into buf; its length. name: the node's stable identity (1..32 of A-Z a-z 0-9 . _ -).
    attempt (header seq): the node's connect attempt, the same for the repeats of one (LINK.md §3.1).
    max_message: the largest message the node reassembles (announced in 256-byte units, rounded down)."""
    nb = name.encode() if isinstance(name, str) else bytes(name)
    if not name_ok(nb, 0, len(nb)):
        raise ValueError("name: 1..%d of A-Z a-z 0-9 . _ -" % _MAX_NAME)
    _limits(max_frame, window, ValueError)
    if not 0 <= wake_ms <= 0xFFFFFFFF or not 0 <= listen_ms <= 0xFFFFFFFF or not 0 <= nonce <= 0xFFFFFFFF:
        raise ValueError("nonce, wake_ms, listen_ms: u32")
    put_header(buf, _HELLO, 0, 0, 0, attempt & 0xFFFF, 0)
    put_u32(buf, 8, nonce)
    put_u32(buf, 12, wake_ms)
    put_u32(buf, 16, listen_ms)
    put_u16(buf, 20, max_frame)
    buf[22] = window
    buf[23] = min(max_message >> 8, 255)
    buf[24] = len(nb)
    buf[25 : 25 + len(nb)] = nb
    return 8 + _HELLO_FIXED + len(nb)


def read_hello(buf, n):
    """(nonce, wake_ms, listen_ms, max_frame, window, name) of a HELLO that check() passed; FrameError for
    values out of range or a name that is not UTF-8."""
    mf = u16(buf, 20)
    _limits(mf, buf[22], FrameError)
    if not name_ok(buf, 25, n):
        raise FrameError("HELLO name: 1..%d of A-Z a-z 0-9 . _ -" % _MAX_NAME)
    name = bytes(buf[25:n]).decode()
    return u32(buf, 8), u32(buf, 12), u32(buf, 16), mf, buf[22], name


def max_message(buf):
    """The largest message a HELLO's node takes, in bytes; 0 if it did not say (LINK.md §3.1)."""
    return buf[23] << 8


def welcome(buf, session, nonce, window, max_frame, unix_time, attempt=0):
    """Write a WELCOME (session 1..255 for the node that sent nonce); its length. attempt: the HELLO's, echoed in
    seq (keyed links, LINK.md §8.3; 0 without a key)."""
    if not 0 < session < 256:
        raise ValueError("session: 1..255")
    _limits(max_frame, window, ValueError)
    put_header(buf, _WELCOME, 0, session, 0, attempt & 0xFFFF, 0)
    put_u32(buf, 8, nonce)
    put_u16(buf, 12, max_frame)
    buf[14] = window
    buf[15] = 0
    put_u32(buf, 16, unix_time)
    return 20


def read_welcome(buf):
    """(session, nonce, window, max_frame, unix_time) of a WELCOME that check() passed."""
    mf = u16(buf, 12)
    _limits(mf, buf[14], FrameError)
    if buf[2] == 0:
        raise FrameError("WELCOME with session 0")
    return buf[2], u32(buf, 8), buf[14], mf, u32(buf, 16)


def set_clock(unix_time):
    """A node takes its gateway's clock from the WELCOME (unix_time: seconds since 1970, 0 if the gateway has
    none; LINK.md §3.2) when its own is more than 2 s away from it (never set: a board without NTP starts at its
    epoch; or drifted): the board's RTC set, as ntptime.settime does (it keeps time through deep sleep), or,
    with no RTC to set (the unix port: the OS's clock), updates.now() corrected. True if it changed either."""
    import time

    from . import updates

    if unix_time == 0 or abs(unix_time - updates.now()) <= 2:
        return False
    e = updates.EPOCH
    try:
        import machine

        tm = time.gmtime(unix_time - e)
        machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))
    except (ImportError, AttributeError, OSError, ValueError, OverflowError):
        pass  # no RTC here
    if abs(unix_time - updates.now()) > 2:  # no RTC, or not the one time.time() reads
        updates.EPOCH = e + unix_time - int(updates.now())
    return True


def _limits(max_frame, window, E):
    if not _MIN_FRAME <= max_frame <= _MAX_FRAME:
        raise E("max_frame %d: %d..%d" % (max_frame, _MIN_FRAME, _MAX_FRAME))
    if not 1 <= window <= _MAX_WINDOW:
        raise E("window %d: 1..%d" % (window, _MAX_WINDOW))


def kept(nl, sealed=None):
    """What a node keeps across a deep sleep (RTC memory, LINK.md §7.2), as bytes: session (u8), nxt, rnxt
    (u16), nonce (u32), attempt (u16): 11 bytes; with a keyed transport (linkauth.Sealed) 40 more: its session
    key, last counter sent, highest counter received (u32 each).
    nl: a NodeLink, quiet() (every message acknowledged: that is all the link state there is)."""
    session, nxt, rnxt = nl.link.saved()
    b = bytearray(11)
    b[0] = session
    put_u16(b, 1, nxt)
    put_u16(b, 3, rnxt)
    put_u32(b, 5, nl.nonce)
    put_u16(b, 9, nl.attempt)
    s = sealed.s if sealed is not None else None
    if s is not None:  # the session key, the last counter sent, the highest received (LINK.md §8.3)
        b.extend(s.raw)
        b.extend(bytes(8))
        put_u32(b, 43, s.tx)
        put_u32(b, 47, s.top)
    return bytes(b)


def resume(nl, b, sealed=None):
    """Put back what kept() gave, in a NodeLink made after the wake (any nonce): its session goes on with
    wake(), not HELLO. The attempt too, so that its next HELLO is newer than every earlier one of this nonce (a
    keyed gateway drops older ones as replays, §8.3). False if b is no kept state (connect() instead)."""
    if len(b) not in (11, 51) or not b[0] or (len(b) == 51) != (sealed is not None):
        return False
    nl.nonce = u32(b, 5)
    nl.attempt = u16(b, 9)
    nl.link.resume(b[0], u16(b, 1), u16(b, 3))
    nl.link.hold = True  # asleep until wake()
    nl.state = 1  # NodeLink's session-up state (what up() reads)
    if sealed is not None:
        from .linkauth import GATEWAY, NODE, Session

        sealed.s = Session(bytes(b[11:43]), NODE, GATEWAY, u32(b, 43), u32(b, 47))
    return nl.up()
