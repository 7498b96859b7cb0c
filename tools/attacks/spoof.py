# Spoofed master and observer messages, before and after registration: registration replies from
# master@127.0.0.2 (a listener of ours posing as a master, which records whatever the board sends it),
# and a forged PingSlaveMessage{connected: false} from the real master's observer. MIT licence.
import asyncio

from standin import lphttp, pb
from standin.model import parse_resources

EVIL_ID = "EVIL-0000-S666"
_PREFIX = "mesos.internal."


class FakeMaster:
    """A listener on 127.0.0.2 posing as master@127.0.0.2:<port>; `got` lists the message names posted to it."""

    def __init__(self):
        self.got = []
        self.server = None
        self.port = 0

    async def start(self):
        self.server = await asyncio.start_server(self._conn, "127.0.0.2", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def upid(self):
        return "master@127.0.0.2:%d" % self.port

    async def _conn(self, r, w):
        try:
            while len(self.got) < 1000:
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
                self.got.append(head.split(b" ", 2)[1].decode("latin-1").rsplit(".", 1)[-1])
                low = head.lower()
                if b"transfer-encoding: chunked" in low:
                    while True:
                        size = int((await r.readuntil(b"\r\n")).strip() or b"0", 16)
                        await r.readexactly(size + 2)
                        if size == 0:
                            break
                elif b"content-length:" in low:
                    n = int(low.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                    await r.readexactly(min(n, 1 << 20))
                w.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                await w.drain()
        except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            w.close()

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


async def forge(rig, sender, name, obj, src="127.0.0.2", more=()):
    """POST one libprocess message to the board as `sender`, from a connection bound to `src`; `more`
    (sender, name, obj) go in the same write, so the board handles them back to back."""
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", rig.b.port, local_addr=(src, 0)), 5)
    except (OSError, asyncio.TimeoutError):
        return None
    try:
        w.write(b"".join(lphttp.message_request(s, rig.b.upid, _PREFIX + n, pb.encode(n, o))
                         for s, n, o in ((sender, name, obj),) + tuple(more)))
        await w.drain()
        line = await asyncio.wait_for(r.readuntil(b"\r\n"), 5)
        return line.split(b" ")[1].decode() if b" " in line else None
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    finally:
        w.close()


def _evil_run_task(fake, slave_id):
    task = {"name": "evil", "task_id": "evil-1", "slave_id": slave_id,
            "resources": parse_resources("cpus:0.01"), "command": {"value": "hello", "shell": False}}
    fw = {"user": "root", "name": "evil", "id": "EVIL-0000-0000", "checkpoint": False, "role": "*"}
    return {"framework": fw, "pid": "scheduler@127.0.0.2:%d" % fake.port, "task": task, "launch_executor": True}


async def _offer_takeover(rig, fake, slave_id, forged_ping):
    """What a takeover needs: optionally the forged 'you are disconnected' ping, then registration replies
    from the fake master, three times, then a task launch from it."""
    if forged_ping:  # the replies ride right behind the ping, ahead of the real master's answer
        await forge(rig, "slave-observer(1)@127.0.0.1:%d" % rig.master_port, "PingSlaveMessage",
                    {"connected": False}, more=((fake.upid, "SlaveReregisteredMessage", {"slave_id": slave_id}),
                                                (fake.upid, "SlaveRegisteredMessage", {"slave_id": slave_id})))
    for _ in range(3):
        await forge(rig, fake.upid, "SlaveRegisteredMessage", {"slave_id": slave_id})
        await forge(rig, fake.upid, "SlaveReregisteredMessage", {"slave_id": slave_id})
        await asyncio.sleep(0.5)
    await forge(rig, fake.upid, "RunTaskMessage", _evil_run_task(fake, slave_id))
    await asyncio.sleep(3)


def _judge(rig, out, fake, since_line):
    followed = rig.b.find(r"registered with master@127\.0\.0\.2", since=since_line)
    out.check(not followed, "the board did not register with the fake master")
    out.check(not fake.got, "the board sent the fake master nothing (got: %s)" % (",".join(fake.got[:6]) or "-"))
    updates = rig.states("evil-1") if rig.m is not None else []
    out.check(not updates and "StatusUpdateMessage" not in fake.got,
              "the fake master's task did not run (updates seen: %s)" % (",".join(updates) or "-"))


async def registered_at_boot(rig, out):
    """Before the first registration (the real master not up yet): replies from master@127.0.0.2 offering
    an id it chose; then the real master comes up."""
    rig.add_example("hello")
    fake = await FakeMaster().start()
    try:
        rig.start_board()
        try:
            await rig.b.await_line(r"RegisterSlaveMessage", timeout=30)
        except AssertionError:
            out.note("no 'RegisterSlaveMessage' line from the board")
        await _offer_takeover(rig, fake, EVIL_ID, forged_ping=False)
        await rig.start_master()
        aid = None
        try:
            aid = await rig.registered(timeout=30)
        except AssertionError:
            pass
        out.check(aid is not None and not aid.startswith("EVIL"),
                  "registered with the real master under the id it chose (%s)" % aid)
        _judge(rig, out, fake, 0)
    finally:
        await fake.stop()


async def reregistered_master_down(rig, out):
    """Registered, then the master goes down: SlaveReregisteredMessage (the board's own id) from the fake
    master while the board is disconnected; then the real master comes back."""
    rig.add_example("hello")
    fake = await FakeMaster().start()
    try:
        line0 = rig.b.mark()
        await rig.m.stop()
        await rig.b.await_line(r"disconnected", timeout=30, since=line0)
        await _offer_takeover(rig, fake, rig.aid, forged_ping=False)
        _judge(rig, out, fake, line0)
        line1 = rig.b.mark()
        await rig.start_master()
        back = None
        try:
            back = await rig.registered(since_line=line1, timeout=40)
        except AssertionError:
            pass
        out.check(back == rig.aid, "re-registered with the real master once it was back")
    finally:
        await fake.stop()


async def forged_ping_then_reregistered(rig, out):
    """Registered: a forged PingSlaveMessage{connected: false} 'from' slave-observer(1)@<master>, then
    registration replies from the fake master."""
    rig.add_example("hello")
    fake = await FakeMaster().start()
    try:
        line0 = rig.b.mark()
        await _offer_takeover(rig, fake, rig.aid, forged_ping=True)
        _judge(rig, out, fake, line0)
    finally:
        await fake.stop()


async def replies_while_registered(rig, out):
    """Registered and connected: registration replies (one with a new id) from the fake master."""
    rig.add_example("hello")
    fake = await FakeMaster().start()
    try:
        line0 = rig.b.mark()
        await _offer_takeover(rig, fake, EVIL_ID, forged_ping=False)
        _judge(rig, out, fake, line0)
        out.check(not rig.b.find(r"as agent " + EVIL_ID, since=line0), "the board did not take the fake id")
    finally:
        await fake.stop()


CASES = [("spoof: registration replies at boot", registered_at_boot, 90, "none"),
         ("spoof: re-registration while master down", reregistered_master_down, 90, "registered"),
         ("spoof: forged ping{connected:false} + replies", forged_ping_then_reregistered, 60, "registered"),
         ("spoof: replies while registered", replies_while_registered, 60, "registered")]
