# The ping -> pong path allocates nothing (PROTOCOL.md §2.5: every 15 s for the board's life).
# MIT licence. Runs the listener's real dispatch code in the unix port under heap_lock().
import base64
import json
import os

import mpy


def captured(type_name, src):
    with open(os.path.join(mpy.GOLDEN, "captured", "master-agent.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r["kind"] == "request" and r["type"] == type_name and r["src"] == src:
                return base64.b64decode(r["raw_b64"])
    raise AssertionError(type_name)


# The socket's part (readinto into recv_view) is done by a slice store, as readinto would;
# everything after it is the listener's own code: parse, dispatch, 202, name lookup, handler,
# ping decode, pong written into the destination's outbox.
CODE = r"""
import gc, json, micropython, sys
from micromesos import codec, http, libprocess, names
ping, pong = [bytes.fromhex(h) for h in json.loads(sys.stdin.read())]
# 15 pongs are queued before the stand-in sender empties the outbox (outbox()): room for them.
libprocess.Libprocess.outbox_size = 4096
lp = libprocess.Libprocess("slave(1)", "127.0.0.1", 5051)
PONG = names.PONG
OBSERVER = b"slave-observer("

class Writer:  # stands in for the inbound stream: counts what the listener answers
    def __init__(self):
        self.n = 0
    def get_extra_info(self, what):
        return ("127.0.0.1", 44612)
    def write(self, data):
        self.n += len(data)

w = Writer()
conn = libprocess._Conn(w)
p = http.HTTPParser()
seen = [0, 0, 0]  # pings, observer+connected, replies queued

def handler(msg):
    if msg.kind == names.PING_SLAVE:
        seen[0] += 1
        if msg.sender_id_startswith(OBSERVER) and codec.ping_connected(msg.buf, msg.start, msg.end):
            seen[1] += 1
        if lp.reply(msg, PONG):
            seen[2] += 1

lp.handler = handler

def arrive(data, copies):
    # One TCP read holding `copies` pipelined pings.
    v = p.recv_view()
    n = len(data)
    for i in range(copies):
        v[i * n:(i + 1) * n] = data
    p.received(n * copies)
    while p.parse():
        lp._dispatch(conn, p, w)
        p.done()

def pings(k, copies, locked):
    if locked:
        micropython.heap_lock()
    try:
        for _ in range(k):
            arrive(ping, copies)
    finally:
        if locked:
            micropython.heap_unlock()

def outbox():
    d = lp._dests[0]
    out = bytes(d.ob[:d.n])
    d.n = 0  # what the sender task does once it has written the batch
    return out

arrive(ping, 1)  # the first pong to a new address creates its destination (once)
first = outbox()
pings(15, 1, True)  # heap locked: MemoryError if anything on the path allocates
steady = outbox()
# Garbage left behind, heap unlocked: mem_alloc() without a collection in between. (Not
# mem_total(): it also counts big call frames MicroPython tries on the heap and, locked,
# puts on the C stack; unlocked they are freed on return.)
gc.collect()
a0 = gc.mem_alloc()
pings(15, 1, False)
a1 = gc.mem_alloc()
outbox()
gc.collect()
a2 = gc.mem_alloc()
pings(1, 3, False)
a3 = gc.mem_alloc()
piped = outbox()
print(json.dumps({"seen": seen, "answered": w.n, "first": first.hex(), "steady": steady.hex(),
                  "steady_alloc": a1 - a0, "piped_alloc": a3 - a2, "piped": piped.hex(),
                  "dests": len(lp._dests)}))
"""


def test_ping_to_pong_allocates_nothing(mpy_run):
    ping = captured("mesos.internal.PingSlaveMessage", "master")
    pong = captured("mesos.internal.PongSlaveMessage", "agent")
    # 256k: codec+schema+libprocess loaded from source put ~120 KB of bytecode on this 64-bit
    # heap (a board has them frozen in flash). The path under test allocates nothing either way.
    r = mpy_run(CODE, stdin=json.dumps([ping.hex(), pong.hex()]), heapsize="256k").check()
    out = json.loads(r.out.strip().splitlines()[-1])
    print("ping->pong: steady-state bytes allocated per 15 pings: %d; 3 pipelined pings: %d"
          % (out["steady_alloc"], out["piped_alloc"]))
    assert out["seen"] == [34, 34, 34]  # 1 + 15 + 15 + 3 pings: from an observer, connected, answered
    assert out["answered"] == 34 * len(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
    # The pong is byte-identical to the one the real agent sent (captured, seq 8).
    assert bytes.fromhex(out["first"]) == pong
    assert bytes.fromhex(out["steady"]) == pong * 15
    assert bytes.fromhex(out["piped"]) == pong * 3
    assert out["steady_alloc"] == 0 and out["dests"] == 1
    # Pipelined requests move to the buffer front after each one (HTTPParser.done) in blocks
    # no longer than the gap, so no block overlaps itself; each block costs one memoryview
    # (the load slice; a slice store allocates nothing). Pings are 253 bytes: 2 blocks to move
    # two pings, then 1 to move the last. Pinned so that any change is noticed.
    assert len(ping) == 253
    assert out["piped_alloc"] == 3 * MEMORYVIEW_BYTES


MEMORYVIEW_BYTES = 32  # one memoryview object on the 64-bit unix port (4 words)
