"""The in-process result store: records in a dict, in insertion order, oldest evicted first."""

from __future__ import annotations

import asyncio
import time

from reactr_wasm.backends.records import JobRecord
from reactr_wasm.backends.results import Clock, ResultStore


class MemoryResultStore(ResultStore):
    """Records in a dict (insertion order is age), keys in another, waiters by id.

    Dropping a record only forgets it: a ``wait`` already waiting still gets the
    finished record, and the job itself is not cancelled. Use from one event loop.
    """

    def __init__(self, *, ttl: float, max_results: int, max_bytes: int, clock: Clock = time.time) -> None:
        super().__init__(ttl=ttl, max_results=max_results, max_bytes=max_bytes, clock=clock)
        self._records: dict[str, JobRecord] = {}
        self._bytes = 0
        self._keys: dict[str, str] = {}  # idempotency key -> result id
        self._waiters: dict[str, list[asyncio.Future[JobRecord]]] = {}

    async def add(self, record: JobRecord) -> JobRecord | None:
        key = record.key
        if key is not None and (bound := self._keys.get(key)) is not None:
            kept = await self.get(bound)  # an expired one goes now, with its key
            if kept is not None:
                return kept
        self._keep(record, self._records.get(record.id))
        if key is not None:
            self._keys[key] = record.id
        return None

    async def finish(self, record: JobRecord) -> bool:
        kept = self._records.get(record.id)
        if kept is not None and kept.done:
            record = kept  # the first outcome stored stands: a job run twice answers what its first run stored
        elif kept is not None:
            if record.key is None and kept.key is not None:
                record = record._replace(key=kept.key, fingerprint=kept.fingerprint)
            self._keep(record, kept)
        if record.done:
            for waiter in self._waiters.pop(record.id, ()):
                if not waiter.done():
                    waiter.set_result(record)
        return kept is not None

    async def delete(self, result_id: str) -> JobRecord | None:
        return self._drop(result_id)

    async def sweep(self) -> int:
        now = self._clock()
        expired = [result_id for result_id, record in self._records.items() if self.expired(record, now)]
        for result_id in expired:
            self._drop(result_id)
        return len(expired)

    async def size(self) -> tuple[int, int]:
        return len(self._records), self._bytes

    async def _get(self, result_id: str) -> JobRecord | None:
        return self._records.get(result_id)

    async def _finished(self, result_id: str) -> JobRecord:
        record = self._records.get(result_id)
        if record is not None and record.done:
            return record
        waiter: asyncio.Future[JobRecord] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(result_id, [])
        waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters.get(result_id) is waiters:  # timed out or cancelled: finish() did not take them
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[result_id]

    # --- bookkeeping ------------------------------------------------------------------

    def _keep(self, record: JobRecord, replaced: JobRecord | None) -> None:
        """Store ``record`` (in place of ``replaced``, keeping its age), then enforce the bounds."""
        self._records[record.id] = record
        self._bytes += record.nbytes - (replaced.nbytes if replaced is not None else 0)
        records = self._records
        while (len(records) > self.max_results or self._bytes > self.max_bytes) and len(records) > 1:
            # The oldest goes first, but never the record just written: someone is about to read it.
            self._drop(next(result_id for result_id in records if result_id != record.id))

    def _drop(self, result_id: str) -> JobRecord | None:
        record = self._records.pop(result_id, None)
        if record is None:
            return None
        self._bytes -= record.nbytes
        key = record.key
        if key is not None and self._keys.get(key) == result_id:
            del self._keys[key]
        return record


__all__ = ["MemoryResultStore"]
