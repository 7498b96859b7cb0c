# The node side of issue 11 (micromesos.node, firmware/node_main.py): the real node in the unix port against a
# scripted gateway (mgateway.hub.LinkHub over UDP on loopback, in MicroPython), tasks run by the agent's own
# runner, status updates retried until the gateway acknowledges them, the duty cycle kept. MIT licence.
import json
import os
import re
import subprocess
import time

import mpy
import pytest

SID = "a3c1f0d2-7e55-4d8e-b1c9-0f6a2d4e8b10-S7"
UPID = "slave(3)@127.0.0.1:5051"
W, A = 400, 60  # the node wakes every W ms and listens at least A ms (scaled: a real node sleeps minutes)

# The scripted gateway (MicroPython). argv: its UDP port, golden vectors JSON, plan. Every event it sees is a
# line "EV [ticks_ms, what, ...]"; the test reads them after it exits.
GATEWAY = r"""
import asyncio, binascii, json, sys, time
from micromesos import codec, schema
from micromesos.link import Link
from mgateway.hub import LinkHub
from mgateway.udp import UDPHub

GW = int(sys.argv[1])
G = json.load(open(sys.argv[2]))
PLAN = sys.argv[3]
HELD_ACKS = int(sys.argv[4])  # the first update is acknowledged only once it has arrived this many times
HOLD_MS = int(sys.argv[5])  # plan "ram": how long the node is watched with its idle task
SID = %(sid)r
UPID = %(upid)r
Link.rto_ms = 100
Link.rto_max_ms = 800
sock = UDPHub("127.0.0.1", GW, 512)


def new_hub():
    h = LinkHub(sock.sender, mtu=512, window=4, max_message=8192, grace_ms=2000)
    sock.on_frame = h.frame
    h.on_session = on_session
    h.on_message = on_message
    return h


hub = None
peer = [None]
seen = {}  # uuid hex -> [task id, state name, arrivals]
acked = {}  # uuid hex -> ticks_ms the node's link had the ack (None: sent, not yet taken)
order = []  # kinds of the messages of each session, in order
sessions = []  # fresh (a new nonce) per session
FID = None
TASKS_SEEN = [False]


def ev(*a):
    print("EV", json.dumps([time.ticks_ms()] + list(a)))


def gold(name):
    return binascii.unhexlify(G[name])


def run_task(tid, env, value="hello"):
    global FID
    m = codec.decode(schema.RunTaskMessage, gold("run_task"))
    FID = codec.decode(schema.FrameworkInfo, m["framework"])["id"]
    t = m["task"]
    t["task_id"] = tid
    t["name"] = tid
    t["slave_id"] = SID
    t["command"] = {"value": value, "shell": False,
                    "environment": {"variables": [{"name": k, "value": v} for k, v in env.items()]}}
    for k in ("labels", "kill_policy", "data", "executor"):
        t.pop(k, None)
    t["resources"] = [codec.encode(schema.Resource, {"name": "cpus", "type": schema.SCALAR,
                                                     "scalar": {"value": 0.1}, "allocation_info": {"role": "*"}})]
    return codec.encode(schema.RunTaskMessage, m)


def ack(p, d):
    u = d["update"]
    hub.send(p, 11, codec.encode(schema.StatusUpdateAcknowledgementMessage, {
        "slave_id": SID, "framework_id": u["framework_id"], "task_id": u["status"]["task_id"],
        "uuid": u["uuid"]}))
    acked[binascii.hexlify(u["uuid"]).decode()] = None


def on_session(p, fresh):
    order.append([])
    sessions.append(fresh)
    ev("SESSION", p.name, fresh)


def on_message(p, kind, buf, s, e):
    peer[0] = p
    order[-1].append(kind)
    if kind == 0x80:
        i = codec.decode(schema.SlaveInfo, buf, s, e, raw=False)
        ev("NODE_INFO", i["hostname"], "id" in i,
           sorted([r["name"], r["type"]] for r in i.get("resources", ())),
           sorted([a["name"], a["type"]] for a in i.get("attributes", ())))
        sid, pid = SID.encode(), UPID.encode()
        hub.send(p, 0x81, bytes([len(sid)]) + sid + bytes([len(pid)]) + pid)
    elif kind == 0x82:
        tasks = []
        i = s
        while i < e:
            n = buf[i] << 8 | buf[i + 1]
            t = codec.decode(schema.Task, buf, i + 2, i + 2 + n, raw=False)
            tasks.append([t["task_id"], schema.task_state_name(t["state"])])
            i += 2 + n
        ev("TASKS", tasks)
        TASKS_SEEN[0] = True
    elif kind == 10:
        d = codec.decode(schema.StatusUpdateMessage, buf, s, e, raw=False)
        u = d["update"]
        st = u["status"]
        h = binascii.hexlify(u["uuid"]).decode()
        r = seen.setdefault(h, [st["task_id"], schema.task_state_name(st["state"]), 0])
        r[2] += 1
        ev("UPDATE", st["task_id"], r[1], h, r[2], [u.get("slave_id"), st.get("slave_id")], d.get("pid"),
           st.get("message", ""), p.awake, h in acked and acked[h] is not None, e - s)
        if PLAN == "clock":
            ev("STAMP", st["task_id"], r[1], st["timestamp"], u["timestamp"], hub.unix_time())
        first = len(seen) == 1
        if h not in acked and (not first or r[2] >= HELD_ACKS):
            ack(p, d)
    else:
        ev("MSG", kind, e - s)


async def watch():
    # When the node's link has taken a pending ack: from then on its update must never come again.
    while True:
        p = peer[0]
        if p is not None and p.link is not None and p.link.idle() and not p.held:
            for h in acked:
                if acked[h] is None:
                    acked[h] = time.ticks_ms()
        await asyncio.sleep_ms(10)


async def until(what, pred, ms):
    t0 = time.ticks_ms()
    while not pred():
        if time.ticks_diff(time.ticks_ms(), t0) > ms:
            ev("TIMEOUT", what)
            raise SystemExit(3)
        await asyncio.sleep_ms(10)


def state_of(tid, name):
    return any(r[0] == tid and r[1] == name for r in seen.values())


def acked_all():
    return all(t is not None for t in acked.values())


def count(tid, name):
    return sum(1 for r in seen.values() if r[0] == tid and r[1] == name)


async def scenario():
    await until("NODE_INFO", lambda: peer[0] is not None, 30000)
    p = peer[0]
    await until("a first sleep", lambda: p.sleeps >= 1, 10000)
    ev("LAUNCH", "t1", p.awake)
    hub.send(p, 7, run_task("t1", {"LINGER_MS": "1500"}))  # held: the node sleeps
    await until("t1 FINISHED", lambda: state_of("t1", "TASK_FINISHED") and acked_all(), 30000)
    ev("LAUNCH", "t2", p.awake)
    hub.send(p, 7, run_task("t2", {"LINGER_MS": "3600000"}))  # an idle task
    await until("t2 RUNNING", lambda: state_of("t2", "TASK_RUNNING") and acked_all(), 20000)
    s0 = p.sleeps
    ev("IDLE", "start", s0)
    await asyncio.sleep_ms(3000)
    ev("IDLE", "end", p.sleeps - s0)
    ev("KILL", "t2", p.awake)
    hub.send(p, 9, codec.encode(schema.KillTaskMessage, {"framework_id": FID, "task_id": "t2"}))
    await until("t2 KILLED", lambda: state_of("t2", "TASK_KILLED") and acked_all(), 20000)
    await asyncio.sleep_ms(2000)  # late copies of acknowledged updates would show here
    ev("ORDER", order)
    ev("END", p.sleeps, p.session, sock.bad, sock.errors)


async def scenario_ram():
    # One idle task on a node in a small heap: registered (NODE_INFO and AGENT taken), the task RUNNING (both
    # of hello's), then HOLD_MS of its duty cycle.
    await until("NODE_INFO", lambda: peer[0] is not None, 60000)
    p = peer[0]
    await until("AGENT taken", lambda: p.link.idle() and not p.held, 20000)
    ev("REGISTERED")
    hub.send(p, 7, run_task("idle", {"LINGER_MS": "3600000"}))
    await until("idle RUNNING", lambda: count("idle", "TASK_RUNNING") >= 2 and acked_all(), 30000)
    s0 = p.sleeps
    ev("IDLE", "start", s0)
    await asyncio.sleep_ms(HOLD_MS)
    ev("IDLE", "end", p.sleeps - s0, hub.vouch(p))
    ev("END", p.sleeps, p.session, sock.bad, sock.errors)


async def scenario_at_once():
    # The launch right behind AGENT (the node's first session), not waiting for the node to take AGENT.
    await until("NODE_INFO", lambda: peer[0] is not None, 30000)
    p = peer[0]
    hub.send(p, 7, run_task("idle", {"LINGER_MS": "3600000"}))
    await until("idle RUNNING", lambda: count("idle", "TASK_RUNNING") >= 2 and acked_all(), 30000)
    ev("END", p.sleeps, p.session, sock.bad, sock.errors)


async def launched(tid):
    p = peer[0]
    hub.send(p, 7, run_task(tid, {"LINGER_MS": "3600000"}))
    await until(tid + " RUNNING", lambda: count(tid, "TASK_RUNNING") >= 2 and acked_all(), 20000)


async def scenario_restart():
    # The gateway restarts (a new hub that knows the node only from its checkpoint), then the node reboots.
    global hub
    await until("NODE_INFO", lambda: peer[0] is not None, 30000)
    p = peer[0]
    await until("AGENT taken", lambda: p.link.idle() and not p.held, 10000)
    await launched("t3")
    nonce = p.nonce
    runner[0].cancel()
    hub = new_hub()
    hub.restore(p.name, nonce, %(w)d, %(a)d)
    runner[0] = asyncio.create_task(hub.run(every_ms=20))
    peer[0] = None
    ev("GW_RESTART", len(order))
    await until("a session with the new hub", lambda: peer[0] is not None, 20000)
    p = peer[0]
    await until("AGENT taken again", lambda: p.link.idle() and not p.held, 10000)
    hub.send(p, 9, codec.encode(schema.KillTaskMessage, {"framework_id": FID, "task_id": "t3"}))
    await until("t3 KILLED", lambda: count("t3", "TASK_KILLED") and acked_all(), 20000)
    await launched("t4")
    n = len(order)
    ev("KILL_NODE")  # the test cuts the node's power and starts it again on the same filesystem
    await until("the rebooted node's session", lambda: len(order) > n and TASKS_SEEN[0], 30000)
    await until("t4 reported", lambda: any(r[0] == "t4" and r[1] in ("TASK_LOST", "TASK_GONE") for r in seen.values())
                and acked_all(), 20000)
    await asyncio.sleep_ms(1000)
    ev("ORDER", order)
    ev("SESSIONS", sessions)
    ev("END", sock.bad, sock.errors)


async def scenario_hostile():
    # Whatever the link carries is hostile until checked: each of these is refused, and the node goes on.
    await until("NODE_INFO", lambda: peer[0] is not None, 30000)
    p = peer[0]
    await until("AGENT taken", lambda: p.link.idle() and not p.held, 10000)
    other = codec.encode(schema.StatusUpdateAcknowledgementMessage, {
        "slave_id": "someone-else-S1", "framework_id": "f", "task_id": "t", "uuid": bytes(16)})
    for kind, body in ((0x81, b"\x05ab"), (0x81, b"\x00\x00"), (0x81, b"\x02ab\x07not upid"), (0x90, b"junk"),
                       (7, b"\xff\xff\xff"), (7, b""), (9, b"\x0a\x01"), (11, other), (16, b"\x0a"), (3, b"")):
        hub.send(p, kind, body)
    await until("all taken", lambda: p.link.idle() and not p.held, 20000)
    await launched("t5")  # still itself: the same agent id, tasks run
    ev("END", sock.bad, sock.errors)


async def scenario_shatter():
    # A task leaves the node's heap in pieces: the node can neither hear nor report, gives up after a few wakes
    # (exit 1; a board reboots), and the test starts it again on its filesystem: it comes back as itself and
    # reports the task gone.
    await until("NODE_INFO", lambda: peer[0] is not None, 30000)
    p = peer[0]
    await until("AGENT taken", lambda: p.link.idle() and not p.held, 10000)
    hub.send(p, 7, run_task("s1", {}, "shatter"))
    ev("LAUNCHED")
    await until("the rebooted node's TASKS", lambda: TASKS_SEEN[0], 60000)
    await until("s1 reported", lambda: any(r[0] == "s1" and r[1] in ("TASK_LOST", "TASK_GONE") for r in seen.values())
                and acked_all(), 20000)
    await asyncio.sleep_ms(1000)  # late copies of acknowledged updates would show here
    ev("END", sock.bad, sock.errors)


async def scenario_awake():
    # wake_ms 0: the node never sleeps; a launch needs no wake, and the hub counts it awake all along.
    await until("NODE_INFO", lambda: peer[0] is not None, 30000)
    p = peer[0]
    await until("AGENT taken", lambda: p.link.idle() and not p.held, 10000)
    t0 = time.ticks_ms()
    await launched("t6")
    ev("LAUNCHED", time.ticks_diff(time.ticks_ms(), t0))
    await asyncio.sleep_ms(1500)
    ev("END", sock.bad, sock.errors, p.sleeps, p.awake, hub.vouch(p))


async def scenario_clock():
    # The gateway's clock is 10**6 s (11.6 days) ahead of the node's, as a board's without NTP is behind: the
    # WELCOME carries it (LINK.md §3.2) and the node stamps its status updates with it.
    hub.unix_time = lambda: int(time.time()) + 1000000
    await until("NODE_INFO", lambda: peer[0] is not None, 30000)
    p = peer[0]
    await until("AGENT taken", lambda: p.link.idle() and not p.held, 10000)
    await launched("t7")
    ev("END", sock.bad, sock.errors)


runner = [None]


async def main():
    global hub
    hub = new_hub()
    asyncio.create_task(sock.run())
    runner[0] = asyncio.create_task(hub.run(every_ms=20))
    asyncio.create_task(watch())
    plans = {"ram": scenario_ram, "restart": scenario_restart, "hostile": scenario_hostile, "awake": scenario_awake,
             "shatter": scenario_shatter, "clock": scenario_clock, "at_once": scenario_at_once}
    await plans.get(PLAN, scenario)()


asyncio.run(main())
""" % {"sid": SID, "upid": UPID, "w": W, "a": A}


def node_config(tmp_path, port, **kw):
    cfg = {"gateway": "127.0.0.1:%d" % port, "name": "node-1", "wake_ms": W, "listen_ms": A,
           "ack_wait_ms": 150, "link_rto_ms": 100, "link_rto_max_ms": 800, "fs": str(tmp_path / "fs"),
           "log_level": "info", "status_update_retry_min": 0.3, "status_update_retry_max": 1.0,
           "resources": "sensors:{temp0}", "attributes": "room:lab"}
    cfg.update(kw)
    tasks = tmp_path / "fs" / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    with open(os.path.join(mpy.ROOT, "tasks", "hello.py")) as f:
        (tasks / "hello.py").write_text(f.read())  # as `make task-upload` puts it on a board
    p = tmp_path / "node.json"
    p.write_text(json.dumps(cfg))
    return str(p)


def start_node(tmp_path, cfg_path, heapsize="256k", device=None, log_name="node.log", script="firmware/node_main.py"):
    log = open(str(tmp_path / log_name), "w")
    argv = [script, cfg_path]
    extra = () if device == "frozen" else ("boards/unix",)
    p = mpy.popen_mpy(script=argv[0], args=argv[1:], heapsize=heapsize, device=device, extra_path=extra,
                      stdout=log, stderr=subprocess.STDOUT)
    return p, log


def stop(p, log):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)
    log.close()


def events(out):
    return [json.loads(ln[3:]) for ln in out.splitlines() if ln.startswith("EV ")]


@pytest.fixture
def golden(tmp_path):
    g = {}
    with open(os.path.join(mpy.GOLDEN, "vectors.jsonl")) as f:
        for line in f:
            v = json.loads(line)
            g[v["name"]] = v["hex"]
    p = tmp_path / "golden.json"
    p.write_text(json.dumps(g))
    return str(p)


def beside_the_gateway(tmp_path, golden, plan, held_acks=1, timeout=90, script="firmware/node_main.py", **cfg):
    """A node (config node_config's, changed by cfg; run by `script`) beside the scripted gateway running `plan`
    to its end -> (the gateway's events, its MpyResult, the node's log, whether the node was still running, why:
    both outputs for an assertion's message)."""
    port = mpy.free_port()
    gw = tmp_path / "gateway.py"
    gw.write_text(GATEWAY)
    node, log = start_node(tmp_path, node_config(tmp_path, port, **cfg), script=script)
    try:
        res = mpy.run_mpy(script=str(gw), args=[str(port), golden, plan, str(held_acks), "0"], heapsize="512k",
                          timeout=timeout)
        alive = node.poll() is None
    finally:
        stop(node, log)
    out = (tmp_path / "node.log").read_text()
    why = "gateway:\n%s\n%s\nnode:\n%s" % (res.out[-6000:], res.err[-3000:], out[-6000:])
    return events(res.out), res, out, alive, why


def test_node_registers_runs_tasks_through_a_gateway_and_keeps_its_duty_cycle(tmp_path, golden):
    evs, res, out, _, why = beside_the_gateway(tmp_path, golden, "main", held_acks=3, timeout=150)
    assert res.rc == 0, why
    kinds = [e[1] for e in evs]
    assert kinds[-1] == "END", why

    # NODE_INFO: the board's resources and attributes as the agent advertises them, hostname = the name, no id.
    info = next(e for e in evs if e[1] == "NODE_INFO")
    assert info[2] == "node-1" and info[3] is False, why
    res_names = dict((n, t) for n, t in info[4])
    assert res_names.get("cpus") == 0 and res_names.get("mem") == 0 and res_names.get("sensors") == 2, why
    attr_names = dict((n, t) for n, t in info[5])
    assert attr_names.get("room") == 3 and attr_names.get("board") == 3, why
    # It is the first message of every session.
    order = next(e for e in evs if e[1] == "ORDER")[2]
    assert order and all(s[0] == 0x80 for s in order if s), why

    ups = [e for e in evs if e[1] == "UPDATE"]
    # No update names an agent or a UPID: the gateway puts in the ones it gave the node (LINK.md §5).
    assert ups and all(u[6] == [None, None] and u[7] is None for u in ups), why
    # Each one body of at most 241 B: one ESP-NOW frame (250 B less the 8 B header and the kind byte, LINK.md §7.4).
    sizes = [u[11] for u in ups]
    print("the node's StatusUpdateMessages: %d-%d B" % (min(sizes), max(sizes)))
    assert max(sizes) <= 241, (sizes, why)
    by_task = {}
    for u in ups:
        if u[5] == 1:  # first arrival of that uuid
            by_task.setdefault(u[2], []).append(u[3])
    # Each update once, in order: none lost, none generated twice. tasks/hello.py sends a TASK_RUNNING with
    # data of its own; the golden framework has TASK_KILLING_STATE, so a kill says TASK_KILLING first.
    assert by_task.get("t1") == ["TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_FINISHED"], why
    assert by_task.get("t2") == ["TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_KILLING",
                                 "TASK_KILLED"], why
    # hello's ctx.send(): an ExecutorToFrameworkMessage (17) per task, through the gateway.
    assert sum(1 for e in evs if e[1] == "MSG" and e[2] == 17) == 2, why
    # The first update was retried until the gateway acknowledged it (it held its ack for 3 arrivals) ...
    first = ups[0][4]
    assert max(u[5] for u in ups if u[4] == first) >= 3, why
    # ... and no update came again once the node had its ack.
    assert not [u for u in ups if u[10]], why

    # The launch was held while the node slept and started at its next wake (within one period + slack).
    launch = next(e for e in evs if e[1] == "LAUNCH" and e[2] == "t1")
    assert launch[3] is False, why
    t_first = next(u[0] for u in ups if u[2] == "t1")
    assert 0 <= t_first - launch[0] <= W + 2000, why
    # With a task running the node kept sleeping and waking: 3 s of W = 400 ms is ~6 cycles.
    idle = next(e for e in evs if e[1] == "IDLE" and e[2] == "end")
    assert idle[3] >= 3, why
    end = evs[-1]
    assert end[4] == 0 and end[5] == 0, why  # no bad frames, no handler errors at the gateway
    assert "Traceback" not in out, why


def with_a_reboot(tmp_path, port, golden, plan, node, log, cue, reboot):
    """The scripted gateway run with `plan` beside a started node; once it prints `cue`, reboot(node, log)
    -> the node started again, (node, log). -> (the gateway's output, the gateway process)."""
    lines = []
    g = mpy.popen_mpy(script=str(tmp_path / "gateway.py"), args=[str(port), golden, plan, "1", "0"],
                      heapsize="512k", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 150
        for line in iter(g.stdout.readline, ""):
            lines.append(line.rstrip("\n"))
            if cue in line:
                node, log = reboot(node, log)
            if time.time() > deadline:
                break
        g.wait(10)
    finally:
        if g.poll() is None:
            g.kill()
            g.wait(10)
        stop(node, log)
    return "\n".join(lines), g


def test_node_comes_back_after_a_gateway_restart_and_reports_its_tasks_after_a_reboot(tmp_path, golden):
    port = mpy.free_port()
    gw = tmp_path / "gateway.py"
    gw.write_text(GATEWAY)
    cfg = node_config(tmp_path, port)
    node, log = start_node(tmp_path, cfg)

    def power_cut(node, log):  # only the node's filesystem survives
        node.kill()
        node.wait(10)
        log.close()
        return start_node(tmp_path, cfg, log_name="node2.log")

    out, g = with_a_reboot(tmp_path, port, golden, "restart", node, log, '"KILL_NODE"', power_cut)
    nodes = "".join((tmp_path / n).read_text() for n in ("node.log", "node2.log") if (tmp_path / n).exists())
    why = "gateway:\n%s\nnode:\n%s" % (out[-6000:], nodes[-6000:])
    assert g.returncode == 0, why
    evs = events(out)
    assert evs[-1][1] == "END" and evs[-1][2:] == [0, 0], why
    order = next(e for e in evs if e[1] == "ORDER")[2]
    fresh = next(e for e in evs if e[1] == "SESSIONS")[2]
    # Three sessions: the first, the one after the gateway's restart (the same nonce: not fresh), the reboot's.
    assert len(order) == 3 and fresh == [True, False, True], why
    assert all(s and s[0] == 0x80 for s in order), why  # NODE_INFO first in every session
    assert 0x82 not in order[0] + order[1] and order[2][1] == 0x82, why  # TASKS right after it, after a reboot
    tasks = next(e for e in evs if e[1] == "TASKS")[2]
    assert [t[0] for t in tasks] == ["t4"] and tasks[0][1] in ("TASK_LOST", "TASK_GONE"), why
    # t3 kept running across the gateway's restart (a kill after it stopped it); t4 did not survive the reboot.
    ups = [(u[2], u[3]) for u in evs if u[1] == "UPDATE" and u[5] == 1]
    assert ups.count(("t3", "TASK_KILLED")) == 1, why
    lost = [u for u in evs if u[1] == "UPDATE" and u[2] == "t4" and u[5] == 1 and u[3] in ("TASK_LOST", "TASK_GONE")]
    assert len(lost) == 1 and "restarted" in lost[0][8], why
    assert "Traceback" not in nodes, why


# A task that leaves no free block bigger than ~80 B: it fills the heap with small blocks, two chains of them
# interleaved, yielding now and then (a step over the runner's slice would get it failed), then lets one chain go.
SHATTER = """
import asyncio


async def main(ctx):
    keep = gap = None
    try:
        while True:
            k = [None] * 16
            g = [None] * 16
            keep = (k, keep)  # rows in a short chain: a collection's mark stack stays shallow
            gap = (g, gap)
            for i in range(16):
                k[i] = bytearray(40)
                g[i] = bytearray(40)
            await asyncio.sleep_ms(0)
    except MemoryError:
        pass
    k = g = gap = None
    await asyncio.sleep_ms(3600000)
"""


def test_a_node_whose_heap_a_task_left_in_pieces_gives_up_reboots_and_reports_it(tmp_path, golden):
    # MicroPython never moves an object: a heap in pieces stays so while the task lives. The node stops after
    # 3 wakes in a row found no heap (exit 1, where a board reboots: firmware/node_main.py), instead of staying
    # deaf to its gateway for good; started again (the reboot), it is the same agent and reports the task gone.
    port = mpy.free_port()
    gw = tmp_path / "gateway.py"
    gw.write_text(GATEWAY)
    cfg = node_config(tmp_path, port)
    (tmp_path / "fs" / "tasks" / "shatter.py").write_text(SHATTER)
    # The 32-bit device model with the node frozen in, a board's heap: the fill takes a few hundred steps.
    node, log = start_node(tmp_path, cfg, heapsize="48k", device="frozen")
    rc = []

    def gives_up(node, log):  # by itself, then the board's reboot
        rc.append(node.wait(60))
        log.close()
        return start_node(tmp_path, cfg, heapsize="48k", device="frozen", log_name="node2.log")

    out, g = with_a_reboot(tmp_path, port, golden, "shatter", node, log, '"LAUNCHED"', gives_up)
    first = (tmp_path / "node.log").read_text()
    second = (tmp_path / "node2.log").read_text() if (tmp_path / "node2.log").exists() else ""
    why = "gateway:\n%s\nnode:\n%s\nrebooted:\n%s" % (out[-4000:], first[-6000:], second[-3000:])
    assert rc == [1], why
    assert "micromesos: node failed: MemoryError('the heap is in pieces: 3 wakes in a row found no block',)" in first, why
    assert g.returncode == 0, why
    evs = events(out)
    assert evs[-1][1] == "END" and evs[-1][2:] == [0, 0], why
    tasks = next(e for e in evs if e[1] == "TASKS")[2]
    assert [t[0] for t in tasks] == ["s1"] and tasks[0][1] in ("TASK_LOST", "TASK_GONE"), why
    gone = [u for u in evs if u[1] == "UPDATE" and u[2] == "s1" and u[3] in ("TASK_LOST", "TASK_GONE")]
    assert len(gone) == 1 and "restarted" in gone[0][8], why  # once, from the rebooted node
    assert "MemoryError" not in second and "Traceback" not in second, why


@pytest.mark.parametrize("change, key", [
    ({"name": "no spaces"}, "name:"), ({"name": None}, "name:"), ({"gateway": "localhost"}, "gateway:"),
    ({"wake_ms": -1}, "wake_ms:"), ({"listen_ms": 5000}, "listen_ms:"), ({"window": 9}, "window:"),
    ({"transport": "carrier-pigeon"}, "transport:"), ({"master": "127.0.0.1:5050"}, "master: unknown key"),
    ({"resources": "cpus:x"}, "resources:"),
    ({"transport": "uart"}, "uart: missing"), ({"transport": "espnow"}, "gateway_mac:"),
    ({"transport": "espnow", "gateway_mac": "aa:bb:cc:dd:ee"}, "gateway_mac:"),
    ({"transport": "espnow", "gateway_mac": "aa:bb:cc:dd:ee:fg"}, "gateway_mac:"),
    ({"transport": "espnow", "gateway_mac": "aa:bb:cc:dd:ee:ff", "mtu": 512}, "mtu:"),
    ({"baud": 12}, "baud:"), ({"link_key": "abc"}, "link_key:"), ({"link_key": "zz" * 16}, "link_key:"),
])
def test_a_bad_node_config_stops_the_boot_with_a_line_naming_the_key(tmp_path, change, key):
    cfg = json.loads(open(node_config(tmp_path, 5052)).read())
    cfg.update(change)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(cfg))
    r = mpy.run_mpy(script="firmware/node_main.py", args=[str(p)], extra_path=("boards/unix",), timeout=30)
    assert r.rc == 2, r.out + r.err
    assert r.out.startswith("micromesos: config error: " + key), r.out + r.err


def test_hostile_messages_on_the_link_are_refused_and_the_node_goes_on(tmp_path, golden):
    evs, res, out, alive, why = beside_the_gateway(tmp_path, golden, "hostile")
    assert res.rc == 0 and alive, why
    assert evs[-1][1] == "END" and evs[-1][2:] == [0, 0], why
    # Each refusal is one log line naming the message kind; none is a crash, and the identity held.
    assert len(re.findall(r"ERROR node: (bad|unusable) message", out)) >= 6, why
    assert len(re.findall(r"WARN node: dropped message (144|3|11)\b", out)) == 3, why
    # The identity held: t5's launch names SID, and a node under another id refuses it (launch.py). Its updates
    # name no agent (the gateway's to put in, LINK.md §5).
    ups = [u for u in evs if u[1] == "UPDATE"]
    assert any(u[2] == "t5" for u in ups) and all(u[6] == [None, None] for u in ups), why
    assert "Traceback" not in out, why


# Runs instead of firmware/node_main.py (argv: the config): the node, its first AGENT finding no heap, as a node in
# a 24 KB heap now and then does (tests/test_node_ram.py). The MemoryError is raised where the handler's import is.
AGENT_OOM = r"""
import sys
from micromesos import node, nodeboot

rare = node.Node._rare
failed = []


def rare_first_agent_out_of_heap(self, fn, *args):
    if fn == "agent" and not failed:
        failed.append(fn)
        raise MemoryError("memory allocation failed, allocating 96 bytes")
    return rare(self, fn, *args)


node.Node._rare = rare_first_agent_out_of_heap
sys.exit(nodeboot.boot(sys.argv[1]))
"""


def test_a_node_whose_agent_message_found_no_heap_starts_a_new_session_for_it(tmp_path, golden):
    # AGENT is acknowledged when it arrives and the gateway sends it only behind a session's NODE_INFO: without
    # it the node could never report (it waited for a reboot). It gives the session up (a launch the gateway
    # sends meanwhile goes unacknowledged: it comes again in the new one, behind AGENT); its task runs once.
    script = tmp_path / "node_agent_oom.py"
    script.write_text(AGENT_OOM)
    evs, res, out, alive, why = beside_the_gateway(tmp_path, golden, "at_once", script=str(script))
    assert res.rc == 0 and alive, why
    assert out.count("out of memory handling message 129") == 1 and "Traceback" not in out, why
    assert "launch ignored" not in out, why  # it came behind AGENT
    assert [e[2:] for e in evs if e[1] == "SESSION"] == [["node-1", True], ["node-1", False]], why
    assert len([e for e in evs if e[1] == "NODE_INFO"]) == 2, why
    ups = [(u[2], u[3], u[5]) for u in evs if u[1] == "UPDATE"]  # u[5]: the arrivals of its uuid
    assert ups == [("idle", "TASK_STARTING", 1), ("idle", "TASK_RUNNING", 1), ("idle", "TASK_RUNNING", 1)], why
    assert evs[-1][1] == "END" and evs[-1][4:] == [0, 0], why


def test_a_node_that_never_sleeps_stays_awake_and_runs_tasks_at_once(tmp_path, golden):
    evs, res, out, _, why = beside_the_gateway(tmp_path, golden, "awake", wake_ms=0)
    assert res.rc == 0, why
    # No SLEEP ever, awake and vouched for; the launch ran without waiting for a wake (generous: loaded machine).
    assert evs[-1][1] == "END" and evs[-1][2:] == [0, 0, 0, True, True], why
    assert next(e for e in evs if e[1] == "LAUNCHED")[2] < 5000, why


def test_a_node_stamps_its_status_updates_with_its_gateways_clock_when_its_own_is_off(tmp_path, golden):
    evs, res, _, _, why = beside_the_gateway(tmp_path, golden, "clock")
    assert res.rc == 0, why
    stamps = [e for e in evs if e[1] == "STAMP"]
    assert [e[3] for e in stamps if e[2] == "t7"][:2] == ["TASK_STARTING", "TASK_RUNNING"], why
    for e in stamps:
        # TaskStatus.timestamp == StatusUpdate.timestamp, within 3 s of the gateway's clock as it took the update
        # (the WELCOME's whole seconds, and the update's age: made at most a wake before it arrived).
        assert e[4] == e[5] and abs(e[4] - e[6]) <= 3, (e, why)


SET_CLOCK = r"""
import time, machine
from micromesos import linkhello, updates
t = int(updates.now())
print(linkhello.set_clock(0), linkhello.set_clock(t + 1), updates.EPOCH)
print(linkhello.set_clock(1700000000), machine.RTC().datetime(), abs(updates.now() - 1700000000) <= 1)
print(linkhello.set_clock(1700000000), linkhello.set_clock(t))
print(abs(updates.now() - t) <= 1)
# A WELCOME for the node's nonce: the node takes its clock, and input() still names the frame's type.
from micromesos.linknode import NodeLink
nl = NodeLink(lambda f: None, "n", 400, 60, nonce=5)
b = bytearray(20)
n = linkhello.welcome(b, 1, 5, 2, 250, t + 3600)
print(nl.input(b, n), nl.up(), abs(updates.now() - (t + 3600)) <= 2)
"""


def test_a_nodes_clock_follows_its_gateways_only_when_more_than_2_s_away(mpy_run):
    # The fake machine.RTC (tests/fakes) takes the date as ntptime.settime gives it: Tuesday 2023-11-14 22:13:20 UTC
    # is weekday 2; the unix port's time.time() doesn't follow it, so updates.now() is corrected too.
    out = mpy_run(SET_CLOCK, heapsize="512k").check().lines()
    assert out == ["False False 0", "True (2023, 11, 14, 2, 22, 13, 20, 0) True", "False True", "True",
                   "2 True True"], out


def test_a_node_configured_for_a_serial_line_says_hello_on_it(tmp_path):
    # transport "uart" as node_main builds it from config (on the unix port: a tty path), for real: the node's
    # HELLO must come out of the pty framed as LINK.md §6.3 says (COBS + CRC-16), with its name and duty cycle.
    import pty
    import select as sel
    import tty

    from micromesos.linkhello import read_hello
    from micromesos.linkserial import Deframer

    master, slave = pty.openpty()
    tty.setraw(master)
    path = os.ttyname(slave)
    node, log = start_node(tmp_path, node_config(tmp_path, 1, transport="uart", uart=path, baud=115200, mtu=256))
    got = []
    d = Deframer(256, lambda b, n: got.append(bytes(b[:n])))
    try:
        t0 = time.time()
        while time.time() - t0 < 30 and not any(g[0] == 0x11 for g in got):
            r, _, _ = sel.select([master], [], [], 0.5)
            if r:
                d.feed(os.read(master, 4096))
        alive = node.poll() is None
    finally:
        stop(node, log)
        os.close(master)
        os.close(slave)
    out = (tmp_path / "node.log").read_text()
    hellos = [g for g in got if g[0] == 0x11]
    assert hellos and alive, out[-3000:]
    _nonce, wake_ms, listen_ms, max_frame, _window, name = read_hello(hellos[0], len(hellos[0]))
    assert (name, wake_ms, listen_ms, max_frame) == ("node-1", W, A, 256), out[-3000:]
    assert d.bad == 0, out[-3000:]


# LINK.md §3.3: only the gateway's ACK answers SLEEP. If the SLEEP is lost and a DATA comes instead (the
# gateway sending something again), the node takes it and stays awake to say SLEEP again; sleeping there
# would leave the gateway sending to a radio that is off, thinking the node awake.
SLEEP_LOST = r"""
import asyncio
from mgateway.hub import LinkHub
from micromesos.linknode import NodeLink

ADDR = ("127.0.0.1", 1)
down, up = [], []  # frames in flight: gateway -> node, node -> gateway
hub = LinkHub(lambda addr: lambda f: down.append(bytes(f)), mtu=250, window=2)
hub.on_message = lambda p, kind, buf, s, e: None
nl = NodeLink(lambda f: up.append(bytes(f)), "n1", 1000, 10, mtu=250, window=2, max_message=512)
got = []
nl.link.deliver = lambda kind, buf, s, e: got.append((kind, bytes(buf[s:e])))
drop_sleep = [True]


async def wire():
    while True:
        while up:
            f = up.pop(0)
            if f[0] & 15 == 6 and drop_sleep[0]:  # the first SLEEP is lost ...
                drop_sleep[0] = False
                hub.send(hub.by_addr[ADDR], 40, b"again")  # ... and the gateway sends DATA, not an ACK
                continue
            lk = hub.frame(ADDR, f, len(f))
            if lk is not None:
                lk.flush()
        while down:
            f = down.pop(0)
            nl.input(f, len(f))
            nl.link.flush()
        await asyncio.sleep_ms(1)


async def main():
    asyncio.create_task(wire())
    print("up", await nl.connect(tries=2))
    first = await nl.sleep(1000)
    second = await nl.sleep(1000)
    print("naps", first, second >= 0, got)

asyncio.run(main())
"""


def test_a_node_whose_sleep_was_answered_by_data_stays_awake_and_says_sleep_again(mpy_run):
    out = mpy_run(SLEEP_LOST, heapsize="512k").check().lines()
    assert out == ["up True", "naps -1 True [(40, b'again')]"], out


LINKFRAME_NUMBERS = r"""
from micromesos import linkframe
import sys
for n in sys.argv[1:]:
    print(n, getattr(linkframe, n))
"""


def test_local_copies_of_linkframe_constants_agree(mpy_run):
    # link.py, linknode.py and linkhello.py fold linkframe's numbers in as their own consts (no globals slot each on a
    # board): `_X = const(N)  # linkframe.X`. N must be what linkframe says.
    seen = []
    for f in ("link.py", "linknode.py", "linkhello.py", "node.py"):
        with open(os.path.join(mpy.ROOT, "lib", "micromesos", f)) as fh:
            for line in fh:
                m = re.match(r"\s*_\w+ = const\(([-\w]+)\)\s*#\s*linkframe\.(\w+)", line)
                if m:
                    seen.append((f, m.group(2), int(m.group(1), 0)))
    assert len(seen) >= 16
    names = sorted(set(n for _, n, _ in seen))
    real = dict(ln.split() for ln in mpy_run(LINKFRAME_NUMBERS, args=names).check().lines())
    assert [(f, n, v) for f, n, v in seen if int(real[n]) != v] == []


REASSEMBLY = r"""
import gc
from micromesos.link import Link
a2b, b2a, got = [], [], []
a = Link(lambda f: a2b.append(bytes(f)), mtu=64, window=1, max_message=300)
b = Link(lambda f: b2a.append(bytes(f)), mtu=64, window=1, max_message=300)
b.deliver = lambda kind, buf, s, e: got.append((kind, bytes(buf[s:e]), b.msg is None))
def run():
    for _ in range(40):
        while a2b:
            f = a2b.pop(0)
            b.input(f, len(f))
        b.flush()
        while b2a:
            f = b2a.pop(0)
            a.input(f, len(f))
        a.flush()
print(b.msg)
a.send(7, bytes(range(200)))   # 4 fragments of 56 B
run()
print(len(got), got[0][0], got[0][1] == bytes(range(200)), got[0][2], b.msg, len(b.msg or b""))
a.send(8, bytes(400))          # over max_message: dropped whole, and its partial buffer with it
a.send(9, b"after")
run()
print(b.oversize, [g[0] for g in got], b.msg)
"""


def test_a_link_holds_a_reassembly_buffer_only_while_a_message_is_being_put_together(mpy_run):
    # The reassembly buffer is made at a message's first fragment and let go when it is delivered (or dropped
    # over max_message): an idle node holds none (it was max_message bytes from boot, 1 KB on a small node).
    out = mpy_run(REASSEMBLY).check().lines()
    assert out == ["None", "1 7 True True None 0", "1 [7, 9] None"], out


# LINK.md §7.4's figures: what a node's update weighs on the link. The node's StatusUpdates.encode leaves out
# both slave_ids and the pid (LINK.md §5); here the reference capture's updates lose the same fields.
NODE_UPDATE = r"""
import sys
from micromesos import codec, schema
sizes = []
for h in sys.stdin.read().split():
    b = bytes.fromhex(h)
    m = codec.decode(schema.StatusUpdateMessage, b)
    up = m["update"]
    del up["slave_id"], up["status"]["slave_id"], m["pid"]
    sizes.append((len(b), len(codec.encode(schema.StatusUpdateMessage, m))))
print(min(s[0] for s in sizes), max(s[0] for s in sizes), min(s[1] for s in sizes), max(s[1] for s in sizes))
"""


def test_a_node_update_is_the_agents_less_its_ids():
    import base64

    bodies = []
    with open(os.path.join(mpy.GOLDEN, "captured", "master-agent.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r["kind"] == "request" and r["type"] == "mesos.internal.StatusUpdateMessage":
                bodies.append(base64.b64decode(r["body_b64"]).hex())
    res = mpy.run_mpy(code=NODE_UPDATE, stdin=" ".join(bodies), heapsize="1m").check()
    lo, hi, node_lo, node_hi = map(int, res.out.split())
    print("captured StatusUpdateMessage %d-%d B; as a node sends it %d-%d B" % (lo, hi, node_lo, node_hi))
    # Two SlaveIDs of 39 characters (43 B each with their keys and lengths) and a 23-character pid (25 B) less; one
    # byte more where the status' own length then fits one byte. (The capture's agent adds container_status and
    # the executor's ids, which a node's updates have not: the first test here weighs those.)
    assert (lo, hi) == (315, 367) and (lo - node_lo, hi - node_hi) == (112, 111), res.out
