# Where bytes are not strict JSON (RFC 8259), for config.json and wifi.json (config.py drops it after the read).
# MIT licence. MicroPython's json takes trailing commas, a missing ':', leading zeros, and says only "syntax error".
from micropython import const

_MAX_DEPTH = const(16)  # brackets open at once; a config needs 2

# States of syntax(): what may come next.
_VALUE = const(0)       # a value (top level, after ':')
_VALUE_OR_END = const(1)  # after '[': a value or ']'
_NEXT_VALUE = const(2)  # after ',' in an array: a value (']' would be a trailing comma)
_KEY_OR_END = const(3)  # after '{': a key or '}'
_NEXT_KEY = const(4)    # after ',' in an object: a key ('}' would be a trailing comma)
_COLON = const(5)
_AFTER = const(6)       # after a value: ',' or the closing bracket, or the end at top level


def syntax(b):
    """(byte index, what is wrong) at the first place bytes b are not one strict JSON (RFC 8259) value,
    or None."""
    n = len(b)
    nest = bytearray(_MAX_DEPTH)  # the open brackets, nest[:d]
    d = 0
    want = _VALUE
    comma = 0
    i = 0
    while True:
        while i < n and b[i] in b" \t\r\n":
            i += 1
        if i == n:
            return None if want == _AFTER and not d else (i, "unexpected end of the file")
        c = b[i]
        if want == _AFTER:
            if not d:
                return i, "unexpected data after the JSON value"
            close = nest[d - 1] + 2  # '[' + 2 = ']', '{' + 2 = '}'
            if c == 44:  # ','
                comma = i
                want = _NEXT_KEY if close == 125 else _NEXT_VALUE
            elif c == close:
                d -= 1
            else:
                return i, "expected ',' or '%s'" % chr(close)
            i += 1
            continue
        if want == _COLON:
            if c != 58:
                return i, "expected ':'"
            want = _VALUE
            i += 1
            continue
        if (want == _NEXT_VALUE and c == 93) or (want == _NEXT_KEY and c == 125):
            return comma, "trailing comma"
        if (want == _VALUE_OR_END and c == 93) or (want == _KEY_OR_END and c == 125):
            d -= 1
            want = _AFTER
            i += 1
            continue
        if want >= _KEY_OR_END and c != 34:
            return i, "expected a \"key\""
        if c == 34:  # a string
            j = i + 1
            while True:
                if j >= n:
                    return i, "unterminated string"
                e = b[j]
                if e == 34:
                    break
                if e < 32:
                    return j, "control character in a string (write \\n, \\t)"
                if e == 92:
                    j += 1
                    if j < n and b[j] == 117:  # \uXXXX
                        for k in range(j + 1, j + 5):
                            if k >= n or b[k] not in b"0123456789abcdefABCDEF":
                                return j - 1, "bad \\u escape"
                        j += 4
                    elif j >= n or b[j] not in b"\"\\/bfnrt":
                        return j - 1, "bad escape"
                j += 1
            i = j + 1
            want = _COLON if want >= _KEY_OR_END else _AFTER
            continue
        if c == 123 or c == 91:  # '{' '['
            if d == _MAX_DEPTH:
                return i, "nested deeper than %d" % _MAX_DEPTH
            nest[d] = c
            d += 1
            want = _KEY_OR_END if c == 123 else _VALUE_OR_END
            i += 1
            continue
        for lit in (b"true", b"false", b"null"):
            if b[i:i + len(lit)] == lit:
                i += len(lit)
                break
        else:
            # -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
            j = i + (c == 45)
            k = _digits(b, j)
            if k == j or (b[j] == 48 and k > j + 1):
                return i, "expected a value" if k == j else "leading zero in a number"
            if k < n and b[k] == 46:
                j = k + 1
                k = _digits(b, j)
                if k == j:
                    return j, "expected digits after '.'"
            if k < n and b[k] in b"eE":
                j = k + 1 + (k + 1 < n and b[k + 1] in b"+-")
                k = _digits(b, j)
                if k == j:
                    return j, "expected digits in the exponent"
            i = k
        want = _AFTER


def _digits(b, i):
    while i < len(b) and 48 <= b[i] <= 57:
        i += 1
    return i
