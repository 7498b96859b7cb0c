# The bounded incremental HTTP/1.1 parser (lib/micromesos/http.py), run in the unix port.
# MIT licence. Cases are built here, parsed there in one process, and compared here.
import json
import os

import pytest

# The parser's buffer filled as the listener fills it: tests/fuzz/httpfeed.py's feed(), run in MicroPython by
# the scripts below (the fuzzer imports it) and under CPython by the last test.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz", "httpfeed.py")) as _f:
    FEED = _f.read()
exec(FEED)

# Runs in MicroPython: parse each case whole (step 0) or fed `step` bytes at a time, and report
# every request found (offsets turned into values) or the ProtocolError that stopped it.
RUNNER = r"""
import json, sys
from micromesos import http
from micromesos.errors import ProtocolError
""" + FEED + r"""

def view(p):
    b = p.buf
    def s(a, c):
        return bytes(b[a:c]).decode() if a >= 0 else None
    return {"method": p.method, "target": s(p.target0, p.target1), "path": s(p.target0, p.path1),
            "from": s(p.from0, p.from1), "ua": s(p.ua0, p.ua1), "sender": s(p.snd0, p.snd1), "dropped": p.dropped,
            "body": bytes(b[p.body0:p.body1]).hex(), "keep": p.keep_alive, "version": p.version,
            "chunked": p.chunked, "clen": p.clen}

def run(data, step, limits):
    p = http.HTTPParser(bytearray(limits.get("buf_size", http.HTTPParser.buf_size)))
    for k in limits:
        setattr(p, k, limits[k])
    out = []
    i = 0
    n = len(data)
    try:
        while True:
            k = feed(p, data, i, min(n, i + step) if step else n)
            i += k
            while p.parse():
                out.append(view(p))
                p.done()
            if i >= n or k == 0:
                break
    except ProtocolError as e:
        out.append({"error": str(e)})
    out.append({"left": p.fill})
    return out

cases = json.loads(sys.stdin.read())
print(json.dumps([run(bytes.fromhex(h), step, lim) for h, step, lim in cases]))
"""

PING = (b"POST /slave(1)/mesos.internal.PingSlaveMessage HTTP/1.1\r\n"
        b"User-Agent: libprocess/slave-observer(1)@127.0.0.1:5050\r\n"
        b"Libprocess-From: slave-observer(1)@127.0.0.1:5050\r\n"
        b"Connection: Keep-Alive\r\nHost: 127.0.0.1:5051\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n\x08\x01\r\n0\r\n\r\n")
PONG = (b"POST /slave-observer(1)/mesos.internal.PongSlaveMessage HTTP/1.1\r\n"
        b"User-Agent: libprocess/slave(1)@127.0.0.1:5051\r\nLibprocess-From: slave(1)@127.0.0.1:5051\r\n"
        b"Connection: Keep-Alive\r\nHost: 127.0.0.1:5050\r\n\r\n")
CLEN = (b"POST /slave(1)/mesos.internal.KillTaskMessage HTTP/1.1\r\n"
        b"Libprocess-From: master@10.0.0.1:5050\r\nContent-Length: 11\r\n\r\nhello world")
MULTI = (b"POST /slave(1)/x HTTP/1.1\r\nLibprocess-From: master@10.0.0.1:5050\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n"
         b"3\r\nabc\r\n4;name=value\r\ndefg\r\nA\r\n0123456789\r\n1 \r\nZ\r\n0\r\nX-Trailer: 1\r\n\r\n")
ODD_CASE = (b"POST /slave(1)/y HTTP/1.1\r\nlIbPrOcEsS-fRoM: \t master@1.2.3.4:5050 \t\r\n"
            b"uSeR-aGeNt:libprocess/master@1.2.3.4:5050\r\nhOsT: 9.9.9.9:1\r\n"
            b"TRANSFER-ENCODING: ChUnKeD\r\n\r\n5\r\nbytes\r\n0\r\n\r\n")


def parse_all(mpy_run, cases):
    payload = [(raw.hex(), step, lim) for raw, step, lim in cases]
    r = mpy_run(RUNNER, stdin=json.dumps(payload)).check()
    return json.loads(r.out.strip().splitlines()[-1])


def one(mpy_run, raw, step=0, **limits):
    return parse_all(mpy_run, [(raw, step, limits)])[0]


def test_chunked_single_chunk_is_the_captured_ping(mpy_run):
    res = one(mpy_run, PING)
    assert len(res) == 2 and res[-1] == {"left": 0}
    req = res[0]
    assert req["method"] == 2  # POST
    assert req["path"] == "/slave(1)/mesos.internal.PingSlaveMessage"
    assert req["from"] == "slave-observer(1)@127.0.0.1:5050"
    assert req["ua"] == "libprocess/slave-observer(1)@127.0.0.1:5050"
    assert req["body"] == "0801" and req["chunked"] and req["keep"] and req["version"] == 11


def test_content_length_and_empty_body(mpy_run):
    res = parse_all(mpy_run, [(CLEN, 0, {}), (PONG, 0, {})])
    assert res[0][0]["body"] == b"hello world".hex() and res[0][0]["clen"] == 11
    pong = res[1][0]
    # No Content-Length and no chunking: an empty body, request ends at the blank line (§1.3).
    assert pong["body"] == "" and pong["clen"] == -1 and not pong["chunked"]
    assert pong["path"] == "/slave-observer(1)/mesos.internal.PongSlaveMessage"
    assert res[1][1] == {"left": 0}


def test_multi_chunk_dechunked_in_place(mpy_run):
    req = one(mpy_run, MULTI)[0]
    assert bytes.fromhex(req["body"]) == b"abcdefg0123456789Z"


def test_pipelined_three_in_one_read_then_one_byte_at_a_time(mpy_run):
    stream = CLEN + MULTI + PONG
    whole, trickle, odd = parse_all(mpy_run, [(stream, 0, {}), (stream, 1, {}), (stream, 7, {})])
    assert [r.get("path") for r in whole[:3]] == ["/slave(1)/mesos.internal.KillTaskMessage",
                                                  "/slave(1)/x",
                                                  "/slave-observer(1)/mesos.internal.PongSlaveMessage"]
    assert whole[3] == {"left": 0}
    assert trickle == whole and odd == whole


def test_header_names_case_insensitive_values_trimmed(mpy_run):
    req = one(mpy_run, ODD_CASE)[0]
    assert req["from"] == "master@1.2.3.4:5050"
    assert req["ua"] == "libprocess/master@1.2.3.4:5050"
    assert req["chunked"] and req["body"] == b"bytes".hex()


def test_keep_alive_rules(mpy_run):
    base = b"GET /state%s HTTP/1.%d\r\n%s\r\n"
    res = parse_all(mpy_run, [
        (base % (b"", 1, b""), 0, {}),
        (base % (b"", 1, b"Connection: close\r\n"), 0, {}),
        (base % (b"", 0, b""), 0, {}),
        (base % (b"?jsonp=f", 0, b"connection: Keep-Alive\r\n"), 0, {}),
        (base % (b"", 1, b"Connection: Upgrade, close\r\n"), 0, {}),
    ])
    assert [r[0]["keep"] for r in res] == [True, False, False, True, False]
    assert res[3][0]["method"] == 1 and res[3][0]["path"] == "/state"
    assert res[3][0]["target"] == "/state?jsonp=f" and res[3][0]["version"] == 10


def test_leading_empty_lines_skipped(mpy_run):
    assert one(mpy_run, b"\r\n\r\n" + PONG)[0]["body"] == ""


BAD = [
    ("line too long", b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n\r\n", {"max_line": 64}),
    ("line too long", b"GET / HTTP/1.1\r\nX-Long: " + b"b" * 100, {"max_line": 64}),  # no CRLF yet
    ("too many headers", b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 5 + b"\r\n", {"max_headers": 4}),
    ("too many headers", MULTI.replace(b"X-Trailer: 1\r\n", b"A: 1\r\nB: 2\r\n"), {"max_headers": 3}),
    ("body too large", b"POST /a HTTP/1.1\r\nContent-Length: 101\r\n\r\n", {"max_body": 100}),
    ("body too large", b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n" + b"x" * 80
     + b"\r\n50\r\n", {"max_body": 100}),
    ("larger than buffer", b"POST /a HTTP/1.1\r\nContent-Length: 90\r\n\r\n", {"buf_size": 100}),
    ("larger than buffer", b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 30, {"buf_size": 100}),
    ("bad Content-Length", b"POST /a HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", {}),
    ("bad Content-Length", b"POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n", {}),
    ("bad Content-Length", b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", {}),
    ("Content-Length with chunked",
     b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", {}),
    ("unsupported Transfer-Encoding", b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", {}),
    ("bare LF", b"GET / HTTP/1.1\nHost: x\n\n", {}),
    ("obsolete line folding", b"GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n", {}),
    ("bad header name", b"GET / HTTP/1.1\r\nBad Name: a\r\n\r\n", {}),
    ("header without name", b"GET / HTTP/1.1\r\n: a\r\n\r\n", {}),
    ("unsupported version", b"GET / HTTP/1.2\r\n\r\n", {}),
    ("bad request line", b"GET / HTTP/2.0 extra\r\n\r\n", {}),
    ("bad request line", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {}),
    ("bad method", b"get / HTTP/1.1\r\n\r\n", {}),
    ("bad request line", b"GET  HTTP/1.1\r\n\r\n", {}),
    ("bad chunk size", b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", {}),
    ("bad chunk size", b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n", {}),
    ("chunk not followed by CRLF", b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n", {}),
]


@pytest.mark.parametrize("step", [0, 1])
def test_limits_and_malformed_raise_protocol_error(mpy_run, step):
    res = parse_all(mpy_run, [(raw, step, lim) for _, raw, lim in BAD])
    for (why, raw, _), out in zip(BAD, res):
        assert len(out) == 2 and "error" in out[0], (why, raw, out)
        assert why in out[0]["error"], (why, out[0]["error"])


def test_limits_are_class_attributes(mpy_run):
    r = mpy_run(FEED + r"""
from micromesos import http
from micromesos.errors import ProtocolError
class Small(http.HTTPParser):
    buf_size = 256
    max_body = 8
p = Small()
print(len(p.buf))
feed(p, b"POST /a HTTP/1.1\r\nContent-Length: 9\r\n\r\n")
try:
    p.parse()
except ProtocolError as e:
    print("ProtocolError", e)
""").check()
    assert r.out.splitlines() == ["256", "ProtocolError HTTP: body too large"]


def test_pct_equal_and_responses(mpy_run):
    r = mpy_run(r"""
from micromesos import http, jsonw
b = b"/slave%281%29/slave(1)/slave%2/slave(2)/%zz"
print(http.pct_equal(b, 1, 13, b"slave(1)"), http.pct_equal(b, 14, 22, b"slave(1)"),
      http.pct_equal(b, 23, 30, b"slave(1)"), http.pct_equal(b, 31, 39, b"slave(1)"),
      http.pct_equal(b, 40, 43, b"x"))
class Out:
    def __init__(self):
        self.b = b""
    def write(self, d):
        self.b += bytes(d)
o = Out()
jsonw.write_response(o, 200, "application/json", ["{", b'"a"', ":1}"])
print(repr(o.b))
o = Out()
jsonw.write_response(o, 404, None, b"", keep_alive=False)
print(repr(o.b))
o = Out()
jsonw.write_response(o, 200, "text/plain", "abc", head_only=True)
print(repr(o.b))
print(repr(http.ACCEPTED))
""").check()
    lines = r.out.splitlines()
    assert lines[0] == "1 1 -1 0 -1"
    assert lines[1] == repr(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                            b'Content-Length: 7\r\n\r\n{"a":1}')
    assert lines[2] == repr(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert lines[3] == repr(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n")
    assert lines[4] == repr(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")


def test_parser_imports_under_cpython():
    from micromesos import http

    p = http.HTTPParser()
    assert feed(p, PING + PONG) == len(PING + PONG)
    assert p.parse() and bytes(p.buf[p.body0:p.body1]) == b"\x08\x01"
    p.done()
    assert p.parse() and p.body0 == p.body1 and p.end == len(PONG)


# -- discard mode: a libprocess message whose body does not fit ------------------------------------------------

BIG = bytes(range(256)) * 4  # 1 KB: more than the 256-byte buffers below hold
SMALL_LIMITS = {"buf_size": 256, "max_body": 256}


def chunked(head, data, size):
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n" % len(data[i:i + size]) + data[i:i + size] + b"\r\n" for i in range(0, len(data), size)) \
        + b"0\r\nX-Trailer: 1\r\n\r\n"


MSG_HEAD = b"POST /slave(1)/mesos.internal.RunTaskMessage HTTP/1.1\r\nLibprocess-From: master@10.0.0.1:5050\r\n"
UA_HEAD = b"POST /slave(1)/mesos.internal.RunTaskMessage HTTP/1.1\r\nUser-Agent: libprocess/master@10.0.0.1:5050\r\n"
PLAIN_HEAD = b"POST /slave(1)/mesos.internal.RunTaskMessage HTTP/1.1\r\nUser-Agent: curl/8\r\n"
DISCARDED = [
    (MSG_HEAD + b"Content-Length: 1024\r\n\r\n" + BIG, 1024),
    (MSG_HEAD + b"Content-Length: 257\r\n\r\n" + BIG[:257], 257),  # over max_body by one byte
    (chunked(MSG_HEAD, BIG, 1024), 1024),  # one chunk, as libprocess sends
    (chunked(MSG_HEAD, BIG, 100), 1024),  # the first chunk fits: dropped mid-body, kept chunks too
    (chunked(UA_HEAD, BIG, 300), 1024),  # a sender in User-Agent only is a message too (§1.4)
]


@pytest.mark.parametrize("step", [0, 1, 7])
def test_oversize_message_body_is_dropped_and_parsing_goes_on(mpy_run, step):
    # Each case is followed by a small message on the same connection: it must come out whole.
    res = parse_all(mpy_run, [(raw + CLEN, step, SMALL_LIMITS) for raw, _ in DISCARDED])
    for (raw, size), out in zip(DISCARDED, res):
        assert len(out) == 3 and out[-1] == {"left": 0}, (raw[:80], out)
        big, small = out[0], out[1]
        assert big["dropped"] == size and big["body"] == "", big
        assert big["path"] == "/slave(1)/mesos.internal.RunTaskMessage" and big["sender"] == "master@10.0.0.1:5050"
        assert small["dropped"] == 0 and small["body"] == b"hello world".hex(), small


def test_what_discard_mode_does_not_take(mpy_run):
    res = parse_all(mpy_run, [
        (PLAIN_HEAD + b"Content-Length: 1024\r\n\r\n" + BIG, 0, SMALL_LIMITS),  # not a message: 400, closed
        (chunked(PLAIN_HEAD, BIG, 100), 1, SMALL_LIMITS),
        (b"GET / HTTP/1.1\r\nLibprocess-From: master@10.0.0.1:5050\r\nContent-Length: 300\r\n\r\n", 0,
         SMALL_LIMITS),  # a GET is never a message
        (MSG_HEAD + b"Content-Length: 1024\r\n\r\n" + BIG, 0, dict(SMALL_LIMITS, max_discard=1000)),
        (chunked(MSG_HEAD, BIG, 300), 1, dict(SMALL_LIMITS, max_discard=1000)),
        (MSG_HEAD + b"Content-Length: 99999999\r\n\r\n", 0, {}),  # over max_discard (16 MB) at once
        (MSG_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 30 + b"\r\n", 0, {}),  # no big ints
        (MSG_HEAD + b"X-Pad: " + b"p" * 120 + b"\r\nContent-Length: 300\r\n\r\n", 0, SMALL_LIMITS),  # no room
        (chunked(MSG_HEAD, BIG, 300).replace(BIG[300:600] + b"\r\n", BIG[300:600] + b"XY"), 0, SMALL_LIMITS),
    ])
    got = [out[0].get("error", out[0]) for out in res]
    assert got == ["HTTP: body too large", "HTTP: request larger than buffer"] + ["HTTP: body too large"] * 5 + [
        "HTTP: request larger than buffer", "HTTP: chunk not followed by CRLF"], got


# -- a small buffer that grows: gate lends new connections start_size bytes, cap = recv_size -------------------

GROW_CASES = [PING + PONG, CLEN + PING, MULTI, ODD_CASE, PING * 6,  # pipelined: more than 64 bytes at once
              b"GET /state?jsonp=cb HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * 900 + b"\r\n\r\n" + PONG,
              PLAIN_HEAD + b"Content-Length: 1024\r\n\r\n" + BIG] + [raw + CLEN for raw, _ in DISCARDED]


@pytest.mark.parametrize("step", [0, 1, 7])
@pytest.mark.parametrize("cap", [256, 2048])
def test_a_small_buffer_grows_and_parses_as_a_full_one(mpy_run, step, cap):
    # Every case parses to the same requests, drops and errors from a 64-byte start as from a cap-sized buffer.
    full, small = [], []
    for raw in GROW_CASES:  # one case a run: the reports of them all would not fit the runner's heap
        full += parse_all(mpy_run, [(raw, step, {"buf_size": cap, "max_body": cap})])
        small += parse_all(mpy_run, [(raw, step, {"buf_size": 64, "cap": cap, "max_body": cap})])
    for out in full + small:
        if "error" in out[-2]:
            out.pop()  # bytes left after an error: how much was fed before it, the 64-byte buffer took less
    assert small == full
    assert sum(1 for out in full if "error" not in out[-1]) >= (9 if cap == 2048 else 6)  # most parse


def test_the_buffer_grows_only_when_a_request_needs_it(mpy_run):
    r = mpy_run(FEED + """
from micromesos import http
p = http.HTTPParser(bytearray(512))
p.cap = 2048
feed(p, b"GET /state HTTP/1.1\\r\\nHost: 127.0.0.1:5051\\r\\n\\r\\n")
print(p.parse(), len(p.buf))
p.done()
feed(p, b"POST /slave(1)/x HTTP/1.1\\r\\nLibprocess-From: m@1.2.3.4:5\\r\\nContent-Length: 1000\\r\\n\\r\\n")
print(p.parse(), len(p.buf))
feed(p, b"y" * 1000)
print(p.parse(), len(p.buf), p.body1 - p.body0, bytes(p.buf[p.body0:p.body0 + 3]))
""").check()
    assert r.out.split("\n")[:3] == ["True 512", "False 2048", "True 2048 1000 b'yyy'"]
