#!/usr/bin/env python3
# `make sim GATEWAY=N`: the stand-in master (or a real mesos-master), the gateway (mgateway.gateway in the
# MicroPython unix port), tools/linksim.py and N sleeping nodes (firmware/node_main.py, one MicroPython process
# each), with the timeline printed as it happens. MIT licence. docs/GATEWAY.md §7, README "Sleeping nodes".
"""Everything runs on 127.0.0.1 except the master given with --master.

Clocks: the stand-in master pings every 15 s and gives up after 5 missed pings (75 s), the real defaults,
and a node wakes every 120 s for 5 s, all multiplied by --scale (default 1/15 with the stand-in: pings every
1 s, nodes awake 0.33 s of every 8 s). With --master there is no scaling: the real master's own timeouts, and
nodes that sleep 115 s of every 120 s, longer than its 75 s.

The link between the gateway and each node goes through its own linksim relay (so every frame is attributed
to its node); the impairments are linksim's variables (docs/LINK.md §10), the same for every node:
  LINK_LOSS LINK_DUP LINK_REORDER LINK_REORDER_MS LINK_DELAY_MS LINK_JITTER_MS LINK_CORRUPT LINK_SEED
(flags --loss/--dup/--reorder/--delay-ms override them). Node i's relay has seed LINK_SEED + i.

Timeline lines: `master |` what the master saw (registrations, launches, status updates and acks, state
changes; pings summed per sleep), `gw |` the gateway's log, `link |` one line per wake per node (frames and
bytes each way, what linksim lost, duplicated, delayed; -v: every frame), `nK |` node K's log."""
import argparse
import asyncio
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import launch  # noqa: E402
import linksim  # noqa: E402
import mpy  # noqa: E402
import sim  # noqa: E402
from standin_master import StandinMaster  # noqa: E402  (its import puts lib/ and hostcompat on sys.path)

WORK = os.path.join(ROOT, "build", "gwsim")
# The real defaults the clocks scale from (PROTOCOL.md §2.5; issue 11 "awake 5 s of every 120 s").
PING_S, MISSED, WAKE_S, LISTEN_S = 15.0, 5, 120.0, 5.0
STANDIN_SCALE = 1.0 / 15
# A node's -X heapsize on a device model: a real board's 100k (tests/test_node_ram.py: one idle task in 90k
# loaded, 26k frozen with 250 B frames).
NODE_HEAPSIZE = {"wheel": "256k", "frozen": "100k", "loaded": "100k"}
DEVICE_RESOURCES = "cpus:0.1;mem:0.004"  # a node on the 32-bit device model (100k heap) offers mem 0.006 MB
# Frame types of the link (LINK.md §3), for the timeline.
FRAME = {1: "HELLO", 2: "WELCOME", 3: "DATA", 4: "ACK", 5: "WAKE", 6: "SLEEP", 7: "RESET"}
STATES = launch.STATES
TERMINAL = launch.TERMINAL
_RELAY_LINE = re.compile(r"^\s*[\d.]+ (up|down)\s+\(.*?\)\s+(\d+) B type (-?\d+): (.*)$")


def die_with_parent():
    # Each child is its own process group (killed as one at exit) and dies with this process even if it is
    # SIGKILLed (Linux prctl PR_SET_PDEATHSIG): a Ctrl-C or a kill never leaves a gateway or node behind.
    os.setsid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def kill_group(p, sig=signal.SIGTERM, wait=3.0):
    """End process p and its process group: sig, then SIGKILL after `wait` seconds."""
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        return
    try:
        p.wait(wait)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(5)


class NodeView:
    """One node as the timeline follows it: from its relay's frames (awake/asleep), the master's events
    (agent, pings, updates) and what was launched on it."""

    def __init__(self, i, name):
        self.i = i
        self.name = name
        self.pid = None  # slave(N)@gateway: from the gateway's log or the registration
        self.agent_id = None
        self.state = "asleep"  # awake (WAKE/HELLO seen) -> sleeping (SLEEP seen) -> asleep (quiet since)
        self.last_frame = 0.0
        self.wakes = 0
        self.sessions = 0  # HELLOs sent (a new session each, or repeats of one)
        self.t_wake = None
        self.awake_s = 0.0
        self.awake_max_s = 0.0
        self.cycle = self._zero()
        self.cycles = []  # one self.cycle per wake, finished at its SLEEP
        self.pings = self.pongs = self.pongs_asleep = 0
        self.pings_since = self.pongs_since = 0
        self.tasks = {}  # task id -> {"launched_asleep", "wakes_at_launch", "wakes_at_first", "updates": [...]}
        self.launch_due = False
        self.relay = None
        self.proc = None

    @staticmethod
    def _zero():
        return {"up": 0, "down": 0, "up_bytes": 0, "down_bytes": 0, "lost": 0, "dup": 0, "late": 0, "corrupt": 0}


class Timeline:
    """Prints the timeline (thread-safe: the relays' threads, the output pumps and the master's loop all
    report here) and keeps the figures of the summary."""

    def __init__(self, out, frames=False, impair=None):
        self.out = out
        self.frames = frames
        self.impair = impair
        self.t0 = time.time()
        self.lock = threading.RLock()
        self.nodes = []
        self.by_pid = {}
        self.problems = []
        self.unreachable = []
        self.registrations = 0
        self.quiet_s = 1.0  # a node that said SLEEP and was not heard for this long is asleep (run() sets it)
        self.master = None  # the stand-in master, for its task table

    def say(self, who, text):
        with self.lock:
            self.out("%8.2f %-6s| %s" % (time.time() - self.t0, who, text))

    def node(self, name):
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    def _who(self, pid):
        n = self.by_pid.get(pid)
        return "%s (%s)" % (pid, n.name) if n else str(pid)

    def _bind(self, name, pid):
        n = self.node(name)
        if n is not None and pid:
            n.pid = pid
            self.by_pid[pid] = n
        return n

    # --- the gateway's log ----------------------------------------------------------------------------

    def gateway_line(self, line):
        m = re.search(r"node (\S+) (?:attached|restored) as (slave\(\d+\)@\S+)", line)
        if m:
            with self.lock:
                self._bind(m.group(1), m.group(2).rstrip(","))
        m = re.search(r"(slave\(\d+\)@\S+): (?:re-)?registered as agent (\S+) \(node (\S+)\)", line)
        if m:  # (with a real master this is the only place the agent id shows)
            with self.lock:
                n = self._bind(m.group(3), m.group(1))
                if n is not None and n.agent_id is None:
                    n.agent_id = m.group(2)
        self.say("gw", line)

    # --- the link, per node ---------------------------------------------------------------------------

    def relay_line(self, n, line):
        m = _RELAY_LINE.match(line)
        if self.frames:
            self.say("frame", "%s %s" % (n.name, line.strip()))
        if not m:
            return
        way, size, ftype, what = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        with self.lock:
            c = n.cycle
            c[way] += 1
            c[way + "_bytes"] += size
            copies = [] if what == "dropped" else what.split(", ")
            if not copies:
                c["lost"] += 1
            if len(copies) > 1:
                c["dup"] += 1
            base = (self.impair.delay_ms + self.impair.jitter_ms) if self.impair else 0
            for cp in copies:
                ms = float(cp.split("ms")[0])
                if ms > base + 0.5:
                    c["late"] += 1
                if "corrupted" in cp:
                    c["corrupt"] += 1
            now = time.time()
            before = n.last_frame
            n.last_frame = now
            if way != "up":
                return
            # HELLO or WAKE: the node's radio is on. A new wake unless it is a repeat: the node is awake and
            # was heard within quiet_s (a node that slept without a SLEEP seen starts a new wake too).
            if ftype in (1, 5) and (n.state != "awake" or now - before >= self.quiet_s):
                if n.state != "asleep":  # the last wake ended unseen: close it without this frame
                    c["up"] -= 1
                    c["up_bytes"] -= size
                    n.last_frame = before
                    self._asleep(n)
                    n.last_frame = now
                    c = n.cycle
                    c["up"] += 1
                    c["up_bytes"] += size
                n.state = "awake"
                n.wakes += 1
                n.t_wake = now
                if ftype == 1:
                    n.sessions += 1
                slept = ""
                if n.wakes > 1 and n.pid and self.master is not None:  # (a real master's pings are not seen)
                    slept = "; while it slept the master pinged %s %d times, the gateway answered %d" % (
                        n.pid.partition("@")[0], n.pings_since, n.pongs_since)
                for tid, r in n.tasks.items():
                    if not r["updates"]:  # launched while it slept: what the master shows until now
                        r["state_at_wake"] = self._task_state(tid)
                        slept += "; task %s is %s at the master" % (tid, r["state_at_wake"])
                self.say("link", "%s wakes (%s)%s" % (n.name, FRAME[ftype], slept))
                n.pings_since = n.pongs_since = 0
            elif ftype == 6 and n.state == "awake":  # SLEEP: asleep once the link is quiet (settle())
                n.state = "sleeping"  # (if the gateway answers with more, frames flow and it stays "sleeping")

    def _task_state(self, tid):
        m = self.master
        for (_, t), task in list(m.tasks.items()) if m is not None else ():
            if t == tid:
                return STATES.get(task.state, str(task.state))
        return "(not known here)"

    def settle(self):
        """A node that said SLEEP and has been quiet for quiet_s (longer than its SLEEP repeats take) is
        asleep: its wake is summed up. Called by the main loop."""
        with self.lock:
            now = time.time()
            for n in self.nodes:
                if n.state == "sleeping" and now - n.last_frame >= self.quiet_s:
                    self._asleep(n)

    def _asleep(self, n):
        c = n.cycle
        on = n.last_frame - n.t_wake if n.t_wake else 0.0  # WAKE to the gateway's last frame of this wake
        n.state = "asleep"
        n.awake_s += on
        n.awake_max_s = max(n.awake_max_s, on)
        self.say("link", "%s asleep after %d ms awake: up %d frames %d B, down %d frames %d B%s" % (
            n.name, on * 1000, c["up"], c["up_bytes"], c["down"], c["down_bytes"], _impaired(c)))
        c["awake_ms"] = round(on * 1000, 1)
        c["hello"] = n.sessions
        n.cycles.append(c)  # (bench_gateway.py reads these: bytes and radio-on time per wake)
        n.cycle = NodeView._zero()
        if n.agent_id and not n.tasks and n.launch_due is False:
            n.launch_due = True

    # --- the master's events (the stand-in's on_event) ------------------------------------------------

    def master_event(self, ev):
        name, kind = ev.name, ev.kind
        with self.lock:
            if name == "PingSlaveMessage" and kind == "send":
                n = self.by_pid.get(ev.dst)
                if n is not None:
                    n.pings += 1
                    n.pings_since += 1
                return
            if name == "PongSlaveMessage" and kind == "recv":
                n = self.by_pid.get(ev.src)
                if n is not None:
                    n.pongs += 1
                    n.pongs_since += 1
                    if n.state == "asleep":
                        n.pongs_asleep += 1
                return
            if kind in ("dropped", "crash", "error"):
                self.problems.append(ev.line(self.t0))
            if name in ("RegisterSlaveMessage", "ReregisterSlaveMessage") and kind == "recv":
                node = _node_attr((ev.body or {}).get("slave", {}))
                n = self._bind(node, ev.src) if node else None
                if name == "RegisterSlaveMessage":
                    return  # the master's "registered agent" line follows
            if name in ("SlaveRegisteredMessage", "SlaveReregisteredMessage") and kind == "send":
                n = self.by_pid.get(ev.dst)
                sid = (ev.body or {}).get("slave_id")
                if n is not None and sid:
                    n.agent_id = sid.get("value") if isinstance(sid, dict) else sid
                self.registrations += 1
                return
            if kind == "info" and "unreachable" in (ev.reason or ""):
                self.unreachable.append((time.time() - self.t0, ev.agent))
            if name == "StatusUpdateMessage" and kind == "recv":
                self._update(ev)
                return
            if name == "RunTaskMessage" and kind == "send":
                n = self.by_pid.get(ev.dst)
                t = (ev.body or {}).get("task", {})
                tid = t.get("task_id")
                tid = tid.get("value") if isinstance(tid, dict) else tid
                if n is not None:
                    asleep = n.state == "asleep"
                    n.tasks[tid] = {"launched_asleep": asleep, "wakes_at_launch": n.wakes,
                                    "wakes_at_first": None, "updates": [], "t_launch": time.time() - self.t0,
                                    "state_at_wake": None}
                    self.say("master", "-> RunTaskMessage task %s to %s: the node is %s%s" % (
                        tid, self._who(ev.dst), "asleep" if asleep else "awake",
                        "" if not asleep else ", the gateway holds it; the master shows TASK_STAGING until the node "
                        "wakes"))
                    return
            line = ev.line(self.t0).strip()
            who = ev.src if kind == "recv" else ev.dst
            if who and who in self.by_pid:
                line += "  [%s]" % self.by_pid[who].name
            self.say("master", line.split(None, 1)[1])  # without ev.line's own clock

    def _update(self, ev):
        u = (ev.body or {}).get("update", {})
        st = u.get("status", {})
        tid = st.get("task_id")
        tid = tid.get("value") if isinstance(tid, dict) else tid
        state = STATES.get(st.get("state"), str(st.get("state")))
        uuid = (u.get("uuid") or b"").hex()
        n = self.by_pid.get(ev.src)
        rec = n.tasks.get(tid) if n is not None else None
        note = ""
        if rec is not None:
            if rec["wakes_at_first"] is None:
                rec["wakes_at_first"] = n.wakes
                if rec["launched_asleep"]:
                    note = " (launched while %s slept; started at its wake %d)" % (n.name, n.wakes)
            if any(x[0] == uuid for x in rec["updates"]):
                note += " DUPLICATE of an update already received"
            rec["updates"].append((uuid, state))
        self.say("master", "<- StatusUpdateMessage %s %s from %s uuid %s%s" % (tid, state, self._who(ev.src),
                                                                               uuid[:8], note))

    # --- the summary ----------------------------------------------------------------------------------

    def summary(self):
        with self.lock:
            nodes = {}
            for n in self.nodes:
                tasks = {}
                for tid, r in n.tasks.items():
                    uu = [u for u, _ in r["updates"]]
                    tasks[tid] = {"states": [s for _, s in r["updates"]], "updates": len(uu),
                                  "duplicates": len(uu) - len(set(uu)), "launched_asleep": r["launched_asleep"],
                                  "state_at_wake": r["state_at_wake"],
                                  "started_after_a_wake": r["wakes_at_first"] is not None
                                  and r["wakes_at_first"] > r["wakes_at_launch"]}
                st = n.relay.stats if n.relay else {}
                nodes[n.name] = {"agent_id": n.agent_id, "pid": n.pid, "wakes": n.wakes, "hellos": n.sessions,
                                 "awake_s": round(n.awake_s, 3), "awake_max_s": round(n.awake_max_s, 3),
                                 "pings": n.pings, "pongs": n.pongs, "pongs_while_asleep": n.pongs_asleep,
                                 "tasks": tasks, "link": st, "cycles": list(n.cycles)}
            return {"seconds": round(time.time() - self.t0, 2), "nodes": nodes, "problems": list(self.problems),
                    "unreachable": len(self.unreachable), "registrations": self.registrations}


def _impaired(c):
    parts = ["%d %s" % (c[k], w) for k, w in (("lost", "lost"), ("dup", "duplicated"), ("late", "delayed"),
                                              ("corrupt", "corrupted")) if c[k]]
    return " (linksim: %s)" % ", ".join(parts) if parts else ""


def _node_attr(slave_info):
    for at in slave_info.get("attributes", []) or []:
        if at.get("name") == "node":
            return (at.get("text") or {}).get("value")
    return None


_LOG_HEAD = re.compile(r"^\d+ (?:INFO )?")  # micromesos.log's ticks_ms stamp (the timeline has its own) and INFO


def pump(proc, who, tl, on_line=None):
    for line in iter(proc.stdout.readline, ""):
        line = _LOG_HEAD.sub("", line.rstrip("\n"))
        if on_line is not None:
            on_line(line)
        else:
            tl.say(who, line)


class Clocks:
    """Durations from the real defaults times `scale` (GATEWAY.md §7)."""

    def __init__(self, scale, wake_s, listen_s, real):
        self.scale = scale
        self.real = real
        self.ping_s = PING_S * scale
        self.ping_timeout_s = PING_S * MISSED * scale
        self.wake_ms = int(wake_s * 1000 * scale)
        self.listen_ms = max(1, int(listen_s * 1000 * scale))
        self.grace_ms = int(max(2000, wake_s * 1000 / 10) * scale)

    def gateway(self):
        s = self.scale
        if self.real:
            return {}  # the gateway's defaults are the agent's and the master's
        return {"grace_ms": self.grace_ms, "ping_timeout_ms": int(self.ping_timeout_s * 1000),
                "registration_backoff_ms": max(100, int(1000 * s)),
                "registration_backoff_max_ms": max(1000, int(60000 * s)),
                "status_update_retry_min_ms": max(200, int(10000 * s)),
                "status_update_retry_max_ms": max(1000, int(600000 * s)),
                # The link's timers follow the network, not the duty cycle: a loopback round trip is ~1 ms.
                "link_rto_ms": 100, "link_rto_max_ms": 800, "tick_ms": 20}

    def node(self):
        if self.real:
            return {}
        s = self.scale
        return {"link_rto_ms": 100, "link_rto_max_ms": 800,
                "status_update_retry_min": max(0.2, 10.0 * s), "status_update_retry_max": max(1.0, 600.0 * s)}


def free_udp_port():
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", type=int, default=2, metavar="N", help="sleeping nodes behind the gateway (1..32)")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until Ctrl-C)")
    ap.add_argument("--master", help="ip:port of a real mesos-master (default: start the stand-in master)")
    ap.add_argument("--advertise-ip", help="address the master reaches the gateway at (default: the route to "
                    "--master, or 127.0.0.1)")
    ap.add_argument("--scale", type=float, help="clock scale for the stand-in (default 1/15); 1 with --master")
    ap.add_argument("--wake-s", type=float, default=WAKE_S, help="a node wakes every this many (unscaled) "
                    "seconds (default %g)" % WAKE_S)
    ap.add_argument("--listen-s", type=float, default=LISTEN_S, help="and listens this long (default %g)"
                    % LISTEN_S)
    ap.add_argument("--task", default="hello", help="module launched on each node while it sleeps, or a .py "
                    "file put on every node first ('' for none)")
    ap.add_argument("--resources", help="what --task asks for (default %s; %s on the device models, whose "
                    "nodes offer ~6 KB of heap as mem)" % (launch.DEFAULT_RESOURCES, DEVICE_RESOURCES))
    ap.add_argument("--device", default="wheel", choices=mpy.DEVICES, help="the nodes' interpreter: the 64-bit "
                    "wheel or a 32-bit device model (make devmodel)")
    ap.add_argument("--node-heapsize", help="-X heapsize of each node (default: %s)" % ", ".join(
        "%s %s" % kv for kv in sorted(NODE_HEAPSIZE.items())))
    ap.add_argument("--gateway-heapsize", default="4m", help="-X heapsize of the gateway (default 4m)")
    for flag in ("loss", "dup", "reorder", "delay-ms"):
        ap.add_argument("--" + flag, type=float, help="overrides $LINK_%s" % flag.upper().replace("-", "_"))
    ap.add_argument("--seed", type=int, help="overrides $LINK_SEED")
    ap.add_argument("-v", "--frames", action="store_true", help="every link frame (linksim -v), not one line "
                    "per wake")
    ap.add_argument("--summary", help="write the summary as JSON here")
    ap.add_argument("--work", default=WORK, help="scratch directory, emptied first (default build/gwsim)")
    a = ap.parse_args(argv)
    if not 1 <= a.gateway <= 32:
        ap.error("--gateway: 1..32 nodes (bench_gateway.py runs 100)")
    if a.master:
        if a.scale not in (None, 1.0):
            ap.error("--scale: a real master keeps its own timeouts; nothing is scaled with --master")
        a.scale = 1.0
    elif a.scale is None:
        a.scale = STANDIN_SCALE
    if not 0.001 <= a.scale <= 1.0:
        ap.error("--scale: 0.001..1")
    if not a.resources:
        a.resources = launch.DEFAULT_RESOURCES if a.device == "wheel" else DEVICE_RESOURCES
    if a.listen_s >= a.wake_s:
        ap.error("--listen-s must be shorter than --wake-s")
    try:  # the LINK_* variables, checked here: a bad one is a usage error, not a traceback
        a.impair = linksim.Impair.from_env(loss=a.loss, dup=a.dup, reorder=a.reorder, delay_ms=a.delay_ms)
        a.link_seed = a.seed if a.seed is not None else int(os.environ.get("LINK_SEED") or 1)
    except ValueError as e:
        ap.error("link impairments (LINK_* variables): %s" % e)
    return a


async def run(a, out):
    real = bool(a.master)
    clocks = Clocks(a.scale, a.wake_s, a.listen_s, real)
    imp, seed = a.impair, a.link_seed
    tl = Timeline(out, a.frames, imp)
    work = a.work
    if os.path.isdir(work) and os.listdir(work) and not os.path.exists(os.path.join(work, ".gwsim")):
        raise SystemExit("gwsim: --work %s is not empty and not an earlier gwsim's: refusing to empty it" % work)
    shutil.rmtree(work, ignore_errors=True)  # fresh nodes and a fresh gateway checkpoint every run
    os.makedirs(work)
    open(os.path.join(work, ".gwsim"), "w").close()
    procs, relays = [], []
    m = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if real:
            master = a.master
            adv = a.advertise_ip or sim.route_ip(master)
            tl.say("sim", "gateway and %d nodes against the real master %s (its own timeouts); it must reach the "
                   "gateway at %s" % (a.gateway, master, adv))
        else:
            m = StandinMaster(ping_interval=clocks.ping_s, max_missed=MISSED, ping_timeout=clocks.ping_timeout_s,
                              on_event=tl.master_event)
            await m.start()
            tl.master = m
            master, adv = "127.0.0.1:%d" % m.port, a.advertise_ip or "127.0.0.1"
            tl.say("sim", "stand-in master (a loopback test fixture, not mesos-master) at master@%s: pings every "
                   "%.3g s, unreachable after %d missed (the real 15 s / 75 s x %.4g)" % (
                       master, clocks.ping_s, MISSED, a.scale))
        code = mpy.compile_tree(os.path.join(ROOT, "build", "gwsim-mpy"))  # boards run bytecode
        gport, lport = mpy.free_port(), free_udp_port()
        gcfg = {"master": master, "ip": "0.0.0.0" if real else "127.0.0.1", "port": gport, "advertise_ip": adv,
                "link_ip": "127.0.0.1", "link_port": lport, "checkpoint_dir": os.path.join(work, "gateway-state"),
                "log_level": "info"}
        gcfg.update(clocks.gateway())
        gpath = os.path.join(work, "gateway.json")
        with open(gpath, "w") as f:
            json.dump(gcfg, f)
        gw = mpy.popen_mpy(module="mgateway.gateway", args=[gpath], heapsize=a.gateway_heapsize, extra_path=(code,),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_parent)
        procs.append(gw)
        threading.Thread(target=pump, args=(gw, "gw", tl, tl.gateway_line), daemon=True).start()
        tl.say("sim", "gateway (MicroPython unix port, -X heapsize=%s): libprocess %s:%d, link udp 127.0.0.1:%d; "
               "node K's state: curl 'http://%s:%d/slave(K)/state'" % (a.gateway_heapsize, adv, gport, lport, adv,
                                                                      gport))
        tl.say("sim", "linksim per node: loss %.2f dup %.2f reorder %.2f (+%g ms) delay %g+%g ms corrupt %.2f, "
               "seeds %d.. (LINK_* variables)" % (imp.loss, imp.dup, imp.reorder, imp.reorder_ms, imp.delay_ms,
                                                  imp.jitter_ms, imp.corrupt, seed + 1))

        # The task's module on every node's flash (as `make task-upload` puts it).
        task_dir = os.path.join(work, "tasks")
        os.makedirs(task_dir)
        for t in sorted(os.listdir(os.path.join(ROOT, "tasks"))):
            if t.endswith(".py"):
                launch.put_module(os.path.join(ROOT, "tasks", t), task_dir)
        task = a.task
        if task.endswith(".py"):
            task, _ = launch.put_module(task, task_dir)
        device = a.device
        heap = a.node_heapsize or NODE_HEAPSIZE[device]
        extra = (code,) if device == "wheel" else (() if device == "frozen" else (os.path.join(ROOT, "boards",
                                                                                                "unix"),))
        # SLEEP goes up to 3 times on the link's timer (LINK.md §3.3): quiet this long after it, a node is asleep.
        tl.quiet_s = min(2.5 if real else 1.0, (clocks.wake_ms - clocks.listen_ms) / 3000.0)
        tl.say("sim", "%d nodes (firmware/node_main.py, %s, -X heapsize=%s): awake %d ms of every %d ms, grace %d ms"
               % (a.gateway, device, heap, clocks.listen_ms, clocks.wake_ms, clocks.grace_ms))
        for i in range(1, a.gateway + 1):
            n = NodeView(i, "n%d" % i)
            tl.nodes.append(n)
            relay = linksim.Relay(("127.0.0.1", 0), ("127.0.0.1", lport), imp, seed=seed + i, verbose=True,
                                  log=lambda line, n=n: tl.relay_line(n, line)).start()
            n.relay = relay
            relays.append(relay)
            fs = os.path.join(work, n.name)
            shutil.copytree(task_dir, os.path.join(fs, "tasks"))
            ncfg = {"gateway": "127.0.0.1:%d" % relay.port, "name": n.name, "ip": "127.0.0.1",
                    "wake_ms": clocks.wake_ms, "listen_ms": clocks.listen_ms, "fs": fs, "seed": i,
                    "log_level": "info"}
            ncfg.update(clocks.node())
            npath = os.path.join(work, n.name + ".json")
            with open(npath, "w") as f:
                json.dump(ncfg, f)
            p = mpy.popen_mpy(script=os.path.join(ROOT, "firmware", "node_main.py"), args=[npath], heapsize=heap,
                              device=device, extra_path=extra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, preexec_fn=die_with_parent)
            n.proc = p
            procs.append(p)
            threading.Thread(target=pump, args=(p, n.name, tl), daemon=True).start()
            if i < a.gateway:  # real nodes do not wake in step: spread their phases a little
                await asyncio.sleep(min(0.5, clocks.wake_ms / 1000.0 / a.gateway / 2))

        t_end = loop.time() + a.seconds if a.seconds else None
        real_launched = False
        while not stop.is_set() and (t_end is None or loop.time() < t_end):
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                tl.say("sim", "%s exited with status %d" % ("the gateway" if dead[0] is gw else "a node",
                                                            dead[0].returncode))
                break
            tl.settle()
            if task:
                for n in tl.nodes:
                    if n.launch_due is True and m is not None:
                        n.launch_due = None
                        try:
                            await m.launch(command=task, task_id="%s-%s" % (task, n.name), agent_id=n.agent_id,
                                           resources=a.resources)
                        except Exception as e:  # noqa: BLE001  the stand-in refused: shown, the sim goes on
                            tl.say("sim", "launch on %s refused: %s" % (n.name, e))
                if real and not real_launched and a.task.endswith(".py") and all(n.agent_id or n.pid
                                                                                 for n in tl.nodes):
                    real_launched = True  # mesos-execute picks a node itself; it is on every node's flash
                    threading.Thread(target=sim.start_task, args=(None, master, a.task, a.resources,
                                                                 os.path.join(work, "n1", "tasks"),
                                                                 lambda s: tl.say("launch", s)),
                                     daemon=True).start()
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except asyncio.TimeoutError:
                pass
    finally:
        for p in reversed(procs):
            kill_group(p, signal.SIGINT if p is not procs[0] else signal.SIGTERM)
        for r in relays:
            r.stop()
        if m is not None:
            await m.stop()
            m.log.close()
    return tl


def verdict(s, task):
    """Problems with a finished run (the exit status), [] if none."""
    bad = []
    for name, n in sorted(s["nodes"].items()):
        if not n["agent_id"]:
            bad.append("%s never registered" % name)
        if n["pings"] and n["pongs"] < n["pings"] - 2:
            bad.append("%s: %d pings, %d pongs" % (name, n["pings"], n["pongs"]))
        for tid, t in n["tasks"].items():
            if t["duplicates"]:
                bad.append("%s: %d duplicated updates" % (tid, t["duplicates"]))
            if not t["states"] or t["states"][-1] not in TERMINAL:
                bad.append("%s: no terminal state (%s)" % (tid, ",".join(t["states"]) or "no update"))
        if task and n["agent_id"] and not n["tasks"]:
            bad.append("%s: no task launched" % name)
    if s["problems"]:
        bad.append("%d master problems" % len(s["problems"]))
    if s["unreachable"]:
        bad.append("%d agents marked unreachable" % s["unreachable"])
    return bad


def main(argv=None):
    a = parse_args(argv)
    out = lambda s: print(s, flush=True)  # noqa: E731
    tl = asyncio.run(run(a, out))
    s = tl.summary()
    pings = "pings %d, pongs %d (%d while asleep)" if not a.master else "pings: the real master's, not seen here"
    for name, n in sorted(s["nodes"].items()):
        up, down = n["link"].get("up", {}), n["link"].get("down", {})
        tasks = "; ".join("%s %s%s" % (tid, ",".join(t["states"]), " (launched asleep)" if t["launched_asleep"]
                                       else "") for tid, t in n["tasks"].items())
        seen = pings % (n["pings"], n["pongs"], n["pongs_while_asleep"]) if not a.master else pings
        out("gwsim: %s agent %s: %d wakes (%.2f s awake), %s; link up %d frames %d B, down %d frames %d B; %s" % (
            name, n["agent_id"], n["wakes"], n["awake_s"], seen, up.get("in", 0), up.get("bytes_in", 0),
            down.get("in", 0), down.get("bytes_in", 0), tasks or "no task"))
    bad = verdict(s, a.task) if a.seconds and not a.master else []
    for p in s["problems"]:
        out("gwsim: master problem: " + p)
    out("gwsim: summary: %s" % ("ok" if not bad else "; ".join(bad)))
    if a.summary:
        with open(a.summary, "w") as f:
            json.dump(s, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
