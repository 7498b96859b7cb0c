# Registration when the transport can't take the message at once (issue 9.4): a refused send is noticed and
# retried, and a re-registration carrying MAX_TASKS live tasks reaches the master whole. MIT licence.
# A live virtual board against the stand-in master, whose validator checks every byte it receives.
import asyncio
import os
import time

from standin import StandinMaster
from test_agent_lifecycle import SLEEPER, no_problems, registered, run
from vboard_proc import Board, free_port

MAX_TASKS = 32  # lib/micromesos/tasks.py Tasks.MAX_TASKS


def test_a_refused_registration_send_is_noticed_logged_once_and_retried(tmp_path):
    async def body():
        port = free_port()  # nobody listens yet: the board's outbox to the master fills up, then refuses
        b = Board(tmp_path / "b", port, registration_backoff_max=0.2).start()
        try:
            await b.await_line(r"WARN agent: could not queue RegisterSlaveMessage for master@", timeout=30)
            # Retried every 0.1 s doubling to 5 s: a few more refusals, still one line.
            t = time.time()
            while time.time() - t < 2:
                await asyncio.sleep(0.1)
            assert len(b.find("could not queue")) == 1, b.output()[-3000:]
            assert len(b.find("sending RegisterSlaveMessage")) >= 2  # sends before the outbox filled
            mark = b.mark()
            async with StandinMaster(port=port, ping_interval=0.3) as m:
                sid = await registered(m, b, since=mark)
                mk = m.mark()
                await m.wait_for("PongSlaveMessage", since=mk, timeout=5, kind="recv")
                assert m.agent().id == sid
        finally:
            b.stop()
    run(body())


def test_reregisters_with_max_tasks_live_tasks(tmp_path):
    async def body():
        async with StandinMaster(ping_interval=0.5) as m:
            b = Board(tmp_path / "b", m.port)
            with open(os.path.join(b.fs, "tasks", "sleeper.py"), "w") as f:
                f.write(SLEEPER)
            b.start()
            try:
                sid = await registered(m, b)
                fid = m.create_framework(name="many", checkpoint=True)
                tids = []
                for i in range(MAX_TASKS):
                    tids.append(await m.launch(command="sleeper", task_id="s-%02d" % i, resources="cpus:0.01",
                                               framework_id=fid))
                running = set()

                def all_running(e):
                    if e.name == "StatusUpdateMessage" and e.kind == "recv":
                        st = e.body["update"]["status"]
                        if st["state"] == 1:
                            running.add(st["task_id"])
                    return len(running) == MAX_TASKS
                await m.wait_for(all_running, timeout=60)
                mark = b.mark()
                mk = m.mark()
                assert await m.cut_link()
                await b.await_line("disconnected: master's link closed", since=mark)
                rr = await m.wait_for("ReregisterSlaveMessage", since=mk, timeout=30, kind="recv")
                assert rr.body["slave"]["id"] == sid
                assert sorted(t["task_id"] for t in rr.body["tasks"]) == sorted(tids)
                await m.wait_for("SlaveReregisteredMessage", since=mk, timeout=10, kind="send")
                await b.await_line("re-registered with master@", since=mark)
                mk = m.mark()
                await m.wait_for("PongSlaveMessage", since=mk, timeout=5, kind="recv")
                assert m.agent().connected
                out = "\n".join(b.find("", since=0))
                assert "outbox full" not in out and "could not queue" not in out
                assert "MemoryError" not in out and "Traceback" not in out, out[-3000:]
                no_problems(m)
            finally:
                b.stop()
                print("--- board ---\n" + "\n".join(b.find("agent:|Error|Traceback"))[-4000:])  # shown on failure
    run(body())


def test_the_agent_follows_the_connection_the_masters_pings_come_over_as_its_link(tmp_path):
    # The master's link is the connection its messages come over (one per address, PROTOCOL.md §1.5). If pings
    # arrive over another connection than the registration reply did (a master's link re-made), that one is the
    # link now: its close is noticed at once (re-registration), not left to the ping timeout.
    import socket

    from standin import lphttp, pb

    async def body():
        # No pings of the stand-in's own in the test's time (one over its link would make that the link again).
        async with StandinMaster(ping_interval=60) as m:
            b = Board(tmp_path / "b", m.port).start()
            try:
                await registered(m, b)
                pid = m.agent().pid
                ip, port = lphttp.addr_of(pid)
                ping = lphttp.message_request("slave-observer(1)@127.0.0.1:%d" % m.port, pid,
                                              "mesos.internal.PingSlaveMessage",
                                              pb.encode("PingSlaveMessage", {"connected": True}))
                s = socket.create_connection((ip, port), timeout=5)
                mark, mk = b.mark(), m.mark()
                s.sendall(ping)
                assert s.recv(64).startswith(b"HTTP/1.1 202"), "the agent did not take the ping"
                await m.wait_for("PongSlaveMessage", since=mk, timeout=5, kind="recv")
                s.close()  # the last ping came over this one: the agent follows the ping connection
                await b.await_line("disconnected: master's link closed", since=mark, timeout=10)
                await b.await_line("re-registered with master@", since=mark, timeout=20)
                no_problems(m)
            finally:
                b.stop()
    run(body())
