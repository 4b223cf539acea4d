"""The cluster worker loop against a real redis-server, driving a real Reactr with real Wasm runnables.

A "node" here is a store, a queue and (for most) a worker of its own, as a
separate process would have; a node that "dies" stops without acknowledging
what it holds, as after a kill -9.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis

from reactr_wasm import Reactr
from reactr_wasm.backends.records import ErrorKind, JobRecord, JobStatus
from reactr_wasm.backends.redis_link import BackendUnavailable, RedisLink
from reactr_wasm.backends.redis_results import RedisResultStore
from reactr_wasm.cluster.messages import Delivery, QueuedJob
from reactr_wasm.cluster.queue import GROUP, JobQueue
from reactr_wasm.cluster.worker import ClusterJob, ClusterWorker
from reactr_wasm.scheduler.job import Job, new_result_id
from tests.conftest import RUNNABLES, wat_module
from tests.services import RedisProcess, Service

pytestmark = pytest.mark.timeout(60)


class Cluster:
    """Nodes sharing one namespace of one Redis; everything made is closed at the end."""

    def __init__(self, url: str) -> None:
        self.url, self.namespace = url, f"w-{new_result_id()}"
        self.stores: list[RedisResultStore] = []
        self.workers: list[ClusterWorker] = []

    def queue(self, name: str, *, visibility_timeout: float = 30, max_deliveries: int = 5) -> JobQueue:
        store = RedisResultStore(RedisLink(self.url, timeout=1.0), namespace=self.namespace, ttl=60,
                                 max_results=100_000, max_bytes=1 << 30)  # fmt: skip
        self.stores.append(store)
        return JobQueue(store, consumer=name, visibility_timeout=visibility_timeout, max_deliveries=max_deliveries)

    def worker(self, queue: JobQueue, reactr: Reactr, **options: Any) -> ClusterWorker:
        worker = ClusterWorker(queue, reactr, **options)
        worker.start()
        self.workers.append(worker)
        return worker

    async def close(self) -> None:
        for worker in self.workers:
            await worker.stop(0)
        for store in self.stores:
            await store.close()


@pytest.fixture
async def cluster(service: Service) -> AsyncIterator[Cluster]:
    made = Cluster(service.url)
    yield made
    await made.close()


async def submit(queue: JobQueue, runnable: str, payload: bytes, callback: str | None = None) -> JobRecord:
    result_id, now = new_result_id(), time.time()
    record = JobRecord(result_id, runnable, JobStatus.QUEUED, now)
    assert await queue.submit(record, QueuedJob(result_id, runnable, payload, callback, now)) is None
    return record


async def outcome(queue: JobQueue, result_id: str, timeout: float = 10) -> JobRecord:
    record = await queue.store.wait(result_id, timeout)
    assert record is not None and record.done, record
    return record


class Attempts:
    """A Python runnable that records each run's (result id, attempt, delivery id); ``gate`` holds runs back."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, int, str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, job: Job, ctx: Any) -> bytes:
        assert isinstance(job, ClusterJob)
        self.runs.append((job.id, job.attempt, job.delivery_id))
        assert self.gate.wait(20)
        return b"ran " + job.data


# --- end to end ------------------------------------------------------------------------------


async def test_a_wasm_runnable_runs_the_queued_jobs(cluster: Cluster, reactr: Reactr) -> None:
    reactr.register("hello-echo", RUNNABLES / "hello-echo.wasm", pool_size=2)
    front, back = cluster.queue("front"), cluster.queue("back")
    cluster.worker(back, reactr, prefetch=16)
    records = await asyncio.gather(*(submit(front, "hello-echo", f"world {i}".encode()) for i in range(200)))
    finished = await asyncio.gather(*(outcome(front, record.id) for record in records))
    assert [record.value for record in finished] == [f"hello world {i}".encode() for i in range(200)]
    assert all(record.status is JobStatus.SUCCEEDED for record in finished)
    assert [record.created for record in finished] == [record.created for record in records]  # as submitted
    assert redis.Redis.from_url(cluster.url).xlen(front.stream("hello-echo")) == 0


async def test_a_job_that_fails_is_stored_as_failed(cluster: Cluster, reactr: Reactr, tmp_path: Path) -> None:
    (tmp_path / "trap.wasm").write_bytes(wat_module("trap"))
    reactr.register("trap", tmp_path / "trap.wasm")
    queue = cluster.queue("node")
    cluster.worker(queue, reactr)
    failed = await outcome(queue, (await submit(queue, "trap", b"x")).id)
    assert failed.status is JobStatus.FAILED and failed.error_kind is ErrorKind.EXECUTION


# --- at-least-once --------------------------------------------------------------------------------


async def test_a_job_held_by_a_dead_node_runs_on_another_with_its_attempt(cluster: Cluster, reactr: Reactr) -> None:
    attempts = Attempts()
    reactr.register("attempts", attempts)
    dead = cluster.queue("dead-node", visibility_timeout=0.3)
    record = await submit(dead, "attempts", b"x")
    [held] = await dead.consume(["attempts"], 1, 1.0)  # then it dies without a word
    live = cluster.queue("live-node", visibility_timeout=0.3)
    cluster.worker(live, reactr)
    done = await outcome(live, record.id)
    assert done.value == b"ran x"
    assert attempts.runs == [(record.id, 2, f"{held.entry}/2")]


async def test_a_live_node_keeps_a_slow_job(cluster: Cluster, reactr: Reactr) -> None:
    attempts = Attempts()
    attempts.gate.clear()
    reactr.register("attempts", attempts)
    slow_node = cluster.queue("slow-node", visibility_timeout=0.3)
    other = cluster.queue("other-node", visibility_timeout=0.3)
    cluster.worker(slow_node, reactr)
    record = await submit(slow_node, "attempts", b"x")
    await asyncio.sleep(1.0)  # the job runs for three visibility timeouts
    assert await other.reclaim(["attempts"], 10) == []
    attempts.gate.set()
    assert (await outcome(other, record.id)).value == b"ran x"
    assert [attempt for _, attempt, _ in attempts.runs] == [1]


# --- cancel -----------------------------------------------------------------------------------------


async def test_cancel_stops_a_job_running_on_another_node(cluster: Cluster, reactr: Reactr, tmp_path: Path) -> None:
    (tmp_path / "spin.wasm").write_bytes(wat_module("infinite-loop"))
    reactr.register("spin", tmp_path / "spin.wasm", timeout=30)
    runner, front = cluster.queue("runner"), cluster.queue("front")
    cluster.worker(runner, reactr)
    record = await submit(front, "spin", b"")
    for _ in range(100):
        running = await front.store.get(record.id)
        if running is not None and running.status is JobStatus.RUNNING:
            break
        await asyncio.sleep(0.02)
    started = time.monotonic()
    await front.cancel(record.id)
    cancelled = await outcome(front, record.id)
    assert cancelled.status is JobStatus.CANCELLED and time.monotonic() - started < 2


async def test_a_job_cancelled_while_queued_never_runs(cluster: Cluster, reactr: Reactr) -> None:
    attempts = Attempts()
    attempts.gate.clear()
    reactr.register("attempts", attempts)
    queue = cluster.queue("node")
    cluster.worker(queue, reactr, prefetch=1)
    first = await submit(queue, "attempts", b"1")
    second = await submit(queue, "attempts", b"2")
    await asyncio.sleep(0.3)  # the first runs and holds the only slot
    await queue.cancel(second.id)
    attempts.gate.set()
    assert (await outcome(queue, first.id)).value == b"ran 1"
    assert (await outcome(queue, second.id)).status is JobStatus.CANCELLED
    assert [result_id for result_id, _, _ in attempts.runs] == [first.id]


# --- callbacks -----------------------------------------------------------------------------------------


async def test_a_callback_is_sent_once_then_the_entry_acknowledged(cluster: Cluster, reactr: Reactr) -> None:
    reactr.register("hello-echo", RUNNABLES / "hello-echo.wasm")
    queue = cluster.queue("node")
    sent: list[tuple[str, str, bytes]] = []
    entry_pending: list[int] = []
    raw = redis.Redis.from_url(cluster.url)

    async def deliver(delivery: Delivery, record: JobRecord) -> None:
        entry_pending.append(int(raw.xpending(queue.stream("hello-echo"), GROUP)["pending"]))
        sent.append((str(delivery.job.callback), delivery.delivery_id, record.value))

    worker = cluster.worker(queue, reactr, deliver=deliver)
    record = await submit(queue, "hello-echo", b"cb", callback="http://127.0.0.1:9/hook")
    assert (await outcome(queue, record.id)).value == b"hello cb"  # readable before the callback is sent
    for _ in range(100):
        if worker.held == 0:
            break
        await asyncio.sleep(0.02)
    assert [(url, value) for url, _, value in sent] == [("http://127.0.0.1:9/hook", b"hello cb")]
    assert entry_pending == [1] and worker.held == 0  # acknowledged only after the callback
    assert int(raw.xpending(queue.stream("hello-echo"), GROUP)["pending"]) == 0


async def test_after_a_reclaim_a_stored_outcome_is_sent_again_not_run_again(cluster: Cluster, reactr: Reactr) -> None:
    attempts = Attempts()
    reactr.register("attempts", attempts)
    dead = cluster.queue("dead-node", visibility_timeout=0.3)
    record = await submit(dead, "attempts", b"x", callback="http://127.0.0.1:9/hook")
    [held] = await dead.consume(["attempts"], 1, 1.0)
    stored = record._replace(status=JobStatus.SUCCEEDED, started=time.time(), finished=time.time(), value=b"first")
    from reactr_wasm.cluster.queue import Outcome

    await dead.complete([Outcome(held, stored, ack=False)])  # stored; died before the callback went out
    sent: list[tuple[str, JobRecord]] = []

    async def deliver(delivery: Delivery, kept: JobRecord) -> None:
        sent.append((delivery.delivery_id, kept))

    live = cluster.queue("live-node", visibility_timeout=0.3)
    worker = cluster.worker(live, reactr, deliver=deliver)
    for _ in range(100):
        if sent and worker.held == 0:
            break
        await asyncio.sleep(0.02)
    assert sent == [(f"{held.entry}/2", stored)]
    assert attempts.runs == []


# --- Redis going away -----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_accepted_jobs_survive_a_redis_crash_with_aof_and_the_worker_recovers(reactr: Reactr) -> None:
    reactr.register("hello-echo", RUNNABLES / "hello-echo.wasm")
    server = RedisProcess(appendonly=True)
    cluster = Cluster(server.start().url)
    try:
        front, back = cluster.queue("front"), cluster.queue("back")
        accepted = [await submit(front, "hello-echo", f"job {i}".encode()) for i in range(50)]
        await asyncio.sleep(1.5)  # appendfsync everysec: what was acknowledged a second ago is on disk
        server.stop(signal.SIGKILL)  # a crash
        with pytest.raises(BackendUnavailable):
            await submit(front, "hello-echo", b"refused")
        worker = cluster.worker(back, reactr)
        await asyncio.sleep(0.5)  # the worker fails to reach Redis meanwhile, and backs off
        server.start()
        finished = await asyncio.gather(*(outcome(front, record.id, 20) for record in accepted))
        assert [record.value for record in finished] == [f"hello job {i}".encode() for i in range(50)]
        late = await submit(front, "hello-echo", b"late")  # and it goes on
        assert (await outcome(front, late.id)).value == b"hello late"
        assert worker.held == 0
    finally:
        await cluster.close()
        server.close()


@pytest.mark.slow
async def test_an_outcome_finished_while_redis_is_down_is_stored_when_it_returns(reactr: Reactr) -> None:
    attempts = Attempts()
    attempts.gate.clear()
    reactr.register("attempts", attempts)
    server = RedisProcess(appendonly=True)
    cluster = Cluster(server.start().url)
    try:
        front, back = cluster.queue("front"), cluster.queue("back")
        worker = cluster.worker(back, reactr)
        record = await submit(front, "attempts", b"x")
        for _ in range(100):
            if attempts.runs:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.2)  # the delivery reaches the AOF
        server.stop()  # Redis goes away while the job runs
        attempts.gate.set()  # the job ends: its outcome waits in the worker
        await asyncio.sleep(0.5)
        assert worker.held == 1
        server.start()
        assert (await outcome(front, record.id, 20)).value == b"ran x"
        for _ in range(100):
            if worker.held == 0:
                break
            await asyncio.sleep(0.05)
        assert worker.held == 0 and [attempt for _, attempt, _ in attempts.runs] == [1]
    finally:
        await cluster.close()
        server.close()


# --- many jobs, a node lost midway ------------------------------------------------------------------------


class Counted:
    """A Python runnable whose side effect is counted per result id, with the attempts it ran under."""

    def __init__(self) -> None:
        self.attempts: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    def __call__(self, job: Job, ctx: Any) -> bytes:
        assert isinstance(job, ClusterJob)
        with self.lock:
            self.attempts.setdefault(job.id, []).append(job.attempt)
        time.sleep(0.001)
        return b"done " + job.data


@pytest.mark.slow
async def test_every_accepted_job_answers_when_a_node_is_lost_midway(cluster: Cluster) -> None:
    counted = Counted()
    reactrs = [Reactr() for _ in range(4)]
    try:
        for reactr in reactrs:
            reactr.register("counted", counted, pool_size=4)
        nodes = [cluster.queue(f"node-{i}", visibility_timeout=0.5) for i in range(4)]
        workers = [cluster.worker(nodes[i], reactrs[i], prefetch=32) for i in range(3)]
        front = cluster.queue("front", visibility_timeout=0.5)
        records: list[JobRecord] = []
        for chunk in range(30):
            records += await asyncio.gather(*(submit(front, "counted", b"%d" % (chunk * 100 + i)) for i in range(100)))
            if chunk == 10:
                await workers[1].stop(0)  # node-1 is lost: what it holds stays pending
                cluster.worker(nodes[3], reactrs[3], prefetch=32)  # and a node comes back
        finished = await asyncio.gather(*(outcome(front, record.id, 30) for record in records))
        assert [r.value for r in finished] == [b"done %d" % i for i in range(3000)]
        assert set(counted.attempts) == {record.id for record in records}  # every side effect happened
        duplicated = {rid: attempts for rid, attempts in counted.attempts.items() if len(attempts) > 1}
        assert all(max(attempts) > 1 for attempts in duplicated.values())  # twice only after a reclaim
        assert len(duplicated) <= 32  # at most what the lost node held
    finally:
        for reactr in reactrs:
            reactr.close()
