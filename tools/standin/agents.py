# The stand-in master's handling of agent messages: (re-)registration cases A/B/C, status updates, acks.
# MIT licence. Follows PROTOCOL.md §2.2-§2.7 and §2.11 and the real master.cpp order of replies.
import asyncio
import time

from . import drain, lphttp, validate as v
from .events import CRASH, DROPPED, INFO, WARN
from .model import (AGENT_RESOURCE_PROVIDER, REASON_RECONCILIATION, REASON_SLAVE_DISCONNECTED,
                    REASON_SLAVE_REMOVED, SOURCE_MASTER, TASK_LOST, TASK_STATES,
                    TASK_UNKNOWN, TASK_UNREACHABLE, TERMINAL, Agent, Framework, Pool, Task, idv)


def _connection(m):
    return {"total_ping_timeout_seconds": m.ping_timeout}


class AgentHandlers:
    """Mixin of StandinMaster: one method per agent -> master message, plus agent state changes."""

    # --- registration (§2.2) -----------------------------------------------------------------------

    def on_register(self, pid, msg):
        why = v.check_registration(msg, reregister=False)
        if why:
            self.record(DROPPED, name="RegisterSlaveMessage", src=pid, reason=why)
            return
        for w in v.registration_warnings(msg):
            self.record(WARN, name="RegisterSlaveMessage", src=pid, reason=w)
        old = self.registered_at(pid)
        if old is not None:
            if old.connected:
                # Step 8, the reboot race: the same id again and no new agent (§2.2).
                self.record(INFO, agent=old.id, reason="agent at %s already registered: resending %s" % (pid, old.id))
                self.send(pid, "SlaveRegisteredMessage", {"slave_id": old.id, "connection": _connection(self)})
                return
            self.remove_agent(old, "a new agent registered at the same address", Agent.REMOVED)
        for c in v.checkpoint_crashes(msg.get("checkpointed_resources")):
            self.record(CRASH, name="RegisterSlaveMessage", src=pid, reason=c)
        aid = "%s-S%d" % (self.master_id, self.next_agent)
        self.next_agent += 1
        info = dict(msg["slave"])
        info["id"] = aid
        a = Agent(aid, pid, info, [c.get("type") for c in msg.get("agent_capabilities", [])], msg["version"])
        a.connected = True
        a.checkpointed = list(msg.get("checkpointed_resources", []))
        a.resource_version_uuid = msg.get("resource_version_uuid")
        self.agents[aid] = a
        self.registry.save()
        self.record(INFO, agent=aid, reason="registered agent %s at %s" % (aid, pid))
        self.link(pid)
        self.send(pid, "SlaveRegisteredMessage", {"slave_id": aid, "connection": _connection(self)})
        self.start_observer(a)

    # --- re-registration (§2.4) --------------------------------------------------------------------

    def on_reregister(self, pid, msg):
        why = v.check_registration(msg, reregister=True) or v.check_reregistration(msg)
        if why:
            self.record(DROPPED, name="ReregisterSlaveMessage", src=pid, reason=why)
            return
        for w in v.registration_warnings(msg):
            self.record(WARN, name="ReregisterSlaveMessage", src=pid, reason=w)
        info = msg["slave"]
        aid = idv(info["id"])
        a = self.agents.get(aid)
        caps = {c.get("type") for c in msg.get("agent_capabilities", [])}
        if a is not None and a.state == Agent.GONE:
            self.send(pid, "ShutdownMessage", {"message": "Agent has been marked gone"})
            return
        case_a = a is not None and a.state == Agent.REGISTERED
        for c in v.reregistration_crashes(msg, caps, adds_tasks=not case_a):
            self.record(CRASH, name="ReregisterSlaveMessage", src=pid, agent=aid, reason=c)
        if case_a:
            self._reregister_known(a, pid, msg, caps)
        else:
            self._readmit(a, aid, pid, msg, caps)
        self.registry.save()

    def _reregister_known(self, a, pid, msg, caps):
        """Case A: Master::___reregisterSlave + reconcileKnownSlave."""
        info = msg["slave"]
        if info.get("hostname") != a.info.get("hostname") or _ip(pid) != _ip(a.pid):
            self.send(pid, "ShutdownMessage", {"message": "Agent attempted to reregister with different IP / hostname"})
            return
        lacking = v.tasks_lacking_allocation_info(msg)
        if lacking:
            self.record(WARN, agent=a.id, reason="tasks %s lack allocation_info: harmless here (case A) but a "
                        "CHECK failure after a master failover (§2.11)" % ",".join(lacking))
        case = "A (known agent%s)" % ("" if a.connected else ", disconnected")
        self.record(INFO, agent=a.id, reason="re-registration case %s from %s" % (case, pid))
        a.pid = pid
        self.link(pid)
        a.info, a.capabilities, a.version = dict(info), caps, msg["version"]
        reported = {(idv(t["framework_id"]), idv(t["task_id"])): t for t in msg.get("tasks", [])}
        by_fw = {}
        for t in self.tasks.values():
            if t.agent_id == a.id and (t.framework_id, t.task_id) not in reported:
                state = t.status_update_state if t.status_update_state is not None else t.state
                by_fw.setdefault(t.framework_id, []).append({
                    "task_id": t.task_id, "state": state, "message": "Reconciliation request",
                    "slave_id": a.id, "timestamp": time.time(), "source": SOURCE_MASTER,
                    "reason": REASON_RECONCILIATION})
        recs = []
        for fid, statuses in by_fw.items():
            rec = {"framework_id": fid, "statuses": statuses}
            if fid in self.frameworks:
                rec["framework"] = self.frameworks[fid].info
            recs.append(rec)
        body = {"slave_id": a.id, "connection": _connection(self)}
        if recs:
            body["reconciliations"] = recs
        self.send(pid, "SlaveReregisteredMessage", body)
        kept = {(idv(e.get("framework_id")), idv(e.get("executor_id"))) for e in msg.get("executor_infos", [])}
        for key in list(a.executors):
            if key not in kept:
                del a.executors[key]
                self.record(INFO, agent=a.id, reason="executor %s of %s not reported: removed" % (key[1], key[0]))
        for (fid, tid), t in reported.items():
            mt = self.tasks.get((fid, tid))
            if mt is not None and mt.kill_requested and t.get("state") not in TERMINAL:
                self.send(pid, "KillTaskMessage", {"framework_id": fid, "task_id": tid})
        for fid in sorted({fid for fid, _ in reported}):
            f = self.frameworks.get(fid)
            if f is not None and f.completed:
                self.send(pid, "ShutdownFrameworkMessage", {"framework_id": fid})
        if not a.connected:
            a.connected = True
            if a.observer is not None:
                a.observer.connected = True
            if a.reregister_timer is not None:
                a.reregister_timer.cancel()
                a.reregister_timer = None
        self._update_frameworks(a, msg)
        if AGENT_RESOURCE_PROVIDER not in caps:
            self.send(pid, "CheckpointResourcesMessage", {"resources": list(a.checkpointed)})
        drain.resend(self, a)  # a draining agent is told again (Master::___reregisterSlave)

    def _readmit(self, a, aid, pid, msg, caps):
        """Cases B (recovered after failover) and C (unreachable or unknown): Master::__reregisterSlave."""
        if a is not None and a.state == Agent.RECOVERED:
            case, note = "B (recovered after master failover)", None
        else:
            case = "C (%s agent)" % ("unreachable" if a is not None and a.state == Agent.UNREACHABLE else "unknown")
            note = ("Unreachable agent re-reregistered" if a is not None and a.state == Agent.UNREACHABLE
                    else "Unknown agent reregistered")
        self.record(INFO, agent=aid, reason="re-registration case %s from %s" % (case, pid))
        if a is not None and a.reregister_timer is not None:
            a.reregister_timer.cancel()
        for key in [k for k, t in self.tasks.items() if t.agent_id == aid]:
            del self.tasks[key]  # the agent's report becomes the master's truth
        for t in msg.get("tasks", []):
            fid, tid = idv(t["framework_id"]), idv(t["task_id"])
            f = self.frameworks.get(fid)
            if f is not None and f.completed:
                continue
            mt = Task(fid, tid, aid, t.get("name", tid), list(t.get("resources", [])),
                      idv(t.get("executor_id")) if "executor_id" in t else None, t.get("state"))
            if "status_update_state" in t and "status_update_uuid" in t:
                mt.status_update_state, mt.status_update_uuid = t["status_update_state"], t["status_update_uuid"]
            elif "status_update_state" in t or "status_update_uuid" in t:
                mt.inconsistent_ack_fields = True
            self.tasks[(fid, tid)] = mt
            if note and f is not None:
                self.record(INFO, agent=aid, reason="to framework %s: %s %s (%s, REASON_SLAVE_REREGISTERED)"
                            % (fid, tid, TASK_STATES.get(mt.state), note))
        b = Agent(aid, pid, dict(msg["slave"]), caps, msg["version"])
        b.state, b.connected = Agent.REGISTERED, True
        b.checkpointed = list(msg.get("checkpointed_resources", []))
        b.resource_version_uuid = msg.get("resource_version_uuid")
        for ex in msg.get("executor_infos", []):
            b.executors[(idv(ex.get("framework_id")), idv(ex.get("executor_id")))] = ex
        self.agents[aid] = b
        self.link(pid)
        self.start_observer(b)  # captured after a master restart: the Ping goes out before SlaveReregistered
        drain.resend(self, b)  # before SlaveReregisteredMessage, as Master::__reregisterSlave
        self.send(pid, "SlaveReregisteredMessage", {"slave_id": aid, "connection": _connection(self)})
        for fw in msg.get("frameworks", []):
            f = self.frameworks.get(idv(fw.get("id")))
            if f is not None and f.completed:
                self.send(pid, "ShutdownFrameworkMessage", {"framework_id": f.id})
        self._update_frameworks(b, msg)

    def _update_frameworks(self, a, msg):
        """Master::updateSlaveFrameworks: UpdateFrameworkMessage per reported framework, or recover it."""
        for fw in msg.get("frameworks", []):
            if "id" not in fw:
                continue
            fid = idv(fw["id"])
            f = self.frameworks.get(fid)
            if f is None:
                f = self.frameworks[fid] = Framework(dict(fw), self.default_ack)
                self.record(INFO, reason="framework %s recovered from agent %s's report" % (fid, a.id))
            elif f.completed:
                continue
            self.send(a.pid, "UpdateFrameworkMessage", {"framework_id": fid, "pid": f.pid, "framework_info": f.info})

    # --- status updates and acknowledgements (§2.7) ------------------------------------------------

    def on_status_update(self, pid, msg):
        u = msg["update"]
        st = u["status"]
        upid = msg.get("pid")
        try:
            ok_pid = bool(upid) and lphttp.parse_upid(upid)
        except ValueError:
            ok_pid = False
        if not ok_pid:
            self.record(CRASH, name="StatusUpdateMessage", src=pid, reason="StatusUpdateMessage.pid %r is missing or "
                        "not a UPID: CHECK_NE(pid, UPID()) in Master::statusUpdate (§2.11)" % (upid,))
            return
        aid = idv(u.get("slave_id")) if "slave_id" in u else None
        a = self.agents.get(aid) if aid else None
        why = v.check_uuid(u.get("uuid"))
        if why:
            self.record(DROPPED, name="StatusUpdateMessage", src=pid, agent=aid, reason="update.%s (§0.8)" % why)
            return
        if a is None or a.state != Agent.REGISTERED:
            self.record(DROPPED, name="StatusUpdateMessage", src=pid, agent=aid, reason="update.slave_id %r is "
                        "missing or not a registered agent" % (aid,))
            return
        if "uuid" not in st:
            self.record(CRASH, name="StatusUpdateMessage", src=pid, agent=aid, reason="status.uuid missing while "
                        "update.uuid is set: CHECK in Master::statusUpdate (§2.11)")
            return
        if st["uuid"] != u["uuid"]:
            self.record(WARN, name="StatusUpdateMessage", agent=aid, reason="status.uuid differs from update.uuid: "
                        "the framework acks status.uuid, so the agent's stream never advances")
        fid, tid = idv(u["framework_id"]), idv(st["task_id"])
        state = u.get("latest_state", st["state"])
        if st["state"] == TASK_UNKNOWN and state in TERMINAL:
            self.record(CRASH, name="StatusUpdateMessage", agent=aid, reason="TASK_UNKNOWN status with a terminal "
                        "latest_state: LOG(FATAL) in Master::updateTask (§2.11)")
            return
        f = self.frameworks.get(fid)
        t = self.tasks.get((fid, tid))
        if t is not None and f is not None and not f.completed:
            t.status_update_state, t.status_update_uuid = st["state"], st["uuid"]  # Master::forward
        if t is None:
            self.record(WARN, name="StatusUpdateMessage", agent=aid, reason="task %s of framework %s is unknown "
                        "to the master (forwarded, not tracked)" % (tid, fid))
        elif t.state != state:
            t.state = state  # terminal frees the task's resources at once (Master::updateTask)
            self.record(INFO, agent=aid, reason="task %s is %s" % (tid, TASK_STATES.get(state, state)))
        self.registry.save()
        if f is None or f.completed:
            self.record(WARN, name="StatusUpdateMessage", agent=aid, reason="framework %s is %s: update not "
                        "forwarded, never acknowledged" % (fid, "unknown" if f is None else "completed"))
            return
        if f.ack == "auto":
            self.acknowledge(a, fid, tid, st["uuid"])
        elif f.ack == "manual":
            self.pending_acks.setdefault((fid, tid), []).append((aid, st["uuid"], st["state"]))

    def acknowledge(self, a, fid, tid, uuid):
        """Master::acknowledge: forward {slave_id, framework_id, task_id, uuid} if the agent is connected."""
        if a.state != Agent.REGISTERED or not a.connected:
            self.record(INFO, agent=a.id, reason="ack for %s lost: agent not connected (its retry covers it)" % tid)
            return False
        t = self.tasks.get((fid, tid))
        if t is not None:
            if t.inconsistent_ack_fields:
                self.record(CRASH, agent=a.id, reason="ack for task %s whose status_update_state/uuid were reported "
                            "one without the other: CHECK_EQ in Master::acknowledge (§2.11)" % tid)
                return False
            if t.status_update_state in TERMINAL and t.status_update_uuid == uuid:
                del self.tasks[(fid, tid)]
                self.registry.save()
        self.send(a.pid, "StatusUpdateAcknowledgementMessage",
                  {"slave_id": a.id, "framework_id": fid, "task_id": tid, "uuid": uuid})
        return True

    # --- other agent messages (§2.9) ---------------------------------------------------------------

    def on_exited_executor(self, pid, msg):
        a = self.agents.get(idv(msg["slave_id"]))
        if a is None or a.state != Agent.REGISTERED:
            self.record(DROPPED, name="ExitedExecutorMessage", src=pid, reason="unknown or removed agent")
            return
        key = (idv(msg["framework_id"]), idv(msg["executor_id"]))
        if a.executors.pop(key, None) is None:
            self.record(WARN, name="ExitedExecutorMessage", agent=a.id, reason="unknown executor %s of %s "
                        "ignored (command tasks have none)" % (key[1], key[0]))
        else:
            self.record(INFO, agent=a.id, reason="executor %s exited: its resources are free" % key[1])
            self.registry.save()

    def on_executor_to_framework(self, pid, msg):
        a = self.agents.get(idv(msg["slave_id"]))
        if a is None or a.state != Agent.REGISTERED:
            self.record(DROPPED, name="ExecutorToFrameworkMessage", src=pid, reason="unknown or removed agent")
        elif idv(msg["framework_id"]) not in self.frameworks:
            self.record(DROPPED, name="ExecutorToFrameworkMessage", src=pid, reason="unknown framework")

    def on_unregister(self, pid, msg):
        a = self.agents.get(idv(msg["slave_id"]))
        if a is None or a.state != Agent.REGISTERED:
            self.record(DROPPED, name="UnregisterSlaveMessage", src=pid, reason="unknown agent")
        elif a.pid != pid:
            self.record(DROPPED, name="UnregisterSlaveMessage", src=pid, reason="not from the agent's pid %s" % a.pid)
        else:
            self.remove_agent(a, "the agent unregistered", Agent.REMOVED)

    def on_update_slave(self, pid, msg):
        a = self.agents.get(idv(msg["slave_id"]))
        if a is None or a.state != Agent.REGISTERED:
            self.record(DROPPED, name="UpdateSlaveMessage", src=pid, reason="unknown or removed agent")

    HANDLERS = {
        "RegisterSlaveMessage": on_register,
        "ReregisterSlaveMessage": on_reregister,
        "StatusUpdateMessage": on_status_update,
        "ExitedExecutorMessage": on_exited_executor,
        "ExecutorToFrameworkMessage": on_executor_to_framework,
        "UnregisterSlaveMessage": on_unregister,
        "UpdateSlaveMessage": on_update_slave,
    }

    # --- agent state changes -----------------------------------------------------------------------

    def used(self, a):
        """Resources held by the agent's live tasks and executors (terminal tasks free theirs, §2.7)."""
        p = Pool()
        for t in self.tasks.values():
            if t.agent_id == a.id and t.state not in TERMINAL:
                for r in t.resources:
                    p.add(r)
        for ex in a.executors.values():
            for r in ex.get("resources", []):
                p.add(r)
        return p

    def free(self, a):
        return a.total().minus(self.used(a))

    def _end_tasks(self, a, state_for, reason):
        for key, t in list(self.tasks.items()):
            if t.agent_id != a.id:
                continue
            f = self.frameworks.get(t.framework_id)
            st = state_for(f)
            if st is None:
                continue
            del self.tasks[key]
            self.record(INFO, agent=a.id, reason="task %s -> %s (%s)" % (t.task_id, TASK_STATES.get(st), reason))

    def disconnect(self, a, why):
        """Master::exited -> disconnect (§1.5): deactivate; non-checkpointing frameworks lose their tasks."""
        a.connected = False
        if a.observer is not None:
            a.observer.connected = False
        self.record(INFO, agent=a.id, reason="agent disconnected: %s" % why)
        self._end_tasks(a, lambda f: TASK_LOST if f is not None and not f.info.get("checkpoint", False) else None,
                        "framework does not checkpoint; REASON_SLAVE_DISCONNECTED=%d" % REASON_SLAVE_DISCONNECTED)
        self.start_reregister_timer(a, "disconnected for the whole agent_reregister_timeout")
        self.registry.save()

    def start_reregister_timer(self, a, why):
        if a.reregister_timer is not None:
            a.reregister_timer.cancel()
        loop = asyncio.get_running_loop()
        a.reregister_timer = loop.call_later(self.reregister_timeout, self.mark_unreachable, a.id, why)

    def mark_unreachable(self, agent_id, why):
        """Master::markUnreachable: tasks UNREACHABLE (partition-aware) or LOST, observer and pings stop."""
        a = self.agents.get(agent_id)
        if a is None or a.state not in (Agent.REGISTERED, Agent.RECOVERED):
            return
        self.stop_observer(a)
        a.reregister_timer = None
        a.state, a.connected = Agent.UNREACHABLE, False
        a.executors.clear()
        self.record(INFO, agent=a.id, reason="agent marked unreachable: %s" % why)
        self._end_tasks(a, lambda f: TASK_UNREACHABLE if f is not None and f.partition_aware else TASK_LOST,
                        "REASON_SLAVE_REMOVED=%d" % REASON_SLAVE_REMOVED)
        self.registry.save()

    def remove_agent(self, a, why, state):
        self.stop_observer(a)
        if a.reregister_timer is not None:
            a.reregister_timer.cancel()
            a.reregister_timer = None
        a.state, a.connected = state, False
        a.executors.clear()
        self.record(INFO, agent=a.id, reason="agent %s: %s" % (state, why))
        # TASK_GONE_BY_OPERATOR for partition-aware frameworks when marked gone, else TASK_LOST.
        gone = state == Agent.GONE
        self._end_tasks(a, lambda f: 12 if gone and f is not None and f.partition_aware else TASK_LOST, why)
        self.registry.save()


def _ip(pid):
    return pid.split("@", 1)[-1].rsplit(":", 1)[0]

