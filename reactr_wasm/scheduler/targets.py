"""What a worker runs: a Wasm module or Python code behind one interface, and ``Ctx``.

Every target runs a job with ``run(job, result)``. A restartable target (a
Wasm module without side effects) can also run a bare payload with
``run_payload(payload, result_id, control, job_runner)``, with no Job or Result
made: the server's ``?then=true`` fast path, and in-process jobs run on the
caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from reactr_wasm.scheduler.job import Job, Result
from reactr_wasm.wasm.context import JobRunner, RunControl
from reactr_wasm.wasm.request import CoordinatedRequest
from reactr_wasm.wasm.runnable import WasmRunnable

if TYPE_CHECKING:
    from reactr_wasm.scheduler.reactr import Reactr


class Target(Protocol):
    """What a worker runs: adapts a Wasm module or a Python callable."""

    interruptible: bool  # a timeout stops the run itself (Wasm), not just its result
    restartable: bool  # a run stopped early can start again from scratch unnoticed (has run_payload)
    timeout: float | None  # seconds per job; None: none

    def run(self, job: Job, result: Result) -> Any: ...

    def on_change(self, event: str) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class PayloadTarget(Target, Protocol):
    """A target that can also run a bare payload, without a Job or Result.

    The caller passes the target's own ``job_runner``: ``run_payload`` is then
    the runnable's own run, with no call in between (it is on every inline
    job's path). ``control`` (with no parent) may come with its deadline
    already set to ``timeout`` from the caller's own clock read; that is still
    the target's own limit.
    """

    job_runner: JobRunner
    run_payload: Callable[[bytes, str, RunControl, JobRunner | None], Any]


class Ctx:
    """What a Python runnable gets besides its job: a way to start more jobs.

    ``return ctx.do(Job(...))`` chains: the caller's result resolves with the
    outcome of the job returned, without a thread waiting for it.
    """

    def __init__(self, reactr: Reactr, result: Result) -> None:
        self.reactr = reactr
        self.result = result

    def do(self, job: Job) -> Result:
        return self.reactr.do(job)


class RunnableObject(Protocol):
    """A Python runnable with a lifecycle: ``on_change("start" | "stop")`` per worker thread."""

    def run(self, job: Job, ctx: Ctx) -> Any: ...

    def on_change(self, event: str) -> None: ...


class WasmTarget:
    """A loaded Wasm module; its timeout is its ``Limits.timeout``."""

    interruptible = True  # the engine stops a guest at its deadline

    def __init__(self, runnable: WasmRunnable, job_runner: JobRunner) -> None:
        self.runnable = runnable
        self.restartable = runnable.info.restartable
        # It reads request fields or sets response headers: the server gives its jobs their HTTP request.
        self.wants_request = "request" in runnable.info.capabilities
        self.timeout: float | None = runnable.limits.timeout
        self.job_runner = job_runner  # the guest's run_job: this scheduler's, whoever else shares the engine
        self.run_payload = runnable.run  # (payload, result_id, control, job_runner): see PayloadTarget

    def run(self, job: Job, result: Result) -> Any:
        data = job.data
        if type(data) is bytes:  # payload() handles bytes too; a call saved per job
            # job._id: an id nobody asked for yet is not worth making just for log lines
            return self.runnable.run(data, job._id or "", result.control, self.job_runner)
        if type(data) is CoordinatedRequest:  # a request job: the guest runs on its body
            return self.runnable.run(data.body, job._id or "", result.control, self.job_runner, data)
        return self.runnable.run(job.payload(), job._id or "", result.control, self.job_runner)

    def on_change(self, event: str) -> None:
        pass

    def close(self) -> None:
        self.runnable.close()


class PythonTarget:
    """A Python callable ``(job, ctx) -> value`` or a ``RunnableObject``."""

    interruptible = False  # Python code cannot be stopped from outside
    restartable = False

    def __init__(
        self, reactr: Reactr, runnable: Callable[[Job, Ctx], Any] | RunnableObject, timeout: float | None = None
    ) -> None:
        self.reactr = reactr
        self.timeout = timeout
        run = getattr(runnable, "run", None)
        self._run: Callable[[Job, Ctx], Any] = run if callable(run) else runnable  # type: ignore[assignment]
        self._on_change: Callable[[str], None] | None = getattr(runnable, "on_change", None)

    def run(self, job: Job, result: Result) -> Any:
        return self._run(job, Ctx(self.reactr, result))

    def on_change(self, event: str) -> None:
        if self._on_change is not None:
            self._on_change(event)

    def close(self) -> None:
        pass
