# The README walked as a new user walks it, from a clean checkout: its commands are read out of README.md's code
# blocks, never copied here, so the README can't drift from what works. MIT licence.
#   "Two commands": `make sim` is run (Ctrl-C to stop) and `make test` is the command CI runs (.ci/run), so
#   every CI run walks it; here it is only dry-run (running the suite inside the suite would recurse).
#   "Write your first task": the task file as shown, `make sim` in one terminal, the `make launch` command in
#   another; its output must match the README's sample line by line ("…" stands for ids and the like).
import os
import re

import mpy
from simproc import Terminal, clean_checkout, run

README = os.path.join(mpy.ROOT, "README.md")


def section(text, title):
    start = text.index("\n## " + title) + 1
    end = text.find("\n## ", start)
    return text[start:end if end >= 0 else len(text)]


def blocks(sec, lang):
    """The bodies of the fenced code blocks of language `lang` ('' for a bare fence), in order."""
    out, cur, cur_lang = [], None, None
    for line in sec.splitlines(keepends=True):
        if line.startswith("```"):
            if cur is None:
                cur, cur_lang = [], line[3:].strip()
            else:
                if cur_lang == lang:
                    out.append("".join(cur))
                cur = None
        elif cur is not None:
            cur.append(line)
    return out


def commands(block):
    """Shell commands of a code block, one a line, without their trailing comments."""
    out = []
    for line in block.splitlines():
        cmd = re.sub(r"\s+#.*$", "", line).strip()
        if cmd and not cmd.startswith("#"):
            out.append(cmd)
    return out


def readme():
    with open(README) as f:
        text = f.read()
    two = commands(blocks(section(text, "Two commands"), "sh")[0])
    first = section(text, "Write your first task")
    name = re.search(r"Save this as `([^`]+\.py)`", first).group(1)
    code = blocks(first, "python")[0]
    sim_cmd, launch_cmd = (commands(b) for b in blocks(first, "sh")[:2])
    sample = blocks(first, "")[0].splitlines()
    return two, name, code, sim_cmd, launch_cmd, sample


def test_readme_blocks_are_where_this_walk_expects_them():
    two, name, code, sim_cmd, launch_cmd, sample = readme()
    assert [c.split()[:2] for c in two] == [["make", "sim"], ["make", "test"]], two
    assert sim_cmd == [two[0]], "the first task's terminal 1 is the README's `make sim`"
    assert len(launch_cmd) == 1 and launch_cmd[0].startswith("make launch TASK=%s " % name), launch_cmd
    assert "async def main(ctx)" in code and sample and all(s.startswith("launch: ") for s in sample)


def test_readme_test_command_is_what_ci_runs(tmp_path):
    two = readme()[0]
    with open(os.path.join(mpy.ROOT, ".ci", "run")) as f:
        ci = [x.strip() for x in f if x.strip() and not x.startswith("#")]
    assert ci[-1] == two[1], "CI must run the README's test command: %r vs %r" % (ci[-1], two[1])
    root = clean_checkout(str(tmp_path / "checkout"))
    rc, out = run("make -n " + two[1][len("make "):], root, 60)
    assert rc == 0 and re.search(r"pytest -q .*tests", out), out


def _match(sample_line, line):
    rx = ".*?".join(re.escape(p) for p in sample_line.split("…"))
    return re.fullmatch(rx, line) is not None


def test_readme_sim_and_first_task_walk(tmp_path):
    two, name, code, sim_cmd, launch_cmd, sample = readme()
    root = clean_checkout(str(tmp_path / "checkout"))
    sim = Terminal(two[0], root)
    try:
        # What the README says `make sim` shows: registration, the offer, pings answered, hello's run.
        sim.wait_for(r"board  \| .*INFO agent: registered with master@127\.0\.0\.1:\d+ as agent \S+-S0", 90)
        sim.wait_for(r"master \| .*-> SlaveRegisteredMessage", 5)
        sim.wait_for(r"sim: the master now offers agent \S+: \{'cpus': 1\.0, .*'temperature': '\{temp0,temp1\}'", 30)
        for state in ("TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"):
            sim.wait_for(r"<- StatusUpdateMessage .* task=hello-1 state=" + state, 30)
        sim.wait_for(r"<- PongSlaveMessage .* to slave-observer\(1\)", 30)

        with open(os.path.join(root, name), "w") as f:
            f.write(code)
        rc, out = run(launch_cmd[0], root, 60)
        assert rc == 0, out
        got = [x for x in out.splitlines() if x.startswith("launch: ")]
        # Messages and status updates travel separately (an update waits for the previous one's ack,
        # PROTOCOL.md §2.7), so only the order within each kind is fixed; both must match the sample.
        for kind in (True, False):
            want = [x for x in sample if x.startswith("launch: message ") == kind]
            have = [x for x in got if x.startswith("launch: message ") == kind]
            assert len(want) == len(have) and all(_match(w, h) for w, h in zip(want, have)), \
                "README sample:\n%s\n`%s` printed:\n%s" % ("\n".join(sample), launch_cmd[0], "\n".join(got))
    finally:
        status = sim.interrupt()
    assert "sim: summary: registered=yes" in sim.text, sim.text[-3000:]
    assert "Traceback" not in sim.text, sim.text[-3000:]
    assert status is not None
