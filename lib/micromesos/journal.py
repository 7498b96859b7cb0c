# The status-update journal's rarely run parts: replaying it at boot, rewriting it with only the live records.
# MIT licence. updates imports this for one call and drops it after (updates._rare): its code is RAM on a board
# that loads .mpy files, and it runs at boot and once every few KB of journal.
#
# The journal (PROTOCOL.md §2.7: an update is on flash before it is sent; an ack is on flash before the next
# write) is one JSON list per line; updates appends the first two kinds, one append per burst:
#   [0, fid, tid, state, source, timestamp, uuid hex, executor_id, reason, message, data hex]  an update
#   [1, uuid hex]                                                    the stream whose head it is advanced
#   [2, fid, tid, latest]                         a stream with nothing pending (rewrite() writes these)
# Replaying it rebuilds the streams exactly. rewrite() replaces it (temp + rename) with only the live records
# once it passes max(4 KB, twice its size after the last rewrite): appends stay O(1) whatever the number of
# tasks, rewrites are amortised to a constant per record.
import json
import time

from micropython import const

from . import log
from .updates import JOURNAL, Stream, is_terminal, update_record

_UPDATE = const(0)  # record kinds, as updates writes them
_ACK = const(1)
_STREAM = const(2)
# The longest record recovery reads: a 1 KB message of control characters (\uXXXX: 6 KB), 1 KB of data
# (hex: 2 KB) and ids. Longer is garbage and is skipped.
_MAX_LINE = const(10240)
# Lines are read in pieces of this size: MicroPython's readline(n) allocates n bytes before reading, and a
# 10 KB block per record is more than a node's heap may have in one piece at boot.
_CHUNK = const(512)


def rewrite(u):
    """Replace the journal of StatusUpdates u with its live records (or delete it when there are none).
    -> bytes written. Streamed: the file is never held in RAM whole."""
    n = u.store.replace(JOURNAL, _live(u)) if u.streams else 0
    if not n:
        u.store.delete(JOURNAL)
    return n


def _live(u):
    for s in u.streams.values():
        if s.pending:
            for p in s.pending:
                yield update_record(s, p)
        else:
            yield [_STREAM, s.fid, s.tid, s.latest]


def recover(u):
    """Rebuild u's streams from the journal (a torn last record, from a power cut during an append, or any
    unreadable line is skipped and logged); their heads are due now. -> how many unacknowledged updates."""
    bad = 0
    for r in records(u.store, JOURNAL, _MAX_LINE):
        try:
            _replay(u, r)  # None (an unparsable line) fails too
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            bad += 1
    if bad:
        log.error("updates", "journal: %d unreadable record(s) skipped (a torn write or corruption)", bad)
    n = 0
    t = time.ticks_ms()
    for s in u.streams.values():
        if s.pending:
            s.due = t
            s.backoff = u.retry_min
            n += len(s.pending)
    return n


def _replay(u, r):
    k = r[0]
    if k == _UPDATE:
        p = _update(r)
        s = _stream(u, r[1], r[2])
        s.pending.append(p)
        s.latest = p["state"]
        s.terminal = is_terminal(s.latest)
    elif k == _ACK:
        uuid = bytes.fromhex(r[1])
        for s in u.streams.values():
            if s.pending and s.pending[0]["uuid"] == uuid:
                u._advance(s)
                return
    elif k == _STREAM:
        if not isinstance(r[3], int):
            raise TypeError("state")
        s = _stream(u, r[1], r[2])
        s.latest = r[3]
        s.terminal = is_terminal(s.latest)
    elif isinstance(k, list):
        for fid, tid, latest, terminal, pending in r:  # the whole-file checkpoint of earlier versions
            s = _stream(u, fid, tid)
            s.latest, s.terminal = latest, terminal
            s.pending = [_from_json(p) for p in pending]
    else:
        raise ValueError("record kind")


def _stream(u, fid, tid):
    if not (isinstance(fid, str) and isinstance(tid, str)):
        raise TypeError("ids")
    s = u.streams.get((fid, tid))
    if s is None:
        s = u.streams[(fid, tid)] = Stream(fid, tid)
    return s


def _update(r):
    _, fid, tid, state, source, ts, uuid, eid, reason, message, data = r
    if not (isinstance(state, int) and isinstance(source, int) and isinstance(ts, (int, float))):
        raise TypeError("update fields")
    p = {"task_id": tid, "state": state, "source": source, "timestamp": ts, "uuid": bytes.fromhex(uuid)}
    if len(p["uuid"]) != 16:
        raise ValueError("uuid")
    if eid is not None:
        p["executor_id"] = str(eid)
    if reason is not None:
        p["reason"] = int(reason)
    if message is not None:
        p["message"] = str(message)
    if data is not None:
        p["data"] = bytes.fromhex(data)
    return p


def _from_json(p):
    p["uuid"] = bytes.fromhex(p["uuid"])
    if "data" in p:
        p["data"] = bytes.fromhex(p["data"])
    return p


def _line(f, limit):
    """The next line (bytes, its newline included unless the file ends first), b"" at the end, or None for
    a line longer than limit (read to its end and dropped)."""
    line = f.readline(_CHUNK)
    if len(line) < _CHUNK or line[-1] == 10:
        return line
    parts = [line]
    n = len(line)
    while True:
        more = f.readline(_CHUNK)
        n += len(more)
        if n > limit:  # longer than any record: skip to its end
            while len(more) == _CHUNK and more[-1] != 10:
                more = f.readline(_CHUNK)
            return None
        parts.append(more)
        if len(more) < _CHUNK or more[-1] == 10:
            return b"".join(parts)


def records(store, name, limit):
    """Each line of the store's file `name` parsed as JSON, or None for a line that isn't (a torn last
    append, corruption, a line longer than `limit` bytes). Nothing if there is no file."""
    f = store.reader(name)
    if f is None:
        return
    with f:
        while True:
            try:
                line = _line(f, limit)
            except OSError as e:
                log.error("store", "%s unreadable (%s); keeping what was read", name, e)
                return
            if line is None:
                yield None
                continue
            if not line:
                return
            try:
                yield json.loads(line)
            except ValueError:
                yield None
