#!/usr/bin/env python3
# Transport benchmark: RAM of the libprocess transport, parse/dispatch cost, loopback ping->pong latency.
# MIT licence. run() -> a markdown section (tools/bench/run.py collects it); `python bench_transport.py` prints it.
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import mpy  # noqa: E402

ITERATIONS = 1000
ROUND_TRIPS = 300

# In MicroPython: heap cost of each stage, then per-request cost of parse alone and of the whole
# ping path (parse, 202, name lookup, handler, ping decode, pong into the outbox), medians.
_INPROC = r"""
import gc, json, sys, time, micropython
ping = bytes.fromhex(sys.stdin.readline())
N = int(sys.argv[1])
gc.collect(); m0 = gc.mem_alloc()
from micromesos import libprocess, http, names
gc.collect(); m1 = gc.mem_alloc()
lp = libprocess.Libprocess("slave(1)", "127.0.0.1", 5051)
lp._pool = [lp.parser() for _ in range(lp.max_conns)]  # what start() allocates
gc.collect(); m2 = gc.mem_alloc()
class W:
    n = 0
    def get_extra_info(self, k):
        return ("127.0.0.1", 1)
    def write(self, d):
        self.n += 1
w = W(); conn = libprocess._Conn(w); p = lp._pool[0]
PONG = names.PONG
def handler(msg):
    if msg.sender_id_startswith(b"slave-observer("):
        lp.reply(msg, PONG)
lp.handler = handler
def one(dispatch):
    v = p.recv_view(); v[0:len(ping)] = ping; p.received(len(ping))
    p.parse()
    if dispatch:
        lp._dispatch(conn, p, w)
    p.done()
one(True)  # creates the destination
gc.collect(); m3 = gc.mem_alloc()
out = {"import": m1 - m0, "started": m2 - m1, "dest": m3 - m2}
d = lp._dests[0]
for name, dispatch in (("parse_us", False), ("ping_path_us", True)):
    ts = [0] * N
    for i in range(N):
        t = time.ticks_us()
        one(dispatch)
        ts[i] = time.ticks_diff(time.ticks_us(), t)
        d.n = 0
    ts.sort()
    out[name] = ts[N // 2]
print(json.dumps(out))
"""

# A board for the loopback test: answers pings with pongs, reports its heap when asked.
_BOARD = r"""
import asyncio, gc, sys
from micromesos import libprocess, names
lp = libprocess.Libprocess("slave(1)", "127.0.0.1", int(sys.argv[1]))
PONG = names.PONG
lp.handler = lambda msg: msg.kind == names.PING_SLAVE and lp.reply(msg, PONG)
def heap(req):
    gc.collect()
    return 200, "text/plain", str(gc.mem_alloc())
lp.route("/heap", heap)
async def main():
    await lp.start()
    print("READY")
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def _ping(observer_port):
    with open(os.path.join(mpy.GOLDEN, "captured", "master-agent.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r["type"] == "mesos.internal.PingSlaveMessage":
                raw = base64.b64decode(r["raw_b64"])
                return raw.replace(b"127.0.0.1:5050", b"127.0.0.1:%d" % observer_port) if observer_port else raw




def _get(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET %s HTTP/1.0\r\n\r\n" % path)
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    s.close()
    return data.split(b"\r\n\r\n", 1)[1]


def loopback():
    obs = socket.socket()
    obs.bind(("127.0.0.1", 0))
    obs.listen(1)
    port = mpy.free_port()
    path = os.path.join(tempfile.mkdtemp(), "board.py")
    with open(path, "w") as f:
        f.write(_BOARD)
    board = mpy.popen_mpy(script=path, args=[str(port)], stdout=subprocess.PIPE, text=True, extra_path=(_CODE,))
    try:
        while "READY" not in board.stdout.readline():
            pass
        ping = _ping(obs.getsockname()[1])
        link = socket.create_connection(("127.0.0.1", port))
        link.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link.sendall(ping)
        back, _ = obs.accept()
        pong_len = len(back.recv(4096))
        heap0 = int(_get(port, b"/heap"))  # both connections and the destination exist now
        rtts = []
        for _ in range(ROUND_TRIPS):
            t = time.perf_counter()
            link.sendall(ping)
            got = 0
            while got < pong_len:
                got += len(back.recv(4096))
            rtts.append((time.perf_counter() - t) * 1e6)
        heap1 = int(_get(port, b"/heap"))
        link.close()
        back.close()
        return statistics.median(rtts), sorted(rtts)[int(0.99 * len(rtts))], heap0, heap1
    finally:
        board.kill()
        board.wait()
        obs.close()


# As on a board after `make deploy`: the library runs from .mpy bytecode, not compiled from source in RAM.
_CODE = mpy.compile_tree(os.path.join(mpy.ROOT, "build", "bench-mpy"))


def run():
    r = mpy.run_mpy(code=_INPROC, args=[str(ITERATIONS)], stdin=_ping(0).hex() + "\n", extra_path=(_CODE,)).check()
    m = json.loads(r.out.strip().splitlines()[-1])
    med, p99, heap0, heap1 = loopback()
    return "\n".join([
        "## Transport (libprocess over HTTP/1.1)",
        "",
        "Heap (gc.mem_alloc deltas, 64-bit unix port, modules loaded from .mpy as after `make deploy`):",
        "",
        "| what | bytes |",
        "|---|---|",
        "| import micromesos.libprocess (with http, upid, names, log, asyncio) | %d |" % m["import"],
        "| Libprocess + its %d preallocated 4 KB connection buffers | %d |" % (3, m["started"]),
        "| first message to a new address (4 KB outbox, Event, sender task) | %d |" % m["dest"],
        "",
        "Per captured PingSlaveMessage (253 bytes), median of %d, in process:" % ITERATIONS,
        "",
        "| step | µs |",
        "|---|---|",
        "| parse | %d |" % m["parse_us"],
        "| parse + 202 + name lookup + handler + pong into the outbox | %d |" % m["ping_path_us"],
        "",
        "Loopback, CPython master stand-in <-> board: ping written -> pong read, %d round trips: "
        "median %.0f µs, p99 %.0f µs; board heap (after a collection) before and after them: %d -> %d bytes."
        % (ROUND_TRIPS, med, p99, heap0, heap1),
    ])


if __name__ == "__main__":
    print(run())
