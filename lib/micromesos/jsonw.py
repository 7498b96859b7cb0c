# Streamed HTTP response bodies: a JSON writer into one preallocated buffer, sent as a chunk whenever it fills.
# MIT licence. PROTOCOL.md §5: a body is written out in pieces, never built whole in the heap.
import asyncio
from micropython import const

from . import http, log

_PRE = const(6)   # room before the data for a chunk-size line: up to 4 hex digits and CRLF
_POST = const(7)  # room after it for the chunk's CRLF and, after the last one, "0\r\n\r\n"
_NEW = const(0x80)  # stack flag: nothing written yet at this level (no comma before the next item)
_HEX = b"0123456789abcdef"
_W = "http"

# What follows a backslash for the escapes JSON has short forms for (RFC 8259 §7).
_SHORT = {8: 98, 9: 116, 10: 110, 12: 102, 13: 114, 34: 34, 92: 92}


def _hexlen(n):
    k = 1
    while n >= 16:
        n >>= 4
        k += 1
    return k


class Writer:
    """One response body at a time: begin(), JSON (or raw bytes) written through it, finish().

    While the whole body fits in the buffer it goes out with a Content-Length (§5 asks for one); once the
    buffer fills, the head goes out with Transfer-Encoding: chunked and every full buffer is one chunk
    (HTTP/1.0 clients get the body unframed and the connection closes after it). The stream's write()
    sends at once or keeps a copy, so the buffer is free again when flush() returns; the producer yields
    at checkpoints, where respond() waits for the stream to drain. HEAD only counts the bytes."""

    max_depth = 12  # nesting levels of objects and arrays

    def __init__(self, size=1024):
        if size < 64 or size > 0xFFFF + _PRE + _POST:  # a chunk size must fit in 4 hex digits
            raise ValueError("Writer: size %d out of range" % size)
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.lim = size - _POST
        self._stack = bytearray(self.max_depth)  # per open level: its closing byte, | _NEW while empty
        self.begin(None)

    def begin(self, stream, status=200, ctype=None, keep_alive=True, head_only=False, chunked_ok=True):
        self.w = stream
        self.status = status
        self.ctype = ctype
        self.keep = keep_alive
        self.head_only = head_only
        self.chunked_ok = chunked_ok
        self.sent = 0  # 0: head not sent yet; 1: chunked; 2: unframed, closed after the body
        self.count = 0  # body bytes flushed so far
        self.pos = _PRE
        self.depth = 0
        self._key = False  # a key was just written: the value takes no comma

    # --- bytes ---------------------------------------------------------------------------------------

    def flush(self):
        """Send what the buffer holds (the head first, the first time)."""
        n = self.pos - _PRE
        if n <= 0:
            return
        self.pos = _PRE
        self.count += n
        if self.head_only or self.w is None:
            return
        if not self.sent:
            self._head(-1)
        buf = self.buf
        if self.sent == 1:
            k = _hexlen(n)
            s = _PRE - 2 - k
            for i in range(k):
                buf[_PRE - 3 - i] = _HEX[(n >> (4 * i)) & 15]
            buf[_PRE - 2] = 13
            buf[_PRE - 1] = 10
            buf[_PRE + n] = 13
            buf[_PRE + n + 1] = 10
            self.w.write(self.mv[s:_PRE + n + 2])
        else:
            self.w.write(self.mv[_PRE:_PRE + n])

    def _head(self, length):
        if length < 0:
            if self.chunked_ok:
                self.sent = 1
            else:
                self.sent = 2
                self.keep = False  # HTTP/1.0: the end of the body is the end of the connection
                length = None
        self.w.write(http.response_head(self.status, self.ctype, length, self.keep))

    def finish(self):
        """End the body; -> whether the connection may stay open."""
        n = self.pos - _PRE
        w = self.w
        if self.head_only:
            self.count += n
            self.pos = _PRE
            self._head(self.count)
        elif not self.sent:
            self.count = n
            self._head(n)
            if n:
                w.write(self.mv[_PRE:_PRE + n])
        elif self.sent == 1:
            self.flush()
            w.write(b"0\r\n\r\n")
        else:
            self.flush()
        self.pos = _PRE
        return self.keep

    def byte(self, c):
        if self.pos >= self.lim:
            self.flush()
        self.buf[self.pos] = c
        self.pos += 1

    def raw(self, b):
        """Bytes as they are (a JSONP callback, a file's content)."""
        n = len(b)
        if self.pos + n > self.lim:
            self.flush()
            if _PRE + n > self.lim:  # larger than the buffer: in pieces
                mv = memoryview(b)
                i = 0
                while i < n:
                    k = min(n - i, self.lim - self.pos)
                    self.buf[self.pos:self.pos + k] = mv[i:i + k]
                    self.pos += k
                    i += k
                    if self.pos >= self.lim:
                        self.flush()
                return
        p = self.pos
        self.buf[p:p + n] = b
        self.pos = p + n

    def _esc(self, src, a, b, latin1):
        # src[a:b] (bytes-like) escaped for a JSON string. Bytes >= 0x80 pass as UTF-8, or with latin1 each
        # becomes \u00XX: one JSON character per byte, so a client's offset + len(data) stays a byte
        # offset (the web UI's pailer computes the next /files/read offset that way).
        buf = self.buf
        pos = self.pos
        lim = self.lim - 6
        for i in range(a, b):
            if pos > lim:
                self.pos = pos
                self.flush()
                pos = self.pos
            c = src[i]
            if c >= 32 and c != 34 and c != 92 and (c < 128 or not latin1):
                buf[pos] = c
                pos += 1
                continue
            buf[pos] = 92
            s = _SHORT.get(c)
            if s is not None:
                buf[pos + 1] = s
                pos += 2
            else:
                buf[pos + 1] = 117  # \u00XX
                buf[pos + 2] = 48
                buf[pos + 3] = 48
                buf[pos + 4] = _HEX[c >> 4]
                buf[pos + 5] = _HEX[c & 15]
                pos += 6
        self.pos = pos

    # --- JSON ---------------------------------------------------------------------------------------

    def _pre(self):
        # A comma before every item of an open object or array but its first; none after a key.
        if self._key:
            self._key = False
            return
        d = self.depth
        if d:
            s = self._stack[d - 1]
            if s & _NEW:
                self._stack[d - 1] = s & ~_NEW
            else:
                self.byte(44)

    def _open(self, o, c):
        self._pre()
        d = self.depth
        if d >= self.max_depth:
            raise ValueError("JSON nested deeper than %d" % self.max_depth)
        self._stack[d] = c | _NEW
        self.depth = d + 1
        self.byte(o)

    def obj(self):
        self._open(123, 125)

    def arr(self):
        self._open(91, 93)

    def end(self):
        """Close the innermost open object or array."""
        self.depth -= 1
        self.byte(self._stack[self.depth] & ~_NEW)

    def key(self, k):
        """An object key: bytes written as they are (constants), str escaped."""
        self._pre()
        self.byte(34)
        if isinstance(k, str):
            k = k.encode()
            self._esc(k, 0, len(k), False)
        else:
            self.raw(k)
        self.byte(34)
        self.byte(58)
        self._key = True

    def val(self, v):
        """None, bool, int, float, str (UTF-8), bytes (one character per byte) as a JSON value."""
        self._pre()
        if v is None:
            self.raw(b"null")
        elif v is True:
            self.raw(b"true")
        elif v is False:
            self.raw(b"false")
        elif isinstance(v, int):
            self._int(v)
        elif isinstance(v, float):
            self._float(v)
        else:
            latin1 = not isinstance(v, str)
            if not latin1:
                v = v.encode()
            self.byte(34)
            self._esc(v, 0, len(v), latin1)
            self.byte(34)

    def field(self, k, v):
        self.key(k)
        self.val(v)

    def _int(self, v):
        if v < 0:
            self.byte(45)
            v = -v
        n = 1
        t = v
        while t >= 10:
            t //= 10
            n += 1
        if self.pos + n > self.lim:
            self.flush()
        p = self.pos + n
        buf = self.buf
        while True:
            p -= 1
            buf[p] = 48 + v % 10
            v //= 10
            if not v:
                break
        self.pos += n

    def _float(self, v):
        if v - v != 0:  # NaN or an infinity: JSON has neither
            self.raw(b"null")
            return
        for ch in repr(v):  # shortest round-trip form: valid JSON ("1e+22", "0.1", "3.0")
            self.byte(ord(ch))

    # A string value written in parts: sopen(), spart()..., sclose() (Mesos "{a, b}" and "[1-2, 4-5]").

    def sopen(self):
        self._pre()
        self.byte(34)

    def spart(self, x):
        if isinstance(x, int):
            self._int(x)
        else:
            if isinstance(x, str):
                x = x.encode()
            self._esc(x, 0, len(x), False)

    def sbytes(self, src, a, b):
        """src[a:b] into the open string, one JSON character per byte."""
        self._esc(src, a, b, True)

    def sclose(self):
        self.byte(34)

    async def drain(self, timeout_ms):
        """A producer's checkpoint: wait (bounded) for the stream to take what flush() left with it, or
        at least let the other tasks run (the master's pings)."""
        w = self.w
        if w is not None and getattr(w, "out_buf", None):  # asyncio.Stream keeps what the socket refused
            await asyncio.wait_for_ms(w.drain(), timeout_ms)
        else:
            await asyncio.sleep_ms(0)


async def respond(out, w, status, ctype, produce, keep_alive, head_only, chunked_ok, timeout_ms):
    """Send the response whose body produce(out) writes; each item it yields is a checkpoint. -> whether
    the connection may stay open. A producer failing before anything went out is answered 500; after
    that the connection is dropped (an unterminated chunked body tells the client it is incomplete)."""
    out.begin(w, status, ctype, keep_alive, head_only, chunked_ok)
    try:
        for _ in produce(out):
            await out.drain(timeout_ms)
        keep = out.finish()
        await out.drain(timeout_ms)
        return keep
    except (OSError, asyncio.TimeoutError) as e:
        log.debug(_W, "response stream dropped: %r", e)
        return False
    except Exception as e:  # a producer's bug or MemoryError: this response fails, the agent goes on
        log.error(_W, "response body failed after %d bytes: %r", out.count, e)
        if out.sent:
            return False
        w.write(http.SERVER_ERROR)  # nothing of it went out yet
        return True
    finally:
        out.w = None
