# `make launch` of a task the project does not ship, against a running `make sim`, as a user does it: the sim in
# one terminal, the task file written somewhere else, `make launch TASK=... RESOURCES=...` in a second terminal.
# MIT licence.
import os
import re
import shutil
import textwrap

import mpy
import pytest
from simproc import Terminal, clean_checkout, run

# Reads a granted sensor and sends framework messages; its update carries what it read.
SENSOR_TASK = textwrap.dedent('''
    import asyncio


    async def main(ctx):
        s = ctx.sensor("temperature", "temp0")
        vals = []
        for i in range(3):
            v = s.read()
            vals.append(v)
            ctx.send(("probe %d %s %s" % (i, v, ctx.arguments[0] if ctx.arguments else "-")).encode())
            await asyncio.sleep_ms(50)
        ctx.update(("n=%d max=%s" % (len(vals), max(vals))).encode())
''')

FAILING_TASK = textwrap.dedent('''
    async def main(ctx):
        ctx.send(b"about to fail")
        raise RuntimeError("probe broke")
''')

# Runs until killed: LAUNCH_TIMEOUT's kill, and TASK_ENV reaching ctx.env.
FOREVER_TASK = textwrap.dedent('''
    import asyncio


    async def main(ctx):
        ctx.send(("env %s" % ctx.env.get("WHO", "-")).encode())
        try:
            while True:
                await asyncio.sleep_ms(100)
        finally:
            ctx.log("stopped")
''')


def test_make_launch_streams_updates_and_messages_of_your_own_task(tmp_path):
    root = clean_checkout(str(tmp_path / "checkout"))
    mine = tmp_path / "elsewhere"
    mine.mkdir()
    (mine / "probe_task.py").write_text(SENSOR_TASK)
    (mine / "broken_task.py").write_text(FAILING_TASK)
    (mine / "bad_syntax.py").write_text("async def main(ctx)\n    pass\n")
    (mine / "forever_task.py").write_text(FOREVER_TASK)
    sim = Terminal("make sim", root)
    try:
        sim.wait_for(r"launch \| task hello-1 ended TASK_FINISHED", 90)

        # A sensor, messages, an update with data: exit status 0 for TASK_FINISHED.
        rc, out = run("make launch TASK=%s RESOURCES='cpus:0.1;mem:0.01;temperature:{temp0}' ARGS=--tag=x1"
                      % (mine / "probe_task.py"), root, 60)
        assert rc == 0, out
        assert os.path.exists(os.path.join(root, "build", "sim", "board", "tasks", "probe_task.mpy"))
        readings = re.findall(r"^launch: message probe (\d) (\d+\.\d+) --tag=x1$", out, re.M)
        assert [r[0] for r in readings] == ["0", "1", "2"], out
        assert all(15.0 <= float(v) <= 29.0 for _, v in readings), readings  # temp0: 22 +- 3 C (boards/unix)
        states = re.findall(r"^launch: (TASK_[A-Z_]+)", out, re.M)
        assert states == ["TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_FINISHED"], out
        top = max(float(v) for _, v in readings)
        assert re.search(r"^launch: TASK_RUNNING data=n=3 max=%s$" % re.escape(str(top)), out, re.M) or \
            re.search(r"^launch: TASK_RUNNING data=n=3 max=%g$" % top, out, re.M), out
        assert re.search(r"^launch: task probe_task-\d+ ended TASK_FINISHED$", out, re.M), out

        # The same task without the sensor in RESOURCES: TASK_FAILED naming what was granted; non-zero.
        rc, out = run("make launch TASK=%s" % (mine / "probe_task.py"), root, 60)
        assert rc != 0, out
        assert re.search(r"launch: TASK_FAILED message='NotGranted: temperature temp0 is not granted to task "
                         r"probe_task-\d+ \(granted: cpus:0\.1;mem:0\.01\)'", out), out

        # A task that raises: its message still arrives, then TASK_FAILED with the exception; non-zero.
        rc, out = run("make launch TASK=%s" % (mine / "broken_task.py"), root, 60)
        assert rc != 0, out
        assert "launch: message about to fail" in out, out
        assert "launch: TASK_FAILED message='RuntimeError: probe broke'" in out, out

        # A syntax error stops at the compiler: nothing reaches the board or the master.
        rc, out = run("make launch TASK=%s" % (mine / "bad_syntax.py"), root, 60)
        assert rc != 0 and "mpy-cross could not compile" in out and "SyntaxError" in out, out
        assert not os.path.exists(os.path.join(root, "build", "sim", "board", "tasks", "bad_syntax.mpy"))
        assert "bad_syntax" not in sim.text

        # LAUNCH_TIMEOUT kills a task that runs on; TASK_ENV is its ctx.env.
        rc, out = run("make launch TASK=%s TASK_ENV='WHO=me X=1' LAUNCH_TIMEOUT=2" % (mine / "forever_task.py"),
                      root, 60)
        assert rc != 0, out
        assert "launch: message env me" in out, out
        assert re.search(r"^launch: killing task forever_task-\d+ \(timeout after 2s\)$", out, re.M), out
        assert re.search(r"^launch: task forever_task-\d+ ended TASK_KILLED$", out, re.M), out

        # The sim's terminal showed the same run from the master's side.
        assert re.search(r"-> RunTaskMessage +slave\(1\)@127\.0\.0\.1:\d+ task=probe_task-\d+ command='probe_task'",
                         sim.text), sim.text[-4000:]
    finally:
        sim.interrupt()
    assert "Traceback" not in sim.text and "DROPPED" not in sim.text and "CRASH" not in sim.text, sim.text[-4000:]
    # Ctrl-C ends the sim; `make launch` then says what to start.
    rc, out = run("make launch TASK=%s" % (mine / "probe_task.py"), root, 60)
    assert rc != 0 and "start `make sim` in another terminal first" in out, out


def test_make_launch_against_a_real_master_puts_the_module_and_names_mesos_execute(tmp_path):
    """`make sim MASTER=ip:port`: the module still reaches the board; the launch is mesos-execute's job. No
    Mesos here, so only the path up to mesos-execute runs: the .mpy on the board and the exact command shown."""
    if shutil.which("mesos-execute"):
        pytest.skip("mesos-execute is installed: this checks the message shown without it")
    root = clean_checkout(str(tmp_path / "checkout"))
    (tmp_path / "probe_task.py").write_text(SENSOR_TASK)
    nobody = mpy.free_port()  # nothing listens: the board keeps trying to register, as with an unreachable master
    sim = Terminal("make sim MASTER=127.0.0.1:%d" % nobody, root)
    try:
        sim.wait_for(r"sim: virtual board .* at slave\(1\)@127\.0\.0\.1:\d+", 90)
        rc, out = run("make launch TASK=%s RESOURCES='cpus:0.1;mem:0.01;temperature:{temp0}'"
                      % (tmp_path / "probe_task.py"), root, 60)
    finally:
        sim.interrupt()
    assert rc != 0, out
    assert os.path.exists(os.path.join(root, "build", "sim", "board", "tasks", "probe_task.mpy")), out
    assert "needs mesos-execute (Apache Mesos) on PATH" in out, out
    assert re.search(r"^  mesos-execute --master=127\.0\.0\.1:%d --name=probe_task-\d+ --command=probe_task "
                     r"'--resources=cpus:0\.1;mem:0\.01;temperature:\{temp0\}'$" % nobody, out, re.M), out
