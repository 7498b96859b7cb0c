# The agent's rarely-run half (registrar.py): imported for a call and dropped after, failing safe when the heap
# can't take its code; ReregisterSlaveMessage built in small pieces that are the whole encoding byte for byte;
# status updates the transport refuses offered again soon. MIT licence. The unix port, the real agent modules.
import json

from test_tasks import by_tag, scenario

MAX_TASKS = 32  # lib/micromesos/tasks.py Tasks.MAX_TASKS
IDLE = "import asyncio\nasync def main(ctx):\n    await asyncio.sleep(60)\n"
GROUP = {"sampler.py": IDLE, "uploader.py": IDLE}
# Scenario code: a message delivered while module `mod` can't be imported (the heap can't take its code).
NO_CODE = r'''
import builtins
def deliver_without(a, mod, kind, body):
    real = builtins.__import__
    def short_heap(name, *args):
        if name == mod:
            raise MemoryError("memory allocation failed")
        return real(name, *args)
    builtins.__import__ = short_heap
    try:
        deliver(a, kind, body)
    finally:
        builtins.__import__ = real
'''


def test_reregistration_pieces_are_the_whole_message_and_none_is_large(tmp_path):
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK_GROUP, gold("run_task_group"))  # an executor with 2 tasks
    for i in range(%d - 2):
        deliver(a, names.RUN_TASK, run_task(tid="s-%%02d" %% i, value="idle"))
    await settle(a, rec, 100, ack=False)   # STARTING unacknowledged: status_update_state/uuid set
    a.checkpointed = [codec.decode(schema.CheckpointResourcesMessage, gold("checkpoint_resources"))["resources"][0]]
    from micromesos import registrar
    pieces = registrar.reregistration(a)
    t, e, f = a.tasks.reregistration()
    whole = codec.encode(schema.ReregisterSlaveMessage, {
        "slave": b"".join(registrar.slave_info(a, True)), "version": "1.12.0", "checkpointed_resources": a.checkpointed,
        "tasks": t, "executor_infos": e, "frameworks": [a.frameworks[x] for x in sorted(f)],
        "agent_capabilities": [{"type": schema.MULTI_ROLE}, {"type": schema.HIERARCHICAL_ROLE},
                               {"type": schema.RESERVATION_REFINEMENT}, {"type": 7}]})  # 7: AGENT_DRAINING
    joined = b"".join(pieces)
    out("same", joined == whole)
    out("sizes", [len(whole), max(len(p) for p in pieces)])
    m = codec.decode(schema.ReregisterSlaveMessage, joined, raw=False)
    out("counts", [len(t), len(m["tasks"]), len(m.get("executor_infos", ())), len(m["frameworks"]),
                   len(m["checkpointed_resources"]), len(m["agent_capabilities"])])
asyncio.run(main())
''' % MAX_TASKS, files=dict(GROUP, **{"idle.py": IDLE}))
    assert by_tag(got, "same") == [True], out
    whole, largest = by_tag(got, "sizes")[0]
    assert whole > 4096 and largest < 400, out  # ~5 KB in pieces no longer than one Task
    live, tasks, execs, fws, cres, caps = by_tag(got, "counts")[0]
    assert tasks == live >= MAX_TASKS - 1 and [execs, fws, cres, caps] == [1, 1, 1, 4], out


def test_registrar_leaves_ram_after_each_use_and_a_failed_import_is_retried(tmp_path):
    got, out = scenario(tmp_path, NO_CODE + r'''
import micropython, sys
def resident():
    return any("micromesos." + m in sys.modules or hasattr(sys.modules["micromesos"], m)
               for m in ("registrar", "recovery"))

async def main():
    a, rec = make()
    out("after_boot", resident())
    a.slave_id = None
    a.state = agentmod.DISCONNECTED
    # No heap for the registrar's code: no message, no exception, False for the registration loop to retry.
    def send():  # what the registration loop does: a MemoryError is a refusal to retry
        try:
            return a.cold("send_registration")
        except MemoryError:
            return False
    micropython.heap_lock()
    try:
        ok = send()
    finally:
        micropython.heap_unlock()
    out("locked", [ok, len(rec.out), resident()])
    out("retry", [send(), [n for n, b in rec.out], resident()])
    # The master's answer while the code can't be loaded: counted, logged, the agent stays unregistered...
    reg = codec.encode(schema.SlaveRegisteredMessage, {"slave_id": SID})
    deliver_without(a, "micromesos.registrar", names.SLAVE_REGISTERED, reg)
    out("reply_locked", [a.state, a.slave_id, a.counters["invalid"], resident()])
    # ... and the master's next answer (to the registration retried) registers it.
    deliver(a, names.SLAVE_REGISTERED, reg)
    out("registered", [a.state, a.slave_id, [n for n, b in rec.out][-1], resident()])
    deliver(a, names.SLAVE_REREGISTERED, codec.encode(schema.SlaveReregisteredMessage, {"slave_id": SID}))
    deliver(a, names.UPDATE_FRAMEWORK, gold("update_framework"))
    deliver(a, names.CHECKPOINT_RESOURCES, gold("checkpoint_resources"))
    out("steady", [a.state, len(a.checkpointed), a.counters["invalid"], resident()])
    deliver(a, names.SHUTDOWN, gold("shutdown"))
    out("shutdown", [a.state, a.slave_id, resident()])
asyncio.run(main())
''')
    assert by_tag(got, "after_boot") == [False], out
    assert by_tag(got, "locked") == [[False, 0, False]], out
    assert by_tag(got, "retry") == [[True, ["RegisterSlaveMessage"], False]], out
    assert by_tag(got, "reply_locked") == [[1, None, 1, False]], out  # DISCONNECTED, no id, one invalid
    assert by_tag(got, "registered") == [[2, "a3c1f0d2-7e55-4d8e-b1c9-0f6a2d4e8b10-S3", "ReregisterSlaveMessage",
                                          False]], out
    assert by_tag(got, "steady") == [[2, 1, 1, False]], out
    assert by_tag(got, "shutdown") == [[1, None, False]], out


def test_reconciliations_that_find_no_heap_for_their_code_come_again_with_the_next_reregistration(tmp_path):
    # SlaveReregisteredMessage's reconciliations are handled by recovery.py, imported only for them. With no
    # heap for it the agent must not stay registered having reported nothing (the master sends them once per
    # re-registration): it re-registers, and the next answer's reconciliations are reported.
    got, out = scenario(tmp_path, NO_CODE + r'''
async def main():
    a, rec = make()
    a.state = agentmod.DISCONNECTED
    rr = codec.encode(schema.SlaveReregisteredMessage, {"slave_id": SID, "reconciliations": [
        {"framework_id": FID, "statuses": [{"task_id": "ghost", "state": schema.TASK_RUNNING}]}]})
    deliver_without(a, "micromesos.recovery", names.SLAVE_REREGISTERED, rr)
    await settle(a, rec, 50, ack=False)
    out("short", [a.state, [n for n, b in rec.out]])
    rec.out.clear()
    deliver(a, names.SLAVE_REREGISTERED, rr)  # the answer to the re-registration the agent sent again
    await settle(a, rec, 50, ack=False)
    out("again", [a.state, [(n, codec.decode(schema.StatusUpdateMessage, b)["update"]["status"]["task_id"])
                            for n, b in rec.out if n == "StatusUpdateMessage"]])
asyncio.run(main())
''')
    assert by_tag(got, "short") == [[1, []]], out  # DISCONNECTED: nothing reported, nothing lost
    assert by_tag(got, "again") == [[2, [["StatusUpdateMessage", "ghost"]]]], out  # RUNNING, TASK_LOST sent


def test_status_updates_the_outbox_refuses_go_again_soon_not_after_the_backoff(tmp_path):
    # status_update_retry_min 5 s: a refused update treated as sent would wait 5 s, then 10 s, ...
    got, out = scenario(tmp_path, r'''
import time
class Full(Rec):
    room = 3  # messages the outbox takes before it is full; it drains every 50 ms
    def send(s, to, name, body=b""):
        if s.room <= 0:
            return False
        s.room -= 1
        return Rec.send(s, to, name, body)

async def drain(rec):
    while True:
        await asyncio.sleep_ms(50)
        rec.room = 3

async def main():
    a, rec = make()
    full = Full()
    a.lp = full
    asyncio.create_task(drain(full))
    for i in range(12):
        deliver(a, names.RUN_TASK, run_task(tid="q-%02d" % i, value="idle"))
    t0 = time.ticks_ms()
    done = set()
    while time.ticks_diff(time.ticks_ms(), t0) < 4000:
        ack_all(a, full, done)
        running = set(tid for tid, st, s in updates(full) if st == "TASK_RUNNING")
        if len(running) == 12:
            break
        await asyncio.sleep_ms(20)
    out("running", len(running))
    out("sent", a.updates.sent)
asyncio.run(main())
''', files={"idle.py": IDLE})
    assert by_tag(got, "running") == [12], out
    assert by_tag(got, "sent") == [24], out  # each STARTING and RUNNING once: a refusal is not a send
