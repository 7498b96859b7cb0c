# Flash writes of the status-update checkpoint: per status update, per acknowledgement, per day.
# MIT licence. run() -> markdown section (tools/bench/run.py); `python tools/bench/bench_flash.py` prints it.
#
# The real StatusUpdates and Store run in the unix port with the filesystem wrapped: store.open and store.os
# are replaced by shims counting opens for writing, write calls, bytes written, renames and removes. Each
# scenario runs twice: with the code before the journal (BEFORE, the whole-file checkpoint, read from git)
# and with the working tree.
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for _p in (os.path.join(ROOT, "tests"), os.path.join(ROOT, "lib")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import mpy  # noqa: E402

BEFORE = "66928c89ee62b5fa1a1e3a3abd88ea6329f5a419"  # the last commit with the whole-file checkpoint
CYCLES = 300      # measured update+ack cycles per task (after a warm-up), so compactions are amortised in
PERIOD_S = 5      # the task reports every 5 s
PER_DAY = 86400 // PERIOD_S

# Runs in the unix port: argv = fs, tasks, cycles. One ctx.update()-like TASK_RUNNING update per task per
# cycle, sent, then acknowledged; the counters are read after the update is on its way (its flush done) and
# after the ack's flush.
# Counting shims around store's open() and os (write opens, write calls, bytes, renames/removes; ORDER
# records writes in sequence). MicroPython code, shared with tests/test_updates_journal.py.
COUNTING_FS = r'''
C = {"open": 0, "write": 0, "bytes": 0, "meta": 0}
ORDER = []
_open = open

class Counted(io.IOBase):
    def __init__(s, f): s.f = f
    def write(s, b):
        C["write"] += 1
        ORDER.append("write")
        n = s.f.write(b)
        C["bytes"] += n
        return n
    def close(s): s.f.close()
    def __enter__(s): return s
    def __exit__(s, *a): s.f.close()

def counting_open(path, mode="r"):
    if "w" in mode or "a" in mode:
        C["open"] += 1
        return Counted(_open(path, mode))
    return _open(path, mode)

class OS:
    def rename(s, a, b): C["meta"] += 1; os.rename(a, b)
    def remove(s, p): C["meta"] += 1; os.remove(p)
    def stat(s, p): return os.stat(p)
    def mkdir(s, p): os.mkdir(p)

storemod.open = counting_open
storemod.os = OS()
'''

SCRIPT = r'''
import sys, io, os
import asyncio
from micromesos import codec, schema, store as storemod
from micromesos.store import Store
from micromesos.updates import StatusUpdates

FS, TASKS, CYCLES = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
''' + COUNTING_FS + r'''
class Agent:
    slave_id = "a3c1f0d2-7e55-4d8e-b1c9-0f6a2d4e8b10-S3"
    upid = "slave(1)@127.0.0.1:5051"
    ids_in_updates = True
    def __init__(s): s.out = []
    def connected(s): return True
    def send_to_master(s, kind, body):
        s.out.append(body)
        return True

FID = "5f2c9a1e-0b7d-4c1e-9d3a-2b8f6e7a1c44-0001"
a = Agent()
u = StatusUpdates(a, Store(FS), 10, 600)

async def settle():
    for _ in range(4):
        await asyncio.sleep_ms(0)

def snap():
    return (C["open"], C["write"], C["bytes"], C["meta"])

def add(acc, s0):
    s1 = snap()
    for i in range(4):
        acc[i] += s1[i] - s0[i]

async def ack_all():
    while a.out:
        m = codec.decode(schema.StatusUpdateMessage, a.out.pop(0))["update"]
        u.ack(m["framework_id"], m["status"]["task_id"], m["uuid"])

async def main():
    asyncio.create_task(u.run())
    tids = ["sensor-%d" % i for i in range(TASKS)]
    for tid in tids:  # warm-up: TASK_STARTING acknowledged, the file exists
        u.update(FID, tid, schema.TASK_STARTING, schema.SOURCE_EXECUTOR, executor_id=tid)
        await settle()
        await ack_all()
        await settle()
    up = [0, 0, 0, 0]
    ak = [0, 0, 0, 0]
    for n in range(CYCLES):
        for tid in tids:
            s0 = snap()
            u.update(FID, tid, schema.TASK_RUNNING, schema.SOURCE_EXECUTOR, executor_id=tid,
                     data=b'{"t": %d.%d}' % (20 + n % 5, n % 10))
            await settle()
            if len(a.out) != 1:
                raise SystemExit("update not sent")
            add(up, s0)
            s0 = snap()
            await ack_all()
            await settle()
            add(ak, s0)
    if u.pending_count():
        raise SystemExit("unacknowledged updates left")
    size = 0
    for name in os.listdir(FS):
        size += os.stat(FS + "/" + name)[6]
    print("UPDATE", *up)
    print("ACK", *ak)
    print("FILES", size)

asyncio.run(main())
'''


def _measure(tmp, tag, libdir, tasks, device=None):
    fs = os.path.join(tmp, "fs-%s-%d" % (tag, tasks))
    os.makedirs(fs)
    script = os.path.join(tmp, "flash.py")
    with open(script, "w") as f:
        f.write(SCRIPT)
    r = mpy.run_mpy(script=script, args=[fs, str(tasks), str(CYCLES)], heapsize="1m", timeout=300,
                    extra_path=(libdir,) if libdir else (), device=device).check()
    vals = {}
    for line in r.out.splitlines():
        p = line.split()
        if p and p[0] in ("UPDATE", "ACK", "FILES"):
            vals[p[0]] = [int(x) for x in p[1:]]
    n = CYCLES * tasks
    return {k: [x / n for x in v] for k, v in vals.items() if k != "FILES"}, vals["FILES"][0]


def _before_lib(tmp):
    """lib/ as it was at BEFORE (git archive: reads the repository, changes nothing); None without git."""
    dest = os.path.join(tmp, "before")
    os.makedirs(dest)
    try:
        tar = subprocess.run(["git", "-C", ROOT, "archive", BEFORE, "lib/micromesos"], capture_output=True,
                             check=True, timeout=60).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=tar, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return os.path.join(dest, "lib")


def per_update(device):
    """(per update, per ack) [opens, writes, bytes, renames+removes] for one task on a device model."""
    with tempfile.TemporaryDirectory() as tmp:
        v, _ = _measure(tmp, device, None, 1, device=device)
    return v["UPDATE"], v["ACK"]


def figures():
    """{(code, tasks): (per update [opens, writes, bytes, renames+removes], per ack [...], bytes on flash)}."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        before = _before_lib(tmp)
        for tasks in (1, 8):
            if before:
                out[("before", tasks)] = _measure(tmp, "before", before, tasks)
            out[("journal", tasks)] = _measure(tmp, "after", None, tasks)
    return out


def _ops(v):
    return v[0] + v[1]


def run():
    fig = figures()
    lines = [
        "## Flash: status-update checkpoint writes (tools/bench/bench_flash.py)", "",
        "The real `StatusUpdates` and `Store` in the unix port, the filesystem wrapped by counting shims; "
        "each task sends a TASK_RUNNING update with 11 bytes of data (as `ctx.update()` does), it is "
        "acknowledged, %d times per task, compactions included. *before*: the whole-file checkpoint "
        "(commit %s); *journal*: this tree. Write operations = opens for writing + write calls; "
        "renames and removes are metadata operations (a rewrite's temp file replacing the old one)." % (
            CYCLES, BEFORE[:7]), "",
        "| code | tasks | per update: write ops / bytes / renames+removes | per ack: write ops / bytes / "
        "renames+removes | per day, every task reporting every %d s: write ops / KB / renames+removes |" % PERIOD_S,
        "|---|--:|---|---|---|",
    ]
    for (code, tasks), (v, _) in sorted(fig.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        up, ak = v["UPDATE"], v["ACK"]
        day_ops = (_ops(up) + _ops(ak)) * PER_DAY * tasks
        day_kb = (up[2] + ak[2]) * PER_DAY * tasks / 1024
        day_meta = (up[3] + ak[3]) * PER_DAY * tasks
        lines.append("| %s | %d | %.2f / %.0f B / %.2f | %.2f / %.0f B / %.2f | %.0f / %.0f KB / %.0f |" % (
            code, tasks, _ops(up), up[2], up[3], _ops(ak), ak[2], ak[3], day_ops, day_kb, day_meta))
    lines += ["", "Per update and per ack are averages over every task's cycles. The journal is rewritten (temp file + rename) only when it passes max(4 KB, twice its size "
              "after the last rewrite), so its appends stay the size of one record whatever the number of "
              "tasks, where the whole-file checkpoint rewrote every task's stream (a new file and a rename) each time."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
