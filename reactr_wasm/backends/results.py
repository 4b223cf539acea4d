"""Result stores: where the HTTP server keeps job records until clients read them.

Reactr's FaaS server kept an unbounded id -> Result map and deleted an entry on
its first read, so a response lost on the network lost the result, and a result
nobody fetched stayed forever (``reactr-abi.md`` §8.1). A store here keeps
``JobRecord``s (plain data, see ``records.py``), never live objects, so it may
live outside the process:

- a finished record stays readable for ``ttl`` seconds after the job *finished*
  (reads do not remove it, so ``GET /then/{id}`` is safe to retry); an
  unfinished one never expires;
- at most ``max_results`` records and ``max_bytes`` bytes (``JobRecord.nbytes``)
  are kept: past either bound the oldest go first (never the one just written);
- expired records go on access and in ``sweep()``, which the server runs
  periodically, so results nobody fetches do not pile up;
- an ``Idempotency-Key`` is bound to the record that carries it, for as long
  as that record is kept: a delete, an expiry or an eviction releases it.

``ResultStore`` holds the shared rules (bounds, expiry, waiting); an
implementation fills in the abstract methods and two private hooks, ``_get``
and ``_finished``. ``memory_results.py`` is the in-process one, ``redis_results.py``
the one several nodes share.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from reactr_wasm.backends.records import JobRecord

Clock = Callable[[], float]


class ResultStore:
    """Keeps job records by result id for a bounded time, count and size.

    Every method is a coroutine, so an implementation over the network never
    blocks the event loop. Implementations: ``add``, ``finish``, ``delete``,
    ``sweep``, ``size``, ``_get`` and ``_finished``; ``close`` when they hold
    anything.
    """

    def __init__(self, *, ttl: float, max_results: int, max_bytes: int, clock: Clock = time.time) -> None:
        if not ttl > 0 or max_results < 1 or max_bytes < 1:
            raise ValueError(
                "result store: ttl must be above 0 and max_results and max_bytes at least 1, "
                f"got {ttl}, {max_results}, {max_bytes}"
            )
        self.ttl, self.max_results, self.max_bytes = ttl, max_results, max_bytes
        self._clock = clock  # wall clock, as the records' timestamps

    def expired(self, record: JobRecord, now: float) -> bool:
        """A finished record is kept ``ttl`` seconds; an unfinished one is never expired."""
        finished = record.finished
        return finished is not None and now - finished >= self.ttl

    async def add(self, record: JobRecord) -> JobRecord | None:
        """Keep the record of a new job, and bind ``record.key`` (if any) to it.

        When that key is bound to another kept record already, nothing is stored
        and that record is returned (the caller replays or refuses the request);
        else None. One step, so two requests with one key cannot both start a job.
        """
        raise NotImplementedError

    async def finish(self, record: JobRecord) -> bool:
        """Replace a kept job's record with its newer (finished) state, and wake its waiters.

        The kept record's key and fingerprint carry over when ``record`` has none.
        A kept record that is finished already is not replaced: the first outcome
        stored stands (a job run twice, after a reclaim, answers what its first run
        stored), and the waiters get that one.
        Returns False, storing nothing, when the job is no longer kept (deleted,
        expired, evicted); ``wait`` calls already waiting get ``record`` all the same.
        """
        raise NotImplementedError

    async def get(self, result_id: str) -> JobRecord | None:
        """The record, or None when unknown, expired or deleted."""
        record = await self._get(result_id)
        if record is not None and self.expired(record, self._clock()):
            await self.delete(result_id)
            return None
        return record

    async def wait(self, result_id: str, timeout: float) -> JobRecord | None:
        """The finished record, once ``finish`` stores it, or the record as it is after ``timeout`` seconds.

        None when the id is unknown (or stops being known while unfinished).
        Woken by ``finish``, not by polling.
        """
        record = await self.get(result_id)
        if record is None or record.done or timeout <= 0:
            return record
        try:
            async with asyncio.timeout(timeout):
                return await self._finished(result_id)
        except TimeoutError:
            return await self.get(result_id)

    async def delete(self, result_id: str) -> JobRecord | None:
        """Drop a record and release its key; returns it if it was kept."""
        raise NotImplementedError

    async def sweep(self) -> int:
        """Drop every expired record; returns how many were dropped."""
        raise NotImplementedError

    async def size(self) -> tuple[int, int]:
        """``(records, bytes)`` kept now."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the store holds (connections); the server calls it when it stops."""

    # --- hooks for implementations --------------------------------------------------

    async def _get(self, result_id: str) -> JobRecord | None:
        """The kept record, expired or not."""
        raise NotImplementedError

    async def _finished(self, result_id: str) -> JobRecord:
        """The finished record of ``result_id``: at once if kept finished, else when ``finish`` brings it.

        Must not miss a ``finish`` that happens after the call starts.
        """
        raise NotImplementedError


__all__ = ["Clock", "ResultStore"]
