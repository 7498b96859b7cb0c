# Finding a task's code: frozen module, or a file in tasks_dir (fetched there from CommandInfo.URIs by
# download.py); .mpy header checks; the import, recorded so the module can leave RAM with its last task.
# MIT licence. Every failure is a FetchError. Imported by launch.py, and dropped with it (Tasks.DROP_CODE):
# its state lives on the runner (tasks.Tasks). RAM: a launch imports it beside its task, in a heap that may be in
# pieces: what one function uses is imported or written there, so its globals table is small (16 keys; with 23 the
# import wanted one 184 B block, which a 24 KB node's launch often could not find).
import sys

from .errors import MesosError


class FetchError(MesosError):
    # A task's code could not be found, fetched, verified or imported; the message names the cause.
    pass


def module_name(s):
    if not isinstance(s, str) or not s or len(s) > 32 or s[0].isdigit():  # the longest name taken: 32
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
    rest, sep, pin = uri[7:].partition("#sha256=")
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
    import os

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
            from .inventory import arch_name

            raise FetchError("%s holds native code for %s, this firmware runs %s" % (
                fname, arch_name(a), arch_name(arch)))
    if h[3] > bits:
        raise FetchError("%s was compiled for %d-bit small ints, this firmware has %d" % (fname, h[3], bits))


def allowed(cfg, name, uris):
    """The board's task code policy (config allowed_modules, require_pinned_uris): FetchError saying why
    `name` may not run here, which the launch reports as TASK_FAILED with that message."""
    names = cfg.get("allowed_modules")
    if names and name not in [n.strip() for n in names.split(",")]:
        raise FetchError("module %s is not allowed on this board (allowed_modules: %s)" % (name, names))
    if cfg.get("require_pinned_uris"):
        for u in uris:
            if parse(u["value"], u.get("output_file"))[4] is None:
                raise FetchError("%s has no #sha256= pin and this board requires one (require_pinned_uris)"
                                 % u["value"])


def find(runner, name, uris, fetched=False):
    """The module for CommandInfo.value `name`: frozen (only the names in runner.frozen are looked for
    there), then tasks_dir (filled from `uris`, honouring `cache` and `#sha256=` pins). None if a URI
    must be fetched or a cached file verified first: then fetch_all() and find(..., fetched=True).
    Synchronous and hash-free, so the launch path of a cached module never awaits. Nothing reaches
    __import__ before the module is known to exist: an unknown name costs no interned string."""
    if not module_name(name):
        raise FetchError("CommandInfo.value %r is not a module name" % (name,))
    agent = getattr(runner, "agent", None)
    if agent is not None:
        allowed(agent.cfg, name, uris)
    known = runner.modules  # the task modules this runner imported: name -> [users, pin, imported]
    e = known.get(name)
    mod = sys.modules.get(name)
    if mod is not None and (e is None or e[1] == ".frozen"):
        return mod  # frozen and in use, built in, or imported by the firmware itself
    if e is None and name in runner.frozen:
        mod = _import(runner, name, (".frozen",), True, ".frozen")
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
        try:
            mod = __import__(name)
        except MemoryError:  # often garbage, not a full heap: collect and try once more
            import gc

            for m in [m for m in sys.modules if m not in before]:
                sys.modules.pop(m, None)
            gc.collect()
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
