# ATTACK SUITE (fast subset) in CI: cases of `make attack` (tools/attack.py) against a live virtual board and
# the stand-in master on loopback, one fresh board per case. MIT licence. The whole suite, with the slow cases
# (slowloris, trickle, the busy loop's watchdog reset, the spray, cpus=inf), is `make attack`.
# A case that fails here is a hardening finding of issue 10 (docs/HARDENING.md), not a flaky test.
import os
import subprocess
import sys

import mpy
import pytest

ATTACK = os.path.join(mpy.ROOT, "tools", "attack.py")
# About a minute in all (each case boots its own board); `make attack` has the other seven.
FAST = ["conn: burst of 80 connections", "conn: drain (sending while refused)",
        "spoof: registration replies at boot", "spoof: forged ping{connected:false} + replies",
        "task: KeyboardInterrupt", "task: GeneratorExit", "task: MemoryError hog (global), killed",
        "task: globals cleared, launched twice", "task: 3.9 KB failure message"]


def test_attack_suite_lists_every_case_the_subset_names():
    p = subprocess.run([sys.executable, ATTACK, "--list"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and set(FAST) <= set(p.stdout.splitlines()), p.stdout


@pytest.mark.parametrize("case", FAST)
def test_attack_suite_case_holds(case):
    p = subprocess.run([sys.executable, ATTACK, "--only", case, "--verbose"], capture_output=True, text=True,
                       timeout=240)
    print(p.stdout[-6000:])
    rows = [ln for ln in p.stdout.splitlines() if ln.startswith("| " + case + " |")]
    assert len(rows) == 1, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.returncode == 0 and "| held |" in rows[0], rows[0]
