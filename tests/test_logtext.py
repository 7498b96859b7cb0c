# Log texts moved to flash on boards that load .mpy files (tools/logtext.py, tools/mpytree.py): the rewrite, the
# text file, and the lines a board prints from it. MIT licence.
import ast
import glob
import os
import re
import sys

import mpy
import pytest

sys.path.insert(0, os.path.join(mpy.ROOT, "tools"))
import logtext  # noqa: E402

sys.path.pop(0)

SOURCES = sorted(glob.glob(os.path.join(mpy.LIB, "**", "*.py"), recursive=True))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def log_calls(src):
    """(level, second argument's node) of each log.<level>(...) call."""
    out = []
    for n in ast.walk(ast.parse(src)):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                and n.func.value.id == "log" and n.func.attr in ("error", "warn", "info", "debug")):
            out.append((n.func.attr, n.args[1] if len(n.args) > 1 else None))
    return out


@pytest.fixture(scope="module")
def catalogue():
    return logtext.catalogue(read(f) for f in SOURCES)


def test_every_literal_text_of_lib_moves_and_reads_back_from_its_offset(catalogue):
    data, at = catalogue
    moved = 0
    for path in SOURCES:
        src = read(path)
        before = log_calls(src)
        after = log_calls(logtext.rewrite(src, at))
        assert [lv for lv, _ in before] == [lv for lv, _ in after], path  # the same calls, in order
        for (_, b), (_, a) in zip(before, after):
            if isinstance(b, ast.Constant) and isinstance(b.value, str) and "\n" not in b.value:
                assert isinstance(a, ast.Constant) and type(a.value) is int, (path, b.value)
                line = data[a.value:data.index(b"\n", a.value)]
                assert line.decode() == b.value, path
                moved += 1
            else:  # a text built at run time (or none) stays as it was
                assert ast.dump(a) == ast.dump(b), path
    assert moved >= len(at)  # a text used twice has one line
    assert len(set(at.values())) == len(at) and len(data.splitlines()) == len(at)
    assert moved > 100  # the agent's log calls are there to be found


def test_the_rewrite_keeps_everything_but_the_texts(catalogue):
    _, at = catalogue
    for path in SOURCES:
        src = read(path)
        a, b = ast.parse(src), ast.parse(logtext.rewrite(src, at))
        for n in ast.walk(b):
            if isinstance(n, ast.Constant) and type(n.value) is int and n.value in at.values():
                n.value = None
        for n in ast.walk(a):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in at:
                n.value = None
        # Other ints equal to an offset were blanked too, in both: the trees match exactly.
        for n in ast.walk(a):
            if isinstance(n, ast.Constant) and type(n.value) is int and n.value in at.values():
                n.value = None
        assert ast.dump(a) == ast.dump(b), path


def test_a_text_with_a_line_break_and_a_text_built_at_run_time_stay_in_the_code():
    src = ('from micromesos import log\n'
           'log.info("w", "two\\nlines %d", 1)\n'
           'log.info("w", "built " + "at run time")\n'
           'log.warn("w", ("moved "\n'
           '               "one %s"), "é")\n')
    data, at = logtext.catalogue([src])
    assert at == {"moved one %s": 0} and data == b"moved one %s\n"
    out = logtext.rewrite(src, at)
    assert 'log.info("w", "two\\nlines %d", 1)' in out and '"built " + "at run time"' in out
    assert 'log.warn("w", (0), "é")' in out  # the parentheses stay: the literal's own span goes
    ast.parse(out)


def test_log_reads_the_file_the_build_writes():
    # micromesos.log opens logtext.txt beside itself and reads at most the longest text the tool moves.
    src = read(os.path.join(mpy.LIB, "micromesos", "log.py"))
    assert '+ "%s", "rb")' % logtext.TEXT_FILE in src
    assert "_TEXT_MAX = const(%d)" % logtext.TEXT_MAX in src


def test_a_text_longer_than_log_reads_stays_in_the_code():
    long = "x" * logtext.TEXT_MAX
    src = 'log.info("w", "%s")\nlog.info("w", "%s")\n' % (long, long + "é")
    data, at = logtext.catalogue([src])
    assert at == {long: 0} and data == long.encode() + b"\n"
    assert logtext.rewrite(src, at) == 'log.info("w", 0)\nlog.info("w", "%s")\n' % (long + "é")


def test_a_board_prints_the_moved_text_and_reads_nothing_when_the_line_is_not_printed(tmp_path):
    # The loaded device model runs the compiled tree: a corrupt checkpoint makes Store.load log its text
    # from flash, as the source says it; at level "error" a debug line opens no file.
    d = tmp_path / "state"
    d.mkdir()
    (d / "agent.json").write_text("{not json")
    code = ("import os\n"
            "from micromesos import log\n"
            "from micromesos.store import Store\n"
            "log.set_level('error')\n"
            "print('loaded', Store(%r).load('agent'))\n"
            "real = open\n"
            "def spy(*a):\n"
            "    print('opened', a[0])\n"
            "    return real(*a)\n"
            "log.open = spy\n"  # module globals first: the file log opens, if any
            "log.debug('w', 0)\n"
            "log.error('w', 99999999, 1)\n"
            "log.error('w', -1)\n" % str(d))
    r = mpy.run_mpy(code=code, device="loaded", heapsize="256k").check()
    src = read(os.path.join(mpy.LIB, "micromesos", "store.py"))
    assert "checkpoint %s is corrupt (%s); starting fresh" in src
    assert re.search(r"^\d+ ERROR store: checkpoint %s/agent\.json is corrupt \(.+\); starting fresh$" % re.escape(str(d)),
                     r.out, re.M), r.out
    assert "loaded None" in r.out
    lines = r.out.splitlines()
    # Offsets past the file or before it: the line still comes out, saying which text it was.
    i = next(i for i, ln in enumerate(lines) if ln.startswith("opened"))
    assert lines[i].endswith("micromesos/logtext.txt")
    assert re.match(r"^\d+ ERROR w: text #99999999 \(1,\)$", lines[i + 1]), r.out
    assert re.match(r"^\d+ ERROR w: text #-1$", lines[-1]), r.out
    assert sum(ln.startswith("opened") for ln in lines) == 2  # the debug line opened nothing
