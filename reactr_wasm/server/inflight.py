"""Jobs in flight on this server: from their start until their finished record is stored.

A job's Result ends on a worker thread; its done-callback hops to the event loop
through ``LoopBridge`` (one loop wake-up for every job that ends meanwhile).
There, a stored job's finished record is made once (its value encoded), posted
to its callback URL, and stored by one task for as many records as are ready
(``ResultStore.finish`` wakes the ``GET /then`` waiters). Only then does the job
leave, so ``GET /jobs`` shows it ``running`` from its live Result until the
store knows it ended, and ``drain`` can wait for all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from typing import Any

from yarl import URL

from reactr_wasm.backends.records import JobRecord, JobStatus
from reactr_wasm.backends.results import ResultStore
from reactr_wasm.scheduler.bridge import LoopBridge
from reactr_wasm.scheduler.job import Job, Result, new_result_id
from reactr_wasm.scheduler.reactr import Reactr
from reactr_wasm.scheduler.values import record_of
from reactr_wasm.server.callbacks import Callbacks
from reactr_wasm.server.responses import HTTPError

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255  # Idempotency-Key


def fingerprint(name: str, body: bytes) -> str:
    """A digest of one request: an Idempotency-Key names one runnable and one body."""
    digest = hashlib.blake2b(b"%d:%s:" % (len(name), name.encode()), digest_size=16)
    digest.update(body)
    return digest.hexdigest()


def check_key(key: str) -> None:
    """Raises HTTPError 400 for an Idempotency-Key that is empty or too long."""
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise HTTPError(400, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")


def replayed(kept: JobRecord, record: JobRecord) -> JobRecord:
    """``kept``, the record the key of ``record`` is bound to; HTTPError 422 when it was for another request."""
    if kept.fingerprint != record.fingerprint:
        raise HTTPError(422, f"Idempotency-Key {record.key!r} was already used for a different request "
                             "(another runnable or body); use a new key for a new request")  # fmt: skip
    return kept


class Running:
    """One job in flight: its Result, whether its record is stored, where to post it."""

    __slots__ = ("callback", "result", "stored")

    def __init__(self, result: Result, stored: bool, callback: URL | None = None) -> None:
        self.result, self.stored, self.callback = result, stored, callback


class InFlight:
    """The server's jobs by result id, from start to stored record. Use on the event loop, ``bind()`` first."""

    def __init__(self, reactr: Reactr, store: ResultStore, callbacks: Callbacks) -> None:
        self.reactr, self.store, self.callbacks = reactr, store, callbacks
        self._jobs: dict[str, Running] = {}
        self._idle = asyncio.Event()  # set while no job is in flight, for settled()
        self._idle.set()
        self._finished: list[JobRecord] = []  # to store, in order, by the _store_finished task
        self._storing: asyncio.Task[None] | None = None
        self._bridge: LoopBridge | None = None

    def bind(self) -> None:
        """Bind to the running loop (the one the app serves on)."""
        self._bridge = LoopBridge.of(asyncio.get_running_loop())

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, result_id: str) -> Running | None:
        return self._jobs.get(result_id)

    def ids(self) -> list[str]:
        return list(self._jobs)

    async def start(
        self, name: str, body: bytes, key: str | None, url: URL | None, *, data: Any = None
    ) -> tuple[JobRecord, bool]:
        """Start a stored job, or find the one already started with this Idempotency-Key ``key``.

        The job's data is ``data`` when given (a request job's CoordinatedRequest),
        else ``body``; the key's fingerprint is made of ``body``. Returns its record
        and whether the job is new; a new one's finished record is stored, and
        posted to ``url``, when it ends. Raises HTTPError 400 for a malformed key
        and 422 for a key used for another request.
        """
        job = Job(name, body if data is None else data, new_result_id())  # an id before do(): DELETE cancels by id
        if key is None:
            result = self.reactr.do(job)
            record = record_of(result)
            await self.store.add(record)
            self.follow(result, record, url)
            return record, True
        check_key(key)
        # Stored before the job starts, so a request with the same key finds it at once.
        record = JobRecord(job.id, name, JobStatus.QUEUED, time.time(), key=key, fingerprint=fingerprint(name, body))
        kept = await self.store.add(record)
        if kept is not None:
            return replayed(kept, record), False
        try:
            result = self.reactr.do(job)
        except Exception:
            await self.store.delete(job.id)  # and the key with it
            raise
        self.follow(result, record, url)
        return record, True

    async def cancel(self, result_id: str, wait: float) -> str | None:
        """Cancel the stored job ``result_id`` if it is in flight here; its runnable's name, else None.

        Waits up to ``wait`` seconds for the job to stop and its finished
        record (``cancelled``, unless it ended first) to be stored.
        """
        running = self._jobs.get(result_id)
        if running is None or not running.stored or not self.reactr.cancel(result_id):
            return None
        await self.store.wait(result_id, wait)
        return running.result.job.name

    async def keep(self, running: Running) -> None:
        """Store a watched job that was not stored (``then=true`` past ``max_wait``), and its end later."""
        result = running.result
        await self.store.add(record_of(result))
        if self._jobs.get(result.id) is running:
            running.stored = True
        else:  # it ended while its record was being added
            await self.store.finish(record_of(result))

    def follow(self, result: Result, record: JobRecord, callback: URL | None) -> None:
        """``record`` (stored) gets its finished state stored when ``result`` ends, and posted to ``callback``."""
        if record.done:  # stored finished already: it ran on the caller's thread
            if callback is not None:
                self.callbacks.deliver(callback, record)
            return
        self.watch(result, stored=True, callback=callback)

    def watch(self, result: Result, *, stored: bool, callback: URL | None = None) -> Running:
        """Keep ``result`` in flight until it ends; set ``stored`` once its record is in the store."""
        running = self._jobs[result.id] = Running(result, stored, callback)
        self._idle.clear()
        if self._bridge is None:
            self.bind()
        result.add_done_callback(self._done)  # at once, here, when it has ended already
        return running

    def live(self, record: JobRecord) -> JobRecord:
        """``record``, or, while its job is in flight here, the job as it is now (the store learns only its end)."""
        running = None if record.done else self._jobs.get(record.id)
        return record if running is None else record_of(running.result)

    async def settled(self, until: float) -> None:
        """Wait until no job is in flight, or until the loop time ``until``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(until):
                await self._idle.wait()

    # --- when a job ends ------------------------------------------------------------------

    def _done(self, result: Result) -> None:
        """On the thread that ended ``result``: the rest happens on the loop, batched."""
        assert self._bridge is not None
        self._bridge.call(self._settle, result)

    def _settle(self, result: Result) -> None:
        running = self._jobs.get(result.id)
        if running is None or running.result is not result:
            return
        if not running.stored:
            self._forget(result.id)
            return
        record = record_of(result)  # its value encoded once, here
        if running.callback is not None:
            self.callbacks.deliver(running.callback, record)
        self._finished.append(record)
        if self._storing is None:
            self._storing = asyncio.get_running_loop().create_task(self._store_finished())

    async def _store_finished(self) -> None:
        """Store finished records, oldest first: one task for as many as end meanwhile."""
        try:
            while self._finished:
                batch, self._finished = self._finished, []
                for record in batch:
                    try:
                        await self.store.finish(record)
                    except Exception:
                        log.exception("storing the result of job %s (result %s) failed", record.runnable, record.id)
                    self._forget(record.id)
        finally:
            self._storing = None

    def _forget(self, result_id: str) -> None:
        self._jobs.pop(result_id, None)
        if not self._jobs:
            self._idle.set()


__all__ = ["InFlight", "Running", "check_key", "fingerprint", "replayed"]
