# Runs tests/fuzz/fuzz_http.py (the HTTP parser fuzzer) in the unix port with a 128 KB heap.
# MIT licence. `make fuzz` runs the same program far longer.
import os
import re
import shutil

import mpy

FUZZ = os.path.join(mpy.ROOT, "tests", "fuzz", "fuzz_http.py")
CAPTURE = os.path.join(mpy.GOLDEN, "captured", "master-agent.jsonl")


def summary(out):
    line = [l for l in out.splitlines() if l.startswith("fuzz_http:")]
    assert len(line) == 1, out[-2000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line[0])}


def test_fuzz_10000_inputs_only_protocol_errors_no_leak():
    r = mpy.run_mpy(script=FUZZ, args=["10000", "20261125", CAPTURE], timeout=120)
    assert r.rc == 0, (r.out + r.err)[-3000:]
    s = summary(r.out)
    print("fuzz_http: %d inputs, %d requests parsed, %d ProtocolError, %d incomplete, heap delta %d B, %d ms"
          % (s["inputs"], s["requests"], s["protocol_errors"], s["incomplete"], s["heap_delta"], s["time_ms"]))
    assert s["inputs"] == 10000 and s["other"] == 0
    # Both outcomes are exercised heavily, and incomplete inputs (truncations) stay incomplete.
    assert s["requests"] > 3000 and s["protocol_errors"] > 1000 and s["incomplete"] > 500
    assert s["heap_delta"] <= s["tolerance"]


def test_fuzzer_finds_a_planted_parser_bug(tmp_path):
    # The oracle must be able to fail: resume the LF search one byte too late (an off-by-one
    # that only shows when a line arrives in pieces).
    lib = tmp_path / "lib"
    shutil.copytree(mpy.LIB, lib)
    src = (lib / "micromesos" / "http.py").read_text()
    planted = src.replace("                self.scan = self.fill\n", "                self.scan = self.fill + 1\n")
    assert planted != src
    (lib / "micromesos" / "http.py").write_text(planted)
    r = mpy.run_mpy(script=FUZZ, args=["2000", "1", CAPTURE], timeout=120, extra_path=(str(lib),))
    assert r.rc == 1 and "FINDING" in r.out, r.out[-2000:]
