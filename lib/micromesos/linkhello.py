# The link's session-start bodies (docs/LINK.md §3.1-3.2): HELLO and WELCOME written and read.
# MIT licence. Rare (once per session): imported when a session starts and dropped after, like registrar.py.
from .linkframe import (HELLO, MAX_FRAME, MAX_NAME, MAX_WINDOW, MIN_FRAME, WELCOME, FrameError, put_header,
                        put_u32, u32)

_HELLO_FIXED = 17  # HELLO body bytes before the name (linkframe checks the same)


def u16(buf, i):
    return buf[i] << 8 | buf[i + 1]


def put_u16(buf, i, v):
    buf[i] = v >> 8 & 255
    buf[i + 1] = v & 255


def name_ok(b, i, e):
    """b[i:e] is a node name: 1..32 bytes of A-Z a-z 0-9 . _ - (safe in file names, UPIDs and logs)."""
    if not 0 < e - i <= MAX_NAME:
        return False
    for j in range(i, e):
        c = b[j]
        if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 45 or c == 46 or c == 95):
            return False
    return True


def hello(buf, nonce, wake_ms, listen_ms, max_frame, window, name, attempt=0):
    """Write a HELLO into buf; its length. name: the node's stable identity (1..32 of A-Z a-z 0-9 . _ -).
    attempt (header seq): the node's connect attempt, the same for the repeats of one (LINK.md §3.1)."""
    nb = name.encode() if isinstance(name, str) else bytes(name)
    if not name_ok(nb, 0, len(nb)):
        raise ValueError("name: 1..%d of A-Z a-z 0-9 . _ -" % MAX_NAME)
    _limits(max_frame, window, ValueError)
    if not 0 <= wake_ms <= 0xFFFFFFFF or not 0 <= listen_ms <= 0xFFFFFFFF or not 0 <= nonce <= 0xFFFFFFFF:
        raise ValueError("nonce, wake_ms, listen_ms: u32")
    put_header(buf, HELLO, 0, 0, 0, attempt & 0xFFFF, 0)
    put_u32(buf, 8, nonce)
    put_u32(buf, 12, wake_ms)
    put_u32(buf, 16, listen_ms)
    put_u16(buf, 20, max_frame)
    buf[22] = window
    buf[23] = 0  # flags, reserved
    buf[24] = len(nb)
    buf[25 : 25 + len(nb)] = nb
    return 8 + _HELLO_FIXED + len(nb)


def read_hello(buf, n):
    """(nonce, wake_ms, listen_ms, max_frame, window, name) of a HELLO that check() passed; FrameError for
    values out of range or a name that is not UTF-8."""
    mf = u16(buf, 20)
    _limits(mf, buf[22], FrameError)
    if not name_ok(buf, 25, n):
        raise FrameError("HELLO name: 1..%d of A-Z a-z 0-9 . _ -" % MAX_NAME)
    name = bytes(buf[25:n]).decode()
    return u32(buf, 8), u32(buf, 12), u32(buf, 16), mf, buf[22], name


def welcome(buf, session, nonce, window, max_frame, unix_time):
    """Write a WELCOME (session 1..255 for the node that sent nonce); its length."""
    if not 0 < session < 256:
        raise ValueError("session: 1..255")
    _limits(max_frame, window, ValueError)
    put_header(buf, WELCOME, 0, session, 0, 0, 0)
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


def _limits(max_frame, window, E):
    if not MIN_FRAME <= max_frame <= MAX_FRAME:
        raise E("max_frame %d: %d..%d" % (max_frame, MIN_FRAME, MAX_FRAME))
    if not 1 <= window <= MAX_WINDOW:
        raise E("window %d: 1..%d" % (window, MAX_WINDOW))
