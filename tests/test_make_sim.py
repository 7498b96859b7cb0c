# The README's main-job command, run as a new user would: `make sim` in a clean checkout, time-limited.
import os
import re
import subprocess

from simproc import clean_checkout


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
    # The agent's deliberate re-registration (PROTOCOL.md §2.2) is explained once, right where it shows.
    lines = out.splitlines()
    rereg = [i for i, x in enumerate(lines) if "<- ReregisterSlaveMessage" in x]
    assert rereg and "reboot race" in lines[rereg[0] + 1] and "PROTOCOL.md §2.2" in lines[rereg[0] + 1], out
    assert sum("reboot race" in x for x in lines) == 1
    # The hello task as the framework sees it: its message, its update's data, its end.
    assert "launch | message hello from hello-1" in out
    assert "launch | TASK_RUNNING data=hello world" in out
    assert "launch | task hello-1 ended TASK_FINISHED" in out
    m = re.search(r"sim: summary: registered=yes pings_answered=(\d+)", out)
    assert m and int(m.group(1)) == len(pongs)
    assert "Traceback" not in out and "DROPPED" not in out and "CRASH" not in out


def test_make_sim_task_and_resources_launch_an_example_with_a_sensor(tmp_path):
    """`make sim TASK=... RESOURCES=...`: every example is on the board; thermo gets the sensor it asks for."""
    root = clean_checkout(str(tmp_path / "checkout"))
    p = subprocess.run(["make", "sim", "SIM_SECONDS=10", "TASK=thermo",
                        "RESOURCES=cpus:0.1;mem:0.01;temperature:{temp0}"],
                       cwd=root, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert "launch | task thermo-1 (module thermo, resources cpus:0.1;mem:0.01;temperature:{temp0})" in out, out
    assert re.search(r'launch \| message \{"t":\d+\.\d\d,"n":1\}', out), out
    assert "launch | TASK_RUNNING" in out and "NotGranted" not in out and "TASK_FAILED" not in out
    on_board = sorted(os.listdir(os.path.join(root, "build", "sim", "board", "tasks")))
    shipped = sorted(f[:-3] + ".mpy" for f in os.listdir(os.path.join(root, "tasks")) if f.endswith(".py"))
    assert on_board == shipped
