# 100 000 mutated golden bodies through the codec inside the unix port: DecodeError or a dict, never a leak.
# MIT licence. `make fuzz` runs the same program longer (FUZZ_N).
import os
import re
import time

import mpy
from fuzz import write_captured_bodies

FUZZ = os.path.join(mpy.ROOT, "tests", "fuzz", "fuzz_codec.py")
N = 100000


def test_fuzz_codec_100k(tmp_path):
    # The captured bodies too (as short {type, hex} lines, see tools/fuzz.py).
    captured = write_captured_bodies(str(tmp_path / "captured.jsonl"))
    t = time.time()
    r = mpy.run_mpy(script=FUZZ, args=[os.path.join(mpy.GOLDEN, "vectors.jsonl"), str(N), "7", str(captured)],
                    timeout=120)
    line = r.out.strip().splitlines()[-1] if r.out.strip() else ""
    print(line, "(%.1f s wall)" % (time.time() - t))
    assert r.rc == 0, r.out[-3000:] + r.err[-2000:]
    f = dict(re.findall(r"(\w+)=(-?\d+)", line))
    assert line.startswith("fuzz_codec:") and int(f["inputs"]) == N
    assert int(f["bodies"]) >= 60  # vectors plus the distinct captured bodies
    # A decode whose dicts outgrow the fuzzer's heap is a MemoryError, never a DecodeError: counted apart, rare
    assert int(f["decodes"]) == 2 * N == int(f["ok"]) + int(f["decode_errors"]) + int(f["decode_oom"])
    assert int(f["decode_oom"]) * 1000 <= 2 * N
    # both outcomes really happen, and every successful decode re-encoded stably
    assert int(f["ok"]) > N // 20 and int(f["decode_errors"]) > N // 2
    # (a round trip the fuzzer's own 128 KB heap can't hold is skipped and counted: rare, bounded by the fuzzer)
    assert int(f["roundtrips"]) + int(f["oom_skipped"]) == int(f["ok"]) and int(f["oom_skipped"]) * 1000 <= int(f["ok"])
    assert int(f["heap_delta"]) <= int(f["tolerance"])
    assert int(f["max_input_us"]) < 1000000  # no input anywhere near a hang
