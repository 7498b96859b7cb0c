# Task faults: what a careless or hostile task author can do (tests/tasks/), and launches a master
# would never send (non-finite resources). Each case ends by launching tasks/hello.py, which must finish.
# MIT licence.
import asyncio
import time

from attacks.rig import TERMINAL
from standin.model import parse_resources

HEAP_SLACK = 8192  # bytes: after a task ends the heap must come back to within this of where it was


async def _hello_still_runs(rig, out):
    rig.add_example("hello")
    tid = await rig.launch("hello")
    st = await rig.terminal(tid, timeout=30)
    out.check(st == "FINISHED", "a later hello task finishes (got %s)" % st)


async def _fails_cleanly(rig, out, module, timeout=20, text=None):
    rig.add_task(module, text)
    tid = await rig.launch(module)
    st = await rig.terminal(tid, timeout=timeout)
    out.check(st == "FAILED", "the task ends TASK_FAILED (got %s)" % st)
    out.check(rig.board_alive(), "the agent process is still running")
    if rig.board_alive():
        await _hello_still_runs(rig, out)
    return tid


async def keyboard_interrupt(rig, out):
    await _fails_cleanly(rig, out, "kbint")


async def generator_exit(rig, out):
    await _fails_cleanly(rig, out, "genexit")


async def busy_loop(rig, out, wdt_s=8.0):
    """A task that never yields. Nothing cooperative can stop it: on a board the 8 s hardware watchdog resets
    it. The virtual board has none, so this case is that watchdog: pongs silent for 8 s -> SIGKILL and
    power-on (same flash). Then the agent must be back and the task reported TASK_FAILED (not LOST/GONE)."""
    rig.add_task("spin")
    tid = await rig.launch("spin")
    last = time.time()
    mk = rig.mark()
    while time.time() - last < wdt_s:
        if rig.pongs(mk):
            last = rig.pongs(mk)[-1].time
        st = [s for s in rig.states(tid) if s in TERMINAL]
        if st:
            break
        await asyncio.sleep(0.2)
    st = await rig.terminal(tid, timeout=0.1)
    if st is None:
        out.note("loop frozen %.0f s: watchdog reset" % (time.time() - last))
        line = rig.b.mark()
        rig.b.restart()
        back = None
        try:
            back = await rig.registered(since_line=line, timeout=40)
        except AssertionError:
            pass
        out.check(back == rig.aid, "the agent came back after the watchdog reset with its id")
        st = await rig.terminal(tid, timeout=30)
    out.check(st == "FAILED", "the task ends TASK_FAILED (got %s)" % st)
    if rig.board_alive():
        await _hello_still_runs(rig, out)


async def huge_failure_message(rig, out):
    tid = await _fails_cleanly(rig, out, "shout", timeout=40,
                               text='async def main(ctx):\n    raise RuntimeError("x" * 3900)\n')
    msg = rig.message_of(tid, "FAILED")
    if msg is not None:
        out.note("TASK_FAILED message of %d bytes reached the master" % len(msg))


async def memory_hog(rig, out):
    """A module global fills the heap until MemoryError and holds it; the framework kills the task."""
    await _hello_still_runs(rig, out)  # first-use allocations (a task's first launch) before measuring
    h0 = await rig.heap()
    rig.add_task("memhold")
    tid = await rig.launch("memhold")
    await asyncio.sleep(3)
    await rig.m.kill(tid, framework_id=rig.fid)
    st = await rig.terminal(tid, timeout=20)
    out.check(st == "KILLED", "the hog ends TASK_KILLED after the kill (got %s)" % st)
    t = await rig.health_within(15)
    out.check(t is not None, "/health 200 within 15 s of the kill")
    h1 = await rig.heap()
    out.check(h0 is not None and h1 is not None and h1 - h0 < HEAP_SLACK,
              "heap back within %d B of before (%s -> %s)" % (HEAP_SLACK, h0, h1))
    if rig.board_alive():
        await _hello_still_runs(rig, out)


async def globals_cleared(rig, out):
    """A task that clears its module's globals, launched twice: the second launch must work as the first."""
    rig.add_task("clearglobals")
    got = []
    for _ in range(2):
        tid = await rig.launch("clearglobals")
        got.append(await rig.terminal(tid, timeout=20))
    out.check(got == ["FINISHED", "FINISHED"], "both launches finish (got %s)" % got)
    await _hello_still_runs(rig, out)


async def _launch_batch(rig, names, batch=4):
    states = []
    for i in range(0, len(names), batch):
        tids = [await rig.launch(n) for n in names[i:i + batch]]
        states += [await rig.terminal(t, timeout=20) for t in tids]
    return states


async def unknown_module_spray(rig, out, n=40):
    """n launches of one unknown module, then n of n distinct unknown names: the heap may grow by the same
    bookkeeping both times, not by the distinct names."""
    await _launch_batch(rig, ["nomod_same"] * 8)  # warm-up: first-use allocations
    h0 = await rig.heap()
    same = await _launch_batch(rig, ["nomod_same"] * n)
    h1 = await rig.heap()
    distinct = await _launch_batch(rig, ["nomod_%d" % i for i in range(n)])
    h2 = await rig.heap()
    failed = sum(s == "FAILED" for s in same + distinct)
    out.check(failed == 2 * n, "every launch ends TASK_FAILED (%d of %d)" % (failed, 2 * n))
    if None in (h0, h1, h2):
        out.check(False, "heap readable (%s, %s, %s)" % (h0, h1, h2))
    else:
        per_name = ((h2 - h1) - (h1 - h0)) / n
        out.note("heap %d -> %d (same name x%d) -> %d (distinct names x%d): %+.0f B per distinct name"
                 % (h0, h1, n, h2, n, per_name))
        out.check(per_name < 40, "no per-name leak (%+.0f B per distinct name < 40 B)" % per_name)
    await _hello_still_runs(rig, out)


async def non_finite_resources(rig, out, n=34):
    """n RunTaskMessages asking for cpus=inf (more than MAX_TASKS): none may stay STAGING."""
    rig.add_example("hello")
    if rig.fid is None:
        rig.fid = rig.m.create_framework(name="attack")
    f = rig.m.frameworks[rig.fid]
    pid = rig.m.agents[rig.aid].pid
    mk = rig.mark()
    for i in range(n):
        tid = "inf-%d" % i
        task = {"name": tid, "task_id": tid, "slave_id": rig.aid,
                "resources": parse_resources("cpus:inf;mem:0.001"), "command": {"value": "hello", "shell": False}}
        rig.m.send(pid, "RunTaskMessage", {"framework": f.info, "pid": f.pid, "task": task, "launch_executor": True})
    states = [await rig.terminal("inf-%d" % i, timeout=3 if i else 15, since=mk) for i in range(n)]
    out.note("terminal updates for %d of %d cpus=inf launches: %s"
             % (sum(s is not None for s in states), n, ",".join(sorted({s or "none" for s in states}))))
    status, body = await rig.http("/state", timeout=10)
    staging = body.count(b'"TASK_STAGING"') if status == 200 else -1
    out.check(staging == 0, "no task left STAGING in /state (%s)" % (staging if status == 200 else status))
    await _hello_still_runs(rig, out)


CASES = [("task: KeyboardInterrupt", keyboard_interrupt, 60, "registered"),
         ("task: GeneratorExit", generator_exit, 60, "registered"),
         ("task: MemoryError hog (global), killed", memory_hog, 90, "registered"),
         ("task: busy loop", busy_loop, 60, "registered"),
         ("task: globals cleared, launched twice", globals_cleared, 60, "registered"),
         ("task: 3.9 KB failure message", huge_failure_message, 60, "registered"),
         ("task: unknown-module spray", unknown_module_spray, 150, "registered"),
         ("task: cpus=inf x34", non_finite_resources, 120, "registered")]
