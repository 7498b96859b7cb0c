# libprocess-over-HTTP/1.1 framing for the stand-in master: bounded request reader, 202 answers, message POSTs.
# MIT licence. Byte layout follows the captured real master (golden/captured) and PROTOCOL.md §1.3-§1.5.
import asyncio
import email.utils
import re
from urllib.parse import unquote

# Bounds on everything an agent (or a stray client) can make us buffer.
MAX_LINE = 8192            # request line, header line, chunk-size line
MAX_HEADERS = 64
MAX_BODY = 4 * 1024 * 1024  # a RunTaskMessage with task data is the largest thing we expect

_UPID = re.compile(r"^([^@]+)@(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$")


class HTTPError(Exception):
    """Malformed or oversize HTTP from a peer: answer 400 (if possible) and close that connection."""


class Request:
    __slots__ = ("method", "target", "version", "headers", "body")

    def __init__(self, method, target, version, headers, body):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # [(name, value)] in wire order, names as sent
        self.body = body

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    @property
    def query(self):
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def keep_alive(self):
        conn = (self.header("Connection") or "").lower()
        if self.version == "HTTP/1.0":
            return conn == "keep-alive"
        return conn != "close"

    def libprocess_sender(self):
        """Sender UPID string per process.cpp: trimmed Libprocess-From, else the User-Agent suffix."""
        lf = self.header("Libprocess-From")
        if lf is not None:
            return lf.strip()
        ua = self.header("User-Agent") or ""
        if ua.startswith("libprocess/"):
            return ua[len("libprocess/"):].strip()
        return None

    def is_libprocess(self):
        # §1.4: a message is a POST with Libprocess-From or a `libprocess/` User-Agent.
        ua = self.header("User-Agent") or ""
        return self.method == "POST" and (
            self.header("Libprocess-From") is not None or ua.startswith("libprocess/"))

    def receiver_and_name(self):
        """('slave-observer(1)', 'mesos.internal.PongSlaveMessage'); receiver percent-decoded."""
        p = self.path
        if not p.startswith("/"):
            raise HTTPError("path does not start with /")
        parts = p[1:].split("/", 1)
        return unquote(parts[0]), (parts[1] if len(parts) > 1 else "")


def parse_upid(s):
    """'id@a.b.c.d:port' -> (id, ip, port); ValueError if it is not a valid IPv4 UPID (§1.1)."""
    m = _UPID.match(s or "")
    if not m:
        raise ValueError("not a UPID: %r" % (s,))
    pid_id, ip, port = m.group(1), m.group(2), int(m.group(3))
    if any(int(o) > 255 for o in ip.split(".")) or ip == "0.0.0.0" or not 0 < port < 65536:
        raise ValueError("not a usable UPID address: %r" % (s,))
    return pid_id, ip, port


def addr_of(pid):
    """(ip, port) of a UPID string, or None if it is not one."""
    try:
        _, ip, port = parse_upid(pid)
    except ValueError:
        return None
    return ip, port


async def _line(reader):
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HTTPError("line longer than %d bytes" % MAX_LINE)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise HTTPError("connection closed inside a line")
    if len(line) > MAX_LINE:
        raise HTTPError("line longer than %d bytes" % MAX_LINE)
    return line.rstrip(b"\r\n")


async def read_request(reader):
    """Next request from `reader`, or None on a clean EOF between requests. HTTPError if malformed."""
    first = await _line(reader)
    while first == b"":  # tolerate stray CRLF between pipelined requests (RFC 9112 §2.2)
        first = await _line(reader)
    if first is None:
        return None
    try:
        method, target, version = first.decode("latin-1").split(" ")
    except ValueError:
        raise HTTPError("bad request line %r" % first[:80])
    if version not in ("HTTP/1.1", "HTTP/1.0") or not method.isalpha():
        raise HTTPError("bad request line %r" % first[:80])
    headers = []
    while True:
        line = await _line(reader)
        if line is None:
            raise HTTPError("connection closed inside headers")
        if line == b"":
            break
        if len(headers) >= MAX_HEADERS:
            raise HTTPError("more than %d headers" % MAX_HEADERS)
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise HTTPError("bad header line %r" % line[:80])
        headers.append((name, value.strip()))
    req = Request(method, target, version, headers, b"")
    te = (req.header("Transfer-Encoding") or "").lower()
    cl = req.header("Content-Length")
    try:
        if te == "chunked":
            req.body = await _read_chunked(reader)
        elif te:
            raise HTTPError("unsupported Transfer-Encoding %r" % te)
        elif cl is not None:
            if not cl.isdigit():
                raise HTTPError("bad Content-Length %r" % cl)
            n = int(cl)
            if n > MAX_BODY:
                raise HTTPError("body of %d bytes exceeds %d" % (n, MAX_BODY))
            req.body = await reader.readexactly(n)
    except asyncio.IncompleteReadError:
        raise HTTPError("connection closed inside the body")
    return req


async def _read_chunked(reader):
    body = bytearray()
    while True:
        line = await _line(reader)
        if line is None:
            raise HTTPError("connection closed inside chunked body")
        size_s = line.split(b";", 1)[0].strip()
        try:
            size = int(size_s, 16)
        except ValueError:
            raise HTTPError("bad chunk size %r" % line[:40])
        if size < 0 or len(body) + size > MAX_BODY:
            raise HTTPError("chunked body exceeds %d bytes" % MAX_BODY)
        if size == 0:
            break
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise HTTPError("chunk not followed by CRLF")
    while True:  # trailers, then the blank line
        line = await _line(reader)
        if line is None:
            raise HTTPError("connection closed inside chunked trailer")
        if line == b"":
            return bytes(body)


def http_date():
    return email.utils.formatdate(usegmt=True)


def status_response(code, reason):
    """What libprocess answers a message with (encoder.hpp): status line, Date, Content-Length: 0."""
    return ("HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Length: 0\r\n\r\n"
            % (code, reason, http_date())).encode("latin-1")


ACCEPTED = (202, "Accepted")
NOT_FOUND = (404, "Not Found")
BAD_REQUEST = (400, "Bad Request")


def json_response(code, reason, body_bytes, keep_alive=True):
    """Control-API answer (ordinary HTTP, not libprocess)."""
    head = ("HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (code, reason, http_date(), len(body_bytes), "" if keep_alive else "Connection: close\r\n"))
    return head.encode("latin-1") + body_bytes


def message_request(sender, receiver_upid, name, body):
    """A libprocess message POST exactly as the real master frames it (MessageEncoder, §1.3):
    fixed header order, chunked with one lowercase-hex chunk only for a non-empty body."""
    rid, ip, port = parse_upid(receiver_upid)
    head = ("POST /%s/%s HTTP/1.1\r\n"
            "User-Agent: libprocess/%s\r\n"
            "Libprocess-From: %s\r\n"
            "Connection: Keep-Alive\r\n"
            "Host: %s:%d\r\n" % (rid, name, sender, sender, ip, port))
    if not body:
        return (head + "\r\n").encode("latin-1")
    return (head + "Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(body)).encode("latin-1") \
        + bytes(body) + b"\r\n0\r\n\r\n"
