# The virtual board (tools/vboard.py, `make board`) across resets once the agent ran, as a board behaves
# (issue 12): a soft reset (Ctrl-D at the REPL, mpremote's soft reset) and a hard reset (machine.reset(),
# mpremote's `reset`) give a fresh interpreter (sockets closed, heap fresh), then boot.py and main.py run
# again without errors; `make task-upload` while the agent runs brings it back registered, and the
# uploaded task launches. Everything is driven as a user does it: make targets, mpremote, bytes on the pty.
# MIT licence.
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import mpy
import pytest

from test_boards import _free_port, standin_master  # noqa: F401 (fixture)
from vboard_proc import PtyBoard

ROOT = mpy.ROOT
# What must never show on the board's console across the resets (the failures, any traceback).
BAD = re.compile(rb"Traceback|Error|EADDRINUSE|rebooting in")


class Master:
    """The stand-in master's control API (tools/standin/control.py)."""

    def __init__(self, port):
        self.base = "http://127.0.0.1:%d/control" % port

    def get(self, path, timeout=10):
        return json.loads(urllib.request.urlopen(self.base + path, timeout=timeout).read())

    def post(self, path, body):
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=10).read())

    def mark(self):
        """Index of the next event: waits after it see only what happens from now on."""
        return self.get("/events?since=0&name=-")["next"]

    def wait(self, name, since, timeout=60):
        """The first event `name` from index `since` on (long poll; a fixed deadline, no tight window)."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            assert left > 0, "no %s since event %d; events: %s" % (name, since, self.names(since))
            try:
                return self.get("/wait?name=%s&since=%d&timeout=%d" % (name, since, min(left, 30)),
                                timeout=min(left, 30) + 10)["event"]
            except urllib.error.HTTPError as e:
                if e.code != 400:  # 400: the long poll timed out; poll again until the deadline
                    raise

    def trail(self, since):
        """What the master saw from event `since` on, one short tuple each (for failure messages)."""
        return [tuple(e.get(k) for k in ("seq", "time", "kind", "name", "src", "dst", "reason"))
                for e in self.get("/events?since=%d" % since)["events"]]

    def names(self, since):
        return [e["name"] for e in self.get("/events?since=%d" % since)["events"]]

    def registered(self, since, timeout=60):
        """Wait for the agent to (re-)register from event `since` on; -> the agent's JSON."""
        ev = self.wait("SlaveReregisteredMessage", since, timeout) if since else \
            self.wait("SlaveRegisteredMessage", since, timeout)
        agents = self.get("/agents")["agents"]
        assert len(agents) == 1 and agents[0]["state"] == "registered", agents
        return ev, agents[0]

    def task_state(self, task_id):
        """The master's own view of a task: "TASK_LOST" or None (forgotten) once it gave the task up."""
        for t in self.get("/tasks")["tasks"]:
            if t["task_id"] == task_id:
                return t["state"]
        return None

    def task_states(self, task_id, timeout=30, con=None):
        """The agent's status updates for a task until it ends, or ["TASK_LOST"] if the master gave it up."""
        deadline = time.time() + timeout
        while True:
            if con is not None:
                con.drain(0)  # keep the board's console read (it drops what nobody reads for 2 s)
            # The master forgets a task once it ended: look at that first, then at the updates it got.
            gone = self.task_state(task_id) in ("TASK_LOST", None)
            states, data = [], None
            for e in self.get("/events?since=0&name=StatusUpdateMessage")["events"]:
                st = e["body"]["update"]["status"]
                if e.get("kind") == "recv" and st["task_id"] == task_id:
                    states.append(st["state"])
                    data = st.get("data", data)
            if 2 in states or 3 in states or time.time() > deadline:
                return states, data
            if gone:
                return ["TASK_LOST"], None
            time.sleep(0.2)


def make(*args, ok=True):
    p = subprocess.run(["make", "--no-print-directory"] + list(args), cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    if ok and p.returncode != 0:
        raise AssertionError("make %s failed (%d):\n%s\n%s" % (args, p.returncode, p.stdout, p.stderr))
    return p


@pytest.fixture
def deployed(request, tmp_path, standin_master):  # noqa: F811
    """A `make board` (main.py off at power-on; the wheel unless parametrized with a device) at its
    default heap, `make deploy`ed with a config for the stand-in master: deploy ends with mpremote's
    `reset`, so the agent boots and registers. -> (board, master, agent port)."""
    mport, _url = standin_master
    master = Master(mport)
    board = PtyBoard(tmp_path / "fs", device=getattr(request, "param", "wheel"))
    try:
        aport = _free_port()
        cfg = tmp_path / "config.json"
        cfg.write_text(json.dumps({"master": "127.0.0.1:%d" % mport, "ip": "127.0.0.1", "port": aport,
                                   "advertise_ip": "127.0.0.1", "seed": 3, "fs": ".",
                                   "registration_backoff_factor": 0.2}))
        make("deploy", "BOARD=unix", "PORT=" + board.pty, "CONFIG=" + str(cfg))
        _, agent = master.registered(0)
        # A fresh registration is followed by one re-registration (the reboot race, PROTOCOL.md §2.2).
        # Until the master answered it, a test's "re-registered since now" could be that one, from the
        # agent about to be reset: a task launched then went to it and was lost in the reset.
        master.wait("SlaveReregisteredMessage", 0)
        _wait_checkpoint(board, agent["id"])
        board.con = board.open_pty()  # the console from here on (bytes nobody reads for 2 s are dropped)
        yield board, master, aport
    finally:
        if getattr(board, "con", None) is not None:
            print("--- board console ---\n" + board.con.drain(0.2).decode(errors="replace")[-6000:])
            board.con.close()
        board.stop()


def _wait_checkpoint(board, agent_id, timeout=60):
    """Until the agent has written its id to the board's flash (state/agent.json): a Ctrl-C before that
    makes the next boot register as a new agent, as it would on a board."""
    path = os.path.join(board.fs, "state", "agent.json")
    deadline = time.time() + timeout
    while True:
        try:
            with open(path) as f:
                if json.load(f).get("slave_id") == agent_id:
                    return
        except (OSError, ValueError):
            pass  # not written yet, or being replaced
        assert time.time() < deadline, "agent %s never checkpointed to %s" % (agent_id, path)
        time.sleep(0.1)


def _stop_agent(con):
    """Ctrl-C on the pty, as in `make repl`: main.py stops the agent, the friendly REPL comes up."""
    con.write(b"\x03")
    con.expect(b"micromesos: stopped")
    con.expect(b">>> ")


def _repl(con, line):
    """One line at the friendly REPL; -> what it printed (between the echo and the next prompt)."""
    con.write(line.encode() + b"\r")
    con.expect(line.encode() + b"\r\n")
    return con.expect(b">>> ")[:-4]


def test_soft_reset_three_times_after_the_agent_ran(deployed):
    board, master, aport = deployed
    con = board.con
    allocated = []
    for i in range(3):
        _stop_agent(con)
        # Since this interpreter started: what it allocated in all (heap fresh: about the same each
        # time, where one heap kept across resets would pile up) and a global to outlive the reset.
        allocated.append(int(_repl(con, "import micropython; print(micropython.mem_total())")))
        _repl(con, "canary = %d" % i)
        since = master.mark()
        start = len(con.buf)
        con.write(b"\x04")  # Ctrl-D at the empty prompt: soft reboot, boot.py, main.py
        con.expect(b"MPY: soft reboot\r\n")
        con.expect(b"micromesos 0.1.0 on unix")
        ev, agent = master.registered(since)
        assert agent["pid"] == "slave(1)@127.0.0.1:%d" % aport  # the same address: sockets were closed
        seen = con.drain(0.5)
        assert not BAD.search(con.buf[start:]), con.buf[start:].decode(errors="replace")
        assert b"listening as slave(1)@127.0.0.1:%d" % aport in con.buf[start:], seen
    _stop_agent(con)
    assert _repl(con, "'canary' in globals()").strip() == b"False"  # globals went with the reset
    # Each boot allocated about what the first did: no heap carried over (3 resets would triple it).
    assert max(allocated) < 2 * min(allocated), allocated


def test_mpremote_soft_and_hard_reset_after_the_agent_ran(deployed):
    board, master, aport = deployed
    # mpremote's own soft reset (Ctrl-C, raw REPL, Ctrl-D): boot.py only, as on a board; the heap is
    # what a fresh board's raw REPL holds, with the agent gone from it.
    fresh = PtyBoard(os.path.join(board.fs, "..", "fresh"))
    try:
        figure = "import gc; gc.collect(); print(gc.mem_alloc())"
        want = int(fresh.remote("exec", figure).stdout)
    finally:
        fresh.stop()
    got = int(board.remote("exec", figure).stdout)  # no `resume`: mpremote soft-resets first
    assert abs(got - want) < 1024, (got, want)
    assert board.remote("exec", "import sys; print('board' in sys.modules)").stdout.strip() == "False"
    # Hard reset: boot.py and main.py, the agent recovers its id and re-registers.
    since = master.mark()
    board.remote("reset")
    ev, agent = master.registered(since)
    assert agent["pid"] == "slave(1)@127.0.0.1:%d" % aport
    # machine.reset() from code running on the board does the same.
    since = master.mark()
    p = board.remote("resume", "exec", "--no-follow", "import machine; machine.reset()")
    assert p.returncode == 0
    master.registered(since)


@pytest.mark.parametrize("deployed", ["wheel", "loaded"], indirect=True)
def test_task_upload_while_the_agent_runs_brings_it_back(deployed, tmp_path):
    board, master, aport = deployed
    agent_id = master.get("/agents")["agents"][0]["id"]
    task = tmp_path / "doubler.py"  # not shipped with the project: only task-upload puts it on the board
    task.write_text("async def main(ctx):\n"
                    "    n = int(ctx.arguments[0]) if ctx.arguments else 21\n"
                    "    ctx.update(b'doubled: %d' % (2 * n))\n")
    since = master.mark()
    p = make("task-upload", "BOARD=unix", "PORT=" + board.pty, "TASK=" + str(task))
    assert "cp build/unix/tasks/doubler.mpy :tasks/doubler.mpy" in p.stdout
    board.con.drain(0)
    ev, agent = master.registered(since)  # mpremote's Ctrl-C stopped it; the reset brought it back
    assert agent["id"] == agent_id  # the same agent: it recovered its identity from the board's flash
    tid = master.post("/launch", {"command": "doubler", "task_id": "doubler",
                                  "resources": "cpus:0.1;mem:0.01"})["task_id"]
    states, data = master.task_states(tid, con=board.con)
    assert states[:2] == [0, 1] and states[-1] == 2, "%s\n%s" % (states, "\n".join(map(str, master.trail(since))))
    assert data == "hex:" + b"doubled: 42".hex(), data
    # The board's heap (`make board`'s default) serves what answered 500 at the old 256k.
    for path in ("/metrics/snapshot", "/files/browse?path=/", "/state"):
        r = urllib.request.urlopen("http://127.0.0.1:%d%s" % (aport, path), timeout=10)
        assert r.status == 200 and json.loads(r.read()), path
    # A second upload straight after: the agent comes back again (on a real board the second one ran
    # out of memory next to the stopped agent).
    since = master.mark()
    make("task-upload", "BOARD=unix", "PORT=" + board.pty, "TASK=" + str(task))
    master.registered(since)


@pytest.mark.parametrize("device", mpy.DEVICES)
def test_repl_overhead_is_what_vboard_adds(tmp_path, device):
    # tools/vboard.py adds _REPL_KB to the agent's heap for its own Python REPL (C on a board):
    # measured here, so the figure cannot drift from what the REPL holds.
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import vboard
    finally:
        sys.path.pop(0)
    figure = "import gc; gc.collect(); print(gc.mem_alloc())"
    bare = int(mpy.run_mpy(code=figure, device=device, env={"MICROPYPATH": ".frozen"}).check().out)
    board = PtyBoard(tmp_path, device=device)
    try:
        at_repl = int(board.exec(figure))
        heap = int(board.exec("import gc; print(gc.mem_alloc() + gc.mem_free())"))
    finally:
        board.stop()
    held = at_repl - bare
    print("%s: the vboard REPL holds %d bytes (budgeted %d KB)" % (device, held, vboard._REPL_KB[device]))
    # At most the budget, and not far below it (the loaded figure sits near 12 KB, +-300 B from run to run).
    assert (vboard._REPL_KB[device] - 8) * 1024 < held <= vboard._REPL_KB[device] * 1024
    want = vboard.default_heapsize(device, mpy)
    # gc.mem_free() + gc.mem_alloc() leaves out the GC's own tables (~3% of the heap on 32-bit).
    assert 0.95 * int(want[:-1]) * 1024 <= heap <= int(want[:-1]) * 1024 + 4096, (heap, want)
    assert "-X heapsize=%s" % want in board.banner
