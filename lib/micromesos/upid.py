# libprocess UPIDs "id@a.b.c.d:port": validate (in place on a buffer) and format. Nothing splits one into
# new strings: the agent reads the parts where they are (check() gives the '@', port_value() the port).
# MIT licence. Rules of PROTOCOL.md §1.1 (pid.cpp operator>>, pid.hpp validity); IPv4 literals only.
from micropython import const

from micromesos.errors import ProtocolError

_MAX_LEN = const(160)  # longest UPID accepted: "slave-observer(N)@" + 21 bytes of address fits many times
_AT = const(64)  # '@'
_COLON = const(58)  # ':'
_DOT = const(46)  # '.'
_ZERO = const(48)  # '0'


def check(buf, start=0, end=-1):
    """Validate the UPID in buf[start:end] in place; return the index of its '@'.

    buf is bytes, bytearray or memoryview. Allocates nothing unless it raises ProtocolError.
    Split at the first '@', then at the first ':' after it (§1.1); the id must be non-empty
    printable ASCII without '/', the host a dotted-quad IPv4 literal other than 0.0.0.0 (no
    DNS on the device) and the port a decimal 1..65535.
    """
    if end < 0:
        end = len(buf)
    if end - start > _MAX_LEN or end <= start:
        raise ProtocolError("UPID: empty or too long")
    at = -1
    for i in range(start, end):
        c = buf[i]
        if c == _AT:
            at = i
            break
        # Printable ASCII only: the id goes verbatim into a request line (§1.3); '/' would
        # split the receiver from the message name.
        if c <= 32 or c >= 127 or c == 47:
            raise ProtocolError("UPID: bad id byte")
    if at <= start:
        raise ProtocolError("UPID: missing id or '@'")
    colon = -1
    for i in range(at + 1, end):
        if buf[i] == _COLON:
            colon = i
            break
    if colon < 0:
        raise ProtocolError("UPID: missing ':port'")
    if not ipv4_ok(buf, at + 1, colon):
        raise ProtocolError("UPID: host is not a usable IPv4 literal")
    if port_value(buf, colon + 1, end) == 0:
        raise ProtocolError("UPID: bad port")
    return at


def ipv4_ok(buf, start, end):
    """True if buf[start:end] is a dotted quad a.b.c.d (each 0..255, no leading zeros, as
    inet_pton reads it) and not 0.0.0.0. Allocates nothing."""
    parts = 0
    digits = 0
    val = 0
    total = 0
    lead0 = False
    for i in range(start, end):
        c = buf[i]
        if c == _DOT:
            if digits == 0 or parts == 3:
                return False
            parts += 1
            total += val
            digits = 0
            val = 0
            continue
        c -= _ZERO
        if c < 0 or c > 9:
            return False
        if digits == 0:
            lead0 = c == 0
        elif lead0:
            return False  # "01": inet_pton rejects leading zeros
        digits += 1
        val = val * 10 + c
        if val > 255:
            return False
    if digits == 0 or parts != 3:
        return False
    return total + val > 0  # 0.0.0.0 is never a valid UPID address (pid.hpp)


def port_value(buf, start, end):
    """The decimal port in buf[start:end], or 0 if it is not 1..65535 (no sign, no leading zero)."""
    n = end - start
    if n < 1 or n > 5 or buf[start] == _ZERO:
        return 0
    val = 0
    for i in range(start, end):
        c = buf[i] - _ZERO
        if c < 0 or c > 9:
            return 0
        val = val * 10 + c
    return val if val <= 65535 else 0


def _as_bytes(s):
    if isinstance(s, str):
        return s.encode()
    return s


def format(id, ip, port):
    """'id@ip:port' after checking the parts (ProtocolError otherwise)."""
    if not isinstance(port, int) or not 0 < port <= 65535:
        raise ProtocolError("UPID: bad port")
    s = "%s@%s:%d" % (id, ip, port)
    check(_as_bytes(s))
    return s


def valid(s):
    """True if s (str or bytes) is a valid UPID."""
    try:
        b = _as_bytes(s)
        check(b, 0, len(b))
    except (ProtocolError, TypeError):
        return False
    return True
