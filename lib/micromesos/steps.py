# Running tasks fairly: each step of a task is measured and named in a watchdog marker; a ticker fails tasks
# that hold the loop and forces kills whose grace period ran out. MIT licence. asyncio can't pre-empt: see Watch.
import gc
import time

import asyncio

from . import log
from micropython import const
_REASON_CONTAINER_LIMITATION = const(19)  # schema.REASON_CONTAINER_LIMITATION
_SOURCE_SLAVE = const(1)  # schema.SOURCE_SLAVE
_TASK_FAILED = const(3)  # schema.TASK_FAILED

_RUNNING = const(1)  # ctx.RUNNING
_KILLING = const(2)  # ctx.KILLING
_DONE = const(3)  # ctx.DONE
# The ctx phases as local consts and "tasks" (the log's where) as a literal: a globals table of 12 names.
_IDLE_MS = const(3600000)  # Watch sleeps this long (or until wake()) while no task runs


class Step:
    """The coroutine asyncio runs for a task. It forwards each step to main(ctx), names the task in the
    watchdog marker while it runs, measures the step (ticks_ms, gc.mem_alloc delta) and turns main's end
    (return, exception, cancellation) into the task's terminal state (Tasks.ended). asyncio.core only
    calls send/throw. Nothing a task raises leaves here: asyncio would stop the whole agent on a
    KeyboardInterrupt or GeneratorExit (its loop catches only Exception and CancelledError)."""

    # ctx.heap costs two gc.mem_alloc() calls per step, each a scan of the heap's allocation table
    # (bench_tasks: ~50 us a step at 256 KB on a PC, more on an MCU). A board may turn it off here.
    HEAP_STATS = True

    def __init__(self, ctx, coro):
        self.ctx = ctx
        self.coro = coro

    def send(self, _):
        return self._step(None)

    def throw(self, exc, *_):
        return self._step(exc)

    def _step(self, exc):
        ctx = self.ctx
        marker = ctx._runner.marker
        if ctx._forced:  # its grace period ran out (Watch._force): close it instead of resuming it
            self._close()
            raise StopIteration
        if marker is not None:
            marker.write(ctx._n)
        a0 = gc.mem_alloc() if Step.HEAP_STATS else 0
        t0 = time.ticks_ms()
        try:
            if exc is None:
                r = self.coro.send(None)
            else:
                r = self.coro.throw(exc)
        except StopIteration:
            self._end(t0, a0, None)  # main(ctx) returned
        except BaseException as e:  # noqa: B036  a synchronous step, not an await: nothing of ours to swallow
            self._end(t0, a0, e)
        self._account(t0, a0)
        return r

    def _end(self, t0, a0, exc):
        self.coro = None  # its frame may hold what exhausted the heap: let gc have it now
        self._account(t0, a0)
        self.ctx._runner.ended(self.ctx, exc)
        raise StopIteration  # ended and reported: asyncio sees a finished task

    def _account(self, t0, a0):
        dt = time.ticks_diff(time.ticks_ms(), t0)
        ctx = self.ctx
        runner = ctx._runner
        if runner.marker is not None:
            runner.marker.write(0)
        a1 = gc.mem_alloc() if Step.HEAP_STATS else 0
        ctx.steps += 1
        # ctx.heap: what the task holds now, as far as a shared heap can tell: its steps' heap growth net of
        # what was freed during them (garbage not yet collected counts as held). It goes down when a
        # collection runs inside one of its steps (gc.collect(), or an allocation finding the heap full);
        # such a collection also frees others' garbage, so the figure is clamped at 0.
        h = ctx.heap + a1 - a0
        ctx.heap = h if h > 0 else 0
        if dt > ctx.max_step_ms:
            ctx.max_step_ms = dt
        w = runner.watch
        if dt > w.slice_ms and ctx.phase == _RUNNING:
            w.hogs.append((ctx, dt))  # failed when the ticker next runs: it can't cancel itself here

    def _close(self):
        c = self.coro
        self.coro = None
        if c is not None:
            try:
                c.close()  # GeneratorExit at its await: its finally blocks run (they can't await)
            except BaseException as e:  # noqa: B036  its finally blocks are task code; close() doesn't await
                log.warn("tasks", "task %s: closing it raised %s", self.ctx.task_id, type(e).__name__)


class Watch:
    """One long-lived asyncio task while tasks run. It wakes every slice and measures how late it woke
    (loop lag: someone held the loop). A task whose step took longer than the slice (Step measured it)
    is cancelled and reported TASK_FAILED / REASON_CONTAINER_LIMITATION once it yields; a task that
    never yields can only be caught by the board's machine.WDT, and the marker names it after the reset.
    The same ticker forces kills whose grace period is over."""

    def __init__(self, runner, slice_ms):
        self.runner = runner
        self.slice_ms = slice_ms
        self.hogs = []       # (ctx, step ms) seen by Step since the last tick
        self.stopping = []   # ctx cancelled and inside a grace period
        self.max_lag_ms = 0
        self._task = None  # made by the first wake(): an agent without tasks holds none
        self._idle = None  # that task while it sleeps with nothing to watch (wake() rouses it)

    def wake(self):
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        rouse(self._idle)

    def stop(self, c, outcome, grace_ms):
        """Cancel the task (CancelledError at its await); after grace_ms it is forced. First outcome wins."""
        if c._outcome is None:
            c._outcome = outcome
        d = time.ticks_add(time.ticks_ms(), grace_ms)
        if c._deadline is None or time.ticks_diff(d, c._deadline) < 0:
            c._deadline = d
        if c.phase == _RUNNING:
            c.phase = _KILLING
            self.stopping.append(c)
            cancel(c._atask)
        self.wake()

    def _force(self, c):
        """Grace period over: report now and drop it; Step closes its coroutine when it is next resumed."""
        o = c._outcome
        self.runner.force(c, o[:3] + (o[3] + " (forced after its grace period)",))

    async def _run(self):
        runner = self.runner
        while True:
            if not runner.running and not self.stopping:
                self._idle = asyncio.current_task()
                try:
                    await asyncio.sleep_ms(_IDLE_MS)
                finally:
                    self._idle = None
                continue
            period = self.slice_ms
            t0 = time.ticks_ms()
            await asyncio.sleep_ms(period)
            now = time.ticks_ms()
            lag = time.ticks_diff(now, t0) - period
            if lag > self.max_lag_ms:
                self.max_lag_ms = lag
            if self.hogs:
                hogs = self.hogs
                self.hogs = []
                for c, ms in hogs:
                    if c.phase == _RUNNING:
                        runner.counters["hogs"] += 1
                        log.warn("tasks", "task %s held the loop %d ms (slice %d ms; ticker woke %d ms late)",
                                 c.task_id, ms, period, lag)
                        self.stop(c, (_TASK_FAILED, _SOURCE_SLAVE, _REASON_CONTAINER_LIMITATION,
                                      "held the event loop for %d ms without awaiting (slice %d ms)" % (ms, period)),
                                  period)
            if self.stopping:
                keep = []
                for c in self.stopping:
                    if c.phase == _DONE:
                        continue
                    if time.ticks_diff(now, c._deadline) >= 0:
                        self._force(c)
                    else:
                        keep.append(c)
                self.stopping = keep


def rouse(t):
    """Bring forward to now the wake-up of asyncio task t, sleeping in asyncio.sleep_ms() (None: nothing to
    do). What Event.set() does for a waiter, without an Event's wait and wait_for_ms()'s timeout, which
    cost a task and closures (~500 B on a 32-bit board) per wait: Task.cancel() moves a task the same way.
    Only for a task that awaits nothing but sleep_ms() (it may be the running one: then it is left alone)."""
    if t is not None and t is not asyncio.core.cur_task:  # type: ignore[attr-defined]
        q = asyncio.core._task_queue  # type: ignore[attr-defined]
        q.remove(t)
        q.push(t)


def cancel(t):
    if t is not None:
        try:
            t.cancel()
        except RuntimeError:
            pass  # it is the running task itself: its deadline forces it instead


# --- the watchdog marker: which task was mid-step when the board was reset ------------------------

class FileMarker:
    """Which task is mid-step, as 4 bytes rewritten in place. Writes on the unix port are unbuffered, so
    they survive the process being killed. Boards pass `inventory.marker` instead (RTC memory or
    watchdog scratch registers: no flash wear) with the same read() -> int, write(int)."""

    def __init__(self, path):
        self._b = bytearray(4)
        try:
            self.f = open(path, "r+b")
        except OSError:
            self.f = open(path, "w+b")
            self.f.write(self._b)

    def read(self):
        self.f.seek(0)
        n = self.f.readinto(self._b)
        b = self._b
        return b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24 if n == 4 else 0

    def write(self, n):
        b = self._b  # preallocated: this runs twice per task step
        b[0] = n & 0xFF
        b[1] = (n >> 8) & 0xFF
        b[2] = (n >> 16) & 0xFF
        b[3] = (n >> 24) & 0xFF
        self.f.seek(0)
        self.f.write(b)
