# The status-update journal: appends per update and ack, bounded compaction, exact reboot recovery (torn
# tails, garbage), no flash writes in handlers, messages truncated where they enter. MIT licence.
# The real StatusUpdates and Store run in the unix port; the filesystem is wrapped by counting shims.
import json

import pytest
from test_tasks_agent import STATES, Cluster, _st, task_file

from bench.bench_flash import COUNTING_FS

# Before each scenario: counting shims around store's open/os, an agent stub that records what is sent,
# helpers to run the update loop for a few turns and to describe the streams.
PRE = r'''
import sys, io, os
import asyncio
from micromesos import codec, schema, log, store as storemod
from micromesos.store import Store
from micromesos import updates as U
from micromesos.updates import StatusUpdates

FS = sys.argv[1]
''' + COUNTING_FS + r'''
class Agent:
    slave_id = "S1"
    upid = "slave(1)@127.0.0.1:5051"
    ids_in_updates = True
    def __init__(s): s.out = []; s.up = True
    def connected(s): return s.up
    def send_to_master(s, kind, body):
        s.out.append(body)
        return True

def snap():
    return [C["open"], C["write"], C["meta"]]

def boot():
    a = Agent()
    return a, StatusUpdates(a, Store(FS), 10, 600)

async def turns(n=4):
    for _ in range(n):
        await asyncio.sleep_ms(0)

def sent(a):
    out = [codec.decode(schema.StatusUpdateMessage, b)["update"] for b in a.out]
    a.out.clear()
    return out

def ack_sent(a, u, skip=()):
    for m in sent(a):
        if m["status"]["task_id"] not in skip:
            u.ack(m["framework_id"], m["status"]["task_id"], m["uuid"])

def desc(u):
    """The streams as recovery must rebuild them: key -> (latest, terminal, pending updates)."""
    out = []
    for k in sorted(u.streams):
        s = u.streams[k]
        out.append((k, s.latest, s.terminal,
                    [sorted((f, v.hex() if isinstance(v, bytes) else v) for f, v in p.items()) for p in s.pending]))
    return out

def journal():
    try:
        return open(FS + "/updates.json", "rb").read()
    except OSError:
        return b""
'''


def run(mpy_run, tmp_path, body, heapsize="512k"):
    (tmp_path / "st").mkdir(exist_ok=True)
    r = mpy_run(PRE + body, args=[str(tmp_path / "st")], heapsize=heapsize, timeout=120).check()
    return r


def test_each_update_and_ack_is_one_append_and_nothing_is_rewritten(mpy_run, tmp_path):
    # Before the journal every update and every ack rewrote the whole file (a new file and a rename).
    r = run(mpy_run, tmp_path, r'''
async def main():
    a, u = boot()
    asyncio.create_task(u.run())
    per = []
    for i in range(10):
        s0 = snap()
        u.update("F", "t", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR, executor_id="t", data=b"%d" % i)
        await turns()
        s1 = snap()
        ack_sent(a, u)
        await turns()
        s2 = snap()
        per.append([x - y for x, y in zip(s1, s0)] + [x - y for x, y in zip(s2, s1)])
    print(per)
asyncio.run(main())
''')
    per = json.loads(r.lines()[-1])
    # [opens, writes, renames+removes] for the update, then the same for its ack
    assert per == [[1, 1, 0, 1, 1, 0]] * 10


def test_journal_is_compacted_and_stays_bounded(mpy_run, tmp_path):
    r = run(mpy_run, tmp_path, r'''
async def main():
    a, u = boot()
    asyncio.create_task(u.run())
    u.update("F", "other", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR)  # stays pending throughout
    biggest = 0
    for i in range(400):
        u.update("F", "t", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR, data=b"%d" % i)
        await turns()
        for m in sent(a):
            if m["status"]["task_id"] == "t":
                u.ack("F", "t", m["uuid"])
        await turns()
        biggest = max(biggest, len(journal()))
    before = desc(u)
    a2, u2 = boot()
    print(u2.recover(), desc(u2) == before, biggest, C["meta"], len(journal().splitlines()))
asyncio.run(main())
''')
    n, same, biggest, meta, lines = r.lines()[-1].split()
    assert n == "1" and same == "True"
    assert int(biggest) <= 4096 + 400          # bounded: rewritten once past 4 KB (+ one burst)
    assert 0 < int(meta) <= 40                 # 800 records: a handful of rewrites, not one per record
    assert lines == "2"                        # after a reboot: the pending update and t's stream


@pytest.mark.parametrize("compacted", [False, True])
def test_reboot_rebuilds_exactly_the_unacknowledged_updates(mpy_run, tmp_path, compacted):
    r = run(mpy_run, tmp_path, r'''
COMPACTED = %s
async def main():
    a, u = boot()
    asyncio.create_task(u.run())
    if COMPACTED:  # push the journal past its bound first, so the scenario starts after a rewrite
        for i in range(40):
            u.update("F", "warm", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR, data=b"x" * 40)
            await turns()
            ack_sent(a, u)
            await turns()
        u.update("F", "warm", schema.TASK_FINISHED, schema.SOURCE_EXECUTOR)
        await turns()
        ack_sent(a, u)
        await turns()
    E = schema.SOURCE_EXECUTOR
    u.update("F", "acked", schema.TASK_STARTING, E, executor_id="e1")
    u.update("F", "pend", schema.TASK_RUNNING, E, data=b"\x00\xff")
    u.update("F", "done", schema.TASK_FINISHED, E, message="main() returned \u00e9")
    u.update("F", "gone", schema.TASK_FAILED, E, reason=schema.REASON_CONTAINER_LIMITATION, message="x")
    u.update("G", "dropped", schema.TASK_RUNNING, E)
    await turns()
    ack_sent(a, u)                      # the heads of every stream
    await turns()
    u.update("F", "acked", schema.TASK_RUNNING, E)
    u.update("F", "pend", schema.TASK_RUNNING, E, data=b"2")
    u.update("F", "pend", schema.TASK_KILLED, E, message="killed")
    u.update("F", "done2", schema.TASK_FINISHED, E, message="main() returned")
    await turns()
    ack_sent(a, u, skip=("done2",))     # acked's RUNNING, pend's second RUNNING; KILLED, FINISHED stay
    u.drop_framework("G")
    await turns()
    before = desc(u)
    unacked = sorted(k for k in u.streams if u.streams[k].pending)
    a2, u2 = boot()
    n = u2.recover()
    print(n, desc(u2) == before, unacked == sorted(k for k in u2.streams if u2.streams[k].pending))
    print(sorted(u2.streams), u2.pending_count(), u2.latest("F", "acked"), u2.unacked("F", "pend")[0])
    print(before)
asyncio.run(main())
''' % compacted)
    lines = r.lines()
    assert lines[-3] == "2 True True"
    assert lines[-2] == ("[('F', 'acked'), ('F', 'done2'), ('F', 'pend')] 2 %d %d"
                         % (STATES["TASK_RUNNING"], STATES["TASK_KILLED"]))


def test_torn_last_record_at_every_byte_recovers_the_rest(mpy_run, tmp_path):
    # A power cut mid-append leaves the last line cut anywhere. Recovery keeps every complete record,
    # logs the torn one, and rewrites the file so the next append isn't glued onto the torn bytes.
    r = run(mpy_run, tmp_path, r'''
async def main():
    a, u = boot()
    asyncio.create_task(u.run())
    E = schema.SOURCE_EXECUTOR
    u.update("F", "a", schema.TASK_RUNNING, E, executor_id="a")
    u.update("F", "b", schema.TASK_RUNNING, E)
    await turns()
    ack_sent(a, u)
    await turns()
    u.update("F", "a", schema.TASK_RUNNING, E, data=b"\x01\x02", message="caf\u00e9")
    await turns()
    without = desc(u)
    base = journal()
    ack_sent(a, u)                      # the last record is this ack
    u.update("F", "b", schema.TASK_FINISHED, E, message="done")  # and this update
    await turns()
    full = journal()
    complete = desc(u)
    ok = 0
    for cut in range(len(base), len(full) + 1):
        f = _open(FS + "/updates.json", "wb"); f.write(full[:cut]); f.close()
        a2, u2 = boot()
        u2.recover()
        got = desc(u2)
        if cut >= len(full) - 1:
            want = complete             # only the newline is missing: the record is whole
        else:
            want = None                 # somewhere between `without` and `complete`
            if got not in (without, complete) and not (len(got) == len(complete)):
                print("BAD", cut, got)
                continue
        if want is not None and got != want:
            print("BAD", cut, got)
            continue
        # The rewrite left a clean file: one more update and another reboot keep everything.
        u2.update("F", "c", schema.TASK_RUNNING, E)
        u2.flush()
        a3, u3 = boot()
        u3.recover()
        if desc(u3) != desc(u2):
            print("GLUED", cut)
            continue
        ok += 1
    print("OK", ok, len(full) - len(base) + 1)
asyncio.run(main())
''')
    last = r.lines()[-1].split()
    assert last[0] == "OK" and last[1] == last[2], r.out[-3000:]
    assert "journal: 1 unreadable record(s) skipped" in r.out


def test_garbage_lines_are_skipped_and_logged_and_the_old_checkpoint_is_read(mpy_run, tmp_path):
    st = tmp_path / "st"
    st.mkdir()
    uid = "0" * 12 + "4" + "0" * 3 + "8" + "0" * 15
    good = '[0,"F","t",1,2,1700000000.5,"%s","t",null,null,"6869"]\n' % uid
    garbage = [b"\x00\xff\xfe not json\n", b"[0,1,2]\n", b'[0,"F","t","x",2,1.0,"%s",null,null,null,null]\n' % uid.encode(),
               b"[9]\n", b"{}\n", b"\n", b"[" * 20000 + b"\n", b'[1,"zz"]\n', b'[2,"F",7,1]\n']
    (st / "updates.json").write_bytes(b"".join(garbage[:5]) + good.encode() + b"".join(garbage[5:]))
    r = run(mpy_run, tmp_path, r'''
a, u = boot()
print(u.recover(), desc(u))
print(repr(journal()))
''')
    assert r.lines()[-2].startswith("1 [(('F', 't'), 1, False, [[('data', '6869'), ('executor_id', 't'),")
    assert "journal: 9 unreadable record(s) skipped" in r.out
    assert r.lines()[-1] == repr(good.encode())  # rewritten: only the live record left
    # The whole-file checkpoint of the version before the journal is read as it was written.
    old = [["F", "t", 1, False, [{"task_id": "t", "state": 1, "source": 2, "timestamp": 1.5, "uuid": uid,
                                  "data": "6869"}]], ["F", "s", 1, False, []]]
    (st / "updates.json").write_text(json.dumps(old))
    r = run(mpy_run, tmp_path, r'''
a, u = boot()
print(u.recover(), u.latest("F", "s"), u.unacked("F", "t")[1].hex(), u.streams[("F", "t")].pending[0]["data"])
''')
    assert r.lines()[-1] == "1 1 %s b'hi'" % uid


def test_a_burst_is_one_append_even_when_no_free_block_holds_it(mpy_run, tmp_path):
    # 40 tasks starting together queue ~10 KB of records for one append. With the heap fragmented so that
    # no free block is much over 1 KB, joining them failed (MemoryError: "journal write failed", then a
    # whole rewrite); the store streams them through its small buffer instead: one open, no rewrite.
    r = run(mpy_run, tmp_path, r'''
import gc
async def main():
    a, u = boot()
    asyncio.create_task(u.run())
    await turns()
    for i in range(40):
        u.update("F", "task-%02d" % i, schema.TASK_STARTING, schema.SOURCE_EXECUTOR, executor_id="task-%02d" % i,
                 message="starting " + "x" * 150)
    want = desc(u)
    gc.collect()
    ballast = [None] * 1000
    try:
        for i in range(len(ballast)):
            ballast[i] = bytearray(1000)
    except MemoryError:
        pass
    for i in range(0, len(ballast), 2):  # half the heap free again, in holes of ~1 KB
        ballast[i] = None
    gc.collect()
    s0 = snap()
    await turns()
    s1 = snap()
    ballast = None
    gc.collect()
    size = len(journal())
    a2, u2 = boot()
    print(u2.recover(), desc(u2) == want, s1[0] - s0[0], s1[2] - s0[2], size > 9000)
asyncio.run(main())
''')
    assert "journal write failed" not in r.out, r.out[-2000:]
    assert r.lines()[-1] == "40 True 1 0 True"  # recovered all; one open, no rename or remove; ~10 KB


def test_journal_code_is_loaded_only_to_replay_and_rewrite(mpy_run, tmp_path):
    # micromesos.journal (replay, rewrite) is imported for those and dropped after; appends never load it.
    # When its import fails (no heap), the queued records are appended instead and the rewrite is tried
    # again at the next write.
    r = run(mpy_run, tmp_path, r'''
import builtins, gc
import micromesos
IMPORTS = []
FAIL = [False]
_imp = builtins.__import__
def imp(name, *args):
    if name == "micromesos.journal":
        IMPORTS.append(FAIL[0])
        if FAIL[0]:
            raise MemoryError("test: no heap")
    return _imp(name, *args)
builtins.__import__ = imp

def loaded():
    return "micromesos.journal" in sys.modules or "journal" in micromesos.__dict__

async def main():
    a, u = boot()
    print("boot", u.recover(), len(IMPORTS), loaded())
    asyncio.create_task(u.run())
    for i in range(6):                      # appends only: nothing imported
        u.update("F", "t", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR, data=b"x" * 200)
        await turns()
        ack_sent(a, u)
        await turns()
    print("appends", len(IMPORTS), loaded(), C["meta"])
    FAIL[0] = True                          # past the bound, and the rewrite's code can't be loaded
    for i in range(12):
        u.update("F", "t", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR, data=b"x" * 200)
        await turns()
        ack_sent(a, u)
        await turns()
    big = len(journal())
    want = desc(u)
    print("failing", len(IMPORTS) > 0, loaded(), C["meta"], big > 4096, u.pending_count())
    a2, u2 = boot()
    FAIL[0] = False
    print("replay", u2.recover(), desc(u2) == want)
    FAIL[0] = False                         # the next write rewrites it
    n = len(IMPORTS)
    u.update("F", "t", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR)
    await turns()
    print("rewrite", len(IMPORTS) - n, loaded(), C["meta"] > 0, len(journal()) < big)
asyncio.run(main())
''')
    lines = [x for x in r.lines() if not x[:1].isdigit()]  # not the log lines
    assert lines[-5] == "boot 0 1 False"          # one import for replay + rewrite, dropped after
    assert lines[-4] == "appends 1 False 0"
    assert lines[-3] == "failing True False 0 True 0"  # appended past the bound, nothing lost or renamed
    assert lines[-2] == "replay 0 True"
    assert lines[-1] == "rewrite 1 False True True"
    assert "no heap to load the journal's rewrite" in r.out and "journal write failed" not in r.out


def test_handlers_never_write_and_a_pong_queued_in_the_same_turn_leaves_first(mpy_run, tmp_path):
    # update(), ack() and drop_framework() only queue; the update loop writes, after any task that was
    # made runnable in the same turn (the libprocess sender of a pong is woken by an Event like this one).
    r = run(mpy_run, tmp_path, r'''
async def sender(ev):
    while True:
        await ev.wait()
        ev.clear()
        ORDER.append("pong")

async def main():
    a, u = boot()
    ev = asyncio.Event()
    asyncio.create_task(sender(ev))
    asyncio.create_task(u.run())
    await turns()
    s0 = snap()
    u.update("F", "t", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR)
    u.update("G", "t", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR)
    print("update", [x - y for x, y in zip(snap(), s0)])
    ev.set()
    await turns()
    m = sent(a)
    ORDER.clear()
    s0 = snap()
    u.ack(m[0]["framework_id"], m[0]["status"]["task_id"], m[0]["uuid"])  # the ack, then the ping
    ev.set()
    print("ack", [x - y for x, y in zip(snap(), s0)])
    await turns()
    print(ORDER)
    ORDER.clear()
    ev.set()                                                              # the ping, then the ack
    u.ack(m[1]["framework_id"], m[1]["status"]["task_id"], m[1]["uuid"])
    await turns()
    print(ORDER)
    u.update("F", "x", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR)
    await turns()
    s0 = snap()
    u.drop_framework("F")
    print("drop", [x - y for x, y in zip(snap(), s0)])
    await turns()
    print("after", [x - y for x, y in zip(snap(), s0)][0] > 0)
asyncio.run(main())
''')
    assert r.lines()[-6:] == ["update [0, 0, 0]", "ack [0, 0, 0]", "['pong', 'write']", "['pong', 'write']",
                              "drop [0, 0, 0]", "after True"]


def test_ack_path_allocates_no_more_than_its_lookup_key(mpy_run, tmp_path):
    # What ack() itself adds per message (the codec's decode of the ack is measured elsewhere): the
    # (fid, tid) key tuple, as before the journal; no record is built and the queue's slots are reused.
    r = run(mpy_run, tmp_path, r'''
import gc, micropython
async def main():
    a, u = boot()
    asyncio.create_task(u.run())
    for i in range(3):
        u.update("F", "t", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR)
        await turns()
        ack_sent(a, u)
        await turns()
    u.update("F", "t", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR)
    await turns()
    uid = sent(a)[0]["uuid"]
    gc.collect()
    gc.disable()
    m0 = gc.mem_alloc()
    key = ("F", "t")
    m1 = gc.mem_alloc()
    ok = u.ack("F", "t", uid)
    m2 = gc.mem_alloc()
    gc.enable()
    print("ACK", ok, (m2 - m1) - (m1 - m0))
asyncio.run(main())
''')
    ok, extra = r.lines()[-1].split()[1:]
    assert ok == "True" and int(extra) <= 32  # 32 on the 64-bit port, as before the journal (the call)


def test_long_message_is_truncated_on_a_character_boundary_with_a_marker(mpy_run, tmp_path):
    r = run(mpy_run, tmp_path, r'''
from micromesos.updates import clip, MAX_MESSAGE
for msg in ("x" * 8192, "\u00e9" * 4096, "a" + "\u20ac" * 3000, "y" * MAX_MESSAGE, "short"):
    c = clip(msg)
    b, ob = c.encode(), msg.encode()
    if len(ob) <= MAX_MESSAGE:
        print("SAME", c == msg)
        continue
    head, _, tail = c.rpartition("\u2026 [truncated ")
    n = int(tail.split()[0])
    print("CUT", len(b) <= MAX_MESSAGE, ob.startswith(head.encode()), len(head.encode()) + n == len(ob),
          tail.endswith(" bytes]"), len(b))

async def main():
    a, u = boot()
    asyncio.create_task(u.run())
    u.update("F", "t", schema.TASK_FAILED, schema.SOURCE_EXECUTOR, message="E" * 8192)
    await turns()
    m = sent(a)
    msg = m[0]["status"]["message"]
    print("SENT", len(msg), msg.endswith("\u2026 [truncated 7200 bytes]"), len(a.out))
    u.ack(m[0]["framework_id"], "t", m[0]["uuid"])
    await turns()
    print("ACKED", u.pending_count(), len(u.streams))
asyncio.run(main())
''')
    lines = r.lines()
    cuts = [line for line in lines if line.startswith("CUT")]
    assert len(cuts) == 3 and all(line.startswith("CUT True True True True") for line in cuts), lines
    assert [line for line in lines if line.startswith("SAME")] == ["SAME True", "SAME True"]
    assert "SENT 1016 True 0" in lines   # 1024 - 32 kept, the 3-byte ellipsis, " [truncated 7200 bytes]"
    assert lines[-1] == "ACKED 0 0"


FAILS_LONG = '''
import asyncio

async def main(ctx):
    await asyncio.sleep_ms(0)
    raise ValueError("boom " * 1700)
'''


@pytest.fixture
def cluster(tmp_path):
    made = []

    def make(**kw):
        c = Cluster(tmp_path, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.stop()


def test_task_with_an_8kb_failure_message_reaches_the_master_and_is_acknowledged(cluster):
    c = cluster(heap="1m")  # room to format the 8 KB message (a MemoryError there is issue 10's, not this test's)
    task_file(c, "failslong", FAILS_LONG)
    c.start_agent()
    c.fid = c.framework()
    tid = c.launch("failslong", task_id="long-1")
    e = c.wait_state(tid, "TASK_FAILED", timeout=15)
    msg = _st(e)["message"]
    # Cut with a marker: by updates.clip, or earlier where the task runner formats the exception.
    assert msg.startswith("ValueError: boom boom") and "truncated" in msg and len(msg.encode()) <= 1024
    c.wait(lambda e: e.name == "StatusUpdateAcknowledgementMessage" and e.body.get("task_id") == tid)
    assert c.problems() == []


# Recovery reads the journal line by line in 512 B pieces (MicroPython's readline(n) allocates n bytes first:
# the old 10 KB per line did not fit a node's heap at boot): short lines, a line of several pieces, a line
# past the limit (skipped whole), a line of exactly one piece and a torn last line.
RECORDS = r"""
import gc, json, os
from micromesos import journal
from micromesos.store import Store

d = "%s"
st = Store(d)
lines = [json.dumps({"k": 1}), json.dumps({"k": "x" * 3000}), "y" * 20000, json.dumps({"k": 2}),
         json.dumps({"k": "z" * 502}), '{"k": 3']  # 511 chars + its newline: exactly one piece
with open(d + "/j.json", "w") as f:
    f.write("\n".join(lines))
gc.collect()
got = []
for r in journal.records(st, "j", 10240):
    got.append(None if r is None else (len(r["k"]) if isinstance(r["k"], str) else r["k"]))
print(got)
"""


def test_journal_lines_are_read_in_small_pieces_and_oversize_ones_skipped(mpy_run, tmp_path):
    out = mpy_run(RECORDS % str(tmp_path), heapsize="512k").check().lines()
    assert out == ["[1, 3000, None, 2, 502, None]"], out


def test_an_update_with_no_heap_to_be_encoded_is_counted_and_sent_once_there_is(mpy_run, tmp_path):
    # A small board's heap in pieces: encoding the update fails (MemoryError). It is offered again every
    # _REFUSED_MS, as if refused, and each try is counted (/metrics, the node's wake line), not lost or sent twice.
    r = run(mpy_run, tmp_path, r'''
FAILS = [3]
_enc = codec.encode_buf
def enc(T, obj):
    if FAILS[0]:
        FAILS[0] -= 1
        raise MemoryError("test: no heap")
    return _enc(T, obj)
codec.encode_buf = enc

async def main():
    a, u = boot()
    u.recover()
    asyncio.create_task(u.run())
    u.update("F", "t", schema.TASK_RUNNING, schema.SOURCE_EXECUTOR)
    await turns()
    print("starved", u.no_heap, len(a.out))
    for _ in range(40):
        await asyncio.sleep_ms(50)
        if a.out:
            break
    m = sent(a)
    print("sent", u.no_heap, len(m), m[0]["status"]["state"] if m else None)
    for x in m:
        u.ack(x["framework_id"], x["status"]["task_id"], x["uuid"])
    await asyncio.sleep_ms(300)
    print("after", len(a.out), u.pending_count())
asyncio.run(main())
''')
    assert r.lines()[-3:] == ["starved 1 0", "sent 3 1 %d" % STATES["TASK_RUNNING"], "after 0 0"], r.out
