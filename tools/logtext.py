# Log and error texts out of a board's RAM: the build step between lib/ and mpy-cross for boards that load .mpy
# files. MIT licence. Used by mpytree.py (make mpy, the tests' virtual boards).
"""A module loaded from a .mpy file holds every string constant in RAM for as long as it is imported: on a
board running stock firmware, the literal texts of the agent's log calls and of the errors it raises, all waiting
for a line that is rarely printed. Moving them took the loaded agent's code in RAM after registration from 80.0 to
76.4 KB (32-bit device model, `tools/bench/run.py --only devmodel`). So the build moves them to flash, as dictionary logging does on other small targets: each text
becomes its byte offset in one UTF-8 file of one text a line, micromesos/logtext.txt beside the modules.
- `log.error|warn|info|debug(where, "text", ...)`: the text's offset in its place; micromesos.log reads the line
  back when it prints one (log.stored).
- `raise E("text")` and `raise E("text" % x)`, E micromesos.errors.MesosError or a class derived from it: `raise
  E(offset)`, `raise E(offset, x)`; MesosError reads and formats the text when the error is made, so it prints as
  the source's would (str, repr, a traceback).
The sources stay as they are (the host runs them, and a frozen firmware keeps its strings in flash already).

Only a text that is one literal (implicit concatenation included), one line and at most TEXT_MAX bytes long
moves; the rest (a text built at run time, a line break in it, a longer one) stays a literal. Offsets change
whenever a text is added or edited, so every module is compiled again then, with the file that goes with them
(mpytree.py compile_tree)."""
import ast

TEXT_FILE = "logtext.txt"  # in micromesos/, beside log.mpy (micromesos.log reads it from there)
TEXT_MAX = 160  # bytes of UTF-8: micromesos.log reads this much at an offset (its _TEXT_MAX); longer texts stay
_LEVELS = ("error", "warn", "info", "debug")
_BASE = "MesosError"  # micromesos.errors: it and the classes derived from it take an offset for their text


def _movable(c):
    return (isinstance(c, ast.Constant) and isinstance(c.value, str) and "\n" not in c.value and "\r" not in c.value
            and len(c.value.encode()) <= TEXT_MAX)


def _name(node):
    """The name a class or a call is written with: `E` or `errors.E` -> "E"."""
    return getattr(node, "id", getattr(node, "attr", None))


def error_classes(trees):
    """The names of MesosError and of every class derived from it in these parsed modules."""
    bases = {}
    for tree in trees:
        for n in ast.walk(tree):
            if isinstance(n, ast.ClassDef):
                bases[n.name] = [_name(b) for b in n.bases]
    out = {_BASE}
    grew = True
    while grew:
        grew = False
        for name, bs in bases.items():
            if name not in out and out.intersection(bs):
                out.add(name)
                grew = True
    return out


def _texts(tree, errors):
    """The movable texts of a parsed module: [(node replaced, text, operand node or None)]. A log call's literal
    text (log.error|warn|info|debug(where, "text", ...)); an error's: raise E("text") or raise E("text" % x), E
    one of `errors` (error_classes())."""
    out = []
    for n in ast.walk(tree):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in _LEVELS
                and isinstance(n.func.value, ast.Name) and n.func.value.id == "log" and len(n.args) >= 2):
            if _movable(n.args[1]):
                out.append((n.args[1], n.args[1].value, None))
        elif (isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call) and len(n.exc.args) == 1
                and not n.exc.keywords and _name(n.exc.func) in errors):
            a = n.exc.args[0]
            if _movable(a):
                out.append((a, a.value, None))
            elif isinstance(a, ast.BinOp) and isinstance(a.op, ast.Mod) and _movable(a.left):
                out.append((a, a.left.value, a.right))
    return out


def catalogue(sources):
    """The text file for these module sources (str each, any order): (its bytes, {text: byte offset}, the error
    classes). Texts in sorted order, so the file does not depend on the order the modules are read in."""
    trees = [ast.parse(src) for src in sources]
    errors = error_classes(trees)
    texts = set()
    for tree in trees:
        for _n, t, _op in _texts(tree, errors):
            texts.add(t)
    data = bytearray()
    at = {}
    for t in sorted(texts):
        at[t] = len(data)
        data += t.encode() + b"\n"
    return bytes(data), at, errors


def rewrite(src, at, errors):
    """`src` with each movable text (_texts) replaced by its offset in `at` (catalogue()'s): a log call's text
    by the offset, `E("text" % x)` by `E(offset, x)`. KeyError for a text the catalogue lacks."""
    tree = ast.parse(src)
    b = src.encode()
    line0 = [0]  # byte offset of each line's start (the parser's col_offset counts UTF-8 bytes)
    for ln in b.splitlines(keepends=True):
        line0.append(line0[-1] + len(ln))

    def span(n):
        return line0[n.lineno - 1] + n.col_offset, line0[n.end_lineno - 1] + n.end_col_offset

    spans = []
    for n, t, op in _texts(tree, errors):
        s, e = span(n)
        new = str(at[t]).encode()
        if op is not None:
            os_, oe = span(op)
            new += b", " + b[os_:oe]
        spans.append((s, e, new))
    for s, e, new in sorted(spans, reverse=True):  # from the end: earlier offsets stay valid
        b = b[:s] + new + b[e:]
    return b.decode()
