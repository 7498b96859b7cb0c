# 100 sleeping nodes through one gateway (issue 11: "100 nodes through one gateway on this 2-core machine with
# every ping answered"), against the stand-in master. MIT licence. The gateway and the 100 nodes (one
# MicroPython process holding them all, tools/gateway_nodes.py) run in the unix port; clocks at 1/15: the
# master pings every 1 s (15 s) and gives up after 5 missed pings; the nodes sleep 4 s (60 s) of every ~4.1 s.
import asyncio
import os
import time

from gwfixture import gateway_config, node_script, start_gateway, start_node
from standin import StandinMaster
from test_gateway import _node_attr, no_problems

PING, MISSED = 1.0, 5
K = 100
W, A, SPAN = 4000, 100, 20.0


def test_100_sleeping_nodes_through_one_gateway_have_every_ping_answered(tmp_path):
    async def body():
        async with StandinMaster(ping_interval=PING, max_missed=MISSED, ping_timeout=PING * MISSED) as m:
            cfg, path = gateway_config(tmp_path, m.port, grace_ms=2000, log_level="info")
            gw = start_gateway(path)
            nodes = start_node(node_script(tmp_path), cfg["link_port"], "n", W, A, count=K, heapsize="16m")
            try:
                deadline = time.time() + 60
                while time.time() < deadline:
                    regs = [a for a in m.agents.values() if a.state == "registered"]
                    if len(regs) == K:
                        break
                    await asyncio.sleep(0.2)
                if len(regs) < K and os.environ.get("GWCORE_DUMP"):
                    with open(os.environ["GWCORE_DUMP"] + ".gw", "w") as f:
                        f.write(gw.output(100000))
                    with open(os.environ["GWCORE_DUMP"] + ".nodes", "w") as f:
                        f.write(nodes.output(100000))
                    with open(os.environ["GWCORE_DUMP"] + ".master", "w") as f:
                        f.write("\n".join(e.line(m.t0) for e in m.events))
                if len(regs) < K:
                    names = {_node_attr(a.info) for a in regs}
                    miss = [i for i in range(K) if "n-%d" % i not in names]
                    raise AssertionError("%d registered; missing %s\n%s\n%s" % (len(regs), miss, "\n".join(ln for _, ln in gw.find("")[-80:]), "\n".join(ln for _, ln in nodes.find("@n-%d$" % miss[0]))))
                assert len({a.pid for a in regs}) == K
                mk = m.mark()
                t0 = time.time()
                await asyncio.sleep(SPAN)
                pings, pongs = {}, {}
                for e in m.find("PingSlaveMessage", since=mk, kind="send"):
                    pings[e.dst] = pings.get(e.dst, 0) + 1
                for e in m.find("PongSlaveMessage", since=mk, kind="recv"):
                    pongs[e.src] = pongs.get(e.src, 0) + 1
                total = sum(pings.values())
                answered = sum(min(pongs.get(p, 0), n) for p, n in pings.items())
                sleeps = len(nodes.find("^SLEEP"))
                print("%d nodes, %.0f s: %d pings, %d answered, %d node sleeps" % (K, time.time() - t0, total,
                                                                                   answered, sleeps))
                assert len(pings) == K and total >= K * SPAN / PING * 0.8, total
                for p, n in pings.items():
                    assert pongs.get(p, 0) >= n - 1, (p, n, pongs.get(p, 0))  # the last may be in flight
                assert sleeps >= K * SPAN / (W / 1000) * 0.6, sleeps  # they really slept
                for a in regs:
                    assert m.agents[a.id].state == "registered" and m.agents[a.id].connected
                no_problems(m)
            finally:
                nodes.stop()
                gw.stop()
                print("--- gateway ---\n" + gw.output(50))
    asyncio.run(body())
