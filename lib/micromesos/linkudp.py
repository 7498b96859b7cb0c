# UDP transport of the node<->gateway link, the node's end (docs/LINK.md §6.1): one non-blocking socket
# connected to the gateway (the kernel drops anyone else's datagrams), read by one asyncio task. MIT licence.
# The gateway's end is mgateway/udp.py.
import asyncio
import errno
import socket

from micropython import const

from .linkframe import hand

_AGAIN = errno.EAGAIN  # MicroPython has no EWOULDBLOCK: the same number on its ports
_RETRY_MS = const(20)


def _ignore(*frame):
    return None  # no owner yet


def udp_socket(ip, port):
    """A non-blocking UDP socket bound to ip:port (port 0: any)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if port:  # with port 0 it would let Linux hand two sockets the same port (one never hears its gateway)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(socket.getaddrinfo(ip, port)[0][-1])
    s.setblocking(False)
    return s


class UDPNode:
    """A node's end: on_frame(buf, n) is called for each datagram from the gateway; after each batch,
    after_batch() (the link's flush). send(frame) never raises."""

    # Frames refused (FrameError), sends or reads refused, handler errors: zeros here, an instance slot once
    # one counts.
    bad = lost = errors = 0
    last_error = None

    def __init__(self, gateway_ip, gateway_port, mtu, ip="0.0.0.0", port=0):
        self.s = udp_socket(ip, port)
        # connect(): the kernel drops datagrams from anyone but the gateway, and read/write need no address.
        self.s.connect(socket.getaddrinfo(gateway_ip, gateway_port)[0][-1])
        self.mtu = mtu
        self.on_frame = _ignore
        self.after_batch = None

    def send(self, frame):
        try:
            self.s.send(frame)
        except OSError:  # no buffer, no route, the gateway's port refused an earlier one: a loss
            self.lost += 1

    async def run(self):
        s = self.s
        mtu1 = self.mtu + 1  # one byte more: a longer datagram shows up as too long, not cut
        while True:
            yield asyncio.core._io_queue.queue_read(s)  # type: ignore[attr-defined]  # as gate.py waits
            while True:
                # recv(), not readinto(): a stream read goes on until the buffer is full and would run
                # datagrams together. One bytes object per frame (freed at the next collection); MicroPython
                # sockets have no recv_into (ESP-NOW's irecv reuses its buffer: LINK.md §6.2).
                try:
                    buf = s.recv(mtu1)
                except OSError as e:
                    if e.errno == _AGAIN:
                        break
                    self.lost += 1  # ECONNREFUSED from an ICMP error: nothing to read
                    continue
                except MemoryError:  # no block for it now (a small heap mid-launch): it waits in the socket
                    self.lost += 1
                    await asyncio.sleep_ms(_RETRY_MS)  # what holds the heap may finish meanwhile
                    break
                hand(self, buf, len(buf))
                buf = None  # not held past its handling (a launch run after the batch wants the heap)
            if self.after_batch:
                self.after_batch()

    def close(self):
        self.s.close()
