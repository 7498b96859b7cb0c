#!/usr/bin/env python3
# `make sim`: a virtual board (the MicroPython unix port running firmware/main.py with boards/unix)
# registering with the loopback stand-in master (or a real mesos-master), shown as it happens. MIT licence.
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import mpy  # noqa: E402

PY = sys.executable




def route_ip(master):
    """The local IPv4 address the OS would use to reach `master` (no packet is sent)."""
    host, _, port = master.rpartition(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((host, int(port)))
        return s.getsockname()[0]
    finally:
        s.close()


def pump(proc, prefix, sink, seen):
    for line in iter(proc.stdout.readline, ""):
        line = line.rstrip("\n")
        seen.append(line)
        sink("%s %s" % (prefix, line))


class Control:
    """The stand-in master's JSON control API (POST/GET /control/... on the master's port)."""

    def __init__(self, port):
        self.base = "http://127.0.0.1:%d/control/" % port

    def call(self, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")

    def up(self, deadline):
        while time.time() < deadline:
            try:
                self.call("agents", timeout=2)
                return True
            except OSError:
                time.sleep(0.1)
        return False


def main():
    ap = argparse.ArgumentParser(description="Run a virtual board against the stand-in master or a real master.")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until Ctrl-C)")
    ap.add_argument("--master", help="ip:port of a real mesos-master (default: start the stand-in master)")
    ap.add_argument("--advertise-ip", help="address the master must reach the board at (default: the route "
                    "to --master, or 127.0.0.1)")
    ap.add_argument("--agent-port", type=int, default=0, help="board listener port (default: a free port)")
    ap.add_argument("--ping-interval", type=float, default=5.0,
                    help="stand-in master's ping interval, seconds (a real master: 15)")
    ap.add_argument("--task", default="hello", help="task module to launch once registered ('' for none)")
    ap.add_argument("--device", default=mpy.DEVICE, choices=mpy.DEVICES,
                    help="wheel: the 64-bit unix port; loaded/frozen: the 32-bit device model (make devmodel)")
    ap.add_argument("--heapsize", default=None, help="MicroPython heap (default: %s on the wheel, %s on the "
                    "device models)" % (mpy.BOARD_HEAPSIZE, mpy.DEVICE_HEAPSIZE))
    a = ap.parse_args()
    a.heapsize = a.heapsize or mpy.board_heapsize(a.device)

    out = lambda s: print(s, flush=True)  # noqa: E731
    work = os.path.join(ROOT, "build", "sim")
    shutil.rmtree(work, ignore_errors=True)  # a fresh board every run: new identity, empty flash
    os.makedirs(os.path.join(work, "board", "tasks"))
    for t in ("hello.py", "thermo.py"):  # what `make task-upload` would have put on a board
        src = os.path.join(ROOT, "tasks", t)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(work, "board", "tasks", t))
    agent_port = a.agent_port or mpy.free_port()
    procs = []
    seen_master, seen_board = [], []
    ctl = None
    if a.master:
        master = a.master
        adv = a.advertise_ip or route_ip(master)
        out("sim: virtual board against the real master %s; it must reach the board at %s:%d"
            % (master, adv, agent_port))
    else:
        mport = mpy.free_port()
        master = "127.0.0.1:%d" % mport
        adv = a.advertise_ip or "127.0.0.1"
        m = subprocess.Popen([PY, os.path.join(ROOT, "tools", "standin_master.py"), "--port", str(mport),
                              "--ping-interval", str(a.ping_interval)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        procs.append(m)
        threading.Thread(target=pump, args=(m, "master |", out, seen_master), daemon=True).start()
        ctl = Control(mport)
        if not ctl.up(time.time() + 15):
            out("sim: the stand-in master did not start")
            return 1
        out("sim: stand-in master (a loopback test fixture, not mesos-master) at master@%s, pinging every %gs"
            % (master, a.ping_interval))
    cfg = {"master": master, "ip": "0.0.0.0" if a.master else "127.0.0.1", "port": agent_port,
           "advertise_ip": adv, "fs": os.path.join(work, "board"), "seed": 1, "log_level": "info"}
    cfg_path = os.path.join(work, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    # A board runs bytecode, not sources; the device models bring the agent themselves (mpy.device_code).
    code = (mpy.compile_tree(os.path.join(ROOT, "build", "sim-mpy")),) if a.device == "wheel" else ()
    b = mpy.popen_mpy(script=os.path.join(ROOT, "firmware", "main.py"), args=[cfg_path], heapsize=a.heapsize,
                      extra_path=code, stdout=subprocess.PIPE, device=a.device,
                      stderr=subprocess.STDOUT, text=True)
    procs.append(b)
    threading.Thread(target=pump, args=(b, "board  |", out, seen_board), daemon=True).start()
    out("sim: virtual board (MicroPython unix port, %s, -X heapsize=%s) at slave(1)@%s:%d"
        % (a.device, a.heapsize, adv, agent_port))

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    t_end = time.time() + a.seconds if a.seconds else None
    launched = False
    try:
        while not stop.is_set() and (t_end is None or time.time() < t_end):
            if b.poll() is not None:
                out("sim: the board exited with status %d" % b.returncode)
                break
            if ctl and not launched and any("registered with" in s for s in seen_board):
                launched = True
                agents = ctl.call("agents")
                for ag in agents if isinstance(agents, list) else agents.get("agents", []):
                    out("sim: the master now offers agent %s: %s" % (ag.get("id"), ag.get("total")))
                if a.task:
                    try:
                        fw = ctl.call("framework", {"name": "sim-framework", "capabilities":
                                                    ["PARTITION_AWARE", "TASK_KILLING_STATE"]})
                        r = ctl.call("launch", {"framework_id": fw.get("framework_id"), "task_id": a.task + "-1",
                                                "command": a.task, "resources": "cpus:0.1;mem:0.01"})
                        out("sim: launched task %s: %s" % (a.task + "-1", r))
                    except OSError as e:
                        out("sim: task launch failed: %s" % e)
            time.sleep(0.2)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT if p is b else signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
    pongs = sum("PongSlaveMessage" in s for s in seen_master)
    reg = any("registered with" in s for s in seen_board)
    out("sim: summary: registered=%s pings_answered=%d (board lines %d, master lines %d)"
        % ("yes" if reg else "no", pongs, len(seen_board), len(seen_master)))
    return 0 if reg or not a.seconds else 1


if __name__ == "__main__":
    sys.exit(main())
