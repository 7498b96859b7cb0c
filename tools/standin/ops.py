# The stand-in master's commands: frameworks, launches shaped as captured, kills, acks, shutdowns, link cuts.
# MIT licence. PROTOCOL.md §2.6-§2.8; a launch that does not fit is refused by the fixture, never sent.
from .events import INFO, REFUSED
from .lphttp import addr_of
from .model import (ACK_POLICIES, FRAMEWORK_CAPS, MESOS_EXECUTE_CAPS, TASK_STATES, TERMINAL, Agent, Framework,
                    Task, parse_resources)
from .validate import check_id


class Refused(Exception):
    """A command the real master would not have turned into a message to the agent."""


def _kill_policy(grace_period):
    if grace_period is None:
        return None
    return {"grace_period": {"nanoseconds": int(round(float(grace_period) * 1e9))}}


def _command(command, shell=True, arguments=None, uris=None, environment=None, user=None):
    """CommandInfo as mesos-execute builds it: value + shell (explicit true), then the optional parts."""
    c = {"value": command, "shell": bool(shell)}
    if uris:
        c["uris"] = [{"value": u} if isinstance(u, str) else dict(u) for u in uris]
    if environment:
        c["environment"] = {"variables": [{"name": k, "value": str(val)} for k, val in dict(environment).items()]}
    if arguments:
        c["arguments"] = [str(x) for x in arguments]
    if user:
        c["user"] = user
    return c


class Operations:
    """Mixin of StandinMaster: what a framework (through the master) does to an agent."""

    def create_framework(self, name="mesos-execute instance", user="root", capabilities=MESOS_EXECUTE_CAPS,
                         roles=None, checkpoint=False, ack=None, failover_timeout=None, principal=None,
                         hostname=None):
        """A FrameworkInfo as mesos-execute sends it (captured RunTaskMessage.framework). With MULTI_ROLE in
        `capabilities`, `roles` is set and `role` absent; otherwise `role` (default "*") is set. -> id."""
        ack = ack or self.default_ack
        if ack not in ACK_POLICIES:
            raise ValueError("ack must be one of %s" % (ACK_POLICIES,))
        caps = []
        for c in capabilities or ():
            if c not in FRAMEWORK_CAPS:
                raise ValueError("unknown framework capability %r" % (c,))
            caps.append({"type": FRAMEWORK_CAPS[c]})
        fid = "%s-%04d" % (self.master_id, self.next_framework)
        self.next_framework += 1
        info = {"user": user, "name": name, "id": fid, "checkpoint": bool(checkpoint)}
        if failover_timeout is not None:
            info["failover_timeout"] = float(failover_timeout)
        if "MULTI_ROLE" in (capabilities or ()):
            info["roles"] = list(roles or ["*"])
        else:
            if roles and len(roles) != 1:
                raise ValueError("a framework without MULTI_ROLE has exactly one role")
            info["role"] = (roles or ["*"])[0]
        if principal:
            info["principal"] = principal
        if hostname:
            info["hostname"] = hostname
        info["capabilities"] = caps
        self.frameworks[fid] = Framework(info, ack)
        self.registry.save()
        self.record(INFO, reason="framework %s created (ack=%s, capabilities=%s)"
                    % (fid, ack, ",".join(capabilities or ())))
        return fid

    def _framework(self, framework_id):
        if framework_id is None:
            live = [f for f in self.frameworks.values() if not f.completed]
            return live[0] if live else self.frameworks[self.create_framework()]
        f = self.frameworks.get(framework_id)
        if f is None or f.completed:
            raise LookupError("unknown or completed framework %r" % framework_id)
        return f

    def _launch_target(self, agent_id, framework_id):
        a = self.agent(agent_id)
        f = self._framework(framework_id)
        if a.state != Agent.REGISTERED or not a.connected:
            # Master::_accept answers the framework TASK_LOST/DROPPED itself and sends nothing (§2.6).
            self._refuse("agent %s is %s: the master would answer the framework %s" % (
                a.id, a.state if a.state != Agent.REGISTERED else "disconnected",
                "TASK_DROPPED" if f.partition_aware else "TASK_LOST"))
        return a, f

    def _refuse(self, why):
        self.record(REFUSED, reason=why)
        raise Refused(why)

    def _new_task_id(self, f, task_id):
        if task_id is None:
            task_id = "task-%d" % self.next_task
            self.next_task += 1
        why = check_id(task_id, "TaskID")
        if why:
            self._refuse(why)
        if (f.id, task_id) in self.tasks:
            self._refuse("task %s already exists in framework %s" % (task_id, f.id))
        return task_id

    def _fit(self, a, resources):
        why = self.free(a).lacks(resources)
        if why:
            self._refuse("launch does not fit on agent %s: %s" % (a.id, why))

    def _extra(self, a):
        if a.resource_version_uuid is not None:
            return {"resource_version_uuids": [{"uuid": a.resource_version_uuid}]}
        return {}

    async def launch(self, command="true", task_id=None, resources="cpus:0.1;mem:32", agent_id=None,
                     framework_id=None, name=None, arguments=None, shell=True, uris=None, environment=None,
                     data=None, kill_policy=None, user=None):
        """Send a RunTaskMessage for a command task shaped exactly as captured. -> task id. agent_id defaults
        to the only registered agent, framework_id to the oldest live framework (a mesos-execute one is
        created if there is none); kill_policy is a grace period in seconds. Refused if the agent is not
        connected, the id is taken or invalid, or the resources do not fit."""
        a, f = self._launch_target(agent_id, framework_id)
        tid = self._new_task_id(f, task_id)
        res = parse_resources(resources, f.roles()[0])
        self._fit(a, res)
        task = {"name": name or tid, "task_id": tid, "slave_id": a.id, "resources": res,
                "command": _command(command, shell, arguments, uris, environment, user)}
        if data is not None:
            task["data"] = data.encode() if isinstance(data, str) else bytes(data)
        if kill_policy is not None:
            task["kill_policy"] = _kill_policy(kill_policy)
        self.tasks[(f.id, tid)] = Task(f.id, tid, a.id, task["name"], res)
        self.registry.save()
        msg = {"framework": f.info, "pid": f.pid, "task": task, "launch_executor": True}
        msg.update(self._extra(a))
        self.send(a.pid, "RunTaskMessage", msg)
        return tid

    async def launch_group(self, tasks, executor_id="default-executor", executor_resources="cpus:0.1;mem:32",
                           agent_id=None, framework_id=None):
        """RunTaskGroupMessage with a DEFAULT executor; each task is {task_id?, command, resources?, name?,
        data?, kill_policy?}. launch_executor is true only for the first group of that executor. -> ids."""
        a, f = self._launch_target(agent_id, framework_id)
        role = f.roles()[0]
        launch_executor = (f.id, executor_id) not in a.executors
        ex = a.executors.get((f.id, executor_id)) or {
            "type": 1, "executor_id": executor_id, "framework_id": f.id,
            "resources": parse_resources(executor_resources, role)}
        infos, need, ids = [], list(ex["resources"]) if launch_executor else [], []
        for spec in tasks:
            tid = self._new_task_id(f, spec.get("task_id"))
            if tid in ids:
                self._refuse("task %s twice in one group" % tid)
            res = parse_resources(spec.get("resources", "cpus:0.1;mem:32"), role)
            need += res
            t = {"name": spec.get("name", tid), "task_id": tid, "slave_id": a.id, "resources": res,
                 "executor": ex, "command": _command(spec.get("command", "true"), spec.get("shell", True),
                                                     spec.get("arguments"), spec.get("uris"),
                                                     spec.get("environment"))}
            if spec.get("data") is not None:
                d = spec["data"]
                t["data"] = d.encode() if isinstance(d, str) else bytes(d)
            if spec.get("kill_policy") is not None:
                t["kill_policy"] = _kill_policy(spec["kill_policy"])
            infos.append(t)
            ids.append(tid)
        if not infos:
            raise ValueError("a task group needs at least one task")
        self._fit(a, need)
        a.executors[(f.id, executor_id)] = ex
        for t in infos:
            self.tasks[(f.id, t["task_id"])] = Task(f.id, t["task_id"], a.id, t["name"], t["resources"], executor_id)
        self.registry.save()
        msg = {"framework": f.info, "executor": ex, "task_group": {"tasks": infos}, "launch_executor": launch_executor}
        msg.update(self._extra(a))
        self.send(a.pid, "RunTaskGroupMessage", msg)
        return ids

    def _task(self, task_id, framework_id):
        hits = [t for (fid, tid), t in self.tasks.items() if tid == task_id and framework_id in (None, fid)]
        if len(hits) != 1:
            raise LookupError("%d tasks match %r" % (len(hits), task_id))
        return hits[0]

    async def kill(self, task_id, framework_id=None, grace_period=None):
        """KillTaskMessage (with kill_policy when grace_period is given). Remembered, so a re-registration
        that still reports the task alive gets the kill again (§2.4)."""
        t = self._task(task_id, framework_id)
        a = self.agents[t.agent_id]
        t.kill_requested = True
        self.registry.save()
        if a.state != Agent.REGISTERED or not a.connected:
            self.record(INFO, agent=a.id, reason="kill of %s deferred: agent not connected" % task_id)
            return False
        body = {"framework_id": t.framework_id, "task_id": t.task_id}
        if grace_period is not None:
            body["kill_policy"] = _kill_policy(grace_period)
        self.send(a.pid, "KillTaskMessage", body)
        return True

    async def ack(self, task_id, framework_id=None, uuid=None):
        """Acknowledge the oldest pending update of a task (manual ack policy), or the one with `uuid`.
        -> the uuid acknowledged. LookupError if nothing is pending."""
        keys = [k for k in self.pending_acks if k[1] == task_id and framework_id in (None, k[0])]
        if len(keys) != 1 or not self.pending_acks[keys[0]]:
            raise LookupError("no pending status update for task %r" % task_id)
        pend = self.pending_acks[keys[0]]
        i = 0 if uuid is None else next((j for j, p in enumerate(pend) if p[1] == uuid), None)
        if i is None:
            raise LookupError("no pending update %s for task %r" % (uuid.hex(), task_id))
        aid, u, _ = pend.pop(i)
        if not pend:
            del self.pending_acks[keys[0]]
        self.acknowledge(self.agents[aid], keys[0][0], task_id, u)
        return u

    def pending(self, task_id=None):
        """[(framework_id, task_id, uuid, state name)] waiting for a manual ack."""
        return [(fid, tid, u, TASK_STATES.get(st, st)) for (fid, tid), p in self.pending_acks.items()
                for _, u, st in p if task_id in (None, tid)]

    async def shutdown_framework(self, framework_id):
        """Master::removeFramework: ShutdownFrameworkMessage to every registered agent; the framework's
        tasks become TASK_KILLED (REASON_FRAMEWORK_REMOVED) in the master's books without any update."""
        f = self._framework(framework_id)
        f.completed = True
        for a in self.agents.values():
            if a.state == Agent.REGISTERED:
                self.send(a.pid, "ShutdownFrameworkMessage", {"framework_id": f.id})
            for key in [k for k in a.executors if k[0] == f.id]:
                del a.executors[key]
        for key in [k for k in self.tasks if k[0] == f.id]:
            t = self.tasks.pop(key)
            if t.state not in TERMINAL:
                self.record(INFO, agent=t.agent_id,
                            reason="task %s -> TASK_KILLED (REASON_FRAMEWORK_REMOVED)" % t.task_id)
        self.pending_acks = {k: p for k, p in self.pending_acks.items() if k[0] != f.id}
        self.registry.save()

    async def shutdown_executor(self, executor_id, framework_id=None, agent_id=None):
        f = self._framework(framework_id)
        a = self.agent(agent_id)
        self.send(a.pid, "ShutdownExecutorMessage", {"executor_id": executor_id, "framework_id": f.id})

    async def send_framework_message(self, data, executor_id=None, agent_id=None, framework_id=None):
        """FrameworkToExecutorMessage (Master::message: refused unless the agent is connected)."""
        a = self.agent(agent_id)
        f = self._framework(framework_id)
        if a.state != Agent.REGISTERED or not a.connected:
            self._refuse("agent %s is not connected: the master drops framework messages to it" % a.id)
        body = {"slave_id": a.id, "framework_id": f.id, "executor_id": executor_id or "",
                "data": data.encode() if isinstance(data, str) else bytes(data)}
        self.send(a.pid, "FrameworkToExecutorMessage", body)

    async def shutdown_agent(self, agent_id=None, message="Agent has been marked gone"):
        """Mark the agent gone (operator MARK_AGENT_GONE): ShutdownMessage, then it is removed; a later
        re-registration with its id is answered with ShutdownMessage again."""
        a = self.agent(agent_id)
        self.send(a.pid, "ShutdownMessage", {"message": message} if message else {})
        self.remove_agent(a, "marked gone by the operator", Agent.GONE)

    async def cut_link(self, agent_id=None):
        """Close the master's outbound link to the agent (RST): the agent sees its inbound link drop, and
        the master, like on any broken link, marks it disconnected (§1.5). -> True if a link was up."""
        a = self.agent(agent_id)
        return self.links.cut(addr_of(a.pid))

    # --- views ---------------------------------------------------------------------------------------

    def agents_json(self):
        return [a.to_json(self.used(a)) for a in self.agents.values()]

    def frameworks_json(self):
        return [{"id": f.id, "name": f.info.get("name"), "ack": f.ack, "completed": f.completed,
                 "capabilities": sorted(k for k, n in FRAMEWORK_CAPS.items() if n in f.caps())}
                for f in self.frameworks.values()]

    def tasks_json(self):
        return [t.to_json() for t in self.tasks.values()]
