# proto2 wire format primitives: an allocation-free pull Reader, and writers that fill a preallocated buffer.
# MIT licence. Wire types 0 (varint), 1 (64-bit), 2 (length-delimited), 5 (32-bit); groups are refused.
from micropython import const
import struct

from .errors import DecodeError

_VARINT = const(0)
_I64 = const(1)
_LEN = const(2)
_I32 = const(5)

# No long-int constants (2**64 - 1 ...): from 2**30 up each is a heap object on a 32-bit board. The 64-bit
# wrap is done with shifts instead, on the rare 10-byte varints only.


class Reader:
    """Pull parser over buf[start:end]. Iterating keys, skipping values and reading varints below
    2**30 allocate nothing: every method keeps its frame under MicroPython's 11-word on-stack limit
    (bigger frames go to the heap on each call) and only stores small ints into existing attributes.

        r.reset(buf, start, end); fn = r.next()  # 0 at the end; r.wt is the wire type, r.at the key's offset
        r.varint(); r.double(); end = r.lendelim()  # value = buf[r.pos:end]; the caller sets r.pos = end
        r.skip()                                     # the current field's value, any wire type
    Errors are DecodeError with the offset. One Reader may walk nested messages: save r.end, set it
    to the sub-message end, restore it after.
    """

    def __init__(self):
        self.buf = b""
        self.pos = 0
        self.end = 0
        self.wt = 0
        self.at = 0

    def reset(self, buf, start=0, end=-1):
        n = len(buf)
        if end < 0:
            end = n
        if start < 0 or start > end or end > n:
            raise DecodeError("bad bounds %d..%d of %d bytes" % (start, end, n))
        self.buf = buf
        self.pos = start
        self.end = end
        self.wt = 0
        self.at = start

    def next(self):
        """Next field number (its wire type in self.wt), or 0 at the end of the message."""
        p = self.pos
        if p >= self.end:
            return 0
        self.at = p
        k = self.varint()
        w = k & 7
        if k < 8 or k >> 32:  # field number 0, or a key wider than protobuf's 32 bits
            raise DecodeError("bad field key at %d" % p)
        if w == 3 or w == 4 or w > 5:  # groups (3, 4) are deprecated and unused by Mesos; 6, 7 don't exist
            raise DecodeError("bad wire type %d at %d" % (w, p))
        self.wt = w
        return k >> 3

    def varint(self):
        p = self.pos
        if p < self.end:
            b = self.buf[p]
            if b < 0x80:  # one byte: keys, enums, bools, short lengths
                self.pos = p + 1
                return b
        return self._varint()

    def _varint(self):
        buf = self.buf
        p = self.pos
        v = 0
        s = 0
        while True:
            if p >= self.end:
                raise DecodeError("truncated varint at %d" % self.pos)
            b = buf[p]
            p += 1
            v |= (b & 0x7F) << s  # stays a small int while the value is below 2**30
            if b < 0x80:
                break
            s += 7
            if s > 63:
                raise DecodeError("varint longer than 10 bytes at %d" % self.pos)
        self.pos = p
        if s == 63 and b > 1:  # 10th byte: keep 64 bits, as protobuf does (negative int32/int64 are 10 bytes)
            v -= (b & 0x7E) << 63
        return v

    def double(self):
        p = self.pos
        if p + 8 > self.end:
            raise DecodeError("truncated double at %d" % p)
        self.pos = p + 8
        return struct.unpack_from("<d", self.buf, p)[0]

    def lendelim(self):
        """Reads a length; returns the value's end offset. The value is buf[self.pos:end]."""
        p = self.pos
        n = self.varint()
        if n > self.end - self.pos:
            raise DecodeError("length %d past the end at %d" % (n, p))
        return self.pos + n

    def skip(self):
        w = self.wt
        if w == 0:
            self.varint()
            return
        if w == 2:
            self.pos = self.lendelim()
            return
        n = 8 if w == 1 else 4
        if self.pos + n > self.end:
            raise DecodeError("truncated fixed%d at %d" % (n * 8, self.pos))
        self.pos += n


# --- writers: size first, then fill one preallocated bytearray (pack_into style) ---------------

def varint_size(v):
    """Bytes of the varint for v; negative ints take 10 (two's complement on 64 bits)."""
    if v < 0:
        return 10
    n = 1
    while v > 0x7F:
        v >>= 7
        n += 1
    return n


def put_varint(buf, pos, v):
    """Writes v at buf[pos]; returns the offset after it."""
    if v < 0:
        v -= v >> 64 << 64  # two's complement on 64 bits: v + 2**64
    while v > 0x7F:
        buf[pos] = (v & 0x7F) | 0x80
        v >>= 7
        pos += 1
    buf[pos] = v
    return pos + 1


def put_double(buf, pos, v):
    if isinstance(v, int):
        return _put_int_double(buf, pos, v)
    struct.pack_into("<d", buf, pos, v)
    return pos + 8


def _put_int_double(buf, pos, v):
    # An int becomes the exact IEEE-754 double by integer arithmetic: ESP32/RP2040 firmware uses
    # single-precision floats, whose 24-bit mantissa rounds epoch seconds (TaskStatus.timestamp)
    # to 2 minutes; the updates module hands whole seconds to the codec as an int there.
    bits = 0
    if v:
        neg = v < 0
        m = -v if neg else v
        e = 0
        while m >> (e + 1):
            e += 1
        if e > 52:
            shift = e - 52  # round to nearest, ties to even, as float() does
            rem = m & ((1 << shift) - 1)
            half = 1 << (shift - 1)
            m >>= shift
            if rem > half or (rem == half and m & 1):
                m += 1
            if m >> 53:
                m >>= 1
                e += 1
        else:
            m <<= 52 - e
        m -= m >> 52 << 52  # the implicit leading 1 goes (not m & (1 << 52) - 1: a folded long-int constant)
        bits = ((1 if neg else 0) << 63) | ((e + 1023) << 52) | m
    for i in range(8):
        buf[pos + i] = (bits >> (8 * i)) & 0xFF
    return pos + 8


def put_bytes(buf, pos, data):
    """Copies a bytes-like value to buf[pos]; returns the offset after it."""
    n = len(data)
    buf[pos:pos + n] = data
    return pos + n
