# The 32-bit device model (`make devmodel`, tools/devmodel.py): the agent booted exactly as firmware/main.py
# does, in both flavours, against the stand-in master: held for 60 s at the heap it is budgeted today
# (mpy.BUDGET_HEAPSIZE), and tried at issue 9's goal (mpy.GOAL_HEAPSIZE) where the budget is still above it.
# MIT licence. The boots run side by side in threads.
import os
import re
import subprocess
import sys
import threading

import pytest

import mpy
from devboot import Boot

FLAVOURS = ("frozen", "loaded")
HOLD_S = 60           # pings answered for this long with both tasks running


def test_device_models_are_32_bit():
    for d in FLAVOURS:
        r = mpy.run_mpy(code="import sys\nprint(sys.maxsize == 2**31 - 1, sys.maxsize)", device=d).check()
        assert r.out.split()[0] == "True", (d, r.out)


def test_frozen_model_holds_agent_board_and_tasks_by_plain_name(tmp_path):
    # Nothing on the path but .frozen (and an empty cwd): what the frozen binary cannot import, a
    # firmware would lack.
    code = ("import asyncio, board, micromesos.agent, hello, thermo, blink\n"
            "print(board.NAME, hello.__file__, hasattr(hello, 'main'))\n"
            "try:\n    import tasks\n    print('tasks package', tasks)\nexcept ImportError:\n    print('no tasks package')\n")
    env = dict(os.environ, MICROPYPATH=".frozen")
    p = subprocess.run([mpy.device_cmd("frozen"), "-c", code], capture_output=True, text=True, env=env, timeout=30,
                       cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.split("\n")[:2] == ["unix hello.py True", "no tasks package"]
    # The loaded model has no agent inside: it must come from the filesystem.
    p = subprocess.run([mpy.device_cmd("loaded"), "-c", "import micromesos"], capture_output=True, text=True,
                       env=env, timeout=30, cwd=str(tmp_path))
    assert p.returncode != 0 and "ImportError" in p.stdout + p.stderr


GOAL_HOLD_S = 10      # a goal still above the budget is only tried: it is expected to fail, early


def _goal_open(d):
    return mpy.heap_kb(mpy.GOAL_HEAPSIZE[d]) < mpy.heap_kb(mpy.BUDGET_HEAPSIZE[d])


def _at_edge(d):
    # A goal within one 4 KB step of the budget passes most boots but not all (fragmentation varies from
    # boot to boot): tried, not held, and not strict, so a boot that passes is no failure either.
    return mpy.heap_kb(mpy.BUDGET_HEAPSIZE[d]) - mpy.heap_kb(mpy.GOAL_HEAPSIZE[d]) <= 4


CASES = [pytest.param(d, "budget", id=d + "-budget") for d in FLAVOURS] + [
    pytest.param(d, "goal", id=d + "-goal", marks=pytest.mark.xfail(
        strict=not _at_edge(d), reason="issue 9: the agent does not fit %s %s (budget %s)" % (
            mpy.GOAL_HEAPSIZE[d], "in every boot yet" if _at_edge(d) else "yet", mpy.BUDGET_HEAPSIZE[d])))
    for d in FLAVOURS if _goal_open(d)]


@pytest.fixture(scope="module")
def heap_boots(request, tmp_path_factory):
    """Every (flavour, budget|goal) this session selected, booted at once (threads)."""
    chosen = [(it.callspec.params["device"], it.callspec.params["limit"]) for it in request.session.items
              if it.originalname == "test_agent_fits_heap" and hasattr(it, "callspec")]
    tmp = str(tmp_path_factory.mktemp("devmodel"))
    for d in sorted({d for d, _ in chosen}):
        mpy.device_cmd(d)  # build first (one at a time), so the holds overlap
    sizes = {"budget": mpy.BUDGET_HEAPSIZE, "goal": mpy.GOAL_HEAPSIZE}
    boots = {(d, k): Boot(d, sizes[k][d], tmp, hold_s=HOLD_S if k == "budget" else GOAL_HOLD_S)
             for d, k in chosen}
    _in_threads(boots.values())
    # A flavour that failed its budget is booted once more with room to spare (no hold), to say what it needs.
    again = {key: Boot(key[0], "%dk" % (mpy.heap_kb(b.heapsize) * 4), tmp, hold_s=0, measure=True)
             for key, b in boots.items() if b.error and key[1] == "budget"}
    _in_threads(again.values())
    return {key: (b, again.get(key)) for key, b in boots.items()}


def _in_threads(boots):
    threads = [threading.Thread(target=b.run) for b in boots]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HOLD_S + 240)


@pytest.mark.parametrize("device,limit", CASES)
def test_agent_fits_heap(heap_boots, device, limit):
    """Registration, 2 idle tasks RUNNING, /state 200 listing both, pings answered, no MemoryError: at the
    heap budgeted today (60 s of pings), and at issue 9's goal (48k frozen / 96k loaded) while it is open."""
    b, roomy = heap_boots[(device, limit)]
    print(b.report())
    if b.error:
        msg = b.report()
        if roomy is not None:
            msg += "\nmeasured with room to spare: " + roomy.report()
        pytest.fail(msg + "\n--- board output (tail) ---\n" + b.output[-2500:], pytrace=False)


def test_sim_runs_the_frozen_model_at_a_boards_heap():
    # `make sim DEVICE=frozen`: the hello task launches from the firmware (frozen), not from the board's files.
    p = subprocess.run([sys.executable, os.path.join(mpy.ROOT, "tools", "sim.py"), "--device", "frozen",
                        "--seconds", "12", "--ping-interval", "1"], cwd=mpy.ROOT, capture_output=True, text=True,
                       timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert "(MicroPython unix port, frozen, -X heapsize=%s)" % mpy.DEVICE_HEAPSIZE in out
    assert re.search(r"x86\), MicroPython 1\.28\.0", out), out[-3000:]
    assert re.search(r"<- StatusUpdateMessage .* task=hello-1 state=TASK_FINISHED", out), out[-3000:]
    assert "MemoryError" not in out and "Traceback" not in out


def test_sim_on_the_loaded_model_at_a_boards_heap_runs_or_says_which_heap_does():
    # `make sim DEVICE=loaded` at a stock board's heap: until the loaded agent fits it (issue 9) the board runs out
    # of memory at boot, or stays up retrying for want of heap ("no heap for the registration code"); the sim then
    # names the heap the suite holds the agent to, not just a MemoryError.
    p = subprocess.run([sys.executable, os.path.join(mpy.ROOT, "tools", "sim.py"), "--device", "loaded",
                        "--seconds", "30", "--task", ""], cwd=mpy.ROOT, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert "(MicroPython unix port, loaded, -X heapsize=%s)" % mpy.DEVICE_HEAPSIZE in out, out[-3000:]
    if "registered=yes" in out:
        assert p.returncode == 0, out[-3000:]
    else:
        assert "sim: the board ran out of memory in -X heapsize=%s; the tests hold the agent to %s on the loaded " \
            "model (more than a stock board's %s: README, issue 9); HEAPSIZE=%s runs it" % (
                mpy.DEVICE_HEAPSIZE, mpy.BUDGET_HEAPSIZE["loaded"], mpy.DEVICE_HEAPSIZE,
                mpy.BUDGET_HEAPSIZE["loaded"]) in out, out[-3000:]
        assert "registered=no" in out and p.returncode == 1, out[-3000:]


def test_split_model_cuts_its_heap_in_two_areas():
    # `split` (tools/devmodel.py) is a stock ESP32's heap after its first growth: 112k is two 56 KB areas, so no
    # block larger than one area fits, as on the board; the loaded model takes it from its one area.
    def grab(kb, device):
        r = mpy.run_mpy(code="b = bytearray(%d)\nprint('took', len(b))" % (kb * 1024), heapsize=mpy.SPLIT_HEAPSIZE,
                        device=device)
        return r.rc == 0 and ("took %d" % (kb * 1024)) in r.out, r.out

    ok, out = grab(60, "loaded")
    assert ok, out
    ok, out = grab(60, mpy.SPLIT)
    assert not ok and "MemoryError" in out, out
    ok, out = grab(50, mpy.SPLIT)
    assert ok, out


def test_sim_on_the_split_model_registers_and_runs_a_task_in_an_esp32s_grown_heap():
    # `make sim DEVICE=split`: the loaded agent in 56 + 56 KB (README's board table: a stock ESP32 registers and
    # runs tasks once its heap has grown; `python3 tests/devboot.py split 112k 20 10 tasks`: 20 of 20 boots).
    p = subprocess.run([sys.executable, os.path.join(mpy.ROOT, "tools", "sim.py"), "--device", mpy.SPLIT,
                        "--seconds", "12", "--ping-interval", "1"], cwd=mpy.ROOT, capture_output=True, text=True,
                       timeout=180)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert "(MicroPython unix port, split, -X heapsize=%s)" % mpy.SPLIT_HEAPSIZE in out, out[-3000:]
    assert re.search(r"<- StatusUpdateMessage .* task=hello-1 state=TASK_FINISHED", out), out[-3000:]
    assert "registered=yes" in out and "MemoryError" not in out and "Traceback" not in out, out[-3000:]


def test_virtual_board_runs_a_device_model(tmp_path):
    # `make board DEVICE=frozen`: mpremote drives the 32-bit binary, the agent and tasks frozen in.
    vb = subprocess.Popen([sys.executable, os.path.join(mpy.ROOT, "tools", "vboard.py"), "--fs", str(tmp_path),
                           "--device", "frozen", "--no-main"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True)
    try:
        pty = vb.stdout.readline().strip()
        assert pty.startswith("/dev/"), pty
        p = subprocess.run([os.path.join(mpy.ROOT, ".venv", "bin", "mpremote"), "connect", pty, "resume", "exec",
                            "import sys, gc, hello; gc.collect(); print(sys.maxsize, gc.mem_free() + gc.mem_alloc(), "
                            "hello.__file__)"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        maxsize, heap, where = p.stdout.split()
        assert int(maxsize) == 2**31 - 1 and where == "hello.py"
        assert abs(int(heap) - mpy.heap_kb(mpy.DEVICE_HEAPSIZE) * 1024) < 4096, heap  # a real board's heap
    finally:
        vb.terminate()
        vb.wait(10)


# The heap the loaded agent's names (qstrs) hold with every agent module imported once (tools/bench/qstr_probe.py):
# 20.6 KB (1209 names) today, 51 names short of the next qstr pool, which is one 8.8 KB block (pools double). The budget
# above has room for that block, so this holds it: a name added to lib/micromesos (a function, a global, an argument,
# a short string) may take it (a config helper of two names did: /state's smallest heap went from 124k to 132k).
QSTR_HEAP_BUDGET = 24 * 1024


def test_the_loaded_agents_names_need_no_further_qstr_pool():
    sys.path.insert(0, os.path.join(mpy.ROOT, "tools", "bench"))
    from bench_devmodel import qstr_headroom

    room, next_pool, names, held = qstr_headroom("loaded")
    assert held <= QSTR_HEAP_BUDGET, (
        "the agent's %d names hold %d B of qstr pools on a loaded board (budget %d B): a new pool was allocated. "
        "Take as many names out of lib/micromesos as were added (or raise the budget, and the loaded figures in "
        "docs/BENCHMARKS.md by a pool)" % (names, held, QSTR_HEAP_BUDGET))
    print("names %d, %d B; room for %d more before a pool of %d B" % (names, held, room, next_pool))


def test_the_anatomy_of_loaded_code_adds_up():
    # tools/bench/modram.py --anatomy (make bench's "what the loaded code in RAM is"): errors.py is the module
    # body and 4 exception classes, MesosError with its __init__: 6 pieces of bytecode; its names go to the qstr
    # pools, and the pieces' heap blocks, the classes and the module's dict make up the rest, so each part is less
    # than the whole.
    sys.path.insert(0, os.path.join(mpy.ROOT, "tools", "bench"))
    import modram

    a = modram.anatomy(["micromesos.errors"], mpy.device_cmd("loaded"))
    assert a["functions"] == 6, a
    assert a["names"] >= 4 and a["names_bytes"] > 0, a
    assert 0 < a["bytecode"] < a["ram"] - a["names_bytes"], a
    both = modram.anatomy(["micromesos.errors", "micromesos.log"], mpy.device_cmd("loaded"))
    assert both["ram"] > a["ram"] and both["functions"] > a["functions"] and both["strings"] > a["strings"], both
