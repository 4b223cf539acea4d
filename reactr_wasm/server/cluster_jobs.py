"""Redis mode for the server: jobs go through the Redis queue, records live in Redis, this node works.

``app.py`` builds a ``ClusterJobs`` when ``[cluster] redis`` is set (``serve --redis
URL``); embedded mode never imports this module, nor redis. It owns this node's part
of the cluster (``docs/cluster.md``):

- the ``RedisResultStore`` the routes read and write, shared with every node;
- submits: ``POST /do`` (async, callback, ``then=true`` for a runnable this node
  lacks or with an Idempotency-Key) answers once ``JobQueue.submit`` returned,
  the job durably in Redis; a job for a runnable this node serves is taken by
  this node in the same script while its worker has room (``ClusterWorker.reserve``),
  so it starts at once, without a read; a runnable no live node serves is refused (404)
  from the heartbeat view, without a round trip; the queued job carries its
  HTTP request (``RequestJobs.meta``) so the node running it builds the same
  request job;
- cancels, which reach the node holding the job through the cancel channel;
- this node's ``ClusterWorker`` over its own runnables, whose callbacks carry
  the job's attempt and delivery id, and its ``Nodes`` heartbeat;
- draining: the node withdraws its announcement, takes no more jobs, finishes
  and stores what it holds; what it still holds when the drain times out (or
  when it is killed) is reclaimed by another node after ``visibility_timeout``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from yarl import URL

from reactr_wasm.backends.records import JobRecord, JobStatus
from reactr_wasm.backends.redis_link import BackendUnavailable, RedisLink
from reactr_wasm.backends.redis_results import RedisResultStore
from reactr_wasm.cluster.messages import Delivery, QueuedJob
from reactr_wasm.cluster.nodes import Nodes, new_node_id
from reactr_wasm.cluster.queue import JobQueue
from reactr_wasm.cluster.worker import ClusterWorker
from reactr_wasm.config import Config, job_timeouts, visibility_problem
from reactr_wasm.errors import ConfigError, RunnableNotFound
from reactr_wasm.scheduler.job import new_result_id
from reactr_wasm.scheduler.reactr import Reactr
from reactr_wasm.server.callbacks import Callbacks
from reactr_wasm.server.inflight import check_key, fingerprint, replayed
from reactr_wasm.server.request_jobs import RequestJobs

log = logging.getLogger(__name__)


class ClusterJobs:
    """This node in Redis mode: store, queue, worker and heartbeat; ``open()`` on the app's loop, ``close()`` after."""

    def __init__(self, reactr: Reactr, config: Config, callbacks: Callbacks, request_jobs: RequestJobs) -> None:
        cluster, server = config.cluster, config.server
        if cluster.redis is None:
            raise ValueError("ClusterJobs needs [cluster] redis")
        _check_timeouts(config)
        self.reactr, self.config, self.callbacks, self._request_jobs = reactr, config, callbacks, request_jobs
        self.node_id = new_node_id()
        link = RedisLink(cluster.redis)
        self.store = RedisResultStore(
            link, namespace=cluster.namespace, ttl=server.result_ttl,
            max_results=server.max_results, max_bytes=server.max_result_bytes,
        )  # fmt: skip
        self.queue = JobQueue(
            self.store, consumer=self.node_id,
            visibility_timeout=cluster.visibility_timeout, max_deliveries=cluster.max_deliveries,
        )  # fmt: skip
        self.nodes = Nodes(
            link, cluster.namespace, self.node_id, runnables=reactr.names,
            address=f"{server.host}:{server.port}", interval=cluster.heartbeat,
        )  # fmt: skip
        self.worker = ClusterWorker(
            self.queue, reactr, prefetch=cluster.prefetch, deliver=self._deliver, job_data=self._job_data
        )
        self._drained = False

    def serves(self, name: str) -> bool:
        """Whether some live node serves runnable ``name`` (this node's view, as of its last beat)."""
        return self.nodes.serves(name)

    async def start(
        self, name: str, body: bytes, key: str | None, url: URL | None, meta: dict[str, Any]
    ) -> tuple[JobRecord, bool]:
        """Queue a job in Redis, or find the one already queued with Idempotency-Key ``key`` (on any node).

        As ``InFlight.start``: returns the job's record and whether it is new.
        Raises RunnableNotFound when no live node serves ``name``, QueueFull,
        BackendUnavailable (503), HTTPError 400/422 for a bad or reused key.
        """
        if not self.nodes.serves(name) and not self.reactr.has(name):
            raise RunnableNotFound(name)
        if key is not None:
            check_key(key)
        result_id, now = new_result_id(), time.time()
        record = JobRecord(result_id, name, JobStatus.QUEUED, now,
                           key=key, fingerprint=None if key is None else fingerprint(name, body))  # fmt: skip
        job = QueuedJob(result_id, name, body, None if url is None else str(url), now, meta)
        take = self.reactr.has(name) and self.worker.reserve()
        taken: Delivery | None = None
        try:
            kept = await self.queue.submit(record, job, max_queue=self._queue_size(name), take=take)
            if isinstance(kept, Delivery):  # this node holds it (or an older job of that runnable)
                taken, kept = kept, None
        finally:
            if take:
                self.worker.release(taken)  # runs it once this answer is on its way
        if kept is None:
            return record, True
        return replayed(kept, record), False

    async def cancel(self, result_id: str, wait: float) -> str | None:
        """Cancel the job ``result_id`` wherever it is queued or running; its runnable's name, else None.

        None when it is unknown or finished already. Waits up to ``wait`` seconds for
        its finished record (``cancelled``, unless it ended first).
        """
        record = await self.store.get(result_id)
        if record is None or record.done:
            return None
        await self.queue.cancel(result_id)
        await self.store.wait(result_id, wait)
        return record.runnable

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Announce this node and start taking jobs; a Redis away at start is retried in the background."""
        try:
            await self.nodes.beat()
        except BackendUnavailable as error:
            log.warning("node %s: Redis is not available yet (%s); retrying", self.node_id, error)
        self.nodes.start()
        self.worker.start()
        log.info("Redis mode: node %s, namespace %s", self.node_id, self.queue.namespace)

    async def drain(self, timeout: float) -> None:
        """Withdraw, take no more jobs, and wait up to ``timeout`` s for the held ones to be stored.

        What is still held then stays pending in Redis (the worker logs how many): another
        node serving the runnable reclaims it after ``visibility_timeout``.
        """
        self._drained = True
        await self.nodes.close()
        await self.worker.stop(timeout)

    async def close(self) -> None:
        """Stop everything (a no-op after ``drain``); the store is closed by the server."""
        if not self._drained:
            await self.drain(0)

    # --- the worker's hooks ------------------------------------------------------------------

    def _job_data(self, delivery: Delivery) -> Any:
        job = delivery.job
        return self._request_jobs.queued(job.runnable, job.payload, job.meta)

    async def _deliver(self, delivery: Delivery, record: JobRecord) -> None:
        assert delivery.job.callback is not None
        url = URL(delivery.job.callback, encoded=True)
        await self.callbacks.deliver(url, record, job_attempt=delivery.attempt, delivery_id=delivery.delivery_id)

    def _queue_size(self, name: str) -> int:
        own = self.config.runnable(name).queue_size
        return own if own is not None else self.config.limits.queue_size


def _check_timeouts(config: Config) -> None:
    """The config file's rule (``check_cluster``), also when ``--redis`` turned Redis mode on after it was read."""
    problem = visibility_problem(config.cluster, job_timeouts(config.limits, config.runnables))
    if problem is not None:
        raise ConfigError(f"cluster.visibility_timeout {problem}")


__all__ = ["ClusterJobs"]
