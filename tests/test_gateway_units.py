# The gateway's pieces in the MicroPython unix port, without a master: config checks, checkpoint directory
# names from hostile node names, bad node messages dropped and counted, update dedup by uuid, and the
# checkpoint read back by a new gateway (held messages and unacknowledged updates). MIT licence.
import re

import mpy

CODE = r"""
import os, sys
from micromesos import codec, linkhello
from micromesos.errors import ConfigError
from mgateway import gateway

root = sys.argv[1]

def refused(cfg):
    try:
        gateway.check(cfg)
    except ConfigError as e:
        return str(e)
    return None

print("CFG", refused({}) is not None, refused({"master": "127.0.0.1:5050", "bogus": 1}) is not None,
      refused({"master": "127.0.0.1:5050", "port": "5051"}) is not None, refused({"master": "127.0.0.1:5050"}))
print("DIR", gateway.dirname("node-1"), gateway.dirname("../etc"), gateway.dirname(".hidden"), gateway.dirname("a/b"))

INFO = codec.encode(20, {"hostname": "x", "resources": [{"name": "cpus", "type": 0, "scalar": {"value": 1.0}}]})

def uuid(k):
    return bytes([k] * 6 + [0x40 | k, k, 0x80 | k] + [k] * 7)

def update(k, fid="f", tid="t", state=1):
    u = uuid(k)
    st = {"task_id": tid, "state": state, "slave_id": "", "timestamp": 1.0, "source": 2, "uuid": u}
    return codec.encode(52, {"update": {"framework_id": fid, "slave_id": "", "status": st, "timestamp": 1.0,
                                        "uuid": u}, "pid": ""})

def make():
    return gateway.Gateway({"master": "127.0.0.1:5050", "port": 5151, "link_port": 0, "checkpoint_dir": root,
                            "log_level": "error"})

gw = make()
gw.hub.sender = lambda addr: (lambda frame: None)
buf = bytearray(64)
n = linkhello.hello(buf, 77, 60000, 5000, 250, 2, "..")
gw.hub.frame(("127.0.0.1", 20000), buf, n)
va = gw.agents[".."]
for kind, body in ((0x80, b"\xff\xff\xff"), (10, b"\x0a\x03abc"), (0x82, b"\x00\x09zz"), (99, b""),
                   (10, update(1)[:-3])):
    gw._message(va.peer, kind, body, 0, len(body))
bad_uuid = bytearray(update(2))
bad_uuid[bad_uuid.find(uuid(2)) + 6] = 0x02  # version nibble 0: not RFC 4122 (PROTOCOL.md §0.8)
gw._message(va.peer, 10, bad_uuid, 0, len(bad_uuid))
print("BAD", va.dropped, va.relay.pending(), va.info is None)
gw._message(va.peer, 0x80, INFO, 0, len(INFO))
for k in (3, 3, 4):
    b = update(k)
    gw._message(va.peer, 10, b, 0, len(b))
print("DEDUP", va.relay.pending(), va.relay.dups, va.info == INFO)
# Those were stamped 1.0 (a node whose clock was never set): kept with this clock as they arrived, both timestamps.
import time
ups = [codec.decode(52, e[1])["update"] for st in va.relay.streams.values() for e in st]
print("STAMPED", len(ups), all(abs(x["timestamp"] - time.time()) < 5 and x["status"]["timestamp"] == x["timestamp"]
                               for x in ups))
va.relay.hold(7, b"run-task-body")
va.relay.hold(9, b"kill-task-body")
print("DIRS", sorted(os.listdir(root)))

gw.udp.close()
gw2 = make()
va2 = gw2.agents[".."]
print("RESTORED", va2.n, va2.peer.nonce, va2.info == INFO, va2.relay.pending(),
      [(k, bytes(b)) for k, b in va2.peer.held], va2.relay.known(uuid(3)), va2.relay.known(uuid(9)))
# TASKS after the node rebooted: a task the gateway thought running that the node lacks -> TASK_LOST (relayed).
va2.slave_id = "S1"
for tid, state in (("t8", 1), ("t9", 1), ("t10", 6)):
    va2.tasks[("f", tid)] = {"name": tid, "task_id": tid, "framework_id": "f", "slave_id": "S1", "state": state,
                            "resources": []}
kept = codec.encode(50, va2.tasks[("f", "t8")])
body = bytes([len(kept) >> 8, len(kept) & 255]) + kept
gw2._message(va2.peer, 0x82, body, 0, len(body))
lost = [codec.decode(52, u[1])["update"]["status"] for s in va2.relay.streams.values() for u in s
        if codec.decode(52, u[1])["update"]["status"]["state"] == 5]
print("TASKS", [(x["task_id"], x["source"]) for x in lost], va2.tasks[("f", "t9")]["state"], len(va2.relay.gen))
print("STATUS", gw2.status())
# A registered node that announces other resources: re-registered (no live task); with one, not.
va2.state = 2
INFO2 = codec.encode(20, {"hostname": "x", "resources": [{"name": "cpus", "type": 0, "scalar": {"value": 2.0}}]})
gw2._message(va2.peer, 0x80, INFO2, 0, len(INFO2))
print("REINFO", va2.state, va2.info == INFO2)
va2.tasks.clear()
INFO3 = codec.encode(20, {"hostname": "x", "resources": [{"name": "cpus", "type": 0, "scalar": {"value": 3.0}}]})
gw2._message(va2.peer, 0x80, INFO3, 0, len(INFO3))
print("REINFO2", va2.state, va2.info == INFO3)


class Conn:
    def __init__(self, ip):
        self.peer = (ip, 40000)


class Ping:  # what the listener hands over, as far as a VAgent reads it before answering
    kind = 5
    buf = b"\x08\x01"  # connected: true
    start, end = 0, 2
    s0 = s1 = 0  # no sender UPID: the pong is not sent (reply_as refuses it)

    def __init__(self, ip):
        self.conn = Conn(ip)

    def sender_id_startswith(self, prefix):
        return True

    def sender_host_is(self, u):
        return True


d0, p0 = va2.dropped, va2.pings
va2.on_message(Ping("10.9.9.9"))  # Libprocess-From may say anything: the connection is not the master's
d1, p1 = va2.dropped, va2.pings
va2.on_message(Ping("127.0.0.1"))
print("IPCHECK", d1 - d0, p1 - p0, va2.dropped - d1, va2.pings - p1)
bad = Ping("127.0.0.1")
bad.buf = b"\x08"  # truncated: dropped and counted, nothing raised
va2.on_message(bad)
print("BADPING", va2.dropped - d1)

# The node rebooted (a new nonce) and went to sleep without TASKS: what had started there is LOST; a task still
# STAGING (its launch may be held) is not.
import time
va2.tasks[("f", "r1")] = {"name": "r1", "task_id": "r1", "framework_id": "f", "slave_id": "S1", "state": 1,
                          "resources": []}
va2.tasks[("f", "r2")] = {"name": "r2", "task_id": "r2", "framework_id": "f", "slave_id": "S1", "state": 6,
                          "resources": []}
gw2.hub.sender = lambda addr: (lambda frame: None)
n = linkhello.hello(buf, 78, 60000, 5000, 250, 2, "..")
gw2.hub.frame(("127.0.0.1", 20001), buf, n)
va2.state = 2  # registered: the clock has nothing to send
va2.tick(time.ticks_ms())
early = va2.tasks[("f", "r1")]["state"]
va2.peer.sleeps += 1  # as a SLEEP from it does
va2.tick(time.ticks_ms())
print("REBOOT", early, va2.tasks[("f", "r1")]["state"], va2.tasks[("f", "r2")]["state"], va2.rebooted)

# A node's update names no agent and no UPID (LINK.md §5): the master gets this VAgent's in both places.
out = []
gw2.lp.send = lambda to, name, body, mid: out.append((name, body)) or True
u = uuid(5)
st = {"task_id": "t", "state": 1, "timestamp": 1.0, "source": 2, "uuid": u}
node_up = codec.encode(52, {"update": {"framework_id": "f", "status": st, "timestamp": 1.0, "uuid": u}})
va2._send_update(node_up)
m = codec.decode(52, out[-1][1])
print("IDS", out[-1][0], m["update"]["slave_id"] == m["update"]["status"]["slave_id"] == va2.slave_id == "S1",
      m["pid"] == va2.upid, len(out[-1][1]) - len(node_up))
"""


def test_config_names_bad_input_dedup_and_checkpoint(tmp_path):
    res = mpy.run_mpy(code=CODE, args=[str(tmp_path / "gw")], heapsize="4m").check()
    out = dict(line.split(" ", 1) for line in res.lines())
    assert out["CFG"] == "True True True None", res.out
    assert out["DIR"] == "node-1 x2e2e2f657463 x2e68696464656e x612f62", res.out
    # Every malformed message dropped and counted; nothing kept, the gateway still running.
    assert out["BAD"] == "6 0 True", res.out
    # The same uuid twice: relayed once.
    assert out["DEDUP"] == "2 1 True", res.out
    assert out["STAMPED"] == "2 True", res.out
    assert out["DIRS"] == "['x2e2e']", res.out
    # t9 (running, not reported) is lost, source SLAVE; t8 (reported) and t10 (never started) are not.
    assert out["TASKS"] == "[('t9', 1)] 5 1", res.out
    # A registered node announcing other resources: kept for the next registration while tasks run (t8), else
    # re-registered at once (DISCONNECTED = 1: the clock sends ReregisterSlaveMessage with it).
    assert out["REINFO"] == "2 True" and out["REINFO2"] == "1 True", res.out
    # A ping over a connection from another host than the master's is dropped before anything else.
    assert out["IPCHECK"] == "1 0 0 1" and out["BADPING"] == "1", res.out
    assert out["REBOOT"] == "1 5 6 None", res.out
    # ... and what it adds: 2 SlaveIDs of "S1" (key, length, ID key, length, 2 bytes: 6 B each) and the pid.
    name, ids_ok, pid_ok, grew = out["IDS"].split()
    assert name == "b'mesos.internal.StatusUpdateMessage'" and ids_ok == pid_ok == "True", res.out
    assert int(grew) == 12 + 2 + len("slave(1)@127.0.0.1:5151"), res.out
    assert re.match(r"1 nodes: 0 registered, 0 awake, 1 vouched for; 2 held, 3 updates unacknowledged; heap \d+ B; "
                    r"link: 0 refused \(0 for want of heap\), 0 bad, 0 forged, 0 replayed, 0 failed \(last: None\)$",
                    out["STATUS"]), res.out
    # A new gateway on the same checkpoint: same slave(N), nonce, SlaveInfo, both updates, both held
    # messages in order, the uuids known (a late retry is dropped), an unknown one not.
    assert out["RESTORED"] == "1 77 True 2 [(7, b'run-task-body'), (9, b'kill-task-body')] True False", res.out


# Two hub bugs found by looping the sleeping-nodes session test: (c) a node that slept and then reconnected
# (its WAKEs lost: HELLO, a new attempt) got a session whose Link still held, so nothing was ever sent to it;
# (b) a repeated HELLO (our WELCOME lost) did not count as hearing from the node, which was taken for asleep
# and no longer vouched for while it was still connecting.
HUB_HOLD = r"""
from mgateway.hub import LinkHub
from micromesos import linkframe as F, linkhello as H
sent = []
def sender(addr):
    return lambda frame: sent.append(bytes(frame))
hub = LinkHub(sender, mtu=128, window=2, max_message=256)
b = bytearray(128)
n = H.hello(b, 77, 500, 40, 128, 2, "n1", 1)
hub.frame("A", b, n)
p = hub.peers["n1"]
# SLEEP 500 from the node: nothing held, so the hub takes it asleep and its Link holds
F.put_header(b, F.SLEEP, 0, p.session, 0, 0, 0)
F.put_u32(b, 8, 500)
hub.frame("A", b, 12)
print("after SLEEP: awake", p.awake, "hold", p.link.hold)
# The node's WAKE goes unanswered (lost), so it connects again: HELLO, a new attempt, the same nonce
n = H.hello(b, 77, 500, 40, 128, 2, "n1", 2)
hub.frame("A", b, n)
print("after re-HELLO: awake", p.awake, "hold", p.link.hold)
sent.clear()
hub.send(p, 5, b"held msg")
print("DATA frames out after send:", sum(1 for f in sent if f[0] & 15 == F.DATA))

p.awake = False
p.link.hold = True  # as after a sleep
n = H.hello(b, 77, 500, 40, 128, 2, "n1", 2)  # the same HELLO again: our WELCOME was lost
hub.frame("A", b, n)
print("after a repeated HELLO: awake", p.awake, "hold", p.link.hold)
"""


def test_a_node_that_reconnects_after_a_sleep_gets_a_session_that_sends(mpy_run):
    out = mpy_run(HUB_HOLD, heapsize="512k").check().lines()
    assert out == ["after SLEEP: awake False hold True", "after re-HELLO: awake True hold False",
                   "DATA frames out after send: 1", "after a repeated HELLO: awake True hold False"], out


def test_the_gateway_gives_nodes_its_clock_only_once_it_is_set(mpy_run):
    # The WELCOME's unix_time (LINK.md §3.2): this host's clock in seconds since 1970; 0 while a board's clock
    # still reads before 2024 (an ESP32 bridge before NTP), which no node takes. (An update a node stamped before
    # 2024 gets the gateway's clock as it arrives: STAMPED above.)
    out = mpy_run("""
import time
from mgateway import gateway, vagent
t = gateway.unix_time()
print(abs(t - time.time()) <= 2)
class Unset:  # a clock never set: 1000 s past this port's epoch
    def time(self):
        return 1000
vagent.time = Unset()
print(gateway.unix_time())
""", heapsize="512k").check().lines()
    assert out == ["True", "0"], out
