# The task runner: its tables, the master's task messages routed to the code that handles them, and
# what happens when a task ends. MIT licence. PROTOCOL.md §2.6 (launch.py), §2.7, §2.8 (kill.py), §3.12.
import gc
import sys

from micropython import const

from . import codec, drop, log

if False:  # for mypy only: the compiler drops this block (no import, no RAM on a board)
    from typing import Any  # noqa: F401

_EXITED_EXECUTOR = const(20)  # names.EXITED_EXECUTOR
_FRAMEWORK_TO_EXECUTOR = const(16)  # names.FRAMEWORK_TO_EXECUTOR
_KILL_TASK = const(9)  # names.KILL_TASK
_RUN_TASK = const(7)  # names.RUN_TASK
_RUN_TASK_GROUP = const(8)  # names.RUN_TASK_GROUP
_SHUTDOWN_EXECUTOR = const(13)  # names.SHUTDOWN_EXECUTOR
_SHUTDOWN_FRAMEWORK = const(12)  # names.SHUTDOWN_FRAMEWORK
_ExitedExecutorMessage = const(72)  # schema.ExitedExecutorMessage
_FrameworkInfo = const(23)  # schema.FrameworkInfo
_FrameworkToExecutorMessage = const(74)  # schema.FrameworkToExecutorMessage
_KillTaskMessage = const(67)  # schema.KillTaskMessage
_REASON_CONTAINER_LAUNCH_FAILED = const(21)  # schema.REASON_CONTAINER_LAUNCH_FAILED
_REASON_CONTAINER_LIMITATION_MEMORY = const(8)  # schema.REASON_CONTAINER_LIMITATION_MEMORY
_SOURCE_EXECUTOR = const(2)  # schema.SOURCE_EXECUTOR
_SOURCE_SLAVE = const(1)  # schema.SOURCE_SLAVE
_ShutdownExecutorMessage = const(69)  # schema.ShutdownExecutorMessage
_ShutdownFrameworkMessage = const(68)  # schema.ShutdownFrameworkMessage
_TASK_FAILED = const(3)  # schema.TASK_FAILED
_TASK_FINISHED = const(2)  # schema.TASK_FINISHED
_TASK_KILLED = const(4)  # schema.TASK_KILLED
_TASK_RUNNING = const(1)  # schema.TASK_RUNNING
_TASK_STARTING = const(0)  # schema.TASK_STARTING
_LAUNCHING = const(0)  # ctx.LAUNCHING
_RUNNING = const(1)  # ctx.RUNNING
_DONE = const(3)  # ctx.DONE

DEFAULT_GRACE_MS = const(3000)  # no KillPolicy: EXECUTOR_SIGNAL_ESCALATION_TIMEOUT (src/slave/constants.cpp)
_MAX_GRACE_MS = const(600000)
MAX_MESSAGE = const(400)  # characters of an exception kept in TaskStatus.message (updates bounds it too)
# Strings used once or twice are literals, not globals: this module's globals table stays a size smaller
# (29 slots, not 47: resident on every board).


def _code(kind):
    # Message id -> (module, function), or None. With Tasks.DROP_CODE the code is imported for each message
    # and leaves RAM after it; otherwise it is imported at boot, while the heap is in one piece. A function,
    # not a dict: no table resident.
    if kind == _RUN_TASK:
        return "launch", "run_task"
    if kind == _RUN_TASK_GROUP:
        return "launch", "run_task_group"
    if kind == _KILL_TASK:
        return "kill", "kill"
    if kind == _SHUTDOWN_FRAMEWORK:
        return "kill", "shutdown_framework"
    if kind == _SHUTDOWN_EXECUTOR:
        return "kill", "shutdown_executor"
    return None


def grace_ms(duration):
    """DurationInfo dict -> ms, clamped to [0, 10 min]."""
    ns = duration.get("nanoseconds", 0) if duration else 0
    return max(0, min(ns // 1000000, _MAX_GRACE_MS))


def presized(n, d=None):
    """An empty dict whose table already holds n entries (or dict d, grown now to hold n more). MicroPython
    never shrinks a dict's table and re-uses deleted slots, so it won't need a bigger contiguous block later,
    in a fragmented heap."""
    if d is None:
        d = {}
    for i in range(n):
        d[i] = None
    for i in range(n):
        del d[i]
    return d


def describe(exc):
    """'Type: text' of an exception a task raised, at most MAX_MESSAGE characters (marked when cut).
    Its __str__ is the task's code: if that raises or the heap is short, the type name alone."""
    name = type(exc).__name__
    try:
        a = exc.args
        if len(a) == 1 and isinstance(a[0], str):
            text = a[0]  # the common case: no copy of a long message, only the slice below
        else:
            text = str(exc)
        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE] + "...[truncated]"
        return name + ": " + text if text else name
    except BaseException:  # noqa: B036  a task's __str__ may raise anything; nothing here awaits
        return name


def _tail(ring):
    # sys.print_exception streams into the stderr ring: a deep traceback needs no heap of its own. The class
    # is made for each use (a task raised): no class resident for it.
    import io

    class Tail(io.IOBase):
        def write(self, b):
            ring.write(b)
            return len(b)

    return Tail()


class Leases:
    """Free/used bookkeeping so a task gets only what the board has and nobody else holds. Resident, so
    small: the arithmetic (resources.shortfall) is loaded only for a launch."""

    def __init__(self, totals):
        self.totals = totals  # [(name, value)] the agent advertises
        self.used = {}  # owner -> [(name, value)]; presized by Tasks.presize

    def shortfall(self, wanted):
        """None if every (name, value) fits in what is free, else a reason naming the resource."""
        return load("resources").shortfall(self.totals, self.used, wanted)

    def grant(self, owner, wanted):
        self.used[owner] = wanted

    def release(self, owner):
        self.used.pop(owner, None)

    def clear(self):
        u = self.used
        for k in list(u):
            del u[k]  # the table stays allocated (presized)


class Tasks:
    """The agent's task runner (agent.tasks): live tasks, executors, leases. The agent hands it every
    task message through handler(kind); launch.py admits tasks, steps.py runs them, kill.py stops them,
    taskstore.py recovers them after a reboot, and every task ends in finish() here."""

    MAX_TASKS = 32    # records held: running tasks plus those whose terminal update awaits its ack
    # launch, kill, fetch, download and taskstore leave RAM after each use. None: unless this package
    # was compiled from .py files (frozen or .mpy code loads again at about its own size, compiling
    # needs several times that: docs/ARCHITECTURE.md); True/False: always/never.
    DROP_CODE = None
    _sized = False  # presize() ran
    saved = 0  # next_slot at the last checkpoint written: records in slots below it are on flash
    # Set by taskinit.init, this class's __init__ body kept out of RAM (annotations only: no code on a board).
    drop_code: bool
    agent: Any
    updates: Any            # updates.StatusUpdates
    store: Any              # store.Store
    live: dict              # (fid, tid) -> Ctx, until its terminal update is acked
    executors: dict         # (fid, eid) -> [raw ExecutorInfo, live tasks, shutdown grace ms]
    leases: Leases
    tasks_dir: str
    fetch_max: int
    frozen: tuple           # task modules frozen into the firmware (cfg frozen_tasks)
    modules: dict           # task module -> [live tasks using it, sha256 pin or "frozen", modules it imported]
    fetch_lock: Any         # download.fetch_all: one transfer at a time
    next_slot: int          # checkpoint slot numbers (0 = none in the marker)
    running: int            # tasks in RUNNING or KILLING
    watch: Any              # steps.Watch
    counters: dict
    marker: Any             # taskinit.marker(): the watchdog's task marker, or None
    boot_marker: int        # the task the watchdog reset the board in, or 0 (taskstore.recover reports it)
    on_status: Any          # fn(ctx, state) for each update queued: /state's statuses (endpoints.py)
    on_finished: Any        # fn(ctx, state) at each task's end: endpoints keeps a bounded history

    def __init__(self, agent):
        # Runs once, at boot: its body is taskinit.init (boot-only code, which leaves RAM with the runner's
        # other occasional code below: none of it stays resident).
        load("taskinit").init(self, agent)
        if not self.drop_code:
            from . import kill, launch, taskstore  # noqa: F401  loaded now, while the heap is in one piece
        else:
            drop_code()  # taskinit; boardres, resources: config and Agent.__init__ parsed and measured with them

    # --- the agent's interface -------------------------------------------------------------------

    def handler(self, kind):
        if kind == _FRAMEWORK_TO_EXECUTOR:
            return self._framework_message
        if _code(kind) is not None:
            return lambda msg: self._call(kind, msg)
        return None

    def known(self, fid, tid):
        return (fid, tid) in self.live

    def reregistration(self):
        """(Task dicts, raw ExecutorInfos, framework ids) for ReregisterSlaveMessage (§2.4, §3.12).
        MemoryError if the heap can't take its code now: the agent retries the registration later."""
        if not self.live and not self.executors:
            return [], [], set()  # nothing to list: no code to load (the first one, right after registering)
        try:
            return load("taskstore").reregistration(self)
        finally:
            self.drop()

    def recover(self):
        """Called by agent.recover(): report what did not survive the reboot (taskstore.recover)."""
        try:
            return load("taskstore").recover(self)
        finally:
            self.drop()

    def stop_all(self):
        """ShutdownMessage or agent stop: every task stops now, silently (the agent forgets its id)."""
        for c in list(self.live.values()) + self.watch.stopping:
            c._silent = True
            self.force(c, (_TASK_KILLED, _SOURCE_SLAVE, None, "agent shutting down"))
        for k in list(self.live):
            del self.live[k]  # the table stays allocated (presized)
        self.executors = {}
        self.watch.stopping = []
        self.leases.clear()
        self.save()

    def presize(self):
        """live and leases.used sized for MAX_TASKS, once: at the first launch or recovered task record, so
        an agent without tasks holds no empty tables, and no later launch needs a bigger block (presized)."""
        if self._sized:
            return
        live = presized(self.MAX_TASKS)
        used = presized(self.MAX_TASKS + 4)  # owners: tasks, and their executors
        live.update(self.live)
        used.update(self.leases.used)
        self.live = live
        self.leases.used = used
        # A launch adds its code (launch, resources, fetch) to this package and sys.modules, and its task's
        # module to sys.modules: room for them now too, not a bigger table (232 B on a small node) to find at
        # the launch's peak. The same tables the first launch would grow: nothing more stays in RAM.
        import micromesos

        presized(3, micromesos.__dict__)
        presized(4, sys.modules)
        self._sized = True

    def drop(self):
        """With drop_code: the occasional code (_CODE) leaves RAM until it is next needed,
        once no task's code is being fetched (launch drops them when the last fetch ends)."""
        if self.drop_code:
            for c in self.live.values():
                if c.phase == _LAUNCHING:
                    return
            drop_code()

    def _call(self, kind, msg):
        mod, fn = _code(kind)
        try:
            try:
                if mod == "launch":
                    # A launch loads code (and its task's): it starts from a collected heap. A collection
                    # forced deep inside an import scans a deep stack and can leave garbage alive.
                    gc.collect()
                    self.presize()  # MemoryError: refused as if its code could not load
                    self.watch.wake()  # its task (a frame) made now, not at the launch's peak
                m = load(mod)
            except Exception as e:  # noqa: BLE001  MemoryError, or a missing or damaged file (ImportError, ...)
                log.error("tasks", "cannot load the %s code: %s", mod, describe(e))
                if mod == "launch":
                    if isinstance(e, MemoryError):
                        self.refuse_launch(msg, True, "the agent is out of memory for its launch code")
                    else:
                        self.refuse_launch(msg, False, "the agent could not load its launch code: " + describe(e))
                else:
                    self._stop_now(kind, msg)
                return
            getattr(m, fn)(self, msg)
        finally:
            self.drop()

    def refuse_launch(self, msg, oom, why):
        """A launch that can't be run (no launch code, or no heap for its message as dicts): each task of the
        message is TASK_FAILED (REASON_CONTAINER_LIMITATION_MEMORY if oom, else CONTAINER_LAUNCH_FAILED) with
        message `why`, none left STAGING, except those launch would ignore too (another agent
        id's, a live task's: its stream would be corrupted). Its ids are read in place (launch_ids): no dict.
        An executor the launch would have started is reported exited (the master releases it)."""
        fid, eid, tids = launch_ids(msg.buf, msg.start, msg.end, msg.kind == _RUN_TASK)
        log.error("tasks", "launch of %d task(s) refused: %s", len(tids), why)
        if fid is None:
            return
        reason = _REASON_CONTAINER_LIMITATION_MEMORY if oom else _REASON_CONTAINER_LAUNCH_FAILED
        for tid, sid in tids:
            if tid is not None and sid == self.agent.slave_id and (fid, tid) not in self.live:
                self.updates.update(fid, tid, _TASK_FAILED, _SOURCE_SLAVE, executor_id=eid or tid,
                                    reason=reason, message=why)
        if eid is not None and (fid, eid) not in self.executors:
            self.exited(fid, eid)

    def _stop_now(self, kind, msg):
        """No kill code: the tasks the message names end now, without a grace period (a kill is never lost
        to a short heap). A shut down framework's tasks end silently and are forgotten (kill.py)."""
        gone = kind == _SHUTDOWN_FRAMEWORK
        m = codec.decode(_KillTaskMessage if kind == _KILL_TASK else _ShutdownFrameworkMessage
                         if gone else _ShutdownExecutorMessage, msg.buf, msg.start, msg.end)
        fid = m.get("framework_id")
        tid = m.get("task_id")
        eid = m.get("executor_id")
        for k, c in list(self.live.items()):
            if k[0] == fid and (gone or k[1] == tid or (eid is not None and c.executor_id == eid)):
                if gone:
                    c._silent = True
                    del self.live[k]
                self.force(c, (_TASK_KILLED, _SOURCE_SLAVE, None,
                               "killed at once: the agent could not load its kill code"))
        if gone:
            self.updates.drop_framework(fid)
            self.agent.frameworks.pop(fid, None)
        try:
            self.save()
        except MemoryError:  # the next save writes it; a reboot before it resends the queued terminal updates
            gc.collect()

    # --- services for launch, steps, kill and taskstore ----------------------------------------------

    def save(self):
        """Checkpoint every task record (running, or terminal and unacknowledged): slot, ids, raw resources."""
        n = self.next_slot
        records = []
        for (fid, tid), c in self.live.items():
            raw = []
            for r in c._raw:
                raw.append(r.hex())
            records.append([c._n, fid, tid, c.name, c._eid, raw])
        self.store.save("tasks", {"slave_id": self.agent.slave_id, "next": n, "tasks": records})
        self.saved = n

    def send(self, c, state, source, reason=None, message=None):
        """Queue a status update for task c (updates.py) and tell /state. -> queued?"""
        ok = self.updates.update(c.framework_id, c.task_id, state, source, executor_id=c.executor_id,
                                 reason=reason, message=message)
        h = self.on_status
        if ok and h is not None:
            h(c, state)
        return ok

    def caps(self, fid, cap):
        raw = self.agent.frameworks.get(fid)
        if raw is None:
            return False
        fw = codec.decode(_FrameworkInfo, raw)
        for c in fw.get("capabilities", ()):
            if c.get("type") == cap:
                return True
        return False

    def started(self, c, module, atask):
        """main(ctx) is running as asyncio task `atask`: TASK_STARTING and TASK_RUNNING, as
        mesos-executor sends them once the command runs (§2.6); RUNNING leaves after STARTING's ack."""
        c._atask = atask
        c.phase = _RUNNING
        c._mod = module
        e = self.modules.get(module)
        if e is not None:
            e[0] += 1
        self.running += 1
        self.counters["launched"] += 1
        self.send(c, _TASK_STARTING, _SOURCE_EXECUTOR)
        self.send(c, _TASK_RUNNING, _SOURCE_EXECUTOR)
        self.watch.wake()

    def force(self, c, outcome):
        """End task c now with `outcome` (state, source, reason, message) and cancel its asyncio task;
        steps.Step closes its coroutine if it is ever resumed."""
        if c.phase == _DONE:
            return
        t = c._atask
        c._forced = True
        self.finish(c, *outcome)
        if t is not None:
            try:
                t.cancel()
            except RuntimeError:
                pass  # it is the running task itself (a kill from inside a step): Step closes it

    # --- what happens when a task ends -------------------------------------------------------------

    def ended(self, c, exc):
        """main(ctx) returned (exc None), raised, or was cancelled (steps.Step): its terminal state.
        Only a cancellation the runner asked for (a kill, the fairness watchdog: c._outcome) is a kill;
        every BaseException the task raised itself (CancelledError, KeyboardInterrupt, GeneratorExit,
        SystemExit) fails it."""
        if c.phase == _DONE:
            return
        o = c._outcome
        tb = None
        if o is not None:
            pass  # the runner decided it (a kill, the fairness watchdog) and cancelled it
        elif exc is None:
            o = _TASK_FINISHED, _SOURCE_EXECUTOR, None, "main() returned"
        elif isinstance(exc, MemoryError):
            gc.collect()
            o = (_TASK_FAILED, _SOURCE_SLAVE, _REASON_CONTAINER_LIMITATION_MEMORY,
                 "MemoryError: the heap is exhausted")
            try:
                o = o[:3] + ("%s (task heap growth %d bytes)" % (o[3], c.heap),)
            except MemoryError:
                pass
        else:
            o = _TASK_FAILED, _SOURCE_EXECUTOR, None, describe(exc)
            tb = exc
        self.finish(c, *o)
        if tb is not None:
            try:  # optional, after the update is queued: the traceback in the task's stderr ring
                sys.print_exception(tb, _tail(c.stderr))
            except BaseException:  # noqa: B036  the exception's own repr is task code; nothing awaits here
                gc.collect()

    def finish(self, c, state, source, reason, message):
        """The one terminal update of a task (updates refuses a second one anyway, §2.7). It is queued
        before anything optional (the note, the log line, the history) can run out of heap."""
        if c.phase == _DONE:
            return
        if c.phase != _LAUNCHING:
            self.running -= 1
        c.phase = _DONE
        for k in ("_atask", "_deadline", "_inbox", "data"):
            if getattr(c, k) is not None:
                setattr(c, k, None)  # only those it has: a class default stays shared, no slot is added
        self.leases.release(c)
        if not c._silent:
            for msg in (message, message, None):  # then without it: the state matters more than the text
                try:
                    self.send(c, state, source, reason, msg)
                    break
                except MemoryError:  # e.g. the task just exhausted the heap: what it held is free now
                    gc.collect()
        if state == _TASK_FINISHED:
            self.counters["finished"] += 1
        elif state == _TASK_KILLED:
            self.counters["killed"] += 1
        elif state == _TASK_FAILED:
            self.counters["failed"] += 1
        self._release_module(c)
        if c._eid is not None:
            e = self.executors.get((c.framework_id, c._eid))
            if e is not None:
                e[1] -= 1
                if e[1] <= 0:
                    self.exited(c.framework_id, c._eid)
        try:
            if self.on_finished is not None:
                self.on_finished(c, state)
            from .schema import task_state_name  # resident (codec's): a local name, not a globals slot

            note = "%s after %d steps; heap growth %d bytes; longest step %d ms" % (
                task_state_name(state), c.steps, c.heap, c.max_step_ms)
            c.stderr.write(note.encode())
            log.info("tasks", "task %s: %s (%s)", c.task_id, note, message)
        except MemoryError:
            gc.collect()

    def _release_module(self, c):
        """A task module no live task uses leaves sys.modules, with what its import loaded: the RAM
        its globals hold is freed, and a task that wrecked its module's globals breaks no later launch."""
        name = c._mod
        c._mod = None
        e = self.modules.get(name) if name is not None else None
        if e is not None:
            e[0] -= 1
            self.unload(name)

    def unload(self, name):
        """Task module `name` and what its import loaded leave sys.modules if no live task uses it."""
        e = self.modules.get(name)
        if e is not None and e[0] <= 0:
            del self.modules[name]
            for m in e[2]:
                sys.modules.pop(m, None)

    def exited(self, fid, eid):
        """The virtual executor has no live task left: ExitedExecutorMessage{status 0} releases its
        resources in the master (§2.6). Not reliable: a re-registration without it does the same (§2.4)."""
        if self.executors.pop((fid, eid), None) is not None:
            self.leases.release((fid, eid))  # executors are not checkpointed: none survives a reboot
        agent = self.agent
        if agent.connected():
            agent.send_to_master(_EXITED_EXECUTOR, codec.encode(_ExitedExecutorMessage, {
                "slave_id": agent.slave_id, "framework_id": fid, "executor_id": eid, "status": 0}))

    def _acked(self, fid, tid):
        """updates.on_terminal_acked: the task may be forgotten, and its framework once it has nothing here."""
        if self.live.pop((fid, tid), None) is None:
            return
        self.save()
        for k in self.live:
            if k[0] == fid:
                return
        for k in self.executors:
            if k[0] == fid:
                return
        # Not checkpointed now: a stale FrameworkInfo in the file costs nothing (a re-registration only
        # lists frameworks that have tasks) and the next launch would write it back anyway.
        self.agent.frameworks.pop(fid, None)

    # --- framework messages (§2.9) -------------------------------------------------------------------

    def _framework_message(self, msg):
        m = codec.decode(_FrameworkToExecutorMessage, msg.buf, msg.start, msg.end)
        fid = m["framework_id"]
        eid = m["executor_id"]
        n = 0
        for (f, _), c in self.live.items():
            if f == fid and c.executor_id == eid and c.phase == _RUNNING:
                c._deliver(m["data"])
                n += 1
        if not n:
            log.debug("tasks", "framework message for executor %s dropped: nothing running", eid)


def launch_ids(buf, start, end, one):
    """(framework id, executor id or None, [(task id, agent id)]) of a RunTaskMessage (one) or a
    RunTaskGroupMessage in buf[start:end], read in place: no dict, a few small strings (a launch the heap
    can't decode still gets its answer). None for an id missing or not UTF-8; DecodeError for bytes that are
    no message. Fields: RunTaskMessage framework 2, task 4; RunTaskGroupMessage framework 1, executor 2,
    task_group 3; TaskGroupInfo tasks 1; FrameworkInfo id 3; ExecutorInfo executor_id 1; TaskInfo task_id 2,
    slave_id 3; each ID {value 1} (tests/test_tasks.py checks them against the codec)."""
    fid = _id(buf, _spans(buf, start, end, 2 if one else 1), 3)
    eid = None
    if one:
        tasks = [_spans(buf, start, end, 4)]  # a singular field sent in pieces: they merge (proto2)
    else:
        eid = _id(buf, _spans(buf, start, end, 2), 1)
        tasks = []
        for a, b in _spans(buf, start, end, 3):
            for t in _spans(buf, a, b, 1):  # repeated: one task each
                tasks.append([t])
    ids = []
    for t in tasks:
        ids.append((_id(buf, t, 2), _id(buf, t, 3)))
    return fid, eid, ids


def field_id(buf, start, end, num):
    """The string of the ID message ({1: value}) in field `num` of the message in buf[start:end], read in place
    (no dict of the message); None if it is missing or not UTF-8. DecodeError for bytes that are no message."""
    return _id(buf, ((start, end),), num)


def _spans(buf, start, end, num):
    # (start, end) of each length-delimited field `num` of the message in buf[start:end].
    from .wire import Reader

    r = Reader()
    r.reset(buf, start, end)
    out = []
    while True:
        fn = r.next()
        if fn == 0:
            return out
        if fn == num and r.wt == 2:
            e = r.lendelim()
            out.append((r.pos, e))
            r.pos = e
        else:
            r.skip()


def _id(buf, spans, num):
    # The string of the ID message ({1: value}) in field `num` of the spans' message, or None; the last one
    # wins, as proto2 merges a singular field sent twice.
    v = None
    for a, b in spans:
        for c, d in _spans(buf, a, b, num):
            for x, y in _spans(buf, c, d, 1):
                try:
                    v = str(memoryview(buf)[x:y], "utf-8")
                except UnicodeError:
                    v = None
    return v


def load(name):
    """Module micromesos.<name>, imported now if it is not in RAM (again after gc.collect() if the heap
    was short). Raises what the import raised if it can't be loaded."""
    full = "micromesos." + name
    m = sys.modules.get(full)
    if m is None:
        try:
            __import__(full)
        except MemoryError:
            drop_code()  # whatever the failed import left loaded
            gc.collect()
            __import__(full)
        m = sys.modules[full]
    return m


# The occasional code: the runner's, and resources / boardres (boot, launches, registration, /state).
_CODE = ("micromesos.launch", "micromesos.kill", "micromesos.fetch", "micromesos.download", "micromesos.taskstore",
         "micromesos.taskinit", "micromesos.resources", "micromesos.resfmt", "micromesos.boardres")


def drop_code():
    """The runner's occasional code out of sys.modules and the package: the next use imports it again."""
    for m in _CODE:
        drop(m)
