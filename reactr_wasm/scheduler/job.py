"""Jobs and their results."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reactr_wasm.backends.records import FINISHED, JobStatus
from reactr_wasm.errors import JobCancelled, JobTimeout
from reactr_wasm.scheduler.bridge import LoopBridge
from reactr_wasm.wasm.context import RunControl
from reactr_wasm.wasm.request import CoordinatedRequest

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
RESULT_ID_LENGTH = 24


# Each random byte maps to one of the 36 symbols; bytes 0-3 of each group of
# 36 are 8/256 likely instead of 7/256, which leaves ~5.16 bits per symbol:
# ~124 bits for an id, at ~0.5 µs (``secrets.choice`` per symbol costs ~40 µs).
_BYTE_TO_SYMBOL = bytes.maketrans(bytes(range(256)), (_ID_ALPHABET.encode() * 8)[:256])


def new_result_id() -> str:
    """A random 24-character ``[0-9a-z]`` result id (Reactr's format) from ``secrets``."""
    return secrets.token_bytes(RESULT_ID_LENGTH).translate(_BYTE_TO_SYMBOL).decode()


def is_result_id(text: str) -> bool:
    return len(text) == RESULT_ID_LENGTH and all(c in _ID_ALPHABET for c in text)


class Job:
    """A unit of work: the name of a runnable and its data.

    Data that is a ``CoordinatedRequest`` makes a request job (as in Reactr): a
    Wasm runnable runs on its body and reads its other fields through host calls.

    A job runs once: its id names its one result, and a worker drops its data
    when the run ends (a finished Result does not keep its input).
    """

    __slots__ = ("_id", "data", "name")

    def __init__(self, name: str, data: Any = None, id: str | None = None) -> None:
        self.name = name
        self.data = data
        self._id = id

    @property
    def id(self) -> str:
        """The job's result id, made on first use (most in-process jobs never need one)."""
        if self._id is None:
            self._id = new_result_id()
        return self._id

    def payload(self) -> bytes:
        """The bytes a Wasm runnable receives (Reactr's rules, ``reactr-abi.md`` §3.2).

        A ``CoordinatedRequest`` gives its JSON form, which a Wasm runnable reads
        back as the same request job.
        """
        data = self.data
        if isinstance(data, bytes):
            return data
        if isinstance(data, CoordinatedRequest):
            return data.to_payload()
        if isinstance(data, (bytearray, memoryview)):
            return bytes(data)
        if isinstance(data, str):
            return data.encode()
        return json.dumps(data, separators=(",", ":")).encode()


def status_of(error: BaseException) -> JobStatus:
    """The status a job ends in with ``error``."""
    if isinstance(error, JobTimeout):
        return JobStatus.TIMED_OUT
    if isinstance(error, JobCancelled):
        return JobStatus.CANCELLED
    return JobStatus.FAILED


# Results change state for microseconds at a time, under the GIL: one shared
# lock serialises them without allocating a lock per job.
_STATE_LOCK = threading.Lock()
# The control of every RanResult: never read, since cancel() leaves a finished result's control alone.
_SPENT = RunControl()
_SUCCEEDED = JobStatus.SUCCEEDED


class Result:
    """The eventual outcome of a job.

    Await it (``await result``), block on it from any thread (``then()``), or
    register a callback. Waiting is repeatable and concurrent, unlike Reactr's
    single-use ``Then``.
    """

    __slots__ = (
        "__weakref__",  # Reactr finds results by id through weak references
        "_callbacks",
        "_discarded",
        "_error",
        "_event",
        "_value",
        "control",
        "created",
        "finished",
        "job",
        "started",
        "status",
    )

    def __init__(self, job: Job) -> None:
        self.job = job
        self.status = JobStatus.QUEUED
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.control = RunControl()
        self._value: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Result], None]] | None = None
        self._event: threading.Event | None = None
        self._discarded = False

    @property
    def id(self) -> str:
        return self.job.id

    def done(self) -> bool:
        return self.status in FINISHED

    @property
    def error(self) -> BaseException | None:
        return self._error

    # --- producer side (workers) -------------------------------------------------
    # A friend API of the scheduler package: worker.py and reactr.py move a Result
    # through its states with these; callers only read, wait, cancel and discard.

    def _mark_running(self) -> bool:
        """Move to running unless cancelled; returns False if it must not run."""
        with _STATE_LOCK:
            if self.status is not JobStatus.QUEUED:
                return False
            self.status = JobStatus.RUNNING
            self.started = time.time()
            return True

    def _requeue(self) -> None:
        """Back to queued after an inline run was stopped to restart on a worker."""
        with _STATE_LOCK:
            if self.status is JobStatus.RUNNING:
                self.status = JobStatus.QUEUED
                self.started = None

    def _finish(self, status: JobStatus, value: Any = None, error: BaseException | None = None) -> bool:
        with _STATE_LOCK:
            if self.status in FINISHED:
                return False
            self._value, self._error = (None if self._discarded else value), error
            self.finished = time.time()
            self.status = status
            callbacks, self._callbacks = self._callbacks, None
            event = self._event
        if event is not None:
            event.set()
        if callbacks:
            for callback in callbacks:
                callback(self)
        return True

    def set_result(self, value: Any) -> None:
        self._finish(JobStatus.SUCCEEDED, value)

    def set_error(self, error: BaseException) -> None:
        self._finish(status_of(error), error=error)

    # --- consumer side -------------------------------------------------------------

    def add_done_callback(self, callback: Callable[[Result], None]) -> None:
        """Call ``callback(result)`` once done (at once, here, if already done)."""
        with _STATE_LOCK:
            if self.status not in FINISHED:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        callback(self)

    def outcome(self) -> Any:
        """The value, or raise the error; only valid once done."""
        if self._error is not None:
            raise self._error
        return self._value

    def then(self, timeout: float | None = None) -> Any:
        """Block until done and return the value or raise the job's error.

        Raises TimeoutError when ``timeout`` seconds pass first.
        """
        if self.status is _SUCCEEDED:  # the common case, without a call
            return self._value
        if not self.done():
            with _STATE_LOCK:
                if self._event is None:
                    self._event = threading.Event()
                event = self._event
            if not self.done() and not event.wait(timeout):
                raise TimeoutError(f"job {self.id} still {self.status.value} after {timeout}s")
        return self.outcome()

    def then_str(self, timeout: float | None = None) -> str:
        """The value as text (bytes are decoded as UTF-8)."""
        value = self.then(timeout)
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode()
        if isinstance(value, str):
            return value
        raise TypeError(f"job {self.id}: result is {type(value).__name__}, not text")

    def then_json(self, timeout: float | None = None) -> Any:
        """The value parsed as JSON (bytes or str); other values are returned as they are."""
        value = self.then(timeout)
        if isinstance(value, (bytes, bytearray, str)):
            return json.loads(value)
        return value

    def then_do(self, callback: Callable[[Any, BaseException | None], None]) -> None:
        """Call ``callback(value, error)`` on a background thread once done."""

        def deliver(result: Result) -> None:
            _callback_pool().submit(callback, result._value, result._error)

        self.add_done_callback(deliver)

    def discard(self) -> None:
        """Nobody will read this result: drop its value as soon as it exists."""
        self._discarded = True
        if self.done():
            self._value = None

    def __await__(self) -> Generator[Any, None, Any]:
        if not self.done():
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            bridge = LoopBridge.of(loop)  # here, on the loop's own thread
            self.add_done_callback(lambda _: bridge.wake(future))
            yield from asyncio.shield(future).__await__()
        return self.outcome()

    def cancel(self) -> bool:
        """Cancel a queued or running job; a running Wasm guest is interrupted.

        Returns False when the job had already finished (its control is then left alone).
        """
        with _STATE_LOCK:
            if self.status in FINISHED:
                return False
            running = self.status is JobStatus.RUNNING
            self.control.cancelled = True  # under the lock: a queued job starting now sees it
        # A running Wasm guest sees control.cancelled on its next epoch tick and
        # ends as JobCancelled; a queued job is finished here and never starts.
        if not running:
            self._finish(JobStatus.CANCELLED, error=JobCancelled())
        return True


class RanResult(Result):
    """The Result of a job that already ran to its end on the caller's thread (``Worker.run_job_now``).

    Nobody could have waited for, cancelled or discarded it yet, so it is made
    finished: no lock, no state changes, no RunControl of its own. Made by
    ``ran_result``, not by calling the class.
    """

    __slots__ = ()


_new = object.__new__


def ran_result(
    job: Job, status: JobStatus, value: Any, error: BaseException | None, started: float, finished: float
) -> RanResult:
    """A finished RanResult, its fields set here rather than by an ``__init__`` (~50 ns less: every inline job)."""
    result: RanResult = _new(RanResult)
    result.job, result.status = job, status
    result.created = result.started = started
    result.finished = finished
    result.control = _SPENT
    result._value, result._error = value, error
    result._callbacks = result._event = None
    result._discarded = False
    return result


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _callback_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="reactr-then-do")
        return _pool


__all__ = ["FINISHED", "Job", "JobStatus", "Result", "is_result_id", "new_result_id"]
