# A virtual board as a test fixture: the unix port running firmware/main.py with boards/unix, as a process.
# MIT licence. Output lines are collected by a thread; tests wait for log lines and kill/restart the board.
import asyncio
import json
import os
import re
import signal
import subprocess
import threading
import time

import mpy

CODE_DIR = os.path.join(mpy.ROOT, "build", "test-mpy")
free_port = mpy.free_port




class Board:
    """`Board(fs_dir, master_port, **config)`; start(), wait_line(regex), stop(), kill(), restart()."""

    def __init__(self, fs, master_port, heapsize=None, device=None, **cfg):
        self.fs = str(fs)
        os.makedirs(os.path.join(self.fs, "tasks"), exist_ok=True)
        self.port = cfg.pop("port", None) or mpy.free_port()
        self.cfg = {"master": "127.0.0.1:%d" % master_port, "ip": "127.0.0.1", "port": self.port,
                    "advertise_ip": "127.0.0.1", "fs": self.fs, "seed": 1, "log_level": "info",
                    "registration_backoff_factor": 0.05}
        self.cfg.update(cfg)
        self.device = device or mpy.DEVICE  # wheel | loaded | frozen (tests/mpy.py)
        self.heapsize = heapsize or mpy.board_heapsize(self.device)
        self.cfg_path = os.path.join(self.fs, "config.json")
        self.proc = None
        self.lines = []
        self._lock = threading.Lock()

    @property
    def upid(self):
        return "slave(1)@127.0.0.1:%d" % self.port

    def start(self):
        with open(self.cfg_path, "w") as f:
            json.dump(self.cfg, f)
        # The device models bring their own agent: frozen in, or the .mpy tree mpy.device_code() adds.
        code = (mpy.compile_tree(CODE_DIR),) if self.device == "wheel" else ()
        self.proc = mpy.popen_mpy(script=os.path.join(mpy.ROOT, "firmware", "main.py"), args=[self.cfg_path],
                                  heapsize=self.heapsize, extra_path=code, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, device=self.device)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        return self

    def _pump(self, proc):
        for line in iter(proc.stdout.readline, ""):
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def mark(self):
        with self._lock:
            return len(self.lines)

    def find(self, pattern, since=0):
        rx = re.compile(pattern)
        with self._lock:
            return [ln for ln in self.lines[since:] if rx.search(ln)]

    def wait_line(self, pattern, timeout=10.0, since=0):
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        i = since
        while time.time() < deadline:
            with self._lock:
                while i < len(self.lines):
                    if rx.search(self.lines[i]):
                        return self.lines[i]
                    i += 1
            if self.proc.poll() is not None and i >= len(self.lines):
                break
            time.sleep(0.02)
        raise AssertionError("board: no line matching %r within %.1fs (exit %s); output:\n%s"
                             % (pattern, timeout, self.proc.poll(), self.output()[-4000:]))

    async def await_line(self, pattern, timeout=10.0, since=0):
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, self.wait_line, pattern, timeout, since)

    def output(self):
        with self._lock:
            return "\n".join(self.lines)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Ctrl-C: the agent stops as a board's REPL would see it."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        """Power cut: no goodbye, only what is on the board's filesystem survives."""
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.kill()
        return self.start()

    def state_file(self, name):
        return os.path.join(self.fs, "state", name + ".json")


class CountingProxy:
    """TCP forwarder counting bytes each way; stands between the master and the board."""

    def __init__(self, target_port):
        self.target = target_port
        self.up = self.down = 0

    async def start(self):
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _conn(self, r1, w1):
        r2, w2 = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(r, w, up):
            try:
                while True:
                    d = await r.read(65536)
                    if not d:
                        break
                    if up:
                        self.up += len(d)
                    else:
                        self.down += len(d)
                    w.write(d)
                    await w.drain()
            except OSError:
                pass
            finally:
                w.close()
        await asyncio.gather(pipe(r1, w2, True), pipe(r2, w1, False))


# ---------------------------------------------------------------------------------------------
# The virtual board behind a pty (tools/vboard.py, what `make board` runs), driven as a user does:
# the real mpremote, the make targets, raw bytes on the pty.

MPREMOTE = os.path.join(mpy.ROOT, ".venv", "bin", "mpremote")


class PtyBoard:
    """`make board` as a process: .pty, remote(*mpremote args), exec(code), open_pty(), stop()."""

    def __init__(self, fs, main=False, device=None, heapsize=None):
        import sys

        self.fs = str(fs)
        argv = [sys.executable, os.path.join(mpy.ROOT, "tools", "vboard.py"), "--fs", self.fs]
        if not main:
            argv.append("--no-main")
        if device:
            argv += ["--device", device]
        if heapsize:
            argv += ["--heapsize", heapsize]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pty = self.proc.stdout.readline().strip()
        if not self.pty.startswith("/dev/"):
            raise AssertionError("vboard printed %r; stderr: %s" % (self.pty, self.proc.stderr.read()))
        self.banner = self.proc.stderr.readline()  # "vboard: pid ..., -X heapsize=...; ..."

    def remote(self, *args, timeout=60, check=True):
        """mpremote connect <pty> ARGS..., as a user would type it (add "resume" to keep the session)."""
        p = subprocess.run([MPREMOTE, "connect", self.pty] + list(args), cwd=mpy.ROOT, capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("mpremote %s failed (%d):\n%s\n%s" % (args, p.returncode, p.stdout, p.stderr))
        return p

    def exec(self, code):
        return self.remote("resume", "exec", code).stdout

    def open_pty(self):
        return PtyTranscript(os.open(self.pty, os.O_RDWR | os.O_NOCTTY))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class PtyTranscript:
    """Everything the board printed, read on demand; expect() looks only past the previous match, so
    a prompt printed earlier (the banner's, or one still in a buffer) can never satisfy a later wait."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = b""
        self.pos = 0

    def write(self, data):
        os.write(self.fd, data)

    def expect(self, token, timeout=60):
        import select

        deadline = time.time() + timeout
        while True:
            i = self.buf.find(token, self.pos)
            if i >= 0:
                seen, self.pos = self.buf[self.pos:i + len(token)], i + len(token)
                return seen
            left = deadline - time.time()
            assert left > 0, "no %r after %r" % (token, self.buf[self.pos:])
            if select.select([self.fd], [], [], min(left, 0.5))[0]:
                assert self._read(), "the board's pty closed (vboard exited) before %r; after %r" % (
                    token, self.buf[self.pos:])

    def _read(self):
        # False at end of file: vboard closed the pty (it exits when the interpreter does), and a read
        # then returns b"" at once for ever; drain() looped on that without end.
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # EIO: the other end is gone
            data = b""
        self.buf += data
        return bool(data)

    def drain(self, seconds=0.0):
        """Read whatever arrives for `seconds` more; returns everything not yet matched."""
        import select

        end = time.time() + seconds
        while True:
            left = end - time.time()
            if not select.select([self.fd], [], [], max(left, 0))[0]:
                if left <= 0:
                    return self.buf[self.pos:]
                continue
            if not self._read():
                return self.buf[self.pos:]

    def close(self):
        os.close(self.fd)
