#!/usr/bin/env python3
# The heap one web UI request needs at its PEAK on the 32-bit device model, measured in one boot. MIT licence.
# Usage: statepeak.py [--device loaded|frozen|both] [--path /state] [--step 256]
"""The agent boots as firmware/main.py does (tests/devboot.py: registered, 2 idle tasks RUNNING) with a
roomy heap. Before each trial the board is made to hold all of its free heap but F bytes ("ballast"): the
heap is filled with chunks and those at the LOWEST addresses are released until F bytes are free, so the
free room is where it would be in a smaller heap (a smaller -X heapsize cuts the top of the heap off; the
idle agent's own holes stay as they are). Then a fresh connection GETs the path: the smallest F at which
it answers 200 with a whole body, bisected, is what that request needs at its peak above the idle agent
(connection, request, view import, producer and writer buffer included). The ballast is laid 100 ms after
the probe request's own answer has gone, so nothing of that request (its connection, the response code it
loaded) is counted as free. MicroPython has no high-water mark; this is the honest one, fragmentation
included. Figures: the idle agent's live heap, F, and the
live heap while the views are imported (gc.collect() after the route ran)."""
import argparse
import http.client
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for _p in (os.path.join(ROOT, "tests"), os.path.join(ROOT, "tools", "hostcompat"), os.path.join(ROOT, "tools"),
           os.path.join(ROOT, "lib")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import mpy  # noqa: E402
import standin  # noqa: E402
from devboot import Boot  # noqa: E402
from vboard_proc import Board  # noqa: E402

HEAP = {"loaded": "256k", "frozen": "160k"}  # room for everything; the ballast does the squeezing

# Runs in MicroPython: firmware/main.py's boot() with a control route, /__probe?free=F.
PROBE = r'''
import gc, sys
import asyncio
from micromesos import endpoints
import main

HOLD = [None]      # the ballast: a list of chunks
SIZES = (1024, 256, 64, 16)  # bytearray(1008), (240), (48): object block + data blocks; a float: one block


def _fill(chunks, i, make):
    while i < len(chunks):
        try:
            chunks[i] = make()
        except MemoryError:
            break
        i += 1
    return i


def cut(free):
    # Hold all of the free heap but `free` bytes, the lowest addresses left free. -> the free heap.
    HOLD[0] = None
    gc.collect()
    if free <= 0:
        return gc.mem_free()
    n = gc.mem_free() // 1024 + 1024
    chunks = [None] * (n + 64)  # the last 64: top-ups once the lists below are gone
    keys = [0] * n
    spare = bytearray(1024)  # room for what this function allocates once the heap is full (id()'s big ints)
    i = 0
    ends = []
    for b in (1008, 240, 48):
        i = _fill(chunks, i, lambda: bytearray(b))
        ends.append(i)
    i = _fill(chunks, i, lambda: 0.5 + n)
    ends.append(i)
    spare = None
    c = 0
    for j in range(i):
        while j >= ends[c]:
            c += 1
        keys[j] = (id(chunks[j]) >> 4) * 4 + c  # small ints: no heap
    keys.sort()  # in place, no heap
    got = 0
    top = 0
    for k in keys:
        if got >= free:
            break
        if k:
            top = k >> 2
            got += SIZES[k & 3]
    for j in range(i):
        if (id(chunks[j]) >> 4) <= top:
            chunks[j] = None
    keys = None
    gc.collect()
    # The keys and the spare are free now too: take that much back (first fit: from the lowest holes).
    j = n
    while j < n + 64:
        x = gc.mem_free() - free
        if x < 32:
            break
        chunks[j] = bytearray(min(1008, x - 16))
        j += 1
    HOLD[0] = chunks
    gc.collect()
    return gc.mem_free()


def release():
    HOLD[0] = None
    gc.collect()


GEN = [0]


async def fallback(gen):
    await asyncio.sleep_ms(15000)  # the request under test never reached the agent
    if GEN[0] == gen:
        release()


_route = endpoints.Endpoints.route
_drop = endpoints.Endpoints._drop


IDLE = [0]  # the live heap the last probe(0) found once its own answer was gone
LAST = [0]  # the free heap the last ballast left (-1: no room to lay it)


async def later(f):
    # After the probe's own answer has gone: the code answering a request (jsonw, its Request) is
    # dropped with it, so the ballast is laid around the idle agent alone.
    await asyncio.sleep_ms(100)
    if f <= 0:
        release()
        IDLE[0] = gc.mem_alloc()
        return
    try:
        LAST[0] = cut(f)
    except MemoryError:  # the ballast left this very code no room: nothing held, the trial is retried
        release()
        LAST[0] = -1
        return
    GEN[0] += 1
    if HOLD[0] is not None:
        asyncio.create_task(fallback(GEN[0]))


def route(self, req):
    if req.path == "/__probe":
        f = int(req.query.partition("=")[2] or "0")  # free=F (the query module stays out of it)
        # A response that failed before its body ran (no heap for the writer) leaves the views in for
        # endpoints' _STALE_MS: out with them, each trial starts from the idle agent.
        self.streams = 0
        self._drop()
        asyncio.create_task(later(f))
        return 200, "application/json", b'{"used": %d, "last": %d}' % (IDLE[0], LAST[0])
    if req.path != "/__trace":
        return _route(self, req)
    # One /state with the live heap (gc.collect()) noted as it goes: at the route, once the views are
    # imported, at every chunk the writer sends and at its end.
    req.path = "/state"
    gc.collect()
    TRACE[:] = [gc.mem_alloc()]
    r = _route(self, req)
    gc.collect()
    TRACE.append(gc.mem_alloc())
    from micromesos import jsonw
    w = jsonw.Writer

    def flush(out, f=w.flush):
        gc.collect()
        TRACE.append(gc.mem_alloc())
        f(out)

    def finish(out, f=w.finish):
        gc.collect()
        TRACE.append(gc.mem_alloc())
        k = f(out)
        print("PROBE trace=" + ",".join(str(x - TRACE[0]) for x in TRACE[1:]))
        return k
    w.flush = flush
    w.finish = finish
    return r


TRACE = []


def drop(self):
    # The end of a view's response (endpoints drops the views then): the peak is over.
    _drop(self)
    if self.streams == 0:
        release()


endpoints.Endpoints.route = route
endpoints.Endpoints._drop = drop
_install = endpoints.install


def install(a):
    ep = _install(a)
    a.lp.route("/__probe", ep.route)
    a.lp.route("/__trace", ep.route)
    return ep


endpoints.install = install
main.boot(sys.argv[1])
'''


class ProbeBoard(Board):
    def start(self):
        with open(self.cfg_path, "w") as f:
            json.dump(self.cfg, f)
        script = os.path.join(self.fs, "..", "statepeak_probe.py")
        with open(script, "w") as f:
            f.write(PROBE)
        code = (mpy.compile_tree(os.path.join(ROOT, "build", "test-mpy")),) if self.device == "wheel" else ()
        import subprocess
        import threading
        self.proc = mpy.popen_mpy(script=script, args=[self.cfg_path], heapsize=self.heapsize,
                                  extra_path=code + (os.path.join(ROOT, "firmware"),), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, device=self.device)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        return self


class Peak(Boot):
    """Boot (tests/devboot.py) up to 2 idle tasks, then bisect the free heap the path needs."""

    def __init__(self, device, tmp, path, step):
        Boot.__init__(self, device, HEAP[device], tmp, hold_s=0, upto="tasks")
        self.path, self.step = path, step

    def _boot(self):
        import subprocess
        d = os.path.join(self.tmp, "peak-%s" % self.device, "fs")
        os.makedirs(d, exist_ok=True)
        self.board = b = ProbeBoard(d, self.master.port, heapsize=self.heapsize, device=self.device,
                                    log_level="warn")
        if self.device == "loaded":
            subprocess.run([mpy.mpy_cross_cmd(), "-O3", "-s", "hello.py", "-o",
                            os.path.join(b.fs, "tasks", "hello.mpy"), os.path.join(mpy.ROOT, "tasks", "hello.py")],
                           check=True)
        b.start()
        self.until("registration", lambda e: e.kind == standin.SEND and e.name == "SlaveReregisteredMessage", 60)
        self._tasks()
        time.sleep(1)
        ok, _ = self.trial(0)  # imports everything a first request imports for good (none, by design)
        if not ok:
            raise AssertionError("%s fails with no ballast" % self.path)
        self.probe(0)  # measures the idle agent once its own answer has gone; the next probe says it
        time.sleep(0.5)
        idle = self.probe(0)
        m = self.board.mark()
        st, _ = self.get("/__trace")
        self.board.wait_line("PROBE trace=", timeout=30, since=m)
        trace = [int(x) for x in self.board.find("PROBE trace=(.*)", since=m)[-1].split("=")[1].split(",")]
        lo, hi = 0, 64 * 1024  # free bytes: lo fails, hi passes
        ok, got = self.trial(hi)
        if not ok:
            raise AssertionError("%s fails with %d bytes free" % (self.path, got))
        tried = []
        need = got
        while hi - lo > self.step:
            mid = (lo + hi) // 2
            ok, got = self.trial(mid)
            tried.append((mid, got, ok))
            if ok:
                hi, need = mid, got  # what was really free (the ballast frees whole chunks)
            else:
                lo = mid
        if not self.tasks_running():
            raise AssertionError("a task did not survive the trials:\n" + self.board.output()[-3000:])
        self.figures = {"idle_used": idle["used"], "need": need, "trials": tried, "trace": trace}
        self.stage = "measured"

    def released(self):
        # Released at the end of the response; or, if the request never reached a view, 15 s later.
        deadline = time.time() + 40
        while True:
            try:
                return self.probe(0)
            except (OSError, AssertionError):
                if time.time() > deadline:
                    raise
                time.sleep(1)

    def probe(self, free):
        st, body = self.get("/__probe?free=%d" % free)
        if st != 200:
            raise AssertionError("/__probe answered %d: %r" % (st, body[:200]))
        return json.loads(body)

    def trial(self, free):
        for _ in range(3):  # again if the board had no room to lay the ballast (last: -1)
            if free:
                self.probe(free)
                time.sleep(0.5)  # the board lays it 100 ms after answering the probe (later())
            m = self.board.mark()
            try:
                st, body = self.get(self.path)
                ok = st == 200 and bool(json.loads(body))
            except (OSError, ValueError, http.client.HTTPException):  # IncompleteRead: it failed mid-body
                ok = False
            finally:
                got = self.released()["last"] if free else 0
            if self.board.find("MemoryError|out of memory", since=m):
                ok = False
            if got >= 0:
                return ok, got
        return False, free

    def tasks_running(self):
        st, body = self.get("/state")
        s = json.loads(body)
        states = [t["state"] for f in s["frameworks"] for e in f["executors"] for t in e["tasks"]]
        return states == ["TASK_RUNNING", "TASK_RUNNING"]


def measure(device, path="/state", step=256, tmp=None):
    import tempfile
    tmp = tmp or tempfile.mkdtemp(prefix="statepeak-")
    p = Peak(device, tmp, path, step).run()
    if p.error:
        raise RuntimeError("%s: %s\n%s" % (device, p.error, p.output[-4000:]))
    return p.figures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="both", choices=("loaded", "frozen", "both"))
    ap.add_argument("--path", default="/state")
    ap.add_argument("--step", type=int, default=256, help="bisection resolution, bytes")
    ap.add_argument("-v", action="store_true", help="print every trial")
    a = ap.parse_args()
    for d in (("loaded", "frozen") if a.device == "both" else (a.device,)):
        f = measure(d, a.path, a.step)
        print("%s: idle agent (2 tasks) %.1f KB live; %s needs %.1f KB free at its peak (+-%d B)"
              % (d, f["idle_used"] / 1024, a.path, f["need"] / 1024, a.step))
        print("   live heap above the idle agent: views imported %.1f KB, at each chunk sent %s KB"
              % (f["trace"][0] / 1024, " ".join("%.1f" % (x / 1024) for x in f["trace"][1:])))
        if a.v:
            for mid, got, ok in f["trials"]:
                print("   asked %6d free, had %6d: %s" % (mid, got, "ok" if ok else "fails"))


if __name__ == "__main__":
    main()
