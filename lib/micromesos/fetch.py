# Finding a task's code: frozen module, or a file in tasks_dir (taskfiles.py; fetched there from
# CommandInfo.URIs by download.py); the import, recorded so the module can leave RAM with its last task.
# MIT licence. Every failure is a FetchError. Imported by launch.py, and dropped with it (Tasks.DROP_CODE):
# its state lives on the runner (tasks.Tasks).
import gc
import os
import sys

from micropython import const

from .errors import MesosError
from .tasks import load

MAX_NAME = const(32)      # CommandInfo.value: one module name
_FROZEN = ".frozen"


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


def allowed(cfg, name, uris):
    """The board's task code policy (config allowed_modules, require_pinned_uris): FetchError saying why
    `name` may not run here, which the launch reports as TASK_FAILED with that message."""
    names = cfg.get("allowed_modules")
    if names and name not in [n.strip() for n in names.split(",")]:
        raise FetchError("module %s is not allowed on this board (allowed_modules: %s)" % (name, names))
    if cfg.get("require_pinned_uris"):
        for u in uris:
            from .taskfiles import parse

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
    if mod is not None and (e is None or e[1] == _FROZEN):
        return mod  # frozen and in use, built in, or imported by the firmware itself
    if e is None and name in runner.frozen:
        mod = _import(runner, name, (_FROZEN,), True, _FROZEN)
        if mod is not None:
            return mod
    if mod is not None and e is not None and not e[1] and not uris and not fetched:
        d = runner.tasks_dir + "/" + name
        if _exists(d + ".py") or _exists(d + ".mpy"):
            return mod  # imported from an unpinned file in tasks_dir that is still there: as taskfiles.locate
    try:
        # The tasks_dir half: not needed for frozen or imported code. load(): a retry after gc.collect().
        r = load("taskfiles").locate(runner, name, uris, fetched, e, mod)
    finally:
        if getattr(runner, "drop_code", True):
            _drop("taskfiles")  # before the task's own import: not in RAM at the launch's peak
    if not isinstance(r, str):
        return r  # None: fetch first; or the module, already imported from the same verified file
    sys.modules.pop(name, None)
    return _import(runner, name, (runner.tasks_dir,) + tuple(sys.path), False, r)


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


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _drop(name):
    sys.modules.pop("micromesos." + name, None)
    pkg = sys.modules.get("micromesos")
    if pkg is not None and name in pkg.__dict__:
        delattr(pkg, name)


def _name(e):
    t = type(e).__name__
    try:
        s = e.args[0] if len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
        return t + ": " + s[:200] if s else t
    except BaseException:  # noqa: B036  __str__ of a task's exception; nothing here awaits
        return t
