# ESP-NOW transport of the node<->gateway link, the gateway's end (docs/LINK.md §6.2), for an ESP32 gateway
# (the Wi-Fi <-> ESP-NOW bridge): one radio for every node, nodes told apart by MAC, one asyncio task reading
# it. ESP-NOW sends only to registered peers (20 at most, 6 encrypted): a node becomes one when a frame goes
# to it, and the peer used longest ago makes room. MIT licence.
import time

import asyncio
from micropython import const

from micromesos.linkespnow import MAX_FRAME, radio, ring_for
from .hub import flush_all, take

_EXIST = const(12395)  # ESP_ERR_ESPNOW_EXIST
_MAX_PEERS = const(20)  # ESP_NOW_MAX_TOTAL_PEER_NUM
_MAX_ENCRYPTED = const(6)  # ESP_NOW_MAX_ENCRYPT_PEER_NUM (the default build)


def _ignore(addr, buf, n):
    return None  # no owner yet


class ESPNowHub:
    """The UDPHub surface: on_frame(mac, buf, n) -> the Link it touched (or None), flush()ed after the batch;
    sender(mac) makes a Link's out(). rxbuf: the receive ring (frames that arrive between two reads; a board
    takes it from the heap). lmk: one 16-byte key for every node (then at most 6 peers at once)."""

    max_batch = 32  # packets read per wake-up before others get the loop

    def __init__(self, mtu=MAX_FRAME, e=None, rxbuf=ring_for(16), lmk=None):
        if not 0 < mtu <= MAX_FRAME:
            raise ValueError("mtu: up to %d on ESP-NOW" % MAX_FRAME)
        self.e = radio(rxbuf, e)
        self.mtu = mtu
        self.lmk = lmk
        self.max_peers = _MAX_ENCRYPTED if lmk else _MAX_PEERS
        self.peers = {}  # mac -> ticks_ms it was last sent to: the radio's peer table as we filled it
        self.on_frame = _ignore
        self.bad = self.lost = self.errors = self.evicted = 0
        self.last_error = None

    def _peer(self, mac):
        peers = self.peers
        if mac in peers:
            peers[mac] = time.ticks_ms()
            return
        e = self.e
        if len(peers) >= self.max_peers:  # the table is full: the peer sent to longest ago goes
            now = time.ticks_ms()
            old = None
            age = -1
            for m, t in peers.items():
                if time.ticks_diff(now, t) > age:
                    old = m
                    age = time.ticks_diff(now, t)
            del peers[old]
            self.evicted += 1
            try:
                e.del_peer(old)
            except OSError:
                pass
        try:
            e.add_peer(mac, self.lmk)
        except OSError as x:
            if x.args[0] != _EXIST:
                raise
        peers[mac] = time.ticks_ms()

    def sender(self, mac):
        mac = bytes(mac)

        def out(frame):
            try:
                self._peer(mac)
                self.e.send(mac, frame, False)
            except (OSError, ValueError):  # the table refused it, NO_MEM, ...: a loss the link repairs
                self.lost += 1

        return out

    async def run(self):
        e = self.e
        touched = []
        while True:
            yield asyncio.core._io_queue.queue_read(e)  # type: ignore[attr-defined]
            for _ in range(self.max_batch):
                mac, msg = e.irecv(0)
                if mac is None:
                    break
                take(self, mac, msg, len(msg), touched)  # mac: the radio's own bytes for this peer
            flush_all(touched)
            await asyncio.sleep_ms(0)

    def close(self):
        for mac in self.peers:
            try:
                self.e.del_peer(mac)
            except OSError:
                pass
        self.peers.clear()
