# A node: the agent's task runner on a board that reaches the master through a gateway over a datagram link
# (issue 11 part 3; docs/GATEWAY.md §8, docs/LINK.md §5, §7). MIT licence. It stands where agent.py, libprocess,
# listener, http and endpoints stand on a full agent: no HTTP, no JSON endpoints; the same tasks, ctx, updates.
import asyncio
from micropython import const

from . import codec, drop, log
from .errors import MesosError

_STATUS_UPDATE_ACK = const(11)  # names.STATUS_UPDATE_ACK
_UPDATE_FRAMEWORK = const(14)  # names.UPDATE_FRAMEWORK
_StatusUpdateAcknowledgementMessage = const(53)  # schema.StatusUpdateAcknowledgementMessage
_UpdateFrameworkMessage = const(70)  # schema.UpdateFrameworkMessage
# The link's own message kinds (LINK.md §5).
_NODE_INFO = const(0x80)  # node -> gateway: SlaveInfo, the first message of every session
_AGENT = const(0x81)  # gateway -> node: u8 n, agent id, u8 m, agent UPID
_TASKS = const(0x82)  # node -> gateway: after a reboot with a checkpoint, u16 length + Task, repeated
_KEEPALIVE_MS = const(10000)  # wake_ms 0: the node never sleeps and says WAKE this often (LINK.md §3.1)
_STEP_MS = const(10)
_STARVED_WAKES = const(3)  # wakes in a row without heap before the node gives up (a reboot: nodeboot)
_OWN = const(1)  # link.deliver's start for a message put together from fragments: a bytearray of its own
_W = "node"


class Node:
    """What the task runner (micromesos.tasks) reads of its agent: cfg, inv, store, updates, totals, slave_id,
    upid, frameworks, counters, drain_config, connected(), send_to_master(kind, body), checkpoint(); over a
    NodeLink to a gateway in place of libprocess to a master. `transport` has UDPNode's surface
    (linkudp.py): send(frame), on_frame(buf, n), after_batch(), run(). run() keeps the duty cycle."""

    # deep_sleep(node, ms): a board's hook, called instead of an asyncio sleep when no task is live and nothing
    # waits to be sent (RAM is lost: it saves linkhello.kept(node.nl, transport if keyed), LINK.md §7.2, and does
    # not return). None (the unix port): every sleep is an asyncio sleep with the link held.
    deep_sleep = None
    drain_config = None  # the runner asks (kill.py); a node is never drained
    # The message being handled, as the runner's handlers read it (msg.kind, buf, start, end): the node
    # itself, no object of its own. buf is the link's or the transport's, valid while it is handled only
    # (handlers decode it at once). Set from the delivery until it has been handled (_deliver, _batch).
    buf = None
    _dirty = False  # checkpoint() asked for during a delivery
    # Its status updates name no agent and no UPID: the gateway puts in the ones it gave the node (LINK.md §5).
    ids_in_updates = False

    def __init__(self, cfg, inv, transport, totals):
        from .linknode import NodeLink
        from .store import Store
        from .updates import StatusUpdates

        fs = inv.fs.rstrip("/")
        self.store = Store((fs + "/" if fs else "/") + cfg["state_dir"])
        # NODE_INFO for the first session, read now, while the heap is in one piece: a small board's first
        # wake may find no free block of its size (boot's garbage between the node's objects).
        self.info = self._node_info()
        # What the runner leases from (agent.totals): nodeinit.node_info measured them and put NODE_INFO's
        # SlaveInfo in the store's directory (_node_info), before the node's code was loaded.
        self.totals = totals
        self.cfg = cfg
        self.inv = inv
        self.slave_id = None  # who the node is to the master: from AGENT (LINK.md §5)
        self.upid = None
        self.frameworks = {}  # framework id -> raw FrameworkInfo (the runner keeps it)
        self.counters = {"dropped": 0, "invalid": 0, "wakes": 0, "unreachable": 0}
        u = self.updates = StatusUpdates(self, self.store, cfg["status_update_retry_min"],
                                         cfg["status_update_retry_max"])
        u.ready = self._listening
        self.tasks = None  # the runner (micromesos.tasks), attached by main()
        self.listening = False  # awake and past the gateway's held messages: updates may go
        self.asleep = False  # the radio is off: frames are dropped (the gateway holds what it has)
        nl = self.nl = NodeLink(transport.send, cfg["name"], cfg["wake_ms"], cfg["listen_ms"], cfg["mtu"],
                                cfg["window"], cfg["max_message"])
        lk = nl.link
        lk.rto_ms = cfg["link_rto_ms"]
        lk.rto_max_ms = cfg["link_rto_max_ms"]
        lk.deliver = self._deliver
        self.transport = transport
        transport.on_frame = self._frame
        transport.after_batch = self._batch

    # --- what the runner reads ---------------------------------------------------------------------

    def connected(self):
        """A session with the gateway and an agent id: what is sent now goes at once, or at the next wake."""
        return self.slave_id is not None and self.nl.up()

    def send_to_master(self, kind, body):
        """Message `kind` (a names id) with its protobuf body, to the master through the gateway (LINK.md §5).
        False if the link's queue is full (updates.py offers it again)."""
        return self.nl.link.send(kind, body)

    def _listening(self):
        # updates.ready: status updates go only while the node listens: a retry falling due while it sleeps
        # waits for the wake (updates.kick) instead of piling up in the held link. Framework messages
        # (ctx.send) use connected(): queued while it sleeps, they go at the next wake.
        return self.listening and self.slave_id is not None

    def checkpoint(self):
        if self.buf is not None:
            # Inside a delivery (a launch): written when it is over, once its garbage may go (the JSON
            # wants one block of its size, which a small heap mid-launch may not have in one piece).
            self._dirty = True
            return
        self._dirty = False
        if self.slave_id is None:
            self.store.delete("node")  # the checkpoint's key (as nodeagent.recover reads it)
            return
        # Each FrameworkInfo as hex in pieces of 64 digits: no string of its whole size (a small heap).
        self.store.save("node", {"slave_id": self.slave_id, "upid": self.upid, "frameworks": {
            k: [v[i:i + 32].hex() for i in range(0, len(v), 32)] for k, v in self.frameworks.items()}})

    # --- from the gateway --------------------------------------------------------------------------

    def _frame(self, buf, n):
        if not self.asleep:  # the radio is off while the node sleeps
            self.nl.input(buf, n)

    def _rare(self, fn, *args):
        # nodeagent.<fn>(self, *args): the node's rare identity code, imported for the call and dropped after
        # (as Agent.cold), so none of it stays resident.
        from . import nodeagent

        try:
            return getattr(nodeagent, fn)(self, *args)
        finally:
            drop("micromesos.nodeagent")

    def _session(self, session):
        # nl.on_session while TASKS is due (a reboot with a checkpoint: nodeagent.recover sets it), once: no bound
        # method held otherwise.
        self.nl.on_session = None
        self.nl.link.send(_TASKS, self._rare("tasks_body"))  # right behind NODE_INFO: a new nonce's first session

    def _deliver(self, kind, buf, start, end):
        # link.deliver. A message put together from fragments (a launch, at a small mtu) is in a bytearray of
        # its own: it is handled after the batch (_batch), once the frame that completed it and the calls
        # that brought it have let go of their heap (a launch wants it all). A one-frame message is in the
        # transport's buffer (ESP-NOW and UART read the next frame into it): handled now. In order either way.
        if self.buf is not None:
            self._handle()
        self.kind = kind
        self.buf = buf
        self.start = start
        self.end = end
        if start != _OWN:
            self._handle()

    def _batch(self):
        # transport.after_batch: the link's ack, then the message kept for after the batch.
        self.nl.link.flush()
        if self.buf is not None:
            try:
                self._handle()
            except Exception as e:  # noqa: BLE001  as linkframe.hand counts a handler's failure on a frame
                self.counters["invalid"] += 1
                log.error(_W, "handling message %d failed: %r", self.kind, e)

    def _handle(self):
        kind = self.kind
        buf = self.buf
        start = self.start
        end = self.end
        try:
            if kind == _STATUS_UPDATE_ACK:
                a = codec.decode(_StatusUpdateAcknowledgementMessage, buf, start, end)
                if a["slave_id"] != self.slave_id:
                    self._drop(kind, "ack for another agent")
                else:
                    self.updates.ack(a["framework_id"], a["task_id"], a["uuid"])
            elif kind == _AGENT:
                self._rare("agent", buf, start, end)
            elif kind == _UPDATE_FRAMEWORK:
                u = codec.decode(_UpdateFrameworkMessage, buf, start, end)
                fid = u["framework_id"]
                if "framework_info" in u and fid in self.frameworks:
                    self.frameworks[fid] = u["framework_info"]
                    self.checkpoint()
                self.updates.resume(fid)
            else:
                h = self.tasks.handler(kind) if self.tasks is not None else None
                if h is None:
                    self._drop(kind, "not handled by a node")
                else:
                    h(self)  # the node is the message (kind, buf, start, end)
        except MesosError as e:
            self.counters["invalid"] += 1
            log.error(_W, "bad message %d from the gateway: %s", kind, e)
        except (KeyError, TypeError, ValueError) as e:  # decodable, but missing what the node needs
            self.counters["invalid"] += 1
            log.error(_W, "unusable message %d from the gateway: %r", kind, e)
        except MemoryError:  # acknowledged, so not sent again: the master's reconciliation settles a launch
            self.counters["invalid"] += 1
            log.error(_W, "out of memory handling message %d", kind)
            if kind == _AGENT:  # without it the node can't report: a new session brings it (behind NODE_INFO)
                self.nl.end()
        finally:
            self.buf = buf = None  # the message's bytes may go before the checkpoint's JSON wants a block
            if self._dirty:
                try:
                    self.checkpoint()
                except (OSError, MemoryError) as e:  # written at the next change; a reboot before it
                    # recovers the identity as it was (the gateway's AGENT settles it)
                    log.error(_W, "node checkpoint failed: %r", e)

    def _drop(self, kind, why):
        self.counters["dropped"] += 1
        log.warn(_W, "dropped message %d from the gateway: %s", kind, why)

    # --- the duty cycle (LINK.md §7.1) -------------------------------------------------------------

    async def run(self):
        import gc  # here and in _cycle, main, not at the top: this module's globals table a size smaller
        import time

        asyncio.create_task(self.transport.run())
        asyncio.create_task(self.nl.link.timers())
        asyncio.create_task(self.updates.run())
        w = self.cfg["wake_ms"]
        starved = 0  # wakes in a row that found no heap
        while True:
            try:
                nap = await self._cycle(time.ticks_ms())
                starved = 0
            except MemoryError:  # the wake found no heap (a task holds it): the node goes on, the next wake
                log.error(_W, "out of memory during a wake")  # tries again (WAKE, or HELLO if it must)
                nap = -1
                starved += 1
            if starved >= _STARVED_WAKES:
                # MicroPython never moves an object: a heap in pieces stays so while its tasks live. The board
                # reboots (nodeboot), recovers its identity and updates from flash, and reports the tasks gone.
                raise MemoryError("the heap is in pieces: %d wakes in a row found no block" % starved)
            if nap < 0:
                nap = w or _KEEPALIVE_MS  # no gateway, or the link died: HELLO at the next wake
            if log.level <= log.DEBUG:  # the RAM figures tests/test_node_ram.py reads (a collection each)
                g = gc.mem_alloc()
                gc.collect()
                u = gc.mem_alloc()
                log.debug(_W, "wake %d: heap %d used, %d free, %d garbage since the last wake; sleeping %d ms; "
                          "%d update sends found no heap", self.counters["wakes"], u, gc.mem_free(), g - u, nap,
                          self.updates.no_heap)
            if nap:
                await self._nap(nap)

    async def _connect(self):
        # HELLO (LINK.md §3.1). NODE_INFO goes first in the session (LINK.md §5): its SlaveInfo read back from
        # flash for it, not held in RAM between sessions (the link holds it until it is acknowledged).
        nl = self.nl
        b = self.info or self._node_info()
        if b is None:
            return False
        nl.first = (_NODE_INFO, b)
        try:
            ok = await nl.connect()
        finally:
            nl.first = None
        if ok:
            self.info = None  # the link holds it until it is acknowledged; a later session reads it again
        return ok

    def _node_info(self):
        try:
            with open(self.store.dir + "/node_info.bin", "rb") as f:
                n = f.seek(0, 2)  # read() would grow a buffer from 256 B: one block of its size only
                f.seek(0)
                return f.read(n)
        except OSError as e:  # the file is gone: no session without NODE_INFO
            log.error(_W, "cannot read /node_info.bin (%s)", e)
            return None

    async def _cycle(self, t0):
        """One wake: WAKE (HELLO without a session), take what the gateway held, let updates go, stay while
        either side has more (and up to ack_wait_ms while an update awaits its ack), SLEEP. -> the ms to
        sleep now, or -1 if no gateway answered or the link died."""
        import time

        nl = self.nl
        cfg = self.cfg
        self.counters["wakes"] += 1
        if not (nl.up() and await nl.wake()) and not await self._connect():
            self.counters["unreachable"] += 1
            return -1
        a = cfg["listen_ms"]
        w = cfg["wake_ms"]
        # What the gateway held comes first: an ack it holds must not find its update resent (updates.kick).
        while nl.pending and nl.up() and time.ticks_diff(time.ticks_ms(), t0) < a:
            await asyncio.sleep_ms(_STEP_MS)
        self.listening = True
        u = self.updates
        if u.pending_count():
            u.kick()  # only then: nothing else is due
        try:
            while True:
                if not await nl.linger(t0, a):
                    if nl.link.down or not await self._connect():  # a RESET (the gateway restarted): HELLO now
                        return -1
                    continue
                up = time.ticks_diff(time.ticks_ms(), t0)
                if up < a + cfg["ack_wait_ms"] and u.pending_count():
                    await asyncio.sleep_ms(_STEP_MS)  # its ack is likely on its way from the master
                    continue
                if not w:
                    await asyncio.sleep_ms(_KEEPALIVE_MS)  # never sleeps: listening all along
                    return 0
                if up >= w:
                    return 0  # the next wake is due already
                self.listening = False
                nap = await nl.sleep(w - up)
                if nap >= 0:
                    return nap
                self.listening = True  # the gateway has more for us, or we for it
        finally:
            self.listening = False

    async def _nap(self, ms):
        self.asleep = True
        try:
            ds = self.deep_sleep
            if ds is not None and not self.tasks.live and not self.tasks.executors \
                    and not self.updates.pending_count() and self.nl.quiet():
                ds(self, ms)  # a board's hook: does not return (RAM is lost)
            await asyncio.sleep_ms(ms)  # tasks keep running; the link holds (nothing goes out)
        finally:
            self.asleep = False


async def main(cfg, inv, transport, totals, started=None):
    """Run a node until cancelled (totals: nodeinit.node_info's); started(node), if given, is called once it
    exists."""
    import gc

    log.set_level(cfg["log_level"])
    from .ctx import Ctx
    from .tasks import Tasks

    # A task's stdout/stderr rings are what the agent's /files endpoint reads: a node has none, so it keeps
    # no ring bytes (ctx.log still logs each line; the runner's notes go to the log too).
    Ctx.LOG_BYTES = 0
    node = Node(cfg, inv, transport, totals)
    t = node.tasks = Tasks(node)
    t.MAX_TASKS = cfg["max_tasks"]
    t.presize()  # a node is there to run tasks: its task tables made now, while the heap is in one piece
    # What is read after boot (here and by fetch.allowed): the rest of the config leaves RAM.
    node.cfg = {k: cfg[k] for k in ("wake_ms", "listen_ms", "ack_wait_ms", "allowed_modules",
                                    "require_pinned_uris")}
    transport = cfg = inv = None
    if started is not None:
        started(node)
    node._rare("recover")  # the identity from flash, as it was before a reboot
    gc.collect()  # recovery's garbage goes before run() makes its lasting tasks
    c = node.cfg
    log.info(_W, "node %s: wakes every %d ms, listens %d ms; agent %s", node.nl.name, c["wake_ms"], c["listen_ms"],
             node.slave_id or "(new)")
    await node.run()
