# Log texts out of a board's RAM: the build step between lib/ and mpy-cross for boards that load .mpy files.
# MIT licence. Usage: logtext.py SRC_DIR OUT_DIR (writes each rewritten .py and the text file; for a look).
"""A module loaded from a .mpy file holds every string constant in RAM for as long as it is imported: on a
board running stock firmware, the literal texts of the agent's log calls were 2.2 KB of its resident heap
(32-bit device model, tools/bench/modram.py), all waiting for a line that is rarely printed. So the build
moves them to flash, as dictionary logging does on other small targets: in each `log.error|warn|info|debug(
where, "text", ...)` of lib/ the literal text becomes its byte offset in one UTF-8 file of one text a line,
micromesos/logtext.txt beside the modules, and micromesos.log reads that line back when it prints one. The
sources stay as they are (the host runs them, and a frozen firmware keeps its strings in flash already).

Only a text that is one literal (implicit concatenation included), one line and at most TEXT_MAX bytes long
moves; the rest (a text built at run time, a line break in it) stays a literal. Offsets change whenever a text is added or edited,
so every module is compiled again with the file that goes with them (tests/mpy.py compile_tree)."""
import ast
import os
import sys

TEXT_FILE = "logtext.txt"  # in micromesos/, beside log.mpy (micromesos.log reads it from there)
TEXT_MAX = 160  # bytes of UTF-8: micromesos.log reads this much at an offset (its _TEXT_MAX); longer texts stay
_LEVELS = ("error", "warn", "info", "debug")


def _texts(tree):
    """The literal texts of the log calls in a parsed module: [(Constant node, text)]."""
    out = []
    for n in ast.walk(tree):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in _LEVELS
                and isinstance(n.func.value, ast.Name) and n.func.value.id == "log" and len(n.args) >= 2):
            c = n.args[1]
            if isinstance(c, ast.Constant) and isinstance(c.value, str) and "\n" not in c.value \
                    and "\r" not in c.value and len(c.value.encode()) <= TEXT_MAX:
                out.append((c, c.value))
    return out


def catalogue(sources):
    """The text file for these module sources (str each, any order): (its bytes, {text: byte offset}). Texts in
    the order of the sorted texts, so the file does not depend on the order the modules are read in."""
    texts = set()
    for src in sources:
        for _c, t in _texts(ast.parse(src)):
            texts.add(t)
    data = bytearray()
    at = {}
    for t in sorted(texts):
        at[t] = len(data)
        data += t.encode() + b"\n"
    return bytes(data), at


def rewrite(src, at):
    """`src` with each log call's literal text replaced by its offset in `at` (catalogue()'s). KeyError for a
    text the catalogue lacks."""
    tree = ast.parse(src)
    b = src.encode()
    line0 = [0]  # byte offset of each line's start (the parser's col_offset counts UTF-8 bytes)
    for ln in b.splitlines(keepends=True):
        line0.append(line0[-1] + len(ln))
    spans = []
    for c, t in _texts(tree):
        spans.append((line0[c.lineno - 1] + c.col_offset, line0[c.end_lineno - 1] + c.end_col_offset, at[t]))
    for s, e, off in sorted(spans, reverse=True):  # from the end: earlier offsets stay valid
        b = b[:s] + str(off).encode() + b[e:]
    return b.decode()


def main(argv):
    src_dir, out_dir = argv
    files = []
    for base, _dirs, names in os.walk(src_dir):
        files += [os.path.join(base, f) for f in names if f.endswith(".py")]
    sources = {}
    for f in files:
        with open(f, encoding="utf-8") as fh:
            sources[f] = fh.read()
    data, at = catalogue(sources.values())
    for f, src in sources.items():
        out = os.path.join(out_dir, os.path.relpath(f, src_dir))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(rewrite(src, at))
    os.makedirs(os.path.join(out_dir, "micromesos"), exist_ok=True)
    with open(os.path.join(out_dir, "micromesos", TEXT_FILE), "wb") as fh:
        fh.write(data)
    print("logtext: %d texts, %d bytes, from %d files" % (len(at), len(data), len(files)))


if __name__ == "__main__":
    main(sys.argv[1:])
