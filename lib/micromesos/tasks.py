# The task runner: a module's `async def main(ctx)` run as a Mesos task; its end, kill and shutdown.
# MIT licence. PROTOCOL.md §2.6 (launching: launch.py), §2.7 (updates, via micromesos.updates), §2.8, §3.12.
import gc
import io
import sys

import asyncio

from . import codec, launch, log, names, resources, schema, taskstore
from .ctx import DONE, LAUNCHING, RUNNING
from .fetch import Loader
from .launch import DEFAULT_GRACE_MS, grace_ms
from .steps import Watch, cancel, marker

_W = "tasks"


def presized(n):
    """An empty dict whose table already holds n entries. MicroPython never shrinks a dict's table and
    re-uses deleted slots, so it won't need a bigger contiguous block later, in a fragmented heap."""
    d = {}
    for i in range(n):
        d[i] = None
    for i in range(n):
        del d[i]
    return d


class Tasks:
    """The agent's task runner (agent.tasks). Everything the master can ask of tasks arrives through
    handler(kind); live tasks and their leases are checkpointed in agent.store ("tasks")."""

    MAX_TASKS = 32   # records held: running tasks plus those whose terminal update awaits its ack

    def __init__(self, agent):
        cfg = agent.cfg
        self.agent = agent
        self.updates = agent.updates
        self.store = agent.store
        self.live = presized(self.MAX_TASKS)  # (fid, tid) -> Ctx, until its terminal update is acked
        self.executors = {}  # (fid, eid) -> [raw ExecutorInfo, live tasks, shutdown grace ms]
        self.leases = self._new_leases()
        fs = agent.inv.fs.rstrip("/")
        self.loader = Loader((fs + "/" if fs else "/") + cfg["tasks_dir"],
                             cfg.get("fetch_max_bytes") or 65536)
        self._next = 1        # checkpoint slot numbers (0 = none in the marker)
        self._running = 0     # tasks in RUNNING or KILLING
        self.watch = Watch(self, cfg.get("task_slice_ms") or 200)
        self.counters = {"launched": 0, "finished": 0, "failed": 0, "killed": 0, "lost": 0, "hogs": 0}
        self.marker = marker(agent)
        self._boot_marker = 0
        if self.marker is not None:
            self._boot_marker = self.marker.read()  # kept for recover(); cleared now so it can't go stale
            self.marker.write(0)
        agent.updates.on_terminal_acked = self._acked
        self.on_status = None    # fn(ctx, state) for each update queued: /state's statuses (endpoints.py)
        self.on_finished = None  # fn(ctx, state) at each task's end: endpoints keeps a bounded history
        self._handlers = {names.RUN_TASK: self._run_task, names.RUN_TASK_GROUP: self._run_task_group,
                          names.KILL_TASK: self._kill, names.SHUTDOWN_FRAMEWORK: self._shutdown_framework,
                          names.SHUTDOWN_EXECUTOR: self._shutdown_executor,
                          names.FRAMEWORK_TO_EXECUTOR: self._framework_message}

    # --- the agent's interface -------------------------------------------------------------------

    def handler(self, kind):
        return self._handlers.get(kind)

    def known(self, fid, tid):
        return (fid, tid) in self.live

    def reregistration(self):
        """(Task dicts, raw ExecutorInfos, framework ids) for ReregisterSlaveMessage (§2.4, §3.12)."""
        return taskstore.reregistration(self)

    def recover(self):
        """Called by agent.recover(): report what did not survive the reboot (taskstore.recover)."""
        return taskstore.recover(self)

    def stop_all(self):
        """ShutdownMessage or agent stop: every task stops now, silently (the agent forgets its id)."""
        for c in list(self.live.values()) + self.watch.stopping:
            c._silent = True
            if c.phase != DONE:
                t = c._atask
                c._forced = True
                self._finish(c, schema.TASK_KILLED, schema.SOURCE_SLAVE, None, "agent shutting down")
                cancel(t)
        for k in list(self.live):
            del self.live[k]  # the table stays allocated (presized)
        self.executors = {}
        self.watch.stopping = []
        self.leases = self._new_leases()
        self._save()

    def _new_leases(self):
        leases = resources.Leases(self.agent.totals)
        leases.used = presized(self.MAX_TASKS + 4)  # owners: tasks, and their executors
        return leases

    def _save(self):
        taskstore.save(self)

    def _run_task(self, msg):  # §2.6, in launch.py
        launch.run_task(self, msg)

    def _run_task_group(self, msg):
        launch.run_task_group(self, msg)

    # --- ending -------------------------------------------------------------------------------------

    def _send(self, c, state, source, reason=None, message=None):
        ok = self.updates.update(c.framework_id, c.task_id, state, source, executor_id=c.executor_id,
                                 reason=reason, message=message)
        if ok and self.on_status is not None:
            self.on_status(c, state)
        return ok

    def _ended(self, c, exc):
        """main(ctx) returned (exc None), raised, or was cancelled: its terminal state (§2.6)."""
        if c.phase == DONE:
            return
        o = c._outcome
        if o is not None:
            state, source, reason, message = o
        elif exc is None:
            state, source, reason, message = schema.TASK_FINISHED, schema.SOURCE_EXECUTOR, None, "main() returned"
        elif isinstance(exc, MemoryError):
            gc.collect()
            state, source, reason = schema.TASK_FAILED, schema.SOURCE_SLAVE, schema.REASON_CONTAINER_LIMITATION_MEMORY
            message = "MemoryError: the heap is exhausted (task heap growth %d bytes)" % c.heap
        elif isinstance(exc, asyncio.CancelledError):
            state, source, reason, message = schema.TASK_KILLED, schema.SOURCE_EXECUTOR, None, "cancelled"
        else:
            state, source, reason = schema.TASK_FAILED, schema.SOURCE_EXECUTOR, None
            message = "%s: %s" % (type(exc).__name__, exc)
            tb = io.StringIO()
            sys.print_exception(exc, tb)
            c.stderr.write(tb.getvalue().encode())
        self._finish(c, state, source, reason, message)

    def _finish(self, c, state, source, reason, message):
        """The one terminal update of a task (updates refuses a second one anyway, §2.7)."""
        if c.phase == DONE:
            return
        if c.phase != LAUNCHING:
            self._running -= 1
        c.phase = DONE
        c._atask = None
        c._deadline = None
        c._inbox = None
        c.data = None
        self.leases.release(c)
        note = "%s after %d steps; heap growth %d bytes; longest step %d ms" % (
            schema.task_state_name(state), c.steps, c.heap, c.max_step_ms)
        c.stderr.write(note.encode())
        log.info(_W, "task %s: %s (%s)", c.task_id, note, message)
        if state == schema.TASK_FINISHED:
            self.counters["finished"] += 1
        elif state == schema.TASK_KILLED:
            self.counters["killed"] += 1
        elif state == schema.TASK_FAILED:
            self.counters["failed"] += 1
        if not c._silent:
            try:
                self._send(c, state, source, reason, message)
            except MemoryError:  # e.g. the task just exhausted the heap: what it held is free now
                gc.collect()
                self._send(c, state, source, reason, message)
        if self.on_finished is not None:
            self.on_finished(c, state)
        if c._eid is not None:
            e = self.executors.get((c.framework_id, c._eid))
            if e is not None:
                e[1] -= 1
                if e[1] <= 0:
                    self._exited(c.framework_id, c._eid)

    def _exited(self, fid, eid):
        """The virtual executor has no live task left: ExitedExecutorMessage{status 0} releases its
        resources in the master (§2.6). Not reliable: a re-registration without it does the same (§2.4)."""
        if self.executors.pop((fid, eid), None) is not None:
            self.leases.release((fid, eid))  # executors are not checkpointed: none survives a reboot
        agent = self.agent
        if agent.connected():
            agent.send_to_master(names.EXITED_EXECUTOR, codec.encode(schema.ExitedExecutorMessage, {
                "slave_id": agent.slave_id, "framework_id": fid, "executor_id": eid, "status": 0}))

    def _acked(self, fid, tid):
        """updates.on_terminal_acked: the task may be forgotten, and its framework once it has nothing here."""
        if self.live.pop((fid, tid), None) is None:
            return
        self._save()
        self._forget_framework(fid)

    def _forget_framework(self, fid):
        for k in self.live:
            if k[0] == fid:
                return
        for k in self.executors:
            if k[0] == fid:
                return
        # Not checkpointed now: a stale FrameworkInfo in the file costs nothing (a re-registration only
        # lists frameworks that have tasks) and the next launch would write it back anyway.
        self.agent.frameworks.pop(fid, None)

    def _caps(self, fid, cap):
        raw = self.agent.frameworks.get(fid)
        if raw is None:
            return False
        fw = codec.decode(schema.FrameworkInfo, raw)
        return any(c.get("type") == cap for c in fw.get("capabilities", ()))

    # --- kill and shutdown (§2.8) -------------------------------------------------------------------

    def _kill(self, msg):
        m = codec.decode(schema.KillTaskMessage, msg.buf, msg.start, msg.end)
        fid = m["framework_id"]
        tid = m["task_id"]
        c = self.live.get((fid, tid))
        if c is None:
            if fid not in self.agent.frameworks:
                log.warn(_W, "kill of %s for unknown framework %s ignored", tid, fid)
                return
            if self.updates.latest(fid, tid) is None:
                self.counters["lost"] += 1
                self.updates.update(fid, tid, schema.TASK_DROPPED if self._caps(fid, schema.FW_PARTITION_AWARE)
                                    else schema.TASK_LOST, schema.SOURCE_SLAVE, executor_id=tid,
                                    reason=schema.REASON_EXECUTOR_TERMINATED, message="no such task on this agent")
            return
        kp = m.get("kill_policy")
        grace = grace_ms(kp["grace_period"]) if kp and "grace_period" in kp else self._grace_of(c)
        if c.phase == RUNNING and self._caps(fid, schema.FW_TASK_KILLING_STATE):
            self._send(c, schema.TASK_KILLING, schema.SOURCE_EXECUTOR)
        self._terminate(c, (schema.TASK_KILLED, schema.SOURCE_EXECUTOR, None, "killed by the framework"), grace)

    def _grace_of(self, c):
        return c._grace_ms if c._grace_ms >= 0 else DEFAULT_GRACE_MS

    def _terminate(self, c, outcome, grace):
        """While its code is being fetched a task ends now (TASK_KILLED, REASON_TASK_KILLED_DURING_LAUNCH,
        §2.8); running, it is cancelled and given `grace` ms (steps.Watch); done, nothing happens."""
        if c.phase == LAUNCHING:
            t = c._atask
            self._finish(c, schema.TASK_KILLED, schema.SOURCE_SLAVE, schema.REASON_TASK_KILLED_DURING_LAUNCH,
                         outcome[3] + " while its code was being fetched")
            cancel(t)
        elif c.phase != DONE:
            self.watch.stop(c, outcome, grace)

    def _shutdown_framework(self, msg):
        fid = codec.decode(schema.ShutdownFrameworkMessage, msg.buf, msg.start, msg.end)["framework_id"]
        keys = [k for k in self.live if k[0] == fid]
        if not keys and fid not in self.agent.frameworks:
            return  # sent to every agent, including those that never ran it (§2.8)
        for k in keys:
            c = self.live.pop(k)
            c._silent = True  # the master already counts its tasks KILLED; pending updates are pointless
            self._terminate(c, (schema.TASK_KILLED, schema.SOURCE_EXECUTOR, schema.REASON_FRAMEWORK_REMOVED,
                                "framework removed"), self._grace_of(c))
        for k in [k for k in self.executors if k[0] == fid]:
            del self.executors[k]
            self.leases.release(k)
        self.updates.drop_framework(fid)
        if self.agent.frameworks.pop(fid, None) is not None:
            self.agent.checkpoint()
        self._save()
        log.info(_W, "framework %s shut down: %d task(s) stopped", fid, len(keys))

    def _shutdown_executor(self, msg):
        m = codec.decode(schema.ShutdownExecutorMessage, msg.buf, msg.start, msg.end)
        fid = m.get("framework_id")
        eid = m.get("executor_id")
        e = self.executors.get((fid, eid))
        outcome = (schema.TASK_KILLED, schema.SOURCE_EXECUTOR, None, "executor shut down")
        if e is None:
            c = self.live.get((fid, eid))  # a command task's executor id is its task id
            if c is not None and c._eid is None:
                self._terminate(c, outcome, self._grace_of(c))
            return
        n = 0
        for c in list(self.live.values()):
            if c.framework_id == fid and c._eid == eid and c.phase != DONE:
                self._terminate(c, outcome, e[2])
                n += 1
        if not n:
            self._exited(fid, eid)  # nothing left to wait for

    def _framework_message(self, msg):
        m = codec.decode(schema.FrameworkToExecutorMessage, msg.buf, msg.start, msg.end)
        fid = m["framework_id"]
        eid = m["executor_id"]
        n = 0
        for (f, _), c in self.live.items():
            if f == fid and c.executor_id == eid and c.phase == RUNNING:
                c._deliver(m["data"])
                n += 1
        if not n:
            log.debug(_W, "framework message for executor %s dropped: nothing running", eid)
