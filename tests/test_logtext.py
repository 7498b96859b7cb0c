# Log and error texts moved to flash on boards that load .mpy files (tools/logtext.py, tools/mpytree.py): the
# rewrite, the text file, and the lines and errors a board prints from it. MIT licence.
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


def log_calls(tree):
    """(level, second argument's node) of each log.<level>(...) call in a parsed module."""
    out = []
    for n in ast.walk(tree):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                and n.func.value.id == "log" and n.func.attr in ("error", "warn", "info", "debug")):
            out.append((n.func.attr, n.args[1] if len(n.args) > 1 else None))
    return out


def raises(tree):
    """The exception call of each `raise E(...)` in a parsed module."""
    return [n.exc for n in ast.walk(tree) if isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call)]


def movable(node):
    return (isinstance(node, ast.Constant) and isinstance(node.value, str) and "\n" not in node.value
            and len(node.value.encode()) <= logtext.TEXT_MAX)


def name(call):
    return getattr(call.func, "id", getattr(call.func, "attr", None))


@pytest.fixture(scope="module")
def catalogue():
    return logtext.catalogue(read(f) for f in SOURCES)


def text_at(data, off):
    return data[off:data.index(b"\n", off)].decode()


def test_the_agents_errors_are_the_ones_whose_texts_move(catalogue):
    errors = catalogue[2]
    assert {"MesosError", "DecodeError", "ProtocolError", "ConfigError", "NotGranted", "FetchError"} <= errors
    assert not {"ValueError", "TypeError", "OSError", "Exception"} & errors


def test_every_literal_text_of_lib_moves_and_reads_back_from_its_offset(catalogue):
    data, at, errors = catalogue
    moved = 0
    for path in SOURCES:
        src = read(path)
        old, new = ast.parse(src), ast.parse(logtext.rewrite(src, at, errors))
        before, after = log_calls(old), log_calls(new)
        assert [lv for lv, _ in before] == [lv for lv, _ in after], path  # the same calls, in order
        for (_, b), (_, a) in zip(before, after):
            if movable(b):
                assert isinstance(a, ast.Constant) and type(a.value) is int, (path, b.value)
                assert text_at(data, a.value) == b.value, path
                moved += 1
            else:  # a text built at run time (or none) stays as it was
                assert ast.dump(a) == ast.dump(b), path
        before, after = raises(old), raises(new)
        assert [name(c) for c in before] == [name(c) for c in after], path
        for b, a in zip(before, after):
            arg = b.args[0] if len(b.args) == 1 and not b.keywords else None
            fmt = isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod)
            if name(b) in errors and (movable(arg) or fmt and movable(arg.left)):
                # raise E("text") -> raise E(offset); raise E("text" % x) -> raise E(offset, x)
                assert type(a.args[0].value) is int, (path, ast.dump(b))
                assert text_at(data, a.args[0].value) == (arg.left if fmt else arg).value, path
                assert [ast.dump(x) for x in a.args[1:]] == ([ast.dump(arg.right)] if fmt else []), path
                moved += 1
            else:  # ValueError("..."), a text built otherwise: as it was
                assert ast.dump(a) == ast.dump(b), path
    assert moved >= len(at)  # a text used twice has one line
    assert len(set(at.values())) == len(at) and len(data.splitlines()) == len(at)
    assert moved > 200  # the agent's log calls and errors are there to be found


def test_the_rewrite_changes_nothing_but_the_texts(catalogue):
    # The original with each moved text replaced by its offset (and an error's format operand its second
    # argument) is exactly the rewritten module.
    _, at, errors = catalogue
    for path in SOURCES:
        src = read(path)
        tree = ast.parse(src)
        for _, arg in log_calls(tree):
            if movable(arg):
                arg.value = at[arg.value]
        for c in raises(tree):
            if name(c) in errors and len(c.args) == 1 and not c.keywords:
                a = c.args[0]
                if movable(a):
                    c.args = [ast.Constant(at[a.value])]
                elif isinstance(a, ast.BinOp) and isinstance(a.op, ast.Mod) and movable(a.left):
                    c.args = [ast.Constant(at[a.left.value]), a.right]
        assert ast.dump(tree) == ast.dump(ast.parse(logtext.rewrite(src, at, errors))), path


def test_a_text_with_a_line_break_and_a_text_built_at_run_time_stay_in_the_code():
    src = ('from micromesos import log\n'
           'log.info("w", "two\\nlines %d", 1)\n'
           'log.info("w", "built " + "at run time")\n'
           'log.warn("w", ("moved "\n'
           '               "one %s"), "é")\n')
    data, at, errors = logtext.catalogue([src])
    assert at == {"moved one %s": 0} and data == b"moved one %s\n"
    out = logtext.rewrite(src, at, errors)
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
    data, at, errors = logtext.catalogue([src])
    assert at == {long: 0} and data == long.encode() + b"\n"
    assert logtext.rewrite(src, at, errors) == 'log.info("w", 0)\nlog.info("w", "%s")\n' % (long + "é")


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
    line = r"^\d+ ERROR store: checkpoint %s/agent\.json is corrupt \(.+\); starting fresh$" % re.escape(str(d))
    assert re.search(line, r.out, re.M), r.out
    assert "loaded None" in r.out
    lines = r.out.splitlines()
    # Offsets past the file or before it: the line still comes out, saying which text it was.
    i = next(i for i, ln in enumerate(lines) if ln.startswith("opened"))
    assert lines[i].endswith("micromesos/logtext.txt")
    assert re.match(r"^\d+ ERROR w: text #99999999 \(1,\)$", lines[i + 1]), r.out
    assert re.match(r"^\d+ ERROR w: text #-1$", lines[-1]), r.out
    assert sum(ln.startswith("opened") for ln in lines) == 2  # the debug line opened nothing


def test_an_errors_text_moves_with_its_format_operand_and_other_raises_stay():
    src = ('class MesosError(Exception): pass\n'
           'class Bad(MesosError): pass\n'
           'class Worse(Bad): pass\n'
           'def f(x, y):\n'
           '    raise Worse("bad %d of %s" % (x, y))\n'
           'def g():\n'
           '    raise Bad("plain")\n'
           'def h(x):\n'
           '    raise ValueError("stays %d" % x)\n'
           'def i(x):\n'
           '    raise Bad(x if x else "stays too")\n')
    data, at, errors = logtext.catalogue([src])
    assert errors == {"MesosError", "Bad", "Worse"}
    assert data == b"bad %d of %s\nplain\n"
    out = logtext.rewrite(src, at, errors)
    assert "raise Worse(0, (x, y))" in out and "raise Bad(13)" in out
    assert 'raise ValueError("stays %d" % x)' in out and 'raise Bad(x if x else "stays too")' in out


# Errors the agent raises on bad input, printed every way a board prints them: the same lines from the sources
# (the wheel) and from the compiled tree with its texts in flash (the loaded device model).
_ERRORS = """
import sys
from micromesos import codec, upid
from micromesos.errors import MesosError
cases = (lambda: upid.format("a", "999.1.2.3", 5050),
         lambda: codec.decode(20, b"\\x0f"),
         lambda: codec.decode(20, b"\\x08" + b"\\xff" * 10 + b"\\x01"))
for f in cases:
    try:
        f()
    except MesosError as e:
        print("str", str(e))
        print("repr", repr(e))
        print("fmt %s | %r" % (e, e))
        print("args", len(e.args), str(e.args[0]) == str(e))
        sys.print_exception(e)
"""


def test_a_board_prints_a_moved_errors_text_as_the_source_does():
    out = {}
    for device in ("wheel", "loaded"):
        r = mpy.run_mpy(code=_ERRORS, device=device, heapsize="256k").check()
        # a traceback's frames name files and lines differently (.mpy: no line numbers); its last line is the error
        out[device] = [ln for ln in r.out.splitlines() if not ln.startswith(("Traceback", "  "))]
    assert out["loaded"] == out["wheel"]
    assert sum(ln.startswith("str ") for ln in out["wheel"]) == 3, out["wheel"]
    assert "repr ProtocolError('UPID: host is not a usable IPv4 literal',)" in out["wheel"], out["wheel"]
