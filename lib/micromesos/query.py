# The views' request helpers: query-string values and JSON(P) response bodies (PROTOCOL.md §5).
# MIT licence. Imported with the views and dropped with them after the response (endpoints.py).
from micropython import const

_JSON = "application/json"
_JSONP = "text/javascript"  # §5: with ?jsonp=<cb> the body is cb(<json>)
_MAX_CALLBACK = const(64)


def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    c |= 32
    return c - 87 if 97 <= c <= 102 else -1


def unquote(s):
    """Percent-decoding of a query value ('+' is a space); ValueError for a bad escape or bad UTF-8."""
    if "%" not in s and "+" not in s:
        return s
    b = s.encode()
    out = bytearray()
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c == 37:  # '%'
            if i + 2 >= n:
                raise ValueError("bad percent escape")
            hi = _hexval(b[i + 1])
            lo = _hexval(b[i + 2])
            if hi < 0 or lo < 0:
                raise ValueError("bad percent escape")
            c = hi * 16 + lo
            i += 2
        elif c == 43:  # '+'
            c = 32
        out.append(c)
        i += 1
    return out.decode()


def arg(query, name):
    """The decoded value of `name` in a query string, or None."""
    for part in query.split("&"):
        k, _, v = part.partition("=")
        if k == name:
            return unquote(v)
    return None


def _callback(query):
    # A JSONP callback is a JavaScript name path (angular.callbacks._0, jQuery36_17): anything else is
    # refused, so a crafted link can't make the agent serve script of someone else's choosing.
    cb = arg(query, "jsonp")
    if cb is None:
        return None
    if not 0 < len(cb) <= _MAX_CALLBACK:
        raise ValueError("bad jsonp callback")
    for ch in cb:
        if not (ch.isalpha() or ch.isdigit() or ch in "_$."):
            raise ValueError("bad jsonp callback")
    return cb


def bad(msg):
    return 400, "text/plain", msg


def json_body(query, produce):
    """(status, content type, body) for a JSON endpoint: produce(out) writes the value, wrapped in the
    JSONP callback when the query names one."""
    try:
        cb = _callback(query)
    except ValueError:
        return bad(b"Invalid 'jsonp' callback.\n")
    if cb is None:
        return 200, _JSON, produce

    def wrapped(out):
        out.raw(cb.encode())
        out.byte(40)
        for x in produce(out):
            yield x
        out.byte(41)
    return 200, _JSONP, wrapped
