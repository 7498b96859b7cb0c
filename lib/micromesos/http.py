# Bounded, incremental HTTP/1.1 request parser over one preallocated buffer; results are offsets.
# MIT licence. What libprocess puts on the wire is PROTOCOL.md §1.3-§1.5; limits are class attributes.
from micropython import const

from micromesos.errors import ProtocolError

# Methods (HTTPParser.method).
OTHER = const(0)
GET = const(1)
POST = const(2)
HEAD = const(3)

# Parser states.
_START = const(0)  # request line (empty lines before it are skipped, RFC 7230 §3.5)
_HEADERS = const(1)
_LENGTH = const(2)  # Content-Length body
_CSIZE = const(3)  # chunk-size line
_CDATA = const(4)  # chunk data and its CRLF
_TRAILER = const(5)  # trailer lines after the last chunk
_DONE = const(6)
_SKIP = const(7)  # discard mode: body bytes read and dropped (a message larger than the buffer)
_CEND = const(8)  # discard mode: the CRLF after a dropped chunk's data

_LF = const(10)
_CR = const(13)
_SP = const(32)
_HT = const(9)
_NOBODY = const(-1)  # clen when no Content-Length header was seen
_BIG = const(1 << 26)  # Content-Length values stop growing here (a small int on 32-bit ports)
_ROOM = const(32)  # discard mode needs this much of the buffer past the head: reads, chunk-size lines

# The responses the listener sends most: constants, so answering a message allocates nothing. The rest of
# what answers a GET (Request, response_head, write_response) is jsonw's, loaded per request.
# No Date header: the device may have no clock yet (RFC 7231 §7.1.1.2 allows leaving it out).
ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
SERVER_ERROR = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
# A connection the listener has no room for (libprocess.Libprocess.max_conns): answered, then closed.
UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

def hexlen(n):
    """Digits of n in hex: the chunk-size line of a chunked body (§1.3)."""
    k = 1
    while n >= 16:
        n >>= 4
        k += 1
    return k


def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    c |= 32
    return c - 87 if 97 <= c <= 102 else -1


def pct_equal(buf, a, b, ident):
    """Does buf[a:b], percent-decoded, equal the bytes ident? 1 yes, 0 no, -1 bad escape
    (libprocess answers 500 then, §1.4). Decodes on the fly; allocates nothing."""
    j = 0
    same = True
    n = len(ident)
    while a < b:
        c = buf[a]
        if c == 37:  # '%'
            if a + 2 >= b:
                return -1
            hi = _hexval(buf[a + 1])
            lo = _hexval(buf[a + 2])
            if hi < 0 or lo < 0:
                return -1
            c = hi * 16 + lo
            a += 3
        else:
            a += 1
        if j >= n or c != ident[j]:
            same = False
        j += 1
    return 1 if same and j == n else 0


def _lower_eq(buf, a, b, name):
    # Case-insensitive compare of buf[a:b] with a lowercase constant; allocates nothing.
    n = len(name)
    if b - a != n:
        return False
    for i in range(n):
        c = buf[a + i]
        if 65 <= c <= 90:
            c += 32
        if c != name[i]:
            return False
    return True


def move(mv, dst, src, n):
    # buf[dst:dst+n] = buf[src:src+n] with dst < src, in blocks that never overlap
    # (memcpy on overlapping ranges is undefined).
    gap = src - dst
    while n > 0:
        k = n if n < gap else gap
        mv[dst : dst + k] = mv[src : src + k]
        dst += k
        src += k
        n -= k


class HTTPParser:
    """One connection's request parser. Read bytes into `buf` (recv_view(), then received(n));
    parse() returns True once a whole request is in, with these fields (offsets
    into buf, -1 when absent): method (GET/POST/HEAD/OTHER), target0/target1 (request-target),
    path1 (end of the path, before any '?'), version (10 or 11), from0/from1 (Libprocess-From
    value, trimmed), ua0/ua1 (User-Agent), snd0/snd1 (the sender UPID when the request is a
    libprocess message, §1.4; -1 otherwise), clen, chunked, keep_alive,
    body0/body1 (the body, de-chunked in place), end (where the raw request ended), dropped.
    Call done() after handling it: pipelined bytes move to the front and parsing goes on.
    The buffer may start small and grow once to `cap` bytes when a request needs more (a web client's
    GET fits in a few hundred bytes; the listener lends full-size buffers only to what needs them).
    Malformed or oversize input raises ProtocolError; the connection is then unusable. Except in
    discard mode: a message (snd0 >= 0) whose head fits but whose body does not is read and dropped
    as it arrives, and parse() returns it with an empty body and `dropped` = its body's size; the
    connection goes on."""

    max_line = 1024  # request line, one header line or one chunk-size line, CRLF included
    max_headers = 32  # header plus trailer lines per request
    max_body = 3584  # de-chunked body bytes
    buf_size = 4096  # a whole request (head and framed body) must fit in this
    max_discard = 1 << 24  # body bytes of one message dropped in discard mode; beyond: ProtocolError

    def __init__(self, buf=None):
        self.buf = buf if buf is not None else bytearray(self.buf_size)
        self.mv = memoryview(self.buf)
        self.cap = len(self.buf)  # the size _fit() may grow the buffer to
        self.fill = 0
        self._reset()

    def _reset(self):
        self.state = _START
        self.line = 0  # start of the line being parsed; in body states the next raw byte
        self.scan = 0  # where the search for LF resumes (a trickled line is not rescanned)
        self.nhdr = 0
        self.method = OTHER
        self.target0 = self.target1 = self.path1 = -1
        self.version = 11
        self.from0 = self.from1 = -1
        self.ua0 = self.ua1 = -1
        self.snd0 = self.snd1 = -1
        self.clen = _NOBODY
        self.chunked = False
        self.keep_alive = True
        self._conn = 0  # 1: "close" seen, 2: "keep-alive" seen (bit flags)
        self.body0 = self.body1 = 0
        self.end = 0
        self._left = 0  # bytes of the current chunk not yet read (discard mode: not yet dropped)
        self.dropped = 0  # discard mode: body bytes dropped so far (0: not discarding)

    # -- filling the buffer -------------------------------------------------------------

    def recv_view(self):
        """Writable view of the free part of buf, for stream.readinto(). Allocation-free
        whenever the buffer is empty (the steady state between messages)."""
        if self.fill == 0:
            return self.mv
        return self.mv[self.fill :]

    def received(self, n):
        """n bytes were read into recv_view()."""
        self.fill += n

    def done(self):
        """Forget the request parse() returned; pipelined bytes after it move to buf[0]."""
        rest = self.fill - self.end
        if rest > 0 and self.end > 0:
            move(self.mv, 0, self.end, rest)
        self.fill = rest if rest > 0 else 0
        self._reset()

    def clear(self):
        """Drop everything (a new connection reuses this parser)."""
        self.fill = 0
        self._reset()

    def in_head(self):
        """The request under way is still in its head (request line or headers)."""
        return self.state <= _HEADERS

    # -- parsing ------------------------------------------------------------------------

    def parse(self):
        """True when a complete request is ready; False if more bytes are needed."""
        while True:
            buf = self.buf  # it may have grown (_fit)
            st = self.state
            if st == _DONE:
                return True
            if st == _SKIP:
                # Discard mode: everything from body0 on is transient. Lines already parsed (chunk
                # sizes) and up to _left body bytes go; what follows them moves down to body0. Bounded
                # by what one read put in the buffer.
                a = self.body0
                r = self.line
                k = self.fill - r
                if k > self._left:
                    k = self._left
                self._left -= k
                r += k
                rest = self.fill - r
                if rest > 0 and r > a:
                    move(self.mv, a, r, rest)
                self.fill = a + rest
                self.line = self.scan = self.body1 = a
                if self._left:
                    return False  # fill == body0: the buffer's room past the head takes the next read
                if self.chunked:
                    self.state = _CEND
                else:
                    self.end = a
                    self.state = _DONE
                continue
            if st == _LENGTH:
                if self.fill - self.body0 < self.clen:
                    return self._need_more()
                self.body1 = self.end = self.body0 + self.clen
                self.state = _DONE
                continue
            if st == _CDATA:
                r = self.line
                n = self._left
                if self.fill < r + n + 2:
                    return self._need_more()
                if buf[r + n] != _CR or buf[r + n + 1] != _LF:
                    raise ProtocolError("HTTP: chunk not followed by CRLF")
                w = self.body1
                if w == self.body0:
                    # First chunk: the body starts where its data is; nothing moves (libprocess
                    # always sends exactly one chunk, §1.3).
                    self.body0 = w = r
                elif w != r:  # de-chunk in place: later chunks slide down behind the first
                    move(self.mv, w, r, n)
                self.body1 = w + n
                self.line = self.scan = r + n + 2
                self.state = _CSIZE
                continue
            # Line-oriented states: find the next LF, resuming where the last search stopped.
            a = self.line
            i = buf.find(b"\n", self.scan, self.fill)
            if i < 0:
                if self.fill - a >= self.max_line:
                    raise ProtocolError("HTTP: line too long")
                self.scan = self.fill
                return self._need_more()
            if i + 1 - a > self.max_line:
                raise ProtocolError("HTTP: line too long")
            if i == a or buf[i - 1] != _CR:
                raise ProtocolError("HTTP: bare LF")
            self.line = self.scan = i + 1
            b = i - 1  # the line is buf[a:b], CRLF excluded
            if st == _START:
                if b > a:
                    self._request_line(buf, a, b)
                    self.state = _HEADERS
            elif st == _HEADERS:
                if b > a:
                    self._header(buf, a, b)
                else:
                    self._end_of_head()
            elif st == _CSIZE:
                self._chunk_size(buf, a, b)
            elif st == _CEND:
                if b != a:
                    raise ProtocolError("HTTP: chunk not followed by CRLF")
                self.state = _CSIZE
            else:  # _TRAILER: lines are counted and skipped
                if b > a:
                    self.nhdr += 1
                    if self.nhdr > self.max_headers:
                        raise ProtocolError("HTTP: too many headers")
                else:
                    self.end = self.line
                    self.state = _DONE

    def _oversize(self, why, dropped, left):
        # A body that does not fit: a libprocess message is dropped as it arrives (discard mode), anything
        # else ends the connection.
        if self.snd0 < 0 or dropped > self.max_discard:
            raise ProtocolError(why if self.snd0 < 0 else "HTTP: body too large")
        if not self._fit(self.body0 + _ROOM):
            raise ProtocolError("HTTP: request larger than buffer")  # no room left to read into
        self.dropped = dropped
        self._left = left
        self.body1 = self.body0  # bytes of the body kept so far (chunks before this one) go too
        self.state = _SKIP

    def _need_more(self):
        if not self._fit(self.fill + 1):
            raise ProtocolError("HTTP: request larger than buffer")
        return False

    def _fit(self, need):
        # Does buf[:need] fit? A small buffer grows to cap first if that is enough (MemoryError if the
        # heap has no block for it: the listener answers 503). Offsets stay valid: the bytes keep their places.
        n = len(self.buf)
        if need <= n:
            return True
        if need > self.cap:
            return False
        b = bytearray(self.cap)
        b[:n] = self.buf
        self.buf = b
        self.mv = memoryview(b)
        return True

    def _request_line(self, buf, a, b):
        sp1 = buf.find(b" ", a, b)
        if sp1 <= a or sp1 - a > 16:
            raise ProtocolError("HTTP: bad request line")
        for i in range(a, sp1):
            c = buf[i]
            if c < 65 or c > 90:  # methods are upper-case tokens
                raise ProtocolError("HTTP: bad method")
        sp2 = buf.find(b" ", sp1 + 1, b)
        if sp2 <= sp1 + 1 or b - sp2 != 9 or not buf.startswith(b"HTTP/1.", sp2 + 1):
            raise ProtocolError("HTTP: bad request line")
        v = buf[b - 1]
        if v == 49:  # '1'
            self.version = 11
        elif v == 48:  # '0': HTTP/1.0 closes after the response unless keep-alive (§1.5)
            self.version = 10
        else:
            raise ProtocolError("HTTP: unsupported version")
        n = sp1 - a
        if n == 4 and buf.startswith(b"POST", a):
            self.method = POST
        elif n == 3 and buf.startswith(b"GET", a):
            self.method = GET
        elif n == 4 and buf.startswith(b"HEAD", a):
            self.method = HEAD
        self.target0 = sp1 + 1
        self.target1 = sp2
        q = buf.find(b"?", sp1 + 1, sp2)
        self.path1 = q if q >= 0 else sp2

    def _header(self, buf, a, b):
        self.nhdr += 1
        if self.nhdr > self.max_headers:
            raise ProtocolError("HTTP: too many headers")
        c = buf[a]
        if c == _SP or c == _HT:
            raise ProtocolError("HTTP: obsolete line folding")
        colon = buf.find(b":", a, b)
        if colon <= a:
            raise ProtocolError("HTTP: header without name")
        for i in range(a, colon):
            c = buf[i]
            if c <= 32 or c >= 127:  # also catches "Name :" (RFC 7230 §3.2.4)
                raise ProtocolError("HTTP: bad header name")
        v0 = colon + 1
        v1 = b
        while v0 < v1 and (buf[v0] == _SP or buf[v0] == _HT):
            v0 += 1
        while v1 > v0 and (buf[v1 - 1] == _SP or buf[v1 - 1] == _HT):
            v1 -= 1
        n = colon - a
        # Switch on the name length first: most headers are then skipped after one compare.
        if n == 15:
            if _lower_eq(buf, a, colon, b"libprocess-from"):
                self.from0 = v0
                self.from1 = v1
        elif n == 10:
            if _lower_eq(buf, a, colon, b"user-agent"):
                self.ua0 = v0
                self.ua1 = v1
            elif _lower_eq(buf, a, colon, b"connection"):
                self._connection(buf, v0, v1)
        elif n == 14:
            if _lower_eq(buf, a, colon, b"content-length"):
                self._content_length(buf, v0, v1)
        elif n == 17:
            if _lower_eq(buf, a, colon, b"transfer-encoding"):
                if self.chunked or not _lower_eq(buf, v0, v1, b"chunked"):
                    raise ProtocolError("HTTP: unsupported Transfer-Encoding")
                self.chunked = True

    def _content_length(self, buf, a, b):
        if self.clen != _NOBODY or a == b or b - a > 10:
            raise ProtocolError("HTTP: bad Content-Length")
        val = 0
        for i in range(a, b):
            c = buf[i] - 48
            if c < 0 or c > 9:
                raise ProtocolError("HTTP: bad Content-Length")
            val = val * 10 + c
            if val > _BIG:
                val = _BIG  # no big ints: anything this size is over every limit anyway
        self.clen = val  # checked against the limits once the head is in (_end_of_head)

    def _connection(self, buf, a, b):
        # Comma-separated tokens; only "close" and "keep-alive" matter (§1.5).
        while a < b:
            e = buf.find(b",", a, b)
            if e < 0:
                e = b
            t0 = a
            t1 = e
            while t0 < t1 and buf[t0] == _SP:
                t0 += 1
            while t1 > t0 and buf[t1 - 1] == _SP:
                t1 -= 1
            if _lower_eq(buf, t0, t1, b"close"):
                self._conn |= 1
            elif _lower_eq(buf, t0, t1, b"keep-alive"):
                self._conn |= 2
            a = e + 1

    def _end_of_head(self):
        if self._conn & 1:
            self.keep_alive = False
        elif self.version == 10:
            self.keep_alive = bool(self._conn & 2)
        if self.method == POST:
            # A libprocess message: Libprocess-From, else "libprocess/<upid>" in User-Agent (§1.4).
            if self.from0 >= 0:
                self.snd0 = self.from0
                self.snd1 = self.from1
            elif self.ua0 >= 0:
                s = self.buf.find(b"libprocess/", self.ua0, self.ua1)
                if s >= 0:
                    self.snd0 = s + 11
                    self.snd1 = self.ua1
        pos = self.line
        self.body0 = self.body1 = pos
        if self.chunked:
            if self.clen != _NOBODY:  # both framings: a smuggling attempt (RFC 7230 §3.3.3)
                raise ProtocolError("HTTP: Content-Length with chunked")
            self.state = _CSIZE
        elif self.clen > 0:
            n = self.clen
            if n > self.max_body:
                self._oversize("HTTP: body too large", n, n)
            elif not self._fit(pos + n):
                self._oversize("HTTP: request larger than buffer", n, n)
            else:
                self.state = _LENGTH
        else:
            # No Content-Length and no chunking: an empty body (Pong, an empty
            # CheckpointResourcesMessage; §1.3).
            self.end = pos
            self.state = _DONE

    def _chunk_size(self, buf, a, b):
        val = 0
        i = a
        # Digits stop counting past the limit (no big ints); what the size means is decided below.
        lim = self.max_discard if self.snd0 >= 0 else self.max_body
        while i < b:
            c = _hexval(buf[i])
            if c < 0:
                break
            val = val * 16 + c
            if val > lim:
                val = lim + 1
            i += 1
        if i == a:
            raise ProtocolError("HTTP: bad chunk size")
        while i < b and (buf[i] == _SP or buf[i] == _HT):
            i += 1
        if i < b and buf[i] != 59:  # only ';' chunk extensions may follow; they are ignored
            raise ProtocolError("HTTP: bad chunk size")
        if val == 0:
            self.state = _TRAILER
        elif self.dropped:
            self._oversize("HTTP: body too large", self.dropped + val, val)
        elif self.body1 - self.body0 + val > self.max_body:
            self._oversize("HTTP: body too large", self.body1 - self.body0 + val, val)
        elif not self._fit(self.line + val + 2):
            self._oversize("HTTP: request larger than buffer", self.body1 - self.body0 + val, val)
        else:
            self._left = val
            self.state = _CDATA
