#!/usr/bin/env python3
# `make attack`: replays connection attacks, spoofed master/observer messages and task faults against a live
# virtual board (the unix port running the agent) and the stand-in master, all on 127.0.0.x, each case on a
# fresh board, bounded in connections and seconds. Prints one row per case; exits 1 if any case failed.
# MIT licence. Cases: tools/attacks/{conn,spoof,faults}.py; task modules: tests/tasks/.
import argparse
import asyncio
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "tools", "hostcompat"), HERE,
                os.path.join(ROOT, "lib")]

from attacks import conn, faults, spoof  # noqa: E402
from attacks.outcome import Outcome  # noqa: E402
from attacks.rig import Rig  # noqa: E402

# (name, case, seconds allowed, set-up): "registered" starts master and board and waits for registration.
CASES = [c if len(c) == 4 else c + ("registered",) for c in conn.CASES + spoof.CASES + faults.CASES]


class Row:
    def __init__(self, name):
        self.name = name
        self.held = False
        self.registered = "-"
        self.missed = None
        self.heap0 = self.heap1 = None
        self.why = []
        self.seconds = 0.0


async def run_case(name, case, limit, setup, workdir):
    row = Row(name)
    t0 = time.time()
    rig = Rig(workdir)
    out = Outcome()
    try:
        if setup == "registered":
            await rig.start()
            row.heap0 = await rig.heap()
        start = None
        try:
            start = rig.mark() if rig.m else None
            await asyncio.wait_for(case(rig, out), limit)
        except asyncio.TimeoutError:
            out.check(False, "case did not finish within %d s" % limit)
        except (AssertionError, OSError, LookupError) as e:
            out.check(False, "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:120]))
        if rig.m is not None and rig.aid:
            first, end = out.window or (start or 0, rig.mark())
            row.missed = await rig.missed(first, end)
            resumed = rig.board_alive() and await rig.pongs_resume(10)
            view = rig.master_view()
            row.registered = "yes" if resumed and view == "registered" else "no (%s)" % (
                view if resumed else "no pongs" if rig.board_alive() else "agent exited")
            out.check(row.registered == "yes", "the agent stayed registered with the real master")
            out.check(not rig.b.find(r"Traceback|MemoryError in asyncio|Unhandled exception"),
                      "no traceback in the board's output")
            if row.heap1 is None and rig.board_alive():
                row.heap1 = await rig.heap()
        if setup == "none" and row.heap0 is None:
            row.heap0 = "-"
    except (AssertionError, OSError, asyncio.TimeoutError) as e:
        out.check(False, "set-up: %s" % str(e).splitlines()[0][:160])
    finally:
        row.why = out.failed()
        row.notes = out.notes
        row.held = not row.why
        row.seconds = time.time() - t0
        row.board_tail = rig.b.output()[-3000:] if rig.b.proc else ""
        await rig.stop()
    return row


def fmt(v):
    return "-" if v is None else str(v)


def table(rows, markdown=True):
    out = ["| case | result | registered | pongs missed | heap before → after (B) | observed |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        seen = "; ".join(r.why or r.notes or ["all checks passed"])
        if r.why and r.notes:
            seen += " (" + "; ".join(r.notes) + ")"
        out.append("| %s | %s | %s | %s | %s → %s | %s |" % (r.name, "held" if r.held else "**FAILED**",
                                                           r.registered, fmt(r.missed), fmt(r.heap0),
                                                           fmt(r.heap1), seen.replace("|", "/")))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description="Attack a live virtual board and report which attacks it held.")
    ap.add_argument("--only", action="append", default=[],
                    help="run only cases whose name contains this (repeatable), e.g. 'conn:' or 'GeneratorExit'")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--verbose", action="store_true", help="print the board's output of failed cases")
    ap.add_argument("--tree", help="boards run lib/, firmware/, boards/ and tests/fakes of this copy of the "
                    "project instead, e.g. `git archive <commit> lib firmware boards tests/fakes | tar -x -C DIR` "
                    "(link DIR/.venv to this .venv)")
    a = ap.parse_args()
    if a.tree:
        import mpy
        import vboard_proc

        mpy.ROOT = os.path.abspath(a.tree)
        mpy.LIB = os.path.join(mpy.ROOT, "lib")
        mpy.FAKES = os.path.join(mpy.ROOT, "tests", "fakes")
        vboard_proc.CODE_DIR = tempfile.mkdtemp(prefix="attack-mpy-")
    cases = [c for c in CASES if not a.only or any(o in c[0] for o in a.only)]
    if a.list or not cases:
        for c in CASES:
            print(c[0])
        return 0 if a.list else 2
    work = tempfile.mkdtemp(prefix="attack-")
    rows = []
    t0 = time.time()
    for i, (name, case, limit, setup) in enumerate(cases):
        print("attack: [%d/%d] %s ..." % (i + 1, len(cases), name), flush=True)
        row = asyncio.run(run_case(name, case, limit, setup, os.path.join(work, "case%d" % i)))
        rows.append(row)
        print("attack:   %s in %.0f s%s" % ("held" if row.held else "FAILED", row.seconds,
                                            "".join("\n attack:   - " + w for w in row.why)), flush=True)
        if a.verbose and not row.held:
            print(row.board_tail)
    print()
    print(table(rows))
    failed = sum(not r.held for r in rows)
    print("\nattack: %d cases, %d held, %d failed, %.0f s" % (len(rows), len(rows) - failed, failed,
                                                              time.time() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
