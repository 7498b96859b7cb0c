# The gateway (issue 11, docs/GATEWAY.md) against the stand-in master: a sleeping node is an agent, a launch
# waits for its wake, its updates reach the master once, a node that stops waking becomes unreachable. MIT licence.
# The gateway and the nodes run in the MicroPython unix port; clocks are scaled (the master pings every 0.2 s
# and gives up after 5 missed pings, 1 s, where the real defaults are 15 s and 75 s).
import asyncio
import time

from gwfixture import gateway_config, node_script, start_gateway, start_node, stop_and_show
from standin import StandinMaster

PING = 0.2  # the master's ping interval, s (15 s scaled by 1/75)
MISSED = 5  # pings without a pong before the master marks the agent unreachable


def scaled_master(**kw):
    """The stand-in master with the real master's ping timeouts scaled like PING (kw: more of its options)."""
    kw.setdefault("ping_timeout", PING * MISSED)
    return StandinMaster(ping_interval=PING, max_missed=MISSED, **kw)


async def get_state(port, pid):
    import json
    import urllib.request

    url = "http://127.0.0.1:%d/%s/state" % (port, pid.partition("@")[0])
    return json.loads(await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read()))


def run(coro):
    asyncio.run(coro)


def no_problems(m):
    assert not m.problems(), "\n".join(e.line(m.t0) for e in m.problems())


async def registered(m, gw, name, timeout=30):
    """The agent id the master gave node `name` (its SlaveInfo carries the attribute node=name)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for a in m.agents.values():
            if a.state == "registered" and _node_attr(a.info) == name:
                return a
        await asyncio.sleep(0.05)
    raise AssertionError("node %s never registered\n--- gateway ---\n%s" % (name, gw.output()))


def _node_attr(info):
    for at in info.get("attributes", []):
        if at.get("name") == "node":
            return at.get("text", {}).get("value")
    return None


def updates_received(m, aid):
    """(uuid, state) of every StatusUpdateMessage the master received from agent aid, in order."""
    out = []
    for e in m.find("StatusUpdateMessage", kind="recv"):
        u = e.body["update"]
        if u.get("slave_id") == aid:
            out.append((u["uuid"], u["status"]["state"]))
    return out


async def wait_until(pred, timeout, what, *procs):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("%s: not within %.0f s\n%s" % (what, timeout, "\n".join(
        "--- %s ---\n%s" % (p.name, p.output()) for p in procs)))


async def hello_runs_once(m, gw, aid, what):
    """Launch the example `hello` task on agent aid; -> the updates the master got once its TASK_FINISHED came,
    each asserted to have arrived once."""
    await m.launch(command="hello", agent_id=aid, resources="cpus:0.1;mem:0.01")
    await wait_until(lambda: 2 in [s for _, s in updates_received(m, aid)], 60, what, gw)
    ups = updates_received(m, aid)
    assert len({u for u, _ in ups}) == len(ups), ups  # each update once
    assert [s for _, s in ups][-1] == 2, ups
    return ups


def stop_with_logs(gw, *nodes, last=3000):
    """Stop the firmware nodes ((proc, log) pairs from test_node.start_node) and the gateway, then print their
    output: pytest shows it when the test fails."""
    from test_node import stop

    for p, log in nodes:
        stop(p, log)
    gw.stop()
    print("--- %s ---\n%s" % (gw.name, gw.output(100)))
    for p, log in nodes:
        print("--- %s ---\n%s" % (log.name, open(log.name).read()[-last:]))


def test_a_task_launched_while_the_node_sleeps_starts_at_its_next_wake_and_its_updates_reach_the_master_once(
        tmp_path):
    W, A = 2500, 150  # the node sleeps 2.5 s (longer than the master's 1 s timeout), listens 150 ms

    async def body():
        async with scaled_master() as m:
            cfg, path = gateway_config(tmp_path, m.port, grace_ms=1000, status_update_retry_min_ms=5000)
            gw = start_gateway(path)
            node = start_node(node_script(tmp_path), cfg["link_port"], "n1", W, A)
            try:
                a = await registered(m, gw, "n1")
                assert a.pid.startswith("slave(") and a.pid.endswith("@127.0.0.1:%d" % cfg["port"])
                await wait_until(lambda: node.find("^AGENT " + a.id), 10, "AGENT told to the node", gw, node)
                # Launch right after the node went to sleep: it must wait for the next wake.
                mk = node.mark()
                await wait_until(lambda: node.find("^SLEEP", mk), 10, "the node sleeps", gw, node)
                slept = time.time()
                tid = await m.launch(command="x", agent_id=a.id, resources="cpus:0.1;mem:16")
                await asyncio.sleep(1.0)  # still asleep: nothing reached it, the master sees STAGING
                assert not node.find("^RUN ", mk), node.output()
                assert m.tasks[next(k for k in m.tasks if k[1] == tid)].state == 6  # TASK_STAGING
                doc = await get_state(cfg["port"], a.pid)  # the virtual agent's /state, for the web UI
                assert doc["id"] == a.id and doc["pid"] == a.pid and doc["resources"]["cpus"] == 1.0, doc
                assert doc["node"]["name"] == "n1" and not doc["node"]["awake"] and doc["node"]["held"] >= 1, doc
                assert [(t["id"], t["state"]) for f in doc["frameworks"] for t in f["tasks"]] == [(tid, "TASK_STAGING")]
                await wait_until(lambda: len(node.find("^ACK ")) >= 3, 30, "3 acks at the node", gw, node)
                run_at = node.find("^RUN ")[0][0]
                assert run_at - slept >= W / 1000 - 0.5, (run_at - slept, node.output())
                # Pings were answered throughout: the agent is still registered, with its task finished.
                ups = updates_received(m, a.id)
                assert [s for _, s in ups] == [0, 1, 2], ups  # STARTING, RUNNING, FINISHED, each once
                assert len({u for u, _ in ups}) == 3
                sent = [ln.split()[1] for _, ln in node.find("^UPDATE ")]
                assert sorted(bytes.fromhex(u) for u in sent) == sorted(u for u, _ in ups)
                assert m.agents[a.id].state == "registered" and m.agents[a.id].connected
                assert len(node.find("^RUN ")) == 1
                no_problems(m)
            finally:
                stop_and_show(node, gw)
    run(body())


def test_a_node_that_stops_waking_becomes_unreachable_within_its_wake_period_plus_grace_plus_the_masters_timeout(
        tmp_path):
    W, A, GRACE = 2000, 150, 1000
    timeout = PING * MISSED

    async def body():
        async with scaled_master(ping_timeout=timeout) as m:
            cfg, path = gateway_config(tmp_path, m.port, grace_ms=GRACE)
            gw = start_gateway(path)
            node = start_node(node_script(tmp_path), cfg["link_port"], "n1", W, A, stop_after_ms=4000)
            try:
                a = await registered(m, gw, "n1")
                await wait_until(lambda: node.find("^STOPPED"), 20, "the node stops waking", gw, node)
                stopped = node.find("^STOPPED")[0][0]
                # Two whole wake periods asleep (W = 2 s, the master's timeout 1 s): still registered.
                assert m.agents[a.id].state == "registered", m.agents[a.id].state
                ev = await m.wait_for(lambda e: e.agent == a.id and "unreachable" in (e.reason or ""), timeout=20)
                gone = ev.time - stopped
                # Never before the announced wake + grace (the gateway vouches that long; then the master's own
                # timeout runs, 5 pings, of which at least 4 fall after it), at most W + grace + timeout + one
                # ping interval + 1 s of slack for a loaded machine. (The node's STOPPED line comes just after
                # its SLEEP was acknowledged, which is when the gateway's due clock started.)
                assert W / 1000 + GRACE / 1000 + PING <= gone, gone
                assert gone <= W / 1000 + GRACE / 1000 + timeout + PING + 1.0, gone
                # The node comes back (rebooted): the virtual agent re-registers under its id, pings answered again.
                node.stop()
                mk = m.mark()
                node = start_node(node_script(tmp_path), cfg["link_port"], "n1", W, A)
                rr = await m.wait_for(lambda e: e.name == "ReregisterSlaveMessage" and e.kind == "recv", since=mk,
                                      timeout=20)
                assert rr.body["slave"]["id"] == a.id
                await m.wait_for(lambda e: e.name == "PongSlaveMessage" and e.src == a.pid, since=mk, timeout=10)
                assert m.agents[a.id].state == "registered" and m.agents[a.id].connected
                no_problems(m)
            finally:
                stop_and_show(node, gw)
    run(body())


def test_after_a_gateway_restart_every_node_reregisters_under_its_old_id_with_its_held_work_intact(tmp_path):
    W, A = 2500, 150

    async def body():
        async with scaled_master() as m:
            cfg, path = gateway_config(tmp_path, m.port, grace_ms=1000, status_update_retry_min_ms=5000)
            gw = start_gateway(path)
            script = node_script(tmp_path)
            nodes = [start_node(script, cfg["link_port"], "n%d" % i, W, A) for i in (1, 2)]
            gw2 = None
            try:
                agents = [await registered(m, gw, "n%d" % i) for i in (1, 2)]
                fid = m.create_framework(name="held", checkpoint=True)  # its tasks outlive a broken link
                # n1 asleep: its launch is held on the gateway, which dies before n1 wakes.
                mk = nodes[0].mark()
                await wait_until(lambda: nodes[0].find("^SLEEP", mk), 10, "n1 sleeps", gw, nodes[0])
                tid = await m.launch(command="x", agent_id=agents[0].id, framework_id=fid, resources="cpus:0.1")
                await wait_until(lambda: gw.find("RunTaskMessage for %s held" % tid), 5, "held", gw)
                gw.stop()  # SIGKILL: nothing is written at exit
                assert not nodes[0].find("^RUN ")
                mk = m.mark()
                gw2 = start_gateway(path)
                rr = {}

                def rereg(e):
                    if e.name == "ReregisterSlaveMessage" and e.kind == "recv":
                        rr[e.body["slave"]["id"]] = e.body
                    return len(rr) == 2
                await m.wait_for(rereg, since=mk, timeout=20)
                assert set(rr) == {a.id for a in agents}, rr.keys()
                assert [t["task_id"] for t in rr[agents[0].id]["tasks"]] == [tid]
                assert rr[agents[0].id]["tasks"][0]["state"] == 6  # STAGING: never started
                assert rr[agents[1].id].get("tasks", []) == []
                # The held launch reaches n1 at its next wake; its updates reach the master once.
                await wait_until(lambda: len(nodes[0].find("^ACK ")) >= 3, 30, "3 acks at n1", gw2, nodes[0])
                assert len(nodes[0].find("^RUN ")) == 1
                ups = updates_received(m, agents[0].id)
                assert [s for _, s in ups] == [0, 1, 2], ups
                for a in agents:
                    assert m.agents[a.id].state == "registered" and m.agents[a.id].connected
                assert len(m.find("SlaveRegisteredMessage", since=mk, kind="send")) == 0  # no new ids
                assert gw2.find("restored node n1") and gw2.find("restored node n2")
                no_problems(m)
            finally:
                stop_and_show(*nodes, gw, gw2)
    run(body())


def test_nodes_asleep_55_of_every_60_seconds_stay_registered_for_30_scaled_minutes(tmp_path):
    # Scale 1/75: the master pings every 0.2 s (15 s) and gives up after 1 s (75 s); each node sleeps 733 ms of
    # every 800 (55 s of 60 s) and listens 67 ms (5 s); 30 minutes are 24 s. Grace 0.5 s.
    W, A, SPAN = 733, 67, 24.0
    k = 3

    async def body():
        async with scaled_master() as m:
            cfg, path = gateway_config(tmp_path, m.port, grace_ms=500)
            gw = start_gateway(path)
            script = node_script(tmp_path)
            nodes = [start_node(script, cfg["link_port"], "n%d" % i, W, A) for i in range(k)]
            try:
                agents = [await registered(m, gw, "n%d" % i) for i in range(k)]
                assert len({a.id for a in agents}) == k and len({a.pid for a in agents}) == k
                mk = m.mark()
                marks = [n.mark() for n in nodes]
                await asyncio.sleep(SPAN)
                for a, n, nm in zip(agents, nodes, marks):
                    pings = [e for e in m.find("PingSlaveMessage", since=mk, kind="send") if e.dst == a.pid]
                    pongs = [e for e in m.find("PongSlaveMessage", since=mk, kind="recv") if e.src == a.pid]
                    sleeps = n.find("^SLEEP", nm)
                    print("%s: %d pings, %d pongs, %d sleeps" % (a.pid, len(pings), len(pongs), len(sleeps)))
                    assert m.agents[a.id].state == "registered" and m.agents[a.id].connected
                    assert len(pings) >= SPAN / PING * 0.8  # the observer kept pinging (a loaded machine lags)
                    assert len(pongs) >= len(pings) - 2, (len(pings), len(pongs))  # the last may be in flight
                    assert len(sleeps) >= SPAN / (W + A) * 1000 * 0.6, n.output()  # it really slept
                assert not m.find(lambda e: "unreachable" in (e.reason or "") or "disconnected" in (e.reason or ""),
                                  since=mk)
                assert not m.find("ReregisterSlaveMessage", since=mk, kind="recv")
                no_problems(m)
            finally:
                stop_and_show(*nodes, gw)
    run(body())


def test_with_20_percent_loss_duplication_and_reordering_no_update_is_lost_or_duplicated(tmp_path):
    import linksim

    W, A, TASKS = 1000, 150, 4

    async def body():
        async with scaled_master() as m:
            cfg, path = gateway_config(tmp_path, m.port, grace_ms=2000, status_update_retry_min_ms=5000)
            imp = linksim.Impair(loss=0.2, dup=0.1, reorder=0.2, reorder_ms=30, delay_ms=2, jitter_ms=3)
            relay = linksim.Relay(("127.0.0.1", 0), ("127.0.0.1", cfg["link_port"]), imp, seed=11).start()
            gw = start_gateway(path)
            script = node_script(tmp_path)
            nodes = [start_node(script, relay.port, "n%d" % i, W, A) for i in (1, 2)]
            try:
                agents = [await registered(m, gw, "n%d" % i) for i in (1, 2)]
                fid = m.create_framework(name="lossy", checkpoint=True)
                tids = {}
                for a in agents:
                    tids[a.id] = [await m.launch(command="x", agent_id=a.id, framework_id=fid,
                                                 resources="cpus:0.1;mem:8") for _ in range(TASKS)]

                def done():
                    return all(len(updates_received(m, a.id)) >= 3 * TASKS and
                               len(n.find("^ACK ")) >= 3 * TASKS for a, n in zip(agents, nodes))
                await wait_until(done, 120, "every update through", gw, *nodes)
                await asyncio.sleep(1.0)  # a late duplicate would show now
                for a, n in zip(agents, nodes):
                    sent = {bytes.fromhex(ln.split()[1]) for _, ln in n.find("^UPDATE ")}
                    ups = updates_received(m, a.id)
                    got = [u for u, _ in ups]
                    assert len(got) == len(set(got)) == len(sent) == 3 * TASKS, (len(got), len(set(got)), len(sent))
                    assert set(got) == sent  # 0 lost, 0 duplicated
                    by_task = {}
                    for e in m.find("StatusUpdateMessage", kind="recv"):
                        u = e.body["update"]
                        if u.get("slave_id") == a.id:
                            by_task.setdefault(u["status"]["task_id"], []).append(u["status"]["state"])
                    assert sorted(by_task) == sorted(tids[a.id])
                    assert all(s == [0, 1, 2] for s in by_task.values()), by_task  # in order per task
                    assert m.agents[a.id].state == "registered"
                st = relay.stats
                assert st["up"]["dropped"] > 0 and st["down"]["dropped"] > 0 and st["up"]["duplicated"] > 0, st
                no_problems(m)
            finally:
                relay.stop()
                print("--- relay ---\n%s" % relay.stats)
                stop_and_show(*nodes, gw)
    run(body())


def test_a_kill_for_a_launch_still_held_is_answered_by_the_gateway_and_the_node_never_sees_either(tmp_path):
    W, A = 2500, 150

    async def body():
        async with scaled_master() as m:
            cfg, path = gateway_config(tmp_path, m.port, grace_ms=1000, status_update_retry_min_ms=5000)
            gw = start_gateway(path)
            node = start_node(node_script(tmp_path), cfg["link_port"], "n1", W, A)
            try:
                a = await registered(m, gw, "n1")
                mk = node.mark()
                await wait_until(lambda: node.find("^SLEEP", mk), 10, "the node sleeps", gw, node)
                tid = await m.launch(command="x", agent_id=a.id, resources="cpus:0.1")
                await wait_until(lambda: gw.find("RunTaskMessage for %s held" % tid), 5, "held", gw)
                await m.kill(tid)
                ev = await m.wait_for(lambda e: e.name == "StatusUpdateMessage" and e.kind == "recv", timeout=10)
                st = ev.body["update"]["status"]
                assert st["task_id"] == tid and st["state"] == 4 and st["source"] == 1  # KILLED, SOURCE_SLAVE
                mk = node.mark()
                await wait_until(lambda: len(node.find("^SLEEP", mk)) >= 2, 20, "two more wakes", gw, node)
                assert not node.find("^(RUN|MSG|ACK)"), node.output()  # neither the launch, the kill nor the ack
                assert len(updates_received(m, a.id)) == 1
                no_problems(m)
            finally:
                stop_and_show(node, gw)
    run(body())


def test_when_the_masters_link_breaks_every_node_behind_it_reregisters(tmp_path):
    W, A = 2000, 150

    async def body():
        async with scaled_master() as m:
            cfg, path = gateway_config(tmp_path, m.port, grace_ms=1000)
            gw = start_gateway(path)
            script = node_script(tmp_path)
            nodes = [start_node(script, cfg["link_port"], "n%d" % i, W, A) for i in (1, 2)]
            try:
                agents = [await registered(m, gw, "n%d" % i) for i in (1, 2)]
                # A pong from each after its registration: no SlaveRegisteredMessage is still in flight on the
                # link when it is cut (a lost one makes the master register the retry as a new agent).
                mk = m.mark()
                pids = {a.pid for a in agents}
                ponged = set()

                def both_ponged(e):
                    if e.name == "PongSlaveMessage" and e.kind == "recv" and e.src in pids:
                        ponged.add(e.src)
                    return ponged == pids
                await m.wait_for(both_ponged, since=mk, timeout=10)
                mk = m.mark()
                assert await m.cut_link(agents[0].id)  # one link to the gateway's address carries both
                ids = set()

                def rereg(e):
                    if e.name == "SlaveReregisteredMessage" and e.kind == "send":
                        ids.add(e.body["slave_id"])
                    return len(ids) == 2
                await m.wait_for(rereg, since=mk, timeout=10)
                assert ids == {a.id for a in agents}
                for a in agents:
                    assert m.agents[a.id].state == "registered" and m.agents[a.id].connected
                no_problems(m)
            finally:
                stop_and_show(*nodes, gw)
    run(body())


def test_a_shutdown_agent_comes_back_as_a_new_agent_and_the_node_is_told_its_new_id(tmp_path):
    W, A = 1500, 150

    async def body():
        async with scaled_master() as m:
            cfg, path = gateway_config(tmp_path, m.port, grace_ms=1000)
            gw = start_gateway(path)
            node = start_node(node_script(tmp_path), cfg["link_port"], "n1", W, A)
            try:
                a = await registered(m, gw, "n1")
                await wait_until(lambda: node.find("^AGENT " + a.id), 10, "AGENT told to the node", gw, node)
                mk = m.mark()
                await m.shutdown_agent(a.id)
                ev = await m.wait_for(lambda e: e.name == "SlaveRegisteredMessage" and e.kind == "send", since=mk,
                                      timeout=10)
                new = ev.body["slave_id"]
                assert new != a.id and ev.dst == a.pid  # the same slave(N), a new agent id
                await wait_until(lambda: node.find("^AGENT " + new), 10, "the new id told to the node", gw, node)
                assert m.agents[new].state == "registered"
                no_problems(m)
            finally:
                stop_and_show(node, gw)
    run(body())


def test_updates_unacknowledged_at_a_gateway_restart_are_reported_and_relayed_after_it(tmp_path):
    W, A = 1500, 150

    async def body():
        async with scaled_master(
                                 default_ack="manual") as m:  # nothing acknowledged until the test says so
            cfg, path = gateway_config(tmp_path, m.port, grace_ms=1000, status_update_retry_min_ms=5000)
            gw = start_gateway(path)
            node = start_node(node_script(tmp_path), cfg["link_port"], "n1", W, A)
            gw2 = None
            try:
                a = await registered(m, gw, "n1")
                fid = m.create_framework(name="manual", checkpoint=True)
                tid = await m.launch(command="x", agent_id=a.id, framework_id=fid, resources="cpus:0.1")
                await wait_until(lambda: len(node.find("^UPDATE ")) == 3, 20, "3 updates at the node", gw, node)
                sent = [bytes.fromhex(ln.split()[1]) for _, ln in node.find("^UPDATE ")]

                async def stored():  # all three on the gateway (journalled), the first at the master
                    return (await get_state(cfg["port"], a.pid))["node"]["unacknowledged_updates"] == 3
                deadline = time.time() + 20
                while not await stored():
                    assert time.time() < deadline, gw.output()
                    await asyncio.sleep(0.1)
                await m.wait_for(lambda e: e.name == "StatusUpdateMessage" and e.kind == "recv", timeout=10)
                gw.stop()  # SIGKILL
                mk = m.mark()
                gw2 = start_gateway(path)
                rr = await m.wait_for(lambda e: e.name == "ReregisterSlaveMessage" and e.kind == "recv", since=mk,
                                      timeout=20)
                (t,) = rr.body["tasks"]
                assert t["task_id"] == tid and t["state"] == 2  # its latest state, FINISHED
                assert t["status_update_state"] == 0 and t["status_update_uuid"] == sent[0]  # the oldest unacked
                # Acknowledged one by one, each only once it reached the master: the rest follow in order.
                for u in sent:
                    await m.wait_for(lambda e: e.name == "StatusUpdateMessage" and e.kind == "recv" and
                                     e.body["update"]["uuid"] == u, timeout=20)
                    await m.ack(tid, fid, uuid=u)
                await wait_until(lambda: len(node.find("^ACK ")) >= 3, 30, "3 acks at the node", gw2, node)
                ups = updates_received(m, a.id)
                firsts = []
                for u, s in ups:
                    if u not in [x for x, _ in firsts]:
                        firsts.append((u, s))
                assert [u for u, _ in firsts] == sent and [s for _, s in firsts] == [0, 1, 2], ups
                # Only the update in flight at the restart may reach the master twice (same uuid: a retry).
                assert len(ups) <= 4, ups
                assert m.agents[a.id].state == "registered"
                no_problems(m)
            finally:
                stop_and_show(node, gw, gw2)
    run(body())


def test_a_launch_larger_than_the_node_takes_fails_at_the_gateway_and_the_next_one_runs(tmp_path):
    # The node announces max_message 1024 in its HELLO (LINK.md §3.1): a RunTaskMessage larger than that would be
    # dropped whole by its Link (§4.6) and the task would stay STAGING for ever; the gateway fails it at once
    # (TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED, once) and holds nothing; a launch that fits runs as before.
    from test_node import node_config, start_node as start_real_node

    async def body():
        async with scaled_master() as m:
            cfg, path = gateway_config(tmp_path, m.port, status_update_retry_min_ms=2000)
            gw = start_gateway(path)
            node, log = start_real_node(tmp_path, node_config(tmp_path, cfg["link_port"], name="small-1",
                                                              max_message=1024))
            try:
                a = await registered(m, gw, "small-1")
                big = await m.launch(command="hello", agent_id=a.id, resources="cpus:0.1;mem:0.01",
                                     environment={"PAD": "x" * 1200})
                await wait_until(lambda: 3 in [s for _, s in updates_received(m, a.id)], 30,
                                 "TASK_FAILED from the gateway for the launch the node can't take", gw)
                failed = [e.body["update"]["status"] for e in m.find("StatusUpdateMessage", kind="recv")
                          if e.body["update"]["status"]["task_id"] == big]
                assert [(s["state"], s.get("reason"), s.get("source")) for s in failed] == [(3, 21, 1)], failed
                assert "max_message" in failed[0]["message"], failed
                ok = await m.launch(command="hello", agent_id=a.id, resources="cpus:0.1;mem:0.01")
                await wait_until(lambda: any(e.body["update"]["status"]["task_id"] == ok and
                                             e.body["update"]["status"]["state"] == 2
                                             for e in m.find("StatusUpdateMessage", kind="recv")), 60,
                                 "TASK_FINISHED for the launch that fits", gw)
                ups = updates_received(m, a.id)
                assert len({u for u, _ in ups}) == len(ups), ups  # each update once
                assert not gw.find("RunTaskMessage for %s held" % big), gw.output(40)
                no_problems(m)
            finally:
                stop_with_logs(gw, (node, log))

    asyncio.run(body())
