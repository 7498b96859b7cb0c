# The stand-in master's outbound connections: one ordered TCP stream per agent ip:port, as libprocess keeps.
# MIT licence. Persistent "links" vs temporary connections and what a broken link means: PROTOCOL.md §1.2, §1.5.
import asyncio

MAX_QUEUE = 10000  # messages queued towards one address before we refuse (a stuck agent must not eat RAM)
CONNECT_TIMEOUT = 10.0  # a board that vanished from the LAN must not hold a link open for minutes


class Outbound:
    """One TCP connection the master opened to `addr`; writes queued messages in order and reads and
    discards whatever comes back (the agent's 202s; libprocess ignore_recv_data, §1.2).
    A persistent link calls on_exit(addr, why) once when it breaks; a temporary one closes itself
    as soon as its queue is empty (§1.5)."""

    def __init__(self, addr, persistent, on_exit, on_fail):
        self.addr = addr
        self.persistent = persistent
        self._on_exit = on_exit
        self._on_fail = on_fail
        self._queue = asyncio.Queue()
        self._writer = None
        self._exited = False
        self.done = False
        self._task = asyncio.ensure_future(self._run())

    def send(self, data):
        if self.done:
            return False
        if self._queue.qsize() >= MAX_QUEUE:
            self._on_fail(self.addr, "outbound queue full, message dropped")
            return False
        self._queue.put_nowait(data)
        return True

    async def _run(self):
        why = "closed"
        reader_task = None
        try:
            try:
                reader, self._writer = await asyncio.wait_for(asyncio.open_connection(*self.addr),
                                                              CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as e:
                # libprocess link_connect failure: the queued messages are thrown away (§1.7).
                detail = e.strerror if isinstance(e, OSError) and e.strerror else (str(e) or "timed out")
                why = "connect to %s:%d failed: %s" % (self.addr + (detail,))
                self._on_fail(self.addr, why + "; %d queued message(s) lost" % self._queue.qsize())
                return
            reader_task = asyncio.ensure_future(self._drain_incoming(reader))
            while True:
                if not self.persistent and self._queue.empty():
                    why = "temporary connection done"
                    return
                get = asyncio.ensure_future(self._queue.get())
                done, _ = await asyncio.wait({get, reader_task}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    why = "peer closed the connection"
                    return
                self._writer.write(get.result())
                await self._writer.drain()
        except (OSError, asyncio.IncompleteReadError) as e:
            why = "connection error: %s" % (e,)
        finally:
            self.done = True
            if reader_task is not None:
                reader_task.cancel()
            if self._writer is not None:
                self._writer.close()
            self._exit(why)

    async def _drain_incoming(self, reader):
        try:
            while await reader.read(65536):
                pass
        except OSError:
            pass

    def _exit(self, why):
        if self.persistent and not self._exited:
            self._exited = True
            self._on_exit(self.addr, why)

    def cut(self, why="cut"):
        """Abort the connection at once (RST if possible); pending messages are lost."""
        self.done = True
        if self._writer is not None:
            transport = self._writer.transport
            if transport is not None:
                transport.abort()
        self._task.cancel()
        self._exit(why)

    async def wait_closed(self):
        try:
            await self._task
        except asyncio.CancelledError:
            pass


class Links:
    """All outbound streams, keyed by (ip, port): a link if one is up, else a temporary connection."""

    def __init__(self, on_exit, on_fail):
        self._on_exit = on_exit  # on_exit(addr, why): a persistent link broke (Master::exited)
        self._on_fail = on_fail  # on_fail(addr, why): a message could not be delivered
        self._links = {}
        self._temps = {}

    def link(self, addr):
        """libprocess link(): a no-op while a live link to addr exists."""
        cur = self._links.get(addr)
        if cur is None or cur.done:
            self._links[addr] = Outbound(addr, True, self._on_exit, self._on_fail)

    def linked(self, addr):
        cur = self._links.get(addr)
        return cur is not None and not cur.done

    def send(self, addr, data):
        cur = self._links.get(addr)
        if cur is not None and not cur.done:
            return cur.send(data)
        tmp = self._temps.get(addr)
        if tmp is None or tmp.done:
            tmp = self._temps[addr] = Outbound(addr, False, self._on_exit, self._on_fail)
        return tmp.send(data)

    def cut(self, addr, why="link cut by the fixture"):
        cur = self._links.pop(addr, None)
        if cur is not None and not cur.done:
            cur.cut(why)
            return True
        return False

    async def close(self):
        conns = list(self._links.values()) + list(self._temps.values())
        self._links.clear()
        self._temps.clear()
        for c in conns:
            c._exited = True  # a master shutting down does not mark its agents disconnected
            c.cut("master stopped")
        for c in conns:
            await c.wait_closed()
