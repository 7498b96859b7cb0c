# ESP-NOW transport of the node<->gateway link, the node's end (docs/LINK.md §6.2): one frame per ESP-NOW
# packet to and from the gateway's MAC, read with irecv() (reuses its buffers: no allocation per frame) by one
# asyncio task. MIT licence. The gateway's end is mgateway/espnow.py.
import asyncio

from micropython import const

from .linkframe import hand

MAX_FRAME = const(250)  # ESP-NOW v1's largest payload: max_frame on this transport
_EXIST = const(12395)  # ESP_ERR_ESPNOW_EXIST: add_peer() of a peer already there
_PKT = const(263)  # receive ring bytes per full packet: 250 + its 13-byte header (modespnow.c)
_MAX_BATCH = const(16)


def _ignore(*frame):
    return None  # no owner yet


def radio(rxbuf, e=None):
    """The ESPNow object, active, its receive ring rxbuf bytes (set before active(True); on a board the ring
    comes out of the Python heap). The WLAN interface must be active first (LINK.md §6.2)."""
    if e is None:
        # ESP32 only (rp2 has no espnow); __import__: the esp32 stub of espnow does not type-check itself.
        e = __import__("espnow").ESPNow()
    if not e.active():
        e.config(rxbuf=rxbuf)
        e.active(True)
    return e


def ring_for(frames):
    """rxbuf that holds `frames` full-size packets: modespnow.c drops a packet unless header + message is
    less than the free space, and a ring of n bytes has n - 1 free."""
    return frames * _PKT + 2


class ESPNowNode:
    """A node's end: the UDPNode surface. on_frame(buf, n) for each packet from the gateway (buf is reused by
    the next irecv); after each batch, after_batch(). send(frame) never raises. window: the node's receive
    window (the gateway may send that many frames at once): the ring holds them and one more."""

    def __init__(self, gateway_mac, mtu=MAX_FRAME, window=2, e=None, lmk=None):
        if not 0 < mtu <= MAX_FRAME:
            raise ValueError("mtu: up to %d on ESP-NOW" % MAX_FRAME)
        self.e = radio(ring_for(window + 1), e)
        self.gw = bytes(gateway_mac)
        try:
            self.e.add_peer(self.gw, lmk)
        except OSError as x:
            if x.args[0] != _EXIST:
                raise
        self.mtu = mtu
        self.on_frame = _ignore
        self.after_batch = None
        self.bad = self.lost = self.errors = self.foreign = 0  # foreign: packets from another MAC
        self.last_error = None

    def send(self, frame):
        try:
            self.e.send(self.gw, frame, False)  # no sync: the link's acks are the check, not the radio's
        except (OSError, ValueError):  # ESP_ERR_ESPNOW_NO_MEM after its 2 s of retries, IF, ...: a loss
            self.lost += 1

    async def run(self):
        e = self.e
        gw = self.gw
        while True:
            yield asyncio.core._io_queue.queue_read(e)  # type: ignore[attr-defined]  # as aioespnow waits
            for _ in range(_MAX_BATCH):
                mac, msg = e.irecv(0)
                if mac is None:
                    break
                if mac != gw:
                    self.foreign += 1  # anyone may send to us; only the gateway's frames count
                    continue
                hand(self, msg, len(msg))  # the link refuses one over max_frame (counted in bad)
            if self.after_batch:
                self.after_batch()
            await asyncio.sleep_ms(0)

    def close(self):
        try:
            self.e.del_peer(self.gw)
        except OSError:
            pass
