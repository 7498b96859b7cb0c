# MicroPython fuzzer for the codec: mutated golden bodies give a dict or DecodeError, nothing else, no leak.
# MIT licence. Usage: micropython fuzz_codec.py VECTORS_JSONL N SEED [MORE_JSONL ...]  (exit 1 on a finding)
import gc
import json
from array import array
import random
import sys
import time
from binascii import a2b_base64, hexlify, unhexlify

from micromesos import codec, schema
from micromesos.errors import DecodeError
from micromesos.wire import Reader

# Heap tolerance after the run (measured: 0 bytes over 60k-100k inputs, seeds 1-11). MicroPython's GC is
# conservative: a stale word on the C stack or in a register that happens to point into the heap keeps
# that block alive, e.g. one small decoded dict; a real leak grows with N instead.
HEAP_TOLERANCE = 256
INTERNAL = ": internal "  # how decode() marks an exception it had to wrap
WARMUP = 200
_K_MSG = schema.K_MSG
PROGRESS = 100000  # inputs between progress lines
_HEX_PIECE = 48  # input bytes per piece of a reported input: the report needs no big block
_WORK = 4096  # the largest golden body is under 1 KB; mutations at most quadruple a slice of it


def load(paths):
    bodies = []
    seen = set()
    for path in paths:
        for line in open(path):
            v = json.loads(line)
            if "hex" in v:
                body = unhexlify(v["hex"])
            elif v.get("type", "").startswith("mesos.internal.") and "body_b64" in v:
                body = a2b_base64(v["body_b64"])
            else:
                continue
            T = getattr(schema, v["type"][15:])
            if (T, body) not in seen:  # the capture repeats pings, pongs and acks
                seen.add((T, body))
                bodies.append((T, body, length_offsets(T, body)))
            v = line = None
    return bodies


def length_offsets(T, body):
    """Offsets of every length prefix of the modelled (sub-)messages: where to tamper."""
    out = []
    r = Reader()
    r.reset(body)
    stack = []
    t = T
    while True:
        fn = r.next()
        if fn == 0:
            if not stack:
                return array("H", out)  # 2 bytes an offset, not a list slot and a boxed int
            r.end, t = stack.pop()
            continue
        if r.wt != 2:
            r.skip()
            continue
        out.append(r.pos)
        end = r.lendelim()
        sub = 0
        for _name, number, kind, _label, _raw, s in schema.fields(t):
            if number == fn and kind == _K_MSG:
                sub = s
        if sub:
            stack.append((r.end, t))
            r.end = end
            t = sub
        else:
            r.pos = end


def rnd(n):
    return random.getrandbits(16) % n if n > 0 else 0


_HUGE = (b"\x00", b"\x7f", b"\xff\x01", b"\xff\xff\xff\xff\x0f",
         b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01")  # zero, max 1-byte, big, huge, 11-byte


def mutate(bodies, w):
    """Writes one mutated body into the preallocated buffer w, as the agent's reused receive buffer
    holds a message; returns (type, length). Only small memoryviews are allocated."""
    T, body, offs = bodies[rnd(len(bodies))]
    src = memoryview(body)
    n = len(body)
    cap = len(w)
    m = rnd(9)
    if m == 1:  # byte insert
        i = rnd(n + 1)
        w[0:i] = src[0:i]
        w[i] = rnd(256)
        w[i + 1:n + 1] = src[i:n]
        return T, n + 1
    if m == 2 and n:  # byte delete
        i = rnd(n)
        w[0:i] = src[0:i]
        w[i:n - 1] = src[i + 1:n]
        return T, n - 1
    if m == 3:  # truncation
        i = rnd(n + 1)
        w[0:i] = src[0:i]
        return T, i
    if m == 4 and offs:  # length-field tampering: off by one either way, zero, or huge
        i = offs[rnd(len(offs))]
        j = i + 1
        while j < n and body[j - 1] & 0x80:
            j += 1
        k = rnd(4)
        new = bytes([(body[i] + (1 if k == 0 else -1)) & 0x7F]) if k < 2 else _HUGE[rnd(len(_HUGE))]
        w[0:i] = src[0:i]
        w[i:i + len(new)] = new
        e = i + len(new)
        w[e:e + n - j] = src[j:n]
        return T, e + n - j
    if m == 5:  # splice two bodies
        other = bodies[rnd(len(bodies))][1]
        i = rnd(n + 1)
        j = rnd(len(other) + 1)
        w[0:i] = src[0:i]
        w[i:i + len(other) - j] = memoryview(other)[j:]
        return T, i + len(other) - j
    if m == 6:  # random bytes
        k = rnd(48)
        for i in range(k):
            w[i] = random.getrandbits(8)
        return T, k
    if m == 7 and n:  # repeat a slice (duplicated fields, runaway structure)
        i = rnd(n)
        j = i + 1 + rnd(n - i)
        w[0:j] = src[0:j]
        e = j
        for _ in range(1 + rnd(3)):
            if e + j - i + n - j > cap:
                break
            w[e:e + j - i] = src[i:j]
            e += j - i
        w[e:e + n - j] = src[j:n]
        return T, e + n - j
    w[0:n] = src
    if m == 0 and n:  # bit flips
        for _ in range(1 + rnd(4)):
            i = rnd(n)
            w[i] ^= 1 << rnd(8)
    elif n:  # overwrite one byte with a random key: any field number, any wire type
        w[rnd(n)] = rnd(256)
    return T, n


def finding(what, t, raw, w, size, e=None):
    # Reported from whatever heap is left (the finding may be a MemoryError): small pieces only.
    gc.collect()
    print("FINDING", what, schema.name(t), "raw=%s" % raw, "" if e is None else type(e).__name__, e or "")
    wv = memoryview(w)
    sys.stdout.write("input ")
    for i in range(0, size, _HEX_PIECE):
        sys.stdout.write(hexlify(wv[i:min(size, i + _HEX_PIECE)]).decode())
    print()
    sys.exit(1)


def roundtrip(t, buf, size, raw):
    d = codec.decode(t, buf, 0, size, raw)
    e1 = codec.encode(t, d)
    d = None  # one decoded message alive at a time
    return e1, codec.encode(t, codec.decode(t, e1, raw=raw))


def out_of_memory(e):
    return isinstance(e, MemoryError) or (isinstance(e, DecodeError) and str(e).startswith("out of memory"))


def run(bodies, w, n, stats):
    """n mutated inputs; stats = [ok, decode_errors, roundtrips, max_input_us, oom_retries, oom_skipped,
    decode_oom]
    updated in place."""
    wv = memoryview(w)
    ntypes = schema.NTYPES
    for k in range(n):
        T, size = mutate(bodies, w)
        wrong = 1 + rnd(ntypes - 1)
        # Half the time from the reused buffer with an end offset (the agent's path), half through a view
        # of exactly the input, where reading one byte past the end is an IndexError, not a silent over-read.
        buf = w if k & 4 else wv[:size]
        s = time.ticks_us()
        for t, raw in ((T, k & 1 == 0), (wrong, k & 2 == 0)):
            try:
                d = codec.decode(t, buf, 0, size, raw)
            except DecodeError as e:
                if INTERNAL in str(e):  # decode() wrapped an unexpected exception: a bug, not bad input
                    finding("decode", t, raw, w, size, e)
                stats[1] += 1
                continue
            except MemoryError:  # bytes whose dicts outgrow this heap (see below): counted apart, bounded
                d = None
                gc.collect()
                stats[6] += 1
                continue
            except Exception as e:
                finding("decode", t, raw, w, size, e)
            stats[0] += 1
            # Whatever decodes must re-encode, and decoding that again is stable. Out of memory is the
            # heap's, not the codec's: a 4 KB input of repeated sub-messages decodes (raw=False) into tens
            # of KB of dicts, next to the ~75 KB this program holds in a 128 KB heap. Such a round trip is
            # tried again on a collected heap, and if that fails too it is counted as skipped (bounded
            # below: the oracle can't quietly switch itself off).
            try:
                e1 = codec.encode(t, d)
                d = None
                e2 = codec.encode(t, codec.decode(t, e1, raw=raw))
            except Exception as e:
                if not out_of_memory(e):
                    finding("roundtrip", t, raw, w, size, e)
                d = e1 = e2 = e = None
                stats[4] += 1
                gc.collect()
                try:
                    e1, e2 = roundtrip(t, buf, size, raw)
                except Exception as e:
                    if not out_of_memory(e):
                        finding("roundtrip", t, raw, w, size, e)
                    e1 = e2 = e = None
                    stats[5] += 1
                    continue
            if e1 != e2:
                finding("unstable re-encode", t, raw, w, size)
            stats[2] += 1
        try:
            codec.ping_connected(buf, 0, size)
        except DecodeError:
            pass
        except Exception as e:
            finding("ping_connected", schema.PingSlaveMessage, False, w, size, e)
        us = time.ticks_diff(time.ticks_us(), s)
        if us > stats[3]:
            stats[3] = us


def main():
    path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    random.seed(seed)
    w = bytearray(_WORK)  # first, while the heap is still in one piece
    bodies = load([path] + sys.argv[4:])
    stats = [0, 0, 0, 0, 0, 0, 0]
    # Warm up first so one-off lazy allocations (random's state, the interpreter's cached exception)
    # don't count as growth; measure outside run(), whose frame may hold stale pointers to its last objects.
    run(bodies, w, WARMUP, stats)
    stats[0] = stats[1] = stats[2] = stats[3] = stats[4] = stats[5] = stats[6] = 0
    gc.collect()
    heap0 = gc.mem_alloc()
    t0 = time.ticks_ms()
    done = 0
    while done < n:
        k = min(PROGRESS, n - done)
        run(bodies, w, k, stats)
        done += k
        if done < n:
            gc.collect()
            print("fuzz_codec: progress %d/%d inputs, ok=%d decode_errors=%d oom_retries=%d oom_skipped=%d "
                  "heap_used=%d %d s" % (done, n, stats[0], stats[1], stats[4], stats[5], gc.mem_alloc(),
                     time.ticks_diff(time.ticks_ms(), t0) // 1000))
    ms = time.ticks_diff(time.ticks_ms(), t0)
    gc.collect()
    heap1 = gc.mem_alloc()
    leak = heap1 - heap0
    print("fuzz_codec: inputs=%d bodies=%d decodes=%d ok=%d decode_errors=%d roundtrips=%d other=0 "
          "oom_retries=%d oom_skipped=%d decode_oom=%d heap_before=%d heap_after=%d heap_delta=%d "
          "tolerance=%d max_input_us=%d time_ms=%d" % (n, len(bodies), 2 * n, stats[0], stats[1], stats[2],
                                                       stats[4], stats[5], stats[6], heap0, heap1, leak,
                                                       HEAP_TOLERANCE, stats[3], ms))
    if leak > HEAP_TOLERANCE:
        print("FINDING heap grew by %d bytes" % leak)
        sys.exit(1)
    if stats[6] * 1000 > 2 * n:
        print("FINDING %d of %d decodes ran out of memory" % (stats[6], 2 * n))
        sys.exit(1)
    if stats[5] * 1000 > stats[0]:
        print("FINDING %d of %d round trips ran out of memory even on a collected heap" % (stats[5], stats[0]))
        sys.exit(1)


main()
