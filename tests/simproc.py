# Running the README's commands as a user would: a clean checkout, `make sim` in one "terminal" (its own process
# group, stopped with Ctrl-C's SIGINT) and further commands in another. MIT licence.
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import mpy


def clean_checkout(dest):
    """The work tree's tracked and new (not ignored) files as they are now, nothing else: no build/, no
    var/; the pinned .venv is linked in so the test doesn't reinstall it (CI builds it from scratch)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=mpy.ROOT, capture_output=True, check=True).stdout
    for rel in sorted(set(filter(None, files.decode().split("\0")))):
        src = os.path.join(mpy.ROOT, rel)
        if not os.path.isfile(src):
            continue
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copy2(src, out)
    os.symlink(os.path.join(mpy.ROOT, ".venv"), os.path.join(dest, ".venv"))
    return dest


class Terminal:
    """A shell command running in `cwd` in its own process group, its output collected line by line."""

    def __init__(self, command, cwd):
        self.command = command
        self.lines = []
        self.p = subprocess.Popen(["bash", "-c", command], cwd=cwd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self):
        return "\n".join(self.lines)

    def wait_for(self, pattern, timeout):
        """The first output line matching regex `pattern`; AssertionError with the output after `timeout`
        seconds or if the command ended first."""
        rx = re.compile(pattern)
        t_end = time.time() + timeout
        while time.time() < t_end:
            for line in list(self.lines):
                if rx.search(line):
                    return line
            if self.p.poll() is not None:
                self._t.join(5)
                if any(rx.search(x) for x in self.lines):
                    continue
                raise AssertionError("%r ended (status %s) before printing %r:\n%s"
                                     % (self.command, self.p.returncode, pattern, self.text[-6000:]))
            time.sleep(0.1)
        raise AssertionError("no %r from %r within %gs:\n%s" % (pattern, self.command, timeout, self.text[-6000:]))

    def interrupt(self, timeout=20):
        """Ctrl-C, as in a terminal (SIGINT to the whole process group); SIGKILL if it does not end. -> status."""
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGINT)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)
        self._t.join(5)
        return self.p.returncode


def run(command, cwd, timeout):
    """A shell command to its end: (exit status, output)."""
    p = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr
