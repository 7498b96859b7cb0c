# Task code files in tasks_dir: CommandInfo.URIs parsed, cached copies found, .mpy headers checked.
# MIT licence. Imported by fetch.find only for code that is neither frozen nor imported yet (and by
# download.py); fetch drops it again before the task's own import. Every failure is a FetchError.
import os
import sys

from .fetch import FetchError
from .inventory import arch_name as _arch

_SHA = "#sha256="


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


def locate(runner, name, uris, fetched, e, mod):
    """fetch.find's tasks_dir half: None if a URI must be fetched or a cached file verified first; the
    module if it was imported before from the same verified file; else the pin ("" if none) of the file
    to import. e: runner.modules' entry for `name`, mod: sys.modules'."""
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
    return pin
