"""``serve --redis``: two server nodes with different runnables on one real redis-server.

Each node is the real aiohttp app over a Reactr of its own, on a loopback port,
as a separate ``serve`` process would be; the last test starts two real
``python -m reactr_wasm serve --redis`` processes.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reactr_wasm import Config, Reactr
from reactr_wasm.config import CallbackConfig, LimitsConfig, ServerConfig
from reactr_wasm.config.cluster import ClusterConfig
from reactr_wasm.errors import ConfigError
from reactr_wasm.scheduler.job import new_result_id
from reactr_wasm.server.app import SERVER, Server, create_app
from tests.conftest import ROOT, wat_module
from tests.services import RedisProcess, Service, free_port
from tests.test_registry import _modules_after
from tests.test_server_api import answer, wasm

pytestmark = pytest.mark.timeout(90)


class Node:
    """One server node: its Reactr, app and test client."""

    def __init__(self, reactr: Reactr, client: TestClient[Any, Any]) -> None:
        self.reactr, self.client = reactr, client

    @property
    def server(self) -> Server:
        return self.client.app[SERVER]  # type: ignore[index, no-any-return]

    async def beat(self) -> None:
        """Refresh this node's view of the live nodes now, rather than at its next heartbeat."""
        assert self.server.cluster is not None
        await self.server.cluster.nodes.beat()

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        return await answer(self.client, method, path, **kwargs)


class Cluster:
    """Nodes sharing one namespace of one Redis; each started with ``node(runnables...)``."""

    def __init__(self, url: str) -> None:
        self.url, self.namespace = url, f"s-{new_result_id()}"
        self.nodes: list[Node] = []

    def config(self, prefetch: int = 64, **server: Any) -> Config:
        server.setdefault("drain_timeout", 5.0)
        return Config(
            server=ServerConfig(**server),
            callbacks=CallbackConfig(allow_private=True, backoff=0.05, backoff_max=0.1),
            cluster=ClusterConfig(redis=self.url, namespace=self.namespace, heartbeat=0.2, prefetch=prefetch),
        )

    async def node(self, *runnables: str, announce: bool = True, prefetch: int = 64, **server: Any) -> Node:
        reactr = Reactr()
        for name in runnables:
            wasm(reactr, name, timeout=30.0)
        app = create_app(reactr, self.config(prefetch, **server))
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        node = Node(reactr, client)
        self.nodes.append(node)
        for each in self.nodes if announce else ():  # every node sees every other at once
            await each.beat()
        return node

    async def stop(self, node: Node) -> None:
        await node.client.close()  # drains: the node withdraws and stores what it holds
        node.reactr.close()
        self.nodes.remove(node)

    async def close(self) -> None:
        for node in list(reversed(self.nodes)):
            await self.stop(node)


@pytest.fixture
async def cluster(service: Service) -> AsyncIterator[Cluster]:
    made = Cluster(service.url)
    yield made
    await made.close()


async def status_of(node: Node, result_id: str, wanted: str, timeout: float = 10.0) -> dict[str, Any]:
    """``GET /jobs/ID`` on ``node`` until its status is ``wanted`` (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = await node.request("GET", f"/jobs/{result_id}")
        assert status == 200, body
        if body["status"] == wanted or time.monotonic() > deadline:
            assert body["status"] == wanted, body
            return body  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)


# --- any node answers -------------------------------------------------------------------------


async def test_a_job_submitted_on_a_is_read_on_b(cluster: Cluster) -> None:
    a, b = await cluster.node("echo"), await cluster.node()
    status, body, headers = await a.request("POST", "/do/echo", data=b"world")
    assert status == 200 and set(body) == {"resultId"}
    result_id = body["resultId"]
    assert headers["Location"] == f"/then/{result_id}"
    assert (await b.request("GET", f"/then/{result_id}?wait=10"))[:2] == (200, b"hello world")
    assert (await b.request("GET", f"/jobs/{result_id}"))[1]["status"] == "succeeded"


async def test_large_jobs_cross_nodes_whole(cluster: Cluster) -> None:
    """Bodies and results over the inline bound are kept apart from the scripts (test_redis_large_values.py)."""
    a, b = await cluster.node("echo"), await cluster.node()
    bodies = [bytes([i]) * (256 << 10) + b"\xff" * i for i in range(3)]
    taken = [(await a.request("POST", "/do/echo", data=body))[1]["resultId"] for body in bodies]  # A runs them
    queued = [(await b.request("POST", "/do/echo", data=body))[1]["resultId"] for body in bodies]  # B queues them
    for result_id, body in [*zip(taken, bodies, strict=True), *zip(queued, bodies, strict=True)]:
        assert (await b.request("GET", f"/then/{result_id}?wait=10"))[:2] == (200, b"hello " + body)
    status, answer_body, _ = await b.request("POST", "/do/echo?then=true", data=bodies[2])  # through the queue
    assert (status, answer_body) == (200, b"hello " + bodies[2])
    raw = redis.Redis.from_url(cluster.url)
    kept = {kind: len(list(raw.scan_iter(f"{cluster.namespace}:{kind}:*"))) for kind in ("p", "in", "d")}
    assert kept == {"p": 0, "in": 0, "d": 7}  # payloads gone with their jobs; each result's value kept apart
    raw.close()


async def test_a_node_runs_the_jobs_it_accepts_while_it_has_room_and_queues_the_rest(cluster: Cluster) -> None:
    a = await cluster.node("slow", prefetch=2)  # room for 2: one taken at submit, one for its read
    raw = redis.Redis.from_url(cluster.url)
    stream = f"{cluster.namespace}:q:slow"

    def holders() -> list[str]:
        return [row["consumer"].decode() for row in raw.xpending_range(stream, "reactr", "-", "+", 10)]

    async def until(check: Any, what: str) -> None:
        deadline = time.monotonic() + 10
        while not check():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.01)

    assert a.server.cluster is not None
    worker = a.server.cluster.worker
    ids = [(await a.request("POST", "/do/slow", data=b"2000000000"))[1]["resultId"]]  # ~1.4 s
    assert holders() == [a.server.node_id]  # taken by A in its submit: held before the 200, no read
    ids.append((await a.request("POST", "/do/slow", data=b"2000000000"))[1]["resultId"])
    await until(lambda: worker.held == 2, "A reads the second job: the room its read kept")
    ids.append((await a.request("POST", "/do/slow", data=b"2000000000"))[1]["resultId"])
    await asyncio.sleep(0.2)
    assert worker.held == 2 and holders() == [a.server.node_id] * 2  # A is full: the third waits, unread
    assert raw.xlen(stream) == 3

    b = await cluster.node("slow")
    await until(lambda: b.server.node_id in holders(), "B reads the third job")
    assert holders().count(a.server.node_id) <= 2
    for result_id in ids:
        assert (await b.request("GET", f"/then/{result_id}?wait=20"))[:2] == (200, b"done")
    raw.close()


async def test_concurrent_submits_take_no_more_than_the_room_a_node_has(cluster: Cluster) -> None:
    a = await cluster.node("slow", prefetch=4)
    raw = redis.Redis.from_url(cluster.url)
    assert a.server.cluster is not None
    answers = await asyncio.gather(*(a.request("POST", "/do/slow", data=b"2000000000") for _ in range(12)))
    await asyncio.sleep(0.1)  # the jobs taken at submit start right after their answers
    assert all(status == 200 for status, _, _ in answers)
    held = raw.xpending_range(f"{cluster.namespace}:q:slow", "reactr", "-", "+", 20)
    assert a.server.cluster.worker.held <= 4 and len(held) <= 4, len(held)  # the rest wait in the stream
    raw.close()


async def test_then_true_for_a_runnable_only_another_node_has_goes_through_the_queue(cluster: Cluster) -> None:
    a, b = await cluster.node("echo"), await cluster.node("slow")
    status, body, _ = await b.request("POST", "/do/echo?then=true", data=b"from b")
    assert (status, body) == (200, b"hello from b")
    assert a.server.cluster is not None and a.server.cluster.worker.held == 0  # A ran it, acknowledged
    assert redis.Redis.from_url(cluster.url).xlen(f"{cluster.namespace}:q:echo") == 0


async def test_a_request_job_carries_its_request_through_the_queue(cluster: Cluster) -> None:
    await cluster.node("request-dump")
    b = await cluster.node()
    headers = {"X-Test": "sent on b", "X-Request-Id": "req-42"}
    path = "/do/request-dump?h=x-test&then=true"
    status, body, answered = await b.request("POST", path, data=b"body", headers=headers)
    assert status == 200, body
    assert body == b"POST /do/request-dump?h=x-test&then=true req-42\nsent on b\nbody"
    assert answered["X-Dump"] == "yes"


async def test_a_local_then_true_job_past_max_wait_is_readable_on_every_node(cluster: Cluster) -> None:
    a, b = await cluster.node("slow", max_wait=0.2), await cluster.node()
    status, body, _ = await a.request("POST", "/do/slow?then=true", data=b"2000000000")  # ~1.4 s
    assert status == 202 and body["status"] == "running"
    assert (await b.request("GET", f"/then/{body['resultId']}?wait=20"))[:2] == (200, b"done")


# --- refusals ---------------------------------------------------------------------------------


async def test_a_runnable_no_live_node_serves_is_refused_at_submit(cluster: Cluster) -> None:
    a, b = await cluster.node("echo"), await cluster.node()
    status, body, headers = await b.request("POST", "/do/nowhere", data=b"x")
    assert (status, body) == (404, {"code": 404, "message": "runnable 'nowhere' not found"})
    assert headers["X-Reactr-Error"] == "RunnableNotFound"
    assert (await b.request("POST", "/do/echo", data=b"x"))[0] == 200
    await cluster.stop(a)  # withdraws: B stops counting it at its next beat
    await b.beat()
    assert (await b.request("POST", "/do/echo", data=b"x"))[:2] == (
        404, {"code": 404, "message": "runnable 'echo' not found"}
    )  # fmt: skip


# --- cancel -----------------------------------------------------------------------------------


async def test_delete_on_a_cancels_a_job_running_on_b(cluster: Cluster) -> None:
    a, b = await cluster.node("echo"), await cluster.node("infinite-loop")
    status, body, _ = await a.request("POST", "/do/infinite-loop", data=b"")
    assert status == 200
    result_id = body["resultId"]
    await status_of(a, result_id, "running")
    assert (await a.request("DELETE", f"/then/{result_id}"))[0] == 204
    assert (await status_of(b, result_id, "cancelled"))["error"]["code"] == 409
    assert (await a.request("GET", f"/then/{result_id}"))[0] == 409
    assert b.server.cluster is not None and b.server.cluster.worker.held == 0
    assert (await a.request("DELETE", f"/then/{result_id}"))[0] == 204  # finished: forgotten
    assert (await b.request("GET", f"/jobs/{result_id}"))[0] == 404


async def test_delete_on_b_cancels_a_then_true_job_kept_on_a(cluster: Cluster) -> None:
    a, b = await cluster.node("infinite-loop", max_wait=0.2), await cluster.node()
    waiting = asyncio.create_task(a.request("POST", "/do/infinite-loop?then=true", data=b""))
    status, body, _ = await waiting  # 202 once it outlasts max_wait: stored in Redis from then on
    assert status == 202
    assert (await b.request("DELETE", f"/then/{body['resultId']}"))[0] == 204
    assert (await status_of(b, body["resultId"], "cancelled"))["error"]["code"] == 409


# --- Idempotency-Key --------------------------------------------------------------------------


async def test_an_idempotency_key_binds_across_nodes(cluster: Cluster) -> None:
    a, b = await cluster.node("echo"), await cluster.node()
    key = {"Idempotency-Key": f"order-{new_result_id()}"}
    status, first, headers = await a.request("POST", "/do/echo", data=b"once", headers=key)
    assert status == 200 and "Idempotent-Replayed" not in headers
    status, again, headers = await b.request("POST", "/do/echo", data=b"once", headers=key)
    assert (status, again, headers["Idempotent-Replayed"]) == (200, first, "true")
    status, refused, _ = await b.request("POST", "/do/echo", data=b"another body", headers=key)
    assert status == 422 and "already used for a different request" in refused["message"]
    assert (await b.request("GET", f"/then/{first['resultId']}?wait=10"))[1] == b"hello once"


# --- callbacks --------------------------------------------------------------------------------


async def test_a_callback_carries_the_job_attempt_and_its_delivery_id(cluster: Cluster) -> None:
    calls: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await calls.put((dict(request.headers), await request.read()))
        return web.Response()

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    async with TestServer(receiver, host="127.0.0.1") as hooks:
        await cluster.node("echo")
        b = await cluster.node()
        url = quote(str(hooks.make_url("/hook")), safe="")
        status, body, headers = await b.request("POST", f"/do/echo?callback={url}", data=b"cb")
        assert (status, body) == (200, b"")
        delivered, payload = await asyncio.wait_for(calls.get(), 10)
        assert payload == b"hello cb"
        assert delivered["X-Reactr-Result-Id"] == headers["X-Reactr-Result-Id"]
        assert (delivered["X-Reactr-Attempt"], delivered["X-Reactr-Job-Attempt"]) == ("1", "1")
        assert re.fullmatch(r"\d+-\d+/1", delivered["X-Reactr-Delivery-Id"])  # the stream entry, the attempt
        await asyncio.sleep(0.3)
        assert calls.empty()  # once per outcome


# --- Redis away -------------------------------------------------------------------------------


async def test_without_redis_submits_answer_503_and_the_node_recovers_by_itself() -> None:
    process = RedisProcess()
    process.start()
    cluster = Cluster(process.service.url)
    try:
        a = await cluster.node("echo")
        known = (await a.request("POST", "/do/echo", data=b"before"))[1]["resultId"]
        process.stop()
        status, body, headers = await a.request("POST", "/do/echo", data=b"x")
        assert (status, body["code"], headers["Retry-After"]) == (503, 503, "1")
        assert (await a.request("GET", f"/then/{known}"))[0] == 503
        assert (await a.request("GET", f"/jobs/{known}"))[0] == 503
        assert (await a.request("DELETE", f"/then/{known}"))[0] == 503
        for then in ("then=true", "then=1&lang=en"):  # a runnable served here runs here: no Redis needed
            assert (await a.request("POST", f"/do/echo?{then}", data=b"here"))[:2] == (200, b"hello here")
        process.start()  # the same port; no persistence: a new, empty Redis
        deadline = time.monotonic() + 20
        while (status := (await a.request("POST", "/do/echo", data=b"after"))[0]) != 200:
            assert status == 503 and time.monotonic() < deadline
            await asyncio.sleep(0.1)
        status, body, _ = await a.request("POST", "/do/echo?then=true", headers={"Idempotency-Key": "k"}, data=b"q")
        assert (status, body) == (200, b"hello q")  # through the queue: the worker took jobs again
    finally:
        await cluster.close()
        process.close()


async def test_a_full_redis_answers_503_and_nothing_is_half_queued(cluster: Cluster) -> None:
    """A Redis at its ``maxmemory`` with ``noeviction`` refuses writes (docs/cluster.md, "When Redis goes away")."""
    a = await cluster.node("echo")
    raw = redis.Redis.from_url(cluster.url)
    try:
        raw.config_set("maxmemory", 1)
        for body in (b"small", b"large" * 10_000):  # inline, and staged beside the script
            status, answered, headers = await a.request("POST", "/do/echo", data=body)
            assert (status, answered["code"], headers["Retry-After"]) == (503, 503, "1"), answered
    finally:
        raw.config_set("maxmemory", 0)
    assert raw.xlen(f"{cluster.namespace}:q:echo") == 0 and list(raw.scan_iter(f"{cluster.namespace}:in:*")) == []
    status, answered, _ = await a.request("POST", "/do/echo", data=b"large" * 10_000)
    assert status == 200
    assert (await a.request("GET", f"/then/{answered['resultId']}?wait=10"))[:2] == (200, b"hello " + b"large" * 10_000)
    raw.close()


async def test_a_node_started_before_its_redis_answers_503_then_serves() -> None:
    process = RedisProcess()  # its port is chosen; the server is not started yet
    cluster = Cluster(process.service.url)
    try:
        a = await cluster.node("echo", announce=False)  # starts: heartbeat and worker retry in the background
        health = (await a.request("GET", "/health"))[:2]
        assert health == (200, {"status": "degraded", "node": a.server.node_id, "runnables": ["echo"],
                                "redis": "unreachable"})  # fmt: skip
        status, body, headers = await a.request("POST", "/do/echo", data=b"x")
        assert (status, headers["Retry-After"]) == (503, "1")
        assert body["message"] == "the job store is unavailable; retry later"
        process.start()
        deadline = time.monotonic() + 20
        while (answered := await a.request("POST", "/do/echo", data=b"late"))[0] != 200:
            assert answered[0] == 503 and time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert (await a.request("GET", f"/then/{answered[1]['resultId']}?wait=10"))[:2] == (200, b"hello late")
        await a.beat()
        assert (await a.request("GET", "/health"))[1] | {"node": "-"} == {
            "status": "ok", "node": "-", "runnables": ["echo"], "redis": "ok"}  # fmt: skip
    finally:
        await cluster.close()
        process.close()


# --- health and draining ----------------------------------------------------------------------


async def test_health_shows_the_node_id_it_announces(cluster: Cluster) -> None:
    a = await cluster.node("echo", "slow")
    status, health, _ = await a.request("GET", "/health")
    assert (status, health["status"], health["runnables"]) == (200, "ok", ["echo", "slow"])
    assert health["node"] == a.server.node_id and health["node"].rsplit("-", 2)[1] == str(os.getpid())
    assert redis.Redis.from_url(cluster.url).exists(f"{cluster.namespace}:node:{health['node']}")
    await a.request("POST", "/do/echo", data=b"x")
    status, metrics, _ = await a.request("GET", "/metrics")
    assert status == 200 and b"reactr_cluster_jobs_held " in metrics
    assert b'reactr_stream_lag{runnable="echo"}' in metrics


async def test_a_draining_node_finishes_and_stores_what_it_holds(cluster: Cluster) -> None:
    a, b = await cluster.node("echo"), await cluster.node("slow")
    result_id = (await a.request("POST", "/do/slow", data=b"1000000000"))[1]["resultId"]  # ~0.7 s
    await status_of(a, result_id, "running")
    await cluster.stop(b)
    assert (await a.request("GET", f"/then/{result_id}"))[:2] == (200, b"done")  # stored before B stopped
    assert not redis.Redis.from_url(cluster.url).exists(f"{cluster.namespace}:node:{b.server.node_id}")


# --- two real processes -----------------------------------------------------------------------


def _serve(folder: Path, port: int, url: str, log: Path) -> subprocess.Popen[bytes]:
    """``python -m reactr_wasm serve --dir FOLDER --port PORT --redis URL``, its log in ``log``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "reactr_wasm", "serve", "--dir", str(folder), "--port", str(port), "--redis", url]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def _listening(process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    """Wait for the node's listening line (bounded)."""
    deadline = time.monotonic() + timeout
    while "listening on" not in log.read_text(errors="replace"):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.05)


def test_two_serve_processes_share_one_redis(service: Service, tmp_path: Path) -> None:
    folders = {"a": tmp_path / "a", "b": tmp_path / "b"}
    for folder in folders.values():
        folder.mkdir()
    (folders["a"] / "echo.wasm").write_bytes(wat_module("echo"))
    url = service.url.rsplit("/", 1)[0] + "/3"  # a database of its own
    ports = {name: free_port() for name in folders}
    logs = {name: tmp_path / f"{name}.log" for name in folders}
    processes = {name: _serve(folder, ports[name], url, logs[name]) for name, folder in folders.items()}
    try:
        for name, process in processes.items():
            _listening(process, logs[name])

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                a, b = (f"http://127.0.0.1:{ports[name]}" for name in ("a", "b"))
                async with session.get(f"{b}/health") as response:
                    health = await response.json()
                assert (health["runnables"], health["node"].rsplit("-", 2)[1]) == ([], str(processes["b"].pid))
                async with session.post(f"{a}/do/echo", data=b"node a") as response:
                    assert response.status == 200
                    result_id = (await response.json())["resultId"]
                async with session.get(f"{b}/then/{result_id}?wait=10") as response:
                    assert (response.status, await response.read()) == (200, b"hello node a")

        asyncio.run(scenario())
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    assert all(process.returncode == 0 for process in processes.values())
    keys = redis.Redis.from_url(url)
    assert not keys.keys("reactr:node:*")  # both withdrew on shutdown
    assert keys.zcard("reactr:nodes") == 0


def test_a_job_timeout_longer_than_the_visibility_timeout_is_refused(reactr: Reactr) -> None:
    config = Config(limits=LimitsConfig(timeout=45), cluster=ClusterConfig(redis="redis://127.0.0.1:1/0"))
    with pytest.raises(ConfigError, match=r"visibility_timeout must be longer .* \(limits.timeout = 45 s\)"):
        create_app(reactr, config)  # as after `serve --redis URL` over a config file read without it


@pytest.mark.parametrize("redis_url", [None, "redis://127.0.0.1:1/0"])
def test_only_redis_mode_loads_redis(redis_url: str | None) -> None:
    code = (
        "from reactr_wasm import Config, Reactr\n"
        "from reactr_wasm.config.cluster import ClusterConfig\n"
        "from reactr_wasm.server.app import create_app\n"
        "with Reactr() as reactr:\n"
        f"    create_app(reactr, Config(cluster=ClusterConfig(redis={redis_url!r})))"
    )
    modules = _modules_after(code)
    assert ("redis" in modules, "reactr_wasm.server.cluster_jobs" in modules) == (redis_url is not None,) * 2
