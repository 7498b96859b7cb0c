#!/usr/bin/env python3
# `make bench`: runs every tools/bench/bench_*.py and writes the sections they print to docs/BENCHMARKS.md.
# MIT licence. Each module has run() -> str (a markdown section with numbers measured just now).
import argparse
import glob
import importlib.util
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "tools", "hostcompat"),
                os.path.join(ROOT, "tools"), os.path.join(ROOT, "lib"), HERE]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", help="also write the report to this markdown file")
    ap.add_argument("--only", help="run only bench_<ONLY>.py")
    a = ap.parse_args()
    import mpy

    ver = subprocess.run(mpy.mpy_argv() + ["-c", "import sys; print(sys.version)"],
                         capture_output=True, text=True, env=mpy.mpy_env()).stdout.strip()
    head = ["# Benchmarks", "",
            "Printed by `make bench` (tools/bench/run.py); every number below was measured by that run.",
            "", "- when: %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "- host: %s, %s, %d cores" % (platform.machine(), platform.system(), os.cpu_count() or 0),
            "- MicroPython unix port: %s, -X heapsize=%s" % (ver, mpy.DEFAULT_HEAPSIZE),
            "- the unix port is 64-bit: objects are up to twice their size on a 32-bit ESP32/RP2040",
            "- the 32-bit device model (`make devmodel`: build/devmodel/{loaded,frozen}/micropython, and `split` for "
            "a stock ESP32's heap, the unix port of MicroPython v1.28.0 as an x86-32 binary) gives the RAM figures that matter: see its section",
            ""]
    sections = []
    for path in sorted(glob.glob(os.path.join(HERE, "bench_*.py"))):
        name = os.path.basename(path)[6:-3]
        if a.only and name != a.only:
            continue
        spec = importlib.util.spec_from_file_location("bench_" + name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        t = time.time()
        text = mod.run().rstrip() + "\n"
        print(text, flush=True)
        print("(%s: %.1f s)\n" % (name, time.time() - t), file=sys.stderr)
        sections.append(text)
    report = "\n".join(head) + "\n" + "\n".join(sections)
    if a.write:
        from fuzz import keep_section  # `make fuzz` writes its own section: carried over, not measured here

        report = keep_section(os.path.join(ROOT, a.write) if not os.path.isabs(a.write) else a.write, report)
        with open(os.path.join(ROOT, a.write) if not os.path.isabs(a.write) else a.write, "w") as f:
            f.write(report)
        print("wrote", a.write)


if __name__ == "__main__":
    main()
