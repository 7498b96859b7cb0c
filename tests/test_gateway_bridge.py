# The gateway on a board (docs/GATEWAY.md §10): firmware/gateway_main.py on the 32-bit device model of the
# bridge firmware (tools/devmodel.py flavour "bridge": the agent and lib/mgateway frozen in, as
# `make firmware BOARD=esp32 ROLE=bridge` builds it) in an ESP32-sized heap, its nodes on ESP-NOW (the real
# node firmware on the frozen device model), the master over the network (the stand-in, loopback). ESP-NOW
# is tests/fakes/espnow.py, a fake of MicroPython's module over loopback UDP: no radio here. MIT licence.
import asyncio
import re

import mpy
from gwfixture import Proc, free_udp_port, gateway_config
from test_gateway import PING, hello_runs_once, no_problems, registered, scaled_master, stop_with_logs
from test_node import node_config

# The heap the bridge is held to with NODES nodes attached (stock ESP32 firmware: ~100 KB of Python heap).
BRIDGE_HEAPSIZE = "96k"
NODES = 6
# The bridge's own settings for a small heap: ESP-NOW frames, 2 KB messages from a node, 8 KB from the master.
BRIDGE = {"link": "espnow", "link_mtu": 250, "link_window": 2, "link_max_message": 2048, "http_buffer": 8192}


def mac_text(port):
    # tests/fakes/espnow.py mac_of(): the radio on UDP port `port` has MAC 02:00:7f:00:<port>.
    return "02:00:7f:00:%02x:%02x" % (port >> 8, port & 255)


def start_bridge(cfg_path, radio_port, heapsize=BRIDGE_HEAPSIZE):
    return Proc("firmware/gateway_main.py", args=[cfg_path], heapsize=heapsize, name="bridge",
                device=mpy.BRIDGE, extra_path=(mpy.FAKES,), env={"FAKE_ESPNOW_PORT": str(radio_port)})


def start_espnow_node(tmp_path, name, gateway_port):
    d = tmp_path / name
    d.mkdir()
    cfg = node_config(d, 1, name=name, transport="espnow", gateway_mac=mac_text(gateway_port), mtu=250, window=2)
    log = open(str(d / "node.log"), "w")
    p = mpy.popen_mpy(script="firmware/node_main.py", args=[cfg], heapsize="64k", device="frozen",
                      extra_path=(mpy.FAKES,), env={"FAKE_ESPNOW_PORT": str(free_udp_port())},
                      stdout=log, stderr=log)
    return p, log


def test_an_esp32_bridge_in_a_board_heap_serves_espnow_nodes_to_the_master(tmp_path):
    async def body():
        async with scaled_master() as m:
            radio = free_udp_port()
            _cfg, path = gateway_config(tmp_path, m.port, status_update_retry_min_ms=2000, **BRIDGE)
            gw = start_bridge(path, radio)
            nodes = [start_espnow_node(tmp_path, "esp-%d" % i, radio) for i in range(1, NODES + 1)]
            try:
                agents = [await registered(m, gw, "esp-%d" % i, timeout=60) for i in range(1, NODES + 1)]
                a = agents[0]
                await hello_runs_once(m, gw, a.id, "TASK_FINISHED from the node behind the bridge")
                mark = len(m.find("PongSlaveMessage", kind="recv"))
                await asyncio.sleep(3)  # the nodes sleep, the bridge answers their pings
                assert len(m.find("PongSlaveMessage", kind="recv")) - mark >= NODES * 3 / PING / 2
                for ag in agents:
                    assert m.agents[ag.id].state == "registered", ag.id
                no_problems(m)
                assert not gw.find("MemoryError|Traceback|out of memory"), gw.output(80)
                assert gw.proc.poll() is None, gw.output(80)
                up = gw.find(r"gateway bridge up: heap (\d+) B used")
                assert up, gw.output(80)
                print("bridge at -X heapsize=%s: %s" % (BRIDGE_HEAPSIZE, up[0][1]))
            finally:
                stop_with_logs(gw, *nodes, last=2000)

    asyncio.run(body())


def test_the_bridge_config_names_its_transport_and_buffer(mpy_run):
    r = mpy_run("""
from mgateway import gateway
from micromesos.errors import ConfigError
for k, v in (("link", "lora"), ("link", 1), ("http_buffer", 1024), ("http_buffer", 1 << 20)):
    try:
        gateway.check({"master": "127.0.0.1:5050", k: v})
        print("accepted", k, v)
    except ConfigError as e:
        print(str(e).split(":")[0])
c = gateway.check({"master": "127.0.0.1:5050"})
print(c["link"], c["http_buffer"])
c = gateway.check(gateway.load("boards/esp32/gateway.example.json"))  # what `make deploy ROLE=bridge` copies
print(c["link"], c["http_buffer"], c["max_nodes"])
""", heapsize="1m").check()
    assert r.lines() == ["link", "link", "http_buffer", "http_buffer", "udp 65536", "espnow 8192 6"], r.lines()


def test_gateway_main_reports_a_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "gateway.json"
    bad.write_text('{"master": "127.0.0.1:5050", "link": "lora"}')
    r = mpy.run_mpy(script="firmware/gateway_main.py", args=[str(bad)], heapsize="96k", device=mpy.BRIDGE,
                    extra_path=(mpy.FAKES,), timeout=60)
    assert r.rc == 2, (r.out, r.err)
    assert re.match(r'gateway: config error: link: "udp" or "espnow"', r.out), r.out


# A node the heap cannot hold is refused whole (FULL, as past max_nodes) and the nodes already attached go on:
# HELLOs until the 64 KB heap of the bridge model runs out (8 KB messages: each Link takes that much at once).
NO_ROOM = r"""
import gc
from micromesos import linkhello
from micromesos.linkframe import DATA, RESET
from mgateway.hub import LinkHub

sent = []
hub = LinkHub(lambda addr: lambda f: sent.append((addr, bytes(f))), mtu=250, window=2, max_message=8192)
sessions = []
hub.on_session = lambda p, fresh: sessions.append(p.name)
buf = bytearray(64)
for i in range(40):
    n = linkhello.hello(buf, 1000 + i, 60000, 200, 250, 2, "n%d" % i, 1)
    hub.frame(("10.0.0.%d" % i, 1), buf, n)
    if hub.no_room:
        break
full = [a for a, f in sent if f[0] & 15 == RESET and f[-1] == 3]  # byte 0: version << 4 | type
print(len(sessions), len(hub.peers), hub.no_room, hub.refused, full == [("10.0.0.%d" % i, 1)])
gc.collect()
hub.send(hub.peers["n0"], 9, b"still-served")  # the first node is served as before
print(any(a == ("10.0.0.0", 1) and f[0] & 15 == DATA for a, f in sent[-3:]))
"""


def test_a_node_the_bridge_heap_cannot_hold_is_refused_whole(mpy_run):
    r = mpy.run_mpy(NO_ROOM, heapsize="64k", device=mpy.BRIDGE, timeout=60).check()
    attached, peers, no_room, refused, told = r.lines()[0].split()
    assert no_room == "1" and refused == "1" and told == "True", r.out
    assert attached == peers and int(attached) >= 2, r.out  # the ones before it, whole
    assert r.lines()[1] == "True", r.out
