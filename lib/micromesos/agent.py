# The agent state machine (PROTOCOL.md §2.1): register, pong, re-register, recover, dispatch.
# MIT licence. One long-lived asyncio task per concern: listener (libprocess), registration and the ping
# watchdog (one task: they take turns), status-update retries; they talk through an Event and wake-ups,
# never by polling shared flags.
import gc
import random
import sys
import time

import asyncio
from micropython import const

from . import codec, drop, log, names, schema, upid
from .errors import MesosError
from .steps import rouse

if False:  # for mypy only: the compiler drops this block (no import, no RAM on a board)
    from typing import Any, Optional  # noqa: F401

_CHECKPOINT_RESOURCES = const(15)  # names.CHECKPOINT_RESOURCES
_PING_SLAVE = const(5)  # names.PING_SLAVE
_RUN_TASK = const(7)  # names.RUN_TASK
_RUN_TASK_GROUP = const(8)  # names.RUN_TASK_GROUP
_SHUTDOWN = const(18)  # names.SHUTDOWN
_SLAVE_REGISTERED = const(3)  # names.SLAVE_REGISTERED
_SLAVE_REREGISTERED = const(4)  # names.SLAVE_REREGISTERED
_STATUS_UPDATE_ACK = const(11)  # names.STATUS_UPDATE_ACK
_UPDATE_FRAMEWORK = const(14)  # names.UPDATE_FRAMEWORK
_StatusUpdateAcknowledgementMessage = const(53)  # schema.StatusUpdateAcknowledgementMessage

# States, as the real agent's (src/slave/slave.hpp).
# RECOVERING (0): agentinit.init starts the agent in it, until start() is done.
DISCONNECTED = const(1)
RUNNING = const(2)
TERMINATING = const(3)

_PONG = names.PONG
_OBSERVER = b"slave-observer("
_CHECKPOINT = "agent"  # registrar.py reads it back
_COLD = "micromesos.registrar"  # registration: each try, the messages, the master's answers
_RECOVERY = "micromesos.recovery"  # the rest of the rare half: boot recovery, shutdown, framework updates
_AUTHN = "micromesos.authn"  # SASL CRAM-MD5 (issue 13): imported only with a credential, dropped after
_INIT = "micromesos.agentinit"  # Agent.__init__'s body: imported for it, dropped after
_DRAIN = "micromesos.drain"  # DrainSlaveMessage, launches while draining: imported per message, dropped after
_DRAIN_SLAVE = const(19)  # names' DrainSlaveMessage id (private there; tests/test_drain.py checks it)
_SEND_RETRY_MS = const(100)  # a registration message the transport refused: first retry after this ...
_SEND_RETRY_MAX_MS = const(5000)  # ... doubling up to this (registrar.attempt: the same)
_W = "agent"


def _cold_handler(kind):
    # The master's messages handled by the rare half: registration replies (registrar.py: ids 3 and 4,
    # the lowest), shutdown and updates (recovery.py).
    if kind == _SLAVE_REGISTERED:
        return "registered"
    if kind == _SLAVE_REREGISTERED:
        return "reregistered"
    if kind == _SHUTDOWN:
        return "shutdown"
    if kind == _UPDATE_FRAMEWORK:
        return "update_framework"
    if kind == _CHECKPOINT_RESOURCES:
        return "checkpoint_resources"
    return None


class Agent:
    # Set by agentinit.init (annotations only: no code, no RAM on a board). agentinit.init and
    # registrar.become_running are this class's own code kept out of RAM: they alone set its _private ones.
    cfg: dict
    inv: Any
    lp: Any                 # the transport (libprocess.Libprocess)
    master: str             # current master UPID (re-noted on registration)
    _configured: str        # the configured master's UPID
    _ip0: str               # peer IPs the master's connections may come from: the configured master's,
    _ip1: str               # ... and the noted master's
    _check_ip: bool
    state: int
    slave_id: Optional[str]
    link: Any               # inbound connection the master registered us over (§1.5)
    ping_timeout_ms: int
    last_ping: Any          # time.ticks_ms() of the last ping
    frameworks: dict        # framework id -> raw FrameworkInfo bytes, echoed verbatim
    checkpointed: list      # raw Resource bytes from CheckpointResourcesMessage
    fresh_registration: bool
    drain_config: Optional[dict]  # DrainConfig dict while draining (drain.py): launches are refused
    authenticated: bool     # the master took our SASL exchange (only with a credential)
    authentications: int    # attempts so far: N of crammd5-authenticatee(N)
    started_ms: Any
    counters: dict
    store: Any              # store.Store
    updates: Any            # updates.StatusUpdates
    _registered: Any        # asyncio.Event, set while RUNNING: a registration attempt's wait ends at once
    totals: list
    attributes: list

    _sleeper = None  # _run()'s task while the ping watchdog sleeps (become_disconnected rouses it)
    ids_in_updates = True  # each status update names the agent and its UPID (a node's do not: node.py)

    def __init__(self, cfg, inventory, transport=None):
        self.tasks = None  # the task runner (micromesos.tasks), attached by main()
        # Runs once: agentinit.init sets every other attribute; its code leaves RAM right after.
        try:
            __import__(_INIT)
            sys.modules[_INIT].init(self, cfg, inventory, transport)
        finally:
            drop(_INIT)

    # --- the rarely-run half (registrar.py) ----------------------------------------------------

    def cold(self, fn, *args, mod=_COLD):
        """<mod>.<fn>(self, *args), mod registrar.py or recovery.py: the module is imported for the call and
        dropped after, so that registration, recovery and the master's rare messages hold no RAM while the
        agent idles. MemoryError when the heap can't take the code now: every caller's retry covers it."""
        m = sys.modules.get(mod)
        try:
            if m is None:
                try:
                    __import__(mod)
                except MemoryError:
                    drop(mod)  # whatever the failed import left
                    gc.collect()
                    __import__(mod)
                m = sys.modules[mod]
            return getattr(m, fn)(self, *args)
        finally:
            drop(mod)
            if self.tasks is not None:
                self.tasks.drop()  # resources.py, which registrar.py imports (tasks.drop_code)

    # --- identity -----------------------------------------------------------------------------

    @property
    def upid(self):
        return self.lp.upid

    def connected(self):
        return self.state == RUNNING

    def send_to_master(self, kind, body):
        """Queue message `kind` for the current master; body: bytes, or a list of bytes-like pieces sent
        back to back when the transport says SENDS_PIECES. False if the transport refused it."""
        return self.lp.send(self.master, names.name(kind), body)

    # --- checkpoint ---------------------------------------------------------------------------

    def checkpoint(self):
        if self.slave_id is None:
            self.store.delete(_CHECKPOINT)
            return
        # Loops, not comprehensions: each of those is one more function's code in RAM on a board.
        fw = {}
        for k in self.frameworks:
            fw[k] = self.frameworks[k].hex()
        res = []
        for r in self.checkpointed:
            res.append(r.hex())
        self.store.save(_CHECKPOINT, {"slave_id": self.slave_id, "upid": self.lp.upid, "frameworks": fw,
                                      "checkpointed_resources": res})

    def recover(self):
        """Identity, update streams and tasks from flash (recovery.recover). -> an identity recovered?"""
        return self.cold("recover", mod=_RECOVERY)

    # --- state changes ------------------------------------------------------------------------

    def become_disconnected(self, why):
        if self.state == RUNNING:
            self.counters["disconnects"] += 1
        log.info(_W, "disconnected: %s", why)
        self.state = DISCONNECTED
        self.authenticated = False  # re-authenticate before re-registering, as Slave::detected does
        self.link = None
        self._registered.clear()
        rouse(self._sleeper)  # the watchdog's sleep ends: _run() registers again

    def reconnect(self, why):
        """The network under the master's link was lost and is back (firmware's Wi-Fi supervisor):
        re-register now instead of waiting out the ping timeout. Harmless if the link survived."""
        if self.state == RUNNING:
            self.become_disconnected(why)

    # --- registration (§2.2-2.4) ---------------------------------------------------------------

    def _reregistration(self):
        """The ReregisterSlaveMessage body the agent would send now, whole (for tests and tools)."""
        return b"".join(self.cold("reregistration"))

    def _drain(self, kind, msg):
        """drain.handle(self, kind, msg), its module imported for the call and dropped after."""
        try:
            __import__(_DRAIN)
            sys.modules[_DRAIN].handle(self, kind, msg)
        finally:
            drop(_DRAIN)
            if self.tasks is not None:
                self.tasks.drop()  # the kill and launch code it used

    async def _run(self):
        """The agent's one task for its state: while RUNNING the ping watchdog (§2.5), else registration
        (_register). One task, not two waiting on each other's Events: the data heap after registration is
        ~0.4 KB smaller on the 32-bit device model (tools/bench/agent_probe.py)."""
        while True:
            if self.state == RUNNING:
                idle = time.ticks_diff(time.ticks_ms(), self.last_ping)
                if idle >= self.ping_timeout_ms:
                    self.become_disconnected("no ping for %d ms" % idle)
                    continue
                self._sleeper = asyncio.current_task()
                try:
                    await asyncio.sleep_ms(self.ping_timeout_ms - idle)  # or until become_disconnected
                finally:
                    self._sleeper = None
            else:
                await self._register()

    async def _register(self):
        """Randomised backoff of Slave::doReliableRegistration: [0, b], then [0, min(b*2^k, 60 s)]; each try
        is registrar.attempt (its code is in RAM only for it). Returns once RUNNING, or to start over."""
        await asyncio.sleep(random.random() * self.cfg["registration_backoff_factor"])
        st = [1, 0]  # registrar.attempt's: backoff exponent k, ms to wait after a refused message
        while self.state == DISCONNECTED:
            if self.cfg["credential"] and not self.authenticated:
                # SASL (issue 13): authn.run, its module imported for it and dropped after.
                try:
                    __import__(_AUTHN)
                    self.authenticated = await sys.modules[_AUTHN].run(self)
                except MemoryError:
                    log.error(_W, "no heap for the authentication code: retrying")
                    await asyncio.sleep(1)
                finally:
                    drop(_AUTHN)
                    gc.collect()  # its ~8 KB (loaded) back in one piece before the registration is built
                if not self.authenticated:
                    break
                st = [1, 0]  # doReliableRegistration(factor * 2) after authenticating: at once, then back off
            try:
                wait = self.cold("attempt", st)
            except MemoryError:  # no heap for the registrar's code now: retried as a refused message
                if not st[1]:
                    log.warn(_W, "no heap for the registration code: retrying")
                st[1] = min(st[1] * 2 or _SEND_RETRY_MS, _SEND_RETRY_MAX_MS)
                wait = st[1] / 1000
            try:
                await asyncio.wait_for(self._registered.wait(), wait)
            except asyncio.TimeoutError:
                pass

    # --- pings (§2.5): the hot path, allocation-free -------------------------------------------

    def _ping(self, msg):
        if not (msg.sender_id_startswith(_OBSERVER) and msg.sender_host_is(self.master) and self._peer_ok(msg)):
            self._drop(msg, "ping from a stranger")
            return
        connected = codec.ping_connected(msg.buf, msg.start, msg.end)
        self.lp.reply(msg, _PONG)
        self.last_ping = time.ticks_ms()
        self.counters["pings"] += 1
        if self.state == RUNNING:
            if not connected:
                self.become_disconnected("master reports our link down (ping connected=false)")
            elif msg.conn is not None:
                # The master pings over its link (one per address, PROTOCOL.md §1.5): follow it, so a
                # registration reply that came over another connection can't leave us watching the wrong one.
                self.link = msg.conn

    def _on_link_closed(self, ip, port):
        # Only the master's link (the connection our (re-)registration reply, then its pings, came over) counts:
        # its temporary connections (§1.5) and web UI clients come and go without meaning anything.
        if self.state == RUNNING and self.link is not None and self.link.peer == (ip, port):
            self.become_disconnected("master's link closed")
        elif self.authenticated and self.state == DISCONNECTED and ip == self._ip1:
            self.authenticated = False  # a master restarted while we registered forgets who we are

    # --- acknowledgements (§2.7) ---------------------------------------------------------------

    def _ack(self, msg):
        m = codec.decode(_StatusUpdateAcknowledgementMessage, msg.buf, msg.start, msg.end)
        if m["slave_id"] != self.slave_id:
            self._drop(msg, "ack for another agent")
            return
        self.updates.ack(m["framework_id"], m["task_id"], m["uuid"])

    # --- inbound dispatch ----------------------------------------------------------------------

    def _drop(self, msg, why):
        self.counters["dropped"] += 1
        log.warn(_W, "dropped %s from %s: %s", msg.name(), msg.sender(), why)

    def _peer_ok(self, msg):
        # The connection a master's message came on must come from the master's host: a Libprocess-From
        # header is whatever the sender writes. Off (check_master_ip) where NAT rewrites the source.
        c = msg.conn
        if c is None or not self._check_ip:  # None: a transport that knows no peers
            return True
        ip = c.peer[0]
        return ip == self._ip0 or ip == self._ip1

    def _from_master(self, msg):
        # As src/slave/slave.cpp (`master != from`): nothing from anyone but the current master, and a
        # registration reply only from the master the agent is registering with.
        if not self._peer_ok(msg):
            return False
        if msg.sender_is(self.master):
            return True
        if self.state != DISCONNECTED or msg.kind not in (_SLAVE_REGISTERED, _SLAVE_REREGISTERED):
            return False
        if msg.sender_is(self._configured):
            return True
        # The master advertising another address (§1.6): believed only when the configured master's
        # host itself made the connection, so with the peer check on.
        if not self._check_ip or msg.conn is None or msg.conn.peer[0] != self._ip0:
            return False
        s = msg.sender()
        return s.startswith("master@") and upid.valid(s)

    def _on_message(self, msg):
        kind = msg.kind
        try:
            if kind == _PING_SLAVE:
                self._ping(msg)
                return
            if not self._from_master(msg):
                self._drop(msg, "not from the current master %s" % self.master)
                return
            if kind == _STATUS_UPDATE_ACK:
                self._ack(msg)
                return
            if kind == _DRAIN_SLAVE or (self.drain_config is not None and
                                        (kind == _RUN_TASK or kind == _RUN_TASK_GROUP)):
                self._drain(kind, msg)
                return
            fn = _cold_handler(kind)
            if fn is not None:
                self.cold(fn, msg, mod=_COLD if kind <= _SLAVE_REREGISTERED else _RECOVERY)
                return
            h = self.tasks.handler(kind) if self.tasks is not None else None
            if h is None:
                self._drop(msg, "not handled by this agent")
                return
            h(msg)
        except MesosError as e:
            self.counters["invalid"] += 1
            log.error(_W, "bad %s from %s: %s", msg.name(), msg.sender(), e)
        except (KeyError, TypeError, ValueError) as e:
            # A decodable message missing what the agent needs (e.g. a field proto2 makes optional).
            self.counters["invalid"] += 1
            log.error(_W, "unusable %s from %s: %r", msg.name(), msg.sender(), e)
        except MemoryError:
            # A message too big for what the heap has left: the agent and its link stay up. What answers
            # the agent's own retries comes again (a registration reply, an update's ack); a framework
            # retries a kill and reconciles a launch it hears nothing of.
            self.counters["invalid"] += 1
            log.error(_W, "out of memory handling %s", names.short(kind))

    # --- running --------------------------------------------------------------------------------

    async def start(self):
        await self.lp.start()
        self.cold("boot", mod=_RECOVERY)  # recovery, and a log line with what the agent advertises
        d = self.store.load("drain")  # drain.py's checkpoint
        if d is not None:
            self._drain(0, d)  # a drain under way before the reboot (drain.recover)
        self.state = DISCONNECTED
        asyncio.create_task(self._run())
        asyncio.create_task(self.updates.run())


async def main(cfg, inventory, started=None):
    """Run the agent until cancelled; started(agent), if given, is called once it exists."""
    log.set_level(cfg["log_level"], cfg["log_rate"])
    agent = Agent(cfg, inventory)  # first: the registrar's code it runs is gone before the runner's loads
    from .tasks import Tasks

    agent.tasks = Tasks(agent)
    if started is not None:
        started(agent)
    from . import endpoints

    endpoints.install(agent)  # /state, /metrics/snapshot, /files ... for the web UI (§5)
    await agent.start()
    while True:
        await asyncio.sleep(3600)


def run(cfg, inventory):
    asyncio.run(main(cfg, inventory))
