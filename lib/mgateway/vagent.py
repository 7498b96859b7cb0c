# One virtual agent per node, master-facing (docs/GATEWAY.md §3-§5): registration and re-registration with
# the agent's codec, pongs only while the hub vouches for the node, the master's messages dispatched by names
# id (held for the node or handled here), the node's messages relayed. MIT licence.
import os
import time

from micropython import const

from micromesos import MESOS_VERSION, codec, log, names
from micromesos.errors import DecodeError

from .relay import Relay

_W = "vagent"
# names ids (the link's message kinds, LINK.md §5)
_REGISTER_SLAVE = const(1)
_REREGISTER_SLAVE = const(2)
_SLAVE_REGISTERED = const(3)
_SLAVE_REREGISTERED = const(4)
_PING_SLAVE = const(5)
_RUN_TASK = const(7)
_RUN_TASK_GROUP = const(8)
_KILL_TASK = const(9)
_STATUS_UPDATE = const(10)
_STATUS_UPDATE_ACK = const(11)
_SHUTDOWN_FRAMEWORK = const(12)
_UPDATE_FRAMEWORK = const(14)
_CHECKPOINT_RESOURCES = const(15)
_EXECUTOR_TO_FRAMEWORK = const(17)
_SHUTDOWN = const(18)
_EXITED_EXECUTOR = const(20)
# the link's own kinds
NODE_INFO = const(0x80)
AGENT = const(0x81)
TASKS = const(0x82)
# held verbatim for the node
_HELD = (7, 8, 9, 11, 12, 13, 14, 16)
# schema types and values (the codec's table numbers)
_SlaveInfo = const(20)
_FrameworkInfo = const(23)
_Task = const(50)
_StatusUpdateMessage = const(52)
_StatusUpdateAcknowledgementMessage = const(53)
_RegisterSlaveMessage = const(54)
_ReregisterSlaveMessage = const(56)
_SlaveRegisteredMessage = const(58)
_SlaveReregisteredMessage = const(60)
_RunTaskMessage = const(65)
_RunTaskGroupMessage = const(66)
_KillTaskMessage = const(67)
_UpdateFrameworkMessage = const(70)
_CheckpointResourcesMessage = const(71)
_TEXT = const(3)
_TASK_FAILED = const(3)
_TASK_KILLED = const(4)
_TASK_LOST = const(5)
_TASK_STAGING = const(6)
_SOURCE_SLAVE = const(1)
_REASON_RECONCILIATION = const(9)
_REASON_CONTAINER_LAUNCH_FAILED = const(21)
_ExecutorInfo = const(38)
_ExitedExecutorMessage = const(72)
_TERMINAL = (2, 3, 4, 5, 7, 9, 11, 12)  # FINISHED FAILED KILLED LOST ERROR DROPPED GONE GONE_BY_OPERATOR
_CAPS = [{"type": 1}, {"type": 2}, {"type": 3}]  # MULTI_ROLE, HIERARCHICAL_ROLE, RESERVATION_REFINEMENT
_OBSERVER = b"slave-observer("
_PONG = names.PONG

# states
DISCONNECTED = const(1)
RUNNING = const(2)
EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0  # seconds from this port's time.time() to Unix time
_CLOCK_SET = 1704067200  # 2024-01-01: a clock that reads earlier was never set


def unix_time():
    """The clock a WELCOME gives a node (LINK.md §3.2): seconds since 1970, or 0 while this board's is unset (an
    ESP32 bridge before NTP, at its epoch), so that no node takes it."""
    t = int(time.time()) + EPOCH
    return t if t >= _CLOCK_SET else 0


def valid_uuid(u):
    """16 bytes, RFC-4122 version 1-5 (the master rejects others, PROTOCOL.md §0.8)."""
    return isinstance(u, (bytes, bytearray)) and len(u) == 16 and 1 <= u[6] >> 4 <= 5


def _uuid4():
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return bytes(b)


class VAgent:
    """slave(n)@gateway for node `name`. gw: the Gateway (lp, hub, cfg, master); peer: the hub's Peer."""

    def __init__(self, gw, n, name, peer, store):
        self.gw = gw
        self.n = n
        self.name = name
        self.peer = peer
        self.store = store
        self.upid, self.mid = gw.lp.add("slave(%d)" % n, self.on_message)
        gw.lp.route("/slave(%d)/state" % n, self._state)  # for the web UI (gwstate, imported per request)
        self.state = DISCONNECTED
        self.slave_id = None
        self.info = None  # the node's SlaveInfo (NODE_INFO), raw bytes
        self.frameworks = {}  # framework id -> raw FrameworkInfo
        self.tasks = {}  # (fid, tid) -> Task dict (resources raw), for re-registration and /state
        self.checkpointed = []  # raw Resources from CheckpointResourcesMessage
        self.relay = Relay(gw.hub, peer, store, self._send_update, gw.retry_min_ms, gw.retry_max_ms)
        self.fresh = True  # the registration under way is a RegisterSlave
        self.told = None  # the agent id the node was last told (AGENT)
        self.link = None  # (ip, port) of the connection our registration reply came on: the master's link
        self.rebooted = None  # after a session with a new nonce: peer.sleeps then, until TASKS (or a sleep) comes
        self.reg_due = time.ticks_ms()
        self.reg_backoff = gw.reg_min_ms
        self.last_ping = time.ticks_ms()
        self.ping_timeout_ms = gw.ping_timeout_ms
        self.pings = self.pongs = self.registrations = self.reregistrations = self.dropped = 0

    def _state(self, req):
        from . import gwstate

        return 200, "application/json", gwstate.state(self)

    # --- the checkpoint ---------------------------------------------------------------------------

    def checkpoint(self):
        p = self.peer
        self.store.save({
            "name": self.name, "n": self.n, "nonce": p.nonce, "wake_ms": p.wake_ms, "listen_ms": p.listen_ms,
            "slave_id": self.slave_id, "info": self.info.hex() if self.info else None,
            "frameworks": {k: v.hex() for k, v in self.frameworks.items()},
            "tasks": [codec.encode(_Task, t).hex() for t in self.tasks.values()],
            "checkpointed": [r.hex() for r in self.checkpointed]})

    def restore(self, state, held, unacked, acked):
        """From gwstore.load(): identity, tables, the held queue and the unacknowledged updates."""
        self.slave_id = state.get("slave_id")
        info = state.get("info")
        self.info = bytes.fromhex(info) if info else None
        self.frameworks = {k: bytes.fromhex(v) for k, v in state.get("frameworks", {}).items()}
        self.checkpointed = [bytes.fromhex(r) for r in state.get("checkpointed", ())]
        for h in state.get("tasks", ()):
            t = codec.decode(_Task, bytes.fromhex(h))
            self.tasks[(t["framework_id"], t["task_id"])] = t
        r = self.relay
        r.acked = list(acked[-64:])
        for u, body in unacked:
            up = codec.decode(_StatusUpdateMessage, body)["update"]
            r.update(up["framework_id"], up["status"]["task_id"], u, body, up["status"]["state"], journal=False)
        for kind, body in held:
            self.gw.hub.send(self.peer, kind, body)
        r.compact(force=True)  # the journal again with only what is live
        self.fresh = self.slave_id is None

    # --- registration -------------------------------------------------------------------------------

    def slave_info(self, with_id):
        si = codec.decode(_SlaveInfo, self.info)
        si["hostname"] = self.gw.hostname
        si["port"] = self.gw.port
        si["checkpoint"] = True
        attrs = [a for a in si.get("attributes", ()) if a.get("name") != "node"]
        attrs.append({"name": "node", "type": _TEXT, "text": {"value": self.name}})
        si["attributes"] = attrs
        if with_id:
            si["id"] = self.slave_id
        else:
            si.pop("id", None)
        return si

    def registration(self):
        """(kind, body) of the (re-)registration the virtual agent sends now."""
        if self.fresh:
            return _REGISTER_SLAVE, codec.encode(_RegisterSlaveMessage, {
                "slave": self.slave_info(False), "version": MESOS_VERSION, "checkpointed_resources": [],
                "agent_capabilities": _CAPS})
        tasks = []
        fids = set()
        for (fid, tid), t in self.tasks.items():
            t = dict(t)
            t["slave_id"] = self.slave_id
            t.pop("status_update_state", None)
            t.pop("status_update_uuid", None)
            u = self.relay.unacked(fid, tid)
            if u is not None:  # both or neither (PROTOCOL.md §2.11)
                t["status_update_state"], t["status_update_uuid"] = u
            tasks.append(t)
            fids.add(fid)
        return _REREGISTER_SLAVE, codec.encode(_ReregisterSlaveMessage, {
            "slave": self.slave_info(True), "tasks": tasks, "version": MESOS_VERSION,
            "checkpointed_resources": self.checkpointed,
            "frameworks": [self.frameworks[f] for f in sorted(fids) if f in self.frameworks],
            "agent_capabilities": _CAPS})

    def _register(self, now):
        kind, body = self.registration()
        log.info(_W, "%s: sending %s for node %s", self.upid, names.short(kind), self.name)
        self.gw.lp.send(self.gw.master, names.name(kind), body, self.mid)
        self.reg_due = time.ticks_add(now, self.reg_backoff)
        self.reg_backoff = min(self.reg_backoff * 2, self.gw.reg_max_ms)

    def _running(self, msg, m, fresh):
        self.state = RUNNING
        self.link = msg.conn.peer if msg.conn is not None else None  # the master's link (PROTOCOL.md §1.5)
        if not msg.sender_is(self.gw.master):
            self.gw.master = msg.sender()
        c = m.get("connection")
        t = c.get("total_ping_timeout_seconds") if c else None
        self.ping_timeout_ms = int(t * 1000) if t else self.gw.ping_timeout_ms
        self.last_ping = time.ticks_ms()
        self.reg_backoff = self.gw.reg_min_ms
        if fresh:
            self.registrations += 1
        else:
            self.reregistrations += 1
        log.info(_W, "%s: %s as agent %s (node %s)", self.upid, "registered" if fresh else "re-registered",
                 self.slave_id, self.name)
        self.checkpoint()
        if self.told != self.slave_id:
            self.tell_node()
        self.relay.resume()

    def disconnect(self, why):
        """Not registered any more: the clock re-registers at once, then backs off (a registration under
        way keeps its backoff)."""
        if self.state == RUNNING:
            log.info(_W, "%s: disconnected: %s", self.upid, why)
            self.reg_due = time.ticks_ms()
        self.state = DISCONNECTED

    def tell_node(self):
        """AGENT (LINK.md §5): the node's agent id and UPID, held like any message for it."""
        if self.slave_id is None:
            return
        self.told = self.slave_id
        a = self.slave_id.encode()
        u = self.upid.encode()
        self.gw.hub.send(self.peer, AGENT, bytes([len(a)]) + a + bytes([len(u)]) + u, first=True)

    # --- the gateway's clock ------------------------------------------------------------------------

    def session(self, fresh):
        """A session started; fresh: the node has a new nonce (it lost its RAM). A node with a checkpoint sends
        TASKS right behind NODE_INFO; one that sleeps without having sent it runs nothing of what it had."""
        self.rebooted = self.peer.sleeps if fresh and self.tasks else None

    def tick(self, now):
        hub = self.gw.hub
        if self.rebooted is not None and self.peer.sleeps != self.rebooted:
            self.rebooted = None
            self._lost_except(())  # no TASKS in that session: nothing it ran survived
        vouched = hub.vouch(self.peer)
        if self.state == RUNNING and time.ticks_diff(now, self.last_ping) > self.ping_timeout_ms:
            self.disconnect("no ping answered for %d ms" % time.ticks_diff(now, self.last_ping))
        if self.state != RUNNING and self.info is not None and vouched and time.ticks_diff(now, self.reg_due) >= 0:
            self._register(now)
        self.relay.poll(self.state == RUNNING)
        self.relay.note_delivered()
        self.relay.compact()

    # --- the master's messages ------------------------------------------------------------------------

    def on_message(self, msg):
        kind = msg.kind
        gw = self.gw
        ips = gw.master_ips
        if ips is not None and msg.conn is not None and msg.conn.peer[0] not in ips:
            # A Libprocess-From header is whatever the sender writes: the connection must be the master's.
            self.dropped += 1
            return
        if kind == _PING_SLAVE:
            self.pings += 1
            if not (msg.sender_id_startswith(_OBSERVER) and msg.sender_host_is(gw.master)):
                self.dropped += 1
                return
            if not gw.hub.vouch(self.peer):
                return  # the node missed its wake by more than the grace: the master's timeout applies (§4)
            try:
                connected = codec.ping_connected(msg.buf, msg.start, msg.end)
            except DecodeError:
                self.dropped += 1
                return
            gw.lp.reply_as(msg, _PONG, self.mid)
            self.pongs += 1
            if self.state == RUNNING and msg.conn is not None:
                # The master's pings come over its link (one per address, PROTOCOL.md §1.5): follow it, so a
                # registration reply that came over another connection can't leave us watching the wrong one.
                self.link = msg.conn.peer
            self.last_ping = time.ticks_ms()
            if not connected:
                self.disconnect("master reports our link down (ping connected=false)")
            return
        if not msg.sender_host_is(gw.master):
            self.dropped += 1
            log.warn(_W, "%s: dropped %s from %s: not the master", self.upid, msg.name(), msg.sender())
            return
        try:
            self._dispatch(kind, msg)
        except (DecodeError, KeyError, TypeError, ValueError) as e:
            self.dropped += 1
            log.error(_W, "%s: bad %s: %r", self.upid, msg.name(), e)

    def _dispatch(self, kind, msg):
        buf, s, e = msg.buf, msg.start, msg.end
        if kind == _SLAVE_REGISTERED or kind == _SLAVE_REREGISTERED:
            m = codec.decode(_SlaveRegisteredMessage if kind == _SLAVE_REGISTERED else _SlaveReregisteredMessage,
                             buf, s, e)
            sid = m["slave_id"]
            if self.state == RUNNING:
                return
            if kind == _SLAVE_REGISTERED:
                if not self.fresh:
                    return  # a late answer to an earlier registration
                self.slave_id = sid
                self.fresh = False
            elif sid != self.slave_id:
                return
            self._running(msg, m, kind == _SLAVE_REGISTERED)
            if kind == _SLAVE_REREGISTERED:
                for rec in m.get("reconciliations", ()):
                    self._reconcile(rec)
            return
        if kind == _STATUS_UPDATE_ACK:
            m = codec.decode(_StatusUpdateAcknowledgementMessage, buf, s, e)
            if m["slave_id"] != self.slave_id:
                return
            key = (m["framework_id"], m["task_id"])
            state = self.relay.ack(key[0], key[1], m["uuid"])
            if state is None and m["uuid"] not in self.relay.acked:
                return  # not ours
            if state in _TERMINAL and key in self.tasks and self.relay.unacked(key[0], key[1]) is None:
                del self.tasks[key]
                self.checkpoint()
            if m["uuid"] in self.relay.gen:
                self.relay.gen.remove(m["uuid"])  # the gateway's own update: the node never saw it
                return
            self.relay.hold(kind, bytes(buf[s:e]))
            return
        if kind == _RUN_TASK or kind == _RUN_TASK_GROUP:
            self._launch(kind, buf, s, e)
            return
        if kind == _KILL_TASK:
            m = codec.decode(_KillTaskMessage, buf, s, e)
            key = (m["framework_id"], m["task_id"])
            if self.relay.unhold(lambda k, b: k == _RUN_TASK and self._run_key(b) == key):
                # Never reached the node: the gateway answers for it (GATEWAY.md §3).
                self.gen_update(key[0], key[1], _TASK_KILLED, None, "killed before the node woke")
                return
            self.relay.hold(kind, bytes(buf[s:e]))
            return
        if kind == _UPDATE_FRAMEWORK:
            m = codec.decode(_UpdateFrameworkMessage, buf, s, e)
            if "framework_info" in m and m["framework_id"] in self.frameworks:
                self.frameworks[m["framework_id"]] = m["framework_info"]
                self.checkpoint()
            self.relay.hold(kind, bytes(buf[s:e]))
            return
        if kind == _CHECKPOINT_RESOURCES:
            self.checkpointed = codec.decode(_CheckpointResourcesMessage, buf, s, e).get("resources", [])
            self.checkpoint()
            return
        if kind == _SHUTDOWN:
            log.warn(_W, "%s: ShutdownMessage: node %s registers as a new agent", self.upid, self.name)
            for fid in self.frameworks:
                self.relay.hold(_SHUTDOWN_FRAMEWORK, codec.encode(68, {"framework_id": fid}))
            self.slave_id = None
            self.fresh = True
            self.tasks = {}
            self.frameworks = {}
            self.checkpointed = []
            self.checkpoint()
            self.disconnect("ShutdownMessage")
            return
        if kind in _HELD:
            self.relay.hold(kind, bytes(buf[s:e]))
            return
        self.dropped += 1
        log.warn(_W, "%s: %s not handled", self.upid, msg.name())

    def _run_key(self, body):
        m = codec.decode(_RunTaskMessage, body)
        return codec.decode(_FrameworkInfo, m["framework"])["id"], m["task"]["task_id"]

    def _launch(self, kind, buf, s, e):
        body = bytes(buf[s:e])
        if kind == _RUN_TASK:
            m = codec.decode(_RunTaskMessage, body)
            infos = [m["task"]]
            ex = m["task"].get("executor")
        else:
            m = codec.decode(_RunTaskGroupMessage, body)
            infos = m["task_group"].get("tasks", [])
            ex = m.get("executor")
        fid = codec.decode(_FrameworkInfo, m["framework"])["id"]
        self.frameworks[fid] = m["framework"]
        for ti in infos:
            self.tasks[(fid, ti["task_id"])] = {
                "name": ti["name"], "task_id": ti["task_id"], "framework_id": fid, "slave_id": self.slave_id,
                "state": _TASK_STAGING, "resources": ti.get("resources", [])}
        self.checkpoint()
        room = self.peer.max_message
        if room and len(body) + 1 > room:  # + the kind byte (LINK.md §5)
            self._too_big(kind, fid, ex, m.get("launch_executor"), infos, len(body), room)
            return
        # Journalled before this returns: the master sends a launch once (GATEWAY.md §3).
        self.relay.hold(kind, body)
        log.info(_W, "%s: %s for %s held for node %s", self.upid, names.short(kind),
                 ",".join(ti["task_id"] for ti in infos), self.name)

    def _too_big(self, kind, fid, ex, launch_executor, infos, size, room):
        # The node would drop the launch whole (LINK.md §4.6) and its tasks stay STAGING for ever: the gateway
        # fails them now as an agent does a launch it can't run (PROTOCOL.md §2.6), and an executor the launch
        # would have started is reported exited so that the master releases its resources.
        why = "%s of %d bytes: node %s takes messages of up to %d bytes (its max_message)" % (
            names.short(kind), size, self.name, room)
        log.warn(_W, "%s: %s: failed", self.upid, why)
        for ti in infos:
            self.gen_update(fid, ti["task_id"], _TASK_FAILED, _REASON_CONTAINER_LAUNCH_FAILED, why)
        if ex is not None and launch_executor is not False and self.state == RUNNING:
            eid = codec.decode(_ExecutorInfo, ex)["executor_id"]
            self.gw.lp.send(self.gw.master, names.name(_EXITED_EXECUTOR), codec.encode(_ExitedExecutorMessage, {
                "slave_id": self.slave_id, "framework_id": fid, "executor_id": eid, "status": 0}), self.mid)

    def _reconcile(self, rec):
        fid = rec["framework_id"]
        for st in rec.get("statuses", ()):
            tid = st["task_id"]
            if (fid, tid) not in self.tasks and self.relay.unacked(fid, tid) is None:
                self.gen_update(fid, tid, _TASK_LOST, _REASON_RECONCILIATION, "Reconciliation: task unknown")

    def gen_update(self, fid, tid, state, reason, message):
        """A status update the gateway makes for the node (source SLAVE), relayed like the node's own."""
        u = _uuid4()
        ts = time.time() + EPOCH
        st = {"task_id": tid, "state": state, "source": _SOURCE_SLAVE, "timestamp": ts, "uuid": u,
              "message": message}
        if reason is not None:
            st["reason"] = reason
        body = codec.encode(_StatusUpdateMessage, {"update": {
            "framework_id": fid, "slave_id": self.slave_id or "", "status": st, "timestamp": ts, "uuid": u,
            "latest_state": state}, "pid": self.upid})
        self.relay.gen.append(u)
        self._note_task(fid, tid, state)
        self.relay.update(fid, tid, u, body, state)

    def _note_task(self, fid, tid, state):
        t = self.tasks.get((fid, tid))
        if t is not None and t["state"] != state:
            t["state"] = state
            self.checkpoint()

    # --- the node's messages --------------------------------------------------------------------------

    def on_node(self, kind, buf, s, e):
        if kind == _STATUS_UPDATE:
            m = codec.decode(_StatusUpdateMessage, buf, s, e)
            up = m["update"]
            st = up["status"]
            u = up.get("uuid")
            if not valid_uuid(u) or st.get("uuid") != u:
                self.dropped += 1
                log.warn(_W, "%s: update from node %s without a valid uuid dropped", self.upid, self.name)
                return
            fid, tid = up["framework_id"], st["task_id"]
            body = None
            if up["timestamp"] < _CLOCK_SET:  # the clock read and the encode only then, not per update
                now = unix_time()
                if now:
                    # Stamped by a node whose clock was never set (made before its first WELCOME since a power
                    # loss): this clock as the update arrives, in both timestamps, kept so (retries are these bytes).
                    up["timestamp"] = st["timestamp"] = float(now)
                    body = codec.encode(_StatusUpdateMessage, m)
            if body is None:
                body = bytes(buf[s:e])
            if self.relay.update(fid, tid, u, body, st["state"]):
                self._note_task(fid, tid, up.get("latest_state", st["state"]))
            return
        if kind == NODE_INFO:
            codec.decode(_SlaveInfo, buf, s, e)  # checked before it is kept
            info = bytes(buf[s:e])
            if info != self.info:
                old = self.info
                self.info = info
                self.checkpoint()
                if old is not None and self.state == RUNNING:
                    # The master takes a changed SlaveInfo on re-registration (PROTOCOL.md §2.4 case A), but
                    # totals must not shrink under running tasks (§4): then it waits for the next one.
                    if any(t["state"] not in _TERMINAL for t in self.tasks.values()):
                        log.warn(_W, "%s: node %s announced other resources; kept until its tasks end",
                                 self.upid, self.name)
                    else:
                        self.disconnect("node %s announced other resources" % self.name)
            self.tell_node()
            return
        if kind == TASKS:
            self._tasks_report(buf, s, e)
            return
        if kind == _EXECUTOR_TO_FRAMEWORK or kind == _EXITED_EXECUTOR:
            if self.state == RUNNING:
                self.gw.lp.send(self.gw.master, names.name(kind), bytes(buf[s:e]), self.mid)
            return
        self.dropped += 1

    def _tasks_report(self, buf, s, e):
        # The node rebooted with a checkpoint (LINK.md §5 TASKS): what it no longer runs is LOST.
        have = set()
        i = s
        while i + 2 <= e:
            n = buf[i] << 8 | buf[i + 1]
            t = codec.decode(_Task, buf, i + 2, i + 2 + n)
            have.add((t["framework_id"], t["task_id"]))
            i += 2 + n
        self.rebooted = None
        self._lost_except(have)

    def _lost_except(self, have):
        # Tasks that had started (not STAGING: a launch may still be held for the node) and are not in `have`.
        for key, t in list(self.tasks.items()):
            if key not in have and t["state"] not in _TERMINAL and t["state"] != _TASK_STAGING:
                self.gen_update(key[0], key[1], _TASK_LOST, None, "the node rebooted without it")

    def _send_update(self, body):
        # The ids in the update are this virtual agent's now (the node may have an older id or none yet).
        m = codec.decode(_StatusUpdateMessage, body)
        up = m["update"]
        if up.get("slave_id") != self.slave_id or m.get("pid") != self.upid or \
                up["status"].get("slave_id", self.slave_id) != self.slave_id:
            up["slave_id"] = self.slave_id
            up["status"]["slave_id"] = self.slave_id
            m["pid"] = self.upid
            body = codec.encode(_StatusUpdateMessage, m)
        return self.gw.lp.send(self.gw.master, names.name(_STATUS_UPDATE), body, self.mid)
