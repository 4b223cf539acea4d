"""What travels through the Redis job queue: a job as submitted, and one delivery of it.

A ``QueuedJob`` is the msgpack value of a stream entry (field ``j``): everything a
node needs to run the job and to answer for it. A ``Delivery`` is one hand-over of
an entry to one consumer; delivery is at-least-once, so the same job may be
delivered again (after a reclaim) with a higher ``attempt``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

from reactr_wasm.backends.records import JobRecord

FORMAT = 1  # version of the packed job, its first field


class QueuedJob(NamedTuple):
    """A job as submitted: result id, runnable, payload, callback URL, creation time, request metadata.

    ``meta`` is opaque to the queue: any msgpack-able dict the submitting node
    wants the running node to have (a request id, headers), or None.
    """

    id: str
    runnable: str
    payload: bytes
    callback: str | None = None
    created: float = 0.0
    meta: dict[str, Any] | None = None

    def to_bytes(self) -> bytes:
        import msgpack  # type: ignore[import-untyped]

        return msgpack.packb((FORMAT, *self))  # type: ignore[no-any-return]

    @classmethod
    def from_bytes(cls, data: bytes) -> QueuedJob:
        """The job ``to_bytes`` packed; raises ValueError for anything else."""
        import msgpack

        try:
            fields = msgpack.unpackb(data, use_list=False)
            if fields[0] != FORMAT or len(fields) != 7:
                raise ValueError(f"format {fields[0]!r} with {len(fields) - 1} fields, expected {FORMAT} with 6")
            job = cls(*fields[1:])
            ok = (
                isinstance(job.id, str) and isinstance(job.runnable, str) and isinstance(job.payload, bytes)
                and (job.callback is None or isinstance(job.callback, str)) and isinstance(job.created, float)
                and (job.meta is None or isinstance(job.meta, dict))
            )  # fmt: skip
            if not ok:
                raise TypeError("a field has the wrong type")
        except (ValueError, TypeError, IndexError, msgpack.UnpackException) as error:
            raise ValueError(f"not a packed job: {error}") from None
        return job


class State(StrEnum):
    """What a node does with a delivered entry (decided in Redis, by ``begin.lua``)."""

    RUN = "r"  # run it
    CANCELLED = "c"  # cancelled while queued: store it cancelled, do not run it
    DONE = "d"  # its outcome is stored already (its last node died before acknowledging): do not run it again
    DEAD = "x"  # delivered more than max_deliveries times (or not runnable): dead-lettered, stored as failed


class Delivery(NamedTuple):
    """One delivery of one stream entry to this node.

    ``attempt`` counts the deliveries of the entry, this one included (1 unless
    reclaimed); ``record`` is the stored outcome when ``state`` is DONE, and when it is
    DEAD, the failed record to store, if the queue gave up for another reason than
    ``max_deliveries``.
    """

    runnable: str
    entry: str  # the stream entry id
    job: QueuedJob
    attempt: int
    state: State
    record: JobRecord | None = None

    @property
    def delivery_id(self) -> str:
        """Names this delivery: the entry and the attempt (``1700000000000-0/2``); for deduplication."""
        return f"{self.entry}/{self.attempt}"


__all__ = ["Delivery", "QueuedJob", "State"]
