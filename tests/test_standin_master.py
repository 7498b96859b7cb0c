# The stand-in master (CPython) driven by a CPython fake agent over real loopback sockets.
# MIT licence. Its replies are held against the bytes a real Mesos 1.12 master sent (golden/captured).
import asyncio
import base64
import email.utils
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import mpy
import pytest

from micromesos import codec, schema
from standin import CRASH, DROPPED, ERROR, Refused, StandinMaster

CAPTURED = os.path.join(mpy.GOLDEN, "captured", "master-agent.jsonl")
CAPTURED_MASTER_ID = "597ef088-be88-48ad-8b3c-c700b42b0f77"
AGENT_ID = CAPTURED_MASTER_ID + "-S0"


def captured():
    with open(CAPTURED) as f:
        return {r["seq"]: r for r in map(json.loads, f)}


CAP = captured()


def cap_body(seq):
    return base64.b64decode(CAP[seq]["body_b64"])


def cap_raw(seq, master, agent):
    """The captured request bytes with the loopback addresses of that run replaced by this run's."""
    raw = base64.b64decode(CAP[seq]["raw_b64"])
    return raw.replace(b"127.0.0.1:5050", master.encode()).replace(b"127.0.0.1:5051", agent.encode())


_OPEN = []  # masters and fake agents of the running test, stopped whatever happens


def run(coro, timeout=30):
    async def guarded():
        try:
            return await asyncio.wait_for(coro, timeout)
        finally:
            while _OPEN:
                await _OPEN.pop().stop()
    return asyncio.run(guarded())


def dec(T, body):
    return codec.decode(T, body, 0, len(body), raw=False)


def enc(T, obj):
    return bytes(codec.encode(T, obj))


# --- a fake agent: its own listener for the master's link, its own connection to the master ----------

class InMsg:
    def __init__(self, conn, raw, head, body):
        self.conn = conn
        self.raw = raw
        self.time = time.monotonic()
        lines = head.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        self.header_lines = lines[1:]
        self.headers = dict(line.split(": ", 1) for line in self.header_lines)
        self.name = self.request_line.split(" ")[1].split("/", 2)[2][len("mesos.internal."):]
        self.sender = self.headers.get("Libprocess-From")
        self.body = body

    def decoded(self):
        return dec(getattr(schema, self.name), self.body)


class FakeAgent:
    """Speaks libprocess as the captured real agent does, with framing parsed strictly here (not by the
    fixture's own parser) so each side checks the other."""

    def __init__(self, master_port, pong="observer"):
        self.master = "127.0.0.1:%d" % master_port
        self.master_port = master_port
        self.pong = pong            # "observer": correct; "master": the §0.1 mistake; None: never
        self.inbox = []
        self.responses = []
        self.conns = 0
        self._inbound = []
        self._out = None
        self._tasks = set()
        self._new = asyncio.Event()

    async def start(self):
        _OPEN.append(self)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.pid = "slave(1)@" + self.addr
        return self

    async def stop(self):
        self._server.close()
        for w in self._inbound:
            w.close()
        if self._out:
            self._out[1].close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)

    async def _serve(self, reader, writer):
        self._tasks.add(asyncio.current_task())
        self.conns += 1
        conn = self.conns
        self._inbound.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                raw, body = head, b""
                if b"Transfer-Encoding: chunked" in head:
                    size_line = await reader.readuntil(b"\r\n")
                    n = int(size_line[:-2], 16)
                    chunk = await reader.readexactly(n + 2)
                    end = await reader.readexactly(5)
                    assert chunk.endswith(b"\r\n") and end == b"0\r\n\r\n", "not one chunk then 0"
                    raw += size_line + chunk + end
                    body = chunk[:-2]
                msg = InMsg(conn, raw, head[:-4], body)
                self.inbox.append(msg)
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                if msg.name == "PingSlaveMessage" and self.pong:
                    to = msg.sender.split("@")[0] if self.pong == "observer" else "master"
                    await self.post("PongSlaveMessage", b"", to=to)
                self._new.set()
                self._new = asyncio.Event()
        except (asyncio.IncompleteReadError, ConnectionError):
            self._new.set()
        finally:
            self._tasks.discard(asyncio.current_task())

    async def connect(self):
        if self._out is None or self._out[1].is_closing():
            self._out = await asyncio.open_connection("127.0.0.1", self.master_port)
            self._tasks.add(asyncio.ensure_future(self._read_responses(self._out[0])))

    async def _read_responses(self, reader):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.responses.append(head)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def post(self, name, body, to="master", name_prefix="mesos.internal.", headers=None):
        """A message framed exactly like the captured real agent's (§1.3)."""
        await self.connect()
        hdr = headers if headers is not None else [
            ("User-Agent", "libprocess/" + self.pid), ("Libprocess-From", self.pid),
            ("Connection", "Keep-Alive"), ("Host", self.master)]
        req = "POST /%s/%s%s HTTP/1.1\r\n" % (to, name_prefix, name) + "".join("%s: %s\r\n" % h for h in hdr)
        if body:
            data = (req + "Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(body)).encode() + body + b"\r\n0\r\n\r\n"
        else:
            data = (req + "\r\n").encode()
        self._out[1].write(data)
        await self._out[1].drain()

    async def send_raw(self, data):
        await self.connect()
        self._out[1].write(data)
        await self._out[1].drain()

    def got(self, name, since=0):
        return [m for m in self.inbox[since:] if m.name == name]

    async def wait(self, name, since=0, timeout=3.0, n=1):
        """The first `name` message from inbox index `since`, once n of them have arrived."""
        deadline = time.monotonic() + timeout
        while True:
            hits = self.got(name, since)
            if len(hits) >= n:
                return hits[0]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s; got %s" % (name, [m.name for m in self.inbox[since:]]))
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except asyncio.TimeoutError:
                pass

    def close_inbound(self):
        for w in self._inbound:
            w.close()


# --- message builders from the captured real agent's bodies ----------------------------------------

def register_body(**changes):
    """The captured real agent's RegisterSlaveMessage (decoded), with changes applied, re-encoded."""
    m = dec(schema.RegisterSlaveMessage, cap_body(0))
    for k, v in changes.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return enc(schema.RegisterSlaveMessage, m)


def micro_slave_info(resources="cpus", agent_id=None):
    res = [{"name": "cpus", "type": 0, "scalar": {"value": 1.0}},
           {"name": "mem", "type": 0, "scalar": {"value": 256.0}},
           {"name": "sensors", "type": 2, "set": {"item": ["temp0", "hall0"]}},
           {"name": "ports", "type": 1, "ranges": {"range": [{"begin": 31000, "end": 31009}]}}]
    info = {"hostname": "127.0.0.1", "resources": res, "checkpoint": True, "port": 5051}
    if agent_id:
        info["id"] = agent_id
    return info


CAPS = [{"type": schema.MULTI_ROLE}, {"type": schema.HIERARCHICAL_ROLE}, {"type": schema.RESERVATION_REFINEMENT}]


def micro_register():
    return enc(schema.RegisterSlaveMessage, {"slave": micro_slave_info(), "version": "1.12.0",
                                             "agent_capabilities": CAPS})


def status_update(agent_id, fid, tid, state, pid, uuid=None, status_uuid="same", latest=None, executor_id=None):
    uuid = uuid if uuid is not None else os.urandom(16)[:6] + bytes([0x40]) + os.urandom(9)
    st = {"task_id": tid, "state": state, "slave_id": agent_id, "timestamp": time.time(),
          "source": schema.SOURCE_EXECUTOR}
    if status_uuid == "same":
        st["uuid"] = uuid
    elif status_uuid is not None:
        st["uuid"] = status_uuid
    up = {"framework_id": fid, "slave_id": agent_id, "status": st, "timestamp": st["timestamp"],
          "uuid": uuid, "latest_state": state if latest is None else latest}
    if executor_id:
        up["executor_id"] = executor_id
        st["executor_id"] = executor_id
    msg = {"update": up}
    if pid is not None:
        msg["pid"] = pid
    return enc(schema.StatusUpdateMessage, msg), uuid


async def start(**kw):
    kw.setdefault("ping_interval", 15.0)
    m = StandinMaster(**kw)
    _OPEN.append(m)
    return await m.start()


async def registered(m, body=None, pong="observer"):
    a = await FakeAgent(m.port, pong=pong).start()
    await a.post("RegisterSlaveMessage", body if body is not None else micro_register())
    reg = await a.wait("SlaveRegisteredMessage")
    return a, reg.decoded()["slave_id"]


def no_problems(m):
    bad = m.problems()
    assert not bad, "\n".join(e.line(m.t0) for e in bad)


# --- registration ---------------------------------------------------------------------------------

def test_registration_reply_bytes_equal_the_captured_master():
    async def go():
        m = await start(master_id=CAPTURED_MASTER_ID)
        a = await FakeAgent(m.port).start()
        await a.post("RegisterSlaveMessage", cap_body(0))  # the real agent's bytes
        reg = await a.wait("SlaveRegisteredMessage")
        ping = await a.wait("PingSlaveMessage")
        await asyncio.sleep(0.1)
        master = "127.0.0.1:%d" % m.port
        # Our POST was answered on our own connection exactly as libprocess does: 202, Date, Content-Length: 0.
        resp = a.responses[0].decode().split("\r\n")
        want = [h[0] for h in CAP[1]["headers"]]
        assert resp[0] == CAP[1]["first_line"] == "HTTP/1.1 202 Accepted"
        assert [h.split(":")[0] for h in resp[1:3]] == want == ["Date", "Content-Length"]
        assert resp[2] == "Content-Length: 0" and email.utils.parsedate_to_datetime(resp[1][6:])
        # The replies came on a connection the master opened itself, registration first, then the ping.
        assert reg.conn == ping.conn == 1 and a.inbox.index(reg) < a.inbox.index(ping)
        # Byte for byte the real master's requests, once the two loopback addresses are swapped in.
        assert reg.raw == cap_raw(2, master, a.addr)
        assert ping.raw == cap_raw(3, master, a.addr)
        assert ping.sender == "slave-observer(1)@" + master
        assert [e.name for e in m.events if e.kind == "recv"] == ["RegisterSlaveMessage", "PongSlaveMessage"]
        assert m.agent().id == AGENT_ID and m.agent().observer.timeouts == 0
        no_problems(m)
    run(go())


def test_pings_come_from_the_observer_at_the_configured_interval():
    async def go():
        m = await start(ping_interval=0.25)
        a, aid = await registered(m)
        await a.wait("PingSlaveMessage", n=13, timeout=30)
        pings = a.got("PingSlaveMessage")[:13]
        gaps = sorted(b.time - p.time for p, b in zip(pings, pings[1:]))
        print("ping gaps (s):", ["%.3f" % g for g in gaps])
        # The observer keeps an absolute schedule: a late ping makes one gap longer and the next one
        # shorter, so load moves single gaps but neither the median gap nor the mean over 3 s (a 2x or
        # 0.5x interval, or the 15 s default, fails both).
        assert abs(gaps[6] - 0.25) < 0.05, gaps
        assert abs((pings[12].time - pings[0].time) / 12 - 0.25) < 0.1, gaps
        assert {p.sender for p in pings} == {"slave-observer(1)@127.0.0.1:%d" % m.port}
        assert all(p.decoded() == {"connected": True} for p in pings)
        # Every ping is answered (a pong may come after the next tick on a loaded machine).
        deadline = time.monotonic() + 10
        while len(m.find("PongSlaveMessage", kind="recv")) < 12 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(m.find("PongSlaveMessage", kind="recv")) >= 12 and m.agent(aid).state == "registered"
        no_problems(m)
    run(go(), timeout=60)


def test_pong_to_master_is_dropped_and_the_agent_goes_unreachable():
    async def go():
        m = await start(ping_interval=0.15, max_missed=3)
        a, aid = await registered(m, pong="master")
        ev = await m.wait_for(DROPPED, timeout=2)
        assert ev.name == "PongSlaveMessage" and "slave-observer" in ev.reason
        assert a.responses[1].startswith(b"HTTP/1.1 202 Accepted")  # 202 all the same (§0.2)
        await m.wait_for(lambda e: "unreachable" in (e.reason or ""), timeout=2)
        # Ping at once, one per interval, the 3rd miss marks it unreachable after that tick's ping: 1 + 3,
        # and then no more.
        await a.wait("PingSlaveMessage", n=4)
        await asyncio.sleep(0.5)
        assert len(a.got("PingSlaveMessage")) == 4
        assert m.agent(aid).state == "unreachable" and not m.observers
    run(go())


BAD_REGISTRATIONS = [
    ("no version", register_body(version=None), "no version"),
    ("old version", register_body(version="0.9.0"), "below the minimum"),
    ("not semver", register_body(version="1.x"), "does not parse"),
    ("negative scalar", None, "negative scalar"),
    ("tiny scalar", None, "rounds to 0"),
    ("text resource", None, "TEXT"),
    ("overlapping ranges", None, "overlapping ranges"),
    ("duplicate set items", None, "duplicate set items"),
    ("missing hostname", b"\x0a\x03\x40\xbb\x27\x12\x061.12.0", "missing required SlaveInfo.hostname"),
    ("SCALAR=0 left out", None, "missing required Resource.type"),
    ("garbage body", b"\xff\xff\xff\xff", "undecodable"),
]


def _bad_body(case):
    info = micro_slave_info()
    r = info["resources"]
    if case == "negative scalar":
        r[0]["scalar"]["value"] = -1.0
    elif case == "tiny scalar":
        r[0]["scalar"]["value"] = 0.0004
    elif case == "text resource":
        r.append({"name": "label", "type": schema.TEXT})  # Resource has no text field at all
    elif case == "overlapping ranges":
        r[3]["ranges"]["range"].append({"begin": 31005, "end": 31020})
    elif case == "duplicate set items":
        r[2]["set"]["item"].append("temp0")
    body = enc(schema.RegisterSlaveMessage, {"slave": info, "version": "1.12.0", "agent_capabilities": CAPS})
    if case == "SCALAR=0 left out":  # a proto3-style encoder drops `type: SCALAR` (10 00): §0.6
        body = enc(schema.RegisterSlaveMessage, {"slave": info, "version": "1.12.0"})
        i = body.index(b"\x0a\x04cpus\x10\x00")
        body = body[:i - 1] + bytes([body[i - 1] - 2]) + b"\x0a\x04cpus" + body[i + 8:]
        body = body[:1] + bytes([body[1] - 2]) + body[2:]  # SlaveInfo's length byte
    return body


@pytest.mark.parametrize("case,body,why", BAD_REGISTRATIONS, ids=[c[0] for c in BAD_REGISTRATIONS])
def test_bad_registration_is_dropped_and_not_answered(case, body, why):
    async def go():
        m = await start()
        a = await FakeAgent(m.port).start()
        await a.post("RegisterSlaveMessage", body if body is not None else _bad_body(case))
        ev = await m.wait_for(DROPPED, timeout=2)
        assert why in ev.reason, ev.reason
        await asyncio.sleep(0.2)
        assert a.responses[0].startswith(b"HTTP/1.1 202 Accepted")
        assert a.inbox == [] and m.agents == {}
        # The master is unharmed: the same agent registers properly next.
        await a.post("RegisterSlaveMessage", micro_register())
        await a.wait("SlaveRegisteredMessage")
    run(go())


def test_reboot_race_same_pid_gets_the_same_id_again():
    async def go():
        m = await start()
        a, aid = await registered(m)
        await a.wait("PingSlaveMessage")
        mark = len(a.inbox)
        await a.post("RegisterSlaveMessage", micro_register())  # rebooted, id forgotten (§2.2 step 8)
        again = await a.wait("SlaveRegisteredMessage", since=mark)
        assert again.decoded()["slave_id"] == aid and len(m.agents) == 1
        await asyncio.sleep(0.1)
        assert a.got("PingSlaveMessage", since=mark) == []  # no new agent, so no new observer
        no_problems(m)
    run(go())


# --- tasks, status updates, acknowledgements ------------------------------------------------------

def test_launch_kill_ack_and_shutdown_bytes_equal_the_captured_master():
    async def go():
        m = await start(master_id=CAPTURED_MASTER_ID)
        a, aid = await registered(m, body=cap_body(0))
        master = "127.0.0.1:%d" % m.port
        fids = [m.create_framework() for _ in range(3)]
        assert fids[2] == CAPTURED_MASTER_ID + "-0002"
        await m.launch("echo hi", task_id="echo-hi", resources="cpus:0.1;mem:32", framework_id=fids[0])
        run1 = await a.wait("RunTaskMessage")
        assert run1.raw == cap_raw(26, master, a.addr)
        await m.launch("echo custom", task_id="custom-res", framework_id=fids[1],
                       resources="cpus:0.1;mem:32;temperature:1;sensors:{temp0}")
        await m.launch("sleep 60", task_id="sleep-kill", framework_id=fids[2])
        await a.wait("RunTaskMessage", n=3)
        runs = a.got("RunTaskMessage")
        assert [r.body for r in runs[1:]] == [cap_body(78), cap_body(127)]
        # The real agent's status update, through this master, is acknowledged with the real master's bytes.
        mark = len(a.inbox)
        await a.post("StatusUpdateMessage", cap_body(37))
        ack = await a.wait("StatusUpdateAcknowledgementMessage", since=mark)
        assert ack.raw == cap_raw(47, master, a.addr)
        await m.kill("sleep-kill")
        kill = await a.wait("KillTaskMessage")
        assert kill.body == cap_body(159)
        await m.shutdown_framework(fids[0])
        sf = await a.wait("ShutdownFrameworkMessage")
        assert sf.raw == cap_raw(64, master, a.addr)
        no_problems(m)
    run(go())


def test_status_updates_are_acknowledged_and_terminal_ones_free_resources():
    async def go():
        m = await start()
        a, aid = await registered(m)
        fid = m.create_framework()
        tid = await m.launch("blink", resources="cpus:0.75;mem:64;sensors:{temp0};ports:[31000-31001]")
        run_ = (await a.wait("RunTaskMessage")).decoded()
        t = run_["task"]
        assert run_["pid"] == "@0.0.0.0:0" and run_["launch_executor"] is True
        assert all(r["allocation_info"] == {"role": "*"} for r in t["resources"])
        assert t["command"] == {"value": "blink", "shell": True} and t["slave_id"] == aid
        with pytest.raises(Refused):   # 0.75 + 0.75 cpus > 1: refused by the fixture, nothing sent
            await m.launch("again", resources="cpus:0.75")
        with pytest.raises(Refused):   # the set item is taken
            await m.launch("again", resources="cpus:0.1;sensors:{temp0}")
        with pytest.raises(Refused):   # so is the port
            await m.launch("again", resources="cpus:0.1;ports:[31001-31001]")
        assert len(a.got("RunTaskMessage")) == 1
        for state in (schema.TASK_STARTING, schema.TASK_RUNNING, schema.TASK_FINISHED):
            mark = len(a.inbox)
            body, uuid = status_update(aid, fid, tid, state, a.pid)
            await a.post("StatusUpdateMessage", body)
            ack = (await a.wait("StatusUpdateAcknowledgementMessage", since=mark)).decoded()
            assert ack == {"slave_id": aid, "framework_id": fid, "task_id": tid, "uuid": uuid}
        assert m.tasks == {}  # terminal update acknowledged: the master forgets the task
        await m.launch("again", resources="cpus:0.75;sensors:{temp0};ports:[31000-31001]")
        no_problems(m)
    run(go())


def test_manual_ack_policy_waits_for_the_command():
    async def go():
        m = await start()
        a, aid = await registered(m)
        fid = m.create_framework(ack="manual")
        tid = await m.launch("x")
        body, uuid = status_update(aid, fid, tid, schema.TASK_RUNNING, a.pid)
        await a.post("StatusUpdateMessage", body)
        await m.wait_for("StatusUpdateMessage", kind="recv")
        await asyncio.sleep(0.15)
        assert a.got("StatusUpdateAcknowledgementMessage") == []
        assert m.pending(tid) == [(fid, tid, uuid, "TASK_RUNNING")]
        assert await m.ack(tid) == uuid
        assert (await a.wait("StatusUpdateAcknowledgementMessage")).decoded()["uuid"] == uuid
        with pytest.raises(LookupError):
            await m.ack(tid)
    run(go())


BAD_UPDATES = [
    ("no pid", dict(pid=None), CRASH, "CHECK_NE"),
    ("no status.uuid", dict(status_uuid=None), CRASH, "status.uuid missing"),
    ("uuid version 0", dict(uuid=bytes(16)), DROPPED, "version nibble is 0"),
    ("uuid 15 bytes", dict(uuid=b"\x40" * 15), DROPPED, "15 bytes"),
    ("unknown agent", dict(agent="nope-S9"), DROPPED, "not a registered agent"),
    ("TASK_UNKNOWN, terminal latest", dict(state=schema.TASK_UNKNOWN, latest=schema.TASK_FAILED), CRASH, "FATAL"),
]


@pytest.mark.parametrize("case,kw,kind,why", BAD_UPDATES, ids=[c[0] for c in BAD_UPDATES])
def test_bad_status_updates(case, kw, kind, why):
    async def go():
        m = await start()
        a, aid = await registered(m)
        fid = m.create_framework()
        tid = await m.launch("x")
        kw2 = dict(kw)
        body, _ = status_update(kw2.pop("agent", aid), fid, tid, kw2.pop("state", schema.TASK_RUNNING),
                                kw2.pop("pid", a.pid), **kw2)
        await a.post("StatusUpdateMessage", body)
        ev = await m.wait_for(lambda e: e.kind in (DROPPED, CRASH), timeout=2)
        assert ev.kind == kind and why in ev.reason, ev.line()
        await asyncio.sleep(0.1)
        assert a.got("StatusUpdateAcknowledgementMessage") == []
    run(go())


def test_task_group_executor_message_and_exited_executor():
    async def go():
        m = await start()
        a, aid = await registered(m)
        fid = m.create_framework()
        ids = await m.launch_group([{"task_id": "g1", "command": "a"}, {"task_id": "g2", "command": "b"}])
        g = (await a.wait("RunTaskGroupMessage")).decoded()
        ex = g["executor"]
        assert ex["type"] == schema.EXECUTOR_DEFAULT and ex["framework_id"] == fid and "command" not in ex
        assert g["launch_executor"] is True and ids == ["g1", "g2"]
        assert [t["executor"] for t in g["task_group"]["tasks"]] == [ex, ex]
        mark = len(a.inbox)
        await m.launch_group([{"task_id": "g3", "command": "c"}])
        assert (await a.wait("RunTaskGroupMessage", since=mark)).decoded()["launch_executor"] is False
        await m.send_framework_message(b"\x01\x02", executor_id="default-executor")
        fm = (await a.wait("FrameworkToExecutorMessage")).decoded()
        assert fm == {"slave_id": aid, "framework_id": fid, "executor_id": "default-executor", "data": b"\x01\x02"}
        await m.shutdown_executor("default-executor")
        assert (await a.wait("ShutdownExecutorMessage")).decoded() == {"executor_id": "default-executor",
                                                                       "framework_id": fid}
        used = m.used(m.agent()).scalars["cpus"]
        await a.post("ExitedExecutorMessage", enc(schema.ExitedExecutorMessage, {
            "slave_id": aid, "framework_id": fid, "executor_id": "default-executor", "status": 0}))
        await m.wait_for(lambda e: "exited" in (e.reason or ""), timeout=2)
        assert m.used(m.agent()).scalars["cpus"] == used - 100  # the executor's 0.1 cpus are free again
        no_problems(m)
    run(go())


# --- re-registration and master restart -----------------------------------------------------------

def _task(aid, fid, tid, state=schema.TASK_RUNNING, resources="cpus:0.1;mem:32", **extra):
    from standin.model import parse_resources
    t = {"name": tid, "task_id": tid, "framework_id": fid, "slave_id": aid, "state": state,
         "resources": parse_resources(resources)}
    t.update(extra)
    return t


def reregister(aid, tasks=(), frameworks=(), executors=(), caps=CAPS):
    return enc(schema.ReregisterSlaveMessage, {
        "slave": micro_slave_info(agent_id=aid), "version": "1.12.0", "tasks": list(tasks),
        "executor_infos": list(executors), "frameworks": list(frameworks), "agent_capabilities": caps})


def test_reregistration_case_a_reconciles_tasks_the_agent_left_out():
    async def go():
        m = await start()
        a, aid = await registered(m)
        fid = m.create_framework(checkpoint=True)
        await m.launch("a", task_id="kept")
        await m.launch("b", task_id="forgotten")
        await m.kill("kept")
        await a.wait("KillTaskMessage")
        fw = m.frameworks[fid].info
        mark = len(a.inbox)
        await a.post("ReregisterSlaveMessage", reregister(aid, [_task(aid, fid, "kept")], [fw]))
        rr = (await a.wait("SlaveReregisteredMessage", since=mark)).decoded()
        await a.wait("CheckpointResourcesMessage", since=mark)
        rec = rr["reconciliations"]
        assert [r["framework_id"] for r in rec] == [fid] and rec[0]["framework"] == fw
        st = rec[0]["statuses"]
        assert [s["task_id"] for s in st] == ["forgotten"]
        assert st[0]["state"] == schema.TASK_STAGING and st[0]["source"] == schema.SOURCE_MASTER
        assert st[0]["reason"] == schema.REASON_RECONCILIATION and st[0]["slave_id"] == aid
        # Then, in the real master's order: the kill again, UpdateFramework, the (empty) checkpointed resources.
        names = [x.name for x in a.inbox[mark:] if x.name != "PingSlaveMessage"]
        assert names == ["SlaveReregisteredMessage", "KillTaskMessage", "UpdateFrameworkMessage",
                         "CheckpointResourcesMessage"]
        uf = a.got("UpdateFrameworkMessage")[0].decoded()
        assert uf == {"framework_id": fid, "pid": "@0.0.0.0:0", "framework_info": fw}
        assert a.got("CheckpointResourcesMessage")[0].body == b""
        no_problems(m)
    run(go())


def test_captured_agent_restart_is_case_a_with_the_real_reply():
    async def go():
        m = await start(master_id=CAPTURED_MASTER_ID)
        a, aid = await registered(m, body=cap_body(0))
        await a.wait("PingSlaveMessage")
        mark = len(a.inbox)
        await a.post("ReregisterSlaveMessage", cap_body(188))
        rr = await a.wait("SlaveReregisteredMessage", since=mark)
        await asyncio.sleep(0.1)
        assert rr.body == cap_body(190)
        # A RESOURCE_PROVIDER agent without frameworks gets nothing else, as captured (#190 only).
        assert [x.name for x in a.inbox[mark:]] == ["SlaveReregisteredMessage"]
        no_problems(m)
    run(go())


def test_master_restart_pings_before_slave_reregistered(tmp_path):
    async def go():
        reg = str(tmp_path / "registry.json")
        m = await start(master_id=CAPTURED_MASTER_ID, registry=reg)
        a, aid = await registered(m, body=cap_body(0))
        old_port = m.port
        await m.restart(master_id="fad05b80-ead6-4a41-9958-1bccc4ada4c1")
        assert m.port == old_port and m.agent(aid).state == "recovered" and not m.observers
        assert json.load(open(reg))["agents"][0]["id"] == aid
        mark = len(a.inbox)
        await a.post("ReregisterSlaveMessage", cap_body(198))
        rr = await a.wait("SlaveReregisteredMessage", since=mark)
        ping = a.got("PingSlaveMessage", since=mark)[0]
        master = "127.0.0.1:%d" % m.port
        # As captured (#200, #201): a new observer numbered from 1 pings first, on the new link.
        assert a.inbox.index(ping) < a.inbox.index(rr) and ping.conn == rr.conn == 2
        assert ping.raw == cap_raw(200, master, a.addr) and rr.raw == cap_raw(201, master, a.addr)
        fid = m.create_framework()
        await m.launch("echo hi", task_id="echo-hi-2", framework_id=fid)
        assert (await a.wait("RunTaskMessage", since=mark)).body == cap_body(214)
        no_problems(m)
    run(go())


def test_case_b_takes_the_agents_tasks_and_checks_allocation_info():
    async def go():
        m = await start()
        a, aid = await registered(m)
        fid = m.create_framework(checkpoint=True)
        await m.launch("a", task_id="t1")
        fw = m.frameworks[fid].info
        await m.restart()
        bad = _task(aid, fid, "t1")
        for r in bad["resources"]:
            del r["allocation_info"]
        await a.post("ReregisterSlaveMessage", reregister(aid, [bad, _task(aid, fid, "t2")], [fw]))
        ev = await m.wait_for(CRASH, timeout=2)
        assert "allocation_info" in ev.reason and "MULTI_ROLE" in ev.reason
        await a.wait("SlaveReregisteredMessage")
        assert sorted(t for _, t in m.tasks) == ["t1", "t2"]  # the agent's report is the truth (case B)
        assert a.got("CheckpointResourcesMessage") == []
    run(go())


def test_reregistration_with_running_task_of_unknown_executor_is_dropped():
    async def go():
        m = await start()
        a, aid = await registered(m)
        fid = m.create_framework()
        fw = m.frameworks[fid].info
        mark = len(a.inbox)
        await a.post("ReregisterSlaveMessage", reregister(aid, [_task(aid, fid, "t", executor_id="t")], [fw]))
        ev = await m.wait_for(DROPPED, timeout=2)
        assert "not in executor_infos" in ev.reason
        await asyncio.sleep(0.15)
        assert a.got("SlaveReregisteredMessage", since=mark) == []
    run(go())


def test_cut_link_disconnects_then_pings_say_connected_false():
    async def go():
        m = await start(ping_interval=0.2)
        a, aid = await registered(m)
        volatile = m.create_framework(checkpoint=False)
        durable = m.create_framework(checkpoint=True)
        await m.launch("a", task_id="v", framework_id=volatile)
        await m.launch("b", task_id="d", framework_id=durable)
        await a.wait("RunTaskMessage", n=2)
        await a.wait("PingSlaveMessage")
        assert await m.cut_link() is True
        await m.wait_for(lambda e: "disconnected" in (e.reason or ""), timeout=2)
        # Master::exited: tasks of frameworks that don't checkpoint are lost at once (§0.5, §1.5).
        assert list(m.tasks) == [(durable, "d")]
        mark = len(a.inbox)
        ping = await a.wait("PingSlaveMessage", since=mark)
        assert ping.decoded() == {"connected": False} and ping.conn > 1  # a temporary connection
        await a.post("ReregisterSlaveMessage", reregister(aid))
        await a.wait("SlaveReregisteredMessage", since=mark)
        mark = len(a.inbox)
        assert (await a.wait("PingSlaveMessage", since=mark)).decoded() == {"connected": True}
        assert m.agent().connected
        no_problems(m)
    run(go())


# --- robustness -------------------------------------------------------------------------------------

GARBAGE = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200),            # a TLS hello
    b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 20000 + b"\r\n\r\n",             # oversize header line
    b"POST /master/x HTTP/1.1\r\nLibprocess-From: a@1.2.3.4:5\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /master/x HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
    b"POST /master/mesos.internal.RegisterSlaveMessage HTTP/1.1\r\nLibprocess-From: junk\r\n"
    b"Content-Length: 2\r\n\r\n\x0a\x00",
    b"".join(b"H%d: v\r\n" % i for i in range(100)),
]


def test_garbage_never_takes_the_master_down():
    async def go():
        m = await start()
        for g in GARBAGE:
            r, w = await asyncio.open_connection("127.0.0.1", m.port)
            w.write(b"POST /master/mesos.internal.PongSlaveMessage HTTP/1.1\r\n" + g if g.startswith(b"H0")
                    else g)
            await w.drain()
            w.write_eof()
            await asyncio.wait_for(r.read(), 2)
            w.close()
        a = await FakeAgent(m.port).start()
        await a.post("RegisterSlaveMessage", micro_register(), name_prefix="")        # name without prefix
        await a.post("PongSlaveMessage", b"", to="slave-observer(7)")                # no such process: 404
        await a.post("RegisterSlaveMessage", micro_register())
        await a.wait("SlaveRegisteredMessage")
        drops = [e.reason for e in m.events if e.kind == DROPPED]
        print("drops:", *drops, sep="\n  ")
        assert len(drops) == len(GARBAGE) + 2
        assert any("404" in d for d in drops) and any("full mesos.internal" in d for d in drops)
        assert b"HTTP/1.1 404 Not Found" in a.responses[1]
        assert not m.find(ERROR)
    run(go())


# --- the command line and its control API, in another process --------------------------------------

def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _http(port, method, path, obj=None):
    data = json.dumps(obj).encode() if obj is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_control_api_drives_a_master_in_another_process(tmp_path):
    port = _free_port()
    events = str(tmp_path / "events.jsonl")
    p = subprocess.Popen([sys.executable, os.path.join(mpy.ROOT, "tools", "standin_master.py"), "--port",
                          str(port), "--ping-interval", "0.3", "--events", events,
                          "--registry", str(tmp_path / "reg.json")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)

        async def go():
            a = await FakeAgent(port).start()
            await a.post("RegisterSlaveMessage", micro_register())
            aid = (await a.wait("SlaveRegisteredMessage")).decoded()["slave_id"]
            st, out = await asyncio.to_thread(_http, port, "GET", "/control/agents")
            assert st == 200 and [x["id"] for x in out["agents"]] == [aid]
            assert out["agents"][0]["connected"] and out["agents"][0]["total"]["cpus"] == 1.0
            st, out = await asyncio.to_thread(_http, port, "POST", "/control/framework", {"ack": "manual"})
            fid = out["framework_id"]
            st, out = await asyncio.to_thread(_http, port, "POST", "/control/launch", {
                "command": "blink", "task_id": "t1", "resources": "cpus:0.5;mem:32", "data": "hi",
                "kill_policy": 2.5, "environment": {"PIN": 2}})
            assert st == 200 and out == {"task_id": "t1", "framework_id": fid, "agent_id": aid}
            t = (await a.wait("RunTaskMessage")).decoded()["task"]
            assert t["data"] == b"hi" and t["kill_policy"] == {"grace_period": {"nanoseconds": 2500000000}}
            assert t["command"]["environment"] == {"variables": [{"name": "PIN", "value": "2"}]}
            st, out = await asyncio.to_thread(_http, port, "POST", "/control/launch", {"resources": "cpus:0.9"})
            assert st == 400 and "does not fit" in out["error"]
            body, uuid = status_update(aid, fid, "t1", schema.TASK_RUNNING, a.pid)
            await a.post("StatusUpdateMessage", body)
            st, out = await asyncio.to_thread(_http, port, "GET",
                                              "/control/wait?name=StatusUpdateMessage&timeout=3")
            assert st == 200 and out["event"]["body"]["update"]["uuid"] == "hex:" + uuid.hex()
            st, out = await asyncio.to_thread(_http, port, "POST", "/control/ack", {"task_id": "t1"})
            assert out == {"uuid": "hex:" + uuid.hex()}
            assert (await a.wait("StatusUpdateAcknowledgementMessage")).decoded()["uuid"] == uuid
            st, out = await asyncio.to_thread(_http, port, "POST", "/control/kill", {"task_id": "t1"})
            assert (await a.wait("KillTaskMessage")).decoded()["task_id"] == "t1"
            st, out = await asyncio.to_thread(_http, port, "GET", "/control/events?since=0")
            kinds = {(e["kind"], e.get("name")) for e in out["events"]}
            assert ("recv", "PongSlaveMessage") in kinds and ("send", "KillTaskMessage") in kinds
            st, out = await asyncio.to_thread(_http, port, "GET", "/control/problems")
            assert out == {"problems": []}
            st, out = await asyncio.to_thread(_http, port, "POST", "/control/shutdown-agent", {})
            assert (await a.wait("ShutdownMessage")).decoded() == {"message": "Agent has been marked gone"}
        run(go())
    finally:
        p.terminate()
        out = p.communicate(timeout=10)[0]
    lines = out.splitlines()
    print("\n".join(lines[:12]))
    assert p.returncode == 0
    assert any("<- RegisterSlaveMessage" in x for x in lines) and any("-> RunTaskMessage" in x for x in lines)
    assert any("connected=true" in x for x in lines)
    with open(events) as f:
        logged = [json.loads(x) for x in f]
    assert logged[0]["kind"] == "info" and any(e.get("name") == "KillTaskMessage" for e in logged)


def test_multi_role_framework_has_roles_not_role():
    async def go():
        m = await start()
        a, aid = await registered(m)
        fid = m.create_framework(capabilities=["MULTI_ROLE", "PARTITION_AWARE"], roles=["sensors/lab"])
        assert "role" not in m.frameworks[fid].info and m.frameworks[fid].info["roles"] == ["sensors/lab"]
        await m.launch("x", framework_id=fid)
        run_ = (await a.wait("RunTaskMessage")).decoded()
        assert run_["framework"]["roles"] == ["sensors/lab"] and "role" not in run_["framework"]
        assert {r["allocation_info"]["role"] for r in run_["task"]["resources"]} == {"sensors/lab"}
        with pytest.raises(ValueError):
            m.create_framework(capabilities=["NO_SUCH_CAPABILITY"])
        no_problems(m)
    run(go())


def test_unregister_only_from_the_agent_and_gone_agents_are_shut_down():
    async def go():
        m = await start(ping_interval=0.2)
        a, aid = await registered(m)
        body = enc(schema.UnregisterSlaveMessage, {"slave_id": aid})
        await a.post("UnregisterSlaveMessage", body, headers=[("Libprocess-From", "slave(1)@127.0.0.1:1")])
        ev = await m.wait_for(DROPPED, timeout=2)
        assert "not from the agent's pid" in ev.reason and m.agent(aid).state == "registered"
        await a.post("UnregisterSlaveMessage", body)
        await m.wait_for(lambda e: "unregistered" in (e.reason or ""), timeout=2)
        assert m.agent(aid).state == "removed" and not m.observers
        # Back as a new agent (new id), then marked gone: its old id is refused with ShutdownMessage.
        mark = len(a.inbox)
        await a.post("RegisterSlaveMessage", micro_register())
        new = (await a.wait("SlaveRegisteredMessage", since=mark)).decoded()["slave_id"]
        assert new != aid
        await m.shutdown_agent(new)
        assert (await a.wait("ShutdownMessage", since=mark)).decoded() == {"message": "Agent has been marked gone"}
        mark = len(a.inbox)
        await a.post("ReregisterSlaveMessage", reregister(new))
        assert (await a.wait("ShutdownMessage", since=mark)).decoded() == {"message": "Agent has been marked gone"}
        assert a.got("SlaveReregisteredMessage") == []
    run(go())


def test_recovered_agent_that_never_comes_back_is_marked_unreachable():
    async def go():
        m = await start(reregister_timeout=0.3)
        a, aid = await registered(m)
        await m.restart()
        assert m.agent(aid).state == "recovered"
        t = time.monotonic()
        await m.wait_for(lambda e: "unreachable" in (e.reason or ""), timeout=2)
        assert 0.25 < time.monotonic() - t < 1.0 and m.agent(aid).state == "unreachable"
        mark = len(a.inbox)
        await a.post("ReregisterSlaveMessage", reregister(aid))  # comes back later: case C
        await a.wait("SlaveReregisteredMessage", since=mark)
        assert m.find(lambda e: "case C (unreachable agent)" in (e.reason or ""))
        assert m.agent(aid).state == "registered"
    run(go())
