# UPID validity and format (PROTOCOL.md §1.1), run in the MicroPython unix port.
# MIT licence.
import json

GOOD = [
    ("slave(1)@127.0.0.1:5051", ["slave(1)", "127.0.0.1", 5051]),
    ("slave-observer(12)@10.0.0.1:5050", ["slave-observer(12)", "10.0.0.1", 5050]),
    ("master@255.255.255.255:65535", ["master", "255.255.255.255", 65535]),
    ("m@0.0.0.1:1", ["m", "0.0.0.1", 1]),
    ("a:b@1.2.3.4:5", ["a:b", "1.2.3.4", 5]),  # ':' before '@' belongs to the id
]
BAD = [
    "", "@1.2.3.4:5", "slave(1)", "slave(1)@", "slave(1)@1.2.3.4", "slave(1)@1.2.3.4:",
    "slave(1)@0.0.0.0:5051",          # not a valid UPID (pid.hpp)
    "slave(1)@1.2.3.4:0",             # port 0
    "slave(1)@1.2.3.4:65536",         # not a uint16
    "slave(1)@1.2.3.4:050",           # leading zero
    "slave(1)@1.2.3.4:-5", "slave(1)@1.2.3.4:5x", "slave(1)@1.2.3.4:123456",
    "slave(1)@256.1.1.1:5", "slave(1)@01.2.3.4:5", "slave(1)@1.2.3:5", "slave(1)@1.2.3.4.5:5",
    "slave(1)@1..3.4:5", "slave(1)@localhost:5051",  # no DNS on the device
    "slave(1)@[::1]:5051",            # IPv6 UPIDs are not supported
    "sl ave@1.2.3.4:5", "a/b@1.2.3.4:5", "sl\x01@1.2.3.4:5", "x@1.2.3.4:5:6",
    "x" * 200 + "@1.2.3.4:5",
]

CODE = r"""
import json, sys
from micromesos import upid
from micromesos.errors import ProtocolError
good, bad = json.loads(sys.stdin.read())
out = {"good": [], "bad": [], "valid": []}
for s, _ in good:  # the parts where check() and port_value() find them, in place
    b = s.encode()
    at = upid.check(b)
    colon = b.find(b":", at + 1)
    out["good"].append([s[:at], s[at + 1:colon], upid.port_value(b, colon + 1, len(b))])
    out["valid"].append(upid.valid(s) and upid.valid(s.encode()))
for s in bad:
    try:
        upid.check(s.encode())
        out["bad"].append("accepted")
    except ProtocolError as e:
        out["bad"].append("ProtocolError")
    out["valid"].append(upid.valid(s))
print(json.dumps(out))
"""


def test_check_valid_and_invalid(mpy_run):
    r = mpy_run(CODE, stdin=json.dumps([GOOD, BAD])).check()
    out = json.loads(r.out.strip().splitlines()[-1])
    assert out["good"] == [want for _, want in GOOD]
    assert out["bad"] == ["ProtocolError"] * len(BAD), list(zip(BAD, out["bad"]))
    assert out["valid"] == [True] * len(GOOD) + [False] * len(BAD)


def test_format_roundtrip_and_rejects(mpy_run):
    r = mpy_run(r"""
from micromesos import upid
from micromesos.errors import ProtocolError
print(upid.format("slave(1)", "192.168.1.50", 5051))
for args in (("", "1.2.3.4", 5), ("s", "0.0.0.0", 5051), ("s", "1.2.3.4", 0),
             ("s", "1.2.3.4", 70000), ("s", "1.2.3.4", "5051"), ("s@x", "1.2.3.4", 5)):
    try:
        upid.format(*args)
        print("accepted", args)
    except ProtocolError:
        print("rejected")
""").check()
    lines = r.out.split()
    assert lines[0] == "slave(1)@192.168.1.50:5051"
    assert lines[1:] == ["rejected"] * 6


def test_check_in_place_allocates_nothing(mpy_run):
    # The listener validates the sender UPID inside its receive buffer on every reply.
    r = mpy_run(r"""
import micropython
from micromesos import upid
buf = bytearray(b"xxLibprocess-From: slave-observer(3)@10.0.0.1:5050\r\n")
def run():
    micropython.heap_lock()
    try:
        at = upid.check(buf, 19, len(buf) - 2)
        ip = upid.ipv4_ok(buf, at + 1, at + 9)
        port = upid.port_value(buf, len(buf) - 6, len(buf) - 2)
    finally:
        micropython.heap_unlock()
    return at, ip, port
at, ip, port = run()
print(at, buf[at:at + 1], ip, port)
""").check()
    assert r.out.split("\n")[0] == "36 bytearray(b'@') True 5050"


def test_imports_under_cpython():
    # The stand-in master and host tools may reuse these under CPython (tools/hostcompat).
    from micromesos import upid
    from micromesos.errors import ProtocolError

    assert upid.format("master", "127.0.0.1", 5050) == "master@127.0.0.1:5050"
    assert upid.check(bytearray(b"..slave(1)@1.2.3.4:5"), 2) == 10
    try:
        upid.check(b"slave(1)@0.0.0.0:5051")
    except ProtocolError:
        pass
    else:
        raise AssertionError("0.0.0.0 accepted")
