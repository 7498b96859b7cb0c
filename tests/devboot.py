# A device model booting the agent as firmware/main.py does, driven through its stages against the stand-in
# master: registration, 2 idle tasks, /state, then pings answered for a while. MIT licence.
# Used by tests/test_devmodel.py (the RAM budget) and tools/bench/bench_agent.py (smallest heap per stage).
import asyncio
import http.client
import json
import os
import subprocess
import threading
import time

import mpy

if __name__ == "__main__":  # run as a script (below): the paths conftest.py gives the tests
    import sys

    sys.path[:0] = [os.path.join(mpy.ROOT, "tools"), os.path.join(mpy.ROOT, "tools", "hostcompat"), mpy.LIB]
import standin  # noqa: E402
from vboard_proc import Board  # noqa: E402

STAGES = ("register", "tasks", "state")
PING_S = 0.5          # the stand-in master's ping interval (a real master: 15 s)
IDLE = {"LINGER_MS": "3600000"}  # tasks/hello.py greets, then sleeps: an idle task
RUNNING = 1           # TaskState TASK_RUNNING


async def _cancel_the_rest():
    # What the stand-in master left pending (a reader's queue.get()) ends here, with the loop still running: left
    # for the garbage collector, it would try to cancel itself on a closed loop and print a traceback at exit.
    rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in rest:
        t.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


class Boot:
    """One device model booting the agent at a heap size: master on its own loop thread, board process.
    run() records the last stage reached, the figures measured and the error (if any)."""

    def __init__(self, device, heapsize, tmp, hold_s=60, measure=False, upto="state"):
        self.device, self.heapsize, self.tmp, self.hold_s = device, heapsize, tmp, hold_s
        self.upto = upto  # the last stage: "register", "tasks" (+2 idle tasks) or "state" (+/state)
        self.measure = measure  # read /metrics/snapshot after each stage (it costs heap itself)
        self.stage = "start"
        self.figures = {}
        self.error = None
        self.output = ""

    def call(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self):
        self.loop = asyncio.new_event_loop()
        t = threading.Thread(target=self.loop.run_forever, daemon=True)
        t.start()
        self.board = None
        self.master = standin.StandinMaster(ping_interval=PING_S)
        try:
            self.call(self.master.start())
            self._boot()
        except Exception as e:  # noqa: BLE001 - reported by the test, with the stage and the board's output
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            if self.board is not None:
                self.output = self.board.output()
                self.board.stop()
            self.call(self.master.stop())
            self.call(_cancel_the_rest())
            self.loop.call_soon_threadsafe(self.loop.stop)
            t.join(5)
            if not t.is_alive():
                self.loop.close()
        return self

    def until(self, what, pred, timeout):
        """Poll (generous deadline) until pred(event) holds for an event; fail at once if the board dies."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self._alive()
            if any(pred(e) for e in list(self.master.events)):
                return
            time.sleep(0.1)
        raise AssertionError("no %s within %d s" % (what, timeout))

    def _boot(self):
        self.board = b = Board(os.path.join(self.tmp, "%s-%s-%s" % (self.device, self.heapsize, self.upto)),
                               self.master.port,
                               heapsize=self.heapsize, device=self.device, log_level="info")
        if mpy.runs_loaded_code(self.device):
            # Stock firmware: the task arrives as .mpy in tasks_dir (`make task-upload`).
            subprocess.run([mpy.mpy_cross_cmd(), "-O3", "-s", "hello.py", "-o",
                            os.path.join(b.fs, "tasks", "hello.mpy"), os.path.join(mpy.ROOT, "tasks", "hello.py")],
                           check=True)
        b.start()
        # Registration, then the reboot-race re-registration's reply (§2.2) before anything is launched.
        self.until("registration", lambda e: e.kind == standin.SEND and e.name == "SlaveReregisteredMessage", 40)
        self.stage = "registered"
        self.snapshot("after registration")
        if self.upto != "register":
            self._tasks()
        self._hold()

    def _tasks(self):
        b = self.board
        fid = self.master.create_framework(name="devmodel")
        tids = [self.call(self.master.launch(command="hello", task_id="idle-%d" % i, shell=False, resources="cpus:0.1",
                                             environment=IDLE, framework_id=fid)) for i in (1, 2)]
        for tid in tids:
            self.until("TASK_RUNNING for " + tid, lambda e, tid=tid: (
                e.kind == standin.RECV and e.name == "StatusUpdateMessage" and
                e.body["update"]["status"]["task_id"] == tid and e.body["update"]["status"]["state"] == RUNNING), 30)
        self.stage = "2 tasks running"
        self.snapshot("with 2 tasks")
        if self.upto == "tasks":
            return
        st, body = self.get("/state")
        assert st == 200, "/state answered %d: %r" % (st, body[:300])
        assert isinstance(json.loads(body), dict)
        for tid in tids:
            assert ('"%s"' % tid).encode() in body, "/state does not list %s: %r" % (tid, body[:600])
        self.stage = "/state 200"
        self.snapshot("after /state")

    def _hold(self):
        m1 = self.master.mark()
        t_end = time.time() + self.hold_s
        while time.time() < t_end:
            self._alive()
            time.sleep(0.5)
        evs = self.master.events[m1:]
        pings = sum(1 for e in evs if e.kind == standin.SEND and e.name == "PingSlaveMessage")
        pongs = sum(1 for e in evs if e.kind == standin.RECV and e.name == "PongSlaveMessage")
        if self.hold_s:
            self.figures.update(pings=pings, pongs=pongs)
        assert pings >= self.hold_s / PING_S / 3, "the master sent only %d pings in %d s" % (pings, self.hold_s)
        assert pongs >= pings - 1, "%d of %d pings answered" % (pongs, pings)
        self._alive()
        self.stage = "pings answered for %d s" % self.hold_s

    def snapshot(self, label):
        if not self.measure:
            return
        st, body = self.get("/metrics/snapshot")
        if st == 200:
            self.figures["heap used " + label] = "%.1f KB" % (json.loads(body)["micromesos/heap_used_bytes"] / 1024)

    def _alive(self):
        mem = self.board.find("MemoryError|out of memory")
        if mem:
            raise AssertionError("on the board: %s" % mem[-1])
        if not self.board.alive():
            raise AssertionError("the board exited (status %s)" % self.board.proc.poll())

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.board.port, timeout=20)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def report(self):
        return "%s model, -X heapsize=%s: reached %r%s; %s" % (
            self.device, self.heapsize, self.stage, ", then " + self.error if self.error else "",
            ", ".join("%s %s" % kv for kv in self.figures.items()) or "no figures")


def tally(device, heapsize, n, hold_s, pairs=2, upto="state"):
    """Boot `n` times at `heapsize` up to stage `upto`, `pairs` boards at once (threads): -> (passed, the
    failed Boots)."""
    import tempfile

    done = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(0, n, pairs):
            boots = [Boot(device, heapsize, os.path.join(tmp, str(i + k)), hold_s=hold_s, upto=upto)
                     for k in range(min(pairs, n - i))]
            for b in boots:
                os.makedirs(b.tmp)
            threads = [threading.Thread(target=b.run) for b in boots]
            for t in threads:
                t.start()
            for t in threads:
                t.join(hold_s + 240)
            for b in boots:
                print(b.report(), flush=True)
            done += boots
    failed = [b for b in done if b.error]
    return len(done) - len(failed), failed


if __name__ == "__main__":
    # How often a heap size passes (register, 2 idle tasks, /state, pings held; STAGE: up to register or tasks
    # only), the evidence behind mpy.BUDGET_HEAPSIZE:
    #     python3 tests/devboot.py frozen|loaded|split HEAPSIZE [BOOTS] [HOLD_S] [STAGE]
    # split: the loaded model with the heap in two equal areas, as a stock ESP32's grows (tools/devmodel.py).
    dev, heap = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    hold = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    upto = sys.argv[5] if len(sys.argv) > 5 else "state"
    if upto not in STAGES:
        sys.exit("devboot: STAGE is one of %s" % ", ".join(STAGES))
    ok, failed = tally(dev, heap, n, hold, upto=upto)
    for b in failed:
        print("--- %s\n%s" % (b.report(), b.output[-1500:]))
    print("%s model, -X heapsize=%s, up to %s: %d of %d boots passed (hold %d s)" % (dev, heap, upto, ok, n, hold))
