# Draining (operator DRAIN_AGENT; issue 12 item 10): the agent in the unix port against the stand-in master.
# MIT licence. As src/slave/slave.cpp Slave::drain / __run / updateDrainStatus; fixture: tools/standin/drain.py.
import json
import os
import re
import time

import mpy
import pytest

from standin import RECV, SEND, StandinMaster
from standin import drain as sdrain
from standin.model import Agent
from standin.ops import Refused
from test_tasks_agent import STATES, _st, cluster, task_file  # noqa: F401  (cluster: the fixture)

SLAVE_DRAINING = 34  # TaskStatus.Reason REASON_SLAVE_DRAINING
SOURCE_SLAVE, SOURCE_EXECUTOR = 1, 2
# Ignores the cancellation a kill is: only the grace period ends it.
DEAF = ("import asyncio\nasync def main(ctx):\n    while True:\n        try:\n            await asyncio.sleep(60)\n"
        "        except asyncio.CancelledError:\n            pass\n")
IDLE = "import asyncio\nasync def main(ctx):\n    await asyncio.sleep(60)\n"
DONE = "async def main(ctx):\n    return\n"


def _drain(c, **kw):
    return c.sync(sdrain.drain_agent, c.master, **kw)


def _drain_state(c):
    rec = c.sync(sdrain.state, c.master)
    return rec and rec["state"]


def _until(fn, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return fn()


def test_drain_kills_with_the_max_grace_period_refuses_launches_and_stays_registered(cluster):
    c = cluster()
    task_file(c, "deaf", DEAF)
    task_file(c, "idle", IDLE)
    task_file(c, "done", DONE)
    c.start_agent()
    reg = c.received("RegisterSlaveMessage")[0]
    assert [x["type"] for x in reg.body["agent_capabilities"]] == [1, 2, 3, 7]  # ... AGENT_DRAINING
    c.fid = c.framework()  # mesos-execute's capabilities: TASK_KILLING_STATE, PARTITION_AWARE, ...

    # Nothing to drain: the master sees it DRAINED at once, the agent does nothing (Slave::drain).
    m0 = c.mark()
    _drain(c)
    c.wait(lambda e: e.kind == SEND and e.name == "DrainSlaveMessage", since=m0)
    assert _drain_state(c) == "DRAINED"
    c.sync(sdrain.reactivate_agent, c.master)
    assert not (c.fs / "state" / "drain.json").exists()

    # A task whose kill policy (30 s) is longer than the drain's max_grace_period (2 s) and that ignores the
    # cancellation; one without a kill policy that ends at once when cancelled.
    deaf = c.launch("deaf", task_id="deaf-1", kill_policy=30.0)
    idle = c.launch("idle", task_id="idle-1")
    c.wait_state(deaf, "TASK_RUNNING")
    c.wait_state(idle, "TASK_RUNNING")
    m1 = c.mark()
    t0 = time.time()
    _drain(c, max_grace_period=2.0)
    assert _drain_state(c) == "DRAINING"
    with pytest.raises(Refused, match="still in the DRAINING state"):
        c.sync(sdrain.reactivate_agent, c.master)
    c.wait_state(deaf, "TASK_KILLING", since=m1)
    c.wait_state(idle, "TASK_KILLED", since=m1)
    # While draining, a launch (an offer accepted before the drain: the master rescinds the rest) is refused.
    late = c.launch("done", task_id="late-1")
    c.wait(lambda e: e.kind == RECV and e.name == "StatusUpdateMessage" and _st(e)["task_id"] == late, since=m1)
    assert (c.fs / "state" / "drain.json").exists()  # checkpointed, as the real agent's drain config
    killed = c.wait_state(deaf, "TASK_KILLED", since=m1)
    took = killed.time - t0
    assert 2.0 <= took < 12.0, took  # forced after max_grace_period, not its own 30 s

    for tid in (deaf, idle):
        sts = [_st(e) for e in c.updates(tid, m1)]
        assert [s["state"] for s in sts] == [STATES["TASK_KILLING"], STATES["TASK_KILLED"]], sts
        assert {(s["source"], s["reason"]) for s in sts} == {(SOURCE_EXECUTOR, SLAVE_DRAINING)}, sts
    assert _st(c.updates(deaf, m1)[-1])["message"] == "the agent is draining (forced after its grace period)"
    refused = [_st(e) for e in c.updates(late)]
    assert [(s["state"], s["source"], s["reason"], s["message"]) for s in refused] == [
        (STATES["TASK_DROPPED"], SOURCE_SLAVE, SLAVE_DRAINING, "Task was received while agent was already draining")]

    # The master sees every task end and the agent drained; the agent stayed registered all along.
    assert _until(lambda: _drain_state(c) == "DRAINED")
    assert c.sync(lambda: c.master.agent().connected)
    assert [e for e in c.master.events[m1:] if e.kind == RECV and "RegisterSlave" in (e.name or "")] == []
    assert c.problems() == []

    # Drained, the agent takes launches again (Slave::updateDrainStatus) once the operator reactivates it.
    c.sync(sdrain.reactivate_agent, c.master)
    again = c.launch("done", task_id="after-1")
    c.wait_state(again, "TASK_FINISHED")
    assert not (c.fs / "state" / "drain.json").exists()
    log = c.agent_log()
    assert "draining: 2 task(s) killed (grace 2000 ms at most)" in log and "agent finished draining" in log
    assert "not handled" not in log


def test_a_drain_outlives_an_agent_restart(cluster):
    c = cluster()
    task_file(c, "deaf", DEAF)
    task_file(c, "done", DONE)
    c.start_agent()
    c.framework()
    deaf = c.launch("deaf", task_id="deaf-2")
    c.wait_state(deaf, "TASK_RUNNING")
    m1 = c.mark()
    _drain(c, max_grace_period=60.0)
    c.wait_state(deaf, "TASK_KILLING", since=m1)
    saved = json.loads((c.fs / "state" / "drain.json").read_text())
    assert saved["config"] == {"max_grace_period": {"nanoseconds": 60 * 10 ** 9}, "mark_gone": False}
    c.kill_agent()  # SIGKILL within the grace period: like a watchdog reset
    m2 = c.mark()
    c.start_agent()
    # The task did not survive the reboot (PARTITION_AWARE: TASK_GONE, REASON_SLAVE_RESTARTED); the master
    # sent the drain again on re-registration; the agent had it back from flash before that.
    gone = c.wait_state(deaf, "TASK_GONE", since=m2)
    assert _st(gone)["reason"] == 12
    assert c.wait(lambda e: e.kind == SEND and e.name == "DrainSlaveMessage", since=m2)
    assert "draining (recovered): launches are refused until no task is left" in c.agent_log()
    assert _until(lambda: _drain_state(c) == "DRAINED")
    c.sync(sdrain.reactivate_agent, c.master)
    again = c.launch("done", task_id="after-2")
    c.wait_state(again, "TASK_FINISHED")
    assert not (c.fs / "state" / "drain.json").exists()
    assert c.problems() == []


def test_drain_that_marks_the_agent_gone(cluster):
    # mark_gone: once drained the master marks the agent gone (ShutdownMessage); it starts over as a new
    # agent. Its tasks end TASK_KILLED, REASON_SLAVE_DRAINING (not TASK_GONE_BY_OPERATOR, which the real
    # agent sends for PARTITION_AWARE frameworks but PROTOCOL.md §3.9 and updates.py forbid an agent).
    c = cluster()
    task_file(c, "idle", IDLE)
    c.start_agent()
    c.framework()
    first = c.sync(lambda: c.master.agent().id)
    idle = c.launch("idle", task_id="idle-3")
    c.wait_state(idle, "TASK_RUNNING")
    m1 = c.mark()
    _drain(c, mark_gone=True)
    killed = _st(c.wait_state(idle, "TASK_KILLED", since=m1))
    assert (killed["source"], killed["reason"]) == (SOURCE_EXECUTOR, SLAVE_DRAINING)
    _until(lambda: c.sync(lambda: c.master.agents[first].state) == Agent.GONE or _drain_state(c) is None)
    c.wait(lambda e: e.kind == SEND and e.name == "ShutdownMessage", since=m1)
    c.wait(lambda e: e.kind == SEND and e.name == "SlaveRegisteredMessage", since=m1, timeout=20)
    assert c.sync(lambda: c.master.agent().id) != first
    assert not (c.fs / "state" / "drain.json").exists()  # the old identity's drain went with it
    again = c.launch("idle", task_id="idle-4")  # the new agent is not draining
    c.wait_state(again, "TASK_RUNNING")
    assert c.problems() == []


def test_master_refuses_to_drain_an_agent_without_the_capability():
    # Master::Http::drainAgent: BadRequest "Agent ... is not capable of draining".
    m = StandinMaster()
    a = Agent("S0", "slave(1)@127.0.0.1:5051", {"hostname": "127.0.0.1"}, [1, 2, 3], "1.12.0")
    m.agents[a.id] = a
    with pytest.raises(Refused, match="is not capable of draining"):
        sdrain.drain_agent(m, a.id)
    with pytest.raises(Refused, match="Agent is not deactivated"):
        sdrain.reactivate_agent(m, a.id)
    a.capabilities = [1, 2, 3, 7]
    with pytest.raises(Refused, match="Unknown agent"):
        a.state = Agent.REMOVED
        sdrain.drain_agent(m, a.id)


NUMBERS = r"""
from micromesos import names, schema
print(schema.DrainSlaveMessage, schema.REASON_SLAVE_DRAINING, schema.AGENT_DRAINING, names.short(19))
"""


def test_private_numbers_agree_with_the_schema(mpy_run):
    # lib/ reads only schema's own globals and names' public ids; drain, kill, agent and registrar keep
    # these numbers as private consts, which must be the schema's.
    got = mpy_run(NUMBERS).check().out.split()
    assert got == ["77", "34", "7", "DrainSlaveMessage"]

    def const(f, name):
        with open(os.path.join(mpy.LIB, "micromesos", f)) as fh:
            return re.search(r"^%s = const\((\d+)\)" % name, fh.read(), re.M).group(1)
    assert const("drain.py", "_DRAIN_SLAVE_MESSAGE") == got[0]
    assert const("drain.py", "_REASON_SLAVE_DRAINING") == const("kill.py", "_REASON_SLAVE_DRAINING") == got[1]
    assert const("registrar.py", "_AGENT_DRAINING") == got[2]
    assert const("agent.py", "_DRAIN_SLAVE") == "19"


def test_registration_with_agent_draining_is_protocs_encoding(mpy_run, tmp_path):
    # The golden RegisterSlaveMessage (protoc) with AGENT_DRAINING appended: agent_capabilities (4) is its last
    # field, so protoc writes the fifth capability as the last 4 bytes; the project codec must agree.
    with open(os.path.join(mpy.GOLDEN, "vectors.jsonl")) as f:
        gold = next(json.loads(line) for line in f if json.loads(line)["name"] == "register_slave")
    want = bytes.fromhex(gold["hex"]) + b"\x22\x02\x08\x07"
    (tmp_path / "gold.hex").write_text(gold["hex"])
    r = mpy_run(r"""
from micromesos import codec, schema
b = bytes.fromhex(open(%r).read())
m = codec.decode(schema.RegisterSlaveMessage, b, 0, len(b))
m["agent_capabilities"] = m["agent_capabilities"] + [{"type": 7}]
print(bytes(codec.encode(schema.RegisterSlaveMessage, m)).hex())
""" % str(tmp_path / "gold.hex")).check()
    assert r.out.strip() == want.hex()
    # The real 1.12 agent lists AGENT_DRAINING too, after RESERVATION_REFINEMENT (captured registration).
    with open(os.path.join(mpy.GOLDEN, "captured", "master-agent-decoded.txt")) as f:
        text = f.read()
    first = text[:text.index("resource_version_uuid")]
    order = re.findall(r"agent_capabilities \{\n\s*\|\s*type: (\w+)", first)
    assert order.index("AGENT_DRAINING") > order.index("RESERVATION_REFINEMENT")
