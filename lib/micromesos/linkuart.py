# UART transport of the node<->gateway link, the node's end (docs/LINK.md §6.3): frames framed by linkserial
# (COBS + CRC-16, 0x00 between) on a byte stream: machine.UART on a board, a tty from open_tty() on the unix
# port. One asyncio task reads it. MIT licence. The gateway's end (mgateway/uart.py) uses the same class.
import asyncio
import select

from micropython import const

from .linkframe import hand
from .linkserial import Deframer, encode, encoded_size

_IDLE_MS = const(20)  # a wake-up that read nothing (a hung-up tty keeps polling readable): wait this long
_MAX_READS = const(8)  # reads per wake-up before the other tasks get the loop
# Linux termios bits (the unix port's termios exports only setraw/tcgetattr/tcsetattr and the speeds).
_IFLAG_OFF = const(0x8 | 0x40 | 0x80 | 0x200 | 0x1000)  # PARMRK INLCR IGNCR IUCLC IXOFF: no byte changed or added
_CFLAG_ON = const(0x80 | 0x800)  # CREAD CLOCAL: receive, ignore the modem lines (open never waits for DCD)
_CSTOPB = const(0x40)
_VTIME = const(5)
_VMIN = const(6)


def _ignore(*frame):
    return None  # no owner yet


def open_tty(path, baud=115200):
    """The unix port: a serial device or pty opened for the link, 8N1 raw (no echo, no translation, no flow
    control) with VMIN 0 / VTIME 0, so readinto() returns what has arrived and never blocks. Linux only."""
    import termios  # type: ignore[import-not-found]  # the unix port's; a board passes its machine.UART

    speed = getattr(termios, "B%d" % baud, None)
    if speed is None:
        raise ValueError("baud %d: not a speed this port's termios exports" % baud)
    f = open(path, "r+b")
    fd = f.fileno()
    termios.setraw(fd)  # leaves VMIN 1: MicroPython's readinto() would then wait to fill its whole buffer
    a = termios.tcgetattr(fd)
    a[0] &= ~_IFLAG_OFF
    a[2] = (a[2] | _CFLAG_ON) & ~_CSTOPB
    a[4] = a[5] = speed
    a[6][_VMIN] = 0
    a[6][_VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, a)
    return f


class UARTNode:
    """A node's end on a byte stream with non-blocking readinto(buf) -> count (0 or None: nothing there),
    write(buf, n) and select.poll support (machine.UART; open_tty() on unix). on_frame(buf, n) is called for
    each frame whose CRC holds (buf reused for the next); after each batch, after_batch(). send(frame) never
    raises. Counters: bad (frames the link refused: FrameError), dropped (damaged on the wire: CRC, COBS, too
    long), lost (frames not written: no room, write error), errors (handler failures)."""

    def __init__(self, stream, mtu, rxbuf=64):
        self.s = stream
        self.mtu = mtu
        # A 0x00 before every frame too: line noise since the last frame ends there and costs no good frame.
        self.tx = bytearray(1 + encoded_size(mtu))
        self.txe = memoryview(self.tx)[1:]
        self.rx = bytearray(rxbuf)
        self.de = Deframer(mtu, self._frame)
        self.wp = select.poll()  # is there room to write? (a stalled USB-CDC or pty must not block the loop)
        self.wp.register(stream, select.POLLOUT)
        self.on_frame = _ignore
        self.after_batch = None
        self.bad = self.lost = self.errors = 0
        self.last_error = None

    @property
    def dropped(self):
        return self.de.bad

    def _frame(self, buf, n):
        hand(self, buf, n)

    def _room(self):
        for _obj, ev in self.wp.ipoll(0):  # no allocation: ipoll reuses its tuple
            return ev & select.POLLOUT
        return 0

    def send(self, frame):
        n = len(frame)
        if n > self.mtu or not self._room():
            self.lost += 1  # the link sends it again (its timer); a line without room is a lossy one
            return
        n = encode(frame, n, self.txe) + 1
        try:
            w = self.s.write(self.tx, n)
        except OSError:  # EIO: the line hung up
            w = 0
        if w != n:  # cut short: the receiver's CRC drops the rest, the leading 0x00 saves the next frame
            self.lost += 1

    async def run(self):
        s = self.s
        rx = self.rx
        de = self.de
        while True:
            yield asyncio.core._io_queue.queue_read(s)  # type: ignore[attr-defined]  # as gate.py waits
            got = 0
            for _ in range(_MAX_READS):
                try:
                    n = s.readinto(rx)
                except OSError:  # EIO after a hang-up: nothing to read
                    n = 0
                if not n:
                    break
                got += n
                de.feed(rx, n)
            if got:
                if self.after_batch:
                    self.after_batch()
                await asyncio.sleep_ms(0)  # a line that keeps talking still lets every other task run
            else:
                await asyncio.sleep_ms(_IDLE_MS)

    def close(self):
        self.s.close()
