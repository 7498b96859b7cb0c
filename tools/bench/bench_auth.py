#!/usr/bin/env python3
# Agent authentication figures for `make bench` (issue 13): one SASL CRAM-MD5 authentication of the agent's
# authn.py against the stand-in master (--authenticate_agents) over loopback, on the unix port wheel and
# the 32-bit device model; time and heap measured inside MicroPython. MIT licence.
# Run alone: .venv/bin/python tools/bench/run.py --only auth
import asyncio
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for p in (os.path.join(ROOT, "tests"), os.path.join(ROOT, "tools", "hostcompat"), os.path.join(ROOT, "tools"),
          os.path.join(ROOT, "lib"), HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

import mpy  # noqa: E402
from standin import StandinMaster  # noqa: E402

HEAP = "256k"  # room for the probe; the figures do not depend on it
ROUNDS = 5     # authentications per run (the first one includes importing the module)

# Runs in MicroPython: argv = master port, credential path, rounds, agent port.
PROBE = r"""
import gc, sys, time
import asyncio
from micromesos.libprocess import Libprocess

MPORT, CRED, ROUNDS, APORT = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


class Agent:  # what authn.run reads of micromesos.agent.Agent
    def __init__(self, lp):
        self.lp = lp
        self.master = "master@127.0.0.1:%d" % MPORT
        self.cfg = {"authentication_timeout_min": 5.0, "authentication_backoff_factor": 1.0,
                    "authentication_timeout_max": 60.0, "check_master_ip": True, "credential": CRED}
        self.authentications = 0
        self.state = 1  # agent.DISCONNECTED: authn.wanted()
        self.authenticated = False

    @property
    def upid(self):
        return self.lp.upid


def drop(name):
    sys.modules.pop(name, None)
    pkg = sys.modules.get("micromesos")
    short = name.split(".")[1]
    if pkg is not None and short in pkg.__dict__:
        delattr(pkg, short)


async def main():
    lp = Libprocess("slave(1)", "127.0.0.1", APORT)
    await lp.start()
    a = Agent(lp)
    import hashlib
    print("hashlib_md5", int(hasattr(hashlib, "md5")))
    for i in range(ROUNDS):
        a.authenticated = False
        gc.collect()
        m0 = gc.mem_alloc()
        import micromesos.authn as authn
        gc.collect()
        held = gc.mem_alloc() - m0
        gc.collect()
        m1 = gc.mem_alloc()
        gc.disable()
        t0 = time.ticks_us()
        ok = await authn.run(a)
        t1 = time.ticks_us()
        m2 = gc.mem_alloc()
        gc.enable()
        # the CPU part alone: the HMAC-MD5 step with this port's md5
        gc.collect()
        m3 = gc.mem_alloc()
        gc.disable()
        t2 = time.ticks_us()
        authn.response(b"board-1", b"s3cret-micro", b"<2116811070.617598@vm>")
        t3 = time.ticks_us()
        m4 = gc.mem_alloc()
        gc.enable()
        has_fallback = "micromesos.md5" in sys.modules
        drop("micromesos.authn")
        drop("micromesos.md5")
        gc.collect()
        left = gc.mem_alloc() - m0
        print("round", i, int(ok), held, time.ticks_diff(t1, t0), m2 - m1, time.ticks_diff(t3, t2), m4 - m3,
              int(has_fallback), left)
        a.authenticated = True
    await lp.close()

asyncio.run(main())
"""


async def _one(device, cred):
    async with StandinMaster(authenticate_agents=True, credentials={"credentials": [
            {"principal": "board-1", "secret": "s3cret-micro"}]}) as m:
        env = mpy.mpy_env(device=device)
        argv = mpy.mpy_argv(HEAP, device=device) + ["-c", PROBE, str(m.port), cred, str(ROUNDS),
                                                          str(mpy.free_port())]
        p = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(p.communicate(), 120)
        if p.returncode != 0:
            raise RuntimeError("probe on %s failed:\n%s\n%s" % (device, out.decode()[-2000:], err.decode()[-2000:]))
        return out.decode().splitlines(), m.auth.completed


def measure(device):
    with tempfile.TemporaryDirectory() as d:
        cred = os.path.join(d, "credential.json")
        with open(cred, "w") as f:
            json.dump({"principal": "board-1", "secret": "s3cret-micro"}, f)
        lines, completed = asyncio.run(_one(device, cred))
    md5 = [ln for ln in lines if ln.startswith("hashlib_md5")][0].split()[1] == "1"
    rounds = [list(map(int, ln.split()[2:])) for ln in lines if ln.startswith("round")]
    assert len(rounds) == ROUNDS and all(r[0] == 1 for r in rounds) and completed == ROUNDS, (lines, completed)
    return md5, rounds


def _med(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def run():
    rows = []
    for device in ("wheel", "loaded", "frozen"):
        try:
            md5, rs = measure(device)
        except Exception as e:  # noqa: BLE001 -- a missing device model is reported, not fatal to make bench
            rows.append("| %s | not measured: %s | | | | | |" % (device, str(e).splitlines()[0][:80]))
            continue
        rows.append("| %s | %s | %.1f ms | %d B | %.2f ms | %d B | %d B / %d B |" % (
            device, "hashlib.md5" if md5 else "micromesos/md5.py (pure Python)",
            _med([r[2] for r in rs]) / 1000, _med([r[3] for r in rs]), _med([r[4] for r in rs]) / 1000,
            _med([r[5] for r in rs]), rs[0][1], _med([r[7] for r in rs])))
    mpy_sizes = []
    try:
        d = mpy.compile_tree(os.path.join(ROOT, "build", "bench-auth-mpy"))
        for n in ("authn", "md5"):
            mpy_sizes.append("%s.mpy %d B" % (n, os.path.getsize(os.path.join(d, "micromesos", n + ".mpy"))))
    except Exception as e:  # noqa: BLE001
        mpy_sizes.append("not measured: %s" % e)
    return "\n".join([
        "## Agent authentication (SASL CRAM-MD5, issue 13)", "",
        "One whole authentication of `micromesos.authn.run` (AuthenticateMessage → Mechanisms → Start → "
        "challenge → HMAC step → Completed) against the stand-in master with `--authenticate_agents` over "
        "loopback, measured inside MicroPython (`time.ticks_us`, `gc.mem_alloc` with the collector off), "
        "median of %d; -X heapsize=%s. *alloc* counts every byte allocated during the call (garbage "
        "included); *held by the import* is what `import micromesos.authn` keeps while loaded (the agent "
        "drops it after authenticating: 0 B on a board without a credential); *left* is what stays "
        "allocated after the module (and md5.py) is dropped." % (ROUNDS, HEAP), "",
        "| interpreter | MD5 | one authentication | alloc | HMAC step alone | alloc | held by the import / left |",
        "|---|---|---|---|---|---|---|"] + rows + ["", "Sizes (host mpy-cross): " + ", ".join(mpy_sizes), ""])


if __name__ == "__main__":
    print(run())
