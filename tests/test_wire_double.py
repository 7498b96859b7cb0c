# Doubles from ints are exact (float32 ports send epoch seconds as ints); the encoder agrees with struct.
import random
import struct


def test_int_doubles_are_bit_exact(mpy_run):
    rnd = random.Random(5)
    values = [0, 1, -1, 3, 1795612342, -1795612342, 2**52, 2**53 - 1, 2**53 + 1, 2**53 + 3, 2**63 + 2**11,
              2**64 - 1] + [rnd.getrandbits(rnd.randint(1, 70)) * rnd.choice((1, -1)) for _ in range(300)]
    r = mpy_run("""
from micromesos import wire
import sys
buf = bytearray(8)
for line in sys.stdin.read().split():
    wire.put_double(buf, 0, int(line))
    print(buf.hex())
""", stdin="\n".join(map(str, values))).check()
    got = r.out.split()
    assert len(got) == len(values)
    for v, h in zip(values, got):
        assert bytes.fromhex(h) == struct.pack("<d", float(v)), v


def test_status_update_timestamp_from_int_seconds(mpy_run):
    r = mpy_run("""
from micromesos import codec, schema
b = codec.encode(schema.TaskStatus, {"task_id": "t", "state": schema.TASK_RUNNING, "timestamp": 1795612342})
print(codec.decode(schema.TaskStatus, b)["timestamp"])
""").check()
    assert float(r.out) == 1795612342.0
