#!/usr/bin/env python3
# `make fuzz`: the long fuzz run of the protobuf decoder and the HTTP request parser, inside the unix port.
# MIT licence. The test suite runs the same programs with smaller N.
import argparse
import base64
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import mpy  # noqa: E402


def write_captured_bodies(path):
    """The captured bodies as short {type, hex} lines: the capture's own lines carry the whole HTTP
    exchange (kilobytes of base64) that would only fragment the fuzzer's small heap while loading."""
    with open(os.path.join(mpy.GOLDEN, "captured", "master-agent.jsonl")) as f, open(path, "w") as out:
        for line in f:
            rec = json.loads(line)
            if rec["type"].startswith("mesos.internal."):
                body = base64.b64decode(rec["body_b64"]).hex()
                out.write(json.dumps({"type": rec["type"], "hex": body}) + "\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000000, help="inputs for the decoder (HTTP gets n/10)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    captured = write_captured_bodies(os.path.join(tempfile.mkdtemp(), "captured.jsonl"))
    runs = [("fuzz_codec.py", [os.path.join(mpy.GOLDEN, "vectors.jsonl"), str(a.n), str(a.seed), captured]),
            ("fuzz_http.py", [str(max(a.n // 10, 1)), str(a.seed)])]
    bad = 0
    for script, args in runs:
        r = mpy.run_mpy(script=os.path.join(ROOT, "tests", "fuzz", script), args=args, timeout=6 * 3600)
        print(r.out.strip() or r.err.strip())
        bad |= r.rc != 0
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
