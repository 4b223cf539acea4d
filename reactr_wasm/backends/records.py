"""Job records: what a result store keeps about one job, as plain data that can leave the process.

A ``JobRecord`` is built by the scheduler side (``scheduler.values.record_of``) from a
live ``Result``: its value already encoded to the bytes, content type and headers an
HTTP answer or a callback sends, its error already reduced to a kind, a code and two
texts. Nothing in it refers to a live object, so a store may keep it anywhere:
``to_bytes``/``from_bytes`` give its msgpack form (the project's wire format wherever an
outcome leaves the process).

This module also holds ``JobStatus``, the lowest place that needs it
(``reactr_wasm.JobStatus`` is the same class).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

from reactr_wasm.errors import JobCancelled, JobTimeout, QueueFull, ReactrError, RunErr, RunnableNotFound

FORMAT = 1  # version of the msgpack form, first field of every packed record
# What a kept record costs besides its bytes: the object, its strings and floats, and the
# store's entry for it (measured ~350 bytes for the memory store), rounded up.
RECORD_OVERHEAD = 512


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.CANCELLED})


class ErrorKind(StrEnum):
    """Why a job has no value to answer with; ``server/responses.py`` maps each to a status."""

    RUN_ERR = "run_err"  # the runnable's own RunErr(code, message)
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"  # a chained job named no runnable
    QUEUE_FULL = "queue_full"  # a chained job found its queue full
    EXECUTION = "execution"  # any other ReactrError: trap, abort, host fault, start failure
    EXCEPTION = "exception"  # a Python runnable's own exception
    UNENCODABLE = "unencodable"  # the job succeeded with a value JSON cannot encode


def classify(error: BaseException) -> tuple[ErrorKind, int, str]:
    """``(kind, code, message)`` of a job's error: what an HTTP answer says about it.

    ``code`` is a RunErr's own code (0 for every other kind).
    """
    if isinstance(error, RunErr):
        return ErrorKind.RUN_ERR, error.code, error.message
    if isinstance(error, RunnableNotFound):
        return ErrorKind.NOT_FOUND, 0, f"runnable '{error.name}' not found"
    if isinstance(error, JobTimeout):
        return ErrorKind.TIMEOUT, 0, str(error)
    if isinstance(error, JobCancelled):
        return ErrorKind.CANCELLED, 0, str(error)
    if isinstance(error, QueueFull):
        return ErrorKind.QUEUE_FULL, 0, str(error)
    if isinstance(error, ReactrError):
        return ErrorKind.EXECUTION, 0, str(error)
    return ErrorKind.EXCEPTION, 0, f"{type(error).__name__}: {error}"


Headers = tuple[tuple[str, str], ...]


class JobRecord(NamedTuple):
    """One job as a result store keeps it: immutable plain data.

    Success: ``value`` with ``content_type`` (None: no Content-Type) and ``headers``.
    Failure: ``error_kind``, ``error_code`` (a RunErr's), ``error_message`` (what an
    HTTP answer says) and ``error_text`` (the error as Reactr words it: ``GET /jobs``
    and callbacks). An UNENCODABLE value keeps ``status`` SUCCEEDED.
    ``key``/``fingerprint``: the ``Idempotency-Key`` that started the job and a digest
    of its request (runnable and body).

    A NamedTuple rather than a frozen dataclass: the server makes one or two per
    job, and a frozen dataclass of 15 fields took ~2.5 µs to build here, this ~0.5 µs.
    """

    id: str
    runnable: str
    status: JobStatus
    created: float
    started: float | None = None
    finished: float | None = None
    value: bytes = b""
    content_type: str | None = None
    headers: Headers | None = None
    error_kind: ErrorKind | None = None
    error_code: int = 0
    error_message: str = ""
    error_text: str | None = None
    key: str | None = None
    fingerprint: str | None = None

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    @property
    def nbytes(self) -> int:
        """About what keeping this record costs in memory, for the stores' byte bound."""
        size = RECORD_OVERHEAD + len(self.value) + len(self.error_message) + len(self.error_text or "")
        if self.headers:
            size += sum(len(name) + len(value) for name, value in self.headers)
        return size + len(self.key or "")

    def status_dict(self) -> dict[str, Any]:
        """The ``GET /jobs/{id}`` answer."""
        failed = self.status is not JobStatus.SUCCEEDED
        return {
            "id": self.id,
            "job": self.runnable,
            "status": self.status.value,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "error": self.error_text if failed else None,
        }

    def to_bytes(self) -> bytes:
        """The msgpack form: an array of the fields in order, after the format version."""
        import msgpack  # type: ignore[import-untyped]  # here: ~10 ms at import, and the memory store never packs

        return msgpack.packb((FORMAT, *self))  # type: ignore[no-any-return]  # enums pack as their str values

    @classmethod
    def from_bytes(cls, data: bytes) -> JobRecord:
        """The record ``to_bytes`` packed; raises ValueError for anything else."""
        import msgpack

        try:
            fields = msgpack.unpackb(data, use_list=False)
            version, rest = fields[0], fields[1:]
            if version != FORMAT or len(rest) != 15:
                raise ValueError(f"format {version!r} with {len(rest)} fields, expected {FORMAT} with 15")
            (id, runnable, status, created, started, finished, value, content_type, headers, kind, *errors) = rest
            record = cls(
                id, runnable, JobStatus(status), created, started, finished, value, content_type,
                headers, None if kind is None else ErrorKind(kind), *errors,
            )  # fmt: skip
            _check_types(record)
        except (ValueError, TypeError, IndexError, msgpack.UnpackException) as error:
            raise ValueError(f"not a packed job record: {error}") from None
        return record


def _check_types(record: JobRecord) -> None:
    """Refuse a record whose fields unpacked to the wrong types (a record from elsewhere)."""
    optional_floats = (record.started, record.finished)
    ok = (
        isinstance(record.id, str) and isinstance(record.runnable, str) and isinstance(record.value, bytes)
        and isinstance(record.created, float) and all(v is None or isinstance(v, float) for v in optional_floats)
        and isinstance(record.error_code, int) and isinstance(record.error_message, str)
        and all(v is None or isinstance(v, str) for v in (
            record.content_type, record.error_text, record.key, record.fingerprint
        ))
        and (record.headers is None or all(
            isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(s, str) for s in pair)
            for pair in record.headers
        ))
    )  # fmt: skip
    if not ok:
        raise TypeError("a field has the wrong type")


__all__ = ["FINISHED", "ErrorKind", "JobRecord", "JobStatus", "classify"]
