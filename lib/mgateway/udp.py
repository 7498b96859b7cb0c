# UDP transport of the node<->gateway link, the gateway's end (docs/LINK.md §6.1): one non-blocking socket
# for every node, read by one asyncio task; nodes told apart by address. MIT licence.
import asyncio
import errno

from micromesos.linkudp import udp_socket

from .hub import flush_all, take

_AGAIN = errno.EAGAIN


def _ignore(addr, buf, n):
    return None  # no owner yet


class UDPHub:
    """The gateway's end: one socket for every node. on_frame(addr, buf, n) -> the Link it touched (or
    None); each touched link is flush()ed after the batch. sender(addr) makes a Link's out()."""

    max_batch = 32  # datagrams read per wake-up before others get the loop

    def __init__(self, ip, port, mtu):
        self.s = udp_socket(ip, port)
        self.mtu = mtu
        self.on_frame = _ignore
        self.bad = self.lost = self.errors = 0
        self.last_error = None

    def sender(self, addr):
        s = self.s

        def out(frame):
            try:
                s.sendto(frame, addr)
            except OSError:
                self.lost += 1

        return out

    async def run(self):
        s = self.s
        touched = []
        while True:
            yield asyncio.core._io_queue.queue_read(s)  # type: ignore[attr-defined]
            for _ in range(self.max_batch):
                try:
                    data, addr = s.recvfrom(self.mtu + 1)
                except OSError as e:
                    if e.errno == _AGAIN:
                        break
                    self.lost += 1
                    continue
                take(self, addr, data, len(data), touched)
            flush_all(touched)
            await asyncio.sleep_ms(0)  # a flood of datagrams still lets every other task run

    def close(self):
        self.s.close()
