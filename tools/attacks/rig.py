# The world one attack case runs in: the stand-in master on this event loop and a fresh virtual board (the
# unix port running firmware/main.py, tests/vboard_proc.py), all on loopback; and what a case observes.
# MIT licence. Every observation comes from the master's event log, the board's own output or HTTP.
import asyncio
import json
import os
import shutil
import time
import urllib.error
import urllib.request

import mpy
import standin
from standin import RECV, SEND
from vboard_proc import Board

ROOT = mpy.ROOT
TASKS = os.path.join(ROOT, "tests", "tasks")  # the fault tasks the unit tests use too
PING_INTERVAL = 0.5  # the stand-in master's (a real one: 15 s); max_missed 5: unreachable after 2.5 s
STATES = {0: "STARTING", 1: "RUNNING", 2: "FINISHED", 3: "FAILED", 4: "KILLED", 5: "LOST", 6: "STAGING",
          7: "ERROR", 8: "KILLING", 9: "DROPPED", 10: "UNREACHABLE", 11: "GONE", 12: "GONE_BY_OPERATOR",
          13: "UNKNOWN"}
TERMINAL = {"FINISHED", "FAILED", "KILLED", "LOST", "ERROR", "DROPPED", "GONE", "GONE_BY_OPERATOR"}


class Rig:
    def __init__(self, workdir, board_cfg=None):
        self.dir = workdir
        shutil.rmtree(workdir, ignore_errors=True)
        os.makedirs(os.path.join(workdir, "fs", "tasks"))
        self.master_port = mpy.free_port()
        self.m = None
        self.cfg = dict(board_cfg or {})
        self.b = Board(os.path.join(workdir, "fs"), self.master_port, **self.cfg)
        self.aid = None
        self.fid = None
        self._n = 0

    # --- life cycle -------------------------------------------------------------------------------------

    async def start_master(self):
        self.m = standin.StandinMaster(port=self.master_port, ping_interval=PING_INTERVAL,
                                       registry=os.path.join(self.dir, "registry.json"))
        await self.m.start()
        return self.m

    def start_board(self):
        self.b.start()

    async def start(self):
        await self.start_master()
        self.start_board()
        return await self.registered()

    async def registered(self, since_line=0, timeout=40):
        """The board says it is registered and the re-registration that follows a fresh registration (the
        reboot race, PROTOCOL.md §2.2) was answered; -> agent id."""
        line = await self.b.await_line(r"registered with master@127\.0\.0\.1:%d as agent (\S+)" % self.master_port,
                                       timeout=timeout, since=since_line)
        self.aid = line.rsplit(" ", 1)[1]
        await self.m.wait_for(lambda e: e.name == "SlaveReregisteredMessage" and e.kind == SEND
                              and e.body.get("slave_id") == self.aid, timeout=15)
        return self.aid

    async def stop(self):
        self.b.kill()
        if self.m is not None:
            await self.m.stop()

    # --- observations --------------------------------------------------------------------------------

    def mark(self):
        return self.m.mark()

    def board_alive(self):
        return self.b.alive()

    def master_view(self):
        """'registered' when the stand-in master holds the agent registered and connected."""
        a = self.m.agents.get(self.aid) if self.aid else None
        if a is None:
            return "unknown"
        return a.state if (a.state != "registered" or a.connected) else "disconnected"

    def pings(self, since, until=None):
        return [e for e in self.m.events[since:until] if e.kind == SEND and e.name == "PingSlaveMessage"]

    def pongs(self, since, until=None):
        return [e for e in self.m.events[since:until] if e.kind == RECV and e.name == "PongSlaveMessage"]

    async def missed(self, since, until, grace=2.0):
        """Pings the master sent in [since, until) that no pong answered by `grace` seconds later."""
        await asyncio.sleep(grace)
        return max(0, len(self.pings(since, until)) - len(self.pongs(since)))

    def longest_pong_gap(self, since, until=None):
        t = [e.time for e in self.pongs(since, until)]
        return max((b - a for a, b in zip(t, t[1:])), default=0.0)

    async def pongs_resume(self, timeout=15.0):
        """A pong reaches the master within `timeout` from now."""
        mk = self.mark()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.pongs(mk):
                return True
            await asyncio.sleep(0.1)
        return False

    async def http(self, path, timeout=3.0):
        """GET on the board's port -> (status, body bytes); status None when no answer came."""
        url = "http://127.0.0.1:%d%s" % (self.b.port, path)

        def get():
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                return e.code, b""
            except (OSError, ValueError) as e:
                return None, str(e).encode()
        return await asyncio.get_running_loop().run_in_executor(None, get)

    async def heap(self):
        """The board's heap in use after a collection (/metrics/snapshot), or None if it didn't answer."""
        for _ in range(3):
            status, body = await self.http("/metrics/snapshot", timeout=5)
            if status == 200:
                try:
                    return int(json.loads(body)["micromesos/heap_used_bytes"])
                except (ValueError, KeyError):
                    return None
            await asyncio.sleep(0.5)
        return None

    async def health_within(self, seconds):
        """Seconds until /slave(1)/health answers 200, or None if it doesn't within `seconds`."""
        t0 = time.time()
        while time.time() - t0 < seconds:
            status, _ = await self.http("/slave(1)/health", timeout=2)
            if status == 200:
                return time.time() - t0
            await asyncio.sleep(0.3)
        return None

    async def relink_after_cut(self, timeout=15.0):
        """The master cuts its link to the board; True if the board re-registers and pongs flow again."""
        mk = self.mark()
        await self.m.cut_link(self.aid)
        try:
            await self.m.wait_for(lambda e: e.kind == RECV and e.name == "ReregisterSlaveMessage", since=mk,
                                  timeout=timeout)
        except asyncio.TimeoutError:
            return False
        return await self.pongs_resume(timeout) and self.master_view() == "registered"

    # --- tasks -------------------------------------------------------------------------------------------

    def add_task(self, name, text=None):
        """Put a task module on the board's flash (tasks/): tests/tasks/<name>.py or `text`."""
        if text is None:
            with open(os.path.join(TASKS, name + ".py")) as f:
                text = f.read()
        with open(os.path.join(self.dir, "fs", "tasks", name + ".py"), "w") as f:
            f.write(text)

    def add_example(self, name):
        """tasks/<name>.py (the examples) onto the board's flash."""
        with open(os.path.join(ROOT, "tasks", name + ".py")) as f:
            self.add_task(name, f.read())

    async def launch(self, module, task_id=None, resources="cpus:0.01;mem:0.001"):
        if self.fid is None:
            self.fid = self.m.create_framework(name="attack", capabilities=["PARTITION_AWARE",
                                                                            "TASK_KILLING_STATE"])
        self._n += 1
        return await self.m.launch(command=module, task_id=task_id or "%s-%d" % (module, self._n),
                                   resources=resources, shell=False, framework_id=self.fid, agent_id=self.aid)

    def states(self, tid, since=0):
        return [STATES.get(e.body["update"]["status"]["state"], "?") for e in self.m.events[since:]
                if e.kind == RECV and e.name == "StatusUpdateMessage"
                and e.body["update"]["status"]["task_id"] == tid]

    async def terminal(self, tid, timeout=15.0, since=0):
        """The terminal state the master got for the task (e.g. 'FAILED'), or None within `timeout`."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            done = [s for s in self.states(tid, since) if s in TERMINAL]
            if done:
                return done[0]
            await asyncio.sleep(0.1)
        return None

    def message_of(self, tid, state):
        for e in self.m.events:
            if e.kind == RECV and e.name == "StatusUpdateMessage":
                st = e.body["update"]["status"]
                if st["task_id"] == tid and STATES.get(st["state"]) == state:
                    return st.get("message", "")
        return None
