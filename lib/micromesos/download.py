# CommandInfo.URIs into tasks_dir: HTTP/1.0 GET, sha256 pins, cached copies verified. MIT licence. Everything
# is bounded (head, header count, body size, time); every failure is a fetch.FetchError. Imported by launch.py
# only for a task whose URIs must be fetched or verified, and dropped with it (Tasks.DROP_CODE).
import binascii
import hashlib
import os

import asyncio
from micropython import const

from .fetch import FetchError, exists, parse
from .dial import connect
from .store import makedirs

MAX_BYTES = 65536         # largest file fetched; config fetch_max_bytes overrides per agent
_MAX_HEAD = const(1024)    # status line + headers + blank line
MAX_HEADERS = const(32)
TIMEOUT_MS = 15000        # connect + whole transfer
_CHUNK = const(512)       # <= _MAX_HEAD: the body is streamed through the head buffer
_HASH_YIELD = const(4)    # chunks hashed between two yields to the loop (2 KB: ~1 ms on an ESP32)
_POLL_MS = const(10)


async def sha256_file(path):
    """Hex sha256 of a file, read in small chunks, yielding to the loop every few: a 64 KB file
    hashed in one go would hold the loop for tens of ms on a board."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    k = 0
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
            k += 1
            if k % _HASH_YIELD == 0:
                await asyncio.sleep_ms(0)
    return binascii.hexlify(h.digest()).decode()


def ipv4(host):
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) < 256 for p in parts)


async def _open(host, port):
    """A stream to host:port. An IPv4 literal is connected without getaddrinfo; a host name is
    resolved by getaddrinfo, which blocks the whole loop while DNS answers (README: use IPs)."""
    if not ipv4(host):
        return await asyncio.open_connection(host, port)
    # get() bounds the wait (wait_for_ms); a cancellation closes the socket.
    s = await connect((host, port), None, _POLL_MS)
    st = asyncio.StreamWriter(s)
    return st, st


def _parse_head(head):
    """Status code and Content-Length (or -1) of an HTTP/1.x response head (bytes up to the blank line)."""
    lines = head.split(b"\r\n")
    if len(lines) > MAX_HEADERS + 1:
        raise FetchError("more than %d response headers" % MAX_HEADERS)
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise FetchError("not an HTTP response: %r" % bytes(lines[0][:40]))
    status = int(parts[1])
    length = -1
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    return status, length


async def _get(host, port, path, dest, max_bytes):
    r, w = await _open(host, port)
    try:
        w.write(b"GET " + path.encode() + b" HTTP/1.0\r\nHost: " + host.encode() +
                b"\r\nUser-Agent: micromesos\r\n\r\n")
        await w.drain()
        # The head is read into one fixed buffer (StreamReader.readline() has no length limit).
        buf = bytearray(_MAX_HEAD)
        mv = memoryview(buf)
        got = 0
        while True:
            if got == _MAX_HEAD:
                raise FetchError("response head over %d bytes" % _MAX_HEAD)
            k = await r.readinto(mv[got:])
            if not k:
                raise FetchError("connection closed inside the response head")
            got += k
            end = buf.find(b"\r\n\r\n", 0, got)
            if end >= 0:
                break
        status, length = _parse_head(bytes(mv[:end]))
        if status != 200:
            raise FetchError("HTTP %d" % status)
        if length > max_bytes:
            raise FetchError("%d bytes is over the %d-byte fetch limit" % (length, max_bytes))
        h = hashlib.sha256()
        n = got - end - 4  # body bytes already in the buffer
        with open(dest, "wb") as f:
            k = n
            lo = end + 4
            while True:
                if n > max_bytes:
                    raise FetchError("body over the %d-byte fetch limit" % max_bytes)
                if k:
                    h.update(mv[lo:lo + k])
                    f.write(mv[lo:lo + k])
                lo = 0
                k = await r.readinto(mv[:_CHUNK])
                if not k:
                    break
                n += k
        if 0 <= length != n:
            raise FetchError("got %d of %d bytes" % (n, length))
        return n, binascii.hexlify(h.digest()).decode()
    finally:
        w.close()
        await w.wait_closed()


async def get(uri, directory, output_file=None, max_bytes=None, timeout_ms=None):
    """Fetch `uri` into `directory` (atomically: .part file, sha256 checked, then renamed).
    -> (path, bytes). FetchError for a bad URI, an HTTP error, a size or sha256 mismatch,
    an unreachable host or a timeout."""
    host, port, path, fname, pin = parse(uri, output_file)
    dest = directory + "/" + fname
    part = dest + ".part"
    try:
        n, digest = await asyncio.wait_for_ms(_get(host, port, path, part, max_bytes or MAX_BYTES),
                                              timeout_ms or TIMEOUT_MS)
    except asyncio.CancelledError:
        _remove(part)  # killed during launch
        raise
    except asyncio.TimeoutError:
        _remove(part)
        raise FetchError("%s: no complete answer within %d ms" % (uri, timeout_ms or TIMEOUT_MS))
    except OSError as e:
        _remove(part)
        raise FetchError("%s: unreachable (%s)" % (uri, e))
    except (FetchError, ValueError) as e:
        _remove(part)
        raise FetchError("%s: %s" % (uri, e))
    if pin is not None and digest != pin:
        _remove(part)
        raise FetchError("%s: sha256 mismatch: got %s, pinned %s" % (fname, digest, pin))
    _remove(dest)  # FAT can't rename over a file
    os.rename(part, dest)
    return dest, n


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


async def fetch_all(runner, uris):
    """Fetch every URI not already cached (with a matching pin); one transfer at a time."""
    if runner.fetch_lock is None:
        runner.fetch_lock = asyncio.Lock()
    d = runner.tasks_dir
    async with runner.fetch_lock:  # one transfer at a time: RAM, sockets and .part files
        for u in uris:
            fname, pin = parse(u["value"], u.get("output_file"))[3:]
            dest = d + "/" + fname
            if u.get("cache") and exists(dest) and (pin is None or await sha256_file(dest) == pin):
                continue
            makedirs(d)
            await get(u["value"], d, u.get("output_file"), runner.fetch_max)
