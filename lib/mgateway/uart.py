# UART transport of the node<->gateway link, the gateway's end (docs/LINK.md §6.3): one serial line, one node
# (the wire is the address); the line's name is its address in the hub. MIT licence.
from micromesos.linkuart import UARTNode, open_tty  # noqa: F401  (open_tty: for the gateway's setup)


def _ignore(addr, buf, n):
    return None  # no owner yet


class UARTHub:
    """The gateway's end of one serial line: the UDPHub surface. on_frame(addr, buf, n) -> the Link it touched
    (or None), flush()ed after the batch; sender(addr) makes a Link's out(). addr: the line's name (e.g. its
    device path). A gateway with several lines makes one UARTHub each and gives LinkHub a sender that picks
    the hub by address (LINK.md §6.3)."""

    def __init__(self, stream, mtu, addr):
        self.line = UARTNode(stream, mtu)
        self.line.on_frame = self._frame
        self.line.after_batch = self._flush
        self.addr = addr
        self.on_frame = _ignore
        self.touched = None

    def _frame(self, buf, n):
        lk = self.on_frame(self.addr, buf, n)
        if lk is not None:
            self.touched = lk  # one node per line: at most one Link

    def _flush(self):
        lk = self.touched
        if lk is not None:
            self.touched = None
            lk.flush()

    def sender(self, addr):
        if addr != self.addr:
            raise ValueError("not this line")
        return self.line.send

    # The counters, as UDPHub has them (dropped: frames damaged on the wire).
    @property
    def bad(self):
        return self.line.bad

    @property
    def lost(self):
        return self.line.lost

    @property
    def errors(self):
        return self.line.errors

    @property
    def dropped(self):
        return self.line.dropped

    @property
    def last_error(self):
        return self.line.last_error

    def run(self):
        return self.line.run()

    def close(self):
        self.line.close()
