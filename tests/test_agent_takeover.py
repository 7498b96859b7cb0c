# Nobody but the master the agent registers with can take it over (issue 10.1), and names or senders that are
# not UTF-8 cannot crash a connection (10.9). MIT licence. A live virtual board and the stand-in master over
# loopback; the stranger connects from 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux).
import asyncio
import json

from standin import StandinMaster, lphttp, pb
from test_agent_lifecycle import no_problems, registered, run
from vboard_proc import Board, free_port

STRANGER_IP = "127.0.0.2"


class StrangerMaster:
    """A would-be master on 127.0.0.2: counts the bytes anybody sends it (the board must send none)."""

    def __init__(self):
        self.got = 0

    async def start(self):
        self.server = await asyncio.start_server(self._conn, STRANGER_IP, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.upid = "master@%s:%d" % (STRANGER_IP, self.port)
        return self

    async def _conn(self, r, w):
        while True:
            d = await r.read(65536)
            if not d:
                break
            self.got += len(d)
        w.close()

    def close(self):
        self.server.close()


async def forge(b, *msgs, src=STRANGER_IP):
    """POST each (sender, name, body-dict) to the board, pipelined on one connection from `src`; -> the
    number of 202s that came back (the board read and dispatched them all)."""
    data = b"".join(lphttp.message_request(s, b.upid, "mesos.internal." + n, pb.encode(n, o)) for s, n, o in msgs)
    return await post_raw(b, data, len(msgs), src)


async def post_raw(b, data, n, src=STRANGER_IP):
    r, w = await asyncio.open_connection("127.0.0.1", b.port, local_addr=(src, 0))
    try:
        w.write(data)
        await w.drain()
        got = 0
        for _ in range(n):
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
            got += head.startswith(b"HTTP/1.1 202 Accepted")
        return got
    finally:
        w.close()


def not_followed(b, stranger):
    """The board never took the stranger for its master and sent it nothing."""
    assert not b.find(r"registered with master@%s" % STRANGER_IP.replace(".", r"\.")), b.output()[-3000:]
    assert not b.find("as agent EVIL")
    assert stranger.got == 0


def dropped(b, name, since):
    return b.await_line(r"WARN agent: dropped mesos\.internal\.%s from \S+: not from the current master" % name,
                        timeout=15, since=since)


def _conn():
    return {"total_ping_timeout_seconds": 75.0}


def test_registration_replies_from_strangers_before_the_first_registration(tmp_path):
    async def body():
        stranger = await StrangerMaster().start()
        port = free_port()  # no master there yet: the board keeps sending RegisterSlaveMessage
        b = Board(tmp_path / "b", port).start()
        try:
            mark = b.mark()
            await b.await_line("sending RegisterSlaveMessage", timeout=15)
            real = "master@127.0.0.1:%d" % port
            # A stranger's own address, and the configured master's exact UPID sent from the wrong host.
            assert await forge(b, (stranger.upid, "SlaveRegisteredMessage", {"slave_id": "EVIL-S0",
                                                                             "connection": _conn()})) == 1
            await dropped(b, "SlaveRegisteredMessage", mark)
            mk2 = b.mark()
            assert await forge(b, (real, "SlaveRegisteredMessage", {"slave_id": "EVIL-S1",
                                                                    "connection": _conn()})) == 1
            await dropped(b, "SlaveRegisteredMessage", mk2)
            async with StandinMaster(port=port, ping_interval=0.3) as m:
                sid = await registered(m, b, since=mark)
                assert not sid.startswith("EVIL")
                with open(b.state_file("agent")) as f:
                    assert json.load(f)["slave_id"] == sid
                mk = m.mark()
                await m.wait_for("PongSlaveMessage", since=mk, timeout=5, kind="recv")
                no_problems(m)
            not_followed(b, stranger)
        finally:
            b.stop()
            stranger.close()
    run(body())


def test_registration_replies_from_strangers_while_the_master_is_down(tmp_path):
    registry = str(tmp_path / "registry.json")

    async def body():
        stranger = await StrangerMaster().start()
        m = StandinMaster(ping_interval=0.3, registry=registry)
        await m.start()
        port = m.port
        b = Board(tmp_path / "b", port).start()
        try:
            sid = await registered(m, b)
            mark = b.mark()
            await m.stop()
            await b.await_line("disconnected: master's link closed|no ping", since=mark)
            for sender, name, sid_ in ((stranger.upid, "SlaveReregisteredMessage", sid),
                                       (m.upid, "SlaveReregisteredMessage", sid),
                                       (stranger.upid, "SlaveRegisteredMessage", "EVIL-S2")):
                mk = b.mark()
                assert await forge(b, (sender, name, {"slave_id": sid_, "connection": _conn()})) == 1
                await dropped(b, name, mk)
            assert not b.find("re-registered with", since=mark)
            m2 = StandinMaster(port=port, ping_interval=0.3, registry=registry)
            await m2.start()
            try:
                await b.await_line(r"re-registered with master@127\.0\.0\.1:%d as agent %s" % (port, sid),
                                   timeout=20, since=mark)
                mk = m2.mark()
                await m2.wait_for("PongSlaveMessage", since=mk, timeout=5, kind="recv")
                assert m2.agent().id == sid and m2.agent().connected
                no_problems(m2)
            finally:
                await m2.stop()
            not_followed(b, stranger)
        finally:
            b.stop()
            stranger.close()
    run(body())


def test_forged_ping_connected_false_then_a_strangers_reply(tmp_path):
    async def body():
        stranger = await StrangerMaster().start()
        async with StandinMaster(ping_interval=0.3) as m:
            b = Board(tmp_path / "b", m.port).start()
            try:
                sid = await registered(m, b)
                mark = b.mark()
                observer = m.agent().observer.upid  # the real observer's UPID, sent from another host
                # One connection, back to back: the reply is handled before the agent could re-register.
                assert await forge(b, (observer, "PingSlaveMessage", {"connected": False}),
                                   (stranger.upid, "SlaveReregisteredMessage", {"slave_id": sid,
                                                                                 "connection": _conn()})) == 2
                await b.await_line(r"WARN agent: dropped mesos\.internal\.PingSlaveMessage from "
                                   r"slave-observer\(\d+\)@\S+: ping from a stranger", since=mark)
                await dropped(b, "SlaveReregisteredMessage", mark)
                mk = m.mark()
                await m.wait_for("PongSlaveMessage", since=mk, timeout=5, kind="recv")
                assert not b.find("disconnected", since=mark)
                assert m.agent().connected and m.agent().id == sid
                no_problems(m)
                not_followed(b, stranger)
            finally:
                b.stop()
                stranger.close()
    run(body())


def test_without_the_ip_check_a_forged_ping_only_makes_the_agent_reregister(tmp_path):
    """check_master_ip false (NAT): a forged connected=false ping from anywhere is believed, as the real
    agent believes it, but the re-registration still goes to, and is accepted only from, the master."""
    async def body():
        stranger = await StrangerMaster().start()
        async with StandinMaster(ping_interval=0.3) as m:
            b = Board(tmp_path / "b", m.port, check_master_ip=False).start()
            try:
                sid = await registered(m, b)
                mark = b.mark()
                mk = m.mark()
                observer = m.agent().observer.upid
                assert await forge(b, (observer, "PingSlaveMessage", {"connected": False}),
                                   (stranger.upid, "SlaveReregisteredMessage", {"slave_id": sid,
                                                                                 "connection": _conn()})) == 2
                await b.await_line("ping connected=false", since=mark)
                await dropped(b, "SlaveReregisteredMessage", mark)
                rr = await m.wait_for("ReregisterSlaveMessage", since=mk, timeout=10, kind="recv")
                assert rr.body["slave"]["id"] == sid
                await b.await_line(r"re-registered with master@127\.0\.0\.1:%d as agent %s" % (m.port, sid),
                                   since=mark)
                assert m.agent().connected
                not_followed(b, stranger)
            finally:
                b.stop()
                stranger.close()
    run(body())


def test_master_messages_from_another_host_are_dropped(tmp_path):
    """The master's exact UPID in Libprocess-From is not enough: a RunTaskMessage from 127.0.0.2 is dropped."""
    async def body():
        async with StandinMaster(ping_interval=0.3) as m:
            b = Board(tmp_path / "b", m.port).start()
            try:
                await registered(m, b)
                fid = m.create_framework(name="x")
                mark = b.mark()
                assert await forge(b, (m.upid, "RunTaskMessage", {
                    "framework": {"user": "root", "name": "x", "id": fid}, "pid": "@0.0.0.0:0",
                    "task": {"name": "t", "task_id": "evil", "slave_id": m.agent().id,
                             "resources": [{"name": "cpus", "type": 0, "scalar": {"value": 0.1}}],
                             "command": {"value": "hello"}}, "launch_executor": True})) == 1
                await dropped(b, "RunTaskMessage", mark)
                mk = m.mark()
                await m.wait_for("PongSlaveMessage", since=mk, timeout=5, kind="recv")
                assert not m.find("StatusUpdateMessage", kind="recv")
                assert m.agent().connected
            finally:
                b.stop()
    run(body())


def _request(name, sender, body=b""):
    return (b"POST /slave(1)/" + name + b" HTTP/1.1\r\nLibprocess-From: " + sender
            + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def test_non_utf8_name_and_sender_are_logged_and_the_connection_keeps_serving(tmp_path):
    async def body():
        async with StandinMaster(ping_interval=0.3) as m:
            b = Board(tmp_path / "b", m.port).start()
            try:
                await registered(m, b)
                mark = b.mark()
                bad = [_request(b"mesos.internal.\xff\xfeMessage", m.upid.encode()),   # name, from the master
                       _request(b"mesos.internal.PingSlaveMessage", b"slave-observer(1)\xff@127.0.0.1:1"),
                       _request(b"mesos.internal.\xc3(", b"\xe2\x82master@127.0.0.1:1")]
                r, w = await asyncio.open_connection("127.0.0.1", b.port)
                try:
                    for req in bad:
                        w.write(req)
                        await w.drain()
                        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
                        assert head.startswith(b"HTTP/1.1 202 Accepted"), head
                    # The same connection still serves: its task survived all three.
                    w.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    await w.drain()
                    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
                    assert head.startswith(b"HTTP/1.1 "), head
                finally:
                    w.close()
                await b.await_line(r"dropped mesos\.internal\.\\xff\\xfeMessage from master@", since=mark)
                await b.await_line(r"dropped mesos\.internal\.PingSlaveMessage from slave-observer\(1\)\\xff@",
                                   since=mark)
                mk = m.mark()
                await m.wait_for("PongSlaveMessage", since=mk, timeout=5, kind="recv")
                out = "\n".join(b.find("", since=mark))
                assert "Traceback" not in out and "UnicodeError" not in out, out
                assert b.alive() and m.agent().connected
            finally:
                b.stop()
    run(body())
