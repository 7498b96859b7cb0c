# The Wi-Fi supervisor (micromesos.wifi) against the fake network/ntptime in the unix port: reconnects
# with capped backoff without ever blocking the loop, reports address changes, NTP in the background.
# MIT licence. Timings are shrunk through the class attributes; assertions never depend on wall time.
import json

import mpy

# Runs inside MicroPython before each scenario: a Supervisor with short timings, the module's `time`
# wrapped so any blocking sleep is recorded, and a ticker that counts event-loop turns.
PRELUDE = r'''
import asyncio, time, network, ntptime
from micromesos import wifi, log

class Clock:
    """wifi's view of `time`: real ticks, but a blocking sleep is recorded as a violation."""
    blocked = []
    ticks_ms = staticmethod(time.ticks_ms)
    ticks_diff = staticmethod(time.ticks_diff)
    ticks_add = staticmethod(time.ticks_add)
    time = staticmethod(time.time)
    @staticmethod
    def sleep_ms(ms): Clock.blocked.append(ms); time.sleep_ms(ms)
    @staticmethod
    def sleep(s): Clock.blocked.append(s * 1000); time.sleep(s)
wifi.time = Clock

S = wifi.Supervisor
S.POLL_MS = 20
S.WAIT_MS = 60
S.STEP_MS = 10
S.BACKOFF_MIN_MS = 10
S.BACKOFF_MAX_MS = 80
S.NTP_RETRY_MIN_MS = 40
S.NTP_RETRY_MAX_MS = 100

turns = [0]
async def ticker():
    while True:
        turns[0] += 1
        await asyncio.sleep_ms(5)

async def until(cond, ms=20000):
    t0 = time.ticks_ms()
    while not cond():
        if time.ticks_diff(time.ticks_ms(), t0) > ms:
            raise AssertionError("timed out")
        await asyncio.sleep_ms(10)

def out(tag, v):
    print("OUT " + json.dumps([tag, v]))
import json
'''


def run(code, timeout=120):
    r = mpy.run_mpy(code=PRELUDE + code, timeout=timeout).check()
    got = {}
    for line in r.lines():
        if line.startswith("OUT "):
            tag, v = json.loads(line[4:])
            got.setdefault(tag, []).append(v)
    return got, r.out


def _waits(out):
    # "retry in N ms" from each failed association attempt, in order
    return [int(ln.split("retry in ")[1].split()[0]) for ln in out.splitlines()
            if "wifi: not connected" in ln]


def test_association_retries_with_capped_backoff_and_never_blocks_the_loop():
    got, out = run(r'''
network.networks["lab"] = "secret"
nic = network.WLAN(network.WLAN.IF_STA)
calls = [0]
real_connect = nic.connect
def connect(ssid, pw):
    calls[0] += 1
    real_connect(ssid if calls[0] > 8 else "down", pw)   # the access point is down for 8 attempts
nic.connect = connect
async def main():
    asyncio.create_task(ticker())
    s = S(nic, "lab", "secret")
    asyncio.create_task(s.run())
    ip = await s.up()
    out("up", [ip, calls[0], nic.active()])
    out("turns", turns[0])
    out("blocked", Clock.blocked)
asyncio.run(main())
''')
    assert got["up"] == [["127.0.0.2", 9, True]], out
    assert got["blocked"] == [[]]  # every wait was an asyncio sleep
    waits = _waits(out)
    assert sum("(status 201)" in ln for ln in out.splitlines()) == 8  # NO_AP_FOUND
    bases = [10, 20, 40, 80, 80, 80, 80, 80]  # doubling, capped
    assert len(waits) == 8, out
    for w, b in zip(waits, bases):
        assert b <= w <= b + b // 4, (waits, bases)
    # 8 association windows of 60 ms plus the waits passed while the loop kept turning (5 ms ticker):
    # far more turns than a loop blocked for them could make (a blocked loop: ~1 per attempt).
    assert got["turns"][0] > 40, out


def test_lost_association_is_noticed_and_reconnected_then_an_address_change_reported():
    got, out = run(r'''
network.networks["lab"] = "pw"
nic = network.WLAN(network.WLAN.IF_STA)
changes = []
reconnects = []
async def main():
    asyncio.create_task(ticker())
    s = S(nic, "lab", "pw")
    s.on_address = lambda old, new: changes.append([old, new])
    s.on_reconnect = lambda why: reconnects.append(why)
    asyncio.create_task(s.run())
    out("up", await s.up())
    del network.networks["lab"]          # the access point goes away...
    nic.drop()
    await until(lambda: s.losses == 1)
    await until(lambda: nic.connects >= 3)  # ...and stays away for a few attempts
    network.networks["lab"] = "pw"
    await until(lambda: nic.isconnected())
    await until(lambda: "reconnected" in "".join(seen))
    out("after", [s.ip, s.losses, changes])
    out("reconnects", reconnects)
    network.address = "127.0.0.3"        # DHCP hands out another address
    await until(lambda: changes)
    out("changed", [s.ip, changes])
    out("blocked", Clock.blocked)
seen = []
_emit = log._emit
def spy(tag, where, msg, args):
    seen.append(msg % args if args else msg)
    _emit(tag, where, msg, args)
log._emit = spy
asyncio.run(main())
''')
    assert got["up"] == ["127.0.0.2"]
    assert got["after"] == [["127.0.0.2", 1, []]], out  # same lease: nothing to report
    assert got["reconnects"] == [["Wi-Fi re-associated"]], out  # the agent is told to re-register
    assert got["changed"] == [["127.0.0.3", [["127.0.0.2", "127.0.0.3"]]]], out
    assert "association lost (status 201)" in out
    assert got["blocked"] == [[]]


def test_ntp_uses_ntp_host_and_retries_in_the_background_without_holding_up_boot():
    got, out = run(r'''
network.networks["lab"] = "pw"
ntptime.fail = 2                       # the server is unreachable for the first two tries
nic = network.WLAN(network.WLAN.IF_STA)
feeds = []
async def main():
    s = S(nic, "lab", "pw", ntp_host="192.168.7.1")
    s.feed = lambda: feeds.append(ntptime.calls)
    asyncio.create_task(s.run())
    out("up", [await s.up(), s.clock_set, ntptime.calls])   # boot goes on with the clock unset
    await until(lambda: s.clock_set)
    out("set", [ntptime.calls, ntptime.hosts, feeds])
asyncio.run(main())
''')
    assert got["up"] == [["127.0.0.2", False, 1]], out
    # retried in the background until it worked; ntptime.host was the configured server every time,
    # and the watchdog was fed before each blocking try
    assert got["set"] == [[3, ["192.168.7.1"] * 3, [0, 1, 2]]], out
    assert sum("wifi: ntp 192.168.7.1: OSError(110,)" in ln for ln in out.splitlines()) == 2, out
