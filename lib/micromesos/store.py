# Checkpoint files on the board filesystem, replaced atomically (write temp, rename).
# MIT licence. A missing or corrupt checkpoint is logged and reads as None: the agent starts fresh.
import json
import os

from . import log


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def makedirs(path):
    """mkdir -p (MicroPython's os has no makedirs)."""
    cur = ""
    for part in path.split("/"):
        if not part:
            cur = "/" if not cur else cur
            continue
        cur = part if not cur else (cur + part if cur.endswith("/") else cur + "/" + part)
        if not _exists(cur):
            os.mkdir(cur)


class Store:
    """Named JSON checkpoints in one directory."""

    def __init__(self, directory):
        self.dir = directory
        makedirs(directory)

    def _path(self, name):
        return self.dir + "/" + name + ".json"

    def save(self, name, obj):
        path = self._path(name)
        tmp = path + ".tmp"
        data = json.dumps(obj)  # one write: json.dump() writes token by token to the file
        with open(tmp, "w") as f:
            f.write(data)
        try:
            os.rename(tmp, path)
        except OSError:
            # FAT cannot rename over an existing file; littlefs can. load() recovers from a
            # power cut between these two steps by reading the .tmp file.
            os.remove(path)
            os.rename(tmp, path)

    def load(self, name):
        path = self._path(name)
        for p in (path, path + ".tmp"):
            if not _exists(p):
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
            if _exists(p):
                os.remove(p)
