# StandinMaster: a loopback CPython stand-in for an unmodified Mesos 1.12 master, for tests and `make sim`.
# MIT licence. Listener, dispatch, slave-observer pings, events and registry; handlers live in agents.py / ops.py.
import asyncio
import time
import uuid

from . import lphttp, pb
from .agents import AgentHandlers
from .authn import Authenticator
from .control import Control
from .events import DROPPED, ERROR, INFO, PROBLEMS, RECV, SEND, WARN, EventLog
from .links import Links
from .model import Agent
from .ops import Operations
from .registry import Registry

_PREFIX = "mesos.internal."


class Observer:
    """slave-observer(N) (src/master/master.cpp SlaveObserver; PROTOCOL.md §2.5): pings at once, then every
    interval whether or not pongs come; after max_missed intervals without a pong it marks the agent
    unreachable (sending the ping of that tick first, as the real observer does) and stops."""

    def __init__(self, master, agent, n):
        self.master = master
        self.id = "slave-observer(%d)" % n
        self.upid = "%s@%s" % (self.id, master.upid.partition("@")[2])
        self.agent_id = agent.id
        self.agent_pid = agent.pid   # a const UPID in the real observer: it never follows a pid change (§1.6)
        self.connected = True
        self.timeouts = 0
        self.pinged = False
        self.pings = 0
        self._task = None

    def start(self):
        self.ping()  # SlaveObserver::initialize
        self._task = asyncio.ensure_future(self._run())

    def ping(self):
        self.pings += 1
        self.pinged = True
        self.master.send(self.agent_pid, "PingSlaveMessage", {"connected": self.connected}, sender=self.upid)

    def pong(self):
        self.timeouts = 0
        self.pinged = False

    async def _run(self):
        loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        while True:
            k += 1
            await asyncio.sleep(max(0.0, start + k * self.master.ping_interval - loop.time()))
            unreachable = False
            if self.pinged:
                self.timeouts += 1
                unreachable = self.timeouts >= self.master.max_missed
            self.ping()
            if unreachable:
                self.master.mark_unreachable(self.agent_id, "health check timed out: %d pings without a pong"
                                             % self.timeouts)
                return

    def stop(self):
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._task = None


class StandinMaster(AgentHandlers, Operations):
    """A Mesos 1.12 master as an agent sees it, on 127.0.0.1. See tools/standin_master.py for the CLI."""

    def __init__(self, host="127.0.0.1", port=0, ping_interval=15.0, max_missed=5, ping_timeout=75.0,
                 registry=None, events=None, master_id=None, reregister_timeout=600.0, on_event=None,
                 default_ack="auto", advertise_ip=None, advertise_port=None, authenticate_agents=False,
                 credentials=None):
        self.host = host
        self.ip = advertise_ip or host   # the address in master@ip:port; never 0.0.0.0 (§1.1)
        if self.ip == "0.0.0.0":
            raise ValueError("listening on 0.0.0.0 needs advertise_ip: agents reply to the UPID's address")
        self.port = port
        self.advertise_port = advertise_port  # a forwarded port in front of the master (tests, benchmarks)
        self.ping_interval = float(ping_interval)
        self.max_missed = int(max_missed)
        self.ping_timeout = float(ping_timeout)   # MasterSlaveConnection.total_ping_timeout_seconds
        self.reregister_timeout = float(reregister_timeout)
        self.default_ack = default_ack
        self.fixed_master_id = master_id
        self.log = EventLog(events, on_event)
        self.registry = Registry(self, registry)
        self.control = Control(self)
        self.t0 = time.time()
        self._server = None
        self._conns = set()
        self._handlers = set()
        self._changed = None
        # --authenticate_agents with --credentials (a file path or {"credentials": [...]}): registrations
        # only from pids that completed SASL CRAM-MD5 (authn.py); None: no authentication, as by default.
        self.auth = Authenticator(self, credentials or []) if authenticate_agents else None
        self._reset_state()

    def _reset_state(self):
        self.master_id = self.fixed_master_id or str(uuid.uuid4())
        self.agents = {}         # id -> Agent, every state (registered, recovered, unreachable, removed, gone)
        self.frameworks = {}     # id -> Framework
        self.tasks = {}          # (framework_id, task_id) -> Task
        self.pending_acks = {}   # (framework_id, task_id) -> [(agent_id, uuid, state)] (manual ack policy)
        self.observers = {}      # "slave-observer(N)" -> Observer
        self.next_agent = 0
        self.next_framework = 0
        self.next_observer = 1   # process::ID::generate: "slave-observer(1)" is the first
        self.next_task = 0
        self.links = Links(self._on_link_exit, self._on_link_fail)
        if self.auth is not None:
            self.auth.reset()

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def upid(self):
        return "master@%s:%d" % (self.ip, self.advertise_port or self.port)

    @property
    def events(self):
        return self.log.events

    async def start(self):
        self._changed = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=lphttp.MAX_LINE + 2)
        self.port = self._server.sockets[0].getsockname()[1]
        self.registry.recover()
        self.record(INFO, reason="master %s started on %s (%d agent(s) recovered from the registry)"
                    % (self.master_id, self.upid, sum(a.state == Agent.RECOVERED for a in self.agents.values())))
        return self

    async def stop(self):
        if self._server is None:
            return
        self.registry.save()
        for ob in list(self.observers.values()):
            ob.stop()
        for a in self.agents.values():
            if a.reregister_timer is not None:
                a.reregister_timer.cancel()
        self._server.close()
        for w in list(self._conns):
            w.close()
        if self._handlers:  # closed transports end them with EOF; cancelling would log noise (3.11)
            await asyncio.wait(list(self._handlers), timeout=1.0)
        await self.links.close()
        await self._server.wait_closed()
        self._server = None
        self.record(INFO, reason="master stopped")

    async def restart(self, master_id=None):
        """Like a new master process on the same address: new master id (or `master_id`), observer
        numbering from 1, agents recovered from the registry must re-register (§2.4 case B)."""
        await self.stop()
        if master_id is not None:
            self.fixed_master_id = master_id
        self._reset_state()
        await self.start()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()
        self.log.close()

    # --- events ------------------------------------------------------------------------------------

    def record(self, kind, **kw):
        ev = self.log.add(kind, **kw)
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()
        return ev

    def mark(self):
        """Index of the next event: pass as `since` to wait only for what happens after now."""
        return len(self.log.events)

    def problems(self, since=0):
        """Events where the real master would have dropped a message or crashed."""
        return [e for e in self.log.events[since:] if e.kind in PROBLEMS]

    def find(self, what, since=0, kind=None):
        return [e for e in self.log.events[since:] if e.matches(what, kind)]

    async def wait_for(self, what, timeout=5.0, since=0, kind=None):
        """First event from index `since` matching `what` (a message name, an event kind, or a
        predicate on Event). asyncio.TimeoutError with the recent events in the message."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        i = since
        while True:
            evs = self.log.events
            while i < len(evs):
                if evs[i].matches(what, kind):
                    return evs[i]
                i += 1
            left = deadline - loop.time()
            if left <= 0:
                tail = "\n".join(e.line(self.t0) for e in evs[max(since, len(evs) - 15):])
                raise asyncio.TimeoutError("no %r event within %.1f s; last events:\n%s" % (what, timeout, tail))
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    # --- sending -----------------------------------------------------------------------------------

    def send(self, pid, name, obj, sender=None):
        """Encode and queue one message on the stream to `pid`; the event shows the bytes decoded back."""
        sender = sender or self.upid
        body = pb.encode(name, obj)
        try:
            _, ip, port = lphttp.parse_upid(pid)
        except ValueError as e:
            self.record(WARN, name=name, dst=pid, reason="cannot send: %s" % e)
            return False
        self.record(SEND, name=name, src=sender, dst=pid, body=pb.decode(name, body) if body else {})
        return self.links.send((ip, port), lphttp.message_request(sender, pid, _PREFIX + name, body))

    def link(self, pid):
        _, ip, port = lphttp.parse_upid(pid)
        self.links.link((ip, port))

    def _on_link_exit(self, addr, why):
        """libprocess ExitedEvent -> Master::exited: a registered, connected agent at addr is disconnected."""
        for a in list(self.agents.values()):
            if a.state == Agent.REGISTERED and a.connected and lphttp.addr_of(a.pid) == addr:
                self.disconnect(a, "link to %s broke (%s)" % (a.pid, why))

    def _on_link_fail(self, addr, why):
        self.record(INFO, reason="to %s:%d: %s" % (addr + (why,)))

    # --- listener ----------------------------------------------------------------------------------

    async def _serve(self, reader, writer):
        me = asyncio.current_task()
        self._handlers.add(me)
        self._conns.add(writer)
        peer = writer.get_extra_info("peername")
        try:
            while True:
                try:
                    req = await lphttp.read_request(reader)
                except lphttp.HTTPError as e:
                    self.record(DROPPED, reason="malformed HTTP from %s:%d: %s" % (peer[0], peer[1], e))
                    writer.write(lphttp.status_response(*lphttp.BAD_REQUEST))
                    await writer.drain()
                    return
                if req is None:
                    return
                if req.is_libprocess():
                    code, handler = self._route(req)
                    writer.write(lphttp.status_response(*code))  # 202 before any parsing (§1.4)
                    if handler is not None:
                        handler()
                elif req.path.startswith("/control/"):
                    writer.write(await self.control.handle(req))
                else:
                    if req.method == "POST" and req.path.startswith("/master/" + _PREFIX):
                        self.record(DROPPED, reason="POST %s without Libprocess-From or a libprocess/ "
                                    "User-Agent is not a message (§1.4)" % req.path)
                    writer.write(lphttp.status_response(*lphttp.NOT_FOUND))
                await writer.drain()
                if not req.keep_alive():
                    return
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(me)
            self._conns.discard(writer)
            writer.close()

    def _route(self, req):
        """-> (status, handler or None). Receivers are `master` and the live observers."""
        try:
            receiver, name = req.receiver_and_name()
        except lphttp.HTTPError as e:
            self.record(DROPPED, reason=str(e))
            return lphttp.BAD_REQUEST, None
        sender = req.libprocess_sender()
        short = name[len(_PREFIX):] if name.startswith(_PREFIX) else name
        if receiver != "master" and receiver not in self.observers and not (
                self.auth is not None and self.auth.is_receiver(receiver)):
            self.record(DROPPED, name=short, src=sender, dst=receiver,
                        reason="no process %r here: libprocess answers 404" % receiver)
            return lphttp.NOT_FOUND, None
        return lphttp.ACCEPTED, lambda: self._deliver(receiver, name, short, sender, req.body)

    def _deliver(self, receiver, name, short, sender, body):
        if self.auth is not None and short.startswith("Authentic") and name.startswith(_PREFIX):
            try:
                self.auth.deliver(receiver, short, sender, bytes(body))
            except Exception as e:  # noqa: BLE001 -- as below: tests see ERROR
                self.record(ERROR, name=short, src=sender, reason="fixture failed handling it: %r" % (e,))
            return
        if not name.startswith(_PREFIX) or not pb.has_type(short):
            self.record(DROPPED, name=name, src=sender, reason="unknown message name %r: %s has no handler "
                        "(it must be the full mesos.internal.* name, §2.12)" % (name, receiver))
            return
        try:
            obj = pb.decode(short, body)
        except pb.BodyError as e:
            self.record(DROPPED, name=short, src=sender, reason=str(e))
            return
        self.record(RECV, name=short, src=sender, dst=receiver, body=obj)
        try:
            lphttp.parse_upid(sender)
        except ValueError:
            self.record(DROPPED, name=short, src=sender, reason="sender %r is not a valid UPID: nothing "
                        "can be sent back (§1.1)" % (sender,))
            return
        if receiver != "master":
            if short != "PongSlaveMessage":
                self.record(DROPPED, name=short, src=sender, reason="%s only handles PongSlaveMessage" % receiver)
                return
            ob = self.observers[receiver]
            if ob.agent_pid != sender:
                self.record(WARN, name=short, src=sender, reason="pong to %s, which observes %s" % (receiver,
                            ob.agent_pid))
            ob.pong()
            return
        if (self.auth is not None and short in ("RegisterSlaveMessage", "ReregisterSlaveMessage")
                and sender not in self.auth.authenticated):
            self.record(DROPPED, name=short, src=sender, reason="Refusing registration of agent at %s because it "
                        "is not authenticated (--authenticate_agents)" % sender)
            return
        handler = self.HANDLERS.get(short)
        if handler is None:
            why = ("a pong must go to the slave-observer(N) that sent the ping, not to master (§0.1)"
                   if short == "PongSlaveMessage" else "master does not handle %s from an agent" % short)
            self.record(DROPPED, name=short, src=sender, reason=why)
            return
        try:
            handler(self, sender, obj)
        except Exception as e:  # noqa: BLE001 -- odd input must not take the fixture down; tests see ERROR
            self.record(ERROR, name=short, src=sender, reason="fixture failed handling it: %r" % (e,))

    # --- observers and agent lookups ---------------------------------------------------------------

    def start_observer(self, agent):
        if agent.observer is not None:
            agent.observer.stop()
            self.observers.pop(agent.observer.id, None)
        ob = Observer(self, agent, self.next_observer)
        self.next_observer += 1
        self.observers[ob.id] = ob
        agent.observer = ob
        ob.start()

    def stop_observer(self, agent):
        ob = agent.observer
        if ob is not None:
            ob.stop()
            self.observers.pop(ob.id, None)
            agent.observer = None

    def agent(self, agent_id=None):
        """The agent with that id, or the only registered one. LookupError otherwise."""
        if agent_id is not None:
            a = self.agents.get(agent_id)
            if a is None:
                raise LookupError("unknown agent %r" % agent_id)
            return a
        regs = [a for a in self.agents.values() if a.state == Agent.REGISTERED]
        if len(regs) != 1:
            raise LookupError("%d registered agents: name one" % len(regs))
        return regs[0]

    def registered_at(self, pid):
        for a in self.agents.values():
            if a.state == Agent.REGISTERED and a.pid == pid:
                return a
        return None
