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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import launch  # noqa: E402
import mpy  # noqa: E402

PY = sys.executable
SESSION = launch.SESSION  # where `make launch` finds this sim: master, control port, the board's tasks/
# Shown once, where the master's side shows it (PROTOCOL.md §2.2, "Reboot race").
REREGISTER_NOTE = ("sim: that ReregisterSlaveMessage right after registering is deliberate: a board that rebooted "
                   "and registered again before the master noticed would get its old agent id back with tasks the "
                   "master still believes are running, so the agent always re-registers once with an empty task "
                   "list and the master reports those tasks lost (PROTOCOL.md §2.2, reboot race)")
FROZEN_EXAMPLES = ("hello", "thermo", "blink")  # frozen into the `frozen` device model (boards/unix/manifest.py)


def write_session(info):
    tmp = SESSION + ".part"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.replace(tmp, SESSION)


def route_ip(master):
    """The local IPv4 address the OS would use to reach `master` (no packet is sent)."""
    host, _, port = master.rpartition(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((host, int(port)))
        return s.getsockname()[0]
    finally:
        s.close()


def pump(proc, prefix, sink, seen, note=None):
    for line in iter(proc.stdout.readline, ""):
        line = line.rstrip("\n")
        seen.append(line)
        sink("%s %s" % (prefix, line))
        if note is not None:
            note(line)


Control = launch.Control  # the stand-in master's JSON control API


class Explainer:
    """Prints REREGISTER_NOTE once, after the first line showing the agent's re-registration."""

    def __init__(self, out, marker):
        self.out = out
        self.marker = marker
        self.done = False

    def __call__(self, line):
        if not self.done and self.marker in line:
            self.done = True
            self.out(REREGISTER_NOTE)


def memory_hint(device, heapsize):
    """What to say when a device model's board ran out of memory: the heap the suite holds that flavour to
    (tests/mpy.py BUDGET_HEAPSIZE, measured) next to the one it had."""
    model = "loaded" if mpy.runs_loaded_code(device) else device  # split runs the loaded model's code
    held = mpy.BUDGET_HEAPSIZE[model]
    more = ""
    if mpy.heap_kb(held) > mpy.heap_kb(mpy.DEVICE_HEAPSIZE):
        more = " (more than a stock board's %s: README, issue 9)" % mpy.DEVICE_HEAPSIZE
    return ("sim: the board ran out of memory in -X heapsize=%s; the tests hold the agent to %s on the %s model%s; "
            "HEAPSIZE=%s runs it" % (heapsize, held, model, more, held))


def start_task(ctl, master, task, resources, board_tasks, out):
    """The task `make sim` launches once registered: a module name on the board, or a .py file put there
    first (as `make launch` does). Its updates and messages are shown by a thread as `launch |` lines."""
    show = lambda s: out("launch | " + s[len("launch: "):] if s.startswith("launch: ") else "launch | " + s)  # noqa: E731
    try:
        if task.endswith(".py"):
            name, _ = launch.put_module(task, board_tasks)
        else:
            name = task
        if ctl is None:
            state = launch.real_launch(master, name, resources, name + "-1", show)
        else:
            fid, since = launch.standin_launch(ctl, name, resources, name + "-1", out=show)
            state = launch.stream(ctl, fid, name + "-1", since, show)
        show("task %s ended %s" % (name + "-1", state))
    except (launch.LaunchError, OSError) as e:
        out("sim: task launch failed: %s" % e)


def main():
    ap = argparse.ArgumentParser(description="Run a virtual board against the stand-in master or a real master.")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until Ctrl-C)")
    ap.add_argument("--master", help="ip:port of a real mesos-master (default: start the stand-in master)")
    ap.add_argument("--advertise-ip", help="address the master must reach the board at (default: the route "
                    "to --master, or 127.0.0.1)")
    ap.add_argument("--agent-port", type=int, default=0, help="board listener port (default: a free port)")
    ap.add_argument("--ping-interval", type=float, default=5.0,
                    help="stand-in master's ping interval, seconds (a real master: 15)")
    ap.add_argument("--task", default="hello", help="task to launch once registered: a module on the board, or a "
                    ".py file to put there first ('' for none)")
    ap.add_argument("--resources", default=launch.DEFAULT_RESOURCES, help="what --task asks the master for "
                    "(default %s)" % launch.DEFAULT_RESOURCES)
    ap.add_argument("--device", default=mpy.DEVICE, choices=mpy.DEVICES + (mpy.SPLIT,),
                    help="wheel: the 64-bit unix port; loaded/frozen: the 32-bit device model (make devmodel); "
                    "split: the loaded one in a stock ESP32's heap of two equal areas")
    ap.add_argument("--heapsize", default=None, help="MicroPython heap (default: %s on the wheel, %s on "
                    "split, %s on the other device models)" % (mpy.BOARD_HEAPSIZE, mpy.SPLIT_HEAPSIZE,
                                                               mpy.DEVICE_HEAPSIZE))
    ap.add_argument("--credential", help="the board authenticates (SASL CRAM-MD5) with this `mesos-agent "
                    "--credential` file {\"principal\": ..., \"secret\": ...}; the stand-in master then runs "
                    "with --authenticate_agents and that one credential")
    a = ap.parse_args()
    a.heapsize = a.heapsize or mpy.board_heapsize(a.device)

    out = lambda s: print(s, flush=True)  # noqa: E731
    work = os.path.join(ROOT, "build", "sim")
    shutil.rmtree(work, ignore_errors=True)  # a fresh board every run: new identity, empty flash
    board_tasks = os.path.join(work, "board", "tasks")
    os.makedirs(board_tasks)
    for t in sorted(os.listdir(os.path.join(ROOT, "tasks"))):  # every example, as `make task-upload` puts it
        if t.endswith(".py"):
            launch.put_module(os.path.join(ROOT, "tasks", t), board_tasks)
    auth_args = []
    if a.credential:  # copied onto the board's flash, kept apart from config.json like wifi.json
        shutil.copy(a.credential, os.path.join(work, "board", "credential.json"))
        with open(a.credential) as f:
            cred = json.load(f)
        creds = os.path.join(work, "master-credentials.json")
        with open(creds, "w") as f:
            json.dump({"credentials": [cred]}, f)
        auth_args = ["--authenticate_agents", "--credentials", creds]
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
                              "--ping-interval", str(a.ping_interval)] + auth_args,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        procs.append(m)
        threading.Thread(target=pump, args=(m, "master |", out, seen_master,
                                            Explainer(out, "<- ReregisterSlaveMessage")), daemon=True).start()
        ctl = Control(mport)
        if not ctl.up(time.time() + 15):
            out("sim: the stand-in master did not start")
            return 1
        out("sim: stand-in master (a loopback test fixture, not mesos-master) at master@%s, pinging every %gs"
            % (master, a.ping_interval))
    cfg = {"master": master, "ip": "0.0.0.0" if a.master else "127.0.0.1", "port": agent_port,
           "advertise_ip": adv, "fs": os.path.join(work, "board"), "seed": 1, "log_level": "info"}
    if a.credential:
        cfg["credential"] = "credential.json"
    cfg_path = os.path.join(work, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    # A board runs bytecode, not sources; the device models bring the agent themselves (mpy.device_code).
    code = (mpy.compile_tree(os.path.join(ROOT, "build", "sim-mpy")),) if a.device == "wheel" else ()
    b = mpy.popen_mpy(script=os.path.join(ROOT, "firmware", "main.py"), args=[cfg_path], heapsize=a.heapsize,
                      extra_path=code, stdout=subprocess.PIPE, device=a.device,
                      stderr=subprocess.STDOUT, text=True)
    procs.append(b)
    board_lines = threading.Thread(target=pump, args=(b, "board  |", out, seen_board,
                                                      Explainer(out, "registered with") if a.master else None),
                                   daemon=True)
    board_lines.start()
    out("sim: virtual board (MicroPython unix port, %s, -X heapsize=%s) at slave(1)@%s:%d"
        % (a.device, a.heapsize, adv, agent_port))

    session = {"pid": os.getpid(), "master": master, "standin": ctl is not None,
               "control_port": int(master.rpartition(":")[2]) if ctl is not None else None,
               "tasks_dir": board_tasks, "device": a.device, "agent_id": None,
               "frozen_tasks": list(FROZEN_EXAMPLES) if a.device == "frozen" else []}
    write_session(session)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    t_end = time.time() + a.seconds if a.seconds else None
    launched = hinted = False
    try:
        while not stop.is_set() and (t_end is None or time.time() < t_end):
            if b.poll() is not None:
                out("sim: the board exited with status %d" % b.returncode)
                board_lines.join(5)  # its last lines may still be in the pipe
                if a.device != "wheel" and not hinted and any("MemoryError" in s for s in seen_board):
                    out(memory_hint(a.device, a.heapsize))
                break
            reg = [s for s in seen_board if "registered with" in s]
            # Alive but short of heap before registering: the agent retries for good ("no heap for the
            # registration code: retrying"), so say now which heap runs it.
            if a.device != "wheel" and not hinted and not reg and any("no heap for" in s for s in seen_board):
                hinted = True
                out(memory_hint(a.device, a.heapsize))
            if not launched and reg:
                launched = True
                session["agent_id"] = reg[-1].rpartition(" as agent ")[2] or None
                write_session(session)
                if ctl:
                    agents = ctl.call("agents")
                    for ag in agents if isinstance(agents, list) else agents.get("agents", []):
                        out("sim: the master now offers agent %s: %s" % (ag.get("id"), ag.get("total")))
                if a.task and (ctl or a.task.endswith(".py")):
                    threading.Thread(target=start_task, args=(ctl, master, a.task, a.resources, board_tasks, out),
                                     daemon=True).start()
            time.sleep(0.2)
    finally:
        try:
            os.remove(SESSION)
        except OSError:
            pass
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
