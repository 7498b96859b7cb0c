# `make sim GATEWAY=N` (tools/gwsim.py, issue 11 part 5): the stand-in master, the gateway and two sleeping nodes
# (MicroPython unix port) through tools/linksim.py with loss, duplication and reordering; clocks scaled 1/30 (the
# master pings every 0.5 s and gives up after 2.5 s; nodes awake 166 ms of every 4 s). MIT licence.
import json
import os
import signal
import subprocess
import sys
import threading
import time

import mpy

GWSIM = os.path.join(mpy.ROOT, "tools", "gwsim.py")
HELLO = ["TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_FINISHED"]  # tasks/hello.py's updates, in order


def gwsim(tmp_path, *args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return [sys.executable, GWSIM, "--work", str(tmp_path / "gwsim")] + list(args), e


def test_two_sleeping_nodes_register_and_a_task_launched_while_asleep_runs_with_every_update_once(tmp_path):
    summary = tmp_path / "summary.json"
    argv, env = gwsim(tmp_path, "--gateway", "2", "--seconds", "16", "--scale", "0.0333", "--summary", str(summary),
                      env={"LINK_LOSS": "0.1", "LINK_DUP": "0.05", "LINK_REORDER": "0.1", "LINK_SEED": "7"})
    p = subprocess.run(argv, env=env, cwd=mpy.ROOT, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-8000:]
    assert "gwsim: summary: ok" in out, out[-8000:]
    s = json.loads(summary.read_text())
    nodes = s["nodes"]
    assert sorted(nodes) == ["n1", "n2"], out[-4000:]
    assert len({n["agent_id"] for n in nodes.values()}) == 2 and all(n["agent_id"] for n in nodes.values())
    for name, n in nodes.items():
        why = "%s: %s\n%s" % (name, json.dumps(n, indent=1)[:3000], out[-6000:])
        # Registered once, kept registered: the gateway answered the master's pings while the node slept.
        assert n["pings"] >= 16 / 0.5 * 0.6 and n["pongs"] >= n["pings"] - 2, why
        assert n["pongs_while_asleep"] >= n["pings"] / 3, why
        assert n["wakes"] >= 3, why  # it really slept and woke (W = 4 s over 16 s)
        # The task was launched while the node slept, started only at a later wake, and every one of its
        # updates reached the master exactly once, in order.
        (tid, t), = n["tasks"].items()
        assert t["launched_asleep"] and t["started_after_a_wake"], why
        assert t["state_at_wake"] == "TASK_STAGING", why  # what a framework saw while the node slept
        assert t["states"] == HELLO, why
        assert t["duplicates"] == 0 and t["updates"] == len(HELLO), why
    assert s["problems"] == [] and s["unreachable"] == 0, out[-6000:]
    # The link really was lossy (else the test would show nothing about loss).
    lost = sum(n["link"]["up"]["dropped"] + n["link"]["down"]["dropped"] for n in nodes.values())
    assert lost > 0, out[-3000:]
    # The timeline: the master's view and one line per wake, as it happened (in time order).
    assert "the gateway holds it; the master shows TASK_STAGING" in out
    assert "asleep after" in out and "while it slept the master pinged" in out
    clock = [float(ln.split()[0]) for ln in p.stdout.splitlines() if ln[:1] == " " and "|" in ln]
    assert clock == sorted(clock) and clock[-1] >= 15


def _children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rpartition(")")[2].split()[1]) == pid:
                        kids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def test_ctrl_c_ends_the_gateway_and_every_node(tmp_path):
    argv, env = gwsim(tmp_path, "--gateway", "2", "--scale", "0.0333", "--task", "")
    p = subprocess.Popen(argv, env=env, cwd=mpy.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    kids = []
    watchdog = threading.Timer(90, p.kill)  # a hung gwsim fails the test instead of hanging it
    watchdog.start()
    try:
        seen = []
        for line in iter(p.stdout.readline, ""):
            seen.append(line)
            if sum("registered as agent" in s for s in seen) >= 2:
                break
        kids = _children(p.pid)
        assert len(kids) == 3, (kids, "".join(seen))  # the gateway and two nodes
        p.send_signal(signal.SIGINT)
        rest = p.communicate(timeout=30)[0]
        assert p.returncode == 0, rest
        assert "gwsim: summary:" in rest
        time.sleep(0.2)
        alive = [k for k in kids if os.path.exists("/proc/%d" % k) and not _zombie(k)]
        assert alive == [], alive
    finally:
        watchdog.cancel()
        if p.poll() is None:
            p.kill()
            p.wait(10)
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True
