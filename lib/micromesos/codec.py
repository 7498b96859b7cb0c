# proto2 codec over the schema tables: decode(T, buf) -> dict, encode(T, dict) -> bytes, allocation-free ping.
# MIT licence. Only DecodeError leaves decode() for bad bytes (MemoryError for a heap too small for good ones);
# encode raises ValueError/TypeError for bad input.
from micropython import const

from . import schema
from .errors import DecodeError
from .wire import Reader, put_bytes, put_double, put_varint, varint_size

# Input bounds, checked before anything is allocated. Plain globals so a board with more RAM may raise
# them (codec.MAX_MESSAGE = ...). Legitimate Mesos messages nest at most 8 deep (ReregisterSlave >
# completed_frameworks > tasks > statuses > limitation > resources > reservations > labels > label);
# only ContainerID.parent chains go deeper. Each level is one Python call on the C stack, so the bound
# also keeps hostile nesting away from the interpreter's own recursion limit.
MAX_MESSAGE = 32768
MAX_DEPTH = 12

_FIELDS = schema.FIELDS  # 4 bytes per field: number, flags, sub-message type, index into _KEYS
_FIRST = schema.FIRST
_KEYS = schema.KEYS
_NTYPES = const(81)  # schema.NTYPES
_KIND = const(15)  # flags: these mirror schema's layout constants (a test checks they agree)
_REQ = const(0x10)
_REP = const(0x20)
_RAW = const(0x40)
_INT32 = const(0)  # kinds
_INT64 = const(1)
_UINT32 = const(2)
_UINT64 = const(3)
_BOOL = const(4)
_ENUM = const(5)
_DOUBLE = const(6)
_STRING = const(7)
_BYTES = const(8)
_MSG = const(9)
_ID = const(10)
_ABSENT = object()
_BYTESLIKE = (bytes, bytearray, memoryview)
# Range checks and sign fixes shift instead of comparing with 2**31, 2**63 ...: on a 32-bit board every int
# from 2**30 up is a heap object, and each such literal would be one more held by this module (~300 B).
_BITS = b"\x1f\x3f\x20\x40"  # INT32, INT64, UINT32, UINT64: x >> bits is 0 (or -1 if signed) in range


# --- decode --------------------------------------------------------------------------------------

def decode(T, buf, start=0, end=-1, raw=True):
    """Decode the T message in buf[start:end] (end -1 or None: to the end) into a dict keyed by field name.

    Absent optional fields are absent keys; repeated fields are lists (packed or not); IDs are str.
    With raw=True, RAW sub-messages (FrameworkInfo, Resource, ExecutorInfo, ...) come back as their exact
    wire bytes; decode them further with decode(T, those_bytes). Bad bytes of any kind raise DecodeError
    and nothing else (ValueError only for a T that is not a message type: a bug in the caller); good bytes
    whose dict finds no heap raise MemoryError, so that a full board is never taken for a bad sender. Errors
    name a message type by its number, "#52.update" (its name is schema.name(52): names take RAM).
    """
    if not 0 < T < _NTYPES:
        raise ValueError("no message type %r" % (T,))
    if end is None or end < 0:
        end = len(buf)
    if end - start > MAX_MESSAGE:
        raise DecodeError("#%d of %d bytes is over MAX_MESSAGE (%d)"
                          % (T, end - start, MAX_MESSAGE))
    r = Reader()
    r.reset(buf, start, end)
    try:
        return _decode(r, memoryview(buf), T, raw, 0, None)
    except (DecodeError, MemoryError):
        raise  # MemoryError: good bytes, too little heap for their dict (never a bad message)
    except (IndexError, ValueError, TypeError, KeyError, RuntimeError, OverflowError) as e:
        # Never seen on any input (tests/fuzz/fuzz_codec.py hunts for this "internal" marker); should a bug
        # slip through, the caller still gets the one error type it handles.
        raise DecodeError("#%d: internal %s: %s" % (T, type(e).__name__, e))


def _decode(r, mv, T, raw, depth, out):
    # One call (one heap-allocated frame, it is large) per message; per field only small-frame calls:
    # MicroPython puts any frame over 11 words on the heap at every call.
    F = _FIELDS
    a = 4 * (_FIRST[2 * T] | _FIRST[2 * T + 1] << 8)
    b = 4 * (_FIRST[2 * T + 2] | _FIRST[2 * T + 3] << 8)
    if out is None:
        out = {}
    while True:
        fn = r.next()
        if fn == 0:
            break
        f = -1
        for i in range(a, b, 4):
            if F[i] == fn:
                f = F[i + 1]
                name = _KEYS[F[i + 3]]
                break
        if f < 0:
            r.skip()  # unknown field: newer masters add fields (§1.8)
            continue
        kind = f & _KIND
        wt = r.wt
        if kind >= _STRING:
            if wt != 2:
                _wrong(r, T, name)
            end = r.lendelim()
            if kind == _STRING:
                v = _str(mv[r.pos:end])
                if v is None:
                    raise DecodeError("invalid UTF-8 in #%d.%s at %d" % (T, name, r.pos))
            elif kind == _BYTES:
                v = bytes(mv[r.pos:end])
            elif kind == _ID:  # SlaveID & co, {1: string value}: the str itself (§3.1)
                outer = r.end
                r.end = end
                v = None
                while True:
                    fn = r.next()
                    if fn == 0:
                        break
                    if fn != 1:
                        r.skip()
                        continue
                    if r.wt != 2:
                        _wrong(r, T, name)
                    e = r.lendelim()
                    v = _str(mv[r.pos:e])
                    if v is None:
                        raise DecodeError("invalid UTF-8 in #%d.%s at %d" % (T, name, r.pos))
                    r.pos = e
                r.end = outer
                if v is None:
                    raise DecodeError("missing required value in #%d.%s before %d"
                                      % (T, name, end))
            else:
                sub = F[i + 2]
                prev = None if f & _REP else out.get(name)
                if sub == 0 or (raw and f & _RAW):
                    v = bytes(mv[r.pos:end])
                    if isinstance(prev, bytes):  # a singular message sent twice merges: bytes concatenate
                        v = prev + v
                else:
                    if depth >= MAX_DEPTH:
                        raise DecodeError("#%d.%s nests deeper than MAX_DEPTH (%d) at %d"
                                          % (T, name, MAX_DEPTH, r.at))
                    outer = r.end
                    r.end = end
                    v = _decode(r, mv, sub, raw, depth + 1, prev if isinstance(prev, dict) else None)
                    r.end = outer
            r.pos = end
        elif wt == (1 if kind == _DOUBLE else 0):
            v = _scalar(r, kind)
        elif wt == 2 and f & _REP:  # packed repeated scalars: accepted although proto2 sends them unpacked
            end = r.lendelim()
            lst = out.get(name)
            if lst is None:
                lst = out[name] = []
            outer = r.end
            r.end = end
            while r.pos < end:
                lst.append(_scalar(r, kind))
            r.end = outer
            continue
        else:
            _wrong(r, T, name)
        if f & _REP:
            lst = out.get(name)
            if lst is None:
                out[name] = [v]
            else:
                lst.append(v)
        else:
            out[name] = v
    for i in range(a, b, 4):
        if F[i + 1] & _REQ and _KEYS[F[i + 3]] not in out:
            raise DecodeError("missing required #%d.%s before %d" % (T, _KEYS[F[i + 3]], r.pos))
    return out


def _wrong(r, T, name):
    raise DecodeError("wrong wire type %d for #%d.%s at %d" % (r.wt, T, name, r.at))


def _scalar(r, kind):
    if kind == _DOUBLE:
        return r.double()
    v = r.varint()
    if kind == _BOOL:
        return v != 0
    # Rare: only large or negative numbers (v is the unsigned 64-bit varint) take these branches. No long-int
    # constants (each one a heap object on a 32-bit board, where 0x3FFFFFFF is the largest small int): shifts,
    # each guarded, as shifting a small int by the word size makes a long int even of 0.
    if v > 0x3FFFFFFF:
        if kind == _INT64:
            if v >> 63:
                v -= v >> 63 << 64
        elif kind != _UINT64:  # 32-bit kinds keep the low 32 bits of the varint, as protobuf does
            if v >> 32:
                v -= v >> 32 << 32
            if kind != _UINT32 and v >> 31:  # ... as a signed int32
                v -= v >> 31 << 32
    return v


def _str(m):
    """The UTF-8 text in memoryview m, or None if it isn't valid UTF-8."""
    try:
        s = str(m, "utf-8")
    except UnicodeError:
        return None
    # MicroPython's decoder lets surrogates, overlong forms and code points above U+10FFFF through;
    # when the text isn't plain ASCII (the lengths differ), check it strictly so both runtimes agree.
    if len(s) != len(m) and not _utf8_ok(m, 0, len(m)):
        return None
    return s


def _utf8_ok(m, i, e):
    while i < e:
        c = m[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            n = 1
        elif 0xE0 <= c <= 0xEF:
            n = 2
            if c == 0xE0:
                lo = 0xA0  # overlong
            elif c == 0xED:
                hi = 0x9F  # surrogates
        elif 0xF0 <= c <= 0xF4:
            n = 3
            if c == 0xF0:
                lo = 0x90  # overlong
            elif c == 0xF4:
                hi = 0x8F  # above U+10FFFF
        else:
            return False
        if i + n >= e or not lo <= m[i + 1] <= hi:
            return False
        for j in range(i + 2, i + n + 1):
            if not 0x80 <= m[j] <= 0xBF:
                return False
        i += n + 1
    return True


_pr = Reader()  # ping_connected's own reader: the agent is one thread, and this path must not allocate


def ping_connected(buf, start=0, end=-1):
    """PingSlaveMessage.connected (§2.5) read in place, allocating nothing; DecodeError if malformed."""
    r = _pr
    r.reset(buf, start, end)
    c = -1
    while True:
        fn = r.next()
        if fn == 0:
            break
        if fn != 1:
            r.skip()
        elif r.wt == 0:
            c = r.varint()
        else:
            _wrong(r, 61, "connected")
    if c < 0:
        raise DecodeError("missing required #%d.%s" % (61, "connected"))  # encode's text: one str object
    return c != 0


# --- encode --------------------------------------------------------------------------------------
# Two passes over the dict and nothing kept between them: _size() checks everything and sizes the whole
# message; _write() fills one bytearray of that size, each sub-message after a 1-byte length it then
# corrects in place (a body of 128 bytes or more moves up by the extra length bytes: one memmove). A list of
# sub-message sizes (or of encoded strings) is one more block that must find room on a fragmented heap, and
# it grows by doubling: the loaded board's registration failed there first when its heap was short.

def size(T, obj):
    """Bytes that encode(T, obj) produces."""
    return _size(T, obj, 0)


def encode(T, obj):
    """Serialize dict obj as message T: fields in field-number order, required fields always (zero values
    too, §0.6), optional fields iff their key is present. A sub-message may be a dict or bytes-like (written
    verbatim: how raw bytes are echoed). ValueError/TypeError for bad input."""
    return bytes(encode_buf(T, obj))


def encode_buf(T, obj):
    """encode() into the bytearray it returns, with no bytes copy: one block of the message's size, not two (a
    small board's status update)."""
    buf = bytearray(_size(T, obj, 0))
    _write(T, obj, memoryview(buf), 0)
    return buf


def _size(T, obj, depth):
    # One call per message, every field handled inline (a call per field would heap-allocate its frame).
    if not isinstance(obj, dict):
        raise TypeError("#%d must be a dict or bytes, not %s" % (T, type(obj).__name__))
    if depth > MAX_DEPTH:
        raise ValueError("#%d nests deeper than MAX_DEPTH (%d)" % (T, MAX_DEPTH))
    F = _FIELDS
    n = 0
    seen = 0
    a = 4 * (_FIRST[2 * T] | _FIRST[2 * T + 1] << 8)
    end = 4 * (_FIRST[2 * T + 2] | _FIRST[2 * T + 3] << 8)
    for i in range(a, end, 4):
        f = F[i + 1]
        name = _KEYS[F[i + 3]]
        v = obj.get(name, _ABSENT)
        if v is _ABSENT:
            if f & _REQ:
                raise ValueError("missing required #%d.%s" % (T, name))
            continue
        seen += 1
        kind = f & _KIND
        rep = f & _REP
        if rep and not isinstance(v, (list, tuple)):
            raise TypeError("#%d.%s is repeated: list or tuple" % (T, name))
        for j in range(len(v) if rep else 1):
            x = v[j] if rep else v
            n += 1 if F[i] < 16 else 2  # the key; field numbers stay below 256
            # bool is an int subclass in CPython but not in MicroPython: test it first so both agree.
            if kind == _BOOL:
                if not isinstance(x, (bool, int)):
                    raise TypeError("#%d.%s: %s expected" % (T, name, "bool"))
                n += 1
            elif kind <= _DOUBLE:
                if isinstance(x, bool) or not isinstance(x, (int, float) if kind == _DOUBLE else int):
                    raise TypeError("#%d.%s: %s expected"
                                    % (T, name, "number" if kind == _DOUBLE else "int"))
                if kind == _DOUBLE:
                    n += 8
                else:
                    t = _INT32 if kind == _ENUM else kind
                    # in range: x >> bits is 0, or -1 for a signed kind; y = x >> bits is one of those two
                    # iff (y + 1) >> 1 is 0 (x < 0 only for a signed kind); x is an int here, mypy cannot narrow it
                    if (t >= _UINT32 and x < 0) or (x >> _BITS[t]) + 1 >> 1:  # type: ignore[operator]
                        raise ValueError("#%d.%s: %d out of range" % (T, name, x))
                    n += varint_size(x)
            elif kind != _STRING and isinstance(x, _BYTESLIKE):  # bytes, or an already-encoded message
                m = len(x)
                n += varint_size(m) + m
            elif kind == _STRING or kind == _ID:
                if not isinstance(x, str):
                    raise TypeError("#%d.%s: %s expected" % (T, name, "str"))
                m = len(x.encode())  # encoded again by _write: nothing is kept between the passes
                if kind == _ID:
                    m += 1 + varint_size(m)  # the ID message around the string: key 0x0a, length, bytes
                n += varint_size(m) + m
            elif kind == _BYTES:
                raise TypeError("#%d.%s: %s expected" % (T, name, "bytes"))
            else:
                sub = F[i + 2]
                if sub == 0:
                    raise TypeError("#%d.%s is kept opaque: bytes expected" % (T, name))
                m = _size(sub, x, depth + 1)
                n += varint_size(m) + m
    if seen != len(obj):
        known = []
        for i in range(a, end, 4):
            known.append(_KEYS[F[i + 3]])
        unknown = []
        for x in obj:
            if x not in known:
                unknown.append(x)
        raise ValueError("#%d has no field %s" % (T, unknown))
    return n


def _write(T, obj, buf, pos):
    # buf: a memoryview of the output (its slices move bytes in place, allocating no copy)
    F = _FIELDS
    a = 4 * (_FIRST[2 * T] | _FIRST[2 * T + 1] << 8)
    for i in range(a, 4 * (_FIRST[2 * T + 2] | _FIRST[2 * T + 3] << 8), 4):
        v = obj.get(_KEYS[F[i + 3]], _ABSENT)
        if v is _ABSENT:
            continue
        f = F[i + 1]
        kind = f & _KIND
        key = F[i] << 3
        rep = f & _REP
        for j in range(len(v) if rep else 1):
            x = v[j] if rep else v
            if kind == _DOUBLE:
                pos = put_varint(buf, pos, key | 1)
                pos = put_double(buf, pos, x)
            elif kind < _DOUBLE:
                pos = put_varint(buf, pos, key)
                pos = put_varint(buf, pos, (1 if x else 0) if kind == _BOOL else x)
            else:
                pos = put_varint(buf, pos, key | 2)
                if kind != _STRING and isinstance(x, _BYTESLIKE):
                    pos = put_varint(buf, pos, len(x))
                    pos = put_bytes(buf, pos, x)
                elif kind == _MSG:
                    e = _write(F[i + 2], x, buf, pos + 1)  # the body, after 1 byte for its length
                    m = e - pos - 1
                    if m > 0x7F:  # the length takes more bytes: move the body up (memmove, in place)
                        k = varint_size(m) - 1
                        buf[pos + 1 + k:e + k] = buf[pos + 1:e]
                        e += k
                    put_varint(buf, pos, m)
                    pos = e
                else:
                    b = x.encode()
                    m = len(b)
                    if kind == _ID:
                        pos = put_varint(buf, pos, 1 + varint_size(m) + m)
                        buf[pos] = 0x0A
                        pos += 1
                    pos = put_varint(buf, pos, m)
                    pos = put_bytes(buf, pos, b)
    return pos
