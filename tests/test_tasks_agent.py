# Tasks end to end: the agent runs in the unix port as a real process, against the stand-in master over real
# loopback sockets; tasks/ examples and test modules run as Mesos tasks. MIT licence. Unit level: test_tasks.py.
import asyncio
import hashlib
import http.server
import json
import os
import signal
import subprocess
import threading
import time

import mpy
import pytest

from standin import RECV, SEND, StandinMaster

_HEAP = "320k"  # the whole agent, imported from .py sources, on the 64-bit unix port
_EXAMPLES = os.path.join(mpy.ROOT, "tasks")

LAUNCHER = r'''
# A unix-port board for the tests: two temperature sensors, an LED, GPIO 2-5, a directory as its filesystem.
import sys, json
import asyncio
from micromesos import agent, config
from micromesos.inventory import Inventory

class Sensor:
    def __init__(self, v): self.v = v
    def read(self): return self.v

class Pin:
    OUT = 1
    def __init__(self, n): self.n = n; self.v = 0
    def init(self, mode=-1, *a, **k): pass
    def value(self, v=None):
        if v is None: return self.v
        self.v = 1 if v else 0

PINS = {}
def pin(n, *a, **k):
    return PINS.setdefault(n, Pin(n))

raw = json.load(open(sys.argv[1]))
inv = Inventory("unix", "x64", sensors={"temperature": {"temp0": Sensor(21.75), "temp1": Sensor(35.5)}},
                actuators={"led": {"led0": Pin(25)}}, gpio=(2, 3, 4, 5), pin=pin, fs=raw["fs"])
asyncio.run(agent.main(config.check(raw), inv))
'''




def _st(e):
    return e.body["update"]["status"]


class Cluster:
    """The stand-in master on its own event loop thread, and the agent process (restartable: same fs)."""

    def __init__(self, tmp_path, cfg=None, heap=_HEAP, default_ack="auto"):
        self.tmp = tmp_path
        self.fs = tmp_path / "fs"
        (self.fs / "tasks").mkdir(parents=True)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.master = StandinMaster(port=0, default_ack=default_ack)
        self.call(self.master.start())
        self.aport = mpy.free_port()
        self.cfg = {"master": "127.0.0.1:%d" % self.master.port, "ip": "127.0.0.1", "port": self.aport,
                    "advertise_ip": "127.0.0.1", "fs": str(self.fs), "log_level": "info",
                    "registration_backoff_factor": 0.05, "status_update_retry_min": 5.0, "task_slice_ms": 150}
        self.cfg.update(cfg or {})
        (tmp_path / "config.json").write_text(json.dumps(self.cfg))
        (tmp_path / "launcher.py").write_text(LAUNCHER)
        self.heap = heap
        self.proc = None
        self.boots = 0

    def call(self, coro, timeout=15):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def sync(self, fn, *a, **kw):
        async def run():
            return fn(*a, **kw)
        return self.call(run())

    # --- the agent process -----------------------------------------------------------------------------

    def start_agent(self):
        self.boots += 1
        self.log = open(self.tmp / ("agent%d.log" % self.boots), "w")
        m = self.mark()
        self.proc = mpy.popen_mpy(script=str(self.tmp / "launcher.py"), args=[str(self.tmp / "config.json")],
                                  heapsize=self.heap, stdout=self.log, stderr=subprocess.STDOUT)
        # A fresh registration is followed by one re-registration (the reboot race, §2.2): a launch sent
        # before the master has handled it would race with it, so wait for its answer in both cases.
        self.wait(lambda e: e.kind == SEND and e.name == "SlaveReregisteredMessage", timeout=20, since=m)

    def kill_agent(self, sig=signal.SIGKILL):
        """SIGKILL: nothing runs after it, like a watchdog reset or a power cut."""
        self.proc.send_signal(sig)
        self.proc.wait(10)
        self.log.close()

    def agent_log(self):
        out = []
        for i in range(1, self.boots + 1):
            out.append((self.tmp / ("agent%d.log" % i)).read_text())
        return "\n--- restart ---\n".join(out)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

        async def down():
            await self.master.stop()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
        self.call(down())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    # --- the master's side ------------------------------------------------------------------------------

    def framework(self, **kw):
        return self.sync(self.master.create_framework, **kw)

    def launch(self, command, resources="cpus:0.1", **kw):
        return self.call(self.master.launch(command=command, resources=resources, shell=False, **kw))

    def mark(self):
        return self.sync(self.master.mark)

    def wait(self, pred, timeout=10, since=0):
        try:
            return self.call(self.master.wait_for(pred, timeout=timeout, since=since), timeout + 5)
        except asyncio.TimeoutError as e:
            raise AssertionError("%s\n--- agent ---\n%s" % (e, self.agent_log()[-4000:]))

    def wait_state(self, tid, state, timeout=10, since=0):
        return self.wait(lambda e: e.kind == RECV and e.name == "StatusUpdateMessage" and
                         _st(e)["task_id"] == tid and _st(e)["state"] == STATES[state], timeout, since)

    def updates(self, tid=None, since=0):
        return [e for e in self.master.events[since:] if e.kind == RECV and e.name == "StatusUpdateMessage"
                and (tid is None or _st(e)["task_id"] == tid)]

    def states(self, tid, since=0):
        return [NAMES[_st(e)["state"]] for e in self.updates(tid, since)]

    def received(self, name, since=0):
        return [e for e in self.master.events[since:] if e.kind == RECV and e.name == name]

    def problems(self):
        return self.master.problems()


STATES = {"TASK_STARTING": 0, "TASK_RUNNING": 1, "TASK_FINISHED": 2, "TASK_FAILED": 3, "TASK_KILLED": 4,
          "TASK_LOST": 5, "TASK_KILLING": 8, "TASK_DROPPED": 9, "TASK_GONE": 11}
NAMES = {v: k for k, v in STATES.items()}


@pytest.fixture
def cluster(tmp_path):
    made = []

    def make(**kw):
        c = Cluster(tmp_path, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.stop()


def task_file(c, name, text):
    (c.fs / "tasks" / (name + ".py")).write_text(text)


def example(c, name):
    with open(os.path.join(_EXAMPLES, name + ".py")) as f:
        task_file(c, name, f.read())


# --- life cycle -------------------------------------------------------------------------------------------

def test_finish_fail_unknown_module_and_memory_error(cluster):
    c = cluster()
    example(c, "hello")
    task_file(c, "boom", "async def main(ctx):\n    raise RuntimeError('sensor on fire')\n")
    task_file(c, "greedy", "async def main(ctx):\n    keep = []\n    while True:\n"
                           "        keep.append(bytearray(2048))\n")
    c.start_agent()
    fid = c.framework()
    t1 = c.launch("hello", task_id="hello-1", arguments=["lab"])
    c.wait_state(t1, "TASK_FINISHED")
    t2 = c.launch("boom", task_id="boom-1")
    t3 = c.launch("nosuch", task_id="nosuch-1")
    t4 = c.launch("greedy", task_id="greedy-1")
    for t, st in ((t2, "TASK_FAILED"), (t3, "TASK_FAILED"), (t4, "TASK_FAILED")):
        c.wait_state(t, st)
    t5 = c.launch("hello", task_id="hello-2")  # the agent survived the MemoryError
    c.wait_state(t5, "TASK_FINISHED")
    assert c.states(t1) == ["TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_FINISHED"]
    hello = [_st(e) for e in c.updates(t1)]
    assert hello[2]["data"] == b"hello lab" and {s["source"] for s in hello} == {2}
    assert {s["executor_id"] for s in hello} == {t1}
    assert [e.body["data"] for e in c.received("ExecutorToFrameworkMessage")][:1] == [b"hello from hello-1"]
    boom = _st(c.updates(t2)[-1])
    assert (boom["source"], boom.get("reason"), boom["message"]) == (2, None, "RuntimeError: sensor on fire")
    nosuch = _st(c.updates(t3)[-1])
    assert c.states(t3) == ["TASK_FAILED"]  # never started: no TASK_STARTING (§2.6)
    assert (nosuch["source"], nosuch["reason"]) == (1, 21)
    assert nosuch["message"].startswith("unknown module nosuch: not frozen, no nosuch.py or .mpy in ")
    greedy = _st(c.updates(t4)[-1])
    assert (greedy["source"], greedy["reason"]) == (1, 8), greedy  # REASON_CONTAINER_LIMITATION_MEMORY
    assert c.sync(lambda: c.master.agent().connected)
    assert c.problems() == []
    assert fid in c.sync(lambda: list(c.master.frameworks))


def test_ungranted_sensor_is_denied_granted_one_read(cluster):
    c = cluster()
    example(c, "thermo")
    task_file(c, "sniff", "async def main(ctx):\n    ctx.sensor('temperature', 'temp1')\n")
    c.start_agent()
    c.framework()
    t1 = c.launch("thermo", task_id="thermo-1", resources="cpus:0.1;temperature:{temp0}",
                  arguments=["--count=2", "--interval=0.05"])
    c.wait_state(t1, "TASK_FINISHED")
    t2 = c.launch("sniff", task_id="sniff-1", resources="cpus:0.1;temperature:{temp0}")
    c.wait_state(t2, "TASK_FAILED")
    readings = [json.loads(e.body["data"]) for e in c.received("ExecutorToFrameworkMessage")]
    assert readings == [{"t": 21.75, "n": 1}, {"t": 21.75, "n": 2}]
    msg = _st(c.updates(t2)[-1])["message"]
    assert msg == ("NotGranted: temperature temp1 is not granted to task sniff-1 "
                   "(granted: cpus:0.1;temperature:{temp0})")


def test_framework_messages_both_ways_with_thermo(cluster):
    c = cluster()
    example(c, "thermo")
    c.start_agent()
    c.framework()
    m = c.mark()
    tid = c.launch("thermo", task_id="thermo-2", resources="cpus:0.1;temperature:{temp0}",
                   arguments=["--count=3"], environment={"INTERVAL_MS": "10000"})
    c.wait(lambda e: e.kind == RECV and e.name == "ExecutorToFrameworkMessage", since=m)
    t0 = time.time()
    c.call(c.master.send_framework_message(b"interval=50", executor_id=tid))
    c.wait_state(tid, "TASK_FINISHED")
    took = time.time() - t0
    e2f = c.received("ExecutorToFrameworkMessage", m)
    assert [json.loads(e.body["data"])["n"] for e in e2f] == [1, 2, 3]
    assert {e.body["executor_id"] for e in e2f} == {tid}
    assert took < 3.0  # the 10 s interval was cut to 50 ms by the framework's message


def test_task_group_and_blink_example(cluster):
    c = cluster()
    example(c, "hello")
    example(c, "blink")
    c.start_agent()
    c.framework()
    ids = c.call(c.master.launch_group([{"task_id": "g1", "command": "hello", "resources": "cpus:0.1"},
                                        {"task_id": "g2", "command": "blink", "resources": "cpus:0.1;led:{led0}",
                                         "arguments": ["--count=3"], "environment": {"PERIOD_MS": "20"}}],
                                       executor_id="ex1", executor_resources="cpus:0.1"))
    for t in ids:
        c.wait_state(t, "TASK_FINISHED")
    ev = c.wait(lambda e: e.kind == RECV and e.name == "ExitedExecutorMessage")
    assert ev.body["executor_id"] == "ex1" and ev.body["status"] == 0
    assert {_st(e)["executor_id"] for e in c.updates("g1") + c.updates("g2")} == {"ex1"}
    c.wait(lambda e: "executor ex1 exited" in (e.reason or ""))
    assert c.problems() == []


# --- kill -----------------------------------------------------------------------------------------------

def test_kill_with_grace_and_a_task_that_ignores_it(cluster):
    c = cluster()
    task_file(c, "tidy", "import asyncio\nasync def main(ctx):\n    try:\n        await asyncio.sleep(60)\n"
                         "    finally:\n        await asyncio.sleep_ms(300)   # cleanup inside the grace period\n")
    task_file(c, "deaf", "import asyncio\nasync def main(ctx):\n    while True:\n        try:\n"
                         "            await asyncio.sleep(60)\n        except asyncio.CancelledError:\n"
                         "            pass\n")
    c.start_agent()
    c.fid = c.framework()  # mesos-execute's capabilities: TASK_KILLING_STATE, PARTITION_AWARE, ...
    a = c.launch("tidy", task_id="tidy-1")
    b = c.launch("deaf", task_id="deaf-1")
    c.wait_state(a, "TASK_RUNNING")
    c.wait_state(b, "TASK_RUNNING")
    t0 = time.time()
    c.call(c.master.kill(a, grace_period=2.0))
    c.call(c.master.kill(b, grace_period=1.0))
    ka = c.wait_state(a, "TASK_KILLED")
    kb = c.wait_state(b, "TASK_KILLED")
    assert c.states(a) == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"]
    assert c.states(b) == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"]
    assert 0.25 <= ka.time - t0 < 1.5             # its 300 ms cleanup, not the 2 s grace
    assert 1.0 <= kb.time - t0 < 2.0              # forced when the 1 s grace ran out
    assert _st(kb)["message"] == "killed by the framework (forced after its grace period)"
    n = c.mark()
    pid = c.sync(lambda: c.master.agent().pid)    # the master forgot both tasks; a stale kill still comes:
    c.sync(c.master.send, pid, "KillTaskMessage", {"framework_id": c.fid, "task_id": a})
    time.sleep(0.3)                               # for a framework the agent no longer knows: ignored (§2.8)
    assert c.updates(a, n) == [] and c.problems() == []


# --- fairness and the watchdog ------------------------------------------------------------------------------

COUNTER = r'''
import asyncio, time
async def main(ctx):
    n = 0
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 1000:
        n += 1
        await asyncio.sleep_ms(0)
    ctx.update(b"%d" % n)
'''
HOG = r'''
import asyncio, time
async def main(ctx):
    while True:
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < 400:
            pass                                   # holds the loop 400 ms without awaiting
        await asyncio.sleep_ms(0)
'''


def test_two_tasks_share_the_loop_and_a_hog_is_failed(cluster):
    c = cluster()
    task_file(c, "counter", COUNTER)
    task_file(c, "hog", HOG)
    c.start_agent()
    c.framework()
    a = c.launch("counter", task_id="count-a")
    b = c.launch("counter", task_id="count-b")
    c.wait_state(a, "TASK_FINISHED")
    c.wait_state(b, "TASK_FINISHED")
    na = int(_st(c.updates(a)[2])["data"])
    nb = int(_st(c.updates(b)[2])["data"])
    assert na > 1000 and nb > 1000
    assert 0.67 < na / nb < 1.5, (na, nb)
    steady = c.launch("counter", task_id="steady")
    h = c.launch("hog", task_id="hog-1")
    f = c.wait_state(h, "TASK_FAILED")
    s = _st(f)
    assert (s["source"], s["reason"]) == (1, 19)  # SOURCE_SLAVE, REASON_CONTAINER_LIMITATION
    assert s["message"].startswith("held the event loop for 4") and s["message"].endswith("(slice 150 ms)")
    c.wait_state(steady, "TASK_FINISHED")
    assert c.states(h) == ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"]


def test_task_that_never_returns_is_failed_after_the_watchdog_reset(cluster):
    c = cluster()
    task_file(c, "idle", "import asyncio\nasync def main(ctx):\n    await asyncio.sleep(3600)\n")
    task_file(c, "spin", "import asyncio\nasync def main(ctx):\n    await asyncio.sleep_ms(100)\n"
                         "    while True:\n        pass\n")
    c.start_agent()
    c.framework()
    i = c.launch("idle", task_id="idle-1")
    s = c.launch("spin", task_id="spin-1")
    c.wait_state(s, "TASK_RUNNING")
    c.wait_state(i, "TASK_RUNNING")
    time.sleep(1.0)                            # spin holds the loop: the agent no longer answers
    n = c.mark()
    c.call(c.master.kill(i))
    time.sleep(0.5)
    assert c.updates(i, n) == []               # the kill can't even be read
    c.kill_agent()                             # what machine.WDT does to a board after its timeout
    m = c.mark()
    c.start_agent()
    rr = c.wait(lambda e: e.kind == RECV and e.name == "ReregisterSlaveMessage", since=m)
    assert sorted(t["task_id"] for t in rr.body["tasks"]) == ["idle-1", "spin-1"]
    fs = c.wait_state(s, "TASK_FAILED", since=m)
    gi = c.wait_state(i, "TASK_GONE", since=m)  # mesos-execute frameworks are PARTITION_AWARE
    assert (_st(fs)["source"], _st(fs)["reason"], _st(fs)["message"]) == (
        1, 19, "the watchdog reset the board while this task held the event loop")
    assert (_st(gi)["source"], _st(gi)["reason"]) == (1, 12)  # REASON_SLAVE_RESTARTED
    assert c.problems() == []


# --- reliable updates: acks, master restart, agent reboot ----------------------------------------------------

CHATTY = r'''
import asyncio
async def main(ctx):
    for i in range(3):
        ctx.update(b"u%d" % i)
    await asyncio.sleep_ms(10)
'''


def _journal_unacked(c):
    """Update uuids in the agent's journal with no ack record after them (the file: one JSON list a line)."""
    p = c.fs / "state" / "updates.json"
    recs = [json.loads(line) for line in p.read_text().splitlines() if line] if p.exists() else []
    return {r[6] for r in recs if r[0] == 0} - {r[1] for r in recs if r[0] == 1}


def _ack(c, tid, uuid):
    """Acknowledge through the master (Master::acknowledge). -> seq of the ack it sent, None if it could not
    (agent disconnected: the ack is lost, as with a real master)."""
    def ack():
        sent = c.master.acknowledge(c.master.agent(), c.fid, tid, uuid)
        return c.master.events[-1].seq if sent else None
    return c.sync(ack)


def test_duplicate_and_out_of_order_acks(cluster):
    c = cluster()
    task_file(c, "chatty", CHATTY)
    c.start_agent()
    c.fid = c.framework(ack="manual")
    tid = c.launch("chatty", task_id="chatty-1")
    first = c.wait_state(tid, "TASK_STARTING")
    time.sleep(0.3)
    assert len(c.updates(tid)) == 1            # only the head of the stream is in flight (§2.7)
    _ack(c, tid, os.urandom(16))              # an ack for no update of this stream
    time.sleep(0.3)
    assert len(c.updates(tid)) == 1
    want = ["TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_RUNNING", "TASK_RUNNING", "TASK_FINISHED"]
    head = first
    for k in range(1, len(want)):
        _ack(c, tid, _st(head)["uuid"])
        _ack(c, tid, _st(head)["uuid"])       # duplicate: ignored
        if k >= 2:
            _ack(c, tid, _st(c.updates(tid)[k - 2])["uuid"])  # an older one, out of order: ignored
        c.wait(lambda e, k=k: len(c.updates(tid)) > k)
        head = c.updates(tid)[k]
    time.sleep(0.3)
    ups = c.updates(tid)
    assert [NAMES[_st(e)["state"]] for e in ups] == want  # each exactly once: nothing advanced twice
    assert [_st(e).get("data") for e in ups[2:5]] == [b"u0", b"u1", b"u2"]
    assert len({_st(e)["uuid"] for e in ups}) == len(want)
    _ack(c, tid, _st(ups[-1])["uuid"])
    time.sleep(0.3)
    saved = json.loads((c.fs / "state" / "tasks.json").read_text())
    assert saved["tasks"] == []                # terminal update acknowledged: the task is forgotten
    assert c.problems() == []


def test_master_restart_mid_stream_loses_nothing_and_resends_nothing_acked(cluster):
    c = cluster()
    task_file(c, "chatty", CHATTY)
    c.start_agent()
    c.fid = c.framework(ack="manual")
    tid = c.launch("chatty", task_id="chatty-2")
    acked = {}                                 # uuid -> seq of the ack the master sent for it
    head = c.wait_state(tid, "TASK_STARTING")
    for k in (1, 2):
        acked[_st(head)["uuid"]] = _ack(c, tid, _st(head)["uuid"])
        c.wait(lambda e, k=k: len(c.updates(tid)) > k)
        head = c.updates(tid)[k]
    m = c.mark()
    c.call(c.master.restart())                 # new master id; the agent is RECOVERED in its registry
    c.wait(lambda e: e.kind == RECV and e.name == "ReregisterSlaveMessage", timeout=20, since=m)
    c.wait(lambda e: len(c.updates(tid, m)) >= 1, since=m)
    for _ in range(10):                        # ack whatever head arrives, until the stream is done
        ups = c.updates(tid)
        head = ups[-1]
        u = _st(head)["uuid"]
        if acked.get(u) is None:
            acked[u] = _ack(c, tid, u)
        if _st(head)["state"] == STATES["TASK_FINISHED"]:
            break
        c.wait(lambda e, n=len(ups): len(c.updates(tid)) > n, timeout=15)
    time.sleep(0.5)
    ups = c.updates(tid)
    order = []                                 # uuids in the order they first arrived
    for e in ups:
        if _st(e)["uuid"] not in order:
            order.append(_st(e)["uuid"])
    first = {u: min(e.seq for e in ups if _st(e)["uuid"] == u) for u in order}
    states = [NAMES[_st(next(e for e in ups if _st(e)["uuid"] == u))["state"]] for u in order]
    assert states == ["TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_RUNNING", "TASK_RUNNING",
                      "TASK_FINISHED"], c.agent_log()[-3000:]   # nothing lost, nothing out of order
    assert len(c.updates(tid, m)) >= 1 and any(e.seq > m for e in ups if _st(e)["uuid"] == order[2])
    # The next update of the stream proves the agent processed the ack of the one before: after that,
    # that one must never arrive again (copies already in flight when the ack left are fine).
    for u, nxt in zip(order, order[1:]):
        assert all(e.seq < first[nxt] for e in ups if _st(e)["uuid"] == u), "%s resent after its ack" % u.hex()
    assert all(acked.get(u) is not None for u in order)
    # The final ack emptied the stream: every update in the journal (a JSON record a line, updates.py) is
    # followed by its ack record.
    p = c.fs / "state" / "updates.json"
    recs = [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []
    assert {r[6] for r in recs if r[0] == 0} == {r[1] for r in recs if r[0] == 1}
    assert c.problems() == []


def test_reboot_resends_the_unacked_terminal_update_after_reregistration(cluster):
    c = cluster()
    example(c, "hello")
    c.start_agent()
    c.fid = c.framework(ack="manual")
    tid = c.launch("hello", task_id="hello-r")
    for k in range(3):                        # STARTING, RUNNING, RUNNING(data) acknowledged
        e = c.wait(lambda e, k=k: len(c.updates(tid)) > k)
        _ack(c, tid, _st(c.updates(tid)[k])["uuid"])
    fin = c.wait_state(tid, "TASK_FINISHED")
    c.kill_agent()                             # power cut before the framework acks TASK_FINISHED
    m = c.mark()
    c.start_agent()
    rr = c.wait(lambda e: e.kind == RECV and e.name == "ReregisterSlaveMessage", since=m)
    t = rr.body["tasks"]
    assert len(t) == 1 and t[0]["task_id"] == tid and t[0]["state"] == STATES["TASK_FINISHED"]
    assert t[0]["status_update_state"] == STATES["TASK_FINISHED"]
    assert t[0]["status_update_uuid"] == _st(fin)["uuid"]
    assert "executor_id" not in t[0] and all("allocation_info" in r for r in t[0]["resources"])
    again = c.wait_state(tid, "TASK_FINISHED", since=rr.seq)
    assert _st(again)["uuid"] == _st(fin)["uuid"]  # the same update, resent
    _ack(c, tid, _st(fin)["uuid"])
    # The ack is on flash (its journal record) before the cut: an ack still in flight on the cut link would be
    # lost, as with a real master, and the task rightly reported again (1 of CI's runs under load).
    deadline = time.monotonic() + 20
    while _journal_unacked(c):
        assert time.monotonic() < deadline, c.agent_log()[-3000:]
        time.sleep(0.05)
    m = c.mark()
    c.call(c.master.cut_link())                # the agent re-registers: the task is no longer reported
    rr2 = c.wait(lambda e: e.kind == RECV and e.name == "ReregisterSlaveMessage", timeout=20, since=m)
    assert rr2.body.get("tasks", []) == []
    assert c.problems() == []


# --- fetching code ------------------------------------------------------------------------------------------

class _Files(http.server.SimpleHTTPRequestHandler):
    hits = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        _Files.hits.append(self.path)
        if self.path.startswith("/slow"):
            time.sleep(1.5)
        super().do_GET()


@pytest.fixture
def http_files(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    _Files.hits = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Files(*a, directory=str(root)))
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield root, "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()


def test_uri_fetch_with_sha256_pins_and_cache(cluster, http_files):
    root, base = http_files
    code = b"async def main(ctx):\n    ctx.update(b'fetched')\n"
    (root / "remote.py").write_bytes(code)
    good = hashlib.sha256(code).hexdigest()
    bad = hashlib.sha256(b"something else").hexdigest()
    c = cluster()
    c.start_agent()
    c.framework()
    uri = {"value": "%s/remote.py#sha256=%s" % (base, good), "cache": True}
    t1 = c.launch("remote", task_id="f1", uris=[uri])
    c.wait_state(t1, "TASK_FINISHED")
    assert _st(c.updates(t1)[2])["data"] == b"fetched"
    assert (c.fs / "tasks" / "remote.py").read_bytes() == code
    t2 = c.launch("remote", task_id="f2", uris=[uri])          # cached, pin still matches: no transfer
    c.wait_state(t2, "TASK_FINISHED")
    assert _Files.hits == ["/remote.py"]
    t3 = c.launch("remote", task_id="f3", uris=[{"value": "%s/remote.py#sha256=%s" % (base, bad), "cache": True}])
    f3 = _st(c.wait_state(t3, "TASK_FAILED"))
    assert (f3["source"], f3["reason"]) == (1, 21)
    assert f3["message"] == "remote.py: sha256 mismatch: got %s, pinned %s" % (good, bad)
    t4 = c.launch("gone", task_id="f4", uris=[{"value": "%s/gone.py" % base}])
    assert _st(c.wait_state(t4, "TASK_FAILED"))["message"] == "%s/gone.py: HTTP 404" % base
    dead = mpy.free_port()
    t5 = c.launch("far", task_id="f5", uris=[{"value": "http://127.0.0.1:%d/far.py" % dead}])
    assert "unreachable" in _st(c.wait_state(t5, "TASK_FAILED"))["message"]
    t6 = c.launch("remote", task_id="f6", uris=[{"value": "%s/remote.py#sha256=%s" % (base, good), "cache": False}])
    c.wait_state(t6, "TASK_FINISHED")                          # cache false: fetched again
    assert _Files.hits.count("/remote.py") == 3
    (root / "slow.py").write_bytes(code)
    t7 = c.launch("slow", task_id="f7", uris=[{"value": "%s/slow.py" % base}])
    time.sleep(0.3)
    c.call(c.master.kill(t7))                                  # while its code is still on the way
    k7 = _st(c.wait_state(t7, "TASK_KILLED"))
    assert (k7["source"], k7["reason"]) == (1, 30)             # REASON_TASK_KILLED_DURING_LAUNCH (§2.8)
    assert c.states(t7) == ["TASK_KILLED"]
    time.sleep(1.5)
    assert c.states(t7) == ["TASK_KILLED"] and not (c.fs / "tasks" / "slow.py").exists()
    assert c.states(t3) == ["TASK_FAILED"] and c.states(t5) == ["TASK_FAILED"]
    assert not (c.fs / "tasks" / "remote.py.part").exists()
    assert (c.fs / "tasks" / "remote.py").read_bytes() == code  # the bad transfer replaced nothing
    assert c.problems() == []
