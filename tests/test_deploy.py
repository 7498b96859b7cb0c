# Deploying to a virtual board (tools/vboard.py: the unix port behind a pty) with the real mpremote:
# `make deploy`, `make task-upload`, `mpremote mip install`, and the deployed agent booting. MIT licence.
import glob
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request

import mpy
import pytest
from deploy import on_a_board

from test_boards import _free_port, _wait_agents, standin_master  # noqa: F401 (fixture)
from vboard_proc import MPREMOTE, PtyBoard, PtyTranscript

ROOT = mpy.ROOT
TASK_STATES = {0: "TASK_STARTING", 1: "TASK_RUNNING", 2: "TASK_FINISHED", 3: "TASK_FAILED"}


class VBoard(PtyBoard):
    """`make board` (main.py off at power-on); remote() resumes the session, as `make deploy` does."""

    def remote(self, *args, timeout=60, check=True):
        return PtyBoard.remote(self, "resume", *args, timeout=timeout, check=check)

    def exec(self, code):
        return self.remote("exec", code).stdout


@pytest.fixture
def vboard(tmp_path):
    b = VBoard(tmp_path / "fs")
    try:
        yield b
    finally:
        b.stop()


def make(*args, ok=True):
    p = subprocess.run(["make", "--no-print-directory"] + list(args), cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    if ok and p.returncode != 0:
        raise AssertionError("make %s failed (%d):\n%s\n%s" % (args, p.returncode, p.stdout, p.stderr))
    return p


def lib_modules():
    return sorted(os.path.basename(f)[:-3] for f in glob.glob(os.path.join(ROOT, "lib", "micromesos", "*.py"))
                  if on_a_board("micromesos/" + os.path.basename(f), "agent"))


def test_vboard_speaks_the_raw_repl_and_keeps_state(vboard):
    assert vboard.exec("import sys, os; print(sys.platform, os.getcwd() == %r, sys.path)" % vboard.fs).strip() \
        .split(None, 2) == ["linux", "True", "['', '.frozen', '%s/lib']" % vboard.fs]
    vboard.exec("x = 6 * 7")
    assert vboard.remote("eval", "x").stdout.strip() == "42"  # resume: no soft reset between sessions
    # An exception comes back on the error channel, as from a board.
    p = vboard.remote("exec", "1/0", check=False)
    assert p.returncode != 0 and "ZeroDivisionError" in p.stdout + p.stderr
    # Without `resume` mpremote soft-resets the board: globals are gone afterwards.
    p = subprocess.run([MPREMOTE, "connect", vboard.pty, "eval", "'x' in globals()"], capture_output=True,
                       text=True, timeout=60)
    assert p.stdout.strip() == "False", p.stdout + p.stderr


def test_vboard_friendly_repl_and_ctrl_c_interrupts_running_code(vboard):
    fd = os.open(vboard.pty, os.O_RDWR | os.O_NOCTTY)
    try:
        board = PtyTranscript(fd)
        board.expect(b"virtual board")  # the banner, then its prompt
        board.expect(b">>> ")
        os.write(fd, b"6 * 7\r")
        assert board.expect(b"42\r\n") == b"6 * 7\r\n42\r\n"  # the echo, then the value
        board.expect(b">>> ")
        # A loop that never ends, stopped by a Ctrl-C byte, as on a board's UART.
        os.write(fd, b"exec('print(\"spin\" + \"ning\")\\nwhile True: pass')\r")
        board.expect(b"spinning")  # the output, not the echo: the loop runs now
        os.write(fd, b"\x03")
        board.expect(b"KeyboardInterrupt")
        board.expect(b">>> ")
        os.write(fd, b"7 * 6\r")  # the REPL survived the interrupt
        assert board.expect(b"42\r\n").endswith(b"7 * 6\r\n42\r\n")
    finally:
        os.close(fd)


def _config(tmp_path, master_port=1, **kw):
    """A board config on free loopback ports; master port 1 by default: nobody answers, the agent retries."""
    cfg = {"master": "127.0.0.1:%d" % master_port, "ip": "127.0.0.1", "port": _free_port(),
           "advertise_ip": "127.0.0.1", "seed": 9, "fs": "."}
    cfg.update(kw)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_make_deploy_puts_the_agent_on_the_board(vboard, tmp_path):
    cfg = _config(tmp_path, fs="agent")
    p = make("deploy", "BOARD=unix", "PORT=" + vboard.pty, "CONFIG=" + cfg)
    # progress: one line per file copied, then the reset that starts the agent
    assert "cp build/unix/micromesos/agent.mpy :lib/micromesos/agent.mpy" in p.stdout
    assert "cp firmware/main.py :main.py" in p.stdout
    assert [ln for ln in p.stdout.splitlines() if ln.startswith(".venv/bin/mpremote")][0].endswith(" + reset")
    listing = json.loads(vboard.exec(
        "import os, json; print(json.dumps([sorted(os.listdir()), sorted(os.listdir('lib/micromesos'))]))"))
    # ("agent", the config's "fs", appears once main.py started the agent; the exec above stopped it.)
    assert sorted(set(listing[0]) - {"agent"}) == ["board.mpy", "boot.py", "config.json", "lib", "main.py", "tasks"]
    # and the log texts the build moved out of the modules (tools/logtext.py), which micromesos.log reads there
    assert listing[1] == sorted([m + ".mpy" for m in lib_modules()] + ["logtext.txt"])
    # Byte for byte what the build produced (sha256 computed on the board).
    for remote, local in (("main.py", "firmware/main.py"), ("boot.py", "firmware/boot.py"),
                          ("board.mpy", "build/unix/board.mpy"),
                          ("lib/micromesos/agent.mpy", "build/unix/micromesos/agent.mpy"),
                          ("lib/micromesos/logtext.txt", "build/unix/micromesos/logtext.txt"),
                          ("config.json", cfg)):
        with open(os.path.join(ROOT, local), "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        got = vboard.remote("sha256sum", ":" + remote).stdout.split()[-1]
        assert got == want, remote
    # Importable from the board's own filesystem (sys.path '', .frozen, <fs>/lib), compiled .mpy.
    out = vboard.exec(
        "import board, micromesos.agent, micromesos.sensors\n"
        "from micromesos import config\n"
        "c = config.load('config.json')\n"
        "inv = board.inventory(c)\n"
        "print(board.__file__, micromesos.agent.__file__, inv.board, inv.fs, sorted(inv.sensors))")
    assert out.strip().split(None, 4) == ["board.mpy", "%s/lib/micromesos/agent.mpy" % vboard.fs, "unix", "agent",
                                  "['humidity', 'light', 'temperature']"]
    # A second deploy over the first works (directories exist already), with the agent running again.
    make("deploy", "BOARD=unix", "PORT=" + vboard.pty, "CONFIG=" + cfg)


def test_make_task_upload_compiles_and_copies_into_tasks(vboard, tmp_path):
    # (Upload while the agent runs, and the agent back afterwards: tests/test_vboard_reset.py.)
    task = tmp_path / "hello_task.py"
    task.write_text("# a small task module\nNAME = 'hello'\n\ndef answer(x):\n    return x * 2\n")
    # A stale source copy on the board would shadow the new .mpy (MicroPython imports .py first).
    vboard.exec("import os\nos.mkdir('tasks')\nf = open('tasks/hello_task.py', 'w')\nf.write('NAME = 1')\nf.close()")
    p = make("task-upload", "BOARD=unix", "PORT=" + vboard.pty, "TASK=" + str(task))
    assert "cp build/unix/tasks/hello_task.mpy :tasks/hello_task.mpy + reset" in p.stdout
    assert vboard.exec("import os; print(sorted(os.listdir('tasks')))").strip() == "['hello_task.mpy']"
    out = vboard.exec("import sys\nsys.path.insert(0, 'tasks')\nimport hello_task\n"
                      "print(hello_task.NAME, hello_task.answer(21), hello_task.__file__)")
    assert out.split() == ["hello", "42", "tasks/hello_task.mpy"]
    # The agent launching an uploaded task: test_deployed_agent_boots_... below.
    bad = tmp_path / "bad-name.py"
    bad.write_text("x = 1\n")
    p = make("task-upload", "BOARD=unix", "PORT=" + vboard.pty, "TASK=" + str(bad), ok=False)
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    assert p.returncode != 0 and len(lines) == 1 and "Python identifier" in lines[0]


def test_mip_installs_the_library_from_package_json(vboard):
    p = vboard.remote("mip", "install", "lib/package.json", timeout=120)
    assert "Done" in p.stdout, p.stdout + p.stderr
    out = vboard.exec("import os, micromesos.errors as e\nprint(e.__file__, len(os.listdir('lib/micromesos')))")
    path, n = out.split()
    assert path == "%s/lib/micromesos/errors.py" % vboard.fs
    with open(os.path.join(ROOT, "lib", "package.json")) as f:
        assert int(n) == len(json.load(f)["urls"])


def test_deployed_agent_boots_after_the_deploy_and_mpremote_interrupts_it(vboard, tmp_path, standin_master):
    mport, url = standin_master
    cfg = _config(tmp_path, mport)
    aport = json.loads(open(cfg).read())["port"]
    task = tmp_path / "greeter.py"  # a task the firmware does not ship: only `make task-upload` puts it there
    task.write_text("async def main(ctx):\n    ctx.update(b'greetings from ' + ctx.task_id.encode())\n")
    make("task-upload", "BOARD=unix", "PORT=" + vboard.pty, "TASK=" + str(task))
    # The deploy ends with mpremote's `reset`: boot.py, then main.py starts the agent by itself.
    make("deploy", "BOARD=unix", "PORT=" + vboard.pty, "CONFIG=" + cfg)
    agents = _wait_agents(url, timeout=60)
    assert agents[0]["pid"] == "slave(1)@127.0.0.1:%d" % aport
    assert agents[0]["total"]["temperature"] == "{temp0,temp1}"
    # The framework launches the uploaded module by name; the agent finds tasks/greeter.mpy on its flash.
    base = url.rsplit("/", 1)[0]
    req = urllib.request.Request(base + "/launch", data=json.dumps(
        {"command": "greeter", "task_id": "greeter-1", "resources": "cpus:0.1;mem:0.01"}).encode(),
        headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
    states, data = [], None
    t0 = time.time()
    while time.time() - t0 < 30 and "TASK_FINISHED" not in states:
        evs = json.loads(urllib.request.urlopen(base + "/events?since=0", timeout=5).read())["events"]
        states, data = [], None
        for e in evs:
            if e.get("name") == "StatusUpdateMessage" and e.get("kind") == "recv":
                st = e["body"]["update"]["status"]
                if st["task_id"] == "greeter-1":
                    states.append(TASK_STATES[st["state"]])
                    data = st.get("data", data)
        time.sleep(0.2)
    assert states[:2] == ["TASK_STARTING", "TASK_RUNNING"] and states[-1] == "TASK_FINISHED", states
    assert data == "hex:" + b"greetings from greeter-1".hex(), data
    # mpremote's Ctrl-C stops the running agent and gets the raw REPL, as on a board.
    assert vboard.exec("print('back at the REPL')").strip() == "back at the REPL"


def test_a_ctrl_c_typed_while_the_board_boots_stops_main_py(tmp_path):
    # mpremote types Ctrl-C right after the `reset` of `make deploy`: it can land before main.py runs (during
    # the reset, the interpreter's start or boot.py), where nothing reads it. The virtual board hands it to
    # main.py as it starts (a board would have the byte waiting in its UART): the REPL comes back, not a board
    # that runs on while mpremote waits for a prompt (test_make_deploy_puts_the_agent_on_the_board hung so).
    fs = tmp_path / "fs"
    fs.mkdir()
    (fs / "boot.py").write_text("import time\nprint('booting')\ntime.sleep(1.5)\n")
    (fs / "main.py").write_text("import time\nprint('main running')\nwhile True:\n    time.sleep(0.05)\n")
    b = PtyBoard(fs, main=True)
    try:
        con = b.open_pty()
        con.expect(b"booting")
        con.write(b"\x03")  # during boot.py's sleep: before main.py started
        con.expect(b"KeyboardInterrupt", timeout=20)  # boot.py's (it was running)...
        con.expect(b">>> ", timeout=20)  # ...and main.py stopped as it started: its endless loop never keeps the board
        con.write(b"6 * 7\r")
        con.expect(b"42\r\n")
    finally:
        b.stop()
