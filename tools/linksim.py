#!/usr/bin/env python3
# Link simulator: a UDP relay on loopback that loses, duplicates, reorders, delays and corrupts datagrams
# between nodes and a gateway (docs/LINK.md §7). MIT licence. CPython; tests import it, `make sim` runs it.
"""Nodes send to --listen; each node's datagrams reach the gateway (--upstream) from a port of its own
(so the gateway tells nodes apart by address, as on a real network), and the gateway's answers go back
to that node. Every datagram, both ways, is impaired independently:

  LINK_LOSS      --loss      probability a datagram is dropped                       (default 0)
  LINK_DUP       --dup       probability a datagram is delivered twice               (default 0)
  LINK_REORDER   --reorder   probability a datagram is held back by an extra delay   (default 0)
                             of REORDER_MS, so later ones overtake it
  LINK_REORDER_MS --reorder-ms  that extra delay, ms                                 (default 60)
  LINK_DELAY_MS  --delay-ms  one-way delay, ms                                       (default 2)
  LINK_JITTER_MS --jitter-ms uniform extra delay 0..JITTER_MS                        (default 0)
  LINK_CORRUPT   --corrupt   probability one random byte of a datagram is flipped    (default 0)
  LINK_SEED      --seed      random seed: the same seed, the same impairments         (default 1)

Variables give the defaults, flags override them. -v prints one line per datagram (the timeline);
stats (per direction: in, out, dropped, duplicated, reordered, corrupted) print at exit and go to
--stats FILE as JSON if given (bytes_in/bytes_out: payload bytes, without the 28 B of IPv4/UDP headers).
Addresses are 127.0.0.0/8 unless --any-address."""
import argparse
import heapq
import json
import os
import random
import selectors
import signal
import socket
import sys
import threading
import time

MAX_DATAGRAM = 2048  # larger than any link frame (LINK.md: 1400 at most); longer ones are cut and counted
MAX_NODES = 1024  # node addresses a relay serves; others are dropped (a bounded table)


def _env(name, default, conv=float):
    v = os.environ.get(name)
    return conv(v) if v not in (None, "") else default


class Impair:
    """The impairments of one relay; decide(rng) -> [(extra delay s, corrupt?)] per copy delivered."""

    def __init__(self, loss=0.0, dup=0.0, reorder=0.0, reorder_ms=60.0, delay_ms=2.0, jitter_ms=0.0,
                 corrupt=0.0):
        for k, v in (("loss", loss), ("dup", dup), ("reorder", reorder), ("corrupt", corrupt)):
            if not 0.0 <= v <= 1.0:
                raise ValueError("%s: a probability 0..1, got %r" % (k, v))
        for k, v in (("reorder_ms", reorder_ms), ("delay_ms", delay_ms), ("jitter_ms", jitter_ms)):
            if not 0.0 <= v <= 60000.0:
                raise ValueError("%s: 0..60000 ms, got %r" % (k, v))
        self.loss, self.dup, self.reorder, self.corrupt = loss, dup, reorder, corrupt
        self.reorder_ms, self.delay_ms, self.jitter_ms = reorder_ms, delay_ms, jitter_ms

    @classmethod
    def from_env(cls, **over):
        kw = dict(loss=_env("LINK_LOSS", 0.0), dup=_env("LINK_DUP", 0.0), reorder=_env("LINK_REORDER", 0.0),
                  reorder_ms=_env("LINK_REORDER_MS", 60.0), delay_ms=_env("LINK_DELAY_MS", 2.0),
                  jitter_ms=_env("LINK_JITTER_MS", 0.0), corrupt=_env("LINK_CORRUPT", 0.0))
        kw.update({k: v for k, v in over.items() if v is not None})
        return cls(**kw)

    def copies(self, rng, st):
        if rng.random() < self.loss:
            st["dropped"] += 1
            return []
        n = 2 if rng.random() < self.dup else 1
        if n == 2:
            st["duplicated"] += 1
        out = []
        for _ in range(n):
            d = self.delay_ms + rng.random() * self.jitter_ms
            if rng.random() < self.reorder:
                d += self.reorder_ms
                st["reordered"] += 1
            c = rng.random() < self.corrupt
            if c:
                st["corrupted"] += 1
            out.append((d / 1000.0, c))
        return out


def _stats():
    # in/out: datagrams received from the sender / delivered to the receiver; bytes_in/bytes_out the same
    # in payload bytes (UDP/IP headers not counted: 28 B more per datagram on the wire).
    return {"in": 0, "out": 0, "dropped": 0, "duplicated": 0, "reordered": 0, "corrupted": 0, "refused": 0,
            "bytes_in": 0, "bytes_out": 0}


class Relay:
    """The simulator. Relay(listen=(ip, port), upstream=(ip, port), impair=Impair(...), seed=1);
    start() runs it in a daemon thread, stop() ends it; .port is the listening port (0 picks one);
    .stats = {"up": {...}, "down": {...}} (up: node -> gateway)."""

    def __init__(self, listen, upstream, impair=None, seed=1, verbose=False, any_address=False, log=None):
        for ip in (listen[0], upstream[0]):
            if not any_address and not ip.startswith("127."):
                raise ValueError("%s: loopback (127.0.0.0/8) only without --any-address" % ip)
        self.impair = impair or Impair()
        self.rng = random.Random(seed)
        self.upstream = upstream
        self.verbose = verbose
        self.log = log or (lambda line: print(line, flush=True))
        self.sel = selectors.DefaultSelector()
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(listen)
        self.front.setblocking(False)
        self.port = self.front.getsockname()[1]
        self.sel.register(self.front, selectors.EVENT_READ, None)
        self.nodes = {}  # node address -> its socket toward the gateway
        self.stats = {"up": _stats(), "down": _stats()}
        self.stall_s = 0.0  # the longest gap between two turns of run()'s loop
        self.due = []  # heap of (time, n, socket, address, data)
        self.n = 0
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.run, name="linksim", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self.thread:
            self.thread.join(5)
        self.sel.close()
        for s in [self.front] + list(self.nodes.values()):
            s.close()

    def _node_socket(self, addr):
        s = self.nodes.get(addr)
        if s is None:
            if len(self.nodes) >= MAX_NODES:
                return None
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((self.front.getsockname()[0], 0))
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, addr)
            self.nodes[addr] = s
        return s

    def _queue(self, way, out_sock, to, data):
        st = self.stats[way]
        st["in"] += 1
        st["bytes_in"] += len(data)
        now = time.monotonic()
        copies = self.impair.copies(self.rng, st)
        for delay, corrupt in copies:
            d = data
            if corrupt and d:
                b = bytearray(d)
                b[self.rng.randrange(len(b))] ^= 1 << self.rng.randrange(8)
                d = bytes(b)
            self.n += 1
            heapq.heappush(self.due, (now + delay, self.n, way, out_sock, to, d))
        if self.verbose:
            what = ", ".join("%+.0fms%s" % (c[0] * 1000, " corrupted" if c[1] else "") for c in copies)
            self.log("%9.3f %-4s %s %4d B type %d: %s" % (now - self.t0, way, to, len(data),
                                                         data[0] & 15 if data else -1, what or "dropped"))

    def run(self):
        prev = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            # The longest this loop did not run (the machine stopped it): tests tell a link that carried
            # nothing for seconds apart from a late node. It wakes every 50 ms at most.
            self.stall_s = max(self.stall_s, now - prev)
            prev = now
            while self.due and self.due[0][0] <= now:
                _, _, way, s, to, data = heapq.heappop(self.due)
                try:
                    s.sendto(data, to)
                    self.stats[way]["out"] += 1
                    self.stats[way]["bytes_out"] += len(data)
                except OSError:  # the far side is gone (ICMP refused): a loss
                    self.stats[way]["refused"] += 1
            timeout = 0.05 if not self.due else max(0.0, min(0.05, self.due[0][0] - time.monotonic()))
            for key, _ in self.sel.select(timeout):
                s = key.fileobj
                for _ in range(64):
                    try:
                        data, addr = s.recvfrom(MAX_DATAGRAM)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        continue  # ICMP error from an earlier send on this socket
                    if key.data is None:  # from a node
                        ns = self._node_socket(addr)
                        if ns is not None:
                            self._queue("up", ns, self.upstream, data)
                    elif addr == self.upstream:  # from the gateway, for the node behind this socket
                        self._queue("down", self.front, key.data, data)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="127.0.0.1:0", help="ip:port nodes send to (port 0: any; printed)")
    ap.add_argument("--upstream", required=True, help="the gateway's ip:port")
    for flag, var in (("loss", "LINK_LOSS"), ("dup", "LINK_DUP"), ("reorder", "LINK_REORDER"),
                      ("reorder-ms", "LINK_REORDER_MS"), ("delay-ms", "LINK_DELAY_MS"),
                      ("jitter-ms", "LINK_JITTER_MS"), ("corrupt", "LINK_CORRUPT")):
        ap.add_argument("--" + flag, type=float, help="default $%s" % var)
    ap.add_argument("--seed", type=int, default=None, help="default $LINK_SEED or 1")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until killed)")
    ap.add_argument("--stats", help="write the stats here as JSON at exit")
    ap.add_argument("--any-address", action="store_true", help="allow addresses outside 127.0.0.0/8")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per datagram")
    a = ap.parse_args(argv)

    def hostport(s):
        h, _, p = s.rpartition(":")
        return h, int(p)

    imp = Impair.from_env(loss=a.loss, dup=a.dup, reorder=a.reorder, reorder_ms=a.reorder_ms,
                          delay_ms=a.delay_ms, jitter_ms=a.jitter_ms, corrupt=a.corrupt)
    seed = a.seed if a.seed is not None else int(_env("LINK_SEED", 1, int))
    r = Relay(hostport(a.listen), hostport(a.upstream), imp, seed, a.verbose, a.any_address)
    print("linksim: nodes -> %s:%d -> gateway %s:%d (loss %.2f dup %.2f reorder %.2f+%gms delay %g+%gms "
          "corrupt %.2f seed %d)" % (r.front.getsockname()[0], r.port, r.upstream[0], r.upstream[1], imp.loss,
                                     imp.dup, imp.reorder, imp.reorder_ms, imp.delay_ms, imp.jitter_ms,
                                     imp.corrupt, seed), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    r.start()
    try:
        done.wait(a.seconds or None)
    except KeyboardInterrupt:
        pass
    r.stop()
    print("linksim: " + json.dumps(r.stats), flush=True)
    if a.stats:
        with open(a.stats, "w") as f:
            json.dump(r.stats, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
