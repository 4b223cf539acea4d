"""``Reactr``: the registry of runnables and the entry point for jobs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..capabilities.cache import Cache, MemoryCache
from ..errors import RunnableNotFound
from ..wasm.engine import WasmEngine
from ..wasm.instance import Limits
from ..wasm.pool import Isolation
from ..wasm.runnable import WasmRunnable
from .job import Job, Result
from .worker import Worker

log = logging.getLogger(__name__)


class Ctx:
    """What a Python runnable gets besides its job: a way to start more jobs."""

    def __init__(self, reactr: Reactr, result: Result) -> None:
        self.reactr = reactr
        self.result = result

    def do(self, job: Job) -> Result:
        return self.reactr.do(job)


class WasmTarget:
    inline = True  # a guest can always be interrupted

    def __init__(self, runnable: WasmRunnable) -> None:
        self.runnable = runnable

    def execute(self, job: Job, result: Result) -> Any:
        return self.runnable.run(job.payload(), result_id=job.id, control=result.control)

    def close(self) -> None:
        self.runnable.close()


class PythonTarget:
    inline = False  # Python code cannot be interrupted: never on the caller's thread

    def __init__(self, reactr: Reactr, func: Callable[[Job, Ctx], Any]) -> None:
        self.reactr, self.func = reactr, func

    def execute(self, job: Job, result: Result) -> Any:
        return self.func(job, Ctx(self.reactr, result))

    def close(self) -> None:
        pass


Runnable = WasmRunnable | Callable[[Job, Ctx], Any] | str | Path


class Reactr:
    """Schedules jobs onto runnables: Wasm modules or Python callables.

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
        cache_dir: Path | None = None,
    ) -> None:
        self._own_engine = engine is None
        self.engine = engine or WasmEngine(cache=cache or MemoryCache(), cache_dir=cache_dir)
        self._workers: dict[str, Worker] = {}
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        runnable: Runnable,
        *,
        pool_size: int = 1,
        timeout: float | None = None,
        isolation: Isolation = "reuse",
        limits: Limits | None = None,
        max_queue: int = 10_000,
        prewarm: bool = False,
    ) -> Callable[[Any], Result]:
        """Register (or replace) a runnable; returns ``do_name(data) -> Result``.

        ``runnable`` is a ``.wasm`` path, a loaded ``WasmRunnable`` or a Python
        callable ``(job, ctx) -> value``. Replacing a name lets queued and
        running jobs finish on the old version. Raises ModuleError for a bad
        module.
        """
        if isinstance(runnable, (str, Path)):
            if limits is None and timeout is not None:
                limits = Limits(timeout_seconds=timeout)
            runnable = self.engine.load_file(name, Path(runnable), limits=limits, isolation=isolation)
        target = WasmTarget(runnable) if isinstance(runnable, WasmRunnable) else PythonTarget(self, runnable)
        worker = Worker(name, target, pool_size=pool_size, timeout=timeout, max_queue=max_queue)
        if prewarm:
            if isinstance(target, WasmTarget):
                target.runnable.pool.prewarm(pool_size)
            worker.start()
        with self._lock:
            old = self._workers.get(name)
            self._workers[name] = worker
        if old is not None:
            old.stop(wait=False)
        def do_job(data: Any = None) -> Result:
            return self.do(Job(name, data))

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

    def do(self, job: Job | str, data: Any = None) -> Result:
        """Queue a job and return its Result.

        Raises RunnableNotFound for an unknown name and QueueFull at the bound.
        """
        if isinstance(job, str):
            job = Job(job, data)
        result = Result(job)
        self.worker(job.name).submit(result)
        return result

    def close(self) -> None:
        """Finish queued jobs, stop every worker, close the engine if owned."""
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.stop(wait=True)
        if self._own_engine:
            self.engine.close()

    def __enter__(self) -> Reactr:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
