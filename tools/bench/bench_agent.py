#!/usr/bin/env python3
# Agent figures for `make bench`: heap after registration, smallest heap that stays registered, start ->
# registered, bytes per ping/pong, and N virtual boards against one master. MIT licence.
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for p in (os.path.join(ROOT, "tests"), os.path.join(ROOT, "tools", "hostcompat"), os.path.join(ROOT, "tools"),
          os.path.join(ROOT, "lib")):
    if p not in sys.path:
        sys.path.insert(0, p)

import mpy  # noqa: E402
from standin import StandinMaster  # noqa: E402
from vboard_proc import Board, CountingProxy, free_port  # noqa: E402

PROBE = os.path.join(HERE, "agent_probe.py")
CODE = mpy.compile_tree(os.path.join(ROOT, "build", "bench-mpy"))
SCALE_BOARDS = int(os.environ.get("SCALE_BOARDS", "50"))
SCALE_SECONDS = float(os.environ.get("SCALE_SECONDS", "120"))


def board_cfg(master_port, fs, **kw):
    cfg = {"master": "127.0.0.1:%d" % master_port, "ip": "127.0.0.1", "port": free_port(),
           "advertise_ip": "127.0.0.1", "fs": fs, "seed": 1, "log_level": "warn"}
    cfg.update(kw)
    return cfg


def probe_path(device="wheel"):
    """MICROPYPATH of the probe: the agent's .mpy tree (the wheel, the loaded model) or nothing but .frozen
    (the frozen model). Never lib/ sources or tests/fakes: a fake `machine` compiled from source would
    count as the agent's data."""
    if device == "wheel":
        return ".frozen:" + CODE
    return mpy.micropypath(device=device, cwd=mpy.ROOT)  # every probe process starts in ROOT


async def probe(master_port, heapsize, hold_s, device="wheel", **kw):
    """Run agent_probe.py; -> (dict of the PROBE fields, wall ms from spawn to registered) or None."""
    fs = tempfile.mkdtemp(prefix="bench-board-")
    cfg = board_cfg(master_port, fs, **kw)
    t = time.monotonic()
    p = mpy.popen_mpy(script=PROBE, args=[json.dumps(cfg), str(hold_s)], heapsize=heapsize, device=device,
                      env={"MICROPYPATH": probe_path(device)}, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT)
    fields, wall = {}, None
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await asyncio.wait_for(loop.run_in_executor(None, p.stdout.readline), hold_s + 20)
            if not line:
                break
            line = line.decode(errors="replace")
            if line.startswith("PROBE "):
                if wall is None:
                    wall = (time.monotonic() - t) * 1000
                for kv in line.split()[1:]:
                    k, _, v = kv.partition("=")
                    fields.setdefault(k, []).append(v)
    except asyncio.TimeoutError:
        pass
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
    return (fields, wall) if wall is not None else (None, None)


def ok(fields):
    return bool(fields) and fields.get("state") == ["RUNNING"] and int(fields.get("pings", ["0"])[0]) > 0 \
        and fields.get("disconnects") == ["0"]


async def heap_and_start():
    rows = []
    async with StandinMaster(ping_interval=0.25) as m:
        f, wall = await probe(m.port, mpy.BOARD_HEAPSIZE, 5)
        if f:
            rows.append(("bytecode and module data of the agent, loaded from .mpy (in flash on a frozen build)",
                         "%.1f KB" % (int(f["code"][0]) / 1024)))
            rows.append(("data heap after registration (gc.mem_alloc() after gc.collect(), less code)",
                         "%.1f KB" % (int(f["data"][0]) / 1024)))
            rows.append(("data heap after 5 s of pings every 250 ms (%s pings answered)" % f["pings"][0],
                         "%.1f KB" % (int(f["data"][1]) / 1024)))
        for b, label in ((0.0, "no initial wait (registration_backoff_factor 0)"),
                         (1.0, "default backoff: first send after uniform [0, 1 s], as the real agent")):
            walls, inside = [], []
            for _ in range(11):
                f, wall = await probe(m.port, mpy.BOARD_HEAPSIZE, 0, registration_backoff_factor=b)
                if f:
                    walls.append(wall)
                    inside.append(int(f["registered_ms"][0]))
            if walls:
                rows.append(("process start -> registered, %s: median of %d" % (label, len(walls)),
                             "%.0f ms (in-board %d ms)" % (statistics.median(walls), statistics.median(inside))))
    return rows


async def smallest_heap():
    lo, hi = 64, 512  # KB; hi must pass
    tried = []
    async with StandinMaster(ping_interval=0.3) as m:
        while hi - lo > 8:
            mid = (lo + hi) // 2 // 8 * 8
            f, _ = await probe(m.port, "%dk" % mid, 3)
            good = ok(f)
            tried.append("%dk %s" % (mid, "ok" if good else "fails"))
            if good:
                hi = mid
            else:
                lo = mid
    return hi, tried


async def ping_bytes(tmp):
    m = StandinMaster(ping_interval=0.2)
    await m.start()
    to_master = await CountingProxy(m.port).start()   # board -> master: pongs (+ their 202s back)
    m.advertise_port = to_master.port  # so the board's replies to master@ and slave-observer(N)@ cross it too
    try:
        agent_port = free_port()
        to_board = await CountingProxy(agent_port).start()  # master -> board: pings (+ the board's 202s)
        b = Board(os.path.join(tmp, "wire"), to_master.port, port=agent_port, advertise_port=to_board.port,
                  log_level="warn").start()
        try:
            await m.wait_for("SlaveReregisteredMessage", timeout=20, kind="send")
            await asyncio.sleep(0.5)
            c0 = (to_master.up, to_master.down, to_board.up, to_board.down)
            n0 = len(m.find("PongSlaveMessage", kind="recv"))
            await asyncio.sleep(4)
            c1 = (to_master.up, to_master.down, to_board.up, to_board.down)
            n = len(m.find("PongSlaveMessage", kind="recv")) - n0
        finally:
            b.stop()
    finally:
        await m.stop()
    d = [b1 - a1 for a1, b1 in zip(c0, c1)]
    return n, d


async def scale(tmp):
    boards = []
    async with StandinMaster(ping_interval=1.0) as m:
        for i in range(SCALE_BOARDS):
            boards.append(Board(os.path.join(tmp, "scale%d" % i), m.port, log_level="warn",
                                registration_backoff_factor=1.0).start())
        t = time.time()
        while time.time() - t < 60 and len([a for a in m.agents.values() if a.connected]) < SCALE_BOARDS:
            await asyncio.sleep(0.5)
        reg_s = time.time() - t
        registered = len([a for a in m.agents.values() if a.connected])
        mk = m.mark()
        await asyncio.sleep(SCALE_SECONDS)
        evs = m.events[mk:]
        pings, pongs = {}, {}
        for e in evs:
            if e.name == "PingSlaveMessage" and e.kind == "send":
                pings[e.dst] = pings.get(e.dst, 0) + 1
            elif e.name == "PongSlaveMessage" and e.kind == "recv":
                pongs[e.src] = pongs.get(e.src, 0) + 1
        # a ping sent in the last second may still be on its way: allow one per agent
        unanswered = sum(max(0, pings[p] - pongs.get(p, 0) - 1) for p in pings)
        rss = 0
        for b in boards:
            try:
                with open("/proc/%d/status" % b.proc.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss += int(line.split()[1])
            except OSError:
                pass
        alive = sum(b.alive() for b in boards)
        for b in boards:
            b.stop()
        return registered, reg_s, sum(pings.values()), unanswered, rss, alive, len(m.problems())


def run():
    tmp = tempfile.mkdtemp(prefix="bench-agent-")
    out = ["## Agent (issue: lifecycle)", "",
           "Virtual boards are the unix port running the agent from precompiled .mpy (tools/bench/bench_agent.py), "
           "against the stand-in master on loopback.", "", "| measure | value |", "|---|---|"]
    for k, v in asyncio.run(heap_and_start()):
        out.append("| %s | %s |" % (k, v))
    hi, tried = asyncio.run(smallest_heap())
    out.append("| smallest -X heapsize that registers and stays registered 3 s (8 KB steps: %s) | %d KB |"
               % (", ".join(tried), hi))
    n, d = asyncio.run(ping_bytes(tmp))
    if n:
        out.append("| bytes on the wire per ping/pong exchange (%d exchanges, measured by TCP proxies): ping %d + "
                   "board's 202 %d + pong %d + master's 202 %d | %d B |"
                   % (n, d[2] / n, d[3] / n, d[0] / n, d[1] / n, sum(d) / n))
    reg, reg_s, pings, unanswered, rss, alive, probs = asyncio.run(scale(tmp))
    out += ["", "### %d virtual boards against one stand-in master (ping every 1 s, %d s)" % (SCALE_BOARDS, SCALE_SECONDS),
            "", "| measure | value |", "|---|---|",
            "| registered | %d of %d (all within %.1f s) |" % (reg, SCALE_BOARDS, reg_s),
            "| pings sent / unanswered | %d / %d |" % (pings, unanswered),
            "| boards alive at the end | %d |" % alive,
            "| total RSS of the board processes (each is CPython hosting the unix port with a %s heap) | %.0f MB |"
            % (mpy.BOARD_HEAPSIZE, rss / 1024),
            "| messages the real master would have dropped | %d |" % probs]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run())
