#!/usr/bin/env python3
# HTTP endpoint figures for `make bench`: heap while serving /state with 5 running tasks (measured inside the
# board), and a burst of 1,000 sequential requests against a registered agent. MIT licence. run() -> markdown.
import asyncio
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for _p in (os.path.join(ROOT, "tests"), os.path.join(ROOT, "tools", "hostcompat"), os.path.join(ROOT, "tools"),
           os.path.join(ROOT, "lib")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import mpy  # noqa: E402
from standin import StandinMaster  # noqa: E402
from vboard_proc import free_port  # noqa: E402

HEAP = "320k"  # as tests/test_endpoints.py: the 64-bit unix board holds the agent's bytecode in its heap
TASKS = 5
BURST = int(os.environ.get("BURST", "1000"))
PING = 0.1  # seconds between the stand-in master's pings: the burst must not delay the pongs
SLEEPER = "import asyncio\n\nasync def main(ctx):\n    while True:\n        await asyncio.sleep(1)\n"

# The board as firmware/main.py runs it (agent.main installs the endpoints), with probes around every
# streamed response (jsonw.respond) and at every chunk (jsonw.Writer.flush). Modes, set by GET /__mode?m=:
#   live  - gc.collect() at each chunk: the live heap while the response is produced (its working set)
#   alloc - gc disabled for the response: every byte allocated to produce it (garbage included)
#   heap  - answers the live heap after gc.collect() (before/after the burst)
PROBE = r'''
import gc, json, sys, time
import asyncio
import board
from micromesos import agent, config, endpoints, log

MODE = ["off"]
PEAK = [0]

def flush(self):
    if MODE[0] == "live":
        gc.collect()
        a = gc.mem_alloc()
        if a > PEAK[0]:
            PEAK[0] = a
    FLUSH[0](self)


async def respond(out, w, status, ctype, produce, keep, head, chunked_ok, timeout_ms):
    mode = MODE[0]
    if mode == "off":
        return await RESPOND[0](out, w, status, ctype, produce, keep, head, chunked_ok, timeout_ms)
    gc.collect()
    base = gc.mem_alloc()
    PEAK[0] = base
    if mode == "alloc":
        gc.disable()
    t0 = time.ticks_us()
    try:
        keep = await RESPOND[0](out, w, status, ctype, produce, keep, head, chunked_ok, timeout_ms)
    finally:
        a1 = gc.mem_alloc()
        gc.enable()
    us = time.ticks_diff(time.ticks_us(), t0)
    if mode == "live":
        gc.collect()
        a1 = gc.mem_alloc()
        if a1 > PEAK[0]:
            PEAK[0] = a1
    print("PROBE mode=%s bytes=%d base=%d peak=%d alloc=%d us=%d" % (mode, out.count, base, PEAK[0], a1 - base, us))
    return keep

FLUSH = [None]
RESPOND = [None]


def probed():
    # endpoints drops jsonw after every view response and the next one imports it afresh: probe each copy.
    from micromesos import jsonw
    if jsonw.respond is not respond:
        FLUSH[0] = jsonw.Writer.flush
        RESPOND[0] = jsonw.respond
        jsonw.Writer.flush = flush
        jsonw.respond = respond
_route = endpoints.Endpoints.route

def _jsonw_size():
    # The listener imports jsonw (the response code) before the route runs: its size, as a request
    # imports it again (its names interned already), is added to what the route imports.
    import micromesos
    for _ in range(2):
        sys.modules.pop("micromesos.jsonw", None)
        if hasattr(micromesos, "jsonw"):
            delattr(micromesos, "jsonw")
        gc.collect()
        a = gc.mem_alloc()
        __import__("micromesos.jsonw")
        gc.collect()
        n = gc.mem_alloc() - a
    sys.modules.pop("micromesos.jsonw", None)
    delattr(micromesos, "jsonw")
    gc.collect()
    return n


JSONW = [0]


def route(self, req):
    if req.path == "/__mode":
        from micromesos.query import arg
        m = arg(req.query, "m")
        gc.collect()
        MODE[0] = "off" if m == "heap" else m
        return 200, "application/json", json.dumps({"alloc": gc.mem_alloc(), "free": gc.mem_free()})
    n = len(sys.modules)
    j = JSONW[0] if "micromesos.jsonw" in sys.modules else 0  # imported by the listener for this request
    gc.collect()
    a0 = gc.mem_alloc()
    r = _route(self, req)
    if len(sys.modules) != n:  # a streamed view response holds its view until it has been sent
        gc.collect()
        print("PROBE views=%d" % (gc.mem_alloc() - a0 + j))
    if callable(r[2]):
        probed()
    return r

endpoints.Endpoints.route = route
_install = endpoints.install

def install(a):
    ep = _install(a)
    a.lp.route("/__mode", ep.route)
    return ep

endpoints.install = install
cfg = config.check(json.load(open(sys.argv[1])))
log.set_level(cfg["log_level"])
inv = board.inventory(cfg)
JSONW[0] = _jsonw_size()
gc.collect()
print("PROBE heap=%d" % (gc.mem_alloc() + gc.mem_free()))
asyncio.run(agent.main(cfg, inv))
'''


class Probe:
    """The probe board as a process; PROBE lines are collected by a thread."""

    def __init__(self, tmp, master_port):
        self.fs = os.path.join(tmp, "fs")
        os.makedirs(os.path.join(self.fs, "tasks"))
        with open(os.path.join(self.fs, "tasks", "sleeper.py"), "w") as f:
            f.write(SLEEPER)
        self.port = free_port()
        cfg = {"master": "127.0.0.1:%d" % master_port, "ip": "127.0.0.1", "port": self.port,
               "advertise_ip": "127.0.0.1", "fs": self.fs, "seed": 1, "log_level": "warn",
               "registration_backoff_factor": 0.05}
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        script = os.path.join(tmp, "probe.py")
        with open(script, "w") as f:
            f.write(PROBE)
        code = mpy.compile_tree(os.path.join(ROOT, "build", "bench-mpy"))
        self.proc = mpy.popen_mpy(script=script, args=[cfg_path], heapsize=HEAP, extra_path=(code,),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.probes = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in iter(self.proc.stdout.readline, ""):
            line = line.rstrip("\n")
            self.lines.append(line)
            if line.startswith("PROBE "):
                self.probes.append(dict(kv.split("=", 1) for kv in line.split()[1:]))

    def take(self, key, n=1, timeout=10):
        t = time.time() + timeout
        while time.time() < t:
            got = [p for p in self.probes if key in p]
            if len(got) >= n:
                for p in got[:n]:
                    self.probes.remove(p)
                return got[:n]
            time.sleep(0.01)
        raise RuntimeError("no PROBE %s; board output:\n%s" % (key, "\n".join(self.lines[-30:])))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError("%s: %d %r" % (path, r.status, body[:200]))
    return body


async def measure(tmp):
    res = {}
    async with StandinMaster(ping_interval=PING) as m:
        b = Probe(tmp, m.port)
        loop = asyncio.get_running_loop()
        try:
            heap = int(b.take("heap", timeout=20)[0]["heap"])
            await m.wait_for("SlaveReregisteredMessage", timeout=20, kind="send")
            fid = m.create_framework()
            ids = [await m.launch(command="sleeper", resources="cpus:0.1", shell=False) for _ in range(TASKS)]
            for tid in ids:
                await m.wait_for(lambda e: e.kind == "recv" and e.name == "StatusUpdateMessage" and
                                 e.body["update"]["status"]["task_id"] == tid and
                                 e.body["update"]["status"]["state"] == 1, timeout=10)
            await asyncio.sleep(0.5)

            def work():
                c = http.client.HTTPConnection("127.0.0.1", b.port, timeout=20)
                out = {"state": json.loads(get(c, "/slave(1)/state"))}  # loads the views
                get(c, "/metrics/snapshot")
                get(c, "/files/browse?path=/")
                out["views"] = max(int(p["views"]) for p in b.take("views", 3))
                for mode in ("live", "alloc"):
                    get(c, "/__mode?m=" + mode)
                    for path in ("/slave(1)/state", "/metrics/snapshot",
                                 "/files/read?path=/frameworks/%s/executors/%s/stdout&offset=0" % (fid, ids[0])):
                        for _ in range(3):
                            get(c, path)
                        out[(mode, path.split("?")[0])] = b.take("mode", 3)
                h0 = json.loads(get(c, "/__mode?m=heap"))
                paths = ["/slave(1)/state", "/metrics/snapshot?jsonp=angular.callbacks._1",
                         "/slave(1)/monitor/statistics?jsonp=angular.callbacks._2",
                         "/files/read?path=/frameworks/%s/executors/%s/stdout&offset=-1" % (fid, ids[1])]
                p0 = len([e for e in m.events if e.kind == "recv" and e.name == "PongSlaveMessage"])
                t0 = time.time()
                lat = []
                for i in range(BURST):
                    t = time.perf_counter()
                    get(c, paths[i % len(paths)])
                    lat.append(time.perf_counter() - t)
                out["burst_s"] = time.time() - t0
                out["lat"] = lat
                pong_times = [e.time for e in m.events if e.kind == "recv" and e.name == "PongSlaveMessage"][p0:]
                out["pongs"] = len(pong_times)
                out["gap"] = max([b2 - a2 for a2, b2 in zip(pong_times, pong_times[1:])] or [0])
                out["metrics"] = json.loads(get(c, "/metrics/snapshot"))
                out["h1"] = json.loads(get(c, "/__mode?m=heap"))
                out["h0"] = h0
                c.close()
                return out
            out = await loop.run_in_executor(None, work)
            await asyncio.sleep(1.2)  # two more ping rounds after the burst
            a = m.agent()
            out["connected"] = a.connected and a.pid == "slave(1)@127.0.0.1:%d" % b.port
            out["late_pongs"] = len([e for e in m.events if e.kind == "recv" and e.name == "PongSlaveMessage"
                                     and e.time > time.time() - 1.2])
            out["problems"] = len(m.problems())
            out["heap"] = heap
            res = out
        finally:
            b.stop()
    return res


def run():
    tmp = tempfile.mkdtemp(prefix="bench-endpoints-")
    r = asyncio.run(measure(tmp))
    s = r["state"]
    ntasks = sum(len(e["tasks"]) for f in s["frameworks"] for e in f["executors"])
    out = ["## HTTP endpoints (issue: /state, /metrics/snapshot, /health, /files)", "",
           "The virtual board (unix port, -X heapsize=%s, agent from .mpy, %d bytes of heap) runs %d tasks; "
           "heap figures are measured inside it around each streamed response (tools/bench/bench_endpoints.py). "
           "Bodies go out through one 512 B buffer made per response (listener.out_size), chunked once they "
           "outgrow it. The peak on the 32-bit device model: tools/bench/statepeak.py."
           % (HEAP, r["heap"], ntasks),
           "", "| measure | value |", "|---|---|",
           "| the views' bytecode (webstate, metrics, sandbox, query; jsonw with the response code, which the "
           "listener imports), imported by a request and dropped once its "
           "response is sent: the most one response holds; in flash on a frozen build | %.1f KB |"
           % (r["views"] / 1024)]
    for path, label in (("/slave(1)/state", "/state with %d running tasks" % ntasks),
                        ("/metrics/snapshot", "/metrics/snapshot"), ("/files/read", "/files/read of a task's log")):
        live = r[("live", path)]
        alloc = r[("alloc", path)]
        size = int(live[0]["bytes"])
        peak = max(int(p["peak"]) - int(p["base"]) for p in live)
        # /metrics/snapshot runs gc.collect() itself (for its heap figures): what it allocated before that
        # is collected there, so its volume is not measured.
        vol = "%.1f KB" % (statistics.median(int(p["alloc"]) for p in alloc) / 1024) if "metrics" not in path else "n/a"
        us = statistics.median(int(p["us"]) for p in alloc)
        out.append("| %s: body / live heap above the idle agent at its peak (gc at every chunk) / bytes allocated "
                   "to produce it (gc off) / time in the board | %d B / %.1f KB / %s / %.1f ms |"
                   % (label, size, peak / 1024, vol, us / 1000))
    lat = sorted(r["lat"])
    out.append("| %d sequential requests on one keep-alive connection (/state, JSONP /metrics/snapshot, JSONP "
               "/monitor/statistics, /files/read in turn) | %.2f s (%.0f req/s; median %.1f ms, p99 %.1f ms) |"
               % (BURST, r["burst_s"], BURST / r["burst_s"], lat[len(lat) // 2] * 1000,
                  lat[int(len(lat) * 0.99)] * 1000))
    m = r["metrics"]
    out.append("| during the burst: pongs sent (a ping every %.1f s) / longest gap between pongs | %d / %.2f s |"
               % (PING, r["pongs"], r["gap"]))
    out.append("| after the burst: registered (board's slave/registered, master's view) / disconnects / pongs in "
               "the next 1.2 s | %s, %s / %d / %d |" % (
                   "yes" if m["slave/registered"] == 1 else "NO", "connected" if r["connected"] else "NOT CONNECTED",
                   m["micromesos/agent_disconnects"], r["late_pongs"]))
    out.append("| live heap after gc.collect(): before / after the burst | %.1f KB / %.1f KB |"
               % (r["h0"]["alloc"] / 1024, r["h1"]["alloc"] / 1024))
    out.append("| messages the real master would have dropped | %d |" % r["problems"])
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run())
