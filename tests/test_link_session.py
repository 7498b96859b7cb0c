# Sessions and sleep on the link (docs/LINK.md §3, §7): nodes that sleep most of the time, a gateway hub that
# holds what comes for them, over UDP through tools/linksim.py with loss, duplication and reordering. MIT licence.
import pytest

import linksim
import mpy
from gwfixture import HOSTILE_FRAMES

# Runs in MicroPython. argv: relay port, gateway port, nodes, messages each way per node.
SCRIPT = r"""
import asyncio, sys, time
from micromesos.link import Link
from micromesos.linknode import NodeLink
from mgateway.hub import LinkHub
from micromesos.linkudp import UDPNode
from mgateway.udp import UDPHub

RELAY, GW, K, M = [int(x) for x in sys.argv[1:5]]
W = 500  # each node wakes every W ms ...
A = 40  # ... and listens at least A ms
GRACE = 1500
Link.rto_ms = 100  # loopback: a tenth of the default
Link.rto_max_ms = 800


def body(name, i):
    return ("%s:%d:" % (name, i)).encode() + bytes(i % 200)


class Log:
    def __init__(self):
        self.got = {}
        self.bad = 0

    def add(self, name, kind, data):
        lst = self.got.setdefault(name, [])
        i = len(lst)
        if kind != i & 0x7F or bytes(data) != body(name, i):
            self.bad += 1
        lst.append(i)


gwlog = Log()
nodelog = Log()
hubsock = UDPHub("127.0.0.1", GW, 512)
hub = LinkHub(hubsock.sender, mtu=512, window=4, max_message=4096, grace_ms=GRACE)
hubsock.on_frame = hub.frame
hub.on_message = lambda p, kind, buf, s, e: gwlog.add(p.name, kind, buf[s:e])
sessions = []
hub.on_session = lambda p, fresh: sessions.append((p.name, fresh))
unvouched = []  # (name, ms) whenever the hub would not answer a ping for a node that keeps its cycle
early = []  # ... while it had heard the node within W + GRACE: the hub gave up on it too soon
stopped = {}  # name -> ticks_ms the hub's wake clock for the stopped node starts from (see node())
gone_at = {}  # name -> ticks_ms the hub was first seen not vouching for a stopped node
awake_ms = {}  # name -> ms the node spent awake
cycles = {}
trace = {}  # name -> [(ms since the start, what)]: the node's handshakes, printed for a failure's message
stall = [0]  # the longest this process's loop did not run (watch() measures it)
T0 = time.ticks_ms()


def note(name, what):
    lst = trace.setdefault(name, [])
    lst.append((time.ticks_diff(time.ticks_ms(), T0), what))
    if len(lst) > 60:
        lst.pop(0)


async def gateway_sends():
    sent = {}
    while True:
        for p in list(hub.peers.values()):
            i = sent.get(p.name, 0)
            if i < M:
                hub.send(p, i & 0x7F, body(p.name, i))  # whenever: held while the node sleeps
                sent[p.name] = i + 1
        await asyncio.sleep_ms(70)


async def watch():
    # Every 5 ms, all along: when the hub stops vouching for the stopped node is seen here, whenever the
    # other nodes end (waiting for them first measured their lateness, not the hub's: 3.7 s in 1 loaded run).
    # Its own lateness is this process's: a loop that did not run for longer than the grace had nodes that
    # could not wake either (hub and nodes share it), so the hub was right to stop vouching then.
    prev = time.ticks_ms()
    while True:
        now = time.ticks_ms()
        if time.ticks_diff(now, prev) > stall[0]:
            stall[0] = time.ticks_diff(now, prev)
        prev = now
        for p in hub.peers.values():
            if p.name in stopped:
                if p.name not in gone_at and not hub.vouch(p):
                    gone_at[p.name] = time.ticks_ms()
            elif not hub.vouch(p):
                quiet = time.ticks_diff(now, p.last)
                if not unvouched or unvouched[-1][0] != p.name:
                    note(p.name, "hub: not vouched, due %d, heard %d ms ago" % (time.ticks_diff(p.due, T0), quiet))
                unvouched.append((p.name, now))
                if quiet < W + GRACE - 10:  # 10 ms: this clock is read before vouch() reads its own
                    early.append((p.name, quiet))
        await asyncio.sleep_ms(5)


async def node(k):
    name = "node-%d" % k
    sock = UDPNode("127.0.0.1", RELAY, 250)
    nl = NodeLink(sock.send, name, W, A, mtu=250, window=2, max_message=2048)
    asleep = [False]

    def on_frame(buf, n):
        if not asleep[0]:  # the radio is off while asleep
            nl.input(buf, n)

    sock.on_frame = on_frame
    sock.after_batch = nl.link.flush
    nl.link.deliver = lambda kind, buf, s, e: nodelog.add(name, kind, buf[s:e])
    asyncio.create_task(sock.run())
    asyncio.create_task(nl.link.timers())
    sent = 0
    up = False
    nap = 0
    awake_ms[name] = 0
    cycles[name] = 0
    while True:
        t0 = time.ticks_ms()
        if not up:
            up = await nl.connect(20)
            note(name, "connect %s" % up)
        elif not await nl.wake():
            note(name, "wake unanswered")
            up = await nl.connect(20)
            note(name, "connect %s" % up)
        for _ in range(2):  # a couple of messages per wake, as updates would go
            if up and sent < M and nl.link.send(sent & 0x7F, body(name, sent)):
                sent += 1
        while up:
            if not await nl.linger(t0, A):
                note(name, "linger: session gone")
                up = False
                break
            asked = time.ticks_ms()  # before the SLEEP goes: the gateway's due is later than this + W
            heard = hub.peers[name].sleeps
            nap = await nl.sleep(W)
            note(name, "sleep %d" % nap)
            if nap >= 0:
                break
        awake_ms[name] += time.ticks_diff(time.ticks_ms(), t0)
        cycles[name] += 1
        done = sent == M and len(nodelog.got.get(name, ())) == M
        if done and k == 0:
            # Node 0 stops waking once its work is done. If every copy of its last SLEEP was lost, the hub
            # goes by the last frame it heard instead (hub.tick(): due = last + W): 2 runs in 32.
            p = hub.peers[name]
            stopped[name] = asked if p.sleeps > heard else p.last
            asleep[0] = True
            return
        asleep[0] = True
        await asyncio.sleep_ms(nap)
        asleep[0] = False


async def main():
    asyncio.create_task(hubsock.run())
    asyncio.create_task(hub.run(every_ms=20))
    asyncio.create_task(gateway_sends())
    asyncio.create_task(watch())
    for k in range(K):
        asyncio.create_task(node(k))
    t0 = time.ticks_ms()
    names = ["node-%d" % k for k in range(K)]
    while time.ticks_diff(time.ticks_ms(), t0) < 150000:
        await asyncio.sleep_ms(50)
        if all(len(gwlog.got.get(n, ())) == M and len(nodelog.got.get(n, ())) == M for n in names) \
                and names[0] in gone_at:
            break
    # Node 0 stopped waking after its last SLEEP: the hub vouches until due + grace, then stops.
    gone = time.ticks_diff(gone_at[names[0]], stopped[names[0]]) if names[0] in gone_at else -1
    for n in names:
        print("TRACE", n, trace.get(n))
    for n in names:
        print("NODE", n, len(nodelog.got.get(n, ())), len(gwlog.got.get(n, ())), cycles[n], awake_ms[n])
    print("RESULT", nodelog.bad + gwlog.bad, len(early), gone, len(sessions),
          sum(p.sleeps for p in hub.peers.values()), hubsock.bad, hubsock.errors, stall[0], len(unvouched))


asyncio.run(main())
"""


@pytest.fixture
def script(tmp_path):
    p = tmp_path / "sessions.py"
    p.write_text(SCRIPT)
    return str(p)


def test_sleeping_nodes_get_held_messages_once_in_order_and_stop_being_vouched_for(script):
    k, m = 3, 12
    gw = mpy.free_port()
    imp = linksim.Impair(loss=0.2, dup=0.1, reorder=0.2, reorder_ms=30, delay_ms=2, jitter_ms=3)
    r = linksim.Relay(("127.0.0.1", 0), ("127.0.0.1", gw), imp, seed=9).start()
    try:
        res = mpy.run_mpy(script=script, args=[str(r.port), str(gw), str(k), str(m)], heapsize="512k",
                          timeout=240).check()
    finally:
        r.stop()
    nodes = [ln.split()[1:] for ln in res.lines() if ln.startswith("NODE")]
    bad, early, gone, sessions, sleeps, frame_bad, errors, stall_ms, unvouched = map(
        int, res.lines()[-1].split()[1:])
    assert len(nodes) == k
    why = "%s\nrelay %s, its loop stalled %.3f s at most; MicroPython's loop %d ms; %d samples unvouched" % (
        res.out, r.stats, r.stall_s, stall_ms, unvouched)
    for name, to_node, to_gw, cycles, awake in nodes:
        # Every message each way, once, in order (Log counts any out of place as bad).
        assert int(to_node) == m and int(to_gw) == m, why
        assert int(cycles) >= 3, why  # it really slept between wakes
    assert bad == 0 and frame_bad == 0 and errors == 0, why
    assert sessions >= k and sleeps >= 3 * k, why
    assert r.stats["up"]["dropped"] > 0 and r.stats["down"]["duplicated"] > 0, why
    # A node that keeps its cycle is vouched for as long as the hub hears from it: the hub stops only once it
    # has heard nothing for its announced sleep (W) + the grace. That does happen to a cycling node here, and
    # is right: awake but waiting for an ack, it retransmits at most every rto_max_ms, and at 20 % loss each
    # way its frames can all be lost for 2 s (the truth is never hidden longer than W + grace, issue 11).
    # Seen in 9 runs of 70 once, and in CI with neither loop stalled: so no count of those is asserted, only
    # that none came early (checked in watch(), every 5 ms).
    assert early == 0, why
    # The node that stopped: vouched for no less than its announced sleep + grace (never early), and not
    # much longer (the hub checks every 20 ms; 1 s of slack for a loaded machine).
    assert 500 + 1500 <= gone <= 500 + 1500 + 1000, why


# Runs in MicroPython. argv: relay port, gateway port. One node, nothing to say: what an idle wake costs.
IDLE = r"""
import asyncio, sys, time
from micromesos.linknode import NodeLink
from mgateway.hub import LinkHub
from micromesos.linkudp import UDPNode
from mgateway.udp import UDPHub

RELAY, GW = int(sys.argv[1]), int(sys.argv[2])
hubsock = UDPHub("127.0.0.1", GW, 512)
hub = LinkHub(hubsock.sender, mtu=512, window=4)
hubsock.on_frame = hub.frame
sock = UDPNode("127.0.0.1", RELAY, 250)
count = [0]


def out(frame):
    count[0] += len(frame)
    sock.send(frame)


nl = NodeLink(out, "idle-1", 200, 20, mtu=250, window=1, max_message=512)


def on_frame(buf, n):
    count[0] += n
    nl.input(buf, n)


sock.on_frame = on_frame
sock.after_batch = nl.link.flush


async def main():
    for t in (hubsock.run(), hub.run(every_ms=20), sock.run(), nl.link.timers()):
        asyncio.create_task(t)
    print("connected", await nl.connect())
    costs = []
    for cycle in range(8):
        t0 = time.ticks_ms()
        count[0] = 0
        if cycle and not await nl.wake():
            print("no answer to WAKE")
        await nl.linger(t0, 20)
        nap = await nl.sleep(200)
        await asyncio.sleep_ms(30)  # the last answer is in
        costs.append(count[0])
        await asyncio.sleep_ms(max(0, nap - 30))
    print("COSTS", " ".join(str(c) for c in costs[1:]))  # cycle 0 began with HELLO/WELCOME


asyncio.run(main())
"""


def test_an_idle_wake_costs_36_bytes_of_frames(tmp_path):
    # WAKE 8 + its ACK 8 + SLEEP 12 + its ACK 8 (LINK.md §7.4), counted at the node, both ways.
    p = tmp_path / "idle.py"
    p.write_text(IDLE)
    gw = mpy.free_port()
    r = linksim.Relay(("127.0.0.1", 0), ("127.0.0.1", gw), linksim.Impair(delay_ms=1), seed=1).start()
    try:
        res = mpy.run_mpy(script=str(p), args=[str(r.port), str(gw)], timeout=60).check()
    finally:
        r.stop()
    costs = [int(x) for x in res.lines()[-1].split()[1:]]
    print("bytes per idle wake cycle:", costs)
    assert len(costs) == 7
    assert sorted(costs)[3] == 36, res.out  # the median: a retransmission on a loaded machine may add one


# Runs in MicroPython. argv: gateway port. The hub goes away while the node sleeps and a new one, knowing
# the node only from a checkpoint (restore), takes its place: RESET, HELLO, the same nonce, held messages.
RESTART = r"""
import asyncio, sys, time
from micromesos.linknode import NodeLink
from mgateway.hub import LinkHub
from micromesos.linkudp import UDPNode
from mgateway.udp import UDPHub

GW = int(sys.argv[1])
got_node = []
got_gw = []
sessions = []


def make_hub():
    hs = UDPHub("127.0.0.1", GW, 512)
    hub = LinkHub(hs.sender, mtu=512, window=4, max_message=4096, grace_ms=1000)
    hs.on_frame = hub.frame
    hub.on_message = lambda p, kind, buf, s, e: got_gw.append((kind, bytes(buf[s:e])))
    hub.on_session = lambda p, fresh: sessions.append(fresh)
    tasks = [asyncio.create_task(hs.run()), asyncio.create_task(hub.run(every_ms=20))]
    return hs, hub, tasks


sock = UDPNode("127.0.0.1", GW, 250)
nl = NodeLink(sock.send, "rs-1", 300, 20, mtu=250, window=2, max_message=512)
sock.on_frame = nl.input
sock.after_batch = nl.link.flush
nl.link.deliver = lambda kind, buf, s, e: got_node.append((kind, bytes(buf[s:e])))


async def cycle(t0):
    await nl.linger(t0, 20)
    return await nl.sleep(300)


async def main():
    asyncio.create_task(sock.run())
    asyncio.create_task(nl.link.timers())
    hs, hub, tasks = make_hub()
    print("connect", await nl.connect())
    nl.link.send(1, b"before")
    hub.send(hub.peers["rs-1"], 2, b"to node 1")
    nap = await cycle(time.ticks_ms())
    # The gateway restarts while the node sleeps.
    for t in tasks:
        t.cancel()
    hs.close()
    await asyncio.sleep_ms(20)
    hs, hub, tasks = make_hub()
    p = hub.restore("rs-1", nl.nonce, 300, 20)
    print("vouched after restart", hub.vouch(p))
    hub.send(p, 3, b"held across the restart")
    await asyncio.sleep_ms(nap)
    t0 = time.ticks_ms()
    woke = await nl.wake()
    print("wake answered", woke, "session kept", nl.up())
    if not woke:
        print("reconnect", await nl.connect())
    nl.link.send(4, b"after")
    await cycle(t0)
    print("linkhello loaded", "micromesos.linkhello" in sys.modules)
    print("NODE", got_node)
    print("GW", got_gw)
    print("SESSIONS", sessions, nl.resets)


asyncio.run(main())
"""


def test_a_gateway_restart_resets_the_session_and_the_node_comes_back(tmp_path):
    p = tmp_path / "restart.py"
    p.write_text(RESTART)
    res = mpy.run_mpy(script=str(p), args=[str(mpy.free_port())], timeout=60).check()
    out = res.lines()
    assert out[:5] == ["connect True", "vouched after restart True", "wake answered False session kept False",
                       "reconnect True", "linkhello loaded False"], res.out
    assert out[5] == "NODE [(2, b'to node 1'), (3, b'held across the restart')]", res.out
    assert out[6] == "GW [(1, b'before'), (4, b'after')]", res.out
    # Fresh the first time (a nonce never seen), not after the restart (the checkpoint knew it); one RESET.
    assert out[7] == "SESSIONS [True, False] 1", res.out


HUB_FUZZ = HOSTILE_FRAMES + r"""
import random
from mgateway.hub import LinkHub
from micromesos import linkframe as F, linkhello as H

random.seed(3)
counts = {"resets": 0, "frames": 0}


def out(frame):
    counts["frames"] += 1
    if frame[0] & 15 == F.RESET:
        counts["resets"] += 1


def sender(addr):
    return out


hub = LinkHub(sender, mtu=128, window=2, max_message=256)
hub.max_nodes = 16
seeds = []
b = bytearray(128)
for i in range(40):
    seeds.append(bytes(b[:H.hello(b, i, 1000, 50, 128, 2, "n%d" % i, i)]))
for t in (F.DATA, F.ACK, F.WAKE, F.SLEEP, F.RESET):
    F.put_header(b, t, 0, 1, 0, 0, 0)
    seeds.append(bytes(b[:{F.DATA: 20, F.SLEEP: 12, F.RESET: 9}.get(t, 8)]))


def tick():
    hub.tick()
    for p in hub.peers.values():
        if p.link is not None:
            p.link.poll()


escapes, errors = hostile_frames(hub, seeds, 20000, lambda: ("10.0.0.%d" % random.getrandbits(6), 5000), tick)
resets = counts["resets"]
print(escapes, errors > 1000, len(hub.peers) <= 16, hub.refused > 0, len(hub._resets) <= 256,
      len(hub.by_addr) <= len(hub.peers), resets < 200)
"""


def test_the_hub_takes_hostile_frames_from_many_addresses_with_bounded_tables(mpy_run):
    # Random and mutated frames (HELLOs with many names among them) from 64 addresses: only FrameError comes
    # out, the node table stops at max_nodes (FULL), RESETs stay rate-limited (one per address per second).
    out = mpy_run(HUB_FUZZ, heapsize="1m", timeout=120).check().out.split()
    assert out[-7:] == ["0", "True", "True", "True", "True", "True", "True"], out


MOVE = r"""
from mgateway.hub import LinkHub
from micromesos import linkframe as F, linkhello as H

sent = {}


def sender(addr):
    return lambda frame: sent.setdefault(addr, []).append(bytes(frame))


hub = LinkHub(sender, mtu=128, window=2, max_message=256)
b = bytearray(128)
n = H.hello(b, 77, 1000, 50, 128, 2, "mover", 1)
hub.frame("A", b, n)
p = hub.peers["mover"]
for i in range(3):
    hub.send(p, 10 + i, b"m%d" % i)
print([f[8] for f in sent["A"] if f[0] & 15 == F.DATA])  # the window's worth went to A, unacknowledged
n = H.hello(b, 77, 1000, 50, 128, 2, "mover", 2)  # the same node, a new attempt, from another address
hub.frame("B", b, n)
print([f[8] for f in sent["B"] if f[0] & 15 == F.DATA], hub.by_addr.get("A") is None, p.addr)
"""


def test_a_node_that_moves_address_gets_what_was_unacknowledged_at_the_old_one(mpy_run):
    out = mpy_run(MOVE).check().out.splitlines()
    assert out == ["[10, 11]", "[10, 11] True B"], out
