"""The durable job queue: one Redis Stream per runnable, one consumer group, records in the result store.

Keys (besides the store's, ``backends/lua/records.lua``; all under the namespace ``ns``):

- ``{ns}:q:{runnable}`` stream of queued and running jobs (field ``j``: a packed
  ``QueuedJob``), consumer group ``reactr``; an entry is deleted once acknowledged,
  so its length is the runnable's backlog (queued + running).
- ``{ns}:p:{runnable}:{entry}`` the payload of a job whose payload is over
  ``INLINE_MAX`` bytes: its entry then has field ``p`` (``1``) and its packed job an
  empty payload. It is staged beside the submit script, which moves it there, and
  read with a plain GET once the begin script said to run the job: Lua copies and
  hashes every byte that crosses into it, so large payloads stay out of the scripts.
  Deleted with its entry.
- ``{ns}:dead:{runnable}`` stream of jobs given up after ``max_deliveries`` (the job,
  its id, deliveries, reason, node, time; field ``p``: its payload when large),
  at most ~10,000 kept.
- ``{ns}:x:{id}`` a cancel mark; channel ``{ns}:cancel`` tells the running node.

A job's life: ``submit`` (one script: bind the Idempotency-Key or find the job
holding it, XADD, keep the queued record) answers only once Redis has it. A node
``consume``s (XREADGROUP), and ``begin.lua`` tells it per entry whether to run it,
skip it as cancelled, or not run it again because its outcome is stored. A node
submitting a job it can run itself may ``take`` it in the same script: the entry
is delivered to its consumer there (as a read would), and no other node sees it
unless it is reclaimed. The node
runs it, then ``complete`` stores the outcome and acknowledges the entry in one
script (the first outcome stored stands). A node dead or stuck stops ``extend``ing
what it holds; after ``visibility_timeout`` seconds idle another node ``reclaim``s
(XAUTOCLAIM) and runs it again: delivery is at-least-once. An entry delivered more
than ``max_deliveries`` times is dead-lettered and its record finished as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, NamedTuple

from reactr_wasm.backends.batching import Batcher
from reactr_wasm.backends.records import ErrorKind, JobRecord, JobStatus
from reactr_wasm.backends.redis_link import BackendUnavailable
from reactr_wasm.backends.redis_results import RedisResultStore, Staged, unpacked
from reactr_wasm.cluster.messages import Delivery, QueuedJob, State
from reactr_wasm.errors import QueueFull

log = logging.getLogger(__name__)

GROUP = "reactr"
SUBMIT_BATCH = 256  # submits sent in one script call at most
CANCEL_MARK_SECONDS = 86_400.0  # a cancel mark outlives any sane wait in the queue


Submit = tuple[JobRecord, QueuedJob, int, bool]  # record, job, max_queue, take


class _Older(NamedTuple):
    """A submit with ``take`` got an older entry of the stream for this consumer (not the one it added)."""

    entry: bytes
    fields: Any  # the entry's, raw


class _Entry(NamedTuple):
    """A stream entry delivered to this consumer: its runnable, id, field ``j``, and whether its payload is apart."""

    runnable: str
    id: bytes
    message: bytes | None
    apart: bool


Submitted = JobRecord | _Older | str | None  # kept record, an older entry taken, its own entry (id) taken


class Outcome(NamedTuple):
    """A delivered job's finished record to store; ``ack``: acknowledge the entry in the same step."""

    delivery: Delivery
    record: JobRecord
    ack: bool = True


class JobQueue:
    """Jobs on Redis Streams beside ``store``'s records (same link, same namespace).

    ``consumer`` names this node's consumer (it contains the node id, so an operator
    sees who holds what: ``XPENDING {ns}:q:{runnable} reactr``). Every method raises
    ``BackendUnavailable`` when Redis cannot be used. Use from one event loop.
    """

    def __init__(
        self,
        store: RedisResultStore,
        *,
        consumer: str,
        visibility_timeout: float = 30.0,
        max_deliveries: int = 5,
        clock: Any = time.time,
    ) -> None:
        if not visibility_timeout > 0 or max_deliveries < 1:
            raise ValueError(
                f"job queue: visibility_timeout must be above 0 and max_deliveries at least 1, "
                f"got {visibility_timeout}, {max_deliveries}"
            )
        self.store, self.link, self.namespace = store, store.link, store.namespace
        self.consumer, self.visibility_timeout, self.max_deliveries = consumer, visibility_timeout, max_deliveries
        self.cancel_channel = f"{self.namespace}:cancel"
        self._clock = clock
        self._submits = Batcher(self._submit_batch, SUBMIT_BATCH)
        self._grouped: set[str] = set()  # runnables whose stream and group this queue made sure of
        self.reading = 0  # jobs the read under way (or sent ahead) may bring at most

    def stream(self, runnable: str) -> str:
        return f"{self.namespace}:q:{runnable}"

    def payload_key(self, runnable: str, entry: str) -> str:
        """Where the payload of entry ``entry`` is when it is kept apart (see the module docstring)."""
        return f"{self.namespace}:p:{runnable}:{entry}"

    # --- submitting ------------------------------------------------------------------------

    async def submit(
        self, record: JobRecord, job: QueuedJob, *, max_queue: int = 0, take: bool = False
    ) -> JobRecord | Delivery | None:
        """Queue ``job`` with its queued ``record``; returns once Redis has both.

        Returns None when queued, or the kept record ``record.key`` is bound to
        (nothing queued: the caller replays or refuses). ``take``: the caller runs
        the job itself; returns the ``Delivery`` this consumer now holds, as ``consume``
        would have delivered it: this job's (its first delivery), or an older entry of
        the same stream when jobs waited before it (this one is then queued for any node).
        Raises QueueFull when the runnable's stream holds ``max_queue`` jobs (0: no
        bound), BackendUnavailable. The submits of one event-loop turn share one script call.
        """
        submitted = await self._submits((record, job, max_queue, take))
        if isinstance(submitted, str):
            return Delivery(job.runnable, submitted, job, 1, State.RUN)
        if isinstance(submitted, _Older):
            taken = await self._begin([_entry(job.runnable, submitted.entry, submitted.fields)])
            if not taken:  # not a job: dropped
                return None
            return taken[0]
        return submitted

    async def _submit_batch(self, batch: list[Submit]) -> list[Submitted | BaseException]:
        args: list[Any] = [self.namespace, GROUP, self._clock(), self.store.ttl, self.store.max_results]
        args += (self.store.max_bytes, self.consumer)
        staged: Staged = []
        for record, job, max_queue, take in batch:
            inline, payload = self.store.stage(job.payload, staged)
            message = job.to_bytes() if not payload else job._replace(payload=inline).to_bytes()
            args += (job.runnable, record.id, *self.store.packed(record, staged), message, payload, max_queue,
                     "1" if take else "")  # fmt: skip
        replies = await self.link.run("submit", *args, staged=staged)
        answers: list[Submitted | BaseException] = []
        for (_, job, max_queue, _), reply in zip(batch, replies, strict=True):
            kind = reply[0]
            if kind == b"f":
                answers.append(QueueFull(f"runnable '{job.runnable}': {max_queue} jobs queued already"))
            elif kind == b"k":
                answers.append(unpacked(*reply[2:5]))
            elif kind == b"t":
                answers.append(reply[1].decode())
            elif kind == b"o":
                answers.append(_Older(reply[2], reply[3]))
            else:
                answers.append(None)
        return answers

    # --- consuming -------------------------------------------------------------------------

    async def consume(self, runnables: Iterable[str], count: int, block: float, *, ahead: int = 0) -> list[Delivery]:
        """Up to ``count`` new jobs of each of ``runnables`` for this consumer, waiting up to ``block`` s for one.

        Each comes with its state (run it, or cancelled, or done already) and attempt.
        ``ahead`` > 0: the caller takes up to ``ahead`` jobs in all, these included, and
        consumes again at once: the next read (of the rest, same runnables) goes in the same
        write as the script deciding about these, and the next ``consume`` answers with
        its reply, whatever it asks (one write to Redis less per batch).
        """
        names = sorted(runnables)
        try:
            if self.link.ahead:
                reply = await self._read(self.link.read_ahead())
            elif not names or count < 1:
                await asyncio.sleep(block)
                return []
            else:
                await self._ensure_groups(names)
                self.reading = count * len(names)
                reply = await self._read(self.link.read(*self._read_command(names, count, block), block=block))
        finally:
            self.reading = 0
        streams_items = reply.items() if isinstance(reply, dict) else reply or ()  # raw reply: RESP3 or RESP2 shape
        prefix = len(self.stream(""))
        entries = [
            _entry(stream.decode()[prefix:], entry, fields)
            for stream, items in streams_items for entry, fields in items if fields is not None
        ]  # fmt: skip
        left = ahead - len(entries)
        if not names or left <= 0:
            return await self._begin(entries)
        each = math.ceil(left / len(names))
        return await self._begin(entries, self._read_command(names, each, block), block, each * len(names))

    def _read_command(self, names: list[str], count: int, block: float) -> tuple[Any, ...]:
        streams = [self.stream(name) for name in names]
        return ("XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", count, "BLOCK", int(block * 1000),
                "STREAMS", *streams, *[">"] * len(streams))  # fmt: skip

    async def _read(self, reading: Awaitable[Any]) -> Any:
        try:
            return await reading
        except BackendUnavailable as error:
            if "NOGROUP" in str(error):  # Redis lost the stream (restarted without persistence): make it again
                self._grouped.clear()
            raise

    async def reclaim(self, runnables: Iterable[str], count: int) -> list[Delivery]:
        """Up to ``count`` jobs of ``runnables`` idle longer than the visibility timeout, now this consumer's.

        Their node died or stopped extending them. One past ``max_deliveries`` comes
        with state DEAD: ``complete`` it with ``gave_up(delivery)``.
        """
        names = sorted(runnables)
        await self._ensure_groups(names)
        idle = int(self.visibility_timeout * 1000)
        entries: list[_Entry] = []
        for name in names:
            if len(entries) >= count:
                break
            left = count - len(entries)
            reply = await self.link.call("XAUTOCLAIM", self.stream(name), GROUP, self.consumer, idle, "0-0",
                                         "COUNT", left)  # fmt: skip
            entries += [_entry(name, entry, fields) for entry, fields in reply[1] if fields is not None]
        deliveries = await self._begin(entries)
        return [
            d._replace(state=State.DEAD) if d.attempt > self.max_deliveries and d.state is State.RUN else d
            for d in deliveries
        ]

    async def _begin(
        self,
        entries: list[_Entry],
        read: tuple[Any, ...] | None = None,
        block: float = 0,
        reading: int = 0,
    ) -> list[Delivery]:
        """Per delivered entry: what to do with it, decided by ``begin.lua``; payloads kept apart read after.

        ``read``: a blocking read to send in the same write (``RedisLink.run_then_read``),
        which may bring up to ``reading`` jobs.
        """
        jobs: list[tuple[str, str, QueuedJob, bool]] = []
        for name, entry, message, apart in entries:
            try:
                if message is None:
                    raise ValueError("no field 'j'")
                jobs.append((name, entry.decode(), QueuedJob.from_bytes(message), apart))
            except ValueError as error:  # not ours: drop it rather than choke on it forever
                log.error("stream %s entry %s is not a job (%s); dropped", self.stream(name), entry, error)
                await self.link.run("ack", self.namespace, GROUP, name, entry, "")
        if not jobs:
            return []
        args: list[Any] = [self.namespace, GROUP, self.consumer, self._clock()]
        for name, entry_id, job, _ in jobs:
            args += (name, entry_id, job.id)
        if read is None:
            replies = await self.link.run("begin", *args)
        else:
            self.reading = reading
            try:
                replies = await self.link.run_then_read("begin", tuple(args), read, block=block)
            finally:
                if not self.link.ahead:
                    self.reading = 0
        deliveries = [
            Delivery(name, entry, job, int(reply[1]), State(reply[0].decode()),
                     unpacked(*reply[2:5]) if reply[0] == b"d" else None)
            for (name, entry, job, _), reply in zip(jobs, replies, strict=True)
        ]  # fmt: skip
        to_read = [i for i, (*_, apart) in enumerate(jobs) if apart and deliveries[i].state is State.RUN]
        if to_read:
            await self._read_payloads(deliveries, to_read)
        return deliveries

    async def _read_payloads(self, deliveries: list[Delivery], positions: list[int]) -> None:
        """Put in the payloads kept apart of ``deliveries`` at ``positions``; one whose payload is gone
        (a Redis that evicts keys) is failed and dead-lettered rather than run on nothing."""
        reads = [("GET", self.payload_key(deliveries[i].runnable, deliveries[i].entry)) for i in positions]
        for i, payload in zip(positions, await self.link.pipeline(reads), strict=True):
            delivery = deliveries[i]
            if payload is not None:
                deliveries[i] = delivery._replace(job=delivery.job._replace(payload=payload))
                continue
            message = f"its payload is missing from Redis ({self.payload_key(delivery.runnable, delivery.entry)})"
            log.error("job %s (result %s): %s", delivery.runnable, delivery.job.id, message)
            deliveries[i] = delivery._replace(state=State.DEAD, record=self.failed(delivery, message))

    async def _ensure_groups(self, names: Sequence[str]) -> None:
        for name in names:
            if name in self._grouped:
                continue
            try:
                await self.link.call("XGROUP", "CREATE", self.stream(name), GROUP, "0", "MKSTREAM")
            except BackendUnavailable as error:
                if "BUSYGROUP" not in str(error):
                    raise
            self._grouped.add(name)

    # --- finishing -------------------------------------------------------------------------

    async def complete(self, outcomes: Sequence[Outcome]) -> list[JobRecord]:
        """Store each outcome (the first one stored stands), acknowledging those with ``ack``; one script.

        Returns the record each job now answers with: its outcome, or the one its
        first run stored. Wakes this process's waiters.
        """
        args: list[Any] = [self.namespace, GROUP, self.store.max_results, self.store.max_bytes, self.consumer]
        staged: Staged = []
        for delivery, record, ack in outcomes:
            d, stage, nbase, _, _, finished = self.store.packed(record, staged)
            dead = delivery.state is State.DEAD
            args += (delivery.runnable, delivery.entry, record.id, d, stage, nbase, finished, "1" if ack else "0",
                     delivery.attempt - 1 if dead else "", record.error_message if dead else "")  # fmt: skip
        ids = [outcome.record.id for outcome in outcomes]
        here: list[JobRecord | None] = []  # what Redis keeps, for the store's memory
        self.store.finishing(ids)
        try:
            replies = await self.link.run("complete", *args, staged=staged)
            kept = [self.store.outcome(outcome.record, reply) for outcome, reply in zip(outcomes, replies, strict=True)]
            here = [record if reply[0] else None for record, reply in zip(kept, replies, strict=True)]
        finally:
            self.store.finished_here(ids, here)
        for record in kept:
            self.store.wake(record)
        return kept

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge and delete the entries of jobs whose outcome is stored (and callback sent)."""
        args: list[Any] = [self.namespace, GROUP]
        for delivery in deliveries:
            args += (delivery.runnable, delivery.entry, delivery.job.id)
        await self.link.run("ack", *args)

    async def extend(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Keep the entries of ``deliveries`` from being reclaimed (their idle time starts again).

        Returns those this consumer no longer holds (reclaimed by another node, or acknowledged).
        """
        if not deliveries:
            return []
        args: list[Any] = [self.namespace, GROUP, self.consumer]
        for delivery in deliveries:
            args += (delivery.runnable, delivery.entry)
        lost = await self.link.run("extend", *args)
        return [deliveries[int(position) - 1] for position in lost]

    def gave_up(self, delivery: Delivery) -> JobRecord:
        """The failed record of a job delivered in state DEAD: its ``record`` if it has one, else that of
        a job delivered more than ``max_deliveries`` times."""
        if delivery.record is not None:
            return delivery.record
        message = f"gave up after {delivery.attempt - 1} deliveries (max_deliveries = {self.max_deliveries})"
        return self.failed(delivery, message)

    def failed(self, delivery: Delivery, message: str) -> JobRecord:
        """The record of a delivered job failed by the queue, for ``message``, without running it."""
        job = delivery.job
        return JobRecord(
            job.id, job.runnable, JobStatus.FAILED, job.created, None, self._clock(),
            error_kind=ErrorKind.EXECUTION, error_message=message, error_text=message,
        )  # fmt: skip

    async def prune(self, runnables: Iterable[str], idle: float) -> list[str]:
        """Delete the consumers that hold nothing and were idle over ``idle`` seconds: nodes gone for good.

        Every process has a consumer of its own, so without this the group keeps one
        per process ever started. A live consumer reads every few seconds, and one
        holding entries is never deleted. Returns the names deleted.
        """
        deleted: list[str] = []
        for name in sorted(runnables):
            stream = self.stream(name)
            with contextlib.suppress(BackendUnavailable):  # no such stream or group (yet): nothing to prune
                for info in await self.link.call("XINFO", "CONSUMERS", stream, GROUP):
                    fields = info if isinstance(info, dict) else dict(zip(info[::2], info[1::2], strict=True))
                    fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
                    consumer = fields["name"].decode() if isinstance(fields["name"], bytes) else fields["name"]
                    if consumer != self.consumer and fields["pending"] == 0 and fields["idle"] > idle * 1000:
                        await self.link.call("XGROUP", "DELCONSUMER", stream, GROUP, consumer)
                        deleted.append(consumer)
        return deleted

    # --- cancelling ------------------------------------------------------------------------

    async def cancel(self, result_id: str) -> None:
        """Cancel a job wherever it is: a queued one is skipped when consumed, a running one is told to stop."""
        await self.link.run("cancel", self.namespace, result_id, int(CANCEL_MARK_SECONDS * 1000))


def _entry(runnable: str, entry: bytes, fields: list[bytes] | dict[bytes, bytes]) -> _Entry:
    """A delivered entry of ``fields``: a flat list (RESP2, a script's reply) or a map (RESP3, redis-py's)."""
    if not isinstance(fields, dict):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    return _Entry(runnable, entry, fields.get(b"j"), b"p" in fields)


__all__ = ["GROUP", "JobQueue", "Outcome"]
