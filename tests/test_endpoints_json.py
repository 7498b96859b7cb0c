# The streamed JSON writer (micromesos.jsonw), query helpers and ring windows of the HTTP endpoints, run in the
# unix port; what it writes is parsed by CPython's http.client and json. MIT licence. End to end: test_endpoints.py.
import http.client
import io
import json
import random

WRITER = r"""
import sys, json, gc
from micromesos import jsonw, webstate

class Sink:  # the stream: keeps what is written, as asyncio.Stream would send it
    def __init__(self):
        self.parts = []
    def write(self, b):
        self.parts.append(bytes(b))

def body(out):
    # Templates (t): keys, brackets and commas as constant bytes, values in place of the % signs.
    out.t(b'{"s":%,"esc":%,"uni":%,"latin1":%,"ints":%,"floats":%,"t":%,"f":%,"n":%,%:%,"res":', "plain",
          'quote " backslash \\ slash / ' + "".join(chr(i) for i in range(32)) + "\x7f", "h\u00e9llo \u2603 \U0001d11e",
          bytes(range(256)), (0, 7, -1, 2**31, -2**40, 123456789012),
          [0.1, -2.5e-07, 1e22, 1795612301.368549, 3.0, float("nan"), float("inf"), -float("inf")],
          True, False, None, "key \"quoted\"", 1)
    webstate.res_object(out, [("cpus", 0.5), ("ports", [(31000, 31009), (32000, 32000)]),
                              ("sensors", ("temp0", "hall0")), ("mem", 64.0)])
    deep = ["bottom"]
    for i in range(9):
        deep = [deep]
    out.t(b',"deep":%,"empty_obj":{},"empty_arr":%,"attrs":', deep, [])
    webstate.res_object(out, [], ())  # no basics: an empty object
    out.t(b',"many":[{"id":%,"name":%,"n":%,"queued":[]},{}]}', "t-1", 'a "b"', 3)

cases = json.loads(sys.argv[1])
res = {}
for name, size, chunked_ok, head_only in cases:
    w = jsonw.Writer(size)
    s = Sink()
    w.begin(s, 200, "application/json", True, head_only, chunked_ok)
    body(w)
    keep = w.finish()
    res[name] = [b"".join(s.parts).hex(), keep, len(s.parts)]
print(json.dumps(res))
"""


def parse(raw, method="GET"):
    """CPython's own HTTP client parses what the board wrote."""
    class Sock:
        def makefile(self, mode):
            return io.BytesIO(raw)
    r = http.client.HTTPResponse(Sock(), method=method)
    r.begin()
    return r, r.read()


def expected():
    return {
        "s": "plain",
        "esc": 'quote " backslash \\ slash / ' + "".join(chr(i) for i in range(32)) + "\x7f",
        "uni": "h\u00e9llo \u2603 \U0001d11e",
        "latin1": bytes(range(256)).decode("latin-1"),  # one JSON character per byte
        "ints": [0, 7, -1, 2 ** 31, -2 ** 40, 123456789012],
        "floats": [0.1, -2.5e-07, 1e22, 1795612301.368549, 3.0, None, None, None],
        "t": True, "f": False, "n": None, 'key "quoted"': 1,
        # Mesos' own text forms (src/common/values.cpp): ", " between items; the four basics always there.
        "res": {"cpus": 0.5, "gpus": 0, "mem": 64.0, "disk": 0, "ports": "[31000-31009, 32000-32000]",
                "sensors": "{temp0, hall0}"},
        "deep": [[[[[[[[[["bottom"]]]]]]]]]],
        "empty_obj": {}, "empty_arr": [], "attrs": {},
        "many": [{"id": "t-1", "name": 'a "b"', "n": 3, "queued": []}, {}],
    }


def test_writer_output_is_valid_http_and_json_in_every_framing(mpy_run):
    cases = [["chunked", 256, True, False], ["length", 4096, True, False], ["http10", 256, False, False],
             ["head", 256, True, True]]
    r = mpy_run(WRITER, args=[json.dumps(cases)], heapsize="256k").check()
    res = json.loads(r.out.strip().splitlines()[-1])
    want = expected()
    # A body larger than the 256-byte buffer goes out chunked: one write per chunk, the head riding with
    # the first (121 bytes of data after 128 of room for the head), the end mark with the last.
    raw, keep, writes = res["chunked"]
    resp, body = parse(bytes.fromhex(raw))
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.getheader("Content-Length") is None and keep is True
    assert json.loads(body) == want
    assert writes == 1 + -(-(len(body) - 121) // 243)
    assert bytes.fromhex(raw).endswith(b"\r\n0\r\n\r\n")
    print("256-byte buffer: %d-byte body in %d writes" % (len(body), writes))
    # The same body fitting in the buffer goes out with a Content-Length (PROTOCOL.md §5), in one write.
    raw, keep, writes = res["length"]
    resp, body2 = parse(bytes.fromhex(raw))
    assert resp.getheader("Content-Length") == str(len(body2)) and resp.getheader("Transfer-Encoding") is None
    assert body2 == body and writes == 1 and keep is True
    # HTTP/1.0 has no chunking: the body ends with the connection, and the head says so.
    raw, keep, _ = res["http10"]
    head, _, rest = bytes.fromhex(raw).partition(b"\r\n\r\n")
    assert b"Connection: close" in head and b"Content-Length" not in head and b"chunked" not in head
    assert rest == body and keep is False
    # HEAD: only the head, with the length the body would have had.
    raw, keep, writes = res["head"]
    resp, _ = parse(bytes.fromhex(raw), method="HEAD")
    assert resp.getheader("Content-Length") == str(len(body)) and writes == 1
    assert bytes.fromhex(raw).endswith(b"\r\n\r\n")


ALLOC = r"""
import gc, json, micropython
from micromesos import jsonw

class Sink:  # counts, allocates nothing
    def __init__(self):
        self.n = 0
        self.writes = 0
    def write(self, b):
        self.n += len(b)
        self.writes += 1

LOG = bytes(range(256)) * 2  # a task's stdout ring: every byte value
ID = "1b2c-S0/sleeper-0042"
NAME = "sensors"
TEXT = 'tab\t "quoted"'

def items(out, k):
    # What /metrics and /files/read write: constant templates, values ints, bools, None and bytes.
    out.byte(91)
    for i in range(k):
        if i:
            out.byte(44)
        out.t(b'{"slave/tasks_running":%,"slave/registered":%,"nothing":%,"data":%}', i, True, None, LOG)
    out.byte(93)

def run(k, locked):
    s = Sink()
    w.begin(s)
    if locked:
        micropython.heap_lock()
    try:
        items(w, k)
    finally:
        if locked:
            micropython.heap_unlock()
    return s

w = jsonw.Writer(1024)
w.begin(Sink())
items(w, 1)  # warm up
# Into the buffer, no flush: under heap_lock (MemoryError if anything allocates).
ARGS = (1, False, [12345, None], b"raw")
def small(w):
    w.val(ARGS)
    w.raw(b'"x":')
    w.esc(LOG, 0, 40)
s = Sink()
w.begin(s)
micropython.heap_lock()
try:
    small(w)
finally:
    micropython.heap_unlock()
# A str: one memoryview (its UTF-8 bytes read in place) whatever its length, and no qstr interned (iterating
# it would intern each distinct character: a runtime qstr pool growing mid-response). Fresh characters here.
STRS = (ID, TEXT, NAME, "\u00fcber ~|`^ " * 20, "\u2603\U0001F600 " * 9)
w.begin(Sink())
print("QSTR-MARK")
micropython.qstr_info()
gc.collect()
gc.disable()
a0 = gc.mem_alloc()
for x in STRS:
    w.val(x)
a1 = gc.mem_alloc()
gc.enable()
print("QSTR-MARK")
micropython.qstr_info()
print(json.dumps([len(STRS), a1 - a0]))
# With flushes: each chunk costs one memoryview (the slice handed to write()), each template call its tuple of
# values. A response also builds its head once (a few hundred bytes of str): 20 more items must cost only that.
res = []
for k in (20, 40):
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    s = run(k, False)
    w.finish()
    a1 = gc.mem_alloc()
    gc.enable()
    res.append([s.n, s.writes, a1 - a0])
print(json.dumps(res))
"""


def test_writer_allocates_one_memoryview_per_chunk_and_nothing_per_item(mpy_run):
    # Under heap_lock: values (ints, bools, None, bytes, lists of them) and bytes written into the buffer.
    r = mpy_run(ALLOC, heapsize="256k").check()
    lines = r.out.strip().splitlines()
    (n20, w20, a20), (n40, w40, a40) = json.loads(lines[-1])
    # str values: one memoryview each (32 bytes on the 64-bit port), no qstr interned (n_qstr unchanged).
    m = [i for i, x in enumerate(lines) if x == "QSTR-MARK"]
    nstr, astr = json.loads(lines[m[1] + 2])
    assert astr <= nstr * 32, astr
    assert lines[m[0] + 1].startswith("qstr pool:") and lines[m[0] + 1] == lines[m[1] + 1], lines
    print("20 items: %d bytes of JSON in %d writes, %d bytes allocated; 40 items: %d bytes, %d writes, %d "
          "bytes allocated" % (n20, w20, a20, n40, w40, a40))
    assert n20 > 20 * 512 * 2  # every byte >= 0x80 escaped as \u00XX: the body is big
    assert w20 >= n20 // 1024 and w40 >= n40 // 1024
    # A flush's memoryview slice: 32 bytes on the 64-bit unix port (4 words, one GC block); per item t()'s
    # tuple of four values (6 words: two blocks, 64 bytes), nothing per value or byte.
    assert a40 - a20 <= (w40 - w20) * 32 + 20 * 64
    assert a20 < 1024 + w20 * 32 + 20 * 64  # the head: once per response


QUERY = r"""
import json, sys
from micromesos import jsonw
out = {}
cbs = []
for cb in ("angular.callbacks._0", "jQuery360_1700000000", "$x", "alert(1)", "a;b", "x" * 65, ""):
    r = jsonw.json_body("jsonp=" + cb, None)
    cbs.append([r[0], r[1]])
out["plain_loads_query"] = "micromesos.query" in sys.modules  # /state's path: no percent-decoding code
for cb in ("angular%2Ecallbacks._0", "%24x", "a%20b", "a+b", "a%zz"):
    r = jsonw.json_body("x=1&jsonp=" + cb + "&jsonp=second", None)
    cbs.append([r[0], r[1]])
out["callbacks"] = cbs
from micromesos import query
out["unquote"] = [query.unquote(s) for s in ("plain", "%2Fframeworks%2Fa%20b+c", "caf%C3%A9", "%7e")]
bad = []
for s in ("%", "%2", "%zz", "%C3"):
    try:
        query.unquote(s)
        bad.append("accepted " + s)
    except ValueError:
        bad.append("refused")
out["bad"] = bad
q = "path=%2Fx%2Fy&offset=-1&length=&jsonp=angular.callbacks._0&path=second"
out["arg"] = [query.arg(q, "path"), query.arg(q, "offset"), query.arg(q, "length"),
              query.arg(q, "missing")]
print(json.dumps(out))
"""


def test_query_values_and_jsonp_callbacks(mpy_run):
    r = mpy_run(QUERY, heapsize="256k").check()
    out = json.loads(r.out.strip().splitlines()[-1])
    assert out["unquote"] == ["plain", "/frameworks/a b c", "caf\u00e9", "~"]
    assert out["bad"] == ["refused"] * 4  # truncated escapes and bad UTF-8 are errors, not guesses
    assert out["arg"] == ["/x/y", "-1", "", None]  # the first of repeated keys
    # Callbacks are JavaScript name paths only: anything else is a 400, never echoed into a script.
    ok, no = [200, "text/javascript"], [400, "text/plain"]
    assert out["callbacks"][:7] == [ok] * 3 + [no] * 4
    assert not out["plain_loads_query"]
    # Percent-escaped (decoded first, the first jsonp= counts): a name path after decoding or a 400.
    assert out["callbacks"][7:] == [ok, ok, no, no, no]


RING = r"""
import json, sys
from micromesos.ctx import Ring
from micromesos import sandbox
writes, queries = json.loads(sys.stdin.read())
r = Ring(64)
res = []
for w in writes:
    r.write(bytes(w))
    row = []
    for off, ln in queries:
        start, n = sandbox.window(r, off, ln)
        data = b"".join(bytes(r.buf[a:b]) for a, b in sandbox._segments(r, start, n))
        row.append([start, data.hex()])
    res.append([r.total, row])
print(json.dumps(res))
"""


def test_ring_windows_are_absolute_offsets_and_say_what_is_gone(mpy_run):
    rnd = random.Random(7)
    stream = bytes(rnd.randrange(256) for _ in range(600))
    sizes = [1, 5, 63, 64, 65, 0, 3, 130, 7, 40, 222]  # below, at and above the ring's 64 bytes
    writes, pos = [], 0
    for s in sizes:
        writes.append(list(stream[pos:pos + s]))
        pos += s
    queries = [(-1, -1), (0, -1), (0, 10), (5, 3), (100, -1), (180, 20), (250, 64), (300, 1000), (559, -1),
               (1000, 5), (30, 0)]
    r = mpy_run(RING, stdin=json.dumps([writes, queries]), heapsize="256k").check()
    res = json.loads(r.out.strip().splitlines()[-1])
    written = 0
    for s, (total, row) in zip(sizes, res):
        written += s
        assert total == written
        kept_from = max(0, written - 64)
        for (off, ln), (start, data) in zip(queries, row):
            data = bytes.fromhex(data)
            # files.cpp: offset -1 reads at the end (length only); past the end: nothing, offset = size.
            want_start = written if off < 0 or off >= written else max(off, kept_from)
            n = written - want_start if ln < 0 else min(ln, written - want_start)
            assert start == want_start, (written, off, ln)
            assert data == stream[want_start:want_start + n], (written, off, ln)
    # After 600 bytes only the last 64 are kept: a read from 0 starts at 536 and says so.
    assert res[-1][1][1][0] == 536


ROUNDTRIP = r"""
import json, sys
from micromesos import jsonw

class Sink:
    def __init__(self):
        self.parts = []
    def write(self, b):
        self.parts.append(bytes(b))

def has_dict(v):
    return isinstance(v, dict) or isinstance(v, list) and any(has_dict(x) for x in v)

def put(out, v):
    if isinstance(v, dict):  # as the views write a dynamic object: t(b",%:", key), then the value
        c = b"{%:"
        for k in v:
            out.t(c, k)
            put(out, v[k])
            c = b",%:"
        out.raw(b"{}" if c[0] == 123 else b"}")
    elif isinstance(v, list) and has_dict(v):
        out.byte(91)
        for i in range(len(v)):
            if i:
                out.byte(44)
            put(out, v[i])
        out.byte(93)
    else:
        out.val(v)  # lists of values too

w = jsonw.Writer(256)
for v in json.loads(sys.stdin.read()):
    s = Sink()
    w.begin(s)
    put(w, v)
    w.finish()
    print(b"".join(s.parts).hex())  # one response a line
"""


def random_value(rnd, depth=0):
    k = rnd.randrange(9 if depth < 9 else 6)
    if k == 0:
        return None
    if k == 1:
        return rnd.random() < 0.5
    if k == 2:
        return rnd.randrange(-2 ** 40, 2 ** 40)
    if k == 3:
        return rnd.choice([0.0, -1.5, 1e-9, 123.456, 1795612301.368549, 2.5e300, rnd.uniform(-1e6, 1e6)])
    if k in (4, 5):
        pool = "ab \"\\/\n\t\x00\x1f\x7f\u00e9\u2603\U0001f600"
        return "".join(rnd.choice(pool) for _ in range(rnd.randrange(40)))
    if k in (6, 7):
        return [random_value(rnd, depth + 1) for _ in range(rnd.randrange(5))]
    return {"k%d%s" % (i, rnd.choice(["", "\"", "\u00e9"])): random_value(rnd, depth + 1)
            for i in range(rnd.randrange(5))}


def test_random_values_round_trip_through_the_writer(mpy_run):
    rnd = random.Random(1)
    values = [random_value(rnd) for _ in range(300)]
    # ensure_ascii=False: MicroPython's json.loads would keep a \ud83d\ude00 escape as two surrogates.
    r = mpy_run(ROUNDTRIP, stdin=json.dumps(values, ensure_ascii=False), heapsize="256k").check()
    raws = r.out.split()
    assert len(raws) == len(values)
    chunked = 0
    for v, raw in zip(values, raws):
        resp, body = parse(bytes.fromhex(raw))
        chunked += resp.getheader("Transfer-Encoding") == "chunked"
        assert json.loads(body) == v
    assert chunked > 20  # bigger values went out in chunks, smaller ones with a Content-Length


DROP = r"""
import asyncio, gc, json, sys, time
import micromesos
from micromesos import endpoints

VIEWS = ("webstate", "metrics", "sandbox", "jsonw")

class Req:
    def __init__(self, path, query=""):
        self.path = path
        self.query = query

class LP:
    def route(self, path, fn):
        pass

class Agent:
    lp = LP()
    tasks = None

class Sink:  # the client's stream
    def __init__(self):
        self.data = []
    def write(self, b):
        self.data.append(bytes(b))

class Gone(Sink):  # a client that went away: the first checkpoint's drain fails
    out_buf = b"x"
    async def drain(self):
        raise OSError(104)

def resident():
    return [v for v in VIEWS if "micromesos." + v in sys.modules or hasattr(micromesos, v)]

def stream(produce, sink):
    from micromesos import jsonw  # as the listener does, for each streamed response

    out = jsonw.Writer(1024)
    return asyncio.run(jsonw.respond(out, sink, 200, "application/json", produce, True, False, True, 1000))

ep = endpoints.install(Agent())
# Once before measuring: the interned strings of a loaded module stay for good, as on a board.
st, ct, body = ep.route(Req("/version"))
stream(body, Sink())
gc.collect()
base = gc.mem_alloc()
res = {"after_first": resident()}

st, ct, body = ep.route(Req("/health"))
res["plain"] = [st, body == b"", resident()]

a = ep.route(Req("/version"))[2]
b = ep.route(Req("/version", "jsonp=cb"))[2]  # both pending: one copy of the view serves both
res["pending"] = [ep.streams, resident()]
s = Sink()
stream(a, s)
res["one_left"] = [ep.streams, resident()]
stream(b, Sink())
res["both_done"] = [ep.streams, resident(), json.loads(s.data[-1].split(b"\r\n\r\n")[-1])["version"]]

c = ep.route(Req("/version"))[2]
res["broken"] = [stream(c, Gone()), ep.streams, resident()]

ep.route(Req("/version"))  # abandoned: the listener never ran it
ep._since = time.ticks_add(time.ticks_ms(), -61000)
ep.route(Req("/health"))
res["stale"] = [ep.streams, resident()]
a = b = c = body = s = None
gc.collect()
res["held"] = gc.mem_alloc() - base
print(json.dumps(res))
"""


def test_views_are_dropped_after_the_response(mpy_run):
    out = json.loads(mpy_run(DROP, heapsize="256k").check().out.strip().splitlines()[-1])
    assert out["after_first"] == []
    assert out["plain"] == [200, True, []]
    assert out["pending"] == [2, ["webstate", "jsonw"]]  # json_body lives with the writer
    assert out["one_left"] == [1, ["webstate", "jsonw"]]
    assert out["both_done"] == [0, [], "1.12.0"]
    assert out["broken"] == [False, 0, []]  # a response failing half-way still lets go of its view
    assert out["stale"] == [0, []]
    assert out["held"] < 256, out  # the views' code and tables are gone from the heap, not just unlisted
