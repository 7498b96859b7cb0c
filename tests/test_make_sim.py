# The README's main-job command, run as a new user would: `make sim` in a clean checkout, time-limited.
import os
import re
import shutil
import subprocess

import mpy


def clean_checkout(dest):
    """The tracked files as they are in the work tree (uncommitted edits included), nothing else;
    the pinned .venv is linked in so the test doesn't reinstall it (CI builds it from scratch)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=mpy.ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = os.path.join(mpy.ROOT, rel)
        if not os.path.exists(src):
            continue
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copy2(src, out)
    os.symlink(os.path.join(mpy.ROOT, ".venv"), os.path.join(dest, ".venv"))
    return dest


def test_make_sim_registers_answers_pings_and_runs_a_task(tmp_path):
    root = clean_checkout(str(tmp_path / "checkout"))
    p = subprocess.run(["make", "sim", "SIM_SECONDS=12"], cwd=root, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert re.search(r"board  \| .*INFO agent: registered with master@127\.0\.0\.1:\d+ as agent \S+-S0", out), out
    assert re.search(r"master \| .*-> SlaveRegisteredMessage", out)
    assert re.search(r"sim: the master now offers agent \S+: \{'cpus': 1\.0, .*'temperature': '\{temp0,temp1\}'", out)
    pongs = re.findall(r"<- PongSlaveMessage .* to slave-observer\(1\)", out)
    assert len(pongs) >= 2, out[-3000:]
    for state in ("TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"):
        assert re.search(r"<- StatusUpdateMessage .* task=hello-1 state=" + state, out), state
    m = re.search(r"sim: summary: registered=yes pings_answered=(\d+)", out)
    assert m and int(m.group(1)) == len(pongs)
    assert "Traceback" not in out and "DROPPED" not in out and "CRASH" not in out
