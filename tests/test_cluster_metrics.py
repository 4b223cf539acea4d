"""Redis mode's metrics (``server/cluster_metrics.py``) over a real redis-server, queue and cluster worker.

The collector is registered the way ``serve`` registers it in Redis mode, one
line: ``app[METRICS].add_cluster(worker)``; the numbers come back through a real
``GET /metrics``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reactr_wasm import Reactr
from reactr_wasm.backends.records import JobStatus
from reactr_wasm.cluster.worker import ClusterWorker
from reactr_wasm.server.app import create_app
from reactr_wasm.server.metrics import METRICS
from tests.services import RedisProcess, Service
from tests.test_cluster_worker import Attempts, Cluster, outcome, submit
from tests.test_metrics import documented_metrics, scrape, value

pytestmark = pytest.mark.timeout(60)

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def cluster(service: Service) -> AsyncIterator[Cluster]:
    made = Cluster(service.url)
    yield made
    await made.close()


async def serving(reactr: Reactr, worker: ClusterWorker) -> Client:
    app = create_app(reactr)
    app[METRICS].add_cluster(worker)  # what serve does in Redis mode
    client: Client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_stream_lag_and_pending_follow_the_queue(cluster: Cluster, reactr: Reactr) -> None:
    reactr.register("attempts", Attempts())
    reactr.register("idle", Attempts())  # served here, nothing ever queued for it
    front, other = cluster.queue("front"), cluster.queue("other-node")
    client = await serving(reactr, ClusterWorker(front, reactr))  # not started: it takes nothing
    try:
        samples = await scrape(client)
        assert value(samples, "reactr_stream_lag", runnable="idle") == 0
        for _ in range(5):
            await submit(front, "attempts", b"x")
        samples = await scrape(client)
        assert value(samples, "reactr_stream_lag", runnable="attempts") == 5
        assert value(samples, "reactr_stream_pending", runnable="attempts") == 0
        taken = await other.consume(["attempts"], 2, 1.0)  # another node takes two and holds them
        assert len(taken) == 2
        samples = await scrape(client)
        assert value(samples, "reactr_stream_lag", runnable="attempts") == 3
        assert value(samples, "reactr_stream_pending", runnable="attempts") == 2
        assert value(samples, "reactr_cluster_jobs_held") == 0  # this node holds none of them
    finally:
        await client.close()


async def test_a_reclaim_is_counted(cluster: Cluster, reactr: Reactr) -> None:
    attempts = Attempts()
    reactr.register("attempts", attempts)
    dead = cluster.queue("dead-node", visibility_timeout=0.3)
    record = await submit(dead, "attempts", b"a")
    assert len(await dead.consume(["attempts"], 1, 1.0)) == 1  # then the node dies holding it
    live = cluster.queue("live-node", visibility_timeout=0.3)
    client = await serving(reactr, cluster.worker(live, reactr))
    try:
        assert (await outcome(live, record.id)).value == b"ran a"
        samples = await scrape(client)
        assert value(samples, "reactr_reclaims_total") == 1
        assert value(samples, "reactr_dead_letters_total") == 0
        assert value(samples, "reactr_jobs_total", runnable="attempts", outcome="succeeded") == 1
        assert value(samples, "reactr_stream_lag", runnable="attempts") == 0
        assert value(samples, "reactr_stream_pending", runnable="attempts") == 0
        assert [attempt for _, attempt, _ in attempts.runs] == [2]
    finally:
        await client.close()


async def test_a_job_given_up_is_counted_as_a_dead_letter(cluster: Cluster, reactr: Reactr) -> None:
    attempts = Attempts()
    reactr.register("attempts", attempts)
    first, second = (cluster.queue(name, visibility_timeout=0.3) for name in ("first-dead", "second-dead"))
    record = await submit(first, "attempts", b"lost")
    assert len(await first.consume(["attempts"], 1, 1.0)) == 1  # delivery 1, then its node dies
    await asyncio.sleep(0.35)
    assert len(await second.reclaim(["attempts"], 1)) == 1  # delivery 2, and that node dies too
    await asyncio.sleep(0.35)
    live = cluster.queue("live-node", visibility_timeout=0.3, max_deliveries=2)
    client = await serving(reactr, cluster.worker(live, reactr))  # delivery 3 is past max_deliveries
    try:
        finished = await outcome(live, record.id)
        assert finished.status is JobStatus.FAILED
        assert "gave up after 2 deliveries" in (finished.error_message or "")
        samples = await scrape(client)
        assert value(samples, "reactr_reclaims_total") == 1
        assert value(samples, "reactr_dead_letters_total") == 1
        assert attempts.runs == []  # never run here
    finally:
        await client.close()


async def test_with_redis_away_the_stream_metrics_are_left_out_and_the_rest_still_answers(reactr: Reactr) -> None:
    reactr.register("attempts", Attempts())
    process = RedisProcess()
    made = Cluster(process.start().url)
    try:
        queue = made.queue("node")
        await submit(queue, "attempts", b"x")
        client = await serving(reactr, ClusterWorker(queue, reactr))
        try:
            assert value(await scrape(client), "reactr_stream_lag", runnable="attempts") == 1
            process.stop(signal.SIGKILL)
            samples = await scrape(client)
            assert value(samples, "reactr_stream_lag", runnable="attempts") is None
            assert value(samples, "reactr_reclaims_total") == 0
            assert value(samples, "reactr_jobs_total", runnable="attempts", outcome="succeeded") == 0
        finally:
            await client.close()
    finally:
        await made.close()
        process.close()


async def test_the_readme_lists_the_cluster_metrics(cluster: Cluster, reactr: Reactr) -> None:
    reactr.register("attempts", Attempts())
    client = await serving(reactr, ClusterWorker(cluster.queue("node"), reactr))
    try:
        names = {name for name, _ in await scrape(client)}
    finally:
        await client.close()
    cluster_names = {"reactr_reclaims_total", "reactr_dead_letters_total", "reactr_cluster_jobs_held",
                     "reactr_stream_lag", "reactr_stream_pending"}  # fmt: skip
    assert cluster_names <= names
    assert cluster_names <= documented_metrics()
