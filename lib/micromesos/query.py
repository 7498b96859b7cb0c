# The views' query-string values (PROTOCOL.md §5): /files arguments, a percent-escaped JSONP callback.
# MIT licence. Imported with the views and dropped with them after the response (endpoints.py).


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


def bad(msg):
    return 400, "text/plain", msg

