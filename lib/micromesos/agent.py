# The agent state machine (PROTOCOL.md §2.1): register, pong, re-register, recover, dispatch.
# MIT licence. One long-lived asyncio task per concern: listener (libprocess), registrar, ping
# watchdog, status-update retries; they talk through Events, never by polling shared flags.
import random
import time

import asyncio
from micropython import const

from . import MESOS_VERSION, codec, log, names, resources, schema, upid
from .errors import MesosError
from .libprocess import Libprocess
from .store import Store
from .updates import StatusUpdates

# States, as the real agent's (src/slave/slave.hpp).
_RECOVERING = const(0)
_DISCONNECTED = const(1)
RUNNING = const(2)
_TERMINATING = const(3)

_CAPABILITIES = ({"type": schema.MULTI_ROLE}, {"type": schema.HIERARCHICAL_ROLE},
                 {"type": schema.RESERVATION_REFINEMENT})  # and nothing else (§3.5)
_PONG = names.NAMES[names.PONG_SLAVE]
_OBSERVER = b"slave-observer("
_CHECKPOINT = "agent"
_DEFAULT_PING_TIMEOUT_MS = const(75000)  # DEFAULT_MASTER_PING_TIMEOUT (§2.2)
_SEND_RETRY_MS = const(100)  # a registration message the transport refused: first retry after this ...
_SEND_RETRY_MAX_MS = const(5000)  # ... doubling up to this
_W = "agent"


class Agent:
    def __init__(self, cfg, inventory, transport=None):
        self.cfg = cfg
        self.inv = inventory
        if transport is None:
            transport = Libprocess("slave(1)", cfg["ip"], cfg["port"], cfg["advertise_ip"],
                                   cfg["advertise_port"], cfg)
        self.lp = transport
        self.lp.handler = self._on_message
        self.lp.on_link_closed = self._on_link_closed
        self._configured = "master@" + cfg["master"]
        self.master = self._configured  # current master UPID (re-noted on registration)
        # Peer IPs the master's connections may come from: the configured master's, the noted master's.
        self._ip0 = self._ip1 = cfg["master"].rpartition(":")[0]
        self._check_ip = cfg["check_master_ip"]
        self.state = _RECOVERING
        self.slave_id = None
        self.link = None            # inbound connection the master registered us over (§1.5)
        self.ping_timeout_ms = _DEFAULT_PING_TIMEOUT_MS
        self.last_ping = time.ticks_ms()
        self.frameworks = {}        # framework id -> raw FrameworkInfo bytes, echoed verbatim
        self.checkpointed = []      # raw Resource bytes from CheckpointResourcesMessage
        self.fresh_registration = False
        self.started_ms = time.ticks_ms()
        self.counters = {"registrations": 0, "reregistrations": 0, "pings": 0, "dropped": 0,
                         "disconnects": 0, "invalid": 0}
        fs = inventory.fs.rstrip("/")
        self.store = Store((fs + "/" if fs else "/") + cfg["state_dir"])
        self.updates = StatusUpdates(self, self.store, cfg["status_update_retry_min"],
                                     cfg["status_update_retry_max"])
        self.tasks = None  # the task runner (micromesos.tasks), attached by main()
        self._unregistered = asyncio.Event()  # set while the agent needs (re-)registration
        self._registered = asyncio.Event()
        self.totals = resources.measure(inventory, cfg)
        self.attributes = resources.attributes(inventory, cfg)
        # Dispatch table built once: message id -> handler (STYLE.md 4).
        self._dispatch = {
            names.SLAVE_REGISTERED: self._registered_msg,
            names.SLAVE_REREGISTERED: self._reregistered_msg,
            names.SHUTDOWN: self._shutdown_msg,
            names.UPDATE_FRAMEWORK: self._update_framework,
            names.CHECKPOINT_RESOURCES: self._checkpoint_resources,
            names.STATUS_UPDATE_ACK: self._ack,
        }

    # --- identity -----------------------------------------------------------------------------

    @property
    def upid(self):
        return self.lp.upid

    def connected(self):
        return self.state == RUNNING

    def slave_info(self, with_id):
        # hostname = the advertised IP, as the real agent with --no-hostname_lookup (§3.5).
        ip, _, port = self.lp.upid.partition("@")[2].rpartition(":")
        info = {"hostname": ip, "port": int(port),
                "resources": [resources.to_resource(n, v) for n, v in self.totals],
                "attributes": [resources.to_attribute(n, v) for n, v in self.attributes],
                "checkpoint": True}
        if with_id:
            info["id"] = self.slave_id
        return info

    def send_to_master(self, kind, body):
        return self.lp.send(self.master, names.NAMES[kind], body)

    # --- checkpoint ---------------------------------------------------------------------------

    def checkpoint(self):
        if self.slave_id is None:
            self.store.delete(_CHECKPOINT)
            return
        self.store.save(_CHECKPOINT, {
            "slave_id": self.slave_id, "upid": self.lp.upid,
            "frameworks": {k: v.hex() for k, v in self.frameworks.items()},
            "checkpointed_resources": [r.hex() for r in self.checkpointed]})

    def recover(self):
        data = self.store.load(_CHECKPOINT)
        if data is None:
            self._start_fresh()
            return False
        try:
            if data.get("upid") != self.lp.upid:
                # §1.6: the pid can't change for an agent id; after an address change the master
                # would answer ShutdownMessage, so start as a new agent right away.
                log.warn(_W, "address changed (%s -> %s): registering as a new agent",
                         data.get("upid"), self.lp.upid)
                self._start_fresh()
                return False
            self.slave_id = data["slave_id"]
            self.frameworks = {k: bytes.fromhex(v) for k, v in data["frameworks"].items()}
            self.checkpointed = [bytes.fromhex(r) for r in data["checkpointed_resources"]]
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            log.error(_W, "agent checkpoint unreadable (%s); registering as a new agent", e)
            self._start_fresh()
            return False
        n = self.updates.recover()
        if self.tasks is not None:
            self.tasks.recover()  # after the streams: it reports what did not survive the reboot
        log.info(_W, "recovered agent %s (%d unacknowledged status updates)", self.slave_id, n)
        return True

    def _start_fresh(self):
        # A new agent owns no tasks and no updates: whatever an old identity left on flash goes,
        # so it can't be reported under the new id after the next reboot.
        if self.tasks is not None:
            self.tasks.stop_all()
        self.updates.clear()
        self.slave_id = None
        self.frameworks = {}
        self.checkpointed = []
        self.store.delete(_CHECKPOINT)

    # --- state changes ------------------------------------------------------------------------

    def _become_disconnected(self, why):
        if self.state == RUNNING:
            self.counters["disconnects"] += 1
        log.info(_W, "disconnected: %s", why)
        self.state = _DISCONNECTED
        self.link = None
        self._registered.clear()
        self._unregistered.set()

    def _become_running(self, msg, connection):
        self.state = RUNNING
        self.link = msg.conn
        if not msg.sender_is(self.master):  # the master may advertise another address (§1.6)
            self.master = msg.sender()
            self._ip1 = self.master.partition("@")[2].rpartition(":")[0]
        t = None
        if connection:
            t = connection.get("total_ping_timeout_seconds")
        if self.cfg["ping_timeout"]:
            t = self.cfg["ping_timeout"]
        self.ping_timeout_ms = int(t * 1000) if t else _DEFAULT_PING_TIMEOUT_MS
        self.last_ping = time.ticks_ms()
        self._unregistered.clear()
        self._registered.set()
        self.updates.resume()

    # --- registration (§2.2-2.4) ---------------------------------------------------------------

    def _send_registration(self):
        # RegisterSlaveMessage, or ReregisterSlaveMessage once we have an id, queued for the master.
        # False if the transport refused it (outbox full, no route) or the heap had no room to build
        # it (it grows with the live tasks): the caller retries.
        try:
            if self.slave_id is None:
                return self.send_to_master(names.REGISTER_SLAVE, codec.encode(schema.RegisterSlaveMessage, {
                    "slave": self.slave_info(False), "version": MESOS_VERSION,
                    "checkpointed_resources": [], "agent_capabilities": list(_CAPABILITIES)}))
            return self.send_to_master(names.REREGISTER_SLAVE, self._reregistration())
        except MemoryError:
            return False

    def _reregistration(self):
        tasks, executors, fids = ([], [], set()) if self.tasks is None else self.tasks.reregistration()
        return codec.encode(schema.ReregisterSlaveMessage, {
            "slave": self.slave_info(True), "version": MESOS_VERSION,
            "checkpointed_resources": list(self.checkpointed), "tasks": tasks,
            "executor_infos": executors,
            "frameworks": [self.frameworks[f] for f in sorted(fids) if f in self.frameworks],
            "agent_capabilities": list(_CAPABILITIES)})

    async def _registrar(self):
        """Randomised backoff of Slave::doReliableRegistration: [0, b], then [0, min(b*2^k, 60 s)]."""
        b = self.cfg["registration_backoff_factor"]
        cap = self.cfg["registration_backoff_max"]
        retry = b or 1.0  # factor 0 only drops the first random wait; retries still back off
        while True:
            await self._unregistered.wait()
            await asyncio.sleep(random.random() * b)
            k = 1
            refused = 0  # ms to wait after a message that could not be queued
            while self.state == _DISCONNECTED:
                self.fresh_registration = self.slave_id is None
                what = names.short(names.REGISTER_SLAVE if self.fresh_registration else names.REREGISTER_SLAVE)
                if not refused:
                    log.info(_W, "sending %s to %s", what, self.master)
                if self._send_registration():
                    if refused:
                        log.info(_W, "%s queued for %s", what, self.master)
                    refused = 0
                    wait = random.random() * min(retry * (1 << k), cap)
                    k += 1
                else:
                    if not refused:  # once per streak: the retries are quick
                        log.warn(_W, "could not queue %s for %s (outbox full, no route or no heap): retrying",
                                 what, self.master)
                    refused = min(refused * 2 or _SEND_RETRY_MS, _SEND_RETRY_MAX_MS)
                    wait = refused / 1000
                try:
                    await asyncio.wait_for(self._registered.wait(), wait)
                except asyncio.TimeoutError:
                    pass

    def _registered_msg(self, msg):
        m = codec.decode(schema.SlaveRegisteredMessage, msg.buf, msg.start, msg.end)
        sid = m["slave_id"]
        if self.state == RUNNING:
            if sid != self.slave_id:
                log.error(_W, "master re-assigned id %s while running as %s: starting over",
                          sid, self.slave_id)
                self._forget("master changed the agent id")
            return
        if self.slave_id is not None and not self.fresh_registration:
            log.warn(_W, "SlaveRegisteredMessage while re-registering ignored")
            return
        self.slave_id = sid
        self.checkpoint()
        self.counters["registrations"] += 1
        self._become_running(msg, m.get("connection"))
        log.info(_W, "registered with %s as agent %s", self.master, sid)
        # Reboot race (§2.2): a master that has not yet noticed our reboot hands back the OLD id
        # and still believes the old tasks run. One re-registration with what we really run
        # makes it answer with reconciliations for the rest, which we report lost.
        if not self._send_registration():
            self._become_disconnected("could not queue the re-registration that follows a registration")

    def _reregistered_msg(self, msg):
        m = codec.decode(schema.SlaveReregisteredMessage, msg.buf, msg.start, msg.end)
        if m["slave_id"] != self.slave_id:
            log.error(_W, "re-registered as %s but we are %s: ignored", m["slave_id"], self.slave_id)
            return
        if self.state != RUNNING:
            self.counters["reregistrations"] += 1
            self._become_running(msg, m.get("connection"))
            log.info(_W, "re-registered with %s as agent %s", self.master, self.slave_id)
        for rec in m.get("reconciliations", ()):
            self._reconcile(rec)

    def _reconcile(self, rec):
        fid = rec["framework_id"]
        aware = False
        if "framework" in rec:
            fw = codec.decode(schema.FrameworkInfo, rec["framework"])
            aware = any(c.get("type") == schema.FW_PARTITION_AWARE for c in fw.get("capabilities", ()))
        for st in rec.get("statuses", ()):
            tid = st["task_id"]
            if (self.tasks and self.tasks.known(fid, tid)) or self.updates.latest(fid, tid) is not None:
                continue
            log.info(_W, "reconciliation: task %s unknown here", tid)
            self.updates.update(fid, tid, schema.TASK_DROPPED if aware else schema.TASK_LOST,
                                schema.SOURCE_SLAVE, reason=schema.REASON_RECONCILIATION,
                                message="Reconciliation: task unknown to the agent")

    # --- pings (§2.5): the hot path, allocation-free -------------------------------------------

    def _ping(self, msg):
        if not (msg.sender_id_startswith(_OBSERVER) and msg.sender_host_is(self.master) and self._peer_ok(msg)):
            self._drop(msg, "ping from a stranger")
            return
        connected = codec.ping_connected(msg.buf, msg.start, msg.end)
        self.lp.reply(msg, _PONG)
        self.last_ping = time.ticks_ms()
        self.counters["pings"] += 1
        if not connected and self.state == RUNNING:
            self._become_disconnected("master reports our link down (ping connected=false)")

    async def _watchdog(self):
        while True:
            if self.state == RUNNING:
                idle = time.ticks_diff(time.ticks_ms(), self.last_ping)
                if idle >= self.ping_timeout_ms:
                    self._become_disconnected("no ping for %d ms" % idle)
                    continue
                await asyncio.sleep_ms(self.ping_timeout_ms - idle)
            else:
                await self._registered.wait()

    def _on_link_closed(self, ip, port):
        # Only the connection our (re-)registration reply came over is the master's link: its
        # temporary connections (§1.5) and web UI clients come and go without meaning anything.
        if self.state == RUNNING and self.link is not None and self.link.peer == (ip, port):
            self._become_disconnected("master's link closed")

    # --- the rest of the master's messages ------------------------------------------------------

    def _shutdown_msg(self, msg):
        m = codec.decode(schema.ShutdownMessage, msg.buf, msg.start, msg.end)
        self._forget("ShutdownMessage: %s" % m.get("message", ""))

    def _forget(self, why):
        log.warn(_W, "%s: stopping all tasks and registering as a new agent", why)
        self.state = _TERMINATING
        self._start_fresh()
        self._become_disconnected(why)

    def _update_framework(self, msg):
        m = codec.decode(schema.UpdateFrameworkMessage, msg.buf, msg.start, msg.end)
        fid = m["framework_id"]
        if "framework_info" in m and fid in self.frameworks:
            self.frameworks[fid] = m["framework_info"]
            self.checkpoint()
        self.updates.resume(fid)

    def _checkpoint_resources(self, msg):
        m = codec.decode(schema.CheckpointResourcesMessage, msg.buf, msg.start, msg.end)
        self.checkpointed = m.get("resources", [])
        self.checkpoint()

    def _ack(self, msg):
        m = codec.decode(schema.StatusUpdateAcknowledgementMessage, msg.buf, msg.start, msg.end)
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
        if self.state != _DISCONNECTED or msg.kind not in (names.SLAVE_REGISTERED, names.SLAVE_REREGISTERED):
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
            if kind == names.PING_SLAVE:
                self._ping(msg)
                return
            if not self._from_master(msg):
                self._drop(msg, "not from the current master %s" % self.master)
                return
            h = self._dispatch.get(kind)
            if h is None and self.tasks is not None:
                h = self.tasks.handler(kind)
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
            # A message too big for what the heap has left: the master's retry or reconciliation
            # brings it back; the agent and its link stay up.
            self.counters["invalid"] += 1
            log.error(_W, "out of memory handling %s", names.short(kind))

    # --- running --------------------------------------------------------------------------------

    async def start(self):
        await self.lp.start()
        self.recover()
        log.info(_W, "agent %s at %s, master %s, resources %s", self.slave_id or "(new)", self.lp.upid,
                 self.master, ";".join(resources.fmt(n, v) for n, v in self.totals))
        self.state = _DISCONNECTED
        self._unregistered.set()
        asyncio.create_task(self._registrar())
        asyncio.create_task(self._watchdog())
        asyncio.create_task(self.updates.run())


async def main(cfg, inventory):
    log.set_level(cfg["log_level"])
    from .tasks import Tasks

    agent = Agent(cfg, inventory)
    agent.tasks = Tasks(agent)
    from . import endpoints

    endpoints.install(agent)  # /state, /metrics/snapshot, /files ... for the web UI (§5)
    await agent.start()
    while True:
        await asyncio.sleep(3600)


def run(cfg, inventory):
    asyncio.run(main(cfg, inventory))
