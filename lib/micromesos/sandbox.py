# /files/browse, /files/read, /files/download: each task's stdout/stderr ring buffer served as its sandbox.
# MIT licence. PROTOCOL.md §5; semantics of src/files/files.cpp (offset -1 = the length, 400/404 as there).
from .jsonw import json_body
from .query import arg, bad

# The virtual tree (the executor's `directory` in /state is where the web UI starts browsing):
#   /frameworks/<fid>/executors/<eid>/{stdout,stderr}                 a command task (eid = its task id)
#   /frameworks/<fid>/executors/<eid>/tasks/<tid>/{stdout,stderr}     a task of a custom or default executor
# The web UI's task sandbox for a DEFAULT executor is directory + "/tasks/" + task id (controllers.js).
_FILES = ("stdout", "stderr")
_DIR_MODE = "drwxr-xr-x"
_FILE_MODE = "-rw-r--r--"


def _boxes(ep):
    """(fid, executor id, tid, command task?, (stdout, stderr) rings, mtime) of every task whose logs
    are still here: live ones (a ring is None until first written), then the last finished ones."""
    out = []
    t = ep.agent.tasks
    live = t.live if t is not None else {}
    for (fid, tid), c in live.items():
        st = ep.statuses.get((fid, tid))
        out.append((fid, c.executor_id, tid, c._eid is None, (c._out, c._err), _mtime(st)))
    for r in ep.completed:
        if r[7] is not None and (r[0], r[2]) not in live:
            out.append((r[0], r[1], r[2], r[1] == r[2], r[7], _mtime(r[5])))
    return out


def _mtime(statuses):
    # Rings keep no write times: a file's mtime is the time of its task's latest status update.
    return int(statuses[-1][1]) if statuses else 0


def _size(ring):
    return ring.total if ring is not None else 0


def _files(box):
    return [(n, False, _size(box[4][i]), box[5]) for i, n in enumerate(_FILES)]


def _dirs(boxes, k):
    # One directory per distinct box[k] (framework, executor or task id), with its newest mtime.
    out = []
    for b in boxes:
        for i in range(len(out)):
            if out[i][0] == b[k]:
                if b[5] > out[i][3]:
                    out[i] = (b[k], True, 0, b[5])
                break
        else:
            out.append((b[k], True, 0, b[5]))
    return out


def resolve(ep, path):
    """-> ("d", [(name, is dir, size, mtime)]) for a directory, ("f", ring or None, mtime) for a log
    file, or None if there is no such path."""
    parts = [p for p in path.split("/") if p]
    n = len(parts)
    boxes = _boxes(ep)
    if n == 0:
        return "d", [("frameworks", True, 0, max([b[5] for b in boxes] or [0]))]
    if parts[0] != "frameworks":
        return None
    if n == 1:
        return "d", _dirs(boxes, 0)
    boxes = [b for b in boxes if b[0] == parts[1]]
    if not boxes:
        return None
    if n == 2:
        return "d", [("executors", True, 0, max(b[5] for b in boxes))]
    if parts[2] != "executors":
        return None
    if n == 3:
        return "d", _dirs(boxes, 1)
    boxes = [b for b in boxes if b[1] == parts[3]]
    if not boxes:
        return None
    rest = parts[4:]
    if boxes[0][3]:  # a command task: its executor's directory holds its files
        return _file_or_dir(boxes[0], rest)
    if not rest:
        return "d", [("tasks", True, 0, max(b[5] for b in boxes))]
    if rest[0] != "tasks":
        return None
    if len(rest) == 1:
        return "d", _dirs(boxes, 2)
    boxes = [b for b in boxes if b[2] == rest[1]]
    return _file_or_dir(boxes[0], rest[2:]) if boxes else None


def _file_or_dir(box, rest):
    if not rest:
        return "d", _files(box)
    if len(rest) == 1 and rest[0] in _FILES:
        return "f", box[4][_FILES.index(rest[0])], box[5]
    return None


def _path(req):
    p = arg(req.query, "path")
    return p if p else None


_NO_PATH = b"Expecting 'path=value' in query.\n"


def _lookup(ep, req):
    """(path, what resolve() found or None), or (None, an error response) for a bad query."""
    try:
        path = _path(req)
    except ValueError:
        return None, bad(b"Bad percent-encoding in query.\n")
    if path is None:
        return None, bad(_NO_PATH)
    return path, resolve(ep, path)


def browse(ep, req):
    path, r = _lookup(ep, req)
    if r is None or isinstance(r[0], int):
        return r or (404, None, b"")
    if r[0] == "f":  # a file: its own entry
        entries = [(path.rstrip("/").rpartition("/")[2], False, _size(r[1]), r[2])]
        base = path.rstrip("/").rpartition("/")[0]
    else:
        entries = r[1]
        base = path.rstrip("/")

    def produce(out):
        c = 91
        for name, is_dir, size, mtime in entries:
            out.byte(c)
            c = 44
            out.t(b'{"path":%,"nlink":%,"size":%,"mtime":%,"mode":%,"uid":"root","gid":"root"}', base + "/" + name,
                  2 if is_dir else 1, size, mtime, _DIR_MODE if is_dir else _FILE_MODE)
        if c == 91:
            out.byte(91)
        out.byte(93)
        yield
    return json_body(req.query, produce)


def _int(query, name):
    v = arg(query, name)
    return -1 if v is None or v == "" else int(v)


def window(ring, offset, length):
    """(start, n) of the bytes to return for a read at `offset` of at most `length` bytes (-1: to the
    end). Offsets are absolute positions since the task started, so a tail with increasing offsets
    works after the ring wrapped; a read starting before the oldest byte still kept starts at that
    byte instead, and the `offset` in the answer says so (what is gone is not made up)."""
    size = _size(ring)
    if offset < 0:
        offset = size
    if offset >= size:
        return size, 0
    first = size - min(size, ring.size)
    start = offset if offset > first else first
    n = size - start
    if 0 <= length < n:
        n = length
    return start, n


def _segments(ring, start, n):
    # The ring indices of absolute bytes start .. start+n: one or two runs of ring.buf.
    if n <= 0:
        return ()
    size = ring.size
    if ring.full:
        i = (ring.pos + start - (ring.total - size)) % size
    else:
        i = start
    k = min(n, size - i)
    return ((i, i + k), (0, n - k)) if k < n else ((i, i + k),)


def read(ep, req):
    q = req.query
    try:
        path = _path(req)
        offset = _int(q, "offset")
        length = _int(q, "length")
    except ValueError:
        return bad(b"Failed to parse offset, length or path.\n")
    if path is None:
        return bad(_NO_PATH)
    if length < -1:
        return bad(b"Negative length provided: %d.\n" % length)
    if offset < -1:
        return bad(b"Negative offset provided: %d.\n" % offset)
    r = resolve(ep, path)
    if r is None:
        return 404, None, b""
    if r[0] == "d":
        return bad(b"Cannot read a directory.\n")
    ring = r[1]
    start, n = window(ring, offset, length)

    def produce(out):
        # Written in one go: the ring can't change before the last byte is in the writer (no await).
        out.raw(b'{"data":"')
        for a, b in _segments(ring, start, n):
            out.esc(ring.buf, a, b)
        out.t(b'","offset":%}', start)
        yield
    return json_body(q, produce)


def download(ep, req):
    path, r = _lookup(ep, req)
    if r is None or isinstance(r[0], int):
        return r or (404, None, b"")
    if r[0] == "d":
        return bad(b"Cannot download a directory.\n")
    ring = r[1]
    start, n = window(ring, 0, -1)

    def produce(out):
        if ring is not None:
            mv = memoryview(ring.buf)
            for a, b in _segments(ring, start, n):
                out.raw(mv[a:b])
        yield
    return 200, "application/octet-stream", produce
