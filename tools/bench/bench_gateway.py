# Gateway figures (issue 11 "Must show", `make bench`): bytes on a node's link and radio-on time per node per
# hour, a sleeping node through the gateway against a directly connected agent; the gateway's heap per node;
# 100 nodes through one gateway with every ping answered. MIT licence. Everything runs on 127.0.0.1: the
# stand-in master (CPython), the gateway (mgateway.gateway, MicroPython unix port), tools/linksim.py, real
# nodes (micromesos.node, MicroPython unix port). `python tools/bench/bench_gateway.py` prints the section.
import asyncio
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for _p in (os.path.join(ROOT, "tests"), os.path.join(ROOT, "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
import gwsim  # noqa: E402  (puts lib/ and the stand-in master on sys.path)
import linksim  # noqa: E402
import mpy  # noqa: E402
from standin_master import StandinMaster  # noqa: E402

CAPTURE = os.path.join(mpy.GOLDEN, "captured", "master-agent.jsonl")
WORK = os.path.join(ROOT, "build", "bench-gateway")
LINK_VARS = ("LINK_LOSS", "LINK_DUP", "LINK_REORDER", "LINK_REORDER_MS", "LINK_DELAY_MS", "LINK_JITTER_MS",
             "LINK_CORRUPT", "LINK_SEED")
UDP_IP = 28  # IPv4 + UDP headers per datagram (linksim counts payload only)
TCP_IP = 40  # IPv4 + TCP headers per segment, without options (a lower bound: Linux adds 12 B of timestamps)

# The gateway process with a heap probe: every PROBE_MS a collection, then one line "HEAP nodes alloc free".
# mgateway.gateway's own run() otherwise, unchanged.
GATEWAY = r"""
import asyncio, gc, sys
from mgateway import gateway

gw = gateway.Gateway(gateway.load(sys.argv[1]))
EVERY = int(sys.argv[2])


async def probe():
    while True:
        await asyncio.sleep_ms(EVERY)
        gc.collect()
        print("HEAP", len(gw.agents), gc.mem_alloc(), gc.mem_free())


async def main():
    asyncio.create_task(probe())
    await gw.run()


asyncio.run(main())
"""

# Several real nodes in one MicroPython process: micromesos.node.main() once per node config, each with its
# own transport (nodeinit.transport: a UDP socket), Link, task runner and flash directory (what
# firmware/node_main.py does for one).
NODES = r"""
import asyncio, json, sys
import board
from micromesos import node, nodecfg, nodeinit


async def main(spec):
    for raw in spec["nodes"]:
        cfg = nodecfg.check(raw)
        inv = board.inventory(cfg)
        totals = nodeinit.node_info(inv, cfg)  # NODE_INFO into the node's state dir, as nodeboot.boot does
        asyncio.create_task(node.main(cfg, inv, nodeinit.transport(cfg), totals))
        await asyncio.sleep_ms(spec["stagger_ms"])
    print("NODES", len(spec["nodes"]))
    while True:
        await asyncio.sleep(60)


with open(sys.argv[1]) as f:
    spec = json.load(f)
asyncio.run(main(spec))
"""


# --- a directly connected agent: the capture --------------------------------------------------------------

def direct_ping_bytes(path=CAPTURE):
    """Bytes on the agent's TCP connections per ping, from the real master/agent capture: the master's
    PingSlaveMessage request, the agent's 202 for it, the agent's PongSlaveMessage request, the master's 202
    for it (raw HTTP bytes, framing included). -> dict of means and the number of pings seen."""
    recs = [json.loads(line) for line in open(path)]
    ping, pong, ping202, pong202 = [], [], [], []
    for i, r in enumerate(recs):
        if r["kind"] != "request":
            continue
        name = r["path"].rpartition(".")[2]
        if name not in ("PingSlaveMessage", "PongSlaveMessage"):
            continue
        (ping if name == "PingSlaveMessage" else pong).append(len(base64.b64decode(r["raw_b64"])))
        # Its 202: the next response from the receiver on the same connection.
        for q in recs[i + 1:]:
            if q["kind"] == "response" and q["conn"] == r["conn"] and q["src"] == r["dst"]:
                (ping202 if name == "PingSlaveMessage" else pong202).append(len(base64.b64decode(q["raw_b64"])))
                break
    if not ping or not pong:
        raise RuntimeError("%s: no ping/pong in the capture" % path)
    m = {k: statistics.mean(v) for k, v in (("ping", ping), ("pong", pong), ("ping_202", ping202),
                                             ("pong_202", pong202))}
    m["n"] = len(ping)
    m["total"] = m["ping"] + m["pong"] + m["ping_202"] + m["pong_202"]
    return m


# --- link bytes and radio-on time: gwsim with two nodes -------------------------------------------------

def link_run(seconds, scale, wake_s, listen_s):
    """gwsim (2 nodes, no impairment, one hello task each launched while asleep) -> its summary."""
    for v in LINK_VARS:
        os.environ.pop(v, None)
    a = gwsim.parse_args(["--gateway", "2", "--seconds", str(seconds), "--scale", repr(scale), "--wake-s",
                          repr(wake_s), "--listen-s", repr(listen_s), "--task", "hello",
                          "--work", os.path.join(WORK, "gwsim")])
    lines = []
    tl = asyncio.run(gwsim.run(a, lines.append))
    s = tl.summary()
    s["lines"] = lines
    return s


def wake_classes(summary):
    """The wakes of every node split into: first (HELLO, NODE_INFO, registration), task (a wake that carried a
    RunTask and its updates: more than the idle exchange), idle (WAKE, ACK, SLEEP, ACK and nothing else)."""
    first, task, idle = [], [], []
    for n in summary["nodes"].values():
        for i, c in enumerate(n["cycles"]):
            if i == 0:
                first.append(c)
            elif c["up"] == 2 and c["down"] == 2:
                idle.append(c)
            else:
                task.append(c)
    return first, task, idle


# --- the gateway's heap and 100 nodes -------------------------------------------------------------------

class Proc:
    """A MicroPython process in its own process group; output lines kept with their arrival time."""

    def __init__(self, name, popen):
        self.name = name
        self.p = popen
        self.lines = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in iter(self.p.stdout.readline, ""):
            self.lines.append((time.time(), line.rstrip("\n")))

    def stop(self):
        gwsim.kill_group(self.p)

    def cpu_s(self):
        """User + system CPU seconds the process used so far (/proc)."""
        try:
            with open("/proc/%d/stat" % self.p.pid) as f:
                fields = f.read().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None


def start_mpy(name, code, args, heapsize, extra):
    path = os.path.join(WORK, name + ".py")
    with open(path, "w") as f:
        f.write(code)
    p = mpy.popen_mpy(script=path, args=args, heapsize=heapsize, extra_path=extra, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT, text=True, preexec_fn=gwsim.die_with_parent)
    return Proc(name, p)


def heaps(gw, since, until=None):
    """(nodes, alloc) of the gateway's HEAP lines between two times."""
    out = []
    for t, line in list(gw.lines):
        if line.startswith("HEAP ") and t >= since and (until is None or t <= until):
            _, n, alloc, _free = line.split()
            out.append((int(n), int(alloc)))
    return out


async def until(pred, timeout, what, *procs):
    t_end = time.time() + timeout
    while time.time() < t_end:
        if pred():
            return
        await asyncio.sleep(0.2)
    tail = "\n".join("--- %s ---\n%s" % (p.name, "\n".join(ln for _, ln in p.lines[-30:])) for p in procs)
    raise RuntimeError("%s: not within %d s\n%s" % (what, timeout, tail))


async def many_nodes(batches, scale, wake_s, listen_s, hold_s, probe_ms=500):
    """One gateway; nodes attached in batches (each batch one MicroPython process); after each batch has
    registered and slept a whole wake period, the gateway's heap (median of its probes over the next wake
    period). Then hold_s with every node attached: pings and pongs per agent, CPU used.
    -> dict with heap rows, ping counts, cpu."""
    clocks = gwsim.Clocks(scale, wake_s, listen_s, False)
    res = {"clocks": clocks, "heap": [], "batches": batches}
    procs = []
    m = StandinMaster(ping_interval=clocks.ping_s, max_missed=gwsim.MISSED, ping_timeout=clocks.ping_timeout_s)
    await m.start()
    relay = None
    try:
        code = mpy.compile_tree(os.path.join(ROOT, "build", "gwsim-mpy"))
        lport = gwsim.free_udp_port()
        total = sum(batches)
        gcfg = {"master": "127.0.0.1:%d" % m.port, "ip": "127.0.0.1", "port": mpy.free_port(),
                "link_ip": "127.0.0.1", "link_port": lport, "checkpoint_dir": os.path.join(WORK, "gateway-state"),
                "log_level": "warn", "max_nodes": max(128, total)}
        gcfg.update(clocks.gateway())
        gpath = os.path.join(WORK, "gateway.json")
        with open(gpath, "w") as f:
            json.dump(gcfg, f)
        gw = start_mpy("gateway", GATEWAY, [gpath, str(probe_ms)], "16m", (code,))
        procs.append(gw)
        kinds = {}  # link frame type -> count, nodes to gateway (linksim -v's lines)

        def count(line):
            if " up " in line:
                t = int(line.rpartition(" type ")[2].partition(":")[0])
                kinds[t] = kinds.get(t, 0) + 1
        relay = linksim.Relay(("127.0.0.1", 0), ("127.0.0.1", lport), linksim.Impair(), seed=1, verbose=True,
                              log=count).start()
        await until(lambda: len(heaps(gw, 0)) >= 3, 30, "the gateway's heap probe", gw)
        t0 = time.time()
        await asyncio.sleep(clocks.wake_ms / 1000.0)
        res["heap"].append((0, _median(heaps(gw, t0), 0)))
        n = 0
        for b, count in enumerate(batches):
            names = ["b%dn%d" % (b, i) for i in range(count)]
            cfgs = []
            for name in names:
                fs = os.path.join(WORK, "fs", name)
                os.makedirs(fs)
                c = {"gateway": "127.0.0.1:%d" % relay.port, "name": name, "ip": "127.0.0.1",
                     "wake_ms": clocks.wake_ms, "listen_ms": clocks.listen_ms, "fs": fs, "log_level": "warn",
                     "seed": 1 + n + len(cfgs)}
                c.update(clocks.node())
                cfgs.append(c)
            spath = os.path.join(WORK, "nodes%d.json" % b)
            with open(spath, "w") as f:
                json.dump({"nodes": cfgs, "stagger_ms": max(1, clocks.wake_ms // max(1, count))}, f)
            procs.append(start_mpy("%d node%s" % (count, "s" if count > 1 else ""), NODES, [spath],
                                   "%dk" % (256 + 96 * count), (code,)))
            n += count
            await until(lambda: _registered(m) >= n, 60 + clocks.wake_ms / 1000.0 * 2, "%d nodes registered" % n,
                        *procs)
            await asyncio.sleep(clocks.wake_ms / 1000.0)  # each node has taken its AGENT and slept
            t0 = time.time()
            await asyncio.sleep(clocks.wake_ms / 1000.0)
            h = _median(heaps(gw, t0), n)
            res["heap"].append((n, h))
        # Every node attached: the master's pings over hold_s.
        mk = m.mark()
        cpu0 = [(p.name, p.cpu_s()) for p in procs]
        self0 = _self_cpu()
        k0 = dict(kinds)
        t0 = time.time()
        await asyncio.sleep(hold_s)
        res["hold_s"] = time.time() - t0
        res["cpu"] = {name: (p.cpu_s() - c) / res["hold_s"] for (name, c), p in zip(cpu0, procs)
                      if c is not None and p.cpu_s() is not None}
        res["cpu"]["stand-in master + linksim (CPython)"] = (_self_cpu() - self0) / res["hold_s"]
        res["wake_frames"] = kinds.get(5, 0) - k0.get(5, 0)
        res["sleep_frames"] = kinds.get(6, 0) - k0.get(6, 0)
        pings, pongs = {}, {}
        for e in m.find("PingSlaveMessage", since=mk, kind="send"):
            pings[e.dst] = pings.get(e.dst, 0) + 1
        for e in m.find("PongSlaveMessage", since=mk, kind="recv"):
            pongs[e.src] = pongs.get(e.src, 0) + 1
        res["agents"] = _registered(m)
        res["pings"] = sum(pings.values())
        res["pongs"] = sum(pongs.get(p, 0) for p in pings)
        # A ping sent in the last moments may have its pong in flight: at most one per agent.
        res["unanswered_max"] = max((pings[p] - pongs.get(p, 0) for p in pings), default=0)
        res["unreachable"] = len(m.find(lambda e: "unreachable" in (e.reason or "") or
                                        "disconnected" in (e.reason or "")))
        res["problems"] = len(m.problems())
        res["link"] = relay.stats
    finally:
        for p in reversed(procs):
            p.stop()
        if relay is not None:
            relay.stop()
        await m.stop()
        m.log.close()
    return res


def _self_cpu():
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _registered(m):
    return sum(1 for a in m.agents.values() if a.state == "registered")


def _median(rows, n):
    vals = [a for k, a in rows if k == n]
    if not vals:
        raise RuntimeError("no heap probe with %d nodes attached" % n)
    return int(statistics.median(vals))


# --- the section -----------------------------------------------------------------------------------------

def run():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    out = ["## Gateway (issue 11): sleeping nodes through one gateway", ""]
    d = direct_ping_bytes()
    per_h_direct = d["total"] * 3600 / 15
    out += ["Printed by `tools/bench/bench_gateway.py`. A directly connected agent, from the real master/agent "
            "capture (`golden/captured/master-agent.jsonl`, %d pings): per 15 s ping the master's "
            "PingSlaveMessage request %d B, the agent's 202 %d B, its PongSlaveMessage request %d B, the master's "
            "202 %d B: **%d B of HTTP per ping** (TCP/IP headers not counted: at least %d B more for 4 segments), "
            "%d B per hour, with the radio on all the time (a ping may come at any moment)."
            % (d["n"], d["ping"], d["ping_202"], d["pong"], d["pong_202"], d["total"], 4 * TCP_IP, per_h_direct),
            ""]

    # Link bytes and radio-on time: W = 2 s, A = 200 ms (the node's default listen_ms), measured per wake.
    scale, wake_s, listen_s, secs = 1.0 / 30, 60.0, 6.0, 30
    s = link_run(secs, scale, wake_s, listen_s)
    first, task, idle = wake_classes(s)
    A = int(listen_s * 1000 * scale)
    W = int(wake_s * 1000 * scale)
    ok = not gwsim.verdict(s, "hello")

    def per(cs, k):
        return statistics.mean(c[k] for c in cs) if cs else float("nan")

    def frames(cs):
        return per(cs, "up") + per(cs, "down")

    def nbytes(cs):
        return per(cs, "up_bytes") + per(cs, "down_bytes")

    out += ["A sleeping node through the gateway: `gwsim.py --gateway 2` with W = %d ms, A = %d ms (the node's "
            "default listen_ms), the stand-in master pinging every %.2f s, no impairment, %d s: %d wakes measured "
            "at linksim (bytes are link frames, UDP/IP headers +%d B per frame shown apart; awake = the node's "
            "WAKE to the last frame of that wake). Run verdict: %s." % (
                W, A, gwsim.PING_S * scale, secs,
                len(first) + len(task) + len(idle), UDP_IP, "ok" if ok else "; ".join(gwsim.verdict(s, "hello"))),
            "",
            "| wake | count | frames (up+down) | link bytes | + UDP/IP | awake ms (mean) | awake ms (max) |",
            "|------|------:|-----------------:|-----------:|---------:|----------------:|---------------:|"]
    for label, cs in (("first (HELLO, NODE_INFO, registration, AGENT)", first),
                      ("with a launch (RunTask, 4 updates, their acks, a framework message)", task),
                      ("idle (WAKE, ACK, SLEEP, ACK)", idle)):
        if cs:
            out.append("| %s | %d | %.1f | %.0f | %.0f | %.0f | %.0f |" % (
                label, len(cs), frames(cs), nbytes(cs), nbytes(cs) + UDP_IP * frames(cs), per(cs, "awake_ms"),
                max(c["awake_ms"] for c in cs)))
    cyc = sum(c["up_bytes"] + c["down_bytes"] for c in first + task + idle)
    tot = sum(n["link"]["up"]["bytes_in"] + n["link"]["down"]["bytes_in"] for n in s["nodes"].values())
    out += ["", "linksim's own stats (`Relay.stats`, as `--stats` writes them) for the whole run: %d B on the two "
            "nodes' links, %d B of it in the wakes above (the rest: a wake still open at the end)." % (tot, cyc)]
    pongs = sum(n["pongs"] for n in s["nodes"].values())
    pings = sum(n["pings"] for n in s["nodes"].values())
    asleep = sum(n["pongs_while_asleep"] for n in s["nodes"].values())
    out += ["", "Pings in that run: %d sent by the master, %d answered by the gateway, %d of them while the node "
            "slept; none reached a node." % (pings, pongs, asleep), ""]
    if idle:
        ib, iu, ia = nbytes(idle), nbytes(idle) + UDP_IP * frames(idle), per(idle, "awake_ms")
        over = ia - A
        out += ["Per node per hour (idle wakes as measured; wakes per hour = 3600 / W):", "",
                "| node | link bytes / h | with UDP/IP / h | radio on / h |",
                "|------|---------------:|----------------:|-------------:|",
                "| directly connected agent (capture) | %d (HTTP) | > %d (with TCP/IP) | 3600 s (always) |"
                % (per_h_direct, per_h_direct + 4 * TCP_IP * 240)]
        for w_s, a_ms in ((60, A), (60, 5000), (120, 5000)):
            wakes = 3600 / w_s
            out.append("| node, W = %d s, A = %g s (awake %.0f ms past A per wake, measured) | %d | %d | %.1f s |"
                       % (w_s, a_ms / 1000.0, over, wakes * ib, wakes * iu, wakes * (a_ms + over) / 1000.0))
        if task:
            more_s = (per(task, "awake_ms") - ia) / 1000.0
            out.append("| a launch (hello: RunTask, 4 updates, acks), each | +%d | +%d | %+.2f s |"
                       % (nbytes(task) - ib, nbytes(task) - ib + UDP_IP * (frames(task) - frames(idle)),
                          more_s if abs(more_s) >= 0.005 else 0.0))
        out += ["", "The bytes of an idle wake do not depend on W or A; its radio-on time is A plus the %.0f ms "
                "measured past A (the A = 5 s rows add that to 5 s; only A = 0.2 s was run). A directly "
                "connected agent cannot sleep at all: a ping may come at any moment (not a measurement)." % over,
                ""]

    # The gateway's heap per node and 100 nodes.
    batches = [1, 9, 90]
    mscale, mwake, mlisten, hold = 1.0 / 15, 120.0, 5.0, 60.0
    r = asyncio.run(many_nodes(batches, mscale, mwake, mlisten, hold))
    c = r["clocks"]
    rows = r["heap"]
    out += ["The gateway's heap per node: `gc.mem_alloc()` after `gc.collect()` inside the gateway process "
            "(mgateway.gateway on the 64-bit unix port, median of its probes over one wake period), with nodes "
            "attached, registered and sleeping (W = %d ms, A = %d ms; nodes in one MicroPython process per batch "
            "of %s, each node its own micromesos.node with its own UDP socket, Link and task runner):"
            % (c.wake_ms, c.listen_ms, "/".join(str(b) for b in batches)), "",
            "| nodes | gateway heap in use | per node (vs no node) | per node (vs the previous row) |",
            "|------:|--------------------:|----------------------:|-------------------------------:|"]
    base = rows[0][1]
    prev = rows[0]
    for nn, h in rows:
        if nn == 0:
            out.append("| 0 | %d B | | |" % h)
        else:
            out.append("| %d | %d B | %d B | %d B |" % (nn, h, (h - base) / nn, (h - prev[1]) / (nn - prev[0])))
        prev = (nn, h)
    cpu = r["cpu"]
    out += ["", "%d nodes through one gateway for %.0f s (the master pinging every %.0f s, its 15 s x %.3g; nodes "
            "awake %d ms of every %d ms): %d agents registered, %d pings sent, %d pongs received (at most %d "
            "unanswered per agent at the end: in flight), %d agents disconnected or unreachable, %d master "
            "problems; the nodes said WAKE %d times and SLEEP %d times (%.1f wakes per node, %.1f expected). CPU "
            "over that time (of one core): %s."
            % (sum(batches), r["hold_s"], c.ping_s, c.scale, c.listen_ms, c.wake_ms, r["agents"], r["pings"],
               r["pongs"], r["unanswered_max"], r["unreachable"], r["problems"], r["wake_frames"],
               r["sleep_frames"], r["wake_frames"] / float(sum(batches)), r["hold_s"] * 1000.0 / c.wake_ms,
               ", ".join("%s process %.1f %%" % (k, v * 100) for k, v in cpu.items())), ""]
    out += bridge()
    shutil.rmtree(WORK, ignore_errors=True)
    return "\n".join(out)


def bridge(counts=(1, 8)):
    """The ESP32 bridge's heap (docs/GATEWAY.md §10) on the 32-bit device model of its firmware (the gateway
    frozen in) with its settings (ESP-NOW frames, window 2, 2 KB messages): tools/gateway_heap.py."""
    rows = []
    for n in counts:
        r = mpy.run_mpy(script=os.path.join(mpy.ROOT, "tools", "gateway_heap.py"),
                        args=[str(n), "2048", "", "250", "2"], heapsize="256k", device=mpy.BRIDGE, timeout=120).check()
        mods = int(r.out.split("modules: ")[1].split()[0])
        nums = r.out.split("nodes %d: heap " % n)[1].split()
        rows.append((n, mods, int(nums[0]), int(nums[3]), int(nums[6])))
    r = mpy.run_mpy("import gc\ngc.collect()\nm0 = gc.mem_alloc()\nimport mgateway.gateway, micromesos.linkhello\n"
                    "gc.collect()\nprint(gc.mem_alloc() - m0)\n", heapsize="512k", device="loaded", timeout=60).check()
    loaded = int(r.out.split()[-1])
    out = ["ESP32 bridge (`make firmware BOARD=esp32 ROLE=bridge`: the gateway frozen in; firmware/gateway_main.py) on "
           "its 32-bit device model (`tools/devmodel.py bridge`), `tools/gateway_heap.py N 2048 \"\" 250 2` (link_mtu "
           "250, link_window 2, link_max_message 2048; nothing connected to a master):", "",
           "| nodes | modules' objects | heap in use with the gateway made | with the nodes attached | per node |",
           "|------:|-----------------:|---------------------------------:|------------------------:|---------:|"]
    for n, mods, before, after, per in rows:
        out.append("| %d | %d B | %d B | %d B | %d B |" % (n, mods, before, after, per))
    return out + ["", "The same imports from .mpy files on the loaded device model (stock firmware: code read into RAM): "
                  "%d B of heap, which is why the bridge is a frozen build." % loaded, "",
                  "tests/test_gateway_bridge.py holds it to serving 6 ESP-NOW nodes (real node firmware on the "
                  "frozen device model, the fake espnow module over loopback) to the stand-in master in -X heapsize=96k.",
                  ""]


if __name__ == "__main__":
    print(run())
