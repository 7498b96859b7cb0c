# The agent's own ping handling allocates nothing either (PROTOCOL.md §2.5), with the master-IP peer check
# on, and drops a ping whose connection comes from another host. MIT licence. The unix port, heap locked.
import base64
import json
import os

import mpy


def captured_ping():
    with open(os.path.join(mpy.GOLDEN, "captured", "master-agent.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r["kind"] == "request" and r["type"] == "mesos.internal.PingSlaveMessage":
                return base64.b64decode(r["raw_b64"])
    raise AssertionError("no captured ping")


# The captured ping comes from slave-observer(1)@127.0.0.1:5050; the listener's real parse and dispatch
# hand it to Agent._on_message as on a board. Only lp.reply is counted instead of queued.
CODE = r"""
import json, micropython, sys
from micromesos import agent, config, http, libprocess
from micromesos.inventory import Inventory
ping = bytes.fromhex(sys.stdin.read().strip())
cfg = config.check({"master": "127.0.0.1:5050", "ip": "127.0.0.1", "fs": sys.argv[1], "log_level": "error"})
a = agent.Agent(cfg, Inventory("unix", "x64", fs=sys.argv[1]))
lp = a.lp
a.state = agent.RUNNING
pongs = [0]

def reply(msg, name, body=b""):  # the pong's own way out is tests/test_ping_alloc.py's
    pongs[0] += 1
    return True

lp.reply = reply

class Writer:
    def __init__(self, ip):
        self.ip = ip
    def get_extra_info(self, what):
        return (self.ip, 44612)
    def write(self, data):
        pass

p = http.HTTPParser()

def arrive(conn, w, k, locked):
    if locked:
        micropython.heap_lock()
    try:
        for _ in range(k):
            v = p.recv_view()
            v[:len(ping)] = ping
            p.received(len(ping))
            while p.parse():
                lp._dispatch(conn, p, w)
                p.done()
    finally:
        if locked:
            micropython.heap_unlock()

def queued():
    n = pongs[0]
    pongs[0] = 0
    return n

w = Writer("127.0.0.1")
master = libprocess._Conn(w)
arrive(master, w, 1, False)
first = queued()
arrive(master, w, 15, True)  # MemoryError if anything on the path allocates (the agent counts it invalid)
steady = queued()
s = Writer("127.0.0.2")
stranger = libprocess._Conn(s)
arrive(stranger, s, 1, False)
print(json.dumps({"first": first, "steady": steady, "invalid": a.counters["invalid"], "pings": a.counters["pings"],
                  "dropped": a.counters["dropped"], "after_stranger": queued(), "state": a.state}))
"""


def test_agent_ping_to_pong_allocates_nothing_and_checks_the_peer(mpy_run, tmp_path):
    ping = captured_ping()
    r = mpy_run(CODE, args=[str(tmp_path)], stdin=ping.hex(), heapsize="512k").check()
    out = json.loads(r.out.strip().splitlines()[-1])
    assert out["first"] == 1 and out["steady"] == 15  # every ping answered, heap locked
    assert out["invalid"] == 0 and out["pings"] == 16
    # From 127.0.0.2: the same bytes, dropped, no pong, the agent still RUNNING.
    assert out["dropped"] == 1 and out["after_stranger"] == 0 and out["state"] == 2
