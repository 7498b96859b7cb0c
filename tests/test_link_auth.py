# Tagged link frames (docs/LINK.md §8, micromesos.linkauth): the tag is HMAC-SHA256 as Python's hmac module
# computes it; a gateway with link_keys takes only the nodes whose frames carry their key's tag. Against the
# stand-in master with the real gateway and real nodes over UDP. MIT licence.
import asyncio
import hashlib
import hmac
import time

import pytest

import mpy

from gwfixture import HOSTILE_FRAMES, gateway_config, start_gateway
from test_gateway import no_problems, registered, scaled_master, updates_received, wait_until
from test_node import node_config, start_node, stop

KEY = "00112233445566778899aabbccddeeff"
OTHER = "ffeeddccbbaa99887766554433221100"

# MicroPython source: a node's transport (UDPNode's surface) that keeps every datagram it is given.
KEPT_TRANSPORT = r"""
class T:
    after_batch = on_frame = None

    def __init__(self, mtu=250):
        self.mtu = mtu
        self.sent = []

    def send(self, d):
        self.sent.append(bytes(d))
"""

TAGS = KEPT_TRANSPORT + r"""
from micromesos.linkauth import Key, Sealed, key_bytes, NODE
k = Key(key_bytes("%s"))
for frame in (b"", b"\x11" * 8, bytes(range(200))):
    print(k.tag(NODE, frame, len(frame)).hex())
print(key_bytes("abc"), key_bytes("zz" * 16), key_bytes("00" * 15), len(key_bytes("00" * 64)))

t = T()
s = Sealed(t, k)
got = []
s.on_frame = lambda buf, n: got.append(bytes(buf[:n]))
s.send(b"\x15abcdefg")  # no session key yet: not sent (counted)
print(s.mtu, t.sent, s.forged)
""" % KEY


def test_tags_are_hmac_sha256_of_the_direction_and_the_frame(mpy_run):
    out = mpy_run(TAGS).check().lines()
    k = bytes.fromhex(KEY)
    want = [hmac.new(k, b"\x01" + f, hashlib.sha256).digest()[:8].hex()
            for f in (b"", b"\x11" * 8, bytes(range(200)))]
    assert out[:3] == want, out
    assert out[3] == "None None None 64", out
    assert out[4] == "238 [] 1", out


# The test vector of LINK.md §8.4: the long-term key KEY, node nonce 0x01020304, attempt 1, gateway nonce
# a0..a7, session 1. Byte strings exactly as in the doc.
VECTOR_SK = "2790822c5421736b9aeeaef0508f0fc9b089f9f59dfad2ef8b0ea040646aa7cc"
VECTOR_HELLO = "110000000001000001020304000001900000001400ee0200046b6e2d31d96aa628d1d3f03a"
VECTOR_WELCOME = "12000100000100000102030401f404005f5e1000a0a1a2a3a4a5a6a7a7b6eb3bd1d59dae"
VECTOR_WAKE = "15000100000000000000000134a044ff0dccef7d"

VECTOR = KEPT_TRANSPORT + r"""
from micromesos import linkhello as H
from micromesos.linkauth import GATEWAY, NODE, Key, Sealed, Session, key_bytes, session_key
K = Key(key_bytes("%s"))
gn = bytes(range(0xA0, 0xA8))
sk = session_key(K, 0x01020304, 1, gn, 1)
print(sk.hex())

t = T()
node = Sealed(t, K)
got = []
node.on_frame = lambda buf, n: got.append(bytes(buf[:n]))
b = bytearray(64)
node.send(memoryview(b)[: H.hello(b, 0x01020304, 400, 20, 238, 2, "kn-1", 1)])
print(t.sent[0].hex())
# The gateway's WELCOME for it: 20 bytes, its nonce, the tag under the session key (direction GATEWAY).
gw = Session(sk, GATEWAY, NODE)
w = bytearray(64)
n = H.welcome(w, 1, 0x01020304, 4, 500, 1600000000, 1)
w[n : n + 8] = gn
w[n + 8 : n + 16] = gw.key.tag(GATEWAY, w, n + 8)
wel = bytes(w[: n + 16])
print(wel.hex())
for bad in (1, 4, 5, 9, 21, 35):  # session, attempt, nonce, gateway nonce, tag: each changed, refused
    x = bytearray(wel)
    x[bad] ^= 1
    t.on_frame(x, len(x))
print("refused", node.forged, got)
t.on_frame(wel, len(wel))
print("taken", [g.hex() for g in got], node.s.raw == sk)
t.on_frame(wel, len(wel))  # the same WELCOME again: one per attempt
print("again", node.replays, len(got))
from micromesos.linkframe import WAKE, put_header
put_header(b, WAKE, 0, 1, 0, 0, 0)
node.send(memoryview(b)[:8])  # the session's first frame from the node: counter 1
print(t.sent[1].hex())
d = bytearray(t.sent[1])
print("open", gw.open(d, len(d)), gw.open(d, len(d)), gw.top)  # 8 (the frame's length), then -2: a replay
d[2] = 2
print("other session byte", gw.open(d, len(d)))  # -1: the tag covers it
""" % KEY


def test_the_documented_test_vector(mpy_run):
    out = mpy_run(VECTOR).check().lines()
    k = bytes.fromhex(KEY)
    # The derivation and the tags by Python's hmac, independently of linkauth.
    msg = b"micromesos link" + bytes.fromhex("01020304") + b"\x00\x01" + bytes(range(0xA0, 0xA8)) + b"\x01"
    sk = hmac.new(k, msg, hashlib.sha256).digest()
    assert sk.hex() == VECTOR_SK
    hello = bytes.fromhex(VECTOR_HELLO)
    assert hmac.new(k, b"\x01" + hello[:-8], hashlib.sha256).digest()[:8] == hello[-8:]
    wel = bytes.fromhex(VECTOR_WELCOME)
    assert hmac.new(sk, b"\x02" + wel[:-8], hashlib.sha256).digest()[:8] == wel[-8:]
    wake = bytes.fromhex(VECTOR_WAKE)
    assert hmac.new(sk, b"\x01" + wake[:-8], hashlib.sha256).digest()[:8] == wake[-8:]
    assert out[0] == VECTOR_SK, out
    assert out[1] == VECTOR_HELLO, out
    assert out[2] == VECTOR_WELCOME, out
    assert out[3] == "refused 6 []", out
    assert out[4] == "taken ['%s'] True" % wel[:20].hex(), out  # the 20-byte WELCOME to the link
    assert out[5] == "again 1 1", out
    assert out[6] == VECTOR_WAKE, out
    assert out[7] == "open 8 -2 1", out
    assert out[8] == "other session byte -1", out
def test_with_link_keys_a_node_with_its_key_runs_a_task_and_one_with_another_never_attaches(tmp_path):
    async def body():
        async with scaled_master() as m:
            cfg, path = gateway_config(tmp_path, m.port, status_update_retry_min_ms=2000,
                                       link_keys={"keyed-1": KEY, "keyed-2": KEY})
            gw = start_gateway(path)
            # A keyed node holds about 2 KB more on this 64-bit port (linkauth compiled from source, its datagram
            # buffer, a Session: LINK.md §8.5 has the 32-bit figures): 256k, where the other node tests run,
            # leaves it no room to import what AGENT needs.
            good, glog = start_node(tmp_path / "good", node_config_in(tmp_path / "good", cfg["link_port"],
                                                                     name="keyed-1", link_key=KEY), heapsize="320k")
            bad, blog = start_node(tmp_path / "bad", node_config_in(tmp_path / "bad", cfg["link_port"],
                                                                   name="keyed-2", link_key=OTHER))
            try:
                a = await registered(m, gw, "keyed-1")
                await m.launch(command="hello", agent_id=a.id, resources="cpus:0.1;mem:0.01")
                await wait_until(lambda: 2 in [s for _, s in updates_received(m, a.id)], 60,
                                 "TASK_FINISHED from the keyed node", gw)
                time.sleep(1.0)  # the other node has said HELLO many times by now (every rto)
                assert len(m.agents) == 1, [x.info for x in m.agents.values()]
                assert not gw.find("keyed-2"), gw.output()  # never attached: not even a log line
                no_problems(m)
            finally:
                stop(good, glog)
                stop(bad, blog)
                gw.stop()
                print("--- gateway ---\n" + gw.output(60))

    asyncio.run(body())


def test_with_link_keys_a_node_comes_back_through_a_restarted_gateway_under_its_old_agent_id(tmp_path):
    # The real gateway, SIGKILLed and started again from its checkpoint: it knows the node but none of its
    # session keys; the node's frames under the lost key go unanswered, it says HELLO, gets a new session and
    # runs the next task. The master sees the same agent re-register, no new one.
    async def body():
        async with scaled_master() as m:
            cfg, path = gateway_config(tmp_path, m.port, status_update_retry_min_ms=2000,
                                       link_keys={"keyed-1": KEY})
            gw = start_gateway(path)
            gw2 = None
            node, nlog = start_node(tmp_path / "n", node_config_in(tmp_path / "n", cfg["link_port"],
                                                                 name="keyed-1", link_key=KEY), heapsize="320k")
            try:
                a = await registered(m, gw, "keyed-1")
                await m.launch(command="hello", agent_id=a.id, resources="cpus:0.1;mem:0.01")
                await wait_until(lambda: [s for _, s in updates_received(m, a.id)].count(2) == 1, 60,
                                 "the first task finished", gw)
                gw.stop()  # SIGKILL: nothing written at exit
                mk = m.mark()
                gw2 = start_gateway(path)
                await m.wait_for(lambda e: e.name == "ReregisterSlaveMessage" and e.kind == "recv"
                                 and e.body["slave"]["id"] == a.id, since=mk, timeout=30)
                await m.launch(command="hello", agent_id=a.id, resources="cpus:0.1;mem:0.01")
                await wait_until(lambda: [s for _, s in updates_received(m, a.id)].count(2) == 2, 60,
                                 "the second task finished, after the restart", gw2)
                assert gw2.find("restored node keyed-1"), gw2.output()
                assert len(m.find("SlaveRegisteredMessage", since=mk, kind="send")) == 0  # the same agent
                assert len(m.agents) == 1
                no_problems(m)
            finally:
                stop(node, nlog)
                gw.stop()
                if gw2 is not None:
                    gw2.stop()
                    print("--- gateway after restart ---\n" + gw2.output(60))
                print("--- gateway ---\n" + gw.output(60))

    asyncio.run(body())


def node_config_in(d, port, **kw):
    d.mkdir(parents=True, exist_ok=True)
    return node_config(d, port, **kw)


def test_link_keys_in_the_gateway_config_are_checked(mpy_run):
    r = mpy_run("""
from mgateway import gateway
from micromesos.errors import ConfigError
for v in ({"n": "abc"}, {"n": 5}, ["%s"], {"n": "zz" * 16}):
    try:
        gateway.check({"master": "127.0.0.1:5050", "link_keys": v})
        print("accepted", v)
    except ConfigError as e:
        print(str(e).split(":")[0])
print(len(gateway.check({"master": "127.0.0.1:5050", "link_keys": {"n": "%s"}})["link_keys"]))
""" % (KEY, KEY), heapsize="1m").check()
    assert r.lines() == ["link_keys"] * 4 + ["1"], r.lines()


COUNTERS = r"""
from micromesos.linkauth import GATEWAY, NODE, Session
tx = Session(bytes(32), NODE, GATEWAY)
rx = Session(bytes(32), GATEWAY, NODE)
d = []
for i in range(40):  # counters 1..40
    b = bytearray(20)
    b[0:8] = b"\x15\x00\x01\x00\x00\x00\x00\x00"
    tx.seal(b, 8)
    d.append(b)
r = lambda i: rx.open(d[i - 1], 20)
print([r(i) for i in (1, 3, 2, 2, 3, 20)])  # in order, reordered once, twice (replays)
print([r(i) for i in (5, 19, 4, 18, 5)])  # 20 is top: 5 is 15 behind (taken once), 4 is 16 behind (too old)
f = bytearray(d[39])
f[10] ^= 1  # counter 40 changed: its tag fails, and top does not move
print(rx.open(f, 20), rx.top, r(40), r(40), rx.top)
print(rx.open(d[0], 19), rx.open(b"\x15", 1))  # short: forged
"""


def test_frame_counters_take_each_once_within_16_behind_the_highest_and_only_after_the_tag(mpy_run):
    out = mpy_run(COUNTERS).check().lines()
    assert out == ["[8, 8, 8, -2, -2, 8]", "[8, 8, -2, 8, -2]", "-1 20 8 -2 40", "-1 -1"], out


KEYED_FUZZ = HOSTILE_FRAMES + KEPT_TRANSPORT + r"""
import random
from mgateway.hub import LinkHub
from micromesos import linkframe as F, linkhello as H
from micromesos.linkauth import Key, Sealed

random.seed(5)
keys = {"f%d" % i: Key(bytes([i]) * 16) for i in range(4)}
to = {}  # addr -> datagrams the hub sent there


def sender(addr):
    return lambda d: to.setdefault(addr, []).append(bytes(d))


hub = LinkHub(sender, mtu=116, window=2, max_message=256, keys=keys)
sessions = []
hub.on_session = lambda p, fresh: sessions.append(p.name)


# Four real nodes, each with a session (HELLO, WELCOME, a DATA): valid datagrams to replay and mutate.
seeds = []
nodes = []
b = bytearray(128)
for i, name in enumerate(sorted(keys)):
    t = T(128)
    s = Sealed(t, keys[name])
    s.on_frame = lambda buf, n: None
    addr = ("10.0.1.%d" % i, 5000)
    nodes.append((t, s, addr))
    s.send(memoryview(b)[: H.hello(b, 100 + i, 1000, 50, 116, 2, name, 1)])
    hub.frame(addr, t.sent[-1], len(t.sent[-1]))
    w = to[addr][-1]
    t.on_frame(w, len(w))
    F.put_header(b, F.DATA, 0, w[2], 0, 0, 0)  # NODE_INFO (0x80) of its session
    b[8] = 0x80
    s.send(memoryview(b)[:20])
    hub.frame(addr, t.sent[-1], len(t.sent[-1])).flush()  # its ACK: a gateway datagram, reflected below
    seeds += t.sent + to[addr]
print("set up", sessions == sorted(keys), len(seeds))
sessions.clear()
to.clear()
state = [(p.session, p.addr, p.awake, p.nonce) for p in hub.peers.values()]
escapes, errors = hostile_frames(hub, seeds, 4000, lambda: ("10.0.%d.%d" % (random.getrandbits(1),
                                 random.getrandbits(3)), 5000), hub.tick)  # seeds replayed as they were, or changed
# Nothing started, nothing moved, nothing offered (every HELLO replayed is its node's running one), no RESET.
sent = [d for ds in to.values() for d in ds]
print(escapes, errors > 500, hub.forged > 500, hub.replays > 50, sessions, len(hub.peers),
      [(p.session, p.addr, p.awake, p.nonce) for p in hub.peers.values()] == state, len(sent), len(hub.pend))
# An offer survives its own HELLO replayed from elsewhere: f0 says HELLO again (attempt 2); the copy from
# another address is a replay; the node takes the WELCOME and its next frame starts the offered session.
t, s, addr = nodes[0]
p = hub.peers["f0"]
s.send(memoryview(b)[: H.hello(b, 100, 1000, 50, 116, 2, "f0", 2)])
h = t.sent[-1]
hub.frame(addr, h, len(h))
r0 = hub.replays
hub.frame(("10.0.9.9", 5000), h, len(h))
print("offer kept", hub.replays - r0, p.pend.addr == addr, p.session, len(to.get(("10.0.9.9", 5000), [])))
w = to[addr][-1]
t.on_frame(w, len(w))
F.put_header(b, F.ACK, 0, w[2], 0, 0, 0)
s.send(memoryview(b)[:8])
hub.frame(addr, t.sent[-1], len(t.sent[-1]))
print("taken", sessions, p.session == w[2], p.pend is None, p.addr == addr)
"""


def test_a_keyed_gateway_under_junk_changed_and_replayed_datagrams_from_anywhere(mpy_run):
    out = mpy_run(KEYED_FUZZ, heapsize="2m", timeout=120).check().lines()
    assert out[0] == "set up True 16", out
    assert out[1] == "0 True True True [] 4 True 0 0", out
    assert out[2] == "offer kept 1 True 1 0", out
    assert out[3] == "taken ['f0'] True True True", out


KEPT = r"""
import sys
from micromesos.linknode import NodeLink
from micromesos import linkhello


def node(nonce):
    return NodeLink(lambda f: None, "n-1", 1000, 50, mtu=128, window=2, max_message=256, nonce=nonce)


a = node(0x01020304)
a.link.resume(5, 300, 7)  # a session that ran a while
a.attempt = 9
b = linkhello.kept(a)
print(b.hex())
c = node(None)
print(linkhello.resume(c, b), c.up(), c.link.saved(), hex(c.nonce), c.attempt, c.link.hold)
print(linkhello.resume(node(1), b[:10]), linkhello.resume(node(1), b + bytes(40)), linkhello.resume(node(1), bytes(11)))
"""


def test_what_a_node_keeps_across_a_deep_sleep_without_a_key(mpy_run):
    out = mpy_run(KEPT).check().lines()
    assert out[0] == "05012c00070102030400" + "09", out  # session, nxt, rnxt, nonce, attempt (LINK.md §7.2)
    assert out[1] == "True True (5, 300, 7) 0x1020304 9 True", out
    assert out[2] == "False False False", out  # cut short; keyed bytes without a Sealed; no session


# Runs in MicroPython. argv: gateway port, node port. A keyed node and gateway over UDP on loopback; every
# datagram each sends is recorded, and an attacker replays them later from the right addresses (the node's own
# socket for its frames, the gateway's for the gateway's). Phases print one line each; see the test below.
REPLAY = r"""
import asyncio, sys, time
from micromesos.linkauth import Key, Sealed, key_bytes
from micromesos.linknode import NodeLink
from micromesos.linkudp import UDPNode
from mgateway.hub import LinkHub
from mgateway.udp import UDPHub

GW = int(sys.argv[1])
NP = int(sys.argv[2])
K = Key(key_bytes("%s"))
got_node = []
got_gw = []
sessions = []
rec_node = []  # every datagram the node sent, as sent
rec_gw = []


def make_hub():
    hs = UDPHub("127.0.0.1", GW, 512)
    raw = hs.sender

    def sender(addr):
        out = raw(addr)

        def tap(d):
            rec_gw.append(bytes(d))
            out(d)

        return tap

    hub = LinkHub(sender, mtu=500, window=4, max_message=4096, grace_ms=1000, keys={"kn-1": K})
    hs.on_frame = hub.frame
    hub.on_message = lambda p, kind, buf, s, e: got_gw.append((kind, bytes(buf[s:e])))
    hub.on_session = lambda p, fresh: sessions.append((p.session, fresh))
    return hs, hub, [asyncio.create_task(hs.run()), asyncio.create_task(hub.run(every_ms=20))]


class Node:
    # A node's RAM: a new one is a reboot (a new nonce) or, with resume(), a wake from deep sleep.
    def __init__(self, nonce=None):
        self.u = UDPNode("127.0.0.1", GW, 250, "127.0.0.1", NP)
        send = self.u.send

        def tap(d):
            rec_node.append(bytes(d))
            send(d)

        self.u.send = tap
        self.t = Sealed(self.u, K)
        self.nl = NodeLink(self.t.send, "kn-1", 400, 20, mtu=self.t.mtu, window=2, max_message=512, nonce=nonce)
        self.t.on_frame = self.nl.input
        self.t.after_batch = self.nl.link.flush
        self.nl.link.deliver = lambda kind, buf, s, e: got_node.append((kind, bytes(buf[s:e])))
        self.tasks = [asyncio.create_task(self.u.run()), asyncio.create_task(self.nl.link.timers())]

    async def cycle(self, t0, up=None, down=None):
        # One wake's exchange (the node is awake already): a message each way, then SLEEP.
        if up:
            self.nl.link.send(10, up)
        if down:
            hub.send(hub.peers["kn-1"], 7, down)
        for _ in range(3):
            await self.nl.linger(t0, 20)
            nap = await self.nl.sleep(400)
            if nap >= 0:
                return nap
        return -1

    def close(self):
        for t in self.tasks:
            t.cancel()
        self.u.close()


def replay(frames_node, frames_gw, hs, p):
    for d in frames_node:
        n.u.s.send(d)  # from the node's address, past its tap
    for d in frames_gw:
        hs.s.sendto(d, p.addr)


def state(p):
    # What a replay must not change: the node's session and clock, what each side received, the counters.
    return (p.session, p.nonce, p.attempt, p.awake, p.sleeps, p.addr, len(sessions), len(got_gw), len(got_node))


async def main():
    global n, hub
    hs, hub, tasks = make_hub()
    n = Node()
    # Session A: a message each way, a sleep, a wake (WAKE), another message each way.
    print("A connect", await n.nl.connect(), "micromesos.linkhello" in sys.modules)
    await n.cycle(time.ticks_ms(), b"status-A1", b"run-A1")
    await asyncio.sleep_ms(50)
    t0 = time.ticks_ms()
    print("A wake", await n.nl.wake())
    await n.cycle(t0, b"status-A2", b"run-A2")
    a_node, a_gw = list(rec_node), list(rec_gw)
    kinds = sorted(set(d[0] for d in a_node))
    print("A recorded", " ".join("%%02x" %% k for k in kinds))
    # Session B of the same boot (the node says HELLO again, as after a dead link), numbered as A was: the
    # session byte repeats, as it does every 255 sessions.
    p = hub.peers["kn-1"]
    p.session = 0
    await asyncio.sleep_ms(50)
    ok = await n.nl.connect()
    print("B connect", ok, len(sessions))  # the gateway's session starts at the node's first frame, not yet
    await n.cycle(time.ticks_ms(), b"status-B1", b"run-B1")
    print("B session", p.session, n.nl.link.session, sessions[-1])
    await asyncio.sleep_ms(100)
    before = state(p)
    f0, r0, nf0, nr0 = hub.forged, hub.replays, n.t.forged, n.t.replays
    # The replay of all of session A, each way, while the node sleeps.
    replay(a_node, a_gw, hs, p)
    await asyncio.sleep_ms(300)
    print("A replayed unchanged", state(p) == before, before == state(p) or (before, state(p)))
    print("A replayed dropped", hub.forged - f0 + hub.replays - r0 == len(a_node),
          n.t.forged - nf0 + n.t.replays - nr0 == len(a_gw), hub.replays - r0)
    # Session B's own frames again (within the session): counters seen, all dropped.
    b_node = rec_node[len(a_node):]
    b_gw = rec_gw[len(a_gw):]
    r0, nr0 = hub.replays, n.t.replays
    replay(b_node, b_gw, hs, p)
    await asyncio.sleep_ms(300)
    print("B replayed unchanged", state(p) == before)
    print("B replayed dropped", hub.replays - r0 == len(b_node), n.t.replays - nr0 == len(b_gw))
    # Session B goes on: the node wakes, a message each way.
    t0 = time.ticks_ms()
    print("B wake", await n.nl.wake(), n.nl.link.session == p.session)
    await n.cycle(t0, b"status-B2", b"run-B2")
    # Deep sleep: what the node keeps (NodeLink.saved, Sealed.saved), its RAM gone, then resumed.
    from micromesos import linkhello

    kept = linkhello.kept(n.nl, n.t)
    n.close()
    await asyncio.sleep_ms(100)
    n = Node()  # its RAM is new: another nonce until resume() puts the kept one back
    ok = linkhello.resume(n.nl, kept, n.t)
    t0 = time.ticks_ms()
    print("resume wake", len(kept), ok, await n.nl.wake(), len(sessions))
    await n.cycle(t0, b"status-R1", b"run-R1")
    # A real reboot: a new nonce, a new session, fresh; then its old boot's HELLO replayed changes nothing.
    old_hello = [d for d in rec_node if d[0] == 0x11][0]
    n.close()
    await asyncio.sleep_ms(100)
    n = Node()
    ok = await n.nl.connect()
    await n.cycle(time.ticks_ms(), b"status-C1", b"run-C1")
    print("reboot connect", ok, sessions[-1])
    before = state(p)
    r0 = hub.replays
    replay([old_hello], [], hs, p)
    await asyncio.sleep_ms(200)
    t0 = time.ticks_ms()
    # Dropped as a replay (the nonce of the node's last boot), not even offered a session.
    print("old HELLO changed nothing", state(p) == before, hub.replays - r0, p.pend is None, await n.nl.wake())
    await n.cycle(t0, b"status-C2", b"run-C2")
    # The gateway restarts (it knows the node from its checkpoint only): the node's WAKE under the old key is
    # dropped, unanswered; it says HELLO; a session, not fresh; what was held goes.
    for t in tasks:
        t.cancel()
    hs.close()
    await asyncio.sleep_ms(50)
    hs, hub, tasks = make_hub()
    p = hub.restore("kn-1", n.nl.nonce, 400, 20)
    hub.send(p, 7, b"held over the restart")
    t0 = time.ticks_ms()
    woke = await n.nl.wake()
    ok = woke or await n.nl.connect()
    await n.cycle(t0, b"status-D1")
    print("restart", woke, ok, sessions[-1], hub.forged > 0)
    print("GW", [b.decode() for k, b in got_gw])
    print("NODE", [b.decode() for k, b in got_node])
    print("SESSIONS", sessions)


asyncio.run(main())
"""


def test_replays_of_an_earlier_session_are_dropped_and_resume_reboot_and_restart_work(tmp_path):
    p = tmp_path / "replay.py"
    p.write_text(REPLAY % KEY)
    res = mpy.run_mpy(script=str(p), args=[str(mpy.free_port()), str(mpy.free_port())], heapsize="2m",
                      timeout=90).check()
    out = res.lines()
    print(res.out)
    assert out[0] == "A connect True False", res.out  # linkhello (the WELCOME's check) dropped after it
    assert out[1] == "A wake True", res.out
    # HELLO, DATA, ACK, WAKE, SLEEP: every kind of frame a node sends is in the recording.
    assert out[2] == "A recorded 11 13 14 15 16", res.out
    assert out[3] == "B connect True 1", res.out  # offered, not started: the node has not shown its key yet
    assert out[4] == "B session 1 1 (1, False)", res.out  # session B has A's number, the same nonce
    assert out[5] == "A replayed unchanged True True", res.out
    assert out[6] == "A replayed dropped True True 1", res.out  # the HELLO: a replay (older attempt)
    assert out[7] == "B replayed unchanged True", res.out
    assert out[8] == "B replayed dropped True True", res.out
    assert out[9] == "B wake True True", res.out
    assert out[10] == "resume wake 51 True True 2", res.out  # no new session
    assert out[11] == "reboot connect True (2, True)", res.out
    assert out[12] == "old HELLO changed nothing True 1 True True", res.out
    assert out[13] == "restart False True (1, False) True", res.out
    assert out[14] == "GW %s" % ["status-A1", "status-A2", "status-B1", "status-B2", "status-R1", "status-C1",
                                 "status-C2", "status-D1"], res.out
    assert out[15] == "NODE %s" % ["run-A1", "run-A2", "run-B1", "run-B2", "run-R1", "run-C1", "run-C2",
                                   "held over the restart"], res.out
    assert out[16] == "SESSIONS [(1, True), (1, False), (2, True), (1, False)]", res.out


# Runs on the 32-bit device model. What a key costs a node: the module, a Sealed (its long-term Key and one
# datagram buffer of the transport's mtu), a Session (per session), and the heap allocated per keyed datagram
# sent and per one received and taken (hashlib's two SHA-256 objects and digests, a memoryview).
KEYED_RAM = r"""
import gc, sys
import asyncio, socket, errno, random, time, hashlib
import micromesos, micromesos.errors
from micromesos.linkframe import WAKE, put_header


class T:  # a transport (UDPNode's surface) that sends nothing: only the keyed layer's costs are counted
    mtu = 250
    after_batch = on_frame = None

    def send(self, frame):
        pass


gc.collect()
m0 = gc.mem_alloc()
from micromesos.linkauth import GATEWAY, NODE, Key, Sealed, Session
gc.collect()
m1 = gc.mem_alloc()
u = T()
gc.collect()
m2 = gc.mem_alloc()
t = Sealed(u, Key(bytes(16)))
gc.collect()
m3 = gc.mem_alloc()
t.s = Session(bytes(32), NODE, GATEWAY)  # what a WELCOME makes
gc.collect()
m4 = gc.mem_alloc()
f = bytearray(8)
put_header(f, WAKE, 0, 1, 0, 0, 0)
gw = Session(bytes(32), GATEWAY, NODE)
N = 20
ins = []
for i in range(N):
    d = bytearray(20)
    d[0:8] = f
    gw.seal(d, 8)
    ins.append(d)
took = []
t.on_frame = lambda b, n: took.append(n)
gc.collect()
gc.disable()
a1 = gc.mem_alloc()
for i in range(N):
    t.send(f)
a2 = gc.mem_alloc()
for d in ins:
    t._frame(d, 20)
a3 = gc.mem_alloc()
gc.enable()
print(m1 - m0, m3 - m2, m4 - m3, (a2 - a1) // N, (a3 - a2) // N, len(took))
"""

# Measured (32-bit device model): linkauth 2960 B loaded / 992 B frozen; Sealed 752 B; Session 320 B; 448 B
# allocated per datagram sent, 421 B per one received (the tags before session keys, the same way: 544 B and
# 472 B: a bytes copy of each frame and the tag joined to it). About 10 % of room; past it, a RAM regression.
KEYED_RAM_BUDGET = {"loaded": 3300, "frozen": 1100}


@pytest.mark.parametrize("device", ["loaded", "frozen"])
def test_what_a_key_costs_a_node_on_the_device_model(mpy_run, device):
    out = mpy_run(KEYED_RAM, device=device, heapsize="256k", timeout=300).check().out.split()
    module, sealed, session, sent, received, taken = map(int, out)
    print("linkauth on %s: module %d B, Sealed %d B, Session %d B; per datagram sent %d B, received %d B"
          % (device, module, sealed, session, sent, received))
    assert taken == 20
    assert module <= KEYED_RAM_BUDGET[device] and sealed <= 800 and session <= 360, out
    assert sent <= 500 and received <= 470, out
