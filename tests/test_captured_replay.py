# Replays golden/captured/master-agent.jsonl (a real Mesos 1.12 master and agent) through the
# transport in the unix port. MIT licence. The capture is the byte-level truth of PROTOCOL.md §1.
import base64
import json
import os
import random
import socket

import pytest

import mpy
from test_http import FEED
from test_transport import ACCEPTED, Board, recv_exactly

SEED = 20261125


def records():
    with open(os.path.join(mpy.GOLDEN, "captured", "master-agent.jsonl")) as f:
        return [json.loads(line) for line in f]


def requests(src):
    return [r for r in records() if r["kind"] == "request" and r["src"] == src]


def test_capture_has_what_this_file_relies_on():
    inbound, outbound = requests("master"), requests("agent")
    assert len(inbound) == 27 and len(outbound) == 26
    assert all(r["complete"] for r in inbound + outbound)
    assert {r["headers"][-1][0] for r in outbound} == {"Transfer-Encoding", "Host"}


# Runs in MicroPython: parse each raw request fed in pieces cut at the given offsets.
SPLIT_RUNNER = r"""
import json, sys
from micromesos import http, names
""" + FEED + r"""
p = http.HTTPParser()
while True:
    line = sys.stdin.readline()  # one case a line: the whole set would not fit a device heap
    if not line:
        break
    raw_hex, cuts = json.loads(line)
    raw = bytes.fromhex(raw_hex)
    got = []
    prev = 0
    for c in cuts + [len(raw)]:
        feed(p, raw, prev, c)
        prev = c
        while p.parse():
            b = p.buf
            path = bytes(b[p.target0:p.path1])
            n0 = path.find(b"/", 1) + 1 + p.target0
            got.append({"method": p.method, "path": path.decode(), "from": bytes(b[p.from0:p.from1]).decode(),
                        "kind": names.lookup(b, n0, p.path1), "name": bytes(b[n0:p.path1]).decode(),
                        "body": bytes(b[p.body0:p.body1]).hex(), "left": p.fill - p.end})
            p.done()
    print(json.dumps(got))
"""


def test_parser_reads_every_master_request_whole_and_split(mpy_run):
    rng = random.Random(SEED)
    cases = []
    for r in requests("master"):
        raw = base64.b64decode(r["raw_b64"])
        cases.append((raw.hex(), []))
        for _ in range(3):  # three random splittings of 1-4 cuts each
            cuts = sorted(rng.sample(range(1, len(raw)), rng.randint(1, 4)))
            cases.append((raw.hex(), cuts))
    r = mpy_run(SPLIT_RUNNER, stdin="".join(json.dumps(c) + "\n" for c in cases), timeout=60).check()
    res = [json.loads(line) for line in r.out.splitlines()]
    assert len(res) == 4 * 27
    for i, r in enumerate(requests("master")):
        for got in res[4 * i: 4 * i + 4]:
            assert len(got) == 1, (r["seq"], got)
            g = got[0]
            assert g["method"] == 2 and r["method"] == "POST"
            assert g["path"] == r["path"]
            assert g["from"] == r["libprocess_from"]
            assert g["name"] == r["type"] and g["kind"] != 0
            assert bytes.fromhex(g["body"]) == base64.b64decode(r["body_b64"])
            assert g["left"] == 0


def test_listener_answers_every_captured_request_202(tmp_path):
    # All 27 master->agent requests, in capture order, on one connection, written in random
    # pieces (seeded): every one answered 202 in order and delivered with the record's values.
    rng = random.Random(SEED)
    b = Board(tmp_path, master="master@127.0.0.1:5050")
    try:
        s = b.connect()
        inbound = requests("master")
        stream = b"".join(base64.b64decode(r["raw_b64"]) for r in inbound)
        i = 0
        while i < len(stream):
            n = rng.randint(1, 700)
            s.sendall(stream[i:i + n])
            i += n
        assert recv_exactly(s, len(ACCEPTED) * len(inbound)) == ACCEPTED * len(inbound)
        for r in inbound:
            e = b.wait("msg")
            assert e["name"] == r["type"] and e["kind"] != 0
            assert e["sender"] == r["libprocess_from"]
            assert bytes.fromhex(e["body"]) == base64.b64decode(r["body_b64"])
            assert e["observer"] == r["libprocess_from"].startswith("slave-observer(")
            assert e["from_master_host"]
            if r["type"].endswith("PingSlaveMessage"):
                assert b.wait("pong")["ok"] is True  # queued for slave-observer(1)@127.0.0.1:5050
    finally:
        b.close()


# Runs in MicroPython: queue each message and return the exact bytes the transport will write: copied into
# the outbox, or (a message larger than the outbox: a status update) its head, body and end mark, streamed.
OUTBOX_RUNNER = r"""
import json, sys
from micromesos import libprocess
lp = libprocess.Libprocess("slave(1)", "127.0.0.1", 5051)
for to, name, body in json.loads(sys.stdin.read()):
    ok = lp.send(to, name, bytes.fromhex(body))
    d = lp._dests[0]  # white box: the bytes a write() will hand to the socket
    raw = bytes(d.ob[:d.n])
    for off, h, b in d.big:
        raw += bytes(h) + (bytes(b) + libprocess._LAST_CHUNK if b else b"")
    print(json.dumps([ok, len(lp._dests), len(d.big), raw.hex()]))
    d.n = 0
    d.big = []
"""


def test_client_requests_are_byte_identical_to_the_capture(mpy_run):
    outbound = requests("agent")
    sends = [(r["libprocess_to"], r["type"], base64.b64decode(r["body_b64"]).hex()) for r in outbound]
    assert all(r["libprocess_from"] == "slave(1)@127.0.0.1:5051" for r in outbound)
    # 256k: the transport compiled from source (gate, listener, libprocess) next to the captured JSON.
    res = [json.loads(l) for l in mpy_run(OUTBOX_RUNNER, stdin=json.dumps(sends), heapsize="256k").check().out.splitlines()]
    assert len(res) == len(outbound)
    streamed = 0
    for r, (ok, ndest, nbig, raw) in zip(outbound, res):
        assert ok and ndest == 1  # master@ and slave-observer(1)@ share one destination
        assert bytes.fromhex(raw) == base64.b64decode(r["raw_b64"]), r["seq"]
        streamed += nbig
    assert 0 < streamed < len(outbound)  # both paths checked: the pongs are copied, the status updates are not


def test_client_wire_bytes_identical_on_port_5050(tmp_path):
    # The same on a real socket: needs the capture's destination port, 5050, to be free.
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        ls.bind(("127.0.0.1", 5050))
    except OSError:
        ls.close()
        pytest.skip("127.0.0.1:5050 is in use; test_client_requests_are_byte_identical_to_the_capture covers the bytes")
    ls.listen(1)
    ls.settimeout(5)
    b = Board(tmp_path, advertise_port=5051)
    try:
        assert b.upid == "slave(1)@127.0.0.1:5051"
        outbound = requests("agent")
        for r in outbound:
            b.cmd(op="send", to=r["libprocess_to"], name=r["type"],
                  body=base64.b64decode(r["body_b64"]).hex())
            assert b.wait("sent")["ok"] is True
        c, _ = ls.accept()
        want = b"".join(base64.b64decode(r["raw_b64"]) for r in outbound)
        assert recv_exactly(c, len(want)) == want
        c.close()
    finally:
        b.close()
        ls.close()
