# UART framing of the node<->gateway link (docs/LINK.md §6.3): COBS(frame + CRC-16/CCITT-FALSE), 0x00 between.
# MIT licence. Both directions work in preallocated buffers; a bad or overlong frame is counted and dropped.

# The CRC of each nibble under poly 0x1021, big-endian u16s: a nibble per step instead of a bit, ~2.7x faster
# for 32 bytes of table (`pytest -s tests/test_link_uart.py -k framing_cost`).
_NIB = b"\x00\x00\x10! B0c@\x84P\xa5`\xc6p\xe7\x81\x08\x91)\xa1J\xb1k\xc1\x8c\xd1\xad\xe1\xce\xf1\xef"


def crc16(buf, start, end):
    """CRC-16/CCITT-FALSE of buf[start:end] (check value of b"123456789": 0x29B1)."""
    t = _NIB
    c = 0xFFFF
    for i in range(start, end):
        b = buf[i]
        j = (c >> 12 ^ b >> 4) << 1
        c = (c << 4 & 0xFFFF) ^ (t[j] << 8 | t[j + 1])
        j = (c >> 12 ^ b & 15) << 1
        c = (c << 4 & 0xFFFF) ^ (t[j] << 8 | t[j + 1])
    return c


def encoded_size(n):
    """Bytes on the wire for a frame of n bytes: COBS of n + 2 (the CRC), and the 0x00 after it."""
    m = n + 2
    return m + m // 254 + 2


def encode(frame, n, out):
    """COBS(frame[:n] + crc) followed by 0x00, written into out (at least encoded_size(n) bytes); its length."""
    c = crc16(frame, 0, n)
    code_at = 0  # where the current block's length byte goes
    p = 1
    code = 1
    for i in range(n + 2):
        b = frame[i] if i < n else (c >> 8 if i == n else c & 255)
        if b:
            out[p] = b
            p += 1
            code += 1
        if not b or code == 255:
            out[code_at] = code
            code_at = p
            p += 1
            code = 1
    out[code_at] = code
    out[p] = 0
    return p + 1


class Deframer:
    """Feed it the bytes a UART gave (any chunks); on_frame(buf, n) gets each frame whose CRC holds, in a
    buffer reused for the next one. bad counts frames dropped (CRC, COBS, longer than max_frame)."""

    def __init__(self, max_frame, on_frame):
        self.raw = bytearray(encoded_size(max_frame))  # one encoded frame without its 0x00
        self.out = bytearray(max_frame + 2)
        self.n = 0
        self.over = False  # this frame passed the limit: skipped up to the next 0x00
        self.on_frame = on_frame
        self.bad = 0

    def feed(self, data, n=-1):
        raw = self.raw
        for i in range(len(data) if n < 0 else n):
            b = data[i]
            if b:
                if self.n < len(raw):
                    raw[self.n] = b
                    self.n += 1
                else:
                    self.over = True
                continue
            if self.over:
                self.bad += 1
            elif self.n:  # bytes before the first 0x00 may be a frame's tail: its CRC fails, counted
                self._frame()
            self.n = 0
            self.over = False

    def _frame(self):
        raw = self.raw
        out = self.out
        cap = len(out)
        i = 0
        m = 0
        n = self.n
        while i < n:
            code = raw[i]  # never 0: zeros end frames
            j = i + code
            if j > n or m + code - 1 > cap:
                self.bad += 1
                return
            for k in range(i + 1, j):
                out[m] = raw[k]
                m += 1
            i = j
            if code < 255 and i < n:  # the zero this block stood for
                if m >= cap:
                    self.bad += 1
                    return
                out[m] = 0
                m += 1
        if m < 10 or crc16(out, 0, m - 2) != (out[m - 2] << 8 | out[m - 1]):  # a header and the CRC at least
            self.bad += 1
            return
        self.on_frame(out, m - 2)
