# Getting a task's code: frozen module, tasks_dir file or CommandInfo.URI (HTTP/1.0 GET, sha256 pin), .mpy checks.
# MIT licence. Everything is bounded (head, header count, body size, time); every failure is a FetchError.
# Imported by launch.py per launch (Tasks.DROP_CODE): its state lives on the runner (tasks.Tasks).
import binascii
import errno
import hashlib
import os
import select
import socket
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
_HASH_YIELD = const(4)    # chunks hashed between two yields to the loop (2 KB: ~1 ms on an ESP32)
_POLL_MS = const(10)
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


def _sockaddr_in(ip, port):
    # The unix port's connect() takes a packed struct sockaddr_in (Linux: family in host byte order).
    fam = socket.AF_INET
    b = bytearray(16)
    b[0], b[1] = (fam & 0xFF, fam >> 8) if sys.byteorder == "little" else (fam >> 8, fam & 0xFF)
    b[2], b[3] = port >> 8, port & 0xFF
    b[4:8] = bytes(int(p) for p in ip.split("."))
    return bytes(b)


async def _open(host, port):
    """A stream to host:port. An IPv4 literal is connected without getaddrinfo; a host name is
    resolved by getaddrinfo, which blocks the whole loop while DNS answers (README: use IPs)."""
    if not ipv4(host):
        return await asyncio.open_connection(host, port)
    s = socket.socket()
    ok = False
    try:
        s.setblocking(False)
        try:
            try:
                s.connect((host, port))
            except TypeError:
                s.connect(_sockaddr_in(host, port))
        except OSError as e:
            if e.errno != errno.EINPROGRESS:
                raise
        p = select.poll()
        p.register(s, select.POLLOUT)
        while True:  # get() bounds the wait (wait_for_ms) and closes the socket on cancellation
            ev = p.poll(0)
            if ev:
                if ev[0][1] & (select.POLLERR | select.POLLHUP):
                    raise OSError(errno.ECONNREFUSED)
                break
            await asyncio.sleep_ms(_POLL_MS)
        p.unregister(s)
        ok = True
    finally:
        if not ok:
            s.close()
    st = asyncio.StreamWriter(s)
    return st, st


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
    r, w = await _open(host, port)
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


def find(runner, name, uris, fetched=False):
    """The module for CommandInfo.value `name`: frozen (only the names in runner.frozen are looked for
    there), then tasks_dir (filled from `uris`, honouring `cache` and `#sha256=` pins). None if a URI
    must be fetched or a cached file verified first: then fetch_all() and find(..., fetched=True).
    Synchronous and hash-free, so the launch path of a cached module never awaits. Nothing reaches
    __import__ before the module is known to exist: an unknown name costs no interned string."""
    if not module_name(name):
        raise FetchError("CommandInfo.value %r is not a module name" % (name,))
    known = runner.modules  # the task modules this runner imported: name -> [users, pin, imported]
    e = known.get(name)
    mod = sys.modules.get(name)
    if mod is not None and (e is None or e[1] == _FROZEN):
        return mod  # frozen and in use, built in, or imported by the firmware itself
    if e is None and name in runner.frozen:
        mod = _import(runner, name, (_FROZEN,), True, _FROZEN)
        if mod is not None:
            return mod
    pin = ""
    modfile = None
    d = runner.tasks_dir
    for u in uris:
        fname, upin = parse(u["value"], u.get("output_file"))[3:]
        dest = d + "/" + fname
        own = fname in (name + ".py", name + ".mpy")
        if own:
            pin = upin or ""
            modfile = dest
        if fetched:
            continue
        if not u.get("cache") or not exists(dest):
            return None
        if upin and not (own and e is not None and e[1] == upin and mod is not None):
            return None  # a cached copy to verify: fetch_all hashes it with yields
    py = d + "/" + name + ".py"
    mpy = d + "/" + name + ".mpy"
    if modfile == mpy and exists(py):
        # The importer prefers .py to .mpy in one directory: it would skip the verified file.
        raise FetchError("%s shadows the fetched %s.mpy; remove it" % (py, name))
    path = py if exists(py) else (mpy if exists(mpy) else None)
    if path is None:
        raise FetchError("unknown module %s: not frozen, no %s.py or .mpy in %s%s" % (
            name, name, d, ", and no CommandInfo.uris provide it" if uris else ""))
    if mod is not None and e is not None and e[1] == pin and not fetched:
        return mod  # imported before from the same verified file, and still in use
    if path.endswith(".mpy"):
        check_mpy(path, name + ".mpy")
    sys.modules.pop(name, None)
    return _import(runner, name, (d,) + tuple(sys.path), False, pin)


def _import(runner, name, path, probe, src):
    """Import `name` from `path` and record it, with every module its import loaded, in
    runner.modules: they all leave sys.modules when its last task ends (Tasks.finish)."""
    saved = list(sys.path)
    before = set(sys.modules)
    sys.path[:] = path
    mod = None
    try:
        mod = __import__(name)
    except ImportError as e:
        if not probe:
            raise FetchError("cannot import %s: ImportError: %s" % (name, e))
    except MemoryError:
        raise FetchError("cannot import %s: out of memory" % name)
    except BaseException as e:  # noqa: B036  its top level is task code (SyntaxError, KeyboardInterrupt, ...)
        raise FetchError("cannot import %s: %s" % (name, _name(e)))
    finally:
        sys.path[:] = saved
        new = [m for m in sys.modules if m not in before]
        if mod is None:
            for m in new:  # what a failed import left behind goes too
                sys.modules.pop(m, None)
        else:
            old = runner.modules.get(name)
            runner.modules[name] = [old[0] if old else 0, src, new]
    return mod


def _name(e):
    t = type(e).__name__
    try:
        s = e.args[0] if len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
        return t + ": " + s[:200] if s else t
    except BaseException:  # noqa: B036  __str__ of a task's exception; nothing here awaits
        return t


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
