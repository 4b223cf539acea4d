"""A compiled Wasm runnable: turns one job payload into output or an error."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from reactr_wasm.capabilities.grants import NONE, Capabilities
from reactr_wasm.capabilities.hints import toml_key
from reactr_wasm.errors import ExecutionError, JobCancelled, JobTimeout
from reactr_wasm.wasm.context import JobContext, JobRunner, RunControl, Stop
from reactr_wasm.wasm.instance import Blueprint, Interrupted, SetupError
from reactr_wasm.wasm.module import ModuleInfo
from reactr_wasm.wasm.pool import FreshSlots, InstancePool, Isolation
from reactr_wasm.wasm.request import CoordinatedRequest

# Idents only need to be unique among running jobs: host calls also check
# that the ident belongs to the calling thread's job, so guessing gains nothing.
_idents = itertools.count(1)
_IDENT_MASK = 0x7FFFFFFE
_NO_DEADLINE = float("inf")


class InlineBudgetExceeded(Exception):
    """Internal control flow, never a job's outcome: a job run on the caller's thread
    overran its budget and was stopped, to start again on a worker thread.

    Raised by ``WasmRunnable.run`` and caught by the scheduler's worker, which
    restarts the job. Not a ReactrError, so no handler of job errors can
    mistake it for one; not part of the public API.
    """


@dataclass(frozen=True)
class CoordinatedResponse:
    """The outcome of a request job: output bytes plus the headers the guest set."""

    output: bytes
    resp_headers: dict[str, str]


class WasmRunnable:
    """One ``.wasm`` runnable with its instance pool and limits. Thread-safe."""

    def __init__(
        self,
        name: str,
        plan: Blueprint,
        info: ModuleInfo,
        isolation: Isolation,
        slots: FreshSlots | None = None,
        capabilities: Capabilities = NONE,
    ) -> None:
        self.name, self.info, self.limits, self.source = name, info, plan.limits, plan.source
        self.capabilities = capabilities
        self.pool = InstancePool(plan, isolation, slots)
        self._contexts: list[JobContext] = []  # of finished jobs, for the next ones (see JobContext)

    def run(
        self,
        payload: bytes,
        result_id: str = "",
        control: RunControl | None = None,
        job_runner: JobRunner | None = None,
        request: CoordinatedRequest | None = None,
    ) -> bytes | CoordinatedResponse:
        """Run one job; ``job_runner`` serves its ``run_job`` calls (None: they are refused).

        A request job (``request`` given, or a payload in its JSON form) runs on
        the request's body and answers a ``CoordinatedResponse``.
        Raises RunErr, ExecutionError, JobTimeout, JobCancelled, ModuleError.
        """
        if control is None:
            control = RunControl()
        # Its own limit, unless a run_job chain's caller passed its deadline down (a control with a
        # parent); a caller may have set it already from its own clock (the scheduler's inline runs).
        set_here = control.deadline == _NO_DEADLINE
        if set_here:
            control.deadline = time.monotonic() + self.limits.timeout
        if request is None and payload[:1] == b"{":  # only a JSON object can be a request job
            request = CoordinatedRequest.from_payload(payload)
        try:
            job = self._contexts.pop()  # a finished job's, cleared (atomic under the GIL)
        except IndexError:
            job = JobContext(self.name, self.limits.result_size, self.capabilities)
        job.ident = next(_idents) & _IDENT_MASK
        job.result_id, job.request, job.control, job.job_runner = result_id, request, control, job_runner
        try:
            trap = self.pool.run(job, request.body if request else payload)
        except Interrupted as stop:  # here and below, a job that raised leaves its context behind
            raise self._stopped(stop.reason, set_here or control.parent is None) from None
        except SetupError as error:
            raise ExecutionError(str(error)) from None
        output, run_error = job.output, job.error
        job.clear()  # nothing of this job outlives it there
        self._contexts.append(job)
        if run_error is not None:
            raise run_error
        if trap is not None:
            raise ExecutionError(f"wasm execution error: failed to wasmFunc: {trap.message.strip()}")
        if output is None:
            output = b""
        if request is not None:
            return CoordinatedResponse(output, request.resp_headers)
        return output

    def _stopped(self, reason: Stop, own_deadline: bool) -> Exception:
        """What the caller sees of a guest the host stopped: never an ExecutionError.

        A timeout of this runnable's own limit names it and its config keys.
        """
        if reason is Stop.CANCELLED:
            return JobCancelled()
        if reason is Stop.OVER_BUDGET:
            return InlineBudgetExceeded(self.name)  # internal: the scheduler restarts the job
        if not own_deadline:
            return JobTimeout()
        return JobTimeout(
            f"job timeout: the job ran past its limit of {self.limits.timeout:g} s "
            f"(limits.timeout, or runnables.{toml_key(self.name)}.timeout for this runnable)"
        )

    def close(self) -> None:
        self.pool.close()


__all__ = ["CoordinatedResponse", "WasmRunnable"]
