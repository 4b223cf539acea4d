"""``Reactr``: the registry of runnables and the entry point for jobs."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from reactr_wasm.capabilities.cache import Cache, MemoryCache
from reactr_wasm.capabilities.grants import Capabilities
from reactr_wasm.errors import JobTimeout, ReactrError, RunnableNotFound
from reactr_wasm.limits import QUEUE_SIZE, Limits
from reactr_wasm.scheduler.deadlines import DeadlineWatcher
from reactr_wasm.scheduler.group import Group
from reactr_wasm.scheduler.job import Job, Result
from reactr_wasm.scheduler.schedule import Schedule, Scheduler
from reactr_wasm.scheduler.stats import JobEvents, JobStats
from reactr_wasm.scheduler.targets import Ctx, PythonTarget, RunnableObject, Target, WasmTarget
from reactr_wasm.scheduler.values import value_bytes
from reactr_wasm.scheduler.worker import Worker
from reactr_wasm.wasm.context import RunControl
from reactr_wasm.wasm.engine import FreshPool, WasmEngine
from reactr_wasm.wasm.pool import Isolation
from reactr_wasm.wasm.runnable import WasmRunnable

log = logging.getLogger(__name__)

AUTOSCALE_INTERVAL = 0.5  # seconds between two looks at each worker's queue


Runnable = WasmRunnable | Callable[[Job, Ctx], Any] | RunnableObject | str | Path


class Reactr:
    """Schedules jobs onto runnables: Wasm modules or Python callables.

    Use as a context manager or call ``close()``. ``fresh_pool`` sizes the
    instance pool of ``isolation="fresh"`` runnables (see ``FreshPool``).

    >>> with Reactr() as reactr:
    ...     hello = reactr.register("hello", "runnables/hello-echo.wasm")
    ...     hello("world").then()
    b'hello world'
    """

    def __init__(
        self,
        *,
        engine: WasmEngine | None = None,
        cache: Cache | None = None,
        capabilities: Capabilities | None = None,
        cache_dir: Path | None = None,
        schedule_interval: float = 1.0,
        fresh_pool: FreshPool | None = None,
    ) -> None:
        self._own_engine = engine is None
        if capabilities is None:
            capabilities = Capabilities(cache=cache or MemoryCache())
        self.engine = engine or WasmEngine(capabilities=capabilities, cache_dir=cache_dir, fresh_pool=fresh_pool)
        self._workers: dict[str, Worker] = {}
        # Counts by runnable name, handed from a worker to the one replacing it (metrics only grow)
        self.job_stats: dict[str, JobStats] = {}
        self.job_events = JobEvents()  # who hears of every finished job (the server's dashboard)
        # Jobs submitted with an id, by id, for cancel(); an entry goes with its Result, so
        # nothing runs when a job finishes. Jobs without one never make an id here (~0.5 µs).
        self._by_id: weakref.WeakValueDictionary[str, Result] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self._deadlines = DeadlineWatcher()
        self._schedules = Scheduler(self.do, schedule_interval)
        self._stop = threading.Event()
        self._scaler: threading.Thread | None = None

    # --- registry ------------------------------------------------------------------

    def register(
        self,
        name: str,
        runnable: Runnable,
        *,
        pool_size: int = 1,
        autoscale: int | None = None,
        timeout: float | None = None,
        retry_seconds: float = 3.0,
        max_retries: int = 5,
        prewarm: bool = False,
        isolation: Isolation = "reuse",
        limits: Limits | None = None,
        queue_size: int = QUEUE_SIZE,
        capabilities: Capabilities | None = None,
    ) -> Callable[[Any], Result]:
        """Register (or replace) a runnable; returns ``do_name(data) -> Result``.

        ``runnable`` is a ``.wasm`` path, a loaded ``WasmRunnable``, a callable
        ``(job, ctx) -> value`` or an object with ``run(job, ctx)`` and
        ``on_change(event)``. A path is loaded with ``limits`` (``timeout``, when
        given, replaces ``limits.timeout``), ``isolation`` and ``capabilities``
        (default: the engine's: the cache only); a loaded ``WasmRunnable`` keeps
        the limits it was loaded with; a Python runnable's ``timeout`` defaults
        to none. ``queue_size`` bounds the jobs waiting for a thread.
        ``autoscale=max`` grows the threads with the queue up to ``max`` (0: CPU
        count). Replacing a name lets queued and running jobs finish on the old
        version. Raises ModuleError for a bad module, ValueError for ``limits``
        with a runnable that is not a path.
        """
        target: Target
        if isinstance(runnable, (str, Path)):
            if timeout is not None:
                limits = replace(limits or Limits(), timeout=timeout)
            runnable = self.engine.load_file(
                name, Path(runnable), limits=limits, isolation=isolation, capabilities=capabilities
            )
            target = WasmTarget(runnable, self._run_nested)
        elif limits is not None or (timeout is not None and isinstance(runnable, WasmRunnable)):
            raise ValueError(
                f"runnable '{name}': limits and timeout apply to a .wasm path; a loaded WasmRunnable keeps "
                "the limits it was loaded with (engine.load(..., limits=...)), a Python runnable takes timeout="
            )
        elif isinstance(runnable, WasmRunnable):
            target = WasmTarget(runnable, self._run_nested)
        else:
            target = PythonTarget(self, runnable, timeout)
        worker = Worker(
            name,
            target,
            pool_size=pool_size,
            autoscale=autoscale,
            queue_size=queue_size,
            retry_seconds=retry_seconds,
            max_retries=max_retries,
            deadlines=self._deadlines,
            stats=self.job_stats.setdefault(name, JobStats(name, self.job_events)),
        )
        if prewarm:
            if isinstance(target, WasmTarget):
                target.runnable.pool.prewarm(pool_size)
            worker.start()
        with self._lock:
            old = self._workers.get(name)
            self._workers[name] = worker
            if autoscale is not None and self._scaler is None:
                self._scaler = threading.Thread(target=self._autoscale, name="reactr-autoscale", daemon=True)
                self._scaler.start()
        if old is not None:
            old.stop(wait=False)

        def do_job(data: Any = None) -> Result:
            job = Job(name, data)
            # This name's worker, while it runs the job here and now: no lookup by name. Once it
            # is replaced or removed it runs nothing here, and do() finds what took its place.
            result = worker.run_job_now(job)
            return result if result is not None else self.do(job)

        return do_job

    def deregister(self, name: str) -> None:
        """Remove a runnable; its queued jobs still run, then its threads stop."""
        with self._lock:
            worker = self._workers.pop(name, None)
        if worker is None:
            raise RunnableNotFound(name)
        worker.stop(wait=False)

    def has(self, name: str) -> bool:
        return name in self._workers

    def names(self) -> list[str]:
        return sorted(self._workers)

    def worker(self, name: str) -> Worker:
        try:
            return self._workers[name]
        except KeyError:
            raise RunnableNotFound(name) from None

    # --- jobs ------------------------------------------------------------------------

    def do(self, job: Job | str, data: Any = None) -> Result:
        """Queue a job and return its Result.

        Raises RunnableNotFound for an unknown name and QueueFull at the bound.
        """
        if isinstance(job, str):
            job = Job(job, data)
        try:
            worker = self._workers[job.name]
        except KeyError:
            raise RunnableNotFound(job.name) from None
        result = worker.run_job_now(job)  # ran to its end here: nothing to queue or cancel
        if result is not None:
            return result
        result = Result(job)
        try:
            worker.submit(result)
        except ReactrError:
            if not worker.stopping:  # QueueFull, or any other refusal of a live worker
                raise
            # Replaced or removed between the lookup and the submit (hot reload):
            # the current version takes the job, as if it had come a moment later.
            current = self._workers.get(job.name)
            if current is None:
                raise RunnableNotFound(job.name) from None
            current.submit(result)
        if job._id is not None and not result.done():  # one that ran inline has nothing left to cancel
            self._by_id[job._id] = result
        return result

    def cancel(self, result_id: str) -> bool:
        """Cancel the queued or running job with this result id (a running Wasm guest is interrupted).

        Finds jobs that had their id when ``do()`` took them: ``Job(name, data,
        id=...)``, or a ``job.id`` read before (the server's jobs always do).
        Returns False when no such job is queued or running here.
        """
        result = self._by_id.get(result_id)
        return result is not None and result.cancel()

    def do_now(self, name: str, data: Any) -> tuple[bool, Any]:
        """Run a job on this thread if its runnable is proven fast and idle, without a Result.

        Returns ``(True, value)`` or raises the job's error; ``(False, None)``
        means it could not run here: use ``do()``. For callers that would only
        wait for the value (the server's ``?then=true``).
        """
        worker = self.worker(name)
        payload = data if type(data) is bytes else Job(name, data).payload()  # the server's bodies: no Job made
        return worker.run_now(payload)

    def schedule(self, schedule: Schedule) -> None:
        """Poll ``schedule`` (e.g. ``every(5, make_job)``) and run the jobs it produces."""
        self._schedules.add(schedule)

    def _run_nested(self, name: str, payload: bytes, parent: RunControl) -> bytes:
        """Run a job for a guest's ``run_job`` host call, on the guest's own thread.

        Running it here rather than through the queue means a chain can never
        wait for a worker that is itself waiting; the caller's deadline and
        cancellation apply to the whole chain.
        """
        worker = self.worker(name)
        result = Result(Job(name, payload))
        result.control = RunControl(parent.deadline, parent)
        result._mark_running()
        value = worker.target.run(result.job, result)
        while isinstance(value, (Result, Group)):  # a Python runnable chained further
            left = parent.deadline - time.monotonic()
            wait = max(0.0, left) if left != float("inf") else None
            if isinstance(value, Group):
                try:
                    error = value.wait_blocking(wait)  # a Group settles to None, or its first error
                except TimeoutError:
                    raise JobTimeout() from None
                if error is not None:
                    raise error if isinstance(error, ReactrError) else ReactrError(str(error))
                value = None
            else:
                value = value.then(wait)
        try:
            return value_bytes(value)  # what the guest receives: the HTTP body rules
        except (TypeError, ValueError) as error:
            raise ReactrError(f"result is not bytes, text or JSON: {error}") from None

    # --- autoscale -------------------------------------------------------------------------

    def _autoscale(self) -> None:
        last: dict[str, int] = {}
        while not self._stop.wait(AUTOSCALE_INTERVAL):
            for name, worker in list(self._workers.items()):
                if worker.max_threads <= worker.pool_size:
                    continue
                rate = (worker.submitted - last.get(name, worker.submitted)) / AUTOSCALE_INTERVAL
                last[name] = worker.submitted
                threads, queued = max(worker.threads, 1), worker.queued
                if queued > 2 * threads or rate > 2 * threads:
                    worker.scale_to(2 * threads)
                elif queued < threads / 2 and rate < threads / 2:
                    worker.scale_to(threads // 2)

    # --- lifecycle -------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Finish queued jobs, stop every worker, close the engine if owned.

        ``timeout`` bounds the wait for busy threads (a Python runnable cannot
        be interrupted); what is still running then is left to finish alone,
        and the engine stays open under it.
        """
        self._stop.set()
        self._schedules.close()
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        deadline = time.monotonic() + timeout if timeout is not None else None
        stopped = True
        for worker in workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            stopped = worker.stop(wait=True, timeout=left) and stopped
        self._deadlines.close()
        if self._scaler is not None:
            self._scaler.join()
        if self._own_engine and stopped:
            self.engine.close()

    def __enter__(self) -> Reactr:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
