"""The loop a node runs in Redis mode: queued jobs onto the local ``Reactr``, their outcomes back to Redis.

Three tasks on the event loop:

- consume: takes batches from the runnables' streams and starts each on the local
  ``Reactr``; a job whose state says cancelled, done already or dead is not run.
  Jobs this node took when it submitted them (``reserve``, ``release``) start the same
  way; reads ask for half the free room at most, so that an idle node has room for
  those too, and at most ``prefetch`` jobs are held at once;
- complete: stores finished outcomes in batches (one script per batch: outcome
  stored, then acknowledged), then, for a job with a callback URL, hands the
  stored record to ``deliver`` and acknowledges the entry once that returns;
- keep: extends what this node holds every ``visibility_timeout / 3`` seconds,
  and reclaims jobs idle past the visibility timeout (their node died).

A job sees its delivery as ``ClusterJob.attempt`` (1, then 2, ... after a
reclaim) and ``delivery_id``; a Python runnable reads them from its job. Cancel
messages stop a job running here (``Reactr.cancel``). When Redis goes away each
task backs off (doubling, up to ``BACKOFF_MAX``) and retries; finished outcomes
stay buffered until they are stored, so nothing is lost, and the loop recovers
by itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from reactr_wasm.backends.records import ErrorKind, JobRecord, JobStatus
from reactr_wasm.cluster.messages import Delivery, State
from reactr_wasm.cluster.queue import JobQueue, Outcome
from reactr_wasm.errors import JobCancelled
from reactr_wasm.scheduler.bridge import LoopBridge
from reactr_wasm.scheduler.job import Job, Result
from reactr_wasm.scheduler.reactr import Reactr
from reactr_wasm.scheduler.values import record_of

log = logging.getLogger(__name__)

Deliver = Callable[[Delivery, JobRecord], Awaitable[object]]
BATCH = 256  # outcomes stored by one script call at most
BACKOFF_FIRST, BACKOFF_MAX = 0.05, 2.0  # seconds, doubled after each failure in a row
CANCEL_MEMORY = 60.0  # seconds a cancel heard for a job not (yet) here is remembered
PRUNE_EVERY, PRUNE_IDLE = 60.0, 3600.0  # seconds: consumers idle that long (or 10 visibility timeouts) go


class ClusterJob(Job):
    """A job delivered by the Redis queue: ``attempt`` counts its deliveries; ``delivery_id`` names this one.

    Its data is ``data`` when given (what the node makes of the job, a request
    job's request), else the queued payload.
    """

    __slots__ = ("attempt", "delivery_id")

    def __init__(self, delivery: Delivery, data: Any = None) -> None:
        super().__init__(delivery.runnable, delivery.job.payload if data is None else data, delivery.job.id)
        self.attempt, self.delivery_id = delivery.attempt, delivery.delivery_id


class Backoff:
    """Seconds to wait after each failure in a row: doubling from BACKOFF_FIRST to BACKOFF_MAX, with jitter."""

    def __init__(self) -> None:
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** (self.failures - 1)) * (0.5 + random.random() / 2)


class ClusterWorker:
    """Runs the jobs ``queue`` delivers to this node on ``reactr``; see the module docstring.

    ``runnables()`` names the streams to consume (default: ``reactr.names``).
    ``deliver(delivery, record)`` posts a job's callback (``delivery.job.callback``)
    and returns when done, retries included; without it callbacks are not sent.
    ``job_data(delivery)`` makes a job's data from its delivery (default: its payload).
    """

    def __init__(
        self,
        queue: JobQueue,
        reactr: Reactr,
        *,
        runnables: Callable[[], Iterable[str]] | None = None,
        prefetch: int = 64,
        block: float = 1.0,
        deliver: Deliver | None = None,
        job_data: Callable[[Delivery], Any] | None = None,
    ) -> None:
        self.queue, self.reactr = queue, reactr
        self._runnables = runnables or reactr.names
        self.prefetch, self.block, self._deliver = prefetch, block, deliver
        self._job_data = job_data
        self.extend_every = queue.visibility_timeout / 3
        self.reclaim_every = min(queue.visibility_timeout / 2, 5.0)
        self._held: dict[str, Delivery] = {}  # by result id: entries held here until acknowledged
        self._reserved = 0  # room reserved by submits that may take their job (``reserve``)
        self._results: dict[str, Result] = {}  # the jobs of held entries running here
        self._outcomes: list[Outcome] = []  # finished, to store
        self._acks: list[Delivery] = []  # stored and their callback sent: to acknowledge
        self._flush = asyncio.Event()  # outcomes or acks wait
        self._space = asyncio.Event()  # fewer than prefetch held
        self._idle = asyncio.Event()  # nothing held
        self._space.set()
        self._idle.set()
        self._heard: dict[str, float] = {}  # result id -> when a cancel for it was heard
        self._tasks: list[asyncio.Task[None]] = []
        self._delivering: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._bridge: LoopBridge | None = None
        self.reclaimed = 0  # deliveries this node reclaimed from others (their node died or stalled), for metrics
        self.gave_up = 0  # jobs this node dead-lettered after max_deliveries, for metrics

    @property
    def held(self) -> int:
        """Jobs this node holds: running, or finished and not acknowledged yet."""
        return len(self._held)

    def start(self) -> None:
        """Start the three tasks and listen for cancels, on the running loop."""
        loop = asyncio.get_running_loop()
        self._bridge = LoopBridge.of(loop)
        self.queue.store.events.on(self.queue.cancel_channel, self._on_cancel)
        for name, loop_fn in (("consume", self._consume), ("complete", self._complete), ("keep", self._keep)):
            self._tasks.append(loop.create_task(loop_fn(), name=f"cluster-{name}"))

    async def stop(self, timeout: float) -> bool:
        """Take no more jobs; wait up to ``timeout`` seconds for held ones to be stored; stop the tasks.

        Returns whether nothing was left held. What is left stays pending in Redis:
        another node reclaims it after the visibility timeout.
        """
        self._stopping = True
        self._space.set()  # the consume task may wait for space: let it see _stopping
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.queue.link.timeout)
        self._tasks.clear()
        if self._held:
            log.warning("cluster worker stopped holding %d job(s); other nodes reclaim them", len(self._held))
        return not self._held

    # --- taking jobs -------------------------------------------------------------------------

    async def _consume(self) -> None:
        backoff = Backoff()
        while not self._stopping:
            free = self.prefetch - len(self._held) - self._reserved
            if free <= 0:
                self._space.clear()
                await self._space.wait()
                continue
            names = list(self._runnables())
            room = free - free // 2  # the other half (if any) is left for the jobs this node takes at submit
            try:
                count = math.ceil(room / max(1, len(names)))
                deliveries = await self.queue.consume(names, count, self.block, ahead=room)
            except Exception as error:
                await self._failed("taking jobs", error, backoff)
                continue
            backoff.reset()
            for delivery in deliveries:
                self.take(delivery)

    def reserve(self) -> bool:
        """Room for one job this node submits itself (``JobQueue.submit(take=True)``); pair with ``release``.

        True while started, not stopping, and what it holds, has reserved and may get from
        its read under way stays under ``prefetch`` (reads ask for half the free room at
        most, so an idle node has room to take jobs too); the room is then reserved.
        """
        if not self._tasks or self._stopping:
            return False
        if len(self._held) + self._reserved + self.queue.reading >= self.prefetch:
            return False
        self._reserved += 1
        return True

    def release(self, delivery: Delivery | None) -> None:
        """The submit a ``reserve`` was for returned: run ``delivery`` (what it took) right after the answer now
        being sent, or, None, give the room back."""
        if delivery is None:
            self._unreserve()
        else:
            asyncio.get_running_loop().call_soon(self._take_reserved, delivery)

    def _take_reserved(self, delivery: Delivery) -> None:
        self._unreserve()
        self.take(delivery)

    def _unreserve(self) -> None:
        self._reserved -= 1
        self._space.set()  # the consume loop counts reserved room as taken

    def take(self, delivery: Delivery) -> None:
        """Hold ``delivery`` and run it (or settle it, by its state): one consumed, reclaimed, or taken at submit.

        Once stopped (``stop`` returned), a delivery is left alone: not extended, another node
        reclaims it; while draining, it is run and stored as the others.
        """
        if not self._tasks:
            return
        job = delivery.job
        if job.id in self._held:  # reclaimed from this node itself (an extend came too late): running here
            return
        self._hold(delivery)
        if delivery.state is State.RUN and job.id in self._heard:
            delivery = delivery._replace(state=State.CANCELLED)
        if delivery.state is State.RUN:
            self._run(delivery)
        elif delivery.state is State.DONE:
            assert delivery.record is not None
            self._stored(delivery, delivery.record)
        elif delivery.state is State.DEAD:
            record = self.queue.gave_up(delivery)
            log.error("job %s (result %s) dead-lettered: %s", job.runnable, job.id, record.error_message)
            self.gave_up += 1
            self._finished(delivery, record)
        else:
            self._finished(delivery, _cancelled(delivery))

    def _run(self, delivery: Delivery) -> None:
        try:
            job = ClusterJob(delivery, None if self._job_data is None else self._job_data(delivery))
            result = self.reactr.do(job)
        except Exception as error:  # not served here any more (reload), or its queue is full
            log.warning("job %s (result %s) cannot start here (%s); left for another node",
                        delivery.runnable, delivery.job.id, error)  # fmt: skip
            self._release(delivery.job.id)  # not extended: reclaimed after the visibility timeout
            return
        self._results[job.id] = result
        result.add_done_callback(self._done)

    def _done(self, result: Result) -> None:
        """On the thread that ended ``result``: the rest happens on the loop."""
        assert self._bridge is not None
        self._bridge.call(self._settle, result)

    def _settle(self, result: Result) -> None:
        self._results.pop(result.id, None)
        delivery = self._held.get(result.id)
        if delivery is not None:  # created: when it was submitted, not when it started here
            self._finished(delivery, record_of(result)._replace(created=delivery.job.created))

    def _on_cancel(self, message: bytes) -> None:
        result_id = message.decode(errors="replace")
        now = time.monotonic()
        self._heard[result_id] = now
        if len(self._heard) > 1000:
            self._heard = {rid: at for rid, at in self._heard.items() if now - at < CANCEL_MEMORY}
        if self.reactr.cancel(result_id):  # one of this worker's, or any other job of that id running here
            log.info("job %s cancelled (a cancel from the cluster)", result_id)

    # --- storing outcomes ------------------------------------------------------------------------

    def _finished(self, delivery: Delivery, record: JobRecord) -> None:
        ack = delivery.job.callback is None or self._deliver is None
        self._outcomes.append(Outcome(delivery, record, ack))
        self._flush.set()

    def _stored(self, delivery: Delivery, record: JobRecord) -> None:
        """``record`` is stored: post its callback, if any, then acknowledge."""
        if delivery.job.callback is None or self._deliver is None:
            self._acks.append(delivery)
            self._flush.set()
            return
        task = asyncio.get_running_loop().create_task(self._callback(delivery, record))
        self._delivering.add(task)
        task.add_done_callback(self._delivering.discard)

    async def _callback(self, delivery: Delivery, record: JobRecord) -> None:
        assert self._deliver is not None
        try:
            await self._deliver(delivery, record)
        except Exception:
            log.exception("callback of job %s (result %s) failed", delivery.runnable, delivery.job.id)
        self._acks.append(delivery)
        self._flush.set()

    async def _complete(self) -> None:
        backoff = Backoff()
        while True:
            await self._flush.wait()
            self._flush.clear()
            while self._outcomes or self._acks:
                outcomes, acks = self._outcomes[:BATCH], self._acks[:BATCH]
                try:
                    kept = await self.queue.complete(outcomes) if outcomes else []
                    if acks:
                        await self.queue.ack(acks)
                except Exception as error:  # kept in the buffers: stored on a later try
                    await self._failed("storing outcomes", error, backoff)
                    continue
                backoff.reset()
                del self._outcomes[: len(outcomes)], self._acks[: len(acks)]
                for outcome, record in zip(outcomes, kept, strict=True):
                    if outcome.ack:
                        self._release(record.id)
                    else:
                        self._stored(outcome.delivery, record)
                for delivery in acks:
                    self._release(delivery.job.id)

    # --- holding on ---------------------------------------------------------------------------

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        next_reclaim, next_prune = loop.time() + self.reclaim_every, loop.time() + PRUNE_EVERY
        while True:
            await asyncio.sleep(self.extend_every)
            try:
                for delivery in await self.queue.extend(list(self._held.values())):
                    if delivery.job.id in self._results:  # still running here (else: acknowledged meanwhile)
                        log.info("job %s (result %s): another node took it over", delivery.runnable, delivery.job.id)
                if loop.time() >= next_reclaim and not self._stopping:
                    next_reclaim = loop.time() + self.reclaim_every
                    await self._reclaim()
                if loop.time() >= next_prune:
                    next_prune = loop.time() + PRUNE_EVERY
                    idle = max(PRUNE_IDLE, 10 * self.queue.visibility_timeout)
                    for consumer in await self.queue.prune(self._runnables(), idle):
                        log.info("deleted the consumer %s: idle for %.0f s and holding nothing", consumer, idle)
            except Exception as error:
                log.warning("extending or reclaiming jobs failed: %s", error)

    async def _reclaim(self) -> None:
        free = self.prefetch - len(self._held)
        if free > 0:
            for delivery in await self.queue.reclaim(list(self._runnables()), free):
                self.reclaimed += 1
                log.info("job %s (result %s) reclaimed (delivery %d)",
                         delivery.runnable, delivery.job.id, delivery.attempt)  # fmt: skip
                self.take(delivery)

    def _hold(self, delivery: Delivery) -> None:
        self._held[delivery.job.id] = delivery
        self._idle.clear()
        if len(self._held) >= self.prefetch:
            self._space.clear()

    def _release(self, result_id: str) -> None:
        self._held.pop(result_id, None)
        if len(self._held) < self.prefetch:
            self._space.set()
        if not self._held:
            self._idle.set()

    async def _failed(self, what: str, error: Exception, backoff: Backoff) -> None:
        if not self.queue.link.unavailable(error):
            log.exception("cluster worker: %s failed", what)
        delay = backoff.next()
        if backoff.failures == 1 or backoff.failures % 20 == 0:
            log.warning("cluster worker: %s failed (%s); retrying in %.2f s", what, error, delay)
        await asyncio.sleep(delay)


def _cancelled(delivery: Delivery) -> JobRecord:
    """The record of a job cancelled before it ran."""
    job, error = delivery.job, JobCancelled()
    return JobRecord(
        job.id, job.runnable, JobStatus.CANCELLED, job.created, None, time.time(),
        error_kind=ErrorKind.CANCELLED, error_message=str(error), error_text=str(error),
    )  # fmt: skip


__all__ = ["Backoff", "ClusterJob", "ClusterWorker", "Deliver"]
