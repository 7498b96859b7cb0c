# Getting a task's code: frozen module, tasks_dir file or CommandInfo.URI (HTTP/1.0 GET, sha256 pin), .mpy checks.
# MIT licence. Everything is bounded (head, header count, body size, time); every failure is a FetchError.
import binascii
import hashlib
import os
import sys

import asyncio
from micropython import const

from .errors import MesosError
from .store import makedirs

MAX_BYTES = 65536         # largest file fetched; config fetch_max_bytes overrides per agent
MAX_NAME = const(32)      # CommandInfo.value: one module name
MAX_HEAD = const(1024)    # status line + headers + blank line
MAX_HEADERS = const(32)
TIMEOUT_MS = 15000        # connect + whole transfer
_CHUNK = const(512)       # <= MAX_HEAD: the body is streamed through the head buffer
_SHA = "#sha256="
_FROZEN = ".frozen"

# .mpy feature byte >> 2: native architecture (py/persistentcode.h MP_NATIVE_ARCH_*).
_ARCHS = ("bytecode", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
          "xtensa", "xtensawin", "rv32imc", "rv64imc")


class FetchError(MesosError):
    # A task's code could not be found, fetched, verified or imported; the message names the cause.
    pass


def module_name(s):
    if not isinstance(s, str) or not s or len(s) > MAX_NAME or s[0].isdigit():
        return False
    for c in s:
        if not (c.isalpha() or c.isdigit() or c == "_"):
            return False  # no dots, slashes or spaces: one module in tasks_dir, nothing else
    return True


def _safe_name(s):
    if not s or len(s) > 40 or s[0] == ".":
        return False
    for c in s:
        if not (c.isalpha() or c.isdigit() or c in "_-."):
            return False
    return True


def parse(uri, output_file=None):
    """'http://host[:port]/path[#sha256=<hex>]' -> (host, port, path, file name, sha256 hex or None)."""
    if not uri.startswith("http://"):
        raise FetchError("%s: only http:// URIs can be fetched" % uri)
    rest, sep, pin = uri[7:].partition(_SHA)
    if sep:
        pin = pin.lower()
        if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
            raise FetchError("%s: the sha256 pin must be 64 hex digits" % uri)
    else:
        pin = None
    rest = rest.partition("#")[0]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    try:
        port = int(port) if port else 80
    except ValueError:
        raise FetchError("%s: bad port" % uri)
    if not host or not 0 < port < 65536:
        raise FetchError("%s: bad host or port" % uri)
    fname = output_file or path.rpartition("/")[2].partition("?")[0]
    if not _safe_name(fname):
        raise FetchError("%s: %r is not a plain file name" % (uri, fname))
    return host, port, "/" + path, fname, pin


def sha256_file(path):
    """Hex sha256 of a file, read in small chunks."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return binascii.hexlify(h.digest()).decode()


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _fw_mpy():
    """(version, sub-version, arch number, small-int bits) this firmware loads."""
    m = getattr(sys.implementation, "_mpy", 0)
    bits = 1
    n = sys.maxsize
    while n > 1:
        n >>= 1
        bits += 1
    return m & 0xFF, (m >> 8) & 3, (m >> 10) & 0x0F, bits


def _arch(a):
    return _ARCHS[a] if a < len(_ARCHS) else "arch %d" % a


def check_mpy(path, fname):
    """FetchError naming the mismatch if the .mpy at `path` can't load here (py/persistentcode.c
    mp_raw_code_load checks the same 4 header bytes, but only says "incompatible .mpy file")."""
    with open(path, "rb") as f:
        h = f.read(4)
    ver, sub, arch, bits = _fw_mpy()
    if len(h) < 4 or h[0] != 77:  # b"M"
        raise FetchError("%s is not an .mpy file" % fname)
    if h[1] != ver:
        raise FetchError("%s is mpy v%d, this firmware loads v%d.%d" % (fname, h[1], ver, sub))
    a = (h[2] >> 2) & 0x0F
    if a:  # native code: the sub-version and the architecture must match too
        if h[2] & 3 != sub:
            raise FetchError("%s is mpy v%d.%d native code, this firmware loads v%d.%d" % (
                fname, h[1], h[2] & 3, ver, sub))
        if a != arch:
            raise FetchError("%s holds native code for %s, this firmware runs %s" % (fname, _arch(a), _arch(arch)))
    if h[3] > bits:
        raise FetchError("%s was compiled for %d-bit small ints, this firmware has %d" % (fname, h[3], bits))


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
    r, w = await asyncio.open_connection(host, port)
    try:
        w.write(b"GET " + path.encode() + b" HTTP/1.0\r\nHost: " + host.encode() +
                b"\r\nUser-Agent: micromesos\r\n\r\n")
        await w.drain()
        # The head is read into one fixed buffer (StreamReader.readline() has no length limit).
        buf = bytearray(MAX_HEAD)
        mv = memoryview(buf)
        got = 0
        while True:
            if got == MAX_HEAD:
                raise FetchError("response head over %d bytes" % MAX_HEAD)
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


class Loader:
    """CommandInfo -> module: frozen first, then tasks_dir (filled from CommandInfo.uris, honouring `cache`
    and `#sha256=` pins, checked before import), else FetchError naming what was looked for."""

    def __init__(self, directory, max_bytes=MAX_BYTES):
        self.dir = directory
        self.max_bytes = max_bytes
        self._src = {}  # module -> "frozen", or the sha256 pin ("" if none) its file was imported under
        self._lock = None
        self.fetched = 0

    def find(self, name, uris, fetched=False):
        """The module, or None if a URI must be fetched first (then fetch_all() and find(.., True)).
        Synchronous: the launch path of a cached module never awaits."""
        if not module_name(name):
            raise FetchError("CommandInfo.value %r is not a module name" % (name,))
        src = self._src.get(name)
        mod = sys.modules.get(name)
        if mod is not None and src in (None, "frozen"):
            return mod  # frozen, built in, or imported by the firmware itself
        if src is None:
            mod = self._import(name, (_FROZEN,), True)
            if mod is not None:
                self._src[name] = "frozen"
                return mod
        pin = ""
        modfile = None
        for u in uris:
            fname, upin = parse(u["value"], u.get("output_file"))[3:]
            dest = self.dir + "/" + fname
            own = fname in (name + ".py", name + ".mpy")
            if own:
                pin = upin or ""
                modfile = dest
            if fetched:
                continue
            if not u.get("cache") or not exists(dest):
                return None
            if upin and not (own and src == upin and mod is not None) and sha256_file(dest) != upin:
                return None  # a stale cached copy: fetch again, and check the pin then
        py = self.dir + "/" + name + ".py"
        mpy = self.dir + "/" + name + ".mpy"
        if modfile == mpy and exists(py):
            # The importer prefers .py to .mpy in one directory: it would skip the verified file.
            raise FetchError("%s shadows the fetched %s.mpy; remove it" % (py, name))
        path = py if exists(py) else (mpy if exists(mpy) else None)
        if path is None:
            raise FetchError("unknown module %s: not frozen, no %s.py or .mpy in %s%s" % (
                name, name, self.dir, ", and no CommandInfo.uris provide it" if uris else ""))
        if mod is not None and src == pin and not fetched:
            return mod  # imported before from the same verified file
        if path.endswith(".mpy"):
            check_mpy(path, name + ".mpy")
        sys.modules.pop(name, None)
        mod = self._import(name, (self.dir,) + tuple(sys.path), False)
        self._src[name] = pin
        return mod

    def _import(self, name, path, probe):
        saved = list(sys.path)
        sys.path[:] = path
        try:
            return __import__(name)
        except ImportError as e:
            if probe:
                return None
            raise FetchError("cannot import %s: ImportError: %s" % (name, e))
        except MemoryError:
            raise FetchError("cannot import %s: out of memory" % name)
        except Exception as e:  # SyntaxError, "incompatible .mpy file", errors at its top level
            raise FetchError("cannot import %s: %s: %s" % (name, type(e).__name__, e))
        finally:
            sys.path[:] = saved

    async def fetch_all(self, uris):
        """Fetch every URI not already cached (with a matching pin); one transfer at a time."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one transfer at a time: RAM, sockets and .part files
            for u in uris:
                fname, pin = parse(u["value"], u.get("output_file"))[3:]
                dest = self.dir + "/" + fname
                if u.get("cache") and exists(dest) and (pin is None or sha256_file(dest) == pin):
                    continue
                makedirs(self.dir)
                await get(u["value"], self.dir, u.get("output_file"), self.max_bytes)
                self.fetched += 1
