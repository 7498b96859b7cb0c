# Answers to GET routes: the request as a route sees it, whole responses, and streamed bodies through a JSON
# writer into one buffer, sent as a chunk whenever it fills (JSON(P) bodies of the views). MIT licence.
# PROTOCOL.md §5: a body is written out in pieces, never built whole. Loaded per request by the listener and
# dropped with the views after it (endpoints.py): an idle agent holds none of this code.
import asyncio
import time
from micropython import const

from . import http, log

_PRE = const(6)  # room before a chunk's data for its size line: up to 4 hex digits and CRLF
_ROOM = const(128)  # before the first chunk: the response head too, so that both go out in one write
_POST = const(7)  # room after the data for the chunk's CRLF and, after the last one, "0\r\n\r\n"
MIN_SIZE = const(256)  # the smallest buffer: room for the head, then data (the listener may lend this little)
_HEX = b"0123456789abcdef"
_W = "http"
_LW = "libprocess"  # serve()'s lines: the listener's

_JSON = "application/json"
_JSONP = "text/javascript"  # §5: with ?jsonp=<cb> the body is cb(<json>)
_MAX_CALLBACK = const(64)


# One string, not a dict or a tuple of pairs: frozen, it stays in flash; loaded, it is one object (the pairs
# were 11 tuples and 10 strings, ~300 B more while a view is loaded).
_REASONS = ("\n200 OK\n202 Accepted\n204 No Content\n307 Temporary Redirect\n400 Bad Request\n404 Not Found"
            "\n405 Method Not Allowed\n500 Internal Server Error\n501 Not Implemented\n503 Service Unavailable\n")


class Request:
    """What a GET route sees: the parsed request (http.HTTPParser) as plain values (endpoints are not
    a hot path; this allocates). UnicodeError if the query is not UTF-8."""

    def __init__(self, p, path):
        b = p.buf
        self.method = p.method  # GET, HEAD, POST or OTHER (http's constants)
        self.path = path  # the listener decoded it to find the route
        self.query = bytes(b[p.path1 + 1 : p.target1]).decode() if p.path1 < p.target1 else ""
        self.body = bytes(b[p.body0 : p.body1])


def serve(c, p, w, path, fn, answer, freed):
    """The listener's answer to a GET of route `fn` (Listener._http, which found it) on connection c: a
    streamed body is left in c.stream for stream(); anything else is written now. answer(c, w, data):
    the listener's writer of canned answers; freed: its Event, set once c's parser is idle again. False if
    the connection must close after it."""
    try:
        req = Request(p, path)
    except UnicodeError:
        answer(c, w, http.BAD_REQUEST)
        return False
    status, ctype, body = 405, None, b""
    if p.method == http.GET or p.method == http.HEAD:
        try:
            status, ctype, body = fn(req)
        except Exception as e:
            log.error(_LW, "route %s failed: %r", req.path, e)
            status, ctype, body = 500, None, b""
    if callable(body) and not c.broken:  # streamed by the listener once this returns (stream())
        c.stream = (status, ctype, body, p.keep_alive, p.method == http.HEAD, p.version == 11)
        return True
    freed.set()  # this connection is idle again: a waiting one may take its parser
    if not c.broken:
        try:
            write_response(w, status, ctype, body, p.keep_alive, p.method == http.HEAD)
        except OSError:
            c.broken = True
        except (TypeError, ValueError) as e:  # the route returned a body it cannot write
            log.error(_LW, "route %s returned a bad body: %r", req.path, e)
            answer(c, w, http.SERVER_ERROR)
    return True


async def stream(lst, c, w, answer, freed):
    """The streamed response serve() left in c.stream, written on connection c of the listener lst (its
    _serve runs this before parsing c's next request); answer and freed as for serve(). -> whether the
    connection may stay open."""
    status, ctype, produce, keep, head, chunked_ok = c.stream
    c.stream = None
    c.busy = True
    mine = False
    try:
        # One writer at a time: streamed responses take turns (each wakes the next through freed).
        while lst.streaming:
            freed.clear()
            await freed.wait()
        lst.streaming = mine = True
        try:
            # The writer's buffer: the connection's parser buffer, idle while the response goes when nothing
            # is pipelined behind the request (the parser reads into it again from 0 after); else one of
            # lst.out_size for this response. Either way no block is held between requests.
            p = c.parser
            out = Writer(p.buf if p.fill == 0 and len(p.buf) >= MIN_SIZE else lst.out_size)
        except MemoryError:
            log.error(_LW, "no heap for the response writer")
            answer(c, w, http.SERVER_ERROR)
            return True
        return await respond(out, w, status, ctype, produce, keep, head, chunked_ok, lst.send_timeout_ms)
    finally:
        if mine:
            lst.streaming = False
        c.busy = False
        c.last = time.ticks_ms()
        freed.set()


def body_parts(body):
    """(total length, tuple/list of bytes-like parts) for a GET response body: bytes-like,
    str, or an iterable of those (a generator is collected once, to know Content-Length)."""
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, (bytes, bytearray, memoryview)):
        return len(body), (body,)
    parts = []
    n = 0
    for p in body:
        if isinstance(p, str):
            p = p.encode()
        parts.append(p)
        n += len(p)
    return n, parts


def response_head(status, content_type, length, keep_alive=True):
    """Status line and headers of a response: length >= 0 is its Content-Length, -1 means
    Transfer-Encoding: chunked (a streamed body, micromesos.jsonw), None neither (the body
    ends when the connection closes: HTTP/1.0 clients of a streamed body)."""
    i = _REASONS.find("\n%d " % status)
    r = _REASONS[i + 5 : _REASONS.find("\n", i + 5)] if i >= 0 else "Unknown"
    h = "HTTP/1.1 %d %s\r\n" % (status, r)
    if content_type:
        h += "Content-Type: %s\r\n" % content_type
    if length is None:
        keep_alive = False
    elif length < 0:
        h += "Transfer-Encoding: chunked\r\n"
    else:
        h += "Content-Length: %d\r\n" % length
    if not keep_alive:
        h += "Connection: close\r\n"
    return (h + "\r\n").encode()


def write_response(stream, status, content_type, body, keep_alive=True, head_only=False):
    """Write a complete response with stream.write(); the caller drains. For GET/HEAD."""
    n, parts = body_parts(body if body is not None else b"")
    stream.write(response_head(status, content_type, n, keep_alive))
    if not head_only:
        for p in parts:
            if len(p):
                stream.write(p)


def _escape(buf, p, c):
    # The escape of byte c at buf[p]: the short forms JSON has (\b \t \n \f \r \" \\, RFC 8259 §7) or
    # \u00XX. -> its length. The short forms of bytes 8..13 as a literal (no table built at import).
    buf[p] = 92
    if c == 34 or c == 92 or (8 <= c <= 13 and c != 11):
        buf[p + 1] = c if c > 13 else b"btn_fr"[c - 8]
        return 2
    buf[p + 1] = 117
    buf[p + 2] = 48
    buf[p + 3] = 48
    buf[p + 4] = _HEX[c >> 4]
    buf[p + 5] = _HEX[c & 15]
    return 6


class Writer:
    """One response body at a time: begin(), JSON (t(), obj(), val()) or raw bytes written through it,
    finish().

    While the whole body fits in the buffer it goes out with a Content-Length (§5 asks for one); once the
    buffer fills, the head goes out with Transfer-Encoding: chunked and every full buffer is one chunk
    (HTTP/1.0 clients get the body unframed and the connection closes after it). Each write() carries a
    whole chunk with its framing (the first also the head, the last also the end mark): small segments
    written one after another would wait for the peer's delayed ACK. The stream's write() sends at once
    or keeps a copy, so the buffer is free again when flush() returns; the producer yields at checkpoints,
    where respond() waits for the stream to drain. HEAD only counts the bytes."""

    def __init__(self, buf=1024):
        """buf: the buffer (a bytearray, preallocated by the listener at boot) or its size."""
        if isinstance(buf, int):
            buf = bytearray(buf)
        size = len(buf)
        if size < MIN_SIZE or size > 0xFFFF + _PRE + _POST:  # a chunk size must fit in 4 hex digits
            raise ValueError("Writer: size %d out of range" % size)
        self.buf = buf
        self.mv = memoryview(buf)
        self.lim = size - _POST
        self.begin(None)

    def begin(self, stream, status=200, ctype=None, keep_alive=True, head_only=False, chunked_ok=True):
        self.w = stream
        self.status = status
        self.ctype = ctype
        self.keep = keep_alive
        self.head_only = head_only
        self.chunked_ok = chunked_ok
        self.sent = 0  # 0: head not sent yet; 1: chunked; 2: unframed, closed after the body; 3: with a length
        self.count = 0  # body bytes produced so far (those in the buffer not included)
        self.base = self.pos = _ROOM  # the data in the buffer is buf[base:pos]

    # --- bytes ---------------------------------------------------------------------------------------

    def flush(self):
        """Send what the buffer holds (the head first, the first time)."""
        n = self.pos - self.base
        if n <= 0:
            return
        self.count += n
        if self.head_only or self.w is None:
            self.pos = self.base
            return
        self._send(n, False)
        self.base = self.pos = _PRE

    def _send(self, n, last):
        # buf[base:base+n] framed and written in one go, with the head in front if it has not gone yet.
        buf = self.buf
        s = self.base
        e = s + n
        head = None
        if not self.sent:
            if last:
                self.sent = 3
                head = response_head(self.status, self.ctype, n, self.keep)
            elif self.chunked_ok:
                self.sent = 1
                head = response_head(self.status, self.ctype, -1, self.keep)
            else:
                self.sent = 2
                self.keep = False  # HTTP/1.0: the end of the body is the end of the connection
                head = response_head(self.status, self.ctype, None, False)
        if self.sent == 1:
            if n:
                k = http.hexlen(n)
                s -= k + 2
                for i in range(k):
                    buf[s + k - 1 - i] = _HEX[(n >> (4 * i)) & 15]
                buf[s + k] = 13
                buf[s + k + 1] = 10
                buf[e] = 13
                buf[e + 1] = 10
                e += 2
            if last:
                buf[e:e + 5] = b"0\r\n\r\n"
                e += 5
        if head is not None:
            h = len(head)
            if h <= s:
                s -= h
                buf[s:s + h] = head
            else:
                self.w.write(head)  # a head longer than the room before the data: two writes
        if e > s:
            self.w.write(self.mv[s:e])

    def finish(self):
        """End the body; -> whether the connection may stay open."""
        n = self.pos - self.base
        self.count += n
        if self.head_only:
            if self.w is not None:
                self.w.write(response_head(self.status, self.ctype, self.count, self.keep))
        elif self.w is not None:
            self._send(n, True)
        self.base = self.pos = _ROOM
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
            if self.pos + n > self.lim:  # larger than the buffer: in pieces
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

    def esc(self, src, a, b):
        """src[a:b] (bytes-like) escaped into a JSON string, one JSON character per byte: bytes >= 0x80
        as \\u00XX, so a client's offset + len(data) stays a byte offset (the web UI's pailer computes the
        next /files/read offset that way)."""
        buf = self.buf
        pos = self.pos
        lim = self.lim - 6
        for i in range(a, b):
            if pos > lim:
                self.pos = pos
                self.flush()
                pos = self.pos
            c = src[i]
            if 32 <= c < 128 and c != 34 and c != 92:
                buf[pos] = c
                pos += 1
                continue
            pos += _escape(buf, pos, c)
        self.pos = pos

    def _text(self, t):
        # A str escaped for a JSON string. A str is UTF-8 inside MicroPython: its bytes are read in place
        # through a memoryview (the one allocation), copied as they are but for the JSON escapes. Not
        # `for ch in t`: that interns every distinct character as a qstr, and a runtime qstr pool filling
        # up mid-response takes one more contiguous block (~580 B on a 32-bit board), kept for good.
        m = memoryview(t)
        buf = self.buf
        for i in range(len(m)):
            c = m[i]
            if self.pos > self.lim - 6:
                self.flush()
            p = self.pos
            if c >= 32 and c != 34 and c != 92:
                buf[p] = c
                self.pos = p + 1
            else:
                self.pos = p + _escape(buf, p, c)

    # --- JSON ---------------------------------------------------------------------------------------
    # The views write each object from a constant template (t()): keys, commas and brackets are bytes of
    # the template, values take the place of its % signs. No nesting state to keep, no code per field.

    def t(self, tpl, *vals):
        """The bytes constant tpl with each % replaced by the next value (val()): t(b'{"id":%,"n":%}', i, n).
        A str value before a ':' is a key: t(b',%:%', name, v)."""
        buf = self.buf
        k = 0
        for c in tpl:  # byte by byte: iterating bytes allocates nothing, a slice would
            if c == 37:
                self.val(vals[k])
                k += 1
                continue
            if self.pos >= self.lim:
                self.flush()
            buf[self.pos] = c
            self.pos += 1

    def val(self, v):
        """None, bool, int, float, str (UTF-8), bytes (one character per byte), or a list or tuple of
        those, as a JSON value."""
        if v is None:
            self.raw(b"null")
        elif v is True:
            self.raw(b"true")
        elif v is False:
            self.raw(b"false")
        elif isinstance(v, int):
            self._int(v)
        elif isinstance(v, float):
            if v - v != 0:  # NaN or an infinity: JSON has neither
                self.raw(b"null")
                return
            self._text(repr(v))  # shortest round-trip form: valid JSON ("1e+22", "0.1", "3.0"); nothing to escape
        elif isinstance(v, list) or isinstance(v, tuple):  # no (list, tuple): that would be built per call
            self.byte(91)
            for i in range(len(v)):  # no iterator object
                if i:
                    self.byte(44)
                self.val(v[i])
            self.byte(93)
        else:
            self.byte(34)
            if isinstance(v, str):
                self._text(v)
            else:
                self.esc(v, 0, len(v))
            self.byte(34)

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
    g = None
    try:
        g = produce(out)
        for _ in g:
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
        if hasattr(g, "close"):
            g.close()  # a producer left half-way runs its finally blocks now (MicroPython has no other trigger)


def _callback(query):
    # The jsonp= value: a JavaScript name path (angular.callbacks._0, jQuery36_17). Anything else is refused,
    # so a crafted link can't make the agent serve script of someone else's choosing. Percent-escapes are
    # rare here: the query module (percent-decoding) is imported only for them.
    cb = None
    for part in query.split("&"):
        k, _, v = part.partition("=")
        if k == "jsonp":
            cb = v
            break
    if cb is None:
        return None
    if "%" in cb or "+" in cb:
        from .query import unquote

        cb = unquote(cb)
    if not 0 < len(cb) <= _MAX_CALLBACK:
        raise ValueError("bad jsonp callback")
    for ch in cb:
        if not (ch.isalpha() or ch.isdigit() or ch in "_$."):
            raise ValueError("bad jsonp callback")
    return cb


def json_body(query, produce, *args):
    """(status, content type, body) for a JSON endpoint: produce(out, *args) writes the value, wrapped in
    the JSONP callback when the query names one."""
    try:
        cb = _callback(query)
    except ValueError:
        return 400, "text/plain", b"Invalid 'jsonp' callback.\n"

    def body(out):
        if cb is not None:
            out.raw(cb.encode())
            out.byte(40)
        yield from produce(out, *args)
        if cb is not None:
            out.byte(41)
    return 200, _JSON if cb is None else _JSONP, body
