# Connection attacks on the board's listener: a burst, slowloris, trickle after a message, and a client that
# keeps sending while it is refused (drain). Each is bounded in connections and seconds. MIT licence.
import asyncio
import socket
import time

from attacks.rig import PING_INTERVAL

TOLERATED_GAP = 5 * PING_INTERVAL  # the master marks an agent unreachable after max_missed (5) silent ticks
_HEAD = b"GET /slave(1)/health HTTP/1.1\r\nHost: board\r\nX-Pad: " + b"a" * 200


async def _connect(port, timeout=5.0):
    try:
        return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, asyncio.TimeoutError):
        return None, None


def _close(w):
    if w is not None:
        w.close()


async def _trickle(port, seconds, first_request, stats):
    """One slow client: optionally one whole request first, then 1 byte a second of a request head that never
    ends; reconnects when the board drops it (as slowloris does), for `seconds`."""
    end = time.time() + seconds
    while time.time() < end:
        r, w = await _connect(port)
        if w is None:
            stats["refused"] += 1
            await asyncio.sleep(1)
            continue
        try:
            if first_request:
                w.write(b"GET /slave(1)/health HTTP/1.1\r\nHost: board\r\n\r\n")
                await w.drain()
                await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            k = 0
            while time.time() < end:
                w.write(_HEAD[k % len(_HEAD):k % len(_HEAD) + 1])
                await asyncio.wait_for(w.drain(), 5)
                k += 1
                await asyncio.sleep(1)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            stats["dropped"] += 1
            await asyncio.sleep(0.5)
        finally:
            _close(w)


async def _probe_health(rig, seconds, statuses):
    end = time.time() + seconds
    while time.time() < end:
        status, _ = await rig.http("/slave(1)/health", timeout=2)
        statuses.append(status)
        await asyncio.sleep(1)


async def _held_under(rig, out, clients, first_request, seconds=15, cut_at=5):
    """`clients` slow clients for `seconds`; from `cut_at` on, /health is probed once a second and the
    master cuts its link and must get back in while the attack goes on."""
    stats = {"refused": 0, "dropped": 0}
    start = rig.mark()
    attack = [asyncio.ensure_future(_trickle(rig.b.port, seconds, first_request, stats)) for _ in range(clients)]
    await asyncio.sleep(cut_at)
    cut = rig.mark()
    statuses = []
    probe = asyncio.ensure_future(_probe_health(rig, seconds - cut_at, statuses))
    back = await rig.relink_after_cut(timeout=seconds - cut_at)
    await asyncio.gather(probe, *attack)
    ok = sum(s == 200 for s in statuses)
    out.window = (start, cut)
    out.note("/health 200 in %d of %d probes during the attack; clients dropped by the board %d times"
             % (ok, len(statuses), stats["dropped"]))
    out.check(ok * 2 >= len(statuses) > 0, "/health answered (200) in at least half the probes during the attack")
    out.check(back, "the master got back in after a link cut while the attack went on")
    gap = rig.longest_pong_gap(start, cut)
    out.check(gap < TOLERATED_GAP, "longest pong gap %.1f s < %.1f s" % (gap, TOLERATED_GAP))


async def burst(rig, out, n=80, hold=3.0):
    """n connections at once, each sending a request, held open `hold` seconds."""
    start = rig.mark()
    conns = await asyncio.gather(*(_connect(rig.b.port) for _ in range(n)))
    opened = [w for _, w in conns if w is not None]
    for w in opened:
        try:
            w.write(b"GET /slave(1)/health HTTP/1.1\r\nHost: board\r\n\r\n")
        except OSError:
            pass
    await asyncio.sleep(hold)
    for w in opened:
        _close(w)
    end = rig.mark()
    out.window = (start, end)
    out.note("%d of %d connections established" % (len(opened), n))
    gap = rig.longest_pong_gap(start, end)
    out.check(gap < TOLERATED_GAP, "longest pong gap %.1f s < %.1f s" % (gap, TOLERATED_GAP))
    t = await rig.health_within(15)
    out.check(t is not None, "accepts new connections afterwards (/health 200 within 15 s)")
    out.check(await rig.relink_after_cut(), "the master gets back in after a link cut")


async def slowloris(rig, out):
    """Six connections trickling a request head at 1 byte/s for 15 s."""
    await _held_under(rig, out, clients=6, first_request=False)


async def trickle_after_message(rig, out):
    """Six connections that each send one whole request, then trickle the next at 1 byte/s for 15 s."""
    await _held_under(rig, out, clients=6, first_request=True)


def _flood(port, seconds, chunk, max_reconnects):
    """A blocking socket in a thread: its send buffer never runs dry, so a reader never finds it empty."""
    junk = b"X" * chunk
    sent = reconnects = 0
    end = time.time() + seconds
    while time.time() < end and reconnects < max_reconnects:
        reconnects += 1
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.settimeout(1.0)
            s.connect(("127.0.0.1", port))
            while time.time() < end:
                try:
                    sent += s.send(junk)
                except socket.timeout:
                    pass
        except OSError:
            time.sleep(0.1)
        finally:
            s.close()
    return sent, reconnects


async def drain(rig, out, seconds=8.0, holders=4, chunk=1 << 20, max_reconnects=200):
    """Every parser held by a slow client, then one client writing as fast as it can for `seconds`,
    reconnecting when dropped: refusing it must not freeze the event loop."""
    stats = {"refused": 0, "dropped": 0}
    start = rig.mark()
    hold = [asyncio.ensure_future(_trickle(rig.b.port, seconds + 2, False, stats)) for _ in range(holders)]
    await asyncio.sleep(1.0)
    sent, reconnects = await asyncio.get_running_loop().run_in_executor(
        None, _flood, rig.b.port, seconds, chunk, max_reconnects)
    await asyncio.gather(*hold)
    stop = rig.mark()
    out.window = (start, stop)
    gap = rig.longest_pong_gap(start, stop)
    out.note("%d KB sent over %d connections; longest pong gap %.1f s" % (sent // 1024, reconnects, gap))
    out.check(gap < TOLERATED_GAP, "longest pong gap %.1f s < %.1f s (event loop not frozen)"
              % (gap, TOLERATED_GAP))
    out.check(await rig.health_within(15) is not None, "/health 200 within 15 s afterwards")


CASES = [("conn: burst of 80 connections", burst, 60),
         ("conn: slowloris x6, 1 byte/s", slowloris, 60),
         ("conn: trickle after a message x6", trickle_after_message, 60),
         ("conn: drain (sending while refused)", drain, 60)]
