#!/usr/bin/env python3
# `make devmodel`: the 32-bit device model, MicroPython's unix port built as an x86-32 binary. MIT licence.
#
#   build/devmodel/loaded/micropython   stock-firmware model: no agent inside; its .mpy files are read
#                                       from the "filesystem" (MICROPYPATH) into RAM
#   build/devmodel/frozen/micropython   `make firmware` model: lib/, boards/unix/board.py and tasks/
#                                       frozen in by boards/unix/manifest.py
#   build/devmodel/bridge/micropython   `make firmware ROLE=bridge` model (the ESP32 Wi-Fi <-> ESP-NOW
#                                       gateway, docs/GATEWAY.md §10): the frozen one plus lib/mgateway,
#                                       boards/unix/bridge_manifest.py; built only when asked for
#   build/devmodel/split/micropython    stock ESP32 firmware's heap: the loaded model with its -X heapsize cut
#                                       into two equal areas (MICROPY_GC_SPLIT_HEAP). ESP32 v1.28 starts
#                                       Python with one 56 KB area and adds areas from the system heap when it
#                                       is short, doubling it first (ports/esp32/mpconfigport.h, gccollect.c):
#                                       `split` at 112k is that heap after its first growth. Built only when
#                                       asked for, in its own object directory (other compiler flags)
#
# Source: $MICROPY_DIR (a micropython v1.28 checkout) if set, else ../shared/vendor/micropython-1.28.0.tar.gz
# extracted under build/devmodel/src (the archive is never written). Both flavours share one object
# directory, so the frozen one only regenerates frozen_content.c and relinks. Each binary is rebuilt
# only when its inputs change (a key stored next to it).
import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "build", "devmodel")
TARBALL = os.path.join(os.path.dirname(ROOT), "shared", "vendor", "micropython-1.28.0.tar.gz")
FLAVOURS = ("loaded", "frozen", "bridge", "split")
DEFAULT = ("loaded", "frozen")  # what `tools/devmodel.py` builds with no flavour named
_MANIFEST = {"frozen": "manifest.py", "bridge": "bridge_manifest.py"}  # in boards/unix/
# v1.28 is the last release with MICROPY_FORCE_32BIT; btree, ssl and ffi need submodules the snapshot lacks.
MAKE_FLAGS = ("VARIANT=standard", "MICROPY_FORCE_32BIT=1", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0",
              "MICROPY_PY_FFI=0")
# The split flavour's compiler flags: the unix port's own switch for a heap of N equal areas (ports/unix/main.c).
SPLIT_FLAGS = "-DMICROPY_GC_SPLIT_HEAP=1 -DMICROPY_GC_SPLIT_HEAP_N_HEAPS=2"
# What the frozen binary holds besides the interpreter: a change here rebuilds it.
FROZEN_INPUTS = ("lib", "boards/unix", "tasks")


def binary(flavour):
    """Path of a flavour's binary (it may not exist yet: see ensure())."""
    if flavour not in FLAVOURS:
        raise ValueError("flavour %r: one of %s" % (flavour, ", ".join(FLAVOURS)))
    return os.path.join(OUT, flavour, "micropython")


def _sha(h, path):
    with open(path, "rb") as f:
        h.update(f.read())


def source_tree():
    """The MicroPython source tree the device models are built from (extracted when needed)."""
    return _source()[0]


def _source():
    """(directory of a micropython tree, key naming that source)."""
    mdir = os.environ.get("MICROPY_DIR")
    if mdir:
        mdir = os.path.abspath(os.path.expanduser(mdir))
        if not os.path.isfile(os.path.join(mdir, "ports", "unix", "Makefile")):
            sys.exit("devmodel: MICROPY_DIR=%s has no ports/unix/Makefile" % mdir)
        head = ""
        try:
            head = subprocess.run(["git", "-C", mdir, "rev-parse", "HEAD"], capture_output=True,
                                  text=True).stdout.strip()
        except OSError:
            pass
        return mdir, "dir:%s@%s" % (mdir, head)
    if not os.path.isfile(TARBALL):
        sys.exit("devmodel: no source: set MICROPY_DIR to a micropython v1.28 checkout (%s is missing)" % TARBALL)
    h = hashlib.sha256()
    _sha(h, TARBALL)
    key = "tar:" + h.hexdigest()
    src = os.path.join(OUT, "src")
    tree = os.path.join(src, "micropython-1.28.0")
    stamp = os.path.join(src, ".key")
    if _read(stamp) != key or not os.path.isdir(tree):
        shutil.rmtree(src, ignore_errors=True)
        os.makedirs(src)
        _say("extracting %s into %s" % (os.path.relpath(TARBALL, ROOT), os.path.relpath(src, ROOT)))
        with tarfile.open(TARBALL) as t:
            t.extractall(src, filter="data")
        _write(stamp, key)
    return tree, key


def _frozen_key():
    h = hashlib.sha256()
    for top in FROZEN_INPUTS:
        base = os.path.join(ROOT, top)
        for d, dirs, files in os.walk(base):
            dirs[:] = sorted(x for x in dirs if x != "__pycache__")
            for f in sorted(files):
                if f.endswith((".py", ".json")):
                    p = os.path.join(d, f)
                    h.update(os.path.relpath(p, ROOT).encode() + b"\0")
                    _sha(h, p)
    return h.hexdigest()


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _say(text):
    # Progress goes to stderr: callers (tools/vboard.py) keep stdout for their own first line.
    print("devmodel: " + text, file=sys.stderr, flush=True)


def _make(args):
    _say("make " + " ".join(args))
    subprocess.run(["make"] + args, check=True, stdout=sys.stderr if QUIET else None)


QUIET = False


def _build(flavour, tree, key, jobs):
    obj = os.path.join(OUT, "obj-split" if flavour == "split" else "obj")
    # The object directory (and the mpy-cross built in it) is only valid for one source tree.
    okey = os.path.join(obj, ".key")
    if _read(okey) != key:
        shutil.rmtree(obj, ignore_errors=True)
        os.makedirs(obj)
        _write(okey, key)
    xdir = os.path.join(obj, "mpy-cross-build")
    cross = os.path.join(xdir, "mpy-cross")
    if not os.path.exists(cross):
        _make(["-C", os.path.join(tree, "mpy-cross"), "-j%d" % jobs, "BUILD=" + xdir])
    manifest = (os.path.join(ROOT, "boards", "unix", _MANIFEST[flavour]) if flavour in _MANIFEST
                else os.path.join(tree, "ports", "unix", "variants", "standard", "manifest.py"))
    # makemanifest.py regenerates frozen_content.c only when a module is newer than it, so a switch to another
    # manifest whose modules are all older (frozen <-> bridge) would relink the last flavour's content.
    try:
        os.remove(os.path.join(obj, "frozen_content.c"))
    except OSError:
        pass
    extra = ["CFLAGS_EXTRA=" + SPLIT_FLAGS] if flavour == "split" else []
    _make(["-C", os.path.join(tree, "ports", "unix"), "-j%d" % jobs, "BUILD=" + obj,
           "MICROPY_MPYCROSS=" + cross, "FROZEN_MANIFEST=" + manifest] + list(MAKE_FLAGS) + extra)
    out = binary(flavour)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    shutil.copy2(os.path.join(obj, "micropython"), out + ".tmp")
    os.replace(out + ".tmp", out)


def ensure(flavours=DEFAULT, jobs=None, quiet=False):
    """Build what is missing or stale; returns {flavour: binary path}. Safe to call from parallel processes."""
    global QUIET
    QUIET = quiet
    jobs = jobs or os.cpu_count() or 2
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tree, key = _source()
        key = "%s|%s" % (key, " ".join(MAKE_FLAGS))
        # loaded first: the frozen build then reuses its objects.
        for flavour in [f for f in FLAVOURS if f in flavours]:
            if flavour in ("loaded", "split"):
                want = key + ("|" + SPLIT_FLAGS if flavour == "split" else "")
            else:
                want = key + ("|" if flavour == "frozen" else "|bridge|") + _frozen_key()
            stamp = binary(flavour) + ".key"
            if _read(stamp) == want and os.path.exists(binary(flavour)):
                continue
            t = time.time()
            _build(flavour, tree, key, jobs)
            _write(stamp, want)
            _say("%s built in %.0f s: %s" % (flavour, time.time() - t, os.path.relpath(binary(flavour), ROOT)))
    return {f: binary(f) for f in flavours}


def main():
    ap = argparse.ArgumentParser(description="Build the 32-bit device model (MicroPython unix port, x86-32).")
    ap.add_argument("flavours", nargs="*", help="loaded, frozen, bridge, split (default: loaded and frozen)")
    ap.add_argument("-j", "--jobs", type=int, default=0, help="parallel compile jobs (default: all cores)")
    ap.add_argument("-q", "--quiet", action="store_true", help="compiler output to stderr")
    a = ap.parse_args()
    bad = [f for f in a.flavours if f not in FLAVOURS]
    if bad:
        ap.error("unknown flavour %s (%s)" % (", ".join(bad), ", ".join(FLAVOURS)))
    for f, path in ensure(tuple(a.flavours) or DEFAULT, a.jobs, a.quiet).items():
        print("devmodel: %s: %s" % (f, os.path.relpath(path, ROOT)))


if __name__ == "__main__":
    main()
