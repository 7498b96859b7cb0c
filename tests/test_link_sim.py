# The link over real UDP sockets through the link simulator (tools/linksim.py): a node end and a gateway end
# in the MicroPython unix port, 20 % loss + duplication + reordering each way. MIT licence.
import os
import socket
import time

import pytest

import linksim
import mpy

# Runs in MicroPython. argv: relay port, gateway port, messages each way, mtu, window.
PEERS = r"""
import asyncio, gc, sys
from micromesos.link import Link
from micromesos.linkudp import UDPNode
from mgateway.udp import UDPHub

RELAY, GW, N, MTU, WIN = [int(x) for x in sys.argv[1:6]]


def body(i, way):
    n = 2 + (i * 37 + way * 11) % 700  # 2..701 bytes: one to four frames at mtu 250
    b = bytearray(n)
    b[0] = i >> 8
    b[1] = i & 255
    for j in range(2, n):
        b[j] = (i + j + way) & 255
    return b


class End:
    def __init__(self, way):
        self.way = way
        self.got = self.bad = 0

    def deliver(self, kind, buf, a, e):
        i = buf[a] << 8 | buf[a + 1]
        if i != self.got or kind != i & 0x7F or bytes(buf[a:e]) != bytes(body(i, 1 - self.way)):
            self.bad += 1
        self.got += 1


def link(out):
    lk = Link(out, MTU, WIN, max_message=1024)
    lk.rto_ms = 100
    return lk


async def pump(lk, way, i, n):
    while i < n and not lk.down:  # a dead link (max_tries) ends the run: RESULT then shows it
        if lk.send(i & 0x7F, body(i, way)):
            i += 1
        else:
            await asyncio.sleep_ms(5)


async def main():
    node = UDPNode("127.0.0.1", RELAY, MTU)
    ln = link(node.send)
    en = End(0)
    ln.deliver = en.deliver
    node.on_frame = ln.input
    node.after_batch = ln.flush
    hub = UDPHub("127.0.0.1", GW, MTU)
    eg = End(1)
    gw = []

    def on_frame(addr, buf, n):
        if not gw:  # the first frame from the node (the relay's port for it) makes the gateway's end
            lk = link(hub.sender(addr))
            lk.deliver = eg.deliver
            lk.start(1)
            gw.append((addr, lk))
            asyncio.create_task(lk.timers())
        elif addr != gw[0][0]:
            return None
        lk = gw[0][1]
        lk.input(buf, n)
        return lk

    hub.on_frame = on_frame
    ln.start(1)
    for t in (node.run(), hub.run(), ln.timers()):
        asyncio.create_task(t)

    async def phase(a, b):
        t = asyncio.create_task(pump(ln, 0, a, b))
        while not gw:
            await asyncio.sleep_ms(10)
        await pump(gw[0][1], 1, a, b)
        await t
        waited = 0
        while not (en.got == b and eg.got == b and ln.idle() and gw[0][1].idle()) and waited < 100000 \
                and not (ln.down or gw[0][1].down):
            await asyncio.sleep_ms(20)
            waited += 20

    # Half the messages first: then both ends have made everything they keep. The heap after the second
    # half, everything acknowledged, against the heap after the first: what the link leaves behind.
    await phase(0, N // 2)
    gc.collect()
    m0 = gc.mem_alloc()
    await phase(N // 2, N)
    await asyncio.sleep_ms(50)
    gc.collect()
    m1 = gc.mem_alloc()
    lg = gw[0][1]
    print("RESULT", en.got, eg.got, en.bad + eg.bad, ln.sent + lg.sent, ln.resent + lg.resent,
          ln.dups + lg.dups, ln.dead + lg.dead, ln.beyond + lg.beyond, node.bad + hub.bad,
          node.errors + hub.errors, m1 - m0)


asyncio.run(main())
"""


@pytest.fixture
def peers_script(tmp_path):
    p = tmp_path / "peers.py"
    p.write_text(PEERS)
    return str(p)


def run_peers(script, impair, seed, n=100, mtu=250, window=4):
    gw = mpy.free_port()  # a TCP port free now; the UDP one of the same number is all but surely free too
    r = linksim.Relay(("127.0.0.1", 0), ("127.0.0.1", gw), impair, seed=seed).start()
    try:
        res = mpy.run_mpy(script=script, args=[str(r.port), str(gw), str(n), str(mtu), str(window)],
                          heapsize="256k", timeout=240).check()
    finally:
        r.stop()
    line = [ln for ln in res.lines() if ln.startswith("RESULT")][-1].split()[1:]
    keys = ("node_got", "gw_got", "bad", "sent", "resent", "dups", "dead", "beyond", "frame_errors",
            "handler_errors", "heap_delta")
    return dict(zip(keys, map(int, line))), r.stats


@pytest.mark.parametrize("seed", [1, 2])
def test_every_message_once_in_order_through_loss_duplication_and_reordering(peers_script, seed):
    imp = linksim.Impair(loss=0.2, dup=0.1, reorder=0.2, reorder_ms=40, delay_ms=2, jitter_ms=5)
    got, stats = run_peers(peers_script, imp, seed, n=200)
    print("link over linksim (seed %d): %s; relay %s" % (seed, got, stats))
    # The impairments really happened, both ways.
    for way in ("up", "down"):
        assert stats[way]["dropped"] > 0.1 * stats[way]["in"]
        assert stats[way]["duplicated"] > 0 and stats[way]["reordered"] > 0
    # 200 messages each way (1..4 frames each), every one delivered once, in order, intact.
    assert got["node_got"] == 200 and got["gw_got"] == 200 and got["bad"] == 0
    assert got["dups"] > 0  # duplicates arrived and were suppressed
    # Bounded retransmission: with a fifth of the frames (and of the acks) lost each way, fewer resends
    # than first sends; no frame ran out of tries; nothing broke the rules or escaped.
    assert 0 < got["resent"] < got["sent"]
    assert got["dead"] == 0 and got["beyond"] == 0 and got["frame_errors"] == 0 and got["handler_errors"] == 0
    # The second hundred messages leave no more on the heap than the first did (a leak per message or per
    # frame would show here: 100 messages are ~190 frames each way; one 16-byte block per message on one
    # side alone is 1600 B). Noise: each transport's run() keeps the last datagram it read (a 250-byte frame
    # or an 8-byte ACK, as it happened) and the GC is conservative: up to 768 B either way, about 1 run in 8
    # (measured; with 50 messages per half and a 512 B bound this failed 1 run in 20).
    assert abs(got["heap_delta"]) < 1024


def test_a_clean_link_sends_each_frame_once(peers_script):
    got, stats = run_peers(peers_script, linksim.Impair(delay_ms=1), 5, n=50)
    assert got["node_got"] == 50 and got["gw_got"] == 50 and got["bad"] == 0
    assert got["resent"] == 0 and got["dups"] == 0 and stats["up"]["dropped"] == 0


# --- the simulator itself (CPython) -------------------------------------------------------------

def echo_gateway():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    return s


def test_linksim_relays_both_ways_and_counts_what_it_did():
    gw = echo_gateway()
    r = linksim.Relay(("127.0.0.1", 0), gw.getsockname(), linksim.Impair(dup=1.0, delay_ms=0), seed=1).start()
    node = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    node.settimeout(2)
    try:
        node.sendto(b"hello", ("127.0.0.1", r.port))
        seen = []
        deadline = time.time() + 5
        while len(seen) < 2 and time.time() < deadline:
            try:
                data, addr = gw.recvfrom(100)
            except socket.timeout:
                continue
            seen.append((data, addr))
        assert [d for d, _ in seen] == [b"hello", b"hello"]  # duplicated
        assert seen[0][1][1] != node.getsockname()[1]  # from the relay's port for this node
        gw.sendto(b"back", seen[0][1])
        assert node.recvfrom(100)[0] == b"back"
    finally:
        r.stop()
        gw.close()
        node.close()
    assert r.stats["up"]["in"] == 1 and r.stats["up"]["duplicated"] == 1 and r.stats["up"]["out"] == 2
    assert r.stats["down"]["in"] == 1


def test_linksim_is_repeatable_and_checks_its_settings(monkeypatch):
    st1, st2 = linksim._stats(), linksim._stats()
    imp = linksim.Impair(loss=0.3, dup=0.2, reorder=0.5)
    import random
    a = [imp.copies(random.Random(4), st1) for _ in range(1)]
    b = [imp.copies(random.Random(4), st2) for _ in range(1)]
    assert a == b and st1 == st2
    with pytest.raises(ValueError):
        linksim.Impair(loss=1.5)
    with pytest.raises(ValueError):
        linksim.Impair(delay_ms=-1)
    with pytest.raises(ValueError):
        linksim.Relay(("10.0.0.1", 0), ("127.0.0.1", 9))  # loopback only by default
    monkeypatch.setenv("LINK_LOSS", "0.25")
    monkeypatch.setenv("LINK_REORDER_MS", "7")
    e = linksim.Impair.from_env(dup=0.5)
    assert (e.loss, e.dup, e.reorder_ms) == (0.25, 0.5, 7.0)


def test_linksim_command_line_runs_and_writes_stats(tmp_path):
    import subprocess
    import sys
    out = tmp_path / "stats.json"
    p = subprocess.run([sys.executable, os.path.join(mpy.ROOT, "tools", "linksim.py"), "--upstream",
                        "127.0.0.1:9", "--loss", "0.2", "--seconds", "0.3", "--stats", str(out)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "loss 0.20" in p.stdout and out.exists()
