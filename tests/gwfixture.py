# Test fixtures for the gateway (tests/test_gateway*.py): the gateway and scripted nodes as MicroPython
# processes whose output lines are collected with the wall-clock time they arrived. MIT licence.
import json
import os
import re
import subprocess
import threading
import time

import mpy

NODES = os.path.join(mpy.ROOT, "tools", "gateway_nodes.py")  # the scripted nodes (see its header)


class Proc:
    """A MicroPython process; its output lines kept as (arrival time, line)."""

    def __init__(self, argv_script=None, module=None, args=(), heapsize="1m", name="proc", **kw):
        self.name = name
        self.proc = mpy.popen_mpy(script=argv_script, module=module, args=list(args), heapsize=heapsize,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
        self.lines = []
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in iter(self.proc.stdout.readline, ""):
            with self._lock:
                self.lines.append((time.time(), line.rstrip("\n")))

    def mark(self):
        with self._lock:
            return len(self.lines)

    def find(self, pattern, since=0):
        rx = re.compile(pattern)
        with self._lock:
            return [(t, ln) for t, ln in self.lines[since:] if rx.search(ln)]

    def output(self, last=60):
        with self._lock:
            return "\n".join("%.3f %s" % (t, ln) for t, ln in self.lines[-last:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


# MicroPython source for hub fuzz scripts (tests/test_link_session.py, tests/test_link_auth.py): n frames at
# hub.frame() from addr(): random bytes one time in four, else a seed frame as it was or with up to three bytes
# changed; tick() every 500 frames. -> (escapes: anything but FrameError, printed; FrameErrors).
HOSTILE_FRAMES = r"""
import random
from micromesos import linkframe as F


def hostile_frames(hub, seeds, n, addr, tick):
    escapes = errors = 0
    for i in range(n):
        a = addr()
        if i % 4 == 0:
            f = bytearray(random.getrandbits(8) for _ in range(random.getrandbits(7)))
        else:
            f = bytearray(seeds[random.getrandbits(16) % len(seeds)])
            for _ in range(random.getrandbits(2)):
                f[random.getrandbits(16) % len(f)] = random.getrandbits(8)
        try:
            lk = hub.frame(a, f, len(f))
            if lk is not None:
                lk.flush()
        except F.FrameError:
            errors += 1
        except Exception as e:
            escapes += 1
            print("ESCAPE", repr(e))
        if i % 500 == 0:
            tick()
    return escapes, errors
"""


def stop_and_show(*procs, last=150):
    """Stop every Proc (None: one never started), then print the last lines of each: pytest shows them when
    the test fails."""
    procs = [p for p in procs if p is not None]
    for p in procs:
        p.stop()
    for p in procs:
        print("--- %s ---\n%s" % (p.name, p.output(last)))


def node_script(tmp_path):
    return NODES


def start_node(script, port, name, wake_ms, listen_ms, stop_after_ms=0, nonce=0, count=1, heapsize=None):
    return Proc(script, args=["127.0.0.1", str(port), name, str(wake_ms), str(listen_ms), str(stop_after_ms),
                              str(nonce), str(count)], heapsize=heapsize or "512k", name=name)


def gateway_config(tmp_path, master_port, **kw):
    cfg = {"master": "127.0.0.1:%d" % master_port, "ip": "127.0.0.1", "port": mpy.free_port(),
           "link_ip": "127.0.0.1", "link_port": free_udp_port(), "checkpoint_dir": os.path.join(str(tmp_path), "gw"),
           "registration_backoff_ms": 300, "registration_backoff_max_ms": 2000, "tick_ms": 20,
           "link_rto_ms": 100, "link_rto_max_ms": 800, "log_level": "info"}
    cfg.update(kw)
    path = os.path.join(str(tmp_path), "gateway.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return cfg, path


def start_gateway(cfg_path):
    return Proc(module="mgateway.gateway", args=[cfg_path], heapsize="4m", name="gateway")


def free_udp_port():
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
