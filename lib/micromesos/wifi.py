# Wi-Fi supervisor: one long-lived asyncio task keeps the station associated, watches its address and
# sets the clock from NTP. MIT licence. Started by firmware/main.py next to the agent, and by nodeboot for a node
# on UDP; never time.sleep()s.
import random
import time

import asyncio

from . import log

_W = "wifi"


def _jitter(ms):
    return ms + random.getrandbits(20) % (ms // 4 + 1)  # up to +25 %, so boards don't retry in step


class Supervisor:
    """Associates `nic` (a network.WLAN station) and keeps it so. A lost association (isconnected()
    False) is retried with capped, jittered backoff; every wait is an asyncio sleep, so the agent keeps
    answering pings meanwhile. A new DHCP address is handed to on_address(old, new) (main.py reboots into
    a new agent: PROTOCOL.md §1.6). The clock is set from `ntp_host` once associated, re-set daily, and
    retried in the background while the server can't be reached. Timings are class attributes."""

    POLL_MS = 2000          # association and address check while up
    WAIT_MS = 20000         # one association attempt
    STEP_MS = 200           # isconnected() poll during an attempt
    BACKOFF_MIN_MS = 1000
    BACKOFF_MAX_MS = 60000  # an unattended board keeps trying forever
    NTP_RETRY_MIN_MS = 30000
    NTP_RETRY_MAX_MS = 3600000
    NTP_RESYNC_MS = 86400000  # within ticks_diff's range (2^29 ms) on every port

    def __init__(self, nic, ssid, password, ntp_host="pool.ntp.org"):
        self.nic = nic
        self.ssid = ssid
        self.password = password
        self.ntp_host = ntp_host
        self.feed = None        # the watchdog's feed(): called before NTP's blocking DNS + UDP wait
        self.on_address = None  # callable(old, new) when the address changes; None: log it only
        self.on_reconnect = None  # callable(why) once re-associated after a loss (the agent re-registers)
        self.ip = None          # the address the agent advertises
        self.losses = 0
        self.clock_set = False
        self._up = asyncio.Event()
        self._ntp_due = None    # ticks_ms when NTP is tried next
        self._ntp_wait = self.NTP_RETRY_MIN_MS

    async def up(self):
        """The first address, once the station is associated."""
        await self._up.wait()
        return self.ip

    async def run(self):
        nic = self.nic
        nic.active(True)
        while True:
            if not nic.isconnected():
                lost = self.ip is not None
                if lost:
                    self.losses += 1
                    log.warn(_W, "association lost (status %s): reconnecting", nic.status())
                t0 = time.ticks_ms()
                await self._associate()
                if lost:
                    log.info(_W, "reconnected after %d ms", time.ticks_diff(time.ticks_ms(), t0))
                    if self.on_reconnect is not None:
                        # The master's link most likely died with the association: re-register now
                        # rather than after the ping timeout (75 s by default).
                        self.on_reconnect("Wi-Fi re-associated")
            self._address()
            self._ntp()
            await asyncio.sleep_ms(self.POLL_MS)

    async def _associate(self):
        nic = self.nic
        backoff = self.BACKOFF_MIN_MS
        while True:
            log.info(_W, "connecting to %s", self.ssid)
            try:
                nic.connect(self.ssid, self.password)
            except OSError as e:  # e.g. the driver is mid-reconnect on its own
                log.warn(_W, "connect: %r", e)
            t0 = time.ticks_ms()
            while not nic.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < self.WAIT_MS:
                await asyncio.sleep_ms(self.STEP_MS)
            if nic.isconnected():
                return
            wait = _jitter(backoff)
            log.warn(_W, "not connected (status %s), retry in %d ms", nic.status(), wait)
            try:
                nic.disconnect()
            except OSError:
                pass
            await asyncio.sleep_ms(wait)
            backoff = min(backoff * 2, self.BACKOFF_MAX_MS)

    def _address(self):
        ip = self.nic.ipconfig("addr4")[0]
        if ip == "0.0.0.0" or ip == self.ip:
            return
        old = self.ip
        self.ip = ip
        if old is None:
            log.info(_W, "up, %s", ip)
            self._ntp_due = time.ticks_ms()
            self._up.set()
            return
        log.warn(_W, "address changed: %s -> %s", old, ip)
        if self.on_address is not None:
            self.on_address(old, ip)

    def _ntp(self):
        due = self._ntp_due
        if due is None or time.ticks_diff(time.ticks_ms(), due) < 0:
            return
        try:
            import ntptime
        except ImportError:
            log.warn(_W, "no ntptime module: the clock stays unset")
            self._ntp_due = None
            return
        ntptime.host = self.ntp_host
        if self.feed is not None:
            self.feed()  # ntptime blocks the loop for DNS plus up to ntptime.timeout (1 s)
        try:
            ntptime.settime()
        except Exception as e:  # OSError (DNS, timeout), OverflowError, its "Unsupported epoch"
            wait = _jitter(self._ntp_wait)
            self._ntp_wait = min(self._ntp_wait * 2, self.NTP_RETRY_MAX_MS)
            self._ntp_due = time.ticks_add(time.ticks_ms(), wait)
            log.warn(_W, "ntp %s: %r; %s, retry in %d s", self.ntp_host, e,
                     "clock already set" if self.clock_set else "status-update timestamps are wrong until then",
                     wait // 1000)
            return
        self.clock_set = True
        self._ntp_wait = self.NTP_RETRY_MIN_MS
        self._ntp_due = time.ticks_add(time.ticks_ms(), self.NTP_RESYNC_MS)
        log.info(_W, "clock set from %s: %d", self.ntp_host, time.time())
