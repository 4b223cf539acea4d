"""What one job run carries through the host functions: its context and its run control."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from reactr_wasm.capabilities.grants import NONE, Capabilities
from reactr_wasm.errors import RunErr
from reactr_wasm.wasm._raw import RawMemory
from reactr_wasm.wasm.request import CoordinatedRequest

# Runs a job by name for a guest's ``run_job`` and returns its output; raises ReactrError.
# The scheduler running the calling job passes its own, so schedulers can share an engine.
JobRunner = Callable[[str, bytes, "RunControl"], bytes]


class Stop(enum.Enum):
    """Why the host stopped a running guest: recorded when the epoch callback stops it.

    A guest call that fails after a stop was recorded failed *because of* the
    stop, whatever the trap says: the reason is a value, never read back from
    trap text, so an interruption is never taken for a guest fault.
    """

    CANCELLED = "job cancelled"
    TIMEOUT = "job timeout"
    OVER_BUDGET = "inline budget exceeded"  # internal: the job restarts on a worker thread
    START_TIMEOUT = "instance start timeout"  # an instance built for no job (load, prewarm)


class RunControl:
    """Deadline and cancel flag of one job run, shared with whoever may cancel it.

    The engine reads both on every epoch tick while the guest runs. A job run
    for a guest's ``run_job`` call has the caller's control as ``parent``: it
    shares its deadline, stops when the caller is cancelled, and is one level
    deeper in the chain.
    """

    __slots__ = ("budget", "cancelled", "deadline", "depth", "parent")

    def __init__(self, deadline: float = float("inf"), parent: RunControl | None = None) -> None:
        self.deadline = deadline
        self.budget = float("inf")  # an inline run stops here and restarts elsewhere
        self.cancelled = False
        self.parent = parent
        self.depth: int = parent.depth + 1 if parent is not None else 0

    def remaining(self) -> float | None:
        """Seconds left before the deadline (at least a millisecond), or None without one."""
        if self.deadline == float("inf"):
            return None
        return max(self.deadline - time.monotonic(), 0.001)

    def stop_reason(self) -> Stop | None:
        """Whether a guest running under this control must stop now, and why."""
        if self.is_cancelled():
            return Stop.CANCELLED
        now = time.monotonic()
        if now >= self.deadline:
            return Stop.TIMEOUT
        if now >= self.budget:
            return Stop.OVER_BUDGET
        return None

    def is_cancelled(self) -> bool:
        control: RunControl | None = self
        while control is not None:
            if control.cancelled:
                return True
            control = control.parent
        return False


_NO_JOB = RunControl()  # the control of a context between jobs: never consulted


class JobContext:
    """What host functions may see and change while one job runs.

    Making one costs about a tenth of an echo job, so a runnable reuses the
    contexts of its finished jobs (``WasmRunnable.run``): it sets the fields
    that say which job this is (``ident``, ``result_id``, ``request``,
    ``control``, ``job_runner``) before each job and ``clear``s what the job
    produced after it. What a host function may change is a declared slot.
    """

    __slots__ = (
        "bad_idents",
        "capabilities",
        "control",
        "error",
        "ffi_vars",
        "ident",
        "job_runner",
        "max_output",
        "memory",
        "output",
        "pending",
        "request",
        "result_id",
        "runnable",
        "staged",
    )

    def __init__(self, runnable: str, max_output: int, capabilities: Capabilities = NONE) -> None:
        self.runnable, self.max_output, self.capabilities = runnable, max_output, capabilities
        self.ident, self.result_id, self.control = 0, "", _NO_JOB
        self.job_runner: JobRunner | None = None  # None: run_job refused
        # Set by the instance that runs the job: the guest's memory, and the header words of
        # its driver's stage (driver.py; None without a driver), where results are recorded.
        self.memory: RawMemory | None = None
        self.staged: memoryview | None = None
        self.clear()

    def clear(self) -> None:
        """Forget what the last job produced: its result, error, pending FFI result and variables."""
        self.output: bytes | None = None
        self.error: RunErr | None = None
        self.pending: tuple[bytes, bool] | None = None  # (bytes, is_error) for get_ffi_result
        self.ffi_vars: list[str] | None = None  # add_ffi_var's values, consumed by db_exec
        self.bad_idents = 0  # host calls made with another job's ident, refused
        self.request: CoordinatedRequest | None = None
