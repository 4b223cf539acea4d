"""Workers: one queue and a pool of threads per runnable name."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from time import monotonic, perf_counter
from typing import Any

from reactr_wasm.errors import JobTimeout, QueueFull, ReactrError
from reactr_wasm.limits import QUEUE_SIZE
from reactr_wasm.scheduler.deadlines import DeadlineWatcher
from reactr_wasm.scheduler.group import Group
from reactr_wasm.scheduler.job import Job, JobStatus, Result, ran_result, status_of
from reactr_wasm.scheduler.stats import JobStats
from reactr_wasm.scheduler.targets import PayloadTarget, Target
from reactr_wasm.wasm.context import RunControl
from reactr_wasm.wasm.runnable import InlineBudgetExceeded

log = logging.getLogger(__name__)

# Handing a job to a thread and back costs ~100 µs of wake-ups here, forty
# times a tuned echo job. So a runnable whose last FAST_STREAK runs each took
# under INLINE_MAX_SECONDS runs on the submitting thread (for the server: the
# event loop) while a pool slot is free.
#
# One run over INLINE_MAX_SECONDS alone is more often this thread preempted on a
# busy machine than the job turning slow (and sending the next FAST_STREAK jobs
# through worker threads costs far more): an inline runnable leaves the caller's
# thread after SLOW_RUNS such runs in a row.
#
# A Wasm runnable may then turn slow. If it cannot have side effects (see
# ModuleInfo.restartable), an inline run is stopped after INLINE_BUDGET_SECONDS
# and the job starts again from scratch on a worker thread; the streak it must
# show before running inline again doubles each time. So the caller is held
# for at most ~one budget plus one epoch tick. Other targets never run inline
# once a single inline run took more than INLINE_BAN_SECONDS.
INLINE_MAX_SECONDS = 0.002
INLINE_BUDGET_SECONDS = 0.02
INLINE_BAN_SECONDS = 0.1
FAST_STREAK = 32
SLOW_RUNS = 2
_NO_LIMIT = float("inf")
_SUCCEEDED = JobStatus.SUCCEEDED


class Worker:
    """Runs the jobs of one runnable on ``pool_size`` threads (up to ``autoscale``).

    Wasm calls release the GIL while guest code runs, so CPU-heavy runnables
    with several threads use several cores. Threads start on the first job
    (or at once with ``prewarm``). A runnable may return a Result or a Group:
    the job then resolves with that outcome, without holding a thread.
    """

    def __init__(
        self,
        name: str,
        target: Target,
        *,
        pool_size: int = 1,
        autoscale: int | None = None,
        queue_size: int = QUEUE_SIZE,
        retry_seconds: float = 3.0,
        max_retries: int = 5,
        deadlines: DeadlineWatcher | None = None,
        stats: JobStats | None = None,
    ) -> None:
        if pool_size < 1:
            raise ValueError(f"runnable '{name}': pool_size must be at least 1")
        self.name, self.target = name, target
        # A Wasm target stops its guest at its own Limits.timeout (WasmRunnable.run); only a
        # run that cannot be stopped (Python) is timed here, its result failed by the watcher.
        timeout = self._timeout = None if target.interruptible else target.timeout
        self.pool_size, self.queue_size = pool_size, queue_size
        # Jobs without a Job or Result (run_now): only a target that can restart a stopped run.
        # _run_here sets such a run's deadline (the target's own limit) from its own clock read.
        self._payload_target = target if target.restartable and isinstance(target, PayloadTarget) else None
        self._payload_timeout = target.timeout if target.timeout is not None else _NO_LIMIT
        self.max_threads = max(pool_size, (autoscale or os.cpu_count() or 1) if autoscale is not None else 0)
        self.retry_seconds, self.max_retries = retry_seconds, max_retries
        self._deadlines = deadlines if timeout is not None else None
        self._queue: queue.SimpleQueue[Result | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._target_threads = pool_size
        self._stopping = False
        self._fast_streak = 0
        self._streak_needed = FAST_STREAK
        self._slow_runs = 0  # runs over INLINE_MAX_SECONDS in a row
        self._inline = False
        # A timeout that cannot stop the run needs a thread to abandon, and a
        # guest with side effects (network, shared cache) could not be restarted
        # elsewhere if it overran: neither runs on the caller's thread.
        self._inline_banned = timeout is not None or (target.interruptible and not target.restartable)
        # At most pool_size inline runs at once; each slot is the control its runs use (_run_here).
        self._inline_slots = [RunControl() for _ in range(pool_size)]
        self.submitted = 0  # approximate (unlocked) count, for scaling and metrics
        self.stats = stats if stats is not None else JobStats(name)  # outcomes, runs, durations: for metrics

    # --- threads ---------------------------------------------------------------------

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    @property
    def threads(self) -> int:
        return len(self._threads)

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def runs_inline(self) -> bool:
        """Whether jobs run on the caller's thread now (see INLINE_MAX_SECONDS)."""
        return self._inline

    def start(self) -> None:
        """Start threads up to the current target count."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        while len(self._threads) < self._target_threads and not self._stopping:
            thread = threading.Thread(target=self._loop, name=f"reactr-{self.name}", daemon=True)
            self._threads.add(thread)
            thread.start()

    def scale_to(self, count: int) -> None:
        """Grow or shrink the pool (within pool_size and the autoscale maximum)."""
        count = min(max(count, self.pool_size), max(self.max_threads, self.pool_size))
        with self._lock:
            surplus = len(self._threads) - count
            self._target_threads = count
        for _ in range(max(0, surplus)):
            self._queue.put(None)  # each None retires one thread
        if surplus < 0:
            self.start()

    def _loop(self) -> None:
        me = threading.current_thread()
        start_error = self._start_thread()
        try:
            while True:
                result = self._queue.get()
                if result is None:
                    return
                if start_error is not None:
                    # Reactr's rule: the start failure reaches the first job.
                    if result._mark_running():
                        result.set_error(start_error)
                        self.stats.settled(result)
                    return
                self._run(result, inline=False)
        finally:
            with self._lock:
                self._threads.discard(me)
            if start_error is None:
                self._change("stop")

    def _start_thread(self) -> ReactrError | None:
        """Run the target's ``on_change("start")``, retrying; the final error or None."""
        for attempt in range(self.max_retries + 1):
            try:
                self.target.on_change("start")
                return None
            except Exception as error:
                log.warning("runnable '%s' failed to start (attempt %d): %s", self.name, attempt + 1, error)
                last = error
                if attempt < self.max_retries and not self._stopping:
                    time.sleep(self.retry_seconds)
        return ReactrError(f"runnable '{self.name}' failed to start: {last}")

    def _change(self, event: str) -> None:
        try:
            self.target.on_change(event)
        except Exception:
            log.exception("runnable '%s': on_change(%r) failed", self.name, event)

    # --- jobs --------------------------------------------------------------------------

    def submit(self, result: Result) -> None:
        """Queue a job; raises QueueFull at the bound and ReactrError when stopped."""
        if self._stopping:
            raise ReactrError(f"runnable '{self.name}' is shutting down")
        self.submitted += 1
        if self._inline and self._queue.empty():
            try:
                slot = self._inline_slots.pop()  # the job runs under its Result's own control
            except IndexError:
                pass  # every slot is busy on other threads: queue it
            else:
                try:
                    self._run_inline(result)
                finally:
                    self._inline_slots.append(slot)  # also when the run raised: never lose a slot
                return
        if self._queue.qsize() >= self.queue_size:
            self.stats.rejected()
            raise QueueFull(f"runnable '{self.name}': queue is full ({self.queue_size} jobs)")
        self._enqueue(result)

    def _enqueue(self, result: Result) -> None:
        with self._lock:  # against stop(): a job queued after the threads' stop markers would never run
            if self._stopping:
                raise ReactrError(f"runnable '{self.name}' is shutting down")
            if len(self._threads) < self._target_threads:
                self._start_locked()
            self._queue.put(result)

    def run_now(self, payload: bytes, result_id: str = "") -> tuple[bool, Any]:
        """Run a job here and now if this runnable runs inline and a slot is free.

        Returns ``(True, value)``, raises the job's error, or returns ``(False,
        None)`` when the job must go through ``submit`` instead. No Result is
        made: for callers that wait for the value anyway (``then=true``).
        ``result_id`` names the job in log lines and job events ("": none).
        """
        ran = self._run_here(payload, result_id)
        return (False, None) if ran is None else (True, ran[0])

    def run_job_now(self, job: Job) -> Result | None:
        """``job``'s finished Result if it could run here and now (see ``run_now``), else None: ``submit`` it.

        Only jobs whose data is bytes take this way. The Result is made finished:
        nobody else holds it yet, so no state changes or locks are needed.
        """
        data = job.data
        if type(data) is not bytes:
            return None
        started = time.time()
        try:
            ran = self._run_here(data, job._id or "")
        except Exception as error:
            if not isinstance(error, ReactrError):
                log.exception("runnable '%s' failed on job %s", self.name, job.id)
            job.data = None
            self.submitted += 1
            return ran_result(job, status_of(error), None, error, started, time.time())
        if ran is None:
            return None
        job.data = None  # as after any run: a kept Result must not pin the input
        self.submitted += 1
        return ran_result(job, _SUCCEEDED, ran[0], None, started, started + ran[1])

    def _run_here(self, payload: bytes, result_id: str) -> tuple[Any, float] | None:
        """``(value, seconds)`` of a run on this thread, or None when it cannot run here; raises the job's error.

        Runs when this runnable runs inline, its target can run a bare payload
        and an inline slot is free. Each slot is a RunControl, reset for each
        run: nobody can cancel a run with no Result, and the control does not
        outlive the run.
        """
        target = self._payload_target
        if not (self._inline and target is not None and self._queue.empty() and not self._stopping):
            return None
        try:
            control = self._inline_slots.pop()  # list ops are atomic: no lock on the hot path
        except IndexError:
            return None
        try:
            # One clock read gives the deadline, the budget and the run's start (perf_counter is the
            # same clock here). A slot is never cancelled: nobody outside this call can reach it.
            started = monotonic()
            control.deadline = started + self._payload_timeout
            control.budget = started + INLINE_BUDGET_SECONDS
            try:
                value = target.run_payload(payload, result_id, control, target.job_runner)
            except InlineBudgetExceeded:
                self._over_budget()
                return None
            except Exception as error:  # the job's error (a ReactrError), or a host bug
                elapsed = monotonic() - started
                self._learn(elapsed)
                self.stats.failed_inline(elapsed, error, result_id)
                raise
            elapsed = monotonic() - started
            if elapsed > INLINE_MAX_SECONDS or self._slow_runs:  # else _learn has nothing to change: no call
                self._learn(elapsed)
            self.stats.ran_inline(elapsed, result_id)
            return value, elapsed
        finally:
            self._inline_slots.append(control)

    def _over_budget(self) -> None:
        self._inline = False
        self._fast_streak = 0
        self._streak_needed *= 2
        log.info("runnable '%s' overran its inline budget; the job restarts on a worker", self.name)

    def _run_inline(self, result: Result) -> None:
        if self.target.restartable:
            result.control.budget = time.monotonic() + INLINE_BUDGET_SECONDS
        try:
            elapsed = self._run(result, inline=True)
        except InlineBudgetExceeded:
            self._over_budget()
            # Started again from scratch, so with its whole timeout from when a worker starts it
            result.control.budget = result.control.deadline = float("inf")
            result._requeue()
            self._enqueue(result)
            return
        if elapsed > INLINE_BAN_SECONDS and not self.target.restartable:
            self._inline_banned = True
            self._inline = False
            log.warning("runnable '%s' was slow on the caller's thread; it now always runs on workers", self.name)

    def _run(self, result: Result, inline: bool) -> float:
        """Run one job; returns how long it took, in seconds."""
        if not result._mark_running():
            self.stats.settled(result)
            return 0.0  # cancelled while queued
        if not inline:
            self.stats.waited(result)
        timeout = self._timeout
        if timeout is not None:
            result.control.deadline = time.monotonic() + timeout
            if self._deadlines is not None:
                self._deadlines.watch(result, JobTimeout)
            result.add_done_callback(self.stats.settled)  # counted at its deadline even if the run never returns
        started = perf_counter()
        value: Any = None
        error: BaseException | None = None
        try:
            value = self.target.run(result.job, result)
        except InlineBudgetExceeded:
            raise
        except ReactrError as failure:
            error = failure
        except Exception as failure:  # a Python runnable's own failure
            log.exception("runnable '%s' failed on job %s", self.name, result.id)
            error = failure
        result.job.data = None  # the run is over (a restart raised above): a kept Result must not pin the input
        elapsed = perf_counter() - started
        self._learn(elapsed)
        # Counted before the result ends, so whoever it wakes sees the job counted
        self.stats.ran(inline, elapsed, result if timeout is None else None, error, value)
        if error is not None:
            result.set_error(error)
        elif type(value) is bytes:  # the common Wasm case, without settle()'s checks
            result._finish(JobStatus.SUCCEEDED, value)
        else:
            settle(result, value)
        return elapsed

    def _learn(self, elapsed: float) -> None:
        """Learn whether this runnable is fast enough to run inline (see INLINE_MAX_SECONDS)."""
        if elapsed > INLINE_MAX_SECONDS:
            self._fast_streak = 0
            self._slow_runs += 1
            if self._slow_runs >= SLOW_RUNS:
                self._inline = False
            return
        self._slow_runs = 0
        if not self._inline_banned and not self._inline:
            self._fast_streak += 1
            self._inline = self._fast_streak >= self._streak_needed

    # --- shutdown ----------------------------------------------------------------------

    def stop(self, wait: bool = True, timeout: float | None = None) -> bool:
        """Finish what is queued, then stop the threads and close the target.

        With ``wait``, returns whether every thread stopped within ``timeout``
        seconds. Threads still busy then (a Python runnable that never returns)
        are left to run, and the target stays open under them.
        """
        with self._lock:
            self._stopping = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        if wait:
            return self._close_after(threads, timeout)
        threading.Thread(target=self._close_after, args=(threads, None), daemon=True).start()
        return True

    def _close_after(self, threads: list[threading.Thread], timeout: float | None) -> bool:
        deadline = time.monotonic() + timeout if timeout is not None else None
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        busy = sum(thread.is_alive() for thread in threads)
        if busy:
            log.warning("runnable '%s': %d thread(s) still busy after %ss, left running", self.name, busy, timeout)
            return False
        self.target.close()
        return True


def settle(result: Result, value: Any) -> None:
    """Resolve ``result`` with a runnable's return value, following chains."""
    if isinstance(value, Result):
        value.add_done_callback(lambda inner: _adopt(result, inner))
    elif isinstance(value, Group):
        value.on_done(lambda error: result.set_error(error) if error else result.set_result(None))
    else:
        result.set_result(value)


def _adopt(result: Result, inner: Result) -> None:
    if inner.error is not None:
        result.set_error(inner.error)
    else:
        result.set_result(inner.outcome())
