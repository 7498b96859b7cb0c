# The runner's rarely used code (launch, kill, fetch, taskstore) is imported when a message needs it and leaves
# RAM after it (Tasks.DROP_CODE), and fails safe when it can't be loaded: a launch gets TASK_FAILED, a kill still
# stops its task. MIT licence. The real agent core in the unix port (test_tasks.DRIVER), its code from .mpy files
# as a board holds them (mpy.compile_tree).
import os
import shutil

import mpy
import pytest
from test_tasks import FID, by_tag, scenario

# The agent's code from .mpy files: the frozen device model would import its own frozen copy instead.
pytestmark = pytest.mark.skipif(mpy.DEVICE == "frozen", reason="the frozen model's agent code is in flash")

IDLE = "import asyncio\nasync def main(ctx):\n    await asyncio.sleep(60)\n"
SHORT = "import asyncio\nasync def main(ctx):\n    await asyncio.sleep_ms(5)\n"

# Runs after test_tasks.DRIVER: which of the droppable modules are in RAM (sys.modules or the package).
HELPERS = r'''
import sys
from micromesos import tasks as T
CODE = ("launch", "kill", "fetch", "taskstore")

def loaded():
    pkg = sys.modules["micromesos"]
    return [n for n in CODE if "micromesos." + n in sys.modules or n in pkg.__dict__]

def terminal(rec):
    return [[tid, st, s.get("reason"), s.get("message")] for tid, st, s in updates(rec)
            if st not in ("TASK_STARTING", "TASK_RUNNING")]

def squeeze(size):
    """Fill the heap with blocks of `size` bytes, then free every other one: half the heap stays free, in
    holes too small for the bytecode of a big function (the .mpy loader needs a block per function)."""
    gc.collect()
    keep = drop = None
    for n in (size, 32, 16):
        try:
            while True:
                keep = (bytearray(n - 16), keep)
                drop = (bytearray(n - 16), drop)
        except MemoryError:
            pass
    drop = None
    gc.collect()
    return keep
'''


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """lib/ compiled to .mpy, as `make deploy` puts it on a board."""
    return mpy.compile_tree(str(tmp_path_factory.mktemp("mpy")))


def own_tree(tmp_path, tree):
    d = str(tmp_path / "mpy")
    shutil.copytree(tree, d)
    return d


def test_code_leaves_ram_after_each_message_and_comes_back(tmp_path, tree):
    got, out = scenario(tmp_path, HELPERS + r'''
async def main():
    a, rec = make()
    out("drop", a.tasks.drop_code)
    out("boot", loaded())                      # recover() ran: taskstore came and went
    for i in range(4):  # the first import interns the code's names for good (qstrs); then nothing stays
        gc.collect()
        m0 = gc.mem_alloc()
        for n in ("launch", "kill", "taskstore"):
            T.load(n)
        gc.collect()
        out("code", gc.mem_alloc() - m0)
        a.tasks.drop()
        gc.collect()
        out("left", gc.mem_alloc() - m0)
    deliver(a, names.RUN_TASK, run_task(tid="t1", value="idle"))
    deliver(a, names.RUN_TASK, run_task(tid="t2", value="short"))
    await asyncio.sleep_ms(0)  # each recorded task's code is found and started on the next turn (launch._begin)
    out("launch", loaded())
    await settle(a, rec, 200)
    deliver_obj(a, names.KILL_TASK, schema.KillTaskMessage, {"framework_id": FID, "task_id": "t1"})
    out("kill", loaded())
    await settle(a, rec, 200)
    deliver(a, names.RUN_TASK, run_task(tid="t3", value="idle"))
    await settle(a, rec, 100)
    tasks, execs, fids = a.tasks.reregistration()
    out("rereg", [[t["task_id"], t["state"]] for t in tasks])
    out("end", loaded())
    out("u", terminal(rec))
asyncio.run(main())
''', files={"idle.py": IDLE, "short.py": SHORT}, extra_path=(tree,))
    assert by_tag(got, "drop") == [True], out  # .mpy code: dropped by default
    for tag in ("boot", "launch", "kill", "end"):
        assert by_tag(got, tag) == [[]], (tag, out)
    code = by_tag(got, "code")[-1]
    # launch no longer loads resources with it (2.2 KB less): what the first import interns (~2.3 KB) is a third
    assert code > 8000 and by_tag(got, "left")[0] < code // 3, out
    assert [abs(n) < 128 for n in by_tag(got, "left")[1:]] == [True] * 3  # all of it given back, each time
    assert by_tag(got, "rereg") == [[["t3", 1]]]  # t1 killed, t2 finished, both acknowledged
    assert by_tag(got, "u") == [[["t2", "TASK_FINISHED", None, "main() returned"],
                                 ["t1", "TASK_KILLING", None, None],
                                 ["t1", "TASK_KILLED", None, "killed by the framework"]]]


def test_a_kill_in_the_launch_turn_reports_killed_during_launch_and_starts_nothing(tmp_path, tree):
    # A recorded task is found and started on the next turn (launch._begin). A kill handled before that turn
    # ends it as TASK_KILLED / REASON_TASK_KILLED_DURING_LAUNCH, once: no STARTING or RUNNING follows, its code
    # is never imported, and the launch code leaves RAM with the kill's.
    got, out = scenario(tmp_path, HELPERS + r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(tid="k0", value="idle"))
    deliver_obj(a, names.KILL_TASK, schema.KillTaskMessage, {"framework_id": FID, "task_id": "k0"})
    out("same turn", loaded())
    await settle(a, rec, 200)
    deliver(a, names.RUN_TASK, run_task(tid="k1", value="idle"))
    await settle(a, rec, 200)
    out("after", [loaded(), "idle" in sys.modules])
    out("u", [[tid, st, s.get("reason")] for tid, st, s in updates(rec)])
asyncio.run(main())
''', files={"idle.py": IDLE}, extra_path=(tree,))
    assert by_tag(got, "same turn") == [[]], out  # nothing left loaded by the kill
    assert by_tag(got, "after") == [[[], True]], out  # k1 runs its module
    assert by_tag(got, "u") == [[["k0", "TASK_KILLED", 30], ["k1", "TASK_STARTING", None],
                                 ["k1", "TASK_RUNNING", None]]], out


def test_code_stays_while_a_task_code_is_fetched_then_leaves(tmp_path, tree):
    # The launch's coroutine (launch._begin) runs launch's code after the message: launch, fetch and download stay loaded
    # until it ends (one copy of each; none imported again under a running fetch).
    got, out = scenario(tmp_path, HELPERS + r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(tid="f1", value="nowhere", uris=[{"value": "http://127.0.0.1:9/nowhere.py"}]))
    await asyncio.sleep_ms(0)  # its code is looked for on the next turn (launch._begin)
    out("fetching", loaded())
    deliver_obj(a, names.KILL_TASK, schema.KillTaskMessage, {"framework_id": FID, "task_id": "other"})
    out("kill while fetching", loaded())
    for _ in range(100):
        await settle(a, rec, 20)
        if terminal(rec):
            break
    await settle(a, rec, 20)
    out("after", loaded())
    out("u", terminal(rec))
asyncio.run(main())
''', extra_path=(tree,))
    assert by_tag(got, "fetching") == [["launch", "fetch"]], out
    assert by_tag(got, "kill while fetching") == [["launch", "kill", "fetch"]]
    assert by_tag(got, "after") == [[]]
    u = by_tag(got, "u")[0]
    assert [x[:3] for x in u] == [["other", "TASK_DROPPED", 1], ["f1", "TASK_FAILED", 21]], out
    assert "unreachable" in u[1][3]


@pytest.mark.skipif(mpy.DEVICE != "wheel", reason="the device models hold no .py sources")
def test_code_compiled_from_source_stays_loaded(tmp_path):
    # Compiling a module needs several times its own RAM: the first run's parse tree is not paid again.
    got, out = scenario(tmp_path, HELPERS + r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(tid="t1", value="short"))
    await settle(a, rec, 100)
    out("state", [a.tasks.drop_code, loaded(), terminal(rec)])
asyncio.run(main())
''', files={"short.py": SHORT})
    assert by_tag(got, "state") == [[False, ["launch", "kill", "fetch", "taskstore"],
                                     [["t1", "TASK_FINISHED", None, "main() returned"]]]], out


def test_missing_code_fails_the_launch_and_a_kill_still_stops_its_tasks(tmp_path, tree):
    d = own_tree(tmp_path, tree)
    got, out = scenario(tmp_path, HELPERS + r'''
import os
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(tid="k1", value="idle"))
    deliver(a, names.RUN_TASK, run_task(tid="k2", value="idle"))
    deliver(a, names.RUN_TASK, run_task(tid="k3", value="idle", framework="run_task_group", fid="other"))
    await settle(a, rec, 100)
    pkg = sys.modules["micromesos"].__file__.rpartition("/")[0]
    for n in ("launch", "kill"):                # a damaged deploy: the files are gone
        os.remove(pkg + "/" + n + ".mpy")
    deliver(a, names.RUN_TASK, run_task(tid="new"))
    deliver(a, names.RUN_TASK, run_task(tid="k2"))  # a live task's id: no update may join its stream
    await settle(a, rec, 100)
    deliver_obj(a, names.KILL_TASK, schema.KillTaskMessage, {"framework_id": FID, "task_id": "k1"})
    deliver_obj(a, names.SHUTDOWN_FRAMEWORK, schema.ShutdownFrameworkMessage, {"framework_id": "other"})
    await settle(a, rec, 100)
    out("u", terminal(rec))
    out("running", sorted(k[1] for k, c in a.tasks.live.items() if c.phase == 1))
    out("frameworks", sorted(a.frameworks))
    deliver_obj(a, names.SHUTDOWN_EXECUTOR, schema.ShutdownExecutorMessage, {"framework_id": FID,
                "executor_id": "k2"})
    await settle(a, rec, 100)
    out("after", [terminal(rec)[-1], list(a.tasks.live), len(a.tasks.leases.used), loaded()])
asyncio.run(main())
''', files={"idle.py": IDLE}, extra_path=(d,))
    ups = by_tag(got, "u")[0]
    assert ups[0][:3] == ["new", "TASK_FAILED", 21], out  # REASON_CONTAINER_LAUNCH_FAILED
    assert ups[0][3].startswith("the agent could not load its launch code: ImportError")
    assert [u for u in ups if u[0] == "k2"] == []
    assert ups[1:] == [["k1", "TASK_KILLED", None, "killed at once: the agent could not load its kill code"]]
    assert by_tag(got, "running") == [["k2"]]  # the other framework's k3 ended silently, and is forgotten
    assert by_tag(got, "frameworks") == [[FID]]
    after = by_tag(got, "after")[0]
    assert after == [["k2", "TASK_KILLED", None, "killed at once: the agent could not load its kill code"],
                     [], 0, []]


def test_a_heap_too_fragmented_for_the_code_fails_the_launch_and_still_kills(tmp_path, tree):
    got, out = scenario(tmp_path, HELPERS + r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(tid="k1", value="idle"))
    for _ in range(200):  # k1's RUNNING sent and acknowledged, however slow the machine: its kill's update is
        await settle(a, rec, 10)  # then the head of its stream and goes out at once, not behind a retry
        if any(st == "TASK_RUNNING" for tid, st, s in updates(rec)):
            break
    await settle(a, rec, 50)
    msgs = [run_task(tid="big"), codec.encode(schema.KillTaskMessage, {"framework_id": FID, "task_id": "k1"})]
    ballast = squeeze(128)
    out("free", gc.mem_free())
    deliver(a, names.RUN_TASK, msgs[0])
    deliver(a, names.KILL_TASK, msgs[1])
    ballast = None
    gc.collect()
    await settle(a, rec, 500)  # more than an update's retry after a refusal (updates._REFUSED_MS)
    deliver(a, names.RUN_TASK, run_task(tid="later", value="idle"))  # the heap is back: launches work again
    await settle(a, rec, 100)
    out("u", terminal(rec))
    out("running", sorted(k[1] for k, c in a.tasks.live.items() if c.phase == 1))
    out("code", loaded())
asyncio.run(main())
''', files={"idle.py": IDLE}, extra_path=(tree,), heapsize="256k")
    assert by_tag(got, "free")[0] > 24 * 1024, out  # more than launch + fetch take, none of it in one piece
    assert sorted(by_tag(got, "u")[0]) == [
        ["big", "TASK_FAILED", 8, "the agent is out of memory for its launch code"],  # CONTAINER_LIMITATION_MEMORY
        ["k1", "TASK_KILLED", None, "killed at once: the agent could not load its kill code"]], out
    assert "out of memory handling" not in out
    assert by_tag(got, "running") == [["later"]]
    assert by_tag(got, "code") == [[]]
