"""Redis mode when processes fail: real ``reactr-wasm serve --redis`` nodes and a real redis-server on loopback.

- A node killed (``kill -9``) while running a job: another node runs it again
  after the visibility timeout, and any node answers its result.
- 10,000 jobs over 3 nodes, one killed and started again midway: every accepted
  job answers, and a callback receiver counts each job's runs - one callback per
  job, more only for a job whose node died (its attempt says so).
- redis-server stopped (cleanly, or killed) and started again on its AOF while
  jobs are queued: no accepted job is lost, and the nodes recover by themselves.

Each node's config has a short visibility timeout, so a takeover comes within
a few seconds. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis
import redis.asyncio
from aiohttp import web

from reactr_wasm.cluster.queue import GROUP
from tests.conftest import wat_module
from tests.services import RedisProcess, ServeProcess, Service, free_port, redis_server

NAMESPACE = "reactr"
CONFIG = """\
[server]
max_results = 50000        # all 10,000 stay readable (the oldest go first past the bound)

[limits]
timeout = 3

[cluster]
visibility_timeout = 4     # a dead node's jobs are taken over within ~4-6 s
heartbeat = 0.5

[callbacks]
allow_private = true       # the receiver is on loopback
attempts = 20
backoff = 0.1
backoff_max = 1
"""
SLOW_JOB = b"600000000"  # slow.wat: ~0.4 s of guest loop on the dev machine (timeout 3 s), "done" at the end


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    runnables = tmp_path / "runnables"
    runnables.mkdir()
    for name in ("echo", "slow"):
        (runnables / f"{name}.wasm").write_bytes(wat_module(name))
    (tmp_path / "reactr.toml").write_text(CONFIG)
    return runnables


@contextlib.contextmanager
def nodes(count: int, folder: Path, redis_url: str) -> Iterator[list[ServeProcess]]:
    """``count`` nodes serving ``folder`` on one Redis, started in parallel; killed at exit."""
    config = folder.parent / "reactr.toml"
    args = ["--dir", folder, "--config", config, "--redis", redis_url, "--no-watch", "--log-level", "warning"]
    started = [ServeProcess(args, logs=folder.parent) for _ in range(count)]
    try:
        threads = [threading.Thread(target=node.start) for node in started]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for node in started:
            assert node.process is not None and node.process.poll() is None, node.log()
        yield started
    finally:
        for node in started:
            node.stop(signal.SIGKILL)


async def node_id(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(f"{url}/health") as response:
        return str((await response.json())["node"])


@dataclass(frozen=True)
class Call:
    result_id: str
    job_attempt: int
    delivery_id: str
    body: bytes


class CallbackReceiver:
    """An HTTP server on loopback, in a thread of its own, recording every callback POST it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.calls: list[Call] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _hook(self, request: web.Request) -> web.Response:
        headers = request.headers
        call = Call(
            headers["X-Reactr-Result-Id"], int(headers["X-Reactr-Job-Attempt"]), headers["X-Reactr-Delivery-Id"],
            await request.read(),
        )  # fmt: skip
        self.calls.append(call)
        return web.Response()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> CallbackReceiver:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def by_id(self) -> dict[str, list[Call]]:
        calls: dict[str, list[Call]] = {}
        for call in list(self.calls):
            calls.setdefault(call.result_id, []).append(call)
        return calls


async def eventually(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)


async def outcome(session: aiohttp.ClientSession, url: str, result_id: str, timeout: float) -> tuple[int, bytes]:
    """``GET /then/ID`` until it is final (not 202, nor 503 while Redis is away), for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        wait = max(0.1, min(5.0, deadline - time.monotonic()))
        async with session.get(f"{url}/then/{result_id}", params={"wait": f"{wait:.2f}"}) as response:
            body = await response.read()
            if response.status not in (202, 503) or time.monotonic() >= deadline:
                return response.status, body
        if response.status == 503:
            await asyncio.sleep(0.1)


# ---------------------------------------------------------------- a node killed while running a job


@pytest.mark.slow
async def test_a_job_whose_node_is_killed_completes_on_another_node(folder: Path) -> None:
    with redis_server() as service, nodes(2, folder, service.url) as (first, second), CallbackReceiver() as hooks:
        client = redis.Redis.from_url(service.url)
        async with aiohttp.ClientSession() as session:
            ids = {await node_id(session, node.url): node for node in (first, second)}
            async with session.post(f"{first.url}/do/slow", params={"callback": hooks.url}, data=SLOW_JOB) as answer:
                assert answer.status == 200
                result_id = answer.headers["X-Reactr-Result-Id"]
            running_on = b""
            deadline = time.monotonic() + 10
            while not running_on:  # the record names the node that runs the job
                running_on = client.hget(f"{NAMESPACE}:r:{result_id}", "o") or b""
                assert time.monotonic() < deadline, "the job did not start"
                await asyncio.sleep(0.01)
            victim = ids[running_on.decode()]
            survivor = second if victim is first else first
            victim.stop(signal.SIGKILL)
            killed = time.monotonic()

            status, body = await outcome(session, survivor.url, result_id, 30)
            assert (status, body) == (200, b"done"), body
            took = time.monotonic() - killed
            await eventually(lambda: hooks.calls, 10, "the callback")
        assert [(c.result_id, c.job_attempt, c.body) for c in hooks.calls] == [(result_id, 2, b"done")]
        assert 2.5 < took < 20  # after the visibility timeout (4 s from the last extension, ~1.3 s apart), not before
        client.close()


# ---------------------------------------------------------------- 10,000 jobs, a node killed midway


JOBS = 10_000
IN_FLIGHT = 48  # submits at once, over the nodes


class Submitter:
    """Submits jobs ``0 .. JOBS-1`` to ``echo`` with a callback, spread over the nodes; at job JOBS/2 it
    kills the last node (SIGKILL) as soon as it holds jobs, and starts it again. A submit a node refuses
    or cannot answer goes to the next node; ``accepted`` holds the jobs answered 200."""

    def __init__(self, cluster: list[ServeProcess], hook: str, redis_url: str) -> None:
        self.cluster, self.hook, self.redis_url = cluster, hook, redis_url
        self.accepted: dict[str, int] = {}  # result id -> job number
        self.lost_answers = 0  # submits whose connection broke after the request went out: maybe accepted, unseen
        self.next_job = 0
        self.restart: asyncio.Task[None] | None = None

    async def kill_and_restart(self) -> None:
        victim = self.cluster[-1]
        async with aiohttp.ClientSession() as session:
            consumer = (await node_id(session, victim.url)).encode()
        client = redis.asyncio.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # kill it while it holds jobs (read, not yet acknowledged)
            pending = await client.xpending(f"{NAMESPACE}:q:echo", GROUP)
            if any(entry["name"] == consumer and entry["pending"] for entry in pending["consumers"]):
                break
            await asyncio.sleep(0.002)
        await client.aclose()
        victim.stop(signal.SIGKILL)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(victim.start)

    async def lane(self, session: aiohttp.ClientSession, lane: int) -> None:
        while self.next_job < JOBS:
            number, self.next_job = self.next_job, self.next_job + 1
            if number == JOBS // 2:
                self.restart = asyncio.get_running_loop().create_task(self.kill_and_restart())
            for attempt in range(len(self.cluster) * 10):
                if await self.submit(session, self.cluster[(lane + number + attempt) % len(self.cluster)].url, number):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"job {number} was refused by every node, 10 times")

    async def submit(self, session: aiohttp.ClientSession, url: str, number: int) -> bool:
        try:
            params = {"callback": self.hook}
            async with session.post(f"{url}/do/echo", params=params, data=str(number).encode()) as answer:
                if answer.status == 200:
                    self.accepted[answer.headers["X-Reactr-Result-Id"]] = number
                    return True
                assert answer.status == 503, await answer.text()
        except aiohttp.ClientConnectorError:
            pass  # refused: nothing was sent
        except aiohttp.ClientError:
            self.lost_answers += 1
        return False


async def read_back(session: aiohttp.ClientSession, cluster: list[ServeProcess], accepted: dict[str, int]) -> list[str]:
    """``GET /then`` of every accepted job, spread over every node: what is not ``hello <number>``."""
    pending = iter(list(accepted.items()))

    async def lane(index: int) -> list[str]:
        wrong = []
        for result_id, number in pending:
            status, body = await outcome(session, cluster[index % len(cluster)].url, result_id, 10)
            if (status, body) != (200, f"hello {number}".encode()):
                wrong.append(f"{result_id}: {status} {body[:80]!r}")
        return wrong

    return [line for lines in await asyncio.gather(*(lane(index) for index in range(24))) for line in lines]


@pytest.mark.slow
async def test_10000_jobs_over_3_nodes_with_one_killed_and_restarted(folder: Path) -> None:
    with redis_server() as service, nodes(3, folder, service.url) as cluster, CallbackReceiver() as hooks:
        jobs = Submitter(cluster, hooks.url, service.url)
        started = time.monotonic()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as session:
            await asyncio.gather(*(jobs.lane(session, lane) for lane in range(IN_FLIGHT)))
            submitted = time.monotonic()
            assert jobs.restart is not None
            await asyncio.wait_for(jobs.restart, 30)
            await eventually(lambda: set(hooks.by_id()) >= set(jobs.accepted), 60, "a callback for every job")
            # The killed node held jobs (Submitter waits for that): another node takes them over once they
            # idle past the visibility timeout, even those whose 200 the killed node never sent.
            await eventually(lambda: any(call.job_attempt > 1 for call in hooks.calls), 30, "a takeover")
            called = time.monotonic()
            wrong = await read_back(session, cluster, jobs.accepted)  # the restarted node answers too
            read = time.monotonic()
        assert not wrong, (len(wrong), wrong[:5])

        assert len(jobs.accepted) == JOBS
        calls = hooks.by_id()
        for result_id, number in jobs.accepted.items():  # each job ran, and its callback says what it answered
            assert {call.body for call in calls[result_id]} == {f"hello {number}".encode()}
        unknown = set(calls) - set(jobs.accepted)
        assert len(unknown) <= jobs.lost_answers  # accepted by the killed node, which died before it answered
        repeated = {rid: sorted(call.job_attempt for call in runs) for rid, runs in calls.items() if len(runs) > 1}
        for result_id, attempts in repeated.items():  # more than one callback only after a takeover
            assert max(attempts) > 1 and len(set(attempts)) == len(attempts), (result_id, attempts)
        taken_over = sum(1 for runs in calls.values() if any(call.job_attempt > 1 for call in runs))
        assert taken_over > 0  # the killed node held jobs: another node ran them
        print(
            f"\n{JOBS} jobs: submitted in {submitted - started:.1f} s, all called back after {called - started:.1f} s,"
            f" read back in {read - called:.1f} s; {taken_over} taken over, {len(repeated)} called back more than"
            f" once, {jobs.lost_answers} answers lost, {len(unknown)} ids never answered"
        )


# ---------------------------------------------------------------- Redis restarted on its AOF


@pytest.fixture
def aof_redis() -> Iterator[RedisProcess]:
    process = RedisProcess(appendonly=True)
    try:
        process.start()
        yield process
    finally:
        process.close()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["shutdown", "killed"])
async def test_no_accepted_job_is_lost_when_redis_restarts_on_its_aof(
    folder: Path, aof_redis: RedisProcess, stop: signal.Signals
) -> None:
    service: Service = aof_redis.service
    with nodes(2, folder, service.url) as cluster:
        async with aiohttp.ClientSession() as session:
            accepted: list[str] = []
            for number in range(200):  # ~20 ms each: a queue that takes a few seconds to run
                async with session.post(f"{cluster[number % 2].url}/do/slow", data=b"30000000") as answer:
                    assert answer.status == 200, await answer.text()
                    accepted.append((await answer.json())["resultId"])
            with redis.Redis.from_url(service.url) as client:  # entries leave the stream once their outcome is stored
                unfinished = client.xlen(f"{NAMESPACE}:q:slow")
            assert unfinished > 50
            aof_redis.stop(stop)  # while most of them are still queued

            async with session.post(f"{cluster[0].url}/do/slow", data=b"1") as answer:
                assert answer.status == 503 and answer.headers.get("Retry-After"), await answer.text()
            await asyncio.sleep(1.5)  # the nodes go on running what they hold; their outcomes wait
            aof_redis.start()

            outcomes = await asyncio.gather(*(outcome(session, cluster[n % 2].url, rid, 60) for n, rid in
                                              enumerate(accepted)))  # fmt: skip
            assert Counter(outcomes) == {(200, b"done"): len(accepted)}
            for node in cluster:  # both recovered: they take new jobs
                async with session.post(f"{node.url}/do/echo", params={"then": "true"}, data=b"again") as answer:
                    assert (answer.status, await answer.read()) == (200, b"hello again")
