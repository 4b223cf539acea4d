"""The result store on Redis: every node of a cluster reads and writes the same records.

The rules are the ``ResultStore``'s (``results.py``); the layout is in
``lua/records.lua``. How each one is kept here:

- A record is a hash ``{ns}:r:{id}`` whose ``d`` is its msgpack form
  (``JobRecord.to_bytes``) without key and fingerprint, which sit beside it (``k``,
  ``f``) so that a finished record, made without them, takes them over in the script.
  A ``d`` over ``INLINE_MAX`` bytes (a large value) is the string ``{ns}:d:{id}``
  instead (the hash's ``d`` is then empty): it is staged beside the script that
  writes it (``RedisLink.run(staged=...)``) and read after the hash, so that its
  bytes never go through Lua, which copies and hashes each of them.
- Expiry is by the store's clock, as in the memory store: ``get`` drops an expired
  record on access and ``sweep`` drops every record whose finished time (zset
  ``{ns}:fin``) is past the TTL. No Redis TTL is set on a record: a key Redis
  expired on its own would leave the age index and the byte counter wrong. An
  unfinished record never expires: its job may still be queued or running (the
  queue finishes it, as a failure after the last delivery at worst); only the
  count and byte bounds can drop it.
- The bounds are kept by the scripts that write: zset ``{ns}:age`` (order of
  arrival) and counter ``{ns}:bytes``, the oldest evicted first, never the record
  just written.
- ``add`` binds the Idempotency-Key in the same script (``{ns}:k:{key}``, set only
  when no kept record holds it), so two requests with one key cannot both start.
- ``finish`` never replaces a finished record: the first outcome stored is the
  outcome (a job run twice after a reclaim answers what its first run stored).
- Waiters are woken through one pub/sub channel ``{ns}:done`` (``redis_events.py``):
  a waiter is registered before the record is read, and every waiter is re-checked
  after each (re)subscription, so no ``finish`` is missed. A ``finish`` in this
  process wakes this process's waiters at once.
- The finished records this process stored (``finished_here``; the newest
  ``LOCAL_RECORDS``, ``LOCAL_BYTES`` at most) are read from memory, not Redis: a
  finished record never changes, and every script that drops or replaces one
  (delete, sweep, eviction by the bounds, an expired key) says so on ``{ns}:done``
  (``x`` + the ids), so every process forgets it. They are kept only while that
  channel is subscribed: a record whose finish raced with its drop is not kept,
  and each (re)subscription forgets them all (a drop may have gone by unseen).
  The TTL is checked on every read, as for a record read from Redis.

Use from one event loop. ``close()`` closes the pub/sub connection and the link.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from typing import Any

from reactr_wasm.backends.batching import Batcher
from reactr_wasm.backends.records import JobRecord, JobStatus
from reactr_wasm.backends.redis_events import Events
from reactr_wasm.backends.redis_link import INLINE_MAX, RedisLink
from reactr_wasm.backends.results import Clock, ResultStore

log = logging.getLogger(__name__)

SWEEP_BATCH = 1000  # records dropped by one sweep script: a script blocks Redis while it runs
READ_BATCH = 256  # records read by one script call at most
LOCAL_RECORDS, LOCAL_BYTES = 16_384, 16 << 20  # finished records this process stored, read from memory


Staged = list[tuple[str, bytes]]  # values to set beside a script call: (key, value)


def unpacked(d: bytes | None, k: bytes | None, f: bytes | None, s: bytes | None = None) -> JobRecord | None:
    """The record of hash fields ``d``, ``k``, ``f`` (and ``s``, the start time while a node runs it)."""
    if d is None:
        return None
    record = JobRecord.from_bytes(d)
    if k is not None:
        record = record._replace(key=k.decode(), fingerprint=None if f is None else f.decode())
    if s is not None and not record.done:
        record = record._replace(status=JobStatus.RUNNING, started=float(s))
    return record


class RedisResultStore(ResultStore):
    """Job records in the Redis behind ``link``, under ``namespace``; see the module docstring.

    Every method raises ``BackendUnavailable`` when Redis cannot be used.
    """

    def __init__(
        self,
        link: RedisLink,
        *,
        namespace: str = "reactr",
        ttl: float,
        max_results: int,
        max_bytes: int,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(ttl=ttl, max_results=max_results, max_bytes=max_bytes, clock=clock)
        if not namespace or any(c.isspace() for c in namespace):
            raise ValueError(f"result store: namespace must be a non-empty word, got {namespace!r}")
        self.link, self.namespace = link, namespace
        self.events = Events(link)
        self.done_channel = f"{namespace}:done"
        self._waiters: dict[str, list[asyncio.Future[JobRecord]]] = {}
        self._listening = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._reads = Batcher(self._read, READ_BATCH)  # the reads of one loop turn: one write
        self._local: dict[str, JobRecord] = {}  # finished records stored here, oldest first
        self._local_bytes = 0
        self._finishing: dict[str, bool] = {}  # id -> dropped meanwhile, while its outcome is being stored
        self._stage_prefix = f"{os.urandom(8).hex()}:"  # staged values' names: unique to this store ...
        self._stage_numbers = itertools.count()  # ... and to the value

    def record_key(self, result_id: str) -> str:
        return f"{self.namespace}:r:{result_id}"

    def data_key(self, result_id: str) -> str:
        """Where a large record's ``d`` is kept (see the module docstring)."""
        return f"{self.namespace}:d:{result_id}"

    def stage(self, value: bytes, staged: Staged) -> tuple[bytes, str]:
        """``(value, '')`` to pass ``value`` to a script inline, or, over INLINE_MAX, ``(b'', name)``
        with ``(name, value)`` added to ``staged``: set beside the script, which moves it into place."""
        if len(value) <= INLINE_MAX:
            return value, ""
        name = f"{self.namespace}:in:{self._stage_prefix}{next(self._stage_numbers)}"
        staged.append((name, value))
        return b"", name

    def packed(self, record: JobRecord, staged: Staged) -> tuple[bytes, str, int, str, str, Any]:
        """``(d, stage, nbase, key, fingerprint, finished)``: a record as the scripts take it (absent: '').

        A large ``d`` is staged (``stage``): ``staged`` then holds it, for ``RedisLink.run``.
        """
        key, fingerprint, finished = record.key, record.fingerprint, record.finished
        if key is not None or fingerprint is not None:
            record = record._replace(key=None, fingerprint=None)
        d, stage = self.stage(record.to_bytes(), staged)
        return d, stage, record.nbytes, key or "", fingerprint or "", "" if finished is None else finished

    async def add(self, record: JobRecord) -> JobRecord | None:
        bounds = (self._clock(), self.ttl, self.max_results, self.max_bytes)
        staged: Staged = []
        args = (self.namespace, *bounds, record.id, *self.packed(record, staged))
        bound = await self.link.run("add", *args, staged=staged)
        return None if bound is None else unpacked(*bound[1:])

    async def finish(self, record: JobRecord) -> bool:
        kept: list[JobRecord | None] = []
        self.finishing([record.id])
        try:
            staged: Staged = []
            args = (self.namespace, self.max_results, self.max_bytes, record.id, *self.packed(record, staged))
            reply = await self.link.run("finish", *args, staged=staged)
            stored = self.outcome(record, reply)
            kept.append(stored if reply[0] else None)
        finally:
            self.finished_here([record.id], kept)
        if stored.done:
            self.wake(stored)
        return bool(reply[0])

    async def delete(self, result_id: str) -> JobRecord | None:
        self._forget(result_id)
        kept = await self.link.run("delete", self.namespace, result_id)
        return None if kept is None else unpacked(*kept)

    async def sweep(self) -> int:
        cutoff, dropped = self._clock() - self.ttl, 0
        while True:
            count: int = await self.link.run("sweep", self.namespace, cutoff, SWEEP_BATCH)
            dropped += count
            if count < SWEEP_BATCH:
                return dropped

    async def size(self) -> tuple[int, int]:
        count, nbytes = await self.link.run("size", self.namespace)
        return int(count), int(nbytes)

    async def wait(self, result_id: str, timeout: float) -> JobRecord | None:
        """As ``ResultStore.wait``, in one read: the waiter is registered first, then the record read."""
        local = self._local.get(result_id) if self.events.subscribed else None
        if local is not None and not self.expired(local, self._clock()):
            return local
        if timeout <= 0:
            return await self.get(result_id)
        waiter = self._register(result_id)
        try:
            record = await self.get(result_id)
            if record is None or record.done:
                return record
            try:
                async with asyncio.timeout(timeout):
                    return await waiter
            except TimeoutError:
                return await self.get(result_id)
        finally:
            self._unregister(result_id, waiter)

    async def close(self) -> None:
        await self.events.close()
        for task in list(self._tasks):
            task.cancel()
        await self.link.close()

    # --- shared with the job queue's scripts ---------------------------------------------

    def outcome(self, record: JobRecord, reply: list[Any]) -> JobRecord:
        """The record a finish script left kept: ``record`` with the kept key, or the first outcome stored."""
        code = reply[0]
        if code == 1 and record.key is None and reply[1]:
            return record._replace(key=reply[1].decode(), fingerprint=reply[2].decode() if reply[2] else None)
        if code == 2:
            return unpacked(reply[1], reply[2], reply[3]) or record
        return record

    def finishing(self, result_ids: list[str]) -> None:
        """The outcomes of ``result_ids`` are about to be stored; then call ``finished_here``, come what may."""
        self._listen()
        for result_id in result_ids:
            self._finishing[result_id] = False

    def finished_here(self, result_ids: list[str], kept: list[JobRecord | None]) -> None:
        """After ``finishing(result_ids)``: keep in memory the finished records Redis keeps (``kept``, in order).

        None (or missing): not kept in Redis, or the store failed. A record dropped since
        ``finishing``, or while the done channel was not subscribed, is not kept here.
        """
        for position, result_id in enumerate(result_ids):
            dropped = self._finishing.pop(result_id, True)
            record = kept[position] if position < len(kept) else None
            if record is None or dropped or not record.done or not self.events.subscribed:
                continue
            self._forget(result_id)
            self._local[result_id] = record
            self._local_bytes += record.nbytes
            while len(self._local) > LOCAL_RECORDS or self._local_bytes > LOCAL_BYTES:
                self._forget(next(iter(self._local)))

    def wake(self, record: JobRecord) -> None:
        """Give a finished ``record`` to this process's waiters for it."""
        for waiter in self._waiters.pop(record.id, ()):
            if not waiter.done():
                waiter.set_result(record)

    # --- hooks -------------------------------------------------------------------------

    async def _get(self, result_id: str) -> JobRecord | None:
        local = self._local.get(result_id) if self.events.subscribed else None
        return local if local is not None else await self._reads(result_id)

    async def _read(self, result_ids: list[str]) -> list[JobRecord | None]:
        reads = [("HMGET", self.record_key(result_id), "d", "k", "f", "s") for result_id in result_ids]
        replies = await self.link.pipeline(reads)
        apart = [i for i, fields in enumerate(replies) if fields[0] == b""]
        values: dict[int, bytes | None] = {}
        if apart:  # large: a second read, of their values (one dropped meanwhile reads as None: not kept)
            gets = [("GET", self.data_key(result_ids[i])) for i in apart]
            values = dict(zip(apart, await self.link.pipeline(gets), strict=True))
        return [
            unpacked(values[i], *fields[1:]) if i in values else unpacked(*fields) for i, fields in enumerate(replies)
        ]

    async def _finished(self, result_id: str) -> JobRecord:
        waiter = self._register(result_id)
        try:
            record = await self._get(result_id)
            if record is not None and record.done:
                return record
            return await waiter
        finally:
            self._unregister(result_id, waiter)

    # --- waiters -------------------------------------------------------------------------

    def _listen(self) -> None:
        if not self._listening:
            self.events.on(self.done_channel, self._on_done, self._recheck)
            self._listening = True

    def _register(self, result_id: str) -> asyncio.Future[JobRecord]:
        self._listen()
        waiter: asyncio.Future[JobRecord] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(result_id, []).append(waiter)
        return waiter

    def _unregister(self, result_id: str, waiter: asyncio.Future[JobRecord]) -> None:
        waiters = self._waiters.get(result_id)
        if waiters is not None and waiter in waiters:  # timed out or cancelled: not woken
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[result_id]

    def _on_done(self, message: bytes) -> None:
        """A record finished on some node: ``i`` + its id (read it), or ``r`` + the record, not kept;
        or finished records were dropped: ``x`` + their ids."""
        kind = message[:1]
        if kind == b"r":
            self.wake(JobRecord.from_bytes(message[1:]))
        elif kind == b"x":
            import msgpack  # type: ignore[import-untyped]

            for result_id in msgpack.unpackb(message[1:]):
                self._forget(result_id)
        else:
            result_id = message[1:].decode()
            if result_id in self._waiters:
                self._fetch([result_id])

    def _recheck(self) -> None:
        """(Re)subscribed: a finish or a drop may have gone by unseen: read what the waiters wait for, and
        forget the records kept in memory."""
        self._local.clear()
        self._local_bytes = 0
        for result_id in self._finishing:
            self._finishing[result_id] = True
        if self._waiters:
            self._fetch(list(self._waiters))

    def _forget(self, result_id: str) -> None:
        record = self._local.pop(result_id, None)
        if record is not None:
            self._local_bytes -= record.nbytes
        if result_id in self._finishing:
            self._finishing[result_id] = True

    def _fetch(self, result_ids: list[str]) -> None:
        task = asyncio.get_running_loop().create_task(self._wake_finished(result_ids))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wake_finished(self, result_ids: list[str]) -> None:
        for result_id in result_ids:
            try:
                record = await self._get(result_id)
            except Exception as error:  # the next resubscription re-checks
                log.warning("reading the finished result %s failed: %s", result_id, error)
                return
            if record is not None and record.done:
                self.wake(record)


__all__ = ["RedisResultStore", "Staged", "unpacked"]
