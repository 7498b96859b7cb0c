# Checkpoint files on the board filesystem, replaced atomically (write temp, rename), or appended to.
# MIT licence. A missing or corrupt checkpoint is logged and reads as None: the agent starts fresh.
import io
import json
import os

from micropython import const

from . import log

_CHUNK = const(256)
_SMALL = const(48)  # the buffer when not even _CHUNK is free in one piece (a small board's heap mid-launch)


def _buffered(f):
    # json.dump() writes token by token; to an unbuffered file that is one syscall (or flash write) per
    # token. This gathers them in a small preallocated buffer. Only the rare paths use it (a JSON string too
    # large for one block, a journal rewrite): the class is made per use, none resident (as tasks._tail).
    class Buffered(io.IOBase):
        def __init__(self):
            try:
                self.buf = bytearray(_CHUNK)
            except MemoryError:
                self.buf = bytearray(_SMALL)
            self.mv = memoryview(self.buf)
            self.n = 0

        def write(self, b):
            n = len(b)
            c = len(self.buf)
            if self.n + n > c:
                self.flush()
                if n > c:
                    return f.write(b)
            self.buf[self.n : self.n + n] = b
            self.n += n
            return n

        def flush(self):
            if self.n:
                f.write(self.mv[: self.n])
                self.n = 0

    return Buffered()


def _size(path):
    # -1: no such file (one helper for both: a globals slot less)
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _dump_line(r, w):
    # One JSON line, token by token into the buffered writer w: no block the size of the line is needed.
    json.dump(r, w, separators=(",", ":"))  # type: ignore[call-overload]  # the stubs lack it; no spaces: fewer bytes
    w.write(b"\n")


def makedirs(path):
    """mkdir -p (MicroPython's os has no makedirs)."""
    cur = ""
    for part in path.split("/"):
        if not part:
            cur = "/" if not cur else cur
            continue
        cur = part if not cur else (cur + part if cur.endswith("/") else cur + "/" + part)
        if _size(cur) < 0:
            os.mkdir(cur)


def _commit(tmp, path):
    try:
        os.rename(tmp, path)
    except OSError:
        # FAT cannot rename over an existing file; littlefs can. load() and reader() recover from a
        # power cut between these two steps by reading the .tmp file.
        os.remove(path)
        os.rename(tmp, path)


class Store:
    """Named JSON checkpoints (and the updates journal: JSON lines) in one directory."""

    def __init__(self, directory):
        self.dir = directory
        makedirs(directory)

    def _path(self, name):
        return self.dir + "/" + name + ".json"

    def save(self, name, obj):
        path = self._path(name)
        tmp = path + ".tmp"
        try:
            data = json.dumps(obj)  # fastest: one string, one write
        except MemoryError:
            data = None  # no contiguous block that large: stream it through a small buffer
        with open(tmp, "w") as f:
            if data is None:
                w = _buffered(f)
                json.dump(obj, w)
                w.flush()
            else:
                f.write(data)
        _commit(tmp, path)

    def replace(self, name, records):
        """Atomically replace the file with each JSON value of `records` (an iterable) as one line, as append()
        writes them, streamed through a small buffer. -> bytes written."""
        path = self._path(name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            w = _buffered(f)
            for r in records:
                _dump_line(r, w)
            w.flush()
        n = _size(tmp)
        _commit(tmp, path)
        return n

    def append(self, name, records):
        """Add each JSON value of the list `records` as one line at the end of the file: one open, one write
        when the lines fit in one block, else each dumped into the file as it is made (no block the size of a
        line is needed on a fragmented heap: a small board's launch). -> bytes written. A power cut can
        leave a torn last line; whoever reads the file back must expect it."""
        path = self._path(name)
        data = None
        try:  # no spaces (separators): fewer bytes on flash
            lines = []
            for r in records:
                lines.append(json.dumps(r, separators=(",", ":")))
            lines.append("")
            data = "\n".join(lines)
        except MemoryError:
            pass
        with open(path, "a") as f:
            if data is not None:
                return f.write(data)
            n = max(_size(path), 0)
            w = _buffered(f)
            for r in records:
                _dump_line(r, w)
            w.flush()
        return _size(path) - n

    def reader(self, name):
        """The file for reading (binary), from its .tmp if a replace was cut short; None if neither exists."""
        path = self._path(name)
        for p in (path, path + ".tmp"):
            if _size(p) >= 0:
                try:
                    return open(p, "rb")
                except OSError as e:
                    log.error("store", "cannot read %s (%s); starting fresh", p, e)
                    return None
        return None

    def load(self, name):
        path = self._path(name)
        for p in (path, path + ".tmp"):
            if _size(p) < 0:
                continue
            try:
                with open(p) as f:
                    return json.load(f)
            except (OSError, ValueError) as e:
                log.error("store", "checkpoint %s is corrupt (%s); starting fresh", p, e)
                return None
        return None

    def delete(self, name):
        path = self._path(name)
        for p in (path, path + ".tmp"):
            if _size(p) >= 0:
                os.remove(p)
