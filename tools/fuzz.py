#!/usr/bin/env python3
# `make fuzz`: the long fuzz run of the protobuf decoder and the HTTP request parser, inside the unix port.
# MIT licence. The test suite runs the same programs with smaller N. Progress lines are shown as they come;
# with --write, the figures of a passing run replace the "## Fuzz" section of that markdown file.
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import mpy  # noqa: E402

SECTION = "## Fuzz (`make fuzz`)"
_KEEP_LINES = 200  # of a program's output, for the summary and a finding; the rest only streamed


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


def run_streamed(script, args, timeout):
    """Run a fuzz program in the unix port, echoing its lines as they come. -> (rc, last lines, seconds)."""
    t = time.time()
    p = mpy.popen_mpy(script=script, args=args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killer = threading.Timer(timeout, p.kill)
    killer.start()
    tail = []
    try:
        for line in p.stdout:
            print(line, end="", flush=True)
            tail.append(line.rstrip("\n"))
            del tail[:-_KEEP_LINES]
        rc = p.wait()
    finally:
        killer.cancel()
    return rc, tail, time.time() - t


def summary(prog, lines):
    """The figures of the program's final line (`prog: inputs=...`), or None."""
    for line in reversed(lines):
        if line.startswith(prog + ": inputs="):
            return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line)}
    return None


def section(n, seed, codec, http, wall):
    heap = mpy.DEFAULT_HEAPSIZE
    return "\n".join([
        SECTION, "",
        "Written by the last passing `make fuzz` (tools/fuzz.py; `make bench` keeps this section), %s, "
        "seed %d, unix port -X heapsize=%s. An escape is any exception other than the module's own "
        "error type (DecodeError / ProtocolError; for the codec also MemoryError, a decode whose dicts outgrow "
        "the fuzzer's heap, counted), a wrapped internal error, an unstable re-encode or a "
        "parser result that depends on how the bytes were split." % (time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                     time.gmtime()), seed, heap),
        "",
        "| fuzzer | inputs | outcome | escapes | heap delta | slowest input | time |",
        "|---|---|---|---|---|---|---|",
        "| codec (`tests/fuzz/fuzz_codec.py`) | %d mutated bodies, %d decodes | %d decoded (%d re-encoded "
        "stably), %d DecodeError, %d MemoryError | 0 | %d B (tolerance %d) | %.1f ms | %.0f s |"
        % (codec["inputs"], codec["decodes"], codec["ok"], codec["roundtrips"], codec["decode_errors"],
           codec["decode_oom"], codec["heap_delta"], codec["tolerance"], codec["max_input_us"] / 1000,
           wall[0]),
        "| HTTP parser (`tests/fuzz/fuzz_http.py`) | %d mutated requests, 3 parsers each | %d requests "
        "parsed, %d ProtocolError, %d incomplete | 0 | %d B (tolerance %d) | %.1f ms | %.0f s |"
        % (http["inputs"], http["requests"], http["protocol_errors"], http["incomplete"], http["heap_delta"],
           http["tolerance"], http["max_input_us"] / 1000, wall[1]),
        "",
        "Round trips (encode, decode again, encode) that ran out of memory were retried on a collected heap: "
        "%d; of those, %d still did not fit next to the ~74 KB the fuzzer holds in its 128 KB heap and were "
        "skipped (counted; more than 1 in 1000 fails the run). The agent never round-trips. A decode that runs "
        "out of memory raises MemoryError, never DecodeError: the agent and the node log it as out of memory, "
        "not as a bad message (more than 1 in 1000 decodes fails the run)."
        % (codec.get("oom_retries", 0), codec.get("oom_skipped", 0)),
        "", "Reproduce: `make fuzz FUZZ_N=%d` (%d inputs to the codec, %d to the HTTP parser)."
        % (n, codec["inputs"], http["inputs"]), ""])


def replace_section(path, text):
    """Put `text` in place of the file's fuzz section (up to the next "## "), or append it."""
    try:
        with open(path) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = "# Benchmarks\n"
    i = doc.find(SECTION)
    if i < 0:
        doc = doc.rstrip("\n") + "\n\n" + text
    else:
        j = doc.find("\n## ", i + len(SECTION))
        doc = doc[:i] + text + (doc[j + 1:] if j >= 0 else "")
    with open(path, "w") as f:
        f.write(doc.rstrip("\n") + "\n")


def keep_section(path, report):
    """`report` (a regenerated markdown file) with the fuzz section of the file at `path` carried over."""
    try:
        with open(path) as f:
            doc = f.read()
    except FileNotFoundError:
        return report
    i = doc.find(SECTION)
    if i < 0 or SECTION in report:
        return report
    j = doc.find("\n## ", i + len(SECTION))
    return report.rstrip("\n") + "\n\n" + (doc[i:j + 1] if j >= 0 else doc[i:]).rstrip("\n") + "\n"


def main():
    ap = argparse.ArgumentParser(description="Long fuzz run of the codec and the HTTP parser in the unix port.")
    ap.add_argument("--n", type=int, default=1000000, help="inputs for the decoder (HTTP gets n/10)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--write", help="on success, put the figures into this markdown file's fuzz section")
    a = ap.parse_args()
    captured = write_captured_bodies(os.path.join(tempfile.mkdtemp(), "captured.jsonl"))
    runs = [("fuzz_codec", [os.path.join(mpy.GOLDEN, "vectors.jsonl"), str(a.n), str(a.seed), captured]),
            ("fuzz_http", [str(max(a.n // 10, 1)), str(a.seed)])]
    figures, walls, bad = [], [], False
    for prog, args in runs:
        rc, tail, wall = run_streamed(os.path.join(ROOT, "tests", "fuzz", prog + ".py"), args, 6 * 3600)
        f = summary(prog, tail)
        if rc != 0 or f is None:
            bad = True
            print("%s: FAILED (exit %d)" % (prog, rc), flush=True)
        figures.append(f)
        walls.append(wall)
    if bad:
        sys.exit(1)
    codec, http = figures
    print("fuzz: passed: codec %d inputs in %.0f s, HTTP %d inputs in %.0f s, 0 escapes, heap delta %d B / %d B"
          % (codec["inputs"], walls[0], http["inputs"], walls[1], codec["heap_delta"], http["heap_delta"]))
    if a.write:
        path = a.write if os.path.isabs(a.write) else os.path.join(ROOT, a.write)
        replace_section(path, section(a.n, a.seed, codec, http, walls))
        print("fuzz: figures written to", a.write)


if __name__ == "__main__":
    main()
