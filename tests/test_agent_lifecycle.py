# The agent's life against a master (PROTOCOL.md §2.1-2.5, §2.10): the unix-port agent (firmware/main.py
# on the virtual board) and the stand-in master over real loopback sockets. MIT licence.
import asyncio
import contextlib
import json
import os
import socket
import time

import pytest

import standin
from vboard_proc import Board, CountingProxy, free_port

_masters = []


def StandinMaster(**kw):
    m = standin.StandinMaster(**kw)
    _masters.append(m)
    return m

SLEEPER = "import asyncio\n\nasync def main(ctx):\n    while True:\n        await asyncio.sleep(1)\n"


def run(coro):
    del _masters[:]
    try:
        return asyncio.run(asyncio.wait_for(coro, 90))
    except BaseException:
        for m in _masters:  # shown by pytest with the failure
            print("--- stand-in master events ---")
            for e in m.events:
                print(e.line(m.events[0].time if m.events else 0))
        raise


@contextlib.asynccontextmanager
async def master_and_board(tmp_path, **master):
    """A stand-in master and a virtual board registering with it; the board stops on the way out."""
    async with StandinMaster(**master) as m:
        b = Board(tmp_path / "b", m.port).start()
        try:
            yield m, b
        finally:
            b.stop()


def no_problems(m):
    probs = m.problems()
    assert not probs, "the real master would have dropped or crashed on:\n" + "\n".join(e.line() for e in probs)


async def registered(m, b, since=0):
    """Wait until the board itself says it is registered (not just that the master replied) and the
    reboot-race re-registration that follows a fresh registration has been answered; -> agent id."""
    line = await b.await_line(r"registered with master@\S+ as agent (\S+)", timeout=20, since=since)
    sid = line.rsplit(" ", 1)[1]
    await m.wait_for(lambda e: e.name == "SlaveReregisteredMessage" and e.kind == "send"
                     and e.body["slave_id"] == sid, timeout=10)
    return sid


def pongs(m, since=0):
    return [e for e in m.find("PongSlaveMessage", since=since, kind="recv")]


def test_registers_and_answers_pings_to_the_observer(tmp_path):
    async def body():
        async with master_and_board(tmp_path, ping_interval=0.2) as (m, b):
            reg = await m.wait_for("RegisterSlaveMessage", timeout=15, kind="recv")
            assert reg.src == b.upid
            assert reg.body["version"] == "1.12.0"
            info = reg.body["slave"]
            assert info["hostname"] == "127.0.0.1" and info["port"] == b.port and info["checkpoint"] is True
            assert "id" not in info
            assert [c["type"] for c in reg.body["agent_capabilities"]] == [1, 2, 3, 7]
            names = [r["name"] for r in info["resources"]]
            assert names[:2] == ["cpus", "mem"] and "temperature" in names and "gpio" in names
            await m.wait_for("SlaveRegisteredMessage", kind="send")
            await b.await_line(r"registered with master@127\.0\.0\.1:%d as agent \S+-S0" % m.port)
            t = time.time()
            while len(pongs(m)) < 5 and time.time() - t < 10:
                await asyncio.sleep(0.05)
            ps = pongs(m)
            assert len(ps) >= 5
            # §0.1: to the observer that pinged, never to `master`
            assert {e.dst for e in ps} == {"slave-observer(1)"}  # the receiver id of the POST
            assert all(e.src == b.upid for e in ps)
            sid = m.agent().id
            with open(b.state_file("agent")) as f:
                assert json.load(f)["slave_id"] == sid  # checkpointed for a reboot
            no_problems(m)
    run(body())


def test_reregisters_after_master_restart_with_the_same_id(tmp_path):
    registry = str(tmp_path / "registry.json")

    async def body():
        m = StandinMaster(ping_interval=0.3, registry=registry)
        await m.start()
        port = m.port
        b = Board(tmp_path / "b", port).start()
        try:
            sid = await registered(m, b)
            await m.stop()  # the master process dies: its link to the board breaks
            await b.await_line("disconnected: master's link closed|no ping")
            m2 = StandinMaster(port=port, ping_interval=0.3, registry=registry)
            await m2.start()
            try:
                rr = await m2.wait_for("ReregisterSlaveMessage", timeout=20, kind="recv")
                assert rr.body["slave"]["id"] == sid
                await m2.wait_for("SlaveReregisteredMessage", timeout=5, kind="send")
                await b.await_line("re-registered with .* as agent " + sid)
                mk = m2.mark()
                await m2.wait_for("PongSlaveMessage", since=mk, timeout=5, kind="recv")
                assert m2.agent().id == sid and m2.agent().connected
                no_problems(m2)
            finally:
                await m2.stop()
        finally:
            b.stop()
    run(body())


def test_reregisters_after_the_link_is_cut(tmp_path):
    async def body():
        async with master_and_board(tmp_path, ping_interval=0.3) as (m, b):
            sid = await registered(m, b)
            mk = m.mark()
            assert await m.cut_link()
            await b.await_line("disconnected: master's link closed")
            rr = await m.wait_for("ReregisterSlaveMessage", since=mk, timeout=10, kind="recv")
            assert rr.body["slave"]["id"] == sid
            await m.wait_for("SlaveReregisteredMessage", since=mk, timeout=5, kind="send")
            await b.await_line("re-registered with")
            assert m.agent().connected
            no_problems(m)
    run(body())


def test_agent_restart_recovers_its_identity_from_the_checkpoint(tmp_path):
    async def body():
        async with master_and_board(tmp_path, ping_interval=0.3) as (m, b):
            sid = await registered(m, b)
            mk = m.mark()
            b.restart()  # power cut and boot
            await b.await_line("recovered agent " + sid)
            rr = await m.wait_for("ReregisterSlaveMessage", since=mk, timeout=15, kind="recv")
            assert rr.body["slave"]["id"] == sid
            assert not m.find("RegisterSlaveMessage", since=mk, kind="recv")
            await m.wait_for("SlaveReregisteredMessage", since=mk, timeout=5, kind="send")
            assert len(m.agents) == 1
            no_problems(m)
    run(body())


def test_ping_watchdog_reregisters_when_pings_stop(tmp_path):
    async def body():
        # total_ping_timeout_seconds=1.0 from the master, and the master pings only every 30 s
        async with master_and_board(tmp_path, ping_interval=30, ping_timeout=1.0) as (m, b):
            await registered(m, b)
            t0 = time.time()
            await b.await_line(r"disconnected: no ping for \d+ ms", timeout=10)
            waited = time.time() - t0
            assert 0.9 <= waited < 4, waited
            await m.wait_for("ReregisterSlaveMessage", timeout=10, kind="recv")
            no_problems(m)
    run(body())


def test_ping_with_connected_false_makes_the_agent_reregister(tmp_path):
    async def body():
        async with master_and_board(tmp_path, ping_interval=0.3) as (m, b):
            await registered(m, b)
            await m.wait_for("PongSlaveMessage", timeout=5, kind="recv")
            a = m.agent()
            mk = m.mark()
            m.send(b.upid, "PingSlaveMessage", {"connected": False}, sender=a.observer.upid)
            await b.await_line("ping connected=false")
            await m.wait_for("ReregisterSlaveMessage", since=mk, timeout=10, kind="recv")
            no_problems(m)
    run(body())


def test_shutdown_message_forgets_the_identity_and_registers_anew(tmp_path):
    async def body():
        async with master_and_board(tmp_path, ping_interval=0.3) as (m, b):
            old = await registered(m, b)
            mark = b.mark()
            mk = m.mark()
            await m.shutdown_agent(message="Machine is `DOWN`")
            await b.await_line("ShutdownMessage: Machine is `DOWN`")
            reg = await m.wait_for("RegisterSlaveMessage", since=mk, timeout=10, kind="recv")
            assert "id" not in reg.body["slave"]
            new = await registered(m, b, since=mark)
            assert new != old
            with open(b.state_file("agent")) as f:
                assert json.load(f)["slave_id"] == new
            # A pong already on its way when the master removed the agent's observer gets the 404 a
            # real libprocess gives a message for a process that is gone; nothing else may be wrong.
            probs = [e for e in m.problems() if not (e.name == "PongSlaveMessage" and "404" in (e.reason or ""))]
            assert not probs, [e.line() for e in probs]
    run(body())


def test_reconciliation_reports_tasks_the_board_lost(tmp_path):
    async def body():
        async with StandinMaster(ping_interval=0.3) as m:
            b = Board(tmp_path / "b", m.port)
            with open(os.path.join(b.fs, "tasks", "sleeper.py"), "w") as f:
                f.write(SLEEPER)
            b.start()
            try:
                await registered(m, b)
                # checkpointing frameworks: the master keeps their tasks while the board is away (§1.5)
                fid = m.create_framework(name="recon", capabilities=("PARTITION_AWARE",), checkpoint=True)
                fid2 = m.create_framework(name="plain", capabilities=(), checkpoint=True)
                t1 = await m.launch(command="sleeper", task_id="keep-1", resources="cpus:0.1", framework_id=fid)
                t2 = await m.launch(command="sleeper", task_id="lost-2", resources="cpus:0.1", framework_id=fid2)
                for t in (t1, t2):
                    await m.wait_for(lambda e, t=t: e.name == "StatusUpdateMessage" and e.kind == "recv"
                                     and e.body["update"]["status"]["task_id"] == t
                                     and e.body["update"]["status"]["state"] == 1, timeout=10)
                # The board loses its task state (flash wiped but for its identity) and reboots.
                b.kill()
                for name in ("tasks", "updates"):
                    for suffix in ("", ".tmp"):
                        p = b.state_file(name) + suffix
                        if os.path.exists(p):
                            os.remove(p)
                mk = m.mark()
                b.start()
                rr = await m.wait_for("ReregisterSlaveMessage", since=mk, timeout=15, kind="recv")
                assert not rr.body.get("tasks")
                rec = await m.wait_for("SlaveReregisteredMessage", since=mk, timeout=5, kind="send")
                assert len(rec.body["reconciliations"]) == 2
                got = {}
                for _ in range(2):
                    ev = await m.wait_for(lambda e: e.name == "StatusUpdateMessage" and e.kind == "recv"
                                          and e.body["update"]["status"].get("reason") == 9
                                          and e.body["update"]["status"]["task_id"] not in got, since=mk, timeout=10)
                    st = ev.body["update"]["status"]
                    got[st["task_id"]] = (st["state"], st["source"])
                # PARTITION_AWARE -> TASK_DROPPED (9); otherwise TASK_LOST (5); SOURCE_SLAVE (1) (§2.4)
                assert got == {"keep-1": (9, 1), "lost-2": (5, 1)}
                no_problems(m)
            finally:
                b.stop()
    run(body())


class SilentMaster:
    """Accepts libprocess POSTs, answers 202 and never registers anyone: registration retries pile up."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.times = []

    async def serve(self):
        loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        while True:
            conn, _ = await loop.sock_accept(self.sock)
            loop.create_task(self._conn(conn))

    async def _conn(self, conn):
        loop = asyncio.get_running_loop()
        buf = b""
        while True:
            data = await loop.sock_recv(conn, 65536)
            if not data:
                return
            buf += data
            while b"RegisterSlaveMessage HTTP/1.1" in buf:
                i = buf.index(b"RegisterSlaveMessage HTTP/1.1")
                self.times.append(time.monotonic())
                buf = buf[i + 10:]
                await loop.sock_sendall(conn, b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")


def test_registration_backoff_windows(tmp_path):
    b_s, cap = 0.1, 0.8  # factor and cap scaled down from 1 s / 60 s through the config

    async def body():
        sm = SilentMaster()
        srv = asyncio.get_running_loop().create_task(sm.serve())
        b = Board(tmp_path / "b", sm.port, registration_backoff_factor=b_s, registration_backoff_max=cap)
        t_start = time.monotonic()
        b.start()
        try:
            await b.await_line("sending RegisterSlaveMessage", timeout=15)
            await asyncio.sleep(6)
        finally:
            b.stop()
            srv.cancel()
        return t_start, sm.times

    t_start, times = run(body())
    assert len(times) >= 8, times
    gaps = [b2 - b1 for b1, b2 in zip(times, times[1:])]
    # After send k the next comes within [0, min(b * 2^k, cap)] (§2.3), plus scheduling slack.
    for k, g in enumerate(gaps, start=1):
        assert g <= min(b_s * 2 ** k, cap) + 0.08, (k, g, gaps)
    # The windows really widen: once capped, the mean gap is near cap/2, well above b/2.
    tail = gaps[3:]
    assert sum(tail) / len(tail) > b_s, gaps


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff\x0f", b"\x0a\x80", b"\x08"])
def test_garbage_from_the_master_is_logged_and_the_agent_keeps_running(tmp_path, garbage):
    async def body():
        async with master_and_board(tmp_path, ping_interval=0.3) as (m, b):
            await registered(m, b)
            mark = b.mark()
            # A malformed body under the real master's name, on a connection of its own.
            req = (b"POST /slave(1)/mesos.internal.RunTaskMessage HTTP/1.1\r\n"
                   b"Libprocess-From: " + m.upid.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(garbage)
                   + garbage)
            r, w = await asyncio.open_connection("127.0.0.1", b.port)
            w.write(req)
            await w.drain()
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 202 Accepted")
            await b.await_line(r"ERROR agent: bad mesos\.internal\.RunTaskMessage from master@.*", since=mark)
            w.close()
            mk = m.mark()
            await m.wait_for("PongSlaveMessage", since=mk, timeout=5, kind="recv")
            assert b.alive() and m.agent().connected
            assert not b.find("disconnected", since=mark)
    run(body())


def test_run_task_from_a_stranger_is_dropped(tmp_path):
    async def body():
        async with master_and_board(tmp_path, ping_interval=0.3) as (m, b):
            await registered(m, b)
            mark = b.mark()
            fid = m.create_framework(name="x")
            # The master's exact RunTaskMessage bytes, but sent by someone else.
            stranger = "scheduler(1)@127.0.0.1:%d" % m.port
            m.send(b.upid, "RunTaskMessage", {
                "framework": {"user": "root", "name": "x", "id": fid}, "pid": "@0.0.0.0:0",
                "task": {"name": "t", "task_id": "evil", "slave_id": m.agent().id,
                         "resources": [{"name": "cpus", "type": 0, "scalar": {"value": 0.1}}],
                         "command": {"value": "hello"}}, "launch_executor": True}, sender=stranger)
            await b.await_line(r"WARN agent: dropped mesos\.internal\.RunTaskMessage from scheduler\(1\)@"
                               r".*not from the current master", since=mark)
            await asyncio.sleep(0.5)
            assert not [e for e in m.find("StatusUpdateMessage", kind="recv")]
            mk = m.mark()
            await m.wait_for("PongSlaveMessage", since=mk, timeout=5, kind="recv")
            assert m.agent().connected
    run(body())


def test_corrupt_checkpoint_is_logged_and_the_agent_starts_fresh(tmp_path):
    async def body():
        async with StandinMaster(ping_interval=0.3) as m:
            b = Board(tmp_path / "b", m.port)
            os.makedirs(os.path.join(b.fs, "state"))
            with open(b.state_file("agent"), "wb") as f:
                f.write(b'{"slave_id": "S9", "frameworks": [\x00\xff')
            b.start()
            try:
                await b.await_line(r"ERROR store: checkpoint .*agent\.json is corrupt")
                reg = await m.wait_for("RegisterSlaveMessage", timeout=15, kind="recv")
                assert "id" not in reg.body["slave"]
                await b.await_line("registered with")
                no_problems(m)
            finally:
                b.stop()
    run(body())


def test_master_advertising_another_address_and_a_board_behind_nat(tmp_path):
    """The board reaches the master through one address and is reached through another (§1.6, §1.7):
    the master's replies come from the address it advertises, the board advertises a forwarded port."""
    async def body():
        async with StandinMaster(ping_interval=0.2) as m:
            to_master = await CountingProxy(m.port).start()      # what the board is configured with
            agent_port = free_port()
            to_board = await CountingProxy(agent_port).start()   # the "NAT" port forwarded to the board
            b = Board(tmp_path / "b", to_master.port, port=agent_port, advertise_port=to_board.port).start()
            try:
                reg = await m.wait_for("RegisterSlaveMessage", timeout=15, kind="recv")
                assert reg.src == "slave(1)@127.0.0.1:%d" % to_board.port
                assert reg.body["slave"]["port"] == to_board.port
                await registered(m, b)
                await b.await_line(r"registered with master@127\.0\.0\.1:%d " % m.port)  # noted as it advertises
                mk = m.mark()
                await m.wait_for("PongSlaveMessage", since=mk, timeout=5, kind="recv")
                assert to_board.up > 0 and to_master.up > 0
                no_problems(m)
            finally:
                b.stop()
    run(body())
