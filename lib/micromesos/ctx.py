# The task API: the `ctx` a task's `async def main(ctx)` receives, which is also the runner's record of it.
# MIT licence. A task reaches only the resources its TaskInfo granted; anything else raises NotGranted.
import asyncio
from micropython import const

from . import codec, log
from .errors import MesosError
_EXECUTOR_TO_FRAMEWORK = const(17)  # names.EXECUTOR_TO_FRAMEWORK
_ExecutorToFrameworkMessage = const(73)  # schema.ExecutorToFrameworkMessage
_SOURCE_EXECUTOR = const(2)  # schema.SOURCE_EXECUTOR
_TASK_RUNNING = const(1)  # schema.TASK_RUNNING

# Runner phases (launch.py, tasks.py and steps.py move a ctx through them).
LAUNCHING = const(0)  # fetching code; the master still sees TASK_STAGING
RUNNING = const(1)
KILLING = const(2)    # cancelled, inside its grace period
DONE = const(3)       # terminal update generated; kept until it is acknowledged (§2.7, §3.12)


class NotGranted(MesosError):
    # A task asked for a sensor, actuator or pin its TaskInfo.resources did not grant.
    pass


class Ring:
    """A bounded byte ring keeping the newest `size` bytes: a task's stdout or stderr.

    The buffer is allocated on the first write, so an idle task that never logs costs no ring RAM.
    """

    def __init__(self, size):
        self.size = size
        self.buf = None
        self.pos = 0
        self.full = False
        self.total = 0  # bytes ever written: /files offsets are absolute positions (endpoints.py)

    def write(self, data):
        n = len(data)
        if not n:
            return
        self.total += n
        if self.buf is None:
            self.buf = bytearray(self.size)
        size = self.size
        data = memoryview(data)  # slices below copy into the ring, not into new bytes objects
        if n >= size:  # only the tail fits
            self.buf[:] = data[n - size:]
            self.pos = 0
            self.full = True
            return
        p = self.pos
        k = min(n, size - p)
        self.buf[p:p + k] = data[:k]
        if k < n:
            self.buf[:n - k] = data[k:]
            self.full = True
        p += n
        if p >= size:
            p -= size
            self.full = True
        self.pos = p

    def read(self):
        """Everything kept, oldest first (allocates: for the /files endpoint and tests)."""
        if self.buf is None:
            return b""
        if not self.full:
            return bytes(self.buf[:self.pos])
        return bytes(self.buf[self.pos:]) + bytes(self.buf[:self.pos])


def _granted(res, kinds, group, kind, name):
    """The granted instance of `kind` (`name`, or the first one): from a SET resource named after the
    kind (temperature:{temp0}, as resources.measure() advertises) or from the generic
    sensors:{...} / actuators:{...} form (golden run_task), there only instances of that kind count."""
    have = kinds.get(kind) or {}
    for rname, v in res:
        if isinstance(v, tuple) and (rname == kind or rname == group):
            for item in v:
                if (name is None or item == name) and (rname == kind or item in have):
                    return item
    return None


class Ctx:
    """What a task sees: task_id, framework_id, executor_id, name, arguments, env, data, heap, steps,
    max_step_ms, stdout, stderr; sensor(), actuator(), pin(), send(), recv(), update(), log().

    Attributes starting with `_` belong to the runner (micromesos.tasks.Tasks)."""

    LOG_BYTES = 512       # per ring; stdout (ctx.log) and stderr (tracebacks, runner notes)
    MAX_SEND = 4096       # ExecutorToFrameworkMessage.data
    MAX_UPDATE = 1024     # TaskStatus.data: it is checkpointed (hex) until acknowledged
    MAX_INBOX = 4         # FrameworkToExecutorMessage queue; the oldest is dropped when full

    # Defaults live on the class: an instance's attribute table only grows for what differs, which
    # keeps an idle task's record small (bench_tasks: heap per idle task).
    _runner = None        # the agent's one runner (Tasks sets it): no reference in each record
    _eid = None           # a non-command executor's id; None for a command task
    _n = 0                # checkpoint slot: what the watchdog marker names
    phase = LAUNCHING
    arguments = ()
    env = {}              # replaced, never mutated, by the runner
    data = None
    heap = 0              # what its steps hold now: heap growth net of frees, floored at 0 (steps.py)
    steps = 0
    max_step_ms = 0
    dropped = 0           # framework messages dropped from a full inbox
    _atask = None         # the asyncio Task running it (or fetching its code)
    _outcome = None       # (state, source, reason, message) decided by a kill or the watchdog
    _deadline = None      # ticks_ms when a kill stops waiting (grace period)
    _forced = False
    _silent = False       # framework shut down: no more updates for it
    _grace_ms = -1        # TaskInfo.kill_policy in ms, -1 = none
    _inbox = None
    _event = None
    _mod = None           # the task module it runs (Tasks.modules counts its users)
    _out = None
    _err = None

    def __init__(self, runner, fid, tid, name, eid, raw_res, res):
        if runner is not self._runner:
            self._runner = runner
        self.framework_id = fid
        self.task_id = tid
        self.name = tid if name == tid else name
        if eid is not None:
            self._eid = eid
        self._raw = tuple(raw_res)              # TaskInfo.resources exactly as received (§3.12)
        self._res = tuple(res)                  # ((name, value), ...) decoded: the grant

    @property
    def executor_id(self):
        """What status updates carry (§2.6): the task id for a command task. A property: one slot less
        in every task's record."""
        return self.task_id if self._eid is None else self._eid

    @property
    def stdout(self):
        """Ring of what ctx.log() wrote (created on first use)."""
        if self._out is None:
            self._out = Ring(self.LOG_BYTES)
        return self._out

    @property
    def stderr(self):
        """Ring of tracebacks and the runner's notes (created on first use)."""
        if self._err is None:
            self._err = Ring(self.LOG_BYTES)
        return self._err

    def __repr__(self):
        return "<task %s>" % self.task_id

    # --- granted resources ---------------------------------------------------------------------------

    def _denied(self, what):
        from .resources import fmt  # rare: not resident (tasks.drop_code)

        try:
            granted = []
            for n, v in self._res:
                granted.append(fmt(n, v))
            return NotGranted("%s is not granted to task %s (granted: %s)" % (
                what, self.task_id, ";".join(granted) or "nothing"))
        finally:
            if self._runner is not None:
                self._runner.drop()

    def _lookup(self, kinds, group, kind, name):
        item = _granted(self._res, kinds, group, kind, name)
        if item is None:
            raise self._denied("%s %s" % (kind, name or "(any)"))
        h = kinds.get(kind, {}).get(item)
        if h is None:
            raise self._denied("%s %s (the board has no such instance)" % (kind, item))
        return h

    def sensor(self, kind, name=None):
        """The driver of a granted sensor instance (read() -> number); NotGranted otherwise."""
        return self._lookup(self._runner.agent.inv.sensors, "sensors", kind, name)

    def actuator(self, kind, name=None):
        """The handle of a granted actuator instance, e.g. actuator("led", "led0"); NotGranted otherwise."""
        return self._lookup(self._runner.agent.inv.actuators, "actuators", kind, name)

    def pin(self, n, *args, **kw):
        """machine.Pin-like handle for GPIO n if a gpio:[a-b] range granted covers it."""
        for rname, v in self._res:
            if rname == "gpio" and isinstance(v, list):
                for b, e in v:
                    if b <= n <= e:
                        pin = self._runner.agent.inv.pin
                        if pin is None:
                            break
                        return pin(n, *args, **kw)
        raise self._denied("gpio %d" % n)

    # --- talking to the framework -------------------------------------------------------------------

    def send(self, data):
        """Best-effort ExecutorToFrameworkMessage to the scheduler (§2.9); False if it can't go now."""
        if len(data) > self.MAX_SEND:
            raise ValueError("ctx.send: %d bytes is over MAX_SEND (%d)" % (len(data), self.MAX_SEND))
        agent = self._runner.agent
        if self.phase == DONE or not agent.connected():
            return False
        body = codec.encode(_ExecutorToFrameworkMessage, {
            "slave_id": agent.slave_id, "framework_id": self.framework_id, "executor_id": self.executor_id,
            "data": data})
        return agent.send_to_master(_EXECUTOR_TO_FRAMEWORK, body)

    async def recv(self):
        """The next FrameworkToExecutorMessage.data for this task (bytes); waits for one."""
        while not self._inbox:
            if self._event is None:
                self._event = asyncio.Event()
            self._event.clear()
            await self._event.wait()
        return self._inbox.pop(0)

    def _deliver(self, data):
        q = self._inbox
        if q is None:
            q = self._inbox = []
        if len(q) >= self.MAX_INBOX:
            q.pop(0)  # best effort, like the master's own delivery: keep the newest
            self.dropped += 1
        q.append(data)
        if self._event is not None:
            self._event.set()

    def update(self, data):
        """A reliable TASK_RUNNING status update carrying `data` (§2.7); False if refused or not running."""
        if len(data) > self.MAX_UPDATE:
            raise ValueError("ctx.update: %d bytes is over MAX_UPDATE (%d)" % (len(data), self.MAX_UPDATE))
        if self.phase != RUNNING:
            return False
        ok = self._runner.updates.update(self.framework_id, self.task_id, _TASK_RUNNING,
                                        _SOURCE_EXECUTOR, executor_id=self.executor_id,
                                        data=bytes(data))
        h = self._runner.on_status
        if ok and h is not None:
            h(self, _TASK_RUNNING)  # /state's statuses (endpoints.py)
        return ok

    def log(self, *args):
        """One line into this task's stdout ring (and the agent log at debug level)."""
        words = []
        for a in args:
            words.append(a if isinstance(a, str) else str(a))
        line = " ".join(words)
        self.stdout.write(line.encode())
        self.stdout.write(b"\n")
        log.debug(self.task_id, "%s", line)

