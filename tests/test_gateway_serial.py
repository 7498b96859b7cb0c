# A node on a serial line (docs/LINK.md §6.3) is an agent like one on UDP: the gateway configured with
# `link_uarts`, the real node (firmware/node_main.py, transport "uart"), each on its own pty, a CPython relay
# copying the bytes between the two pty masters as a cable would. Against the stand-in master: the node
# registers through the gateway and a task launched on it finishes, its updates received once. MIT licence.
import asyncio
import os
import pty
import select
import threading
import time
import tty

from gwfixture import gateway_config, start_gateway
from test_gateway import hello_runs_once, no_problems, registered, scaled_master, stop_with_logs
from test_node import node_config, start_node


def _cable(a, b, stop_ev):
    # Every byte from one pty master to the other, both ways, until stop_ev.
    while not stop_ev.is_set():
        r, _, _ = select.select([a, b], [], [], 0.1)
        for fd in r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            os.write(b if fd == a else a, data)


def _pty():
    m, s = pty.openpty()
    tty.setraw(m)
    return m, s, os.ttyname(s)


def test_a_node_on_a_serial_line_registers_through_the_gateway_and_runs_a_task(tmp_path):
    gm, gs, gpath = _pty()
    nm, ns, npath = _pty()
    stop_ev = threading.Event()
    cable = threading.Thread(target=_cable, args=(gm, nm, stop_ev), daemon=True)
    cable.start()

    async def body():
        async with scaled_master() as m:
            _cfg, path = gateway_config(tmp_path, m.port, link_uarts=[gpath], link_mtu=256,
                                        status_update_retry_min_ms=2000)
            gw = start_gateway(path)
            node, log = start_node(tmp_path, node_config(tmp_path, 1, name="serial-1", transport="uart",
                                                         uart=npath, mtu=256))
            try:
                a = await registered(m, gw, "serial-1")
                await hello_runs_once(m, gw, a.id, "TASK_FINISHED from the node on the serial line")
                assert m.agents[a.id].state == "registered"
                no_problems(m)
            finally:
                stop_with_logs(gw, (node, log), last=4000)

    try:
        asyncio.run(body())
    finally:
        stop_ev.set()
        cable.join(5)
        for fd in (gm, gs, nm, ns):
            os.close(fd)


def test_link_uarts_must_be_a_list_of_paths(mpy_run):
    r = mpy_run("""
from mgateway import gateway
from micromesos.errors import ConfigError
for v in ("/dev/ttyUSB0", [""], [1], ["/dev/ttyUSB0", None]):
    try:
        gateway.check({"master": "127.0.0.1:5050", "link_uarts": v})
        print("accepted", v)
    except ConfigError as e:
        print(str(e).split(":")[0])
print(gateway.check({"master": "127.0.0.1:5050", "link_uarts": ["/dev/ttyUSB0"]})["link_uarts"])
""", heapsize="1m").check()  # the gateway (a host process) compiled from source
    assert r.lines() == ["link_uarts"] * 4 + ["['/dev/ttyUSB0']"], r.lines()


# Only listed node names attach when the gateway's config has "nodes" (LINK.md §8): a stranger's HELLO gets
# RESET 2 and no session, so it never becomes an agent at the master.
ALLOWED = r"""
from mgateway.hub import LinkHub
from micromesos import linkhello

sent = []
hub = LinkHub(lambda addr: lambda f: sent.append((addr, bytes(f))), mtu=250, window=2)
hub.allowed = {"greenhouse-1"}
sessions = []
hub.on_session = lambda p, fresh: sessions.append(p.name)
buf = bytearray(64)
for i, (name, addr) in enumerate((("stranger", ("127.0.0.9", 1)), ("greenhouse-1", ("127.0.0.2", 1)))):
    n = linkhello.hello(buf, 1234 + i, 60000, 200, 250, 2, name, 1)
    hub.frame(addr, buf, n)
print(sessions, sorted(hub.peers), hub.refused)
print([(a[0], f[0], f[-1]) for a, f in sent if f[0] == 0x17])  # RESETs: to whom, vt, reason
"""


def test_a_gateway_with_a_node_list_refuses_other_names(mpy_run):
    out = mpy_run(ALLOWED, heapsize="512k").check().lines()
    assert out == ["['greenhouse-1'] ['greenhouse-1'] 1", "[('127.0.0.9', 23, 2)]"], out
