"""Workers: one queue and a pool of threads per runnable name."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Protocol

from ..errors import QueueFull, ReactrError
from .job import Job, Result

log = logging.getLogger(__name__)


class Target(Protocol):
    """What a worker runs: adapts a Wasm module or a Python callable."""

    inline: bool  # may run on the submitting thread when proven fast

    def execute(self, job: Job, result: Result) -> Any: ...

    def close(self) -> None: ...


# Handing a job to a thread and back costs ~100 µs of wake-ups here, forty
# times a tuned echo job. So a runnable whose last FAST_STREAK runs each took
# under INLINE_MAX_SECONDS runs on the submitting thread while a pool slot is
# free. An inline run over INLINE_BAN_SECONDS (far beyond any scheduling
# hiccup) bans it for good: a guest that turns slow can hold the caller (e.g.
# the event loop) for at most one job timeout, once.
INLINE_MAX_SECONDS = 0.002
INLINE_BAN_SECONDS = 0.1
FAST_STREAK = 32


class Worker:
    """Runs the jobs of one runnable on ``pool_size`` threads.

    Wasm calls release the GIL while guest code runs, so CPU-heavy runnables
    with a pool size above one use several cores. Threads start on the first
    job (or at once with ``prewarm``) and stop after ``stop()``.
    """

    def __init__(
        self,
        name: str,
        target: Target,
        *,
        pool_size: int = 1,
        timeout: float | None = None,
        max_queue: int = 10_000,
    ) -> None:
        if pool_size < 1:
            raise ValueError(f"runnable '{name}': pool_size must be at least 1")
        self.name, self.target = name, target
        self.pool_size, self.timeout, self.max_queue = pool_size, timeout, max_queue
        self._queue: queue.SimpleQueue[Result | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._fast_streak = 0
        self._inline = False
        self._inline_banned = not target.inline
        self._inline_running = 0

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        with self._lock:
            while len(self._threads) < self.pool_size and not self._stopping:
                thread = threading.Thread(
                    target=self._loop, name=f"reactr-{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def submit(self, result: Result) -> None:
        """Queue a job; raises QueueFull at the bound and ReactrError when stopped."""
        if self._stopping:
            raise ReactrError(f"runnable '{self.name}' is shutting down")
        if self._queue.qsize() >= self.max_queue:
            raise QueueFull(f"runnable '{self.name}': queue is full ({self.max_queue} jobs)")
        if self._inline and self._inline_running < self.pool_size and self._queue.empty():
            self._run_inline(result)
            return
        if len(self._threads) < self.pool_size:
            self.start()
        self._queue.put(result)

    def _run_inline(self, result: Result) -> None:
        with self._lock:
            self._inline_running += 1
        try:
            if self._run(result) > INLINE_BAN_SECONDS:
                self._inline_banned = True
                self._inline = False
                log.warning("runnable '%s' was slow on the caller's thread; it now always runs on workers", self.name)
        finally:
            with self._lock:
                self._inline_running -= 1

    def _loop(self) -> None:
        while True:
            result = self._queue.get()
            if result is None:
                return
            self._run(result)

    def _run(self, result: Result) -> float:
        """Run one job; returns how long it took, in seconds."""
        if not result._mark_running():
            return 0.0  # cancelled while queued
        if self.timeout is not None:
            result.control.deadline = time.monotonic() + self.timeout
        started = time.perf_counter()
        try:
            value = self.target.execute(result.job, result)
        except ReactrError as error:
            result.set_error(error)
        except Exception as error:  # a Python runnable's own failure
            log.exception("runnable '%s' failed on job %s", self.name, result.id)
            result.set_error(error)
        else:
            result.set_result(value)
        elapsed = time.perf_counter() - started
        self._learn(elapsed)
        return elapsed

    def _learn(self, elapsed: float) -> None:
        if elapsed > INLINE_MAX_SECONDS:
            self._fast_streak = 0
            self._inline = False
        elif not self._inline_banned:
            self._fast_streak += 1
            if self._fast_streak >= FAST_STREAK:
                self._inline = True

    def stop(self, wait: bool = True) -> None:
        """Finish what is queued, then stop the threads and close the target."""
        with self._lock:
            self._stopping = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        if wait:
            for thread in threads:
                thread.join()
            self.target.close()
        else:
            threading.Thread(target=self._close_after, args=(threads,), daemon=True).start()

    def _close_after(self, threads: list[threading.Thread]) -> None:
        for thread in threads:
            thread.join()
        self.target.close()
