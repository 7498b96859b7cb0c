# Host fake of MicroPython's `espnow` module (ESP32) for tests in the unix port. MIT licence. tests/fakes is on
# MICROPYPATH only when testing; never shipped. The project's ESP-NOW transport is tested against THIS, not a radio.
#
# Faithful to the documented API (docs.micropython.org/en/latest/library/espnow.html) and to what
# ports/esp32/modules/espnow.py + modespnow.c do: ESPNow() is one radio per process; active(True) before use
# (OSError ESP_ERR_ESPNOW_NOT_INIT otherwise); messages of 1..250 bytes (ESP_ERR_ESPNOW_ARG beyond); 6-byte MACs
# (ValueError otherwise); send() only to a registered peer (ESP_ERR_ESPNOW_NOT_FOUND), None = every peer;
# at most 20 peers, 6 of them encrypted (ESP_ERR_ESPNOW_FULL), ESP_ERR_ESPNOW_EXIST for a second add_peer();
# irecv() returns the same list [mac, msg] every time, msg the same bytearray resized to the message and mac
# the peers_table key (one bytes object per peer); (None, None) on timeout; receiving from anyone, registered
# or not; the receive ring buffer of config(rxbuf=) bytes (default 526) with modespnow.c's admission rule, so
# packets that arrive while the application does not read are dropped and counted in stats(); asyncio can
# wait on it (select.poll / asyncio's IO queue, as aioespnow does).
#
# The air: each process's radio is a UDP socket on 127.0.0.1:PORT (env FAKE_ESPNOW_PORT, or set espnow.PORT
# before active(True)); its MAC is mac_of(PORT) = 02:00:7f:00:<port>, a packet's sender MAC comes from its UDP
# source port, so the packets can pass tools/linksim.py (each node gets a relay port, hence a MAC, of its own).
# Not modelled: encryption (keys are checked and counted, frames travel in clear), channels, RSSI (a constant),
# irq(), the MAC-layer ack of send(sync=True) (True when the datagram left), broadcast (sent to no one).
import io
import os
import select
import socket
import time

MAX_DATA_LEN = 250
ADDR_LEN = 6
KEY_LEN = 16
MAX_TOTAL_PEER_NUM = 20
MAX_ENCRYPT_PEER_NUM = 6

_ERRS = {12389: "ESP_ERR_ESPNOW_NOT_INIT", 12390: "ESP_ERR_ESPNOW_ARG", 12391: "ESP_ERR_ESPNOW_NO_MEM",
         12392: "ESP_ERR_ESPNOW_FULL", 12393: "ESP_ERR_ESPNOW_NOT_FOUND", 12394: "ESP_ERR_ESPNOW_INTERNAL",
         12395: "ESP_ERR_ESPNOW_EXIST", 12396: "ESP_ERR_ESPNOW_IF"}
NOT_INIT, ARG, FULL, NOT_FOUND, EXIST = 12389, 12390, 12392, 12393, 12395
_PKT = 13  # ring bytes per packet besides the message: 7-byte header + 6-byte MAC (modespnow.c espnow_pkt_t)
_BROADCAST = b"\xff\xff\xff\xff\xff\xff"
_LOOP = b"\x02\x00\x7f\x00"
_GET_FILENO = 10  # py/stream.h MP_STREAM_GET_FILENO
_POLL = 3  # MP_STREAM_POLL

PORT = int(os.getenv("FAKE_ESPNOW_PORT") or 0)


def mac_of(port):
    """The fake MAC of the radio on UDP port `port` (test helper, not in the real module)."""
    return _LOOP + bytes((port >> 8, port & 255))


def _err(code):
    return OSError(code, _ERRS[code])


def _mac(m):
    if not isinstance(m, (bytes, bytearray)) or len(m) != ADDR_LEN:
        raise ValueError("invalid buffer length")
    return bytes(m)


class _Radio:
    def __init__(self):
        self.sock = None
        self.poller = None
        self.rxbuf = 526
        self.timeout_ms = 300000
        self.ring = []  # [mac, msg]: taken off the socket, not yet read
        self.used = 0  # ring bytes in use
        self.peers = {}  # mac -> [lmk, channel, ifidx, encrypt]
        self.table = {}  # peers_table: mac -> [rssi, time_ms]; its keys are the MACs recv returns
        self.by_port = {}
        self.tx = self.tx_resp = self.tx_fail = self.rx = self.dropped = 0

    def need(self):
        if self.sock is None:
            raise _err(NOT_INIT)

    def drain(self):
        # What arrived since the application last looked goes into the ring, as the radio's callback puts it.
        s = self.sock
        while True:
            try:
                data, addr = s.recvfrom(MAX_DATA_LEN + 1)
            except OSError:
                return
            if not 0 < len(data) <= MAX_DATA_LEN:
                continue  # no radio carries it
            port = addr[2] << 8 | addr[3]  # the unix port gives a raw sockaddr_in
            mac = self.by_port.get(port)
            if mac is None:
                mac = self.by_port[port] = mac_of(port)
            # modespnow.c recv_cb: dropped if sizeof(pkt) + len >= ringbuf_free (free = size - 1 - used)
            if _PKT + len(data) >= self.rxbuf - 1 - self.used:
                self.dropped += 1
                continue
            self.used += _PKT + len(data)
            self.rx += 1
            entry = self.table.get(mac)
            if entry is None:
                entry = self.table[mac] = [0, 0]
            entry[0] = -40
            entry[1] = time.ticks_ms()
            self.ring.append((mac, data))

    def readable(self):
        if self.ring:
            return True
        for _ in self.poller.ipoll(0):
            return True
        return False


_radio = _Radio()


class ESPNow(io.IOBase):
    # Static buffers for allocation-free irecv(), as in ports/esp32/modules/espnow.py.
    _data = [None, bytearray(MAX_DATA_LEN)]
    _none_tuple = (None, None)

    def active(self, flag=None):
        r = _radio
        if flag is not None:
            if flag and r.sock is None:
                if not PORT:
                    raise RuntimeError("fake espnow: set FAKE_ESPNOW_PORT (or espnow.PORT) first")
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
                s.setblocking(False)
                r.sock = s
                r.poller = select.poll()
                r.poller.register(s, select.POLLIN)
            elif not flag and r.sock is not None:
                r.sock.close()
                r.sock = r.poller = None
                r.peers.clear()  # esp_now_deinit() removes every peer
                r.ring = []
                r.used = 0
        return r.sock is not None

    def config(self, param=None, rxbuf=-1, timeout_ms=None, rate=-1, pm=None):
        r = _radio
        if rxbuf >= 0:
            r.rxbuf = rxbuf  # takes effect at the next active(True) on a board; here at once
        if timeout_ms is not None:
            r.timeout_ms = timeout_ms
        if param is None:
            return None
        if param == "rxbuf":
            return r.rxbuf
        if param == "timeout_ms":
            return r.timeout_ms
        raise ValueError("unknown config param")

    def irq(self, callback):
        raise NotImplementedError("fake espnow: irq() not modelled (use asyncio)")

    def stats(self):
        r = _radio
        return (r.tx, r.tx_resp, r.tx_fail, r.rx, r.dropped)

    @property
    def peers_table(self):
        return _radio.table

    # --- receiving ---------------------------------------------------------------------------------

    def recvinto(self, data, timeout_ms=None):
        r = _radio
        r.need()
        if not isinstance(data, list) or len(data) < 2:
            raise ValueError("ESPNow.recvinto(): Invalid argument")
        if timeout_ms is None:
            timeout_ms = r.timeout_ms
        t0 = time.ticks_ms()
        while True:
            r.drain()
            if r.ring:
                break
            left = -1 if timeout_ms < 0 else timeout_ms - time.ticks_diff(time.ticks_ms(), t0)
            if timeout_ms >= 0 and left <= 0:
                return 0
            r.poller.poll(left)
        mac, msg = r.ring.pop(0)
        r.used -= _PKT + len(msg)
        buf = data[1]
        if isinstance(buf, bytearray):
            buf[:] = msg  # resized in place: the same bytearray, len() the message's
        else:
            buf[: len(msg)] = msg
        data[0] = mac
        if len(data) >= 4:
            data[2] = r.table[mac][0]
            data[3] = r.table[mac][1]
        return len(msg)

    def irecv(self, timeout_ms=None):
        n = self.recvinto(self._data, timeout_ms)
        return self._data if n else self._none_tuple

    def recv(self, timeout_ms=None):
        n = self.recvinto(self._data, timeout_ms)
        return [bytes(x) for x in self._data] if n else self._none_tuple

    def any(self):
        r = _radio
        r.need()
        r.drain()
        return bool(r.ring)

    def __iter__(self):
        return self

    def __next__(self):
        return self.irecv()

    def ioctl(self, req, arg):
        # select.poll / asyncio: the socket's fd while nothing waits in the ring, else poll through here.
        r = _radio
        if req == _GET_FILENO:
            return r.sock.fileno() if r.sock is not None and not r.ring else -22
        if req == _POLL:
            if r.sock is None:
                return 0
            return (arg & select.POLLIN if r.readable() else 0) | (arg & select.POLLOUT)
        return -22

    # --- sending -----------------------------------------------------------------------------------

    def send(self, mac, msg=None, sync=None):
        r = _radio
        r.need()
        if msg is None:
            msg, mac = mac, None
        sync = sync is None or bool(sync)
        targets = [_mac(mac)] if mac else [m for m in r.peers if m != _BROADCAST]
        n = len(msg)
        if not 0 < n <= MAX_DATA_LEN:
            raise _err(ARG)
        ok = True
        for m in targets:
            if m not in r.peers:
                raise _err(NOT_FOUND)
            r.tx += 1
            r.tx_resp += 1
            if m[:4] != _LOOP:
                r.tx_fail += 1  # nobody on the air answers
                ok = False
                continue
            try:
                r.sock.sendto(msg, socket.getaddrinfo("127.0.0.1", m[4] << 8 | m[5])[0][-1])
            except OSError:
                r.tx_fail += 1
                ok = False
        return ok or not sync

    # --- peers -------------------------------------------------------------------------------------

    def set_pmk(self, pmk):
        if len(pmk) != KEY_LEN:
            raise ValueError("invalid buffer length")

    def _info(self, lmk, channel, ifidx, encrypt, old=None):
        p = list(old) if old else [b"\x00" * KEY_LEN, 0, 0, False]
        if lmk is not None:
            p[3] = bool(lmk)
            if lmk:
                if len(lmk) != KEY_LEN:
                    raise ValueError("invalid buffer length")
                p[0] = bytes(lmk)
        if channel is not None:
            if not 0 <= channel <= 14:
                raise _err(ARG)
            p[1] = channel
        if ifidx is not None:
            p[2] = ifidx
        if encrypt is not None:
            p[3] = bool(encrypt)
        return p

    def add_peer(self, mac, lmk=None, channel=None, ifidx=None, encrypt=None):
        r = _radio
        mac = _mac(mac)
        r.need()
        p = self._info(lmk, channel, ifidx, encrypt)
        if mac in r.peers:
            raise _err(EXIST)
        if len(r.peers) >= MAX_TOTAL_PEER_NUM:
            raise _err(FULL)
        if p[3]:
            if mac == _BROADCAST:
                raise _err(ARG)
            if self.peer_count()[1] >= MAX_ENCRYPT_PEER_NUM:
                raise _err(FULL)
        r.peers[mac] = p

    def del_peer(self, mac):
        r = _radio
        mac = _mac(mac)
        r.need()
        if mac not in r.peers:
            raise _err(NOT_FOUND)
        del r.peers[mac]

    def mod_peer(self, mac, lmk=None, channel=None, ifidx=None, encrypt=None):
        r = _radio
        mac = _mac(mac)
        r.need()
        if mac not in r.peers:
            raise _err(NOT_FOUND)
        r.peers[mac] = self._info(lmk, channel, ifidx, encrypt, r.peers[mac])

    def get_peer(self, mac):
        r = _radio
        mac = _mac(mac)
        r.need()
        if mac not in r.peers:
            raise _err(NOT_FOUND)
        return (mac,) + tuple(r.peers[mac])

    def get_peers(self):
        r = _radio
        r.need()
        return tuple((m,) + tuple(p) for m, p in r.peers.items())

    def peer_count(self):
        r = _radio
        r.need()
        return (len(r.peers), sum(1 for p in r.peers.values() if p[3]))
