# MicroPython fuzzer for the HTTP parser: mutated captured requests give requests or ProtocolError only.
# MIT licence. Usage: micropython fuzz_http.py N SEED [CAPTURE_JSONL]  (exit 1 on a finding)
import gc
import json
import os
import random
import sys
import time
from binascii import a2b_base64, hexlify

from httpfeed import feed  # beside this script: its directory is sys.path[0]
from micromesos import http, names
from micromesos.errors import ProtocolError

# Heap tolerance after the run, as in fuzz_codec.py: the GC is conservative, so a stale word on
# the C stack can keep one small block alive; a real leak grows with N instead.
HEAP_TOLERANCE = 1024
PROGRESS = 20000  # inputs between progress lines
_HEX_PIECE = 48  # input bytes per piece of a reported input: the report needs no big block


def capture_path():
    if len(sys.argv) > 3:
        return sys.argv[3]
    g = os.getenv("MESOS_GOLDEN")
    if not g:  # <root>/tests/fuzz/fuzz_http.py -> <root>/../shared/golden, as tests/mpy.py
        here = sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else "."
        g = here + "/../../../shared/golden"
    return g + "/captured/master-agent.jsonl"


def requests(path):
    # Every request in the capture, both directions: real libprocess framing to start from.
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r["kind"] == "request":
                yield a2b_base64(r["raw_b64"])


_TE = b"Transfer-Encoding: chunked\r\n\r\n"


def reframe(b):
    # The single chunk libprocess sends, re-framed with Content-Length (as a plain HTTP client
    # sends, §1.4): still exactly one valid request.
    b = bytes(b)  # (a seed is a memoryview, which has no find())
    i = b.find(_TE)
    if i < 0:
        return b
    j = i + len(_TE)
    k = b.find(b"\r\n", j)
    size = int(bytes(b[j:k]), 16)
    return cat((b[:i], ("Content-Length: %d\r\n\r\n" % size).encode(), b[k + 2:k + 2 + size]))


class Seeds:
    # All seeds in one blob plus an offset table, both allocated before the second pass: long-
    # lived objects created between the JSON parser's garbage would pin the 128 KB heap into
    # pieces too small for a 2 KB input.
    def __init__(self, path):
        count = total = 0
        for r in requests(path):
            count += 1
            total += len(r)
        gc.collect()
        self.blob = bytearray(total)
        self.offs = [0] * (count + 1)
        at = 0
        for i, r in enumerate(requests(path)):
            self.blob[at:at + len(r)] = r
            at += len(r)
            self.offs[i + 1] = at

    def __len__(self):
        return len(self.offs) - 1

    def __getitem__(self, i):
        return memoryview(self.blob)[self.offs[i]:self.offs[i + 1]]


def rnd(n):
    return random.getrandbits(16) % n if n > 0 else 0


_TOKENS = (b"\r\n", b"\n", b"\r", b":", b" ", b"0", b"ffffffff", b"99999999999", b"-1", b";x",
           b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b"Connection: close\r\n",
           b"\r\n\r\n", b"0\r\n\r\n", b"HTTP/1.0", b"%", b"\x00", b"\xff")


def cat(parts):
    out = bytearray()
    for p in parts:
        out.extend(p)  # (MicroPython's join takes no memoryviews)
    return out


def mutate(reqs):
    # (bytes, requests they must give): benign mutations keep the input valid (-1: unknown).
    b = bytearray(reqs[rnd(len(reqs))])
    n = len(b)
    m = rnd(12)
    if m == 0:  # byte flips
        for _ in range(1 + rnd(6)):
            i = rnd(n)
            b[i] ^= 1 << rnd(8)
    elif m == 1:  # insert a token that matters to HTTP framing
        i = rnd(n + 1)
        b[i:i] = _TOKENS[rnd(len(_TOKENS))]
    elif m == 2:  # delete a range
        i = rnd(n)
        b[i:i + 1 + rnd(16)] = b""
    elif m == 3:  # truncation: must just be "incomplete"
        b = b[:rnd(n + 1)]
    elif m == 4:  # pipeline several requests, one of them mutated
        k = 2 + rnd(3)
        parts = [reqs[rnd(len(reqs))] for _ in range(k)]
        j = rnd(k)
        p = bytearray(parts[j])
        p[rnd(len(p))] = rnd(256)
        parts[j] = p
        b = cat(parts)
    elif m == 5:  # random bytes
        b = bytearray(random.getrandbits(8) for _ in range(rnd(300)))
    elif m == 6:  # rewrite the chunk size / a digit run with something big or odd
        i = b.find(b"\r\n\r\n")
        if i >= 0:
            j = b.find(b"\r\n", i + 4)
            if j > 0:
                b[i + 4:j] = _TOKENS[5 + rnd(5)]
    elif m == 7:  # duplicate a header line
        i = b.find(b"\r\n") + 2
        j = b.find(b"\r\n", i) + 2
        if 2 <= i < j:
            b[i:i] = bytes(b[i:j]) * (1 + rnd(40))
    elif m == 8:  # benign: header names in random case
        i = b.find(b"\r\n") + 2
        end = b.find(b"\r\n\r\n")
        while i < end:
            colon = b.find(b":", i)
            for j in range(i, colon):
                if rnd(2) and (65 <= b[j] <= 90 or 97 <= b[j] <= 122):
                    b[j] ^= 32
            i = b.find(b"\r\n", colon) + 2
        return b, 1
    elif m == 9:  # benign: several valid requests back to back, in either framing
        k = 2 + rnd(3)
        return cat(reframe(x) if rnd(2) else x for x in (reqs[rnd(len(reqs))] for _ in range(k))), k
    elif m == 10:  # benign: Content-Length framing
        return reframe(b), 1
    else:  # CRLF -> LF
        i = b.find(b"\r\n", rnd(n))
        if i >= 0:
            b[i:i + 1] = b""
    return b, -1


def check(p):
    # Whatever the parser calls a request must be consistent with its framing.
    # (An empty path, "?x", is legal here: the listener answers 400 to what lacks a '/'.)
    if not (0 <= p.target0 <= p.path1 <= p.target1 < p.end <= p.fill and p.target0 < p.target1 and
            p.target1 <= p.body0 <= p.body1 <= p.end and p.body1 - p.body0 <= p.max_body):
        return "offsets out of order"
    if p.dropped:  # discard mode: only a message, its body gone, its size over the limit
        if p.snd0 < 0 or p.body0 != p.body1 or p.body0 > p.end:
            return "dropped body but not an empty message"
        if p.dropped <= p.max_body and p.dropped <= len(p.buf) - p.body0:
            return "dropped a body that fits"
        if not p.chunked and (p.dropped != p.clen or p.end != p.body1):
            return "dropped Content-Length body has the wrong size"
    if p.chunked:
        if p.buf[p.end - 2] != 13 or p.buf[p.end - 1] != 10:
            return "chunked request does not end in CRLF"
    elif p.dropped:
        pass
    elif p.clen >= 0:
        if p.body1 - p.body0 != p.clen or p.end != p.body1:
            return "Content-Length body has the wrong size"
    elif not p.body0 == p.body1 == p.end:
        return "body without framing"
    if p.buf[p.body0 - 1] != 10 and not p.chunked:
        return "body does not follow the head"
    if p.from0 >= 0 and not p.target1 < p.from0 <= p.from1 < p.body0:
        return "Libprocess-From outside the head"
    slash = p.buf.find(b"/", p.target0 + 1, p.path1)  # the message name, as the listener reads it
    names.lookup(p.buf, slash + 1 if slash >= 0 else p.path1, p.path1)
    return None


def run(p, data, pieces):
    # Feed data (whole, or in random pieces), parse everything: the requests seen, as values,
    # then how it ended: "error", "incomplete" or "ok".
    p.clear()
    seen = []
    i = 0
    try:
        while i < len(data):
            step = 1 + rnd(len(data)) if pieces else len(data)
            i += feed(p, data, i, min(len(data), i + step))
            while p.parse():
                why = check(p)
                if why:
                    return seen, why
                seen.append((p.method, p.target0, p.target1, p.path1, p.from0, p.from1, p.end,
                             p.keep_alive, bytes(p.buf[p.body0:p.body1]), p.dropped))
                if len(seen) > len(data):
                    return seen, "parse loops without consuming input"
                p.done()
            if p.fill == len(p.buf):
                return seen, "full buffer without ProtocolError"
    except ProtocolError:
        return seen, "error"
    return seen, "incomplete" if p.fill else "ok"


def finding(why, data):
    # Reported from whatever heap is left: the input (up to a few KB) goes out in small pieces.
    gc.collect()
    print("FINDING", why)
    v = memoryview(data)
    sys.stdout.write("input ")
    for i in range(0, len(v), _HEX_PIECE):
        sys.stdout.write(hexlify(v[i:i + _HEX_PIECE]).decode())
    print()
    sys.exit(1)


def main():
    n, seed = int(sys.argv[1]), int(sys.argv[2])
    random.seed(seed)
    reqs = Seeds(capture_path())
    gc.collect()
    whole, pieces = http.HTTPParser(), http.HTTPParser()
    small = http.HTTPParser(bytearray(512))  # tight limits too: every bound gets hit
    small.max_line = 96
    small.max_headers = 6
    small.max_body = 200
    for i in range(len(reqs)):  # every seed is a valid request, however framed or split
        for r in (reqs[i], reframe(reqs[i])):
            for mode in (False, True):
                got, how = run(whole, r, mode)
                if how != "ok" or len(got) != 1:
                    finding("seed not parsed: " + how, r)
    parsed = errors = incomplete = 0
    max_us = 0
    gc.collect()
    heap0 = gc.mem_alloc()
    t0 = time.ticks_ms()
    for k in range(n):
        data, expect = mutate(reqs)
        s = time.ticks_us()
        try:
            a, how = run(whole, data, False)
            b, how_b = run(pieces, data, True)  # the same bytes in random pieces: same result
            c, how_c = run(small, data, bool(k & 1))
        except Exception as e:
            finding("%s %s" % (type(e).__name__, e), data)
        for h in (how, how_b, how_c):
            if h not in ("ok", "error", "incomplete"):
                finding(h, data)
        if (a, how) != (b, how_b):
            finding("result depends on how the bytes were split", data)
        if expect >= 0 and (how != "ok" or len(a) != expect):
            finding("valid input not parsed: %s, %d of %d requests" % (how, len(a), expect), data)
        parsed += len(a)
        errors += how == "error"
        incomplete += how == "incomplete"
        us = time.ticks_diff(time.ticks_us(), s)
        if us > max_us:
            max_us = us
        if (k + 1) % PROGRESS == 0 and k + 1 < n:
            print("fuzz_http: progress %d/%d inputs, requests=%d protocol_errors=%d %d s"
                  % (k + 1, n, parsed, errors, time.ticks_diff(time.ticks_ms(), t0) // 1000))
    ms = time.ticks_diff(time.ticks_ms(), t0)
    data = a = b = c = None
    for q in (whole, pieces, small):
        q.clear()
    gc.collect()
    heap1 = gc.mem_alloc()
    leak = heap1 - heap0
    print("fuzz_http: inputs=%d seed=%d seeds=%d requests=%d protocol_errors=%d incomplete=%d other=0 "
          "heap_before=%d heap_after=%d heap_delta=%d tolerance=%d max_input_us=%d time_ms=%d"
          % (n, seed, len(reqs), parsed, errors, incomplete, heap0, heap1, leak, HEAP_TOLERANCE,
             max_us, ms))
    if leak > HEAP_TOLERANCE:
        print("FINDING heap grew by %d bytes" % leak)
        sys.exit(1)


main()
