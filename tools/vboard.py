# Virtual board: the MicroPython unix port behind a pseudo-terminal, speaking the REPL protocol
# of a real board (friendly REPL, raw REPL, raw-paste, soft reset), so mpremote can drive it.
# MIT licence.
#
# One file, two halves:
#   python3 tools/vboard.py [--fs DIR]        host side (CPython): makes the pty, prints its path on
#                                             the first stdout line, starts the unix port and relays
#                                             bytes; a Ctrl-C byte from the host becomes SIGINT, like
#                                             a UART interrupt char on a board.
#   micropython tools/vboard.py --serve DIR   device side (runs inside the unix port): the REPL
#                                             loop, with DIR as the board's filesystem root ("/").
# Usage:  make board            then   mpremote connect <pty> resume exec "print(1)"
import sys

_CTRL_A = 1
_CTRL_B = 2
_CTRL_C = 3
_CTRL_D = 4
_CTRL_E = 5
_RAW_BANNER = "raw REPL; CTRL-B to exit\r\n"
_PASTE_WINDOW = 256  # raw-paste flow-control window; b"\x00\x01" holds no CR/LF byte


# ---------------------------------------------------------------------------------------------
# Device side (MicroPython unix port)
# ---------------------------------------------------------------------------------------------

class _Device:
    def __init__(self, root, busy_fd):
        import os

        self.os = os
        self.root = root
        # Tells the host half when user code runs, so only then does a 0x03 become SIGINT; at a
        # prompt the 0x03 byte is handled in-band and no KeyboardInterrupt can hit the REPL itself.
        self.busy_pipe = open("/proc/self/fd/%d" % busy_fd, "wb") if busy_fd >= 0 else None
        self.inp = sys.stdin.buffer
        self.out = sys.stdout.buffer
        self.base_modules = set(sys.modules)
        self.globals = {"__name__": "__main__"}

    def w(self, s):
        self.out.write(s.encode() if isinstance(s, str) else s)

    def busy(self, on):
        if self.busy_pipe is not None:
            self.busy_pipe.write(b"B" if on else b"I")

    def run(self, code, name, mode="exec"):
        """compile + exec/eval user code with the busy flag up; exceptions propagate."""
        self.busy(True)
        try:
            c = compile(code, name, mode)
            if mode == "eval":
                return eval(c, self.globals)
            exec(c, self.globals)
            return None
        finally:
            self.busy(False)

    def getc(self):
        while True:
            try:
                b = self.inp.read(1)
                break
            except KeyboardInterrupt:
                continue  # a late SIGINT; the 0x03 byte itself follows in-band
        if not b:
            raise EOFError
        return b[0]

    def reset_state(self):
        # What a soft reset does on a board: fresh globals, user modules forgotten, cwd back to "/".
        for name in list(sys.modules):
            if name not in self.base_modules:
                del sys.modules[name]
        self.globals = {"__name__": "__main__"}
        self.os.chdir(self.root)
        sys.path[:] = ["", ".frozen", self.root + "/lib"]  # a board's sys.path: '', .frozen, /lib

    def run_file(self, name):
        try:
            self.os.stat(name)
        except OSError:
            return
        try:
            with open(name) as f:
                code = f.read()
            self.run(code, name)
        except KeyboardInterrupt:
            self.w("KeyboardInterrupt\r\n")
        except SystemExit:
            pass
        except Exception as e:  # noqa: BLE001 - a board prints the traceback and carries on
            sys.print_exception(e)

    def boot(self, run_main):
        self.reset_state()
        self.run_file("boot.py")
        if run_main:
            self.run_file("main.py")

    def execute(self, src):
        """Run one raw-REPL command: stdout, 0x04, traceback, 0x04 (as pyexec does)."""
        err = None
        try:
            self.run(src, "<stdin>")
        except SystemExit:
            pass
        except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt included, as on a board
            err = e
        self.w(b"\x04")
        if err is not None:
            sys.print_exception(err)
        self.w(b"\x04")

    def raw_repl(self):
        """Raw REPL until Ctrl-B. Returns "friendly" or "reset" (Ctrl-D on an empty line)."""
        self.w(_RAW_BANNER)
        buf = bytearray()
        while True:
            if not buf:
                self.w(">")
            while True:
                c = self.getc()
                if c == _CTRL_A:
                    buf = bytearray()
                    self.w("\r\n" + _RAW_BANNER)
                    break
                if c == _CTRL_B:
                    self.w("\r\n")
                    return "friendly"
                if c == _CTRL_C:
                    buf = bytearray()
                    continue
                if c == _CTRL_E and not buf:
                    if self.getc() == ord("A") and self.getc() == _CTRL_A:
                        self.raw_paste()
                        break
                    continue
                if c == _CTRL_D:
                    if not buf:
                        return "reset"
                    self.w("OK")
                    src = bytes(buf)
                    buf = bytearray()
                    self.execute(src)
                    break
                buf.append(c)

    def raw_paste(self):
        # Raw-paste (pyexec.c): "R\x01", window size (u16 LE), then 0x01 each time a window is used.
        self.w(b"R\x01" + bytes((_PASTE_WINDOW & 0xFF, _PASTE_WINDOW >> 8)))
        buf = bytearray()
        used = 0
        while True:
            c = self.getc()
            if c == _CTRL_D:
                self.w(b"\x04")
                break
            if c == _CTRL_C:
                self.w(b"\x04")  # abandoned paste: acknowledge and drop it
                return
            buf.append(c)
            used += 1
            if used == _PASTE_WINDOW:
                used = 0
                self.w(b"\x01")
        self.execute(bytes(buf))

    def friendly_repl(self):
        """Line REPL until Ctrl-A (-> "raw") or Ctrl-D (-> "reset")."""
        self.w("MicroPython (unix port) virtual board; Ctrl-A raw REPL, Ctrl-D soft reboot\r\n")
        line = bytearray()
        block = []
        self.w(">>> ")
        while True:
            c = self.getc()
            if c == _CTRL_A:
                self.w("\r\n")
                return "raw"
            if c == _CTRL_D and not line and not block:
                self.w("\r\n")
                return "reset"
            if c == _CTRL_C:
                line = bytearray()
                block = []
                self.w("\r\n>>> ")
                continue
            if c == _CTRL_B:
                self.w("\r\n")
                return "friendly"
            if c in (8, 127):
                if line:
                    line.pop()
                    self.w("\b \b")
                continue
            if c == 13 or c == 10:
                self.w("\r\n")
                text = line.decode()
                line = bytearray()
                if block or text.rstrip().endswith(":"):
                    if text.strip():
                        block.append(text)
                        self.w("... ")
                        continue
                    text = "\n".join(block)
                    block = []
                if text.strip():
                    self.interactive(text)
                self.w(">>> ")
                continue
            if c >= 32:
                line.append(c)
                self.out.write(bytes((c,)))

    def interactive(self, text):
        try:
            try:
                compile(text, "<stdin>", "eval")
                mode = "eval"
            except SyntaxError:
                mode = "exec"
            r = self.run(text, "<stdin>", mode)
            if r is not None:
                self.w(repr(r) + "\r\n")
        except SystemExit:
            pass
        except BaseException as e:  # noqa: BLE001 - shown, REPL continues
            sys.print_exception(e)

    def serve(self, run_main):
        self.boot(run_main)
        mode = "friendly"
        while True:
            try:
                if mode == "friendly":
                    mode = self.friendly_repl()
                elif mode == "raw":
                    mode = self.raw_repl()
                    if mode == "reset":
                        self.w("MPY: soft reboot\r\n")
                        self.boot(False)  # from the raw REPL a board runs boot.py only
                        mode = "raw"
                else:  # "reset" from the friendly REPL: boot.py and main.py, like a board
                    self.w("MPY: soft reboot\r\n")
                    self.boot(True)
                    mode = "friendly"
            except KeyboardInterrupt:
                continue  # SIGINT while idle: the 0x03 byte that caused it is handled in-band
            except EOFError:
                return


def _serve(argv):
    root = argv[argv.index("--serve") + 1]
    busy_fd = int(argv[argv.index("--busy-fd") + 1]) if "--busy-fd" in argv else -1
    run_main = "--no-main" not in argv
    argv.clear()  # sys.argv is [] on a board; firmware/main.py tells the two cases apart by it
    _Device(root, busy_fd).serve(run_main)


# ---------------------------------------------------------------------------------------------
# Host side (CPython)
# ---------------------------------------------------------------------------------------------

def _host(argv):
    import argparse
    import os
    import pty
    import select
    import signal
    import subprocess
    import threading
    import tty

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description="MicroPython unix port behind a pty, for mpremote")
    ap.add_argument("--fs", default=os.path.join(root, "var", "vboard"),
                    help="directory used as the board's filesystem (default var/vboard)")
    ap.add_argument("--device", default=None, choices=("wheel", "loaded", "frozen"),
                    help="wheel: the 64-bit unix port (default); loaded/frozen: the 32-bit device model "
                    "(make devmodel), without or with the agent frozen in")
    ap.add_argument("--heapsize", default=None, help="MicroPython heap (default 256k; 100k, a real "
                    "board's, on the device models, of which this REPL, Python here but C on a board, "
                    "holds ~9 KB)")
    ap.add_argument("--micropython", default=None, help="unix-port binary (default: the --device's)")
    ap.add_argument("--link", default=None, help="also make this symlink to the pty")
    ap.add_argument("--no-main", action="store_true", help="do not run main.py at power-on")
    args = ap.parse_args(argv)

    fs = os.path.abspath(args.fs)
    os.makedirs(fs, exist_ok=True)
    sys.path.insert(0, os.path.join(root, "tests"))
    import mpy

    device = args.device or mpy.DEVICE
    exe = args.micropython or (os.environ.get("MICROPY_MICROPYTHON") if device == "wheel" else None) or (
        os.path.join(root, ".venv", "bin", "micropython") if device == "wheel" else mpy.device_cmd(device))
    heapsize = args.heapsize or ("256k" if device == "wheel" else mpy.DEVICE_HEAPSIZE)
    if not os.path.exists(exe):
        sys.exit("vboard: no MicroPython unix port at %s (run `make venv`)" % exe)

    master, slave = pty.openpty()
    tty.setraw(slave)  # no echo or CR/LF mangling before mpremote opens its end
    path = os.ttyname(slave)
    if args.link:
        try:
            os.unlink(args.link)
        except FileNotFoundError:
            pass
        os.symlink(path, args.link)

    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen"  # the device half sets a board's sys.path itself
    busy_r, busy_w = os.pipe()
    cmd = [exe, "-X", "heapsize=" + heapsize, os.path.abspath(__file__), "--serve", fs,
           "--busy-fd", str(busy_w)]
    if args.no_main:
        cmd.append("--no-main")
    proc = subprocess.Popen(cmd, cwd=fs, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            bufsize=0, pass_fds=(busy_w,))
    os.close(busy_w)
    busy = [False]
    print(path, flush=True)
    print("vboard: pid %d, fs %s; `mpremote connect %s resume repl`" % (proc.pid, fs, path),
          file=sys.stderr, flush=True)

    def to_device():
        while proc.poll() is None:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            try:
                proc.stdin.write(data)
            except (BrokenPipeError, OSError):
                return
            if b"\x03" in data and read_busy(0) and busy[0]:
                proc.send_signal(signal.SIGINT)  # interrupt running code, as a UART Ctrl-C does

    busy_lock = threading.Lock()

    def read_busy(timeout):
        # Both threads read the flags: a Ctrl-C sees every flag the device wrote before it (the
        # device raises the flag before running code, so before anything that code prints).
        if select.select([busy_r], [], [], timeout)[0]:
            with busy_lock:
                if select.select([busy_r], [], [], 0)[0]:
                    flags = os.read(busy_r, 64)
                    if not flags:
                        return False
                    busy[0] = flags[-1:] == b"B"
        return True

    def track_busy():
        while read_busy(None):
            pass

    def to_host():
        last_cr = False
        while True:
            data = os.read(proc.stdout.fileno(), 4096)
            if not data:
                return
            # A board's stdout is "cooked": every LF goes out as CR LF.
            out = bytearray()
            for b in data:
                if b == 10 and not last_cr:
                    out.append(13)
                out.append(b)
                last_cr = b == 13
            view = memoryview(bytes(out))
            while view:
                # Nobody reading the pty for 2 s: drop, as a UART with no listener does.
                _, ready, _ = select.select([], [master], [], 2.0)
                if not ready:
                    break
                n = os.write(master, view)
                view = view[n:]

    threading.Thread(target=track_busy, daemon=True).start()
    threading.Thread(target=to_device, daemon=True).start()
    pump = threading.Thread(target=to_host, daemon=True)
    pump.start()

    stopped = []

    def stop(*_):
        stopped.append(1)
        if proc.poll() is None:
            proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rc = proc.wait()
    if stopped:
        rc = 0  # asked to stop: a clean exit, not the child's -SIGTERM
    pump.join(timeout=1)
    if args.link:
        try:
            os.unlink(args.link)
        except OSError:
            pass
    return rc


if __name__ == "__main__":
    if sys.implementation.name == "micropython":
        _serve(sys.argv)
    else:
        sys.exit(_host(sys.argv[1:]))
