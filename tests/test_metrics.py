"""``GET /metrics`` on a real server over real runnables: every count after jobs of every outcome.

Each test reads the exposition the way Prometheus does (``prometheus_client.parser``)
and checks the numbers a user would graph, after jobs that succeed, fail with their
own error, trap, time out, are cancelled or are refused with a full queue.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from reactr_wasm import Config, Reactr
from reactr_wasm.scheduler.stats import DURATION_BUCKETS, OUTCOMES
from reactr_wasm.server.app import SERVER, create_app
from reactr_wasm.server.metrics import METRICS
from tests.conftest import ROOT, RUNNABLES
from tests.test_server_api import Client, Start, answer, make_config, wasm
from tests.test_server_async import LONG, post, wait_status

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def server_config() -> Config:
    return make_config()


async def scrape(client: Client, headers: dict[str, str] | None = None) -> Samples:
    """Every sample of ``GET /metrics``, parsed as Prometheus parses it."""
    async with client.get("/metrics", headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def jobs(samples: Samples, runnable: str) -> dict[str, float | None]:
    return {outcome: value(samples, "reactr_jobs_total", runnable=runnable, outcome=outcome) for outcome in OUTCOMES}


def outcomes(**counts: int) -> dict[str, float]:
    """Every outcome's count: those given, 0 for the rest."""
    return {outcome: float(counts.get(outcome, 0)) for outcome in OUTCOMES}


async def test_jobs_are_counted_by_outcome(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    reactr.register("return-err", RUNNABLES / "return-err.wasm")
    wasm(reactr, "trap")
    wasm(reactr, "loop", "infinite-loop", timeout=0.2)
    wasm(reactr, "slow", timeout=30)
    client = await start()
    for _ in range(3):
        assert (await answer(client, "POST", "/do/echo?then=true", data=b"joe"))[:2] == (200, b"hello joe")
    assert (await answer(client, "POST", "/do/return-err?then=true"))[0] == 400  # the runnable's own RunErr
    assert (await answer(client, "POST", "/do/trap?then=true"))[0] == 500
    assert (await answer(client, "POST", "/do/loop?then=true"))[0] == 504
    result_id = await post(client, "slow", LONG)
    await wait_status(client, result_id, "running")
    assert (await answer(client, "DELETE", f"/then/{result_id}"))[0] == 204
    await counted(client, "slow", "cancelled")

    samples = await scrape(client)
    assert jobs(samples, "echo") == outcomes(succeeded=3)
    assert jobs(samples, "return-err") == outcomes(run_err=1)
    assert jobs(samples, "trap") == outcomes(failed=1)
    assert jobs(samples, "loop") == outcomes(timed_out=1)
    assert jobs(samples, "slow") == outcomes(cancelled=1)
    # Every run that ended a job is timed: 3 + 1 + 1 + 1 + 1, the timeout took its 0.2 s
    counts = {name: value(samples, "reactr_job_duration_seconds_count", runnable=name)
              for name in ("echo", "return-err", "trap", "loop", "slow")}  # fmt: skip
    assert counts == {"echo": 3, "return-err": 1, "trap": 1, "loop": 1, "slow": 1}
    assert value(samples, "reactr_job_duration_seconds_bucket", runnable="loop", le="0.1") == 0
    assert value(samples, "reactr_job_duration_seconds_bucket", runnable="loop", le="+Inf") == 1
    assert 0.2 <= (value(samples, "reactr_job_duration_seconds_sum", runnable="loop") or 0) < 5


async def counted(client: Client, runnable: str, outcome: str, count: int = 1) -> None:
    """Until /metrics counts ``count`` ``outcome`` jobs of ``runnable`` (a cancelled guest stops at its next tick)."""
    for _ in range(500):
        if value(await scrape(client), "reactr_jobs_total", runnable=runnable, outcome=outcome) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{runnable}: {count} {outcome} job(s) never counted")


async def test_a_full_queue_counts_rejected_jobs(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "slow", timeout=30, queue_size=1)
    client = await start()
    running = await post(client, "slow", LONG)
    await wait_status(client, running, "running")
    queued = await post(client, "slow", LONG)
    status, body, _ = await answer(client, "POST", "/do/slow", data=LONG)
    assert (status, body["message"]) == (503, "runnable 'slow': queue is full (1 jobs)")
    samples = await scrape(client)
    assert jobs(samples, "slow") == outcomes(rejected=1)
    assert value(samples, "reactr_queue_depth", runnable="slow") == 1
    assert value(samples, "reactr_worker_threads", runnable="slow") == 1
    for result_id in (queued, running):
        assert (await answer(client, "DELETE", f"/then/{result_id}"))[0] == 204


async def test_runs_inline_and_on_workers_and_their_waits(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start()
    sent, earned = 0, False
    while not earned and sent < 400:  # past the streak of fast runs that earns the inline path (32);
        earned = reactr.worker("echo").runs_inline  # a run slowed by a busy machine starts it again
        assert (await answer(client, "POST", "/do/echo?then=true", data=b"x"))[0] == 200
        sent += 1
    assert earned
    samples = await scrape(client)
    inline = value(samples, "reactr_runs_total", runnable="echo", where="inline") or 0
    worker = value(samples, "reactr_runs_total", runnable="echo", where="worker") or 0
    assert inline + worker == sent and inline >= 1 and worker >= 32
    # Only the jobs queued for a worker waited for one; every run is timed
    assert value(samples, "reactr_queue_wait_seconds_count", runnable="echo") == worker
    assert value(samples, "reactr_job_duration_seconds_count", runnable="echo") == sent
    buckets = [value(samples, "reactr_job_duration_seconds_bucket", runnable="echo", le=repr(bound))
               for bound in DURATION_BUCKETS]  # fmt: skip
    assert buckets == sorted(buckets)  # cumulative, as Prometheus wants
    assert jobs(samples, "echo") == outcomes(succeeded=sent)


async def test_pool_instances_and_recycles_after_a_trap(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "slow", timeout=30, pool_size=2, prewarm=True)
    wasm(reactr, "trap")
    client = await start()
    samples = await scrape(client)
    assert value(samples, "reactr_instances", runnable="slow", state="idle") == 2
    assert value(samples, "reactr_instances", runnable="slow", state="busy") == 0
    assert value(samples, "reactr_instance_recycles_total", runnable="trap", reason="trap") == 0

    result_id = await post(client, "slow", LONG)
    await wait_status(client, result_id, "running")
    samples = await scrape(client)
    assert value(samples, "reactr_instances", runnable="slow", state="idle") == 1
    assert value(samples, "reactr_instances", runnable="slow", state="busy") == 1
    assert (await answer(client, "DELETE", f"/then/{result_id}"))[0] == 204
    await counted(client, "slow", "cancelled")
    for _ in range(2):
        assert (await answer(client, "POST", "/do/trap?then=true"))[0] == 500

    samples = await scrape(client)
    assert value(samples, "reactr_instance_recycles_total", runnable="trap", reason="trap") == 2
    assert value(samples, "reactr_instances", runnable="trap", state="idle") == 0  # made again for the next job
    assert value(samples, "reactr_instance_recycles_total", runnable="slow", reason="cancelled") == 1
    assert value(samples, "reactr_instances", runnable="slow", state="idle") == 1
    assert value(samples, "reactr_instances", runnable="slow", state="busy") == 0


async def test_callback_deliveries_by_outcome(reactr: Reactr, start: Start) -> None:
    statuses = [200, 400]  # the second delivery is refused: a final answer, not retried

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=statuses.pop(0))

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    wasm(reactr, "echo")
    client = await start()
    async with TestServer(receiver, host="127.0.0.1") as hooks:
        url = quote(str(hooks.make_url("/hook")), safe="")
        for _ in range(2):
            assert (await answer(client, "POST", f"/do/echo?callback={url}", data=b"x"))[0] == 200
        callbacks = client.server.app[SERVER].callbacks
        for _ in range(500):
            if sum(callbacks.outcomes.values()) == 2:
                break
            await asyncio.sleep(0.01)
    samples = await scrape(client)
    delivered = {outcome: value(samples, "reactr_callback_deliveries_total", outcome=outcome)
                 for outcome in ("delivered", "failed", "cancelled", "crashed")}  # fmt: skip
    assert delivered == {"delivered": 1, "failed": 1, "cancelled": 0, "crashed": 0}
    assert value(samples, "reactr_callbacks_pending") == 0


async def test_result_store_items_and_bytes(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start()
    samples = await scrape(client)
    assert (value(samples, "reactr_result_store_items"), value(samples, "reactr_result_store_bytes")) == (0, 0)
    ids = [await post(client, "echo", b"x" * 1000) for _ in range(3)]
    for result_id in ids:
        assert (await answer(client, "GET", f"/then/{result_id}"))[0] == 200
    items, size = await client.server.app[SERVER].store.size()
    samples = await scrape(client)
    assert (value(samples, "reactr_result_store_items"), value(samples, "reactr_result_store_bytes")) == (3, size)
    assert items == 3 and size > 3000  # each record holds its 1006-byte value
    assert value(samples, "reactr_jobs_in_flight") == 0


async def test_counts_survive_a_reload_of_the_runnable(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start()
    assert (await answer(client, "POST", "/do/echo?then=true"))[0] == 200
    wasm(reactr, "echo")  # as the hot reload does: a new worker under the same name
    assert (await answer(client, "POST", "/do/echo?then=true"))[0] == 200
    assert jobs(await scrape(client), "echo") == outcomes(succeeded=2)  # a counter never goes down


async def test_metrics_need_the_token_like_the_job_api(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start(make_config(auth_tokens=["s3cret"]))
    status, body, headers = await answer(client, "GET", "/metrics")
    assert (status, body["code"], headers["WWW-Authenticate"]) == (401, 401, "Bearer")
    samples = await scrape(client, {"Authorization": "Bearer s3cret"})
    assert jobs(samples, "echo") == outcomes()
    async with client.get("/metrics", headers={"Authorization": "Bearer s3cret",
                                               "Accept": "application/openmetrics-text"}) as response:  # fmt: skip
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await response.text()).endswith("# EOF\n")


async def test_each_app_has_its_own_registry_not_the_global_one(reactr: Reactr) -> None:
    wasm(reactr, "echo")
    apps = [create_app(reactr), create_app(reactr)]  # the global registry would refuse the second's collectors
    for app in apps:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            assert (await answer(client, "POST", "/do/echo?then=true"))[0] == 200
            assert jobs(await scrape(client), "echo") == outcomes(succeeded=1 + apps.index(app))
    assert apps[0][METRICS].registry is not apps[1][METRICS].registry
    assert not [family for family in REGISTRY.collect() if family.name.startswith("reactr_")]


def documented_metrics() -> set[str]:
    """The metric names the README's Operate section lists."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Operate", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(reactr_[a-z_]+)", section))


async def test_the_readme_lists_every_metric_the_server_exports(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start()
    async with client.get("/metrics") as response:
        text = await response.text()
    families = [family for family in text_string_to_metric_families(text) if family.name.startswith("reactr_")]
    # The README names a counter as Prometheus exposes it, with _total
    exported = {family.name + ("_total" if family.type == "counter" else "") for family in families}
    assert len(exported) == 14
    assert exported <= documented_metrics()
