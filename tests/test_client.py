"""``reactr_wasm.client`` against a real server: every method, sync and async, and each error it maps."""

from __future__ import annotations

import asyncio
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from aiohttp import web

from reactr_wasm import Config, ExecutionError, JobCancelled, JobTimeout, QueueFull, Reactr, RunErr, RunnableNotFound
from reactr_wasm.client import (
    AsyncClient,
    Client,
    ConnectionFailed,
    JobPending,
    RequestRejected,
    ResultNotFound,
    ServerUnavailable,
    Unauthorized,
    verify_signature,
)
from reactr_wasm.config import CallbackConfig, ServerConfig
from reactr_wasm.server.app import create_app
from tests.conftest import ROOT, RUNNABLES
from tests.services import free_port
from tests.test_server_api import wasm

UNKNOWN_ID = "0123456789abcdefghijklmn"
TOKEN = "s3cret-token"


def make_config(*, callbacks: dict[str, Any] | None = None, **server: Any) -> Config:
    server.setdefault("drain_timeout", 1.0)
    return Config(server=ServerConfig(**server), callbacks=CallbackConfig(**(callbacks or {"allow_private": True})))


class Loop:
    """An event loop on a thread of its own: servers run there while a test blocks on a client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Servers:
    """Real aiohttp apps on loopback ports, run on a ``Loop``; cleaned up (drained) at the end."""

    def __init__(self, loop: Loop) -> None:
        self.loop, self.runners = loop, list[web.AppRunner]()

    def start(self, app: web.Application) -> str:
        async def start() -> str:
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self.runners.append(runner)
            return f"http://127.0.0.1:{runner.addresses[0][1]}"

        url: str = self.loop.run(start())
        return url

    def close(self) -> None:
        for runner in reversed(self.runners):
            self.loop.run(runner.cleanup())


@pytest.fixture
def servers(reactr: Reactr) -> Iterator[Servers]:  # reactr: its scheduler outlives the servers
    loop = Loop()
    hosted = Servers(loop)
    try:
        yield hosted
    finally:
        hosted.close()
        loop.close()


@pytest.fixture
def serve(reactr: Reactr, servers: Servers) -> Callable[..., str]:
    """``serve(config=None) -> base URL`` of the HTTP app over ``reactr``."""
    return lambda config=None: servers.start(create_app(reactr, config or make_config()))


class Blocking:
    """An ``AsyncClient`` driven from a blocking test: each call awaited on a loop of its own."""

    def __init__(self, client: AsyncClient, loop: Loop) -> None:
        self.client, self.loop = client, loop

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        return lambda *args, **kwargs: self.loop.run(method(*args, **kwargs))


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """``connect(base_url, **options)``: a ``Client``, or an ``AsyncClient`` behind ``Blocking``."""
    loop = Loop() if request.param == "async" else None
    opened: list[Any] = []

    def open_client(base_url: str, **options: Any) -> Any:
        client: Any = Client(base_url, **options) if loop is None else Blocking(AsyncClient(base_url, **options), loop)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()
    if loop is not None:
        loop.close()


def wait_status(client: Any, result_id: str, wanted: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (status := client.status(result_id)["status"]) != wanted:
        assert time.monotonic() < deadline, f"{result_id} is {status}, never {wanted}"
        time.sleep(0.005)


# --- results --------------------------------------------------------------------------------


def test_do_sends_bytes_text_or_json_and_returns_the_result_bytes(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "echo")
    reactr.register("info", lambda job, ctx: {"got": job.payload().decode()})  # answers JSON
    client = connect(serve())
    assert client.do("echo", b"\x00\xff bytes") == b"hello \x00\xff bytes"
    assert client.do("echo", "jöe") == "hello jöe".encode()
    assert client.do("echo", {"name": "joe", "n": [1, 2]}) == b'hello {"name":"joe","n":[1,2]}'
    assert client.do("echo") == b"hello "
    assert client.do("info", "x") == b'{"got":"x"}'  # a JSON answer is still its bytes


def test_a_rust_runnable_answers_over_the_client(reactr: Reactr, serve: Any, connect: Any) -> None:
    reactr.register("hello-echo", str(RUNNABLES / "hello-echo.wasm"))
    assert connect(serve()).do("hello-echo", "my name is joe") == b"hello my name is joe"


def test_do_async_then_and_status(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "echo")
    client = connect(serve())
    result_id = client.do_async("echo", "later")
    assert len(result_id) == 24
    assert client.then(result_id) == b"hello later"
    assert client.then(result_id, wait=1) == b"hello later"  # results stay readable
    status = client.status(result_id)
    assert (status["id"], status["job"], status["status"], status["error"]) == (result_id, "echo", "succeeded", None)
    assert status["created"] <= status["started"] <= status["finished"] <= time.time()


def test_do_keeps_waiting_when_the_server_answers_202_after_max_wait(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "slow")
    client = connect(serve(make_config(max_wait=0.05)))
    started = time.monotonic()
    assert client.do("slow", b"700000000") == b"done"  # 0.3-0.5 s: a 202, then GET /then (202 again, 200)
    assert time.monotonic() - started > 0.1


def test_then_with_a_wait_raises_job_pending_with_the_status(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "loop", "infinite-loop", timeout=30)
    client = connect(serve(make_config(max_wait=0.2)))
    result_id = client.do_async("loop")
    started = time.monotonic()
    with pytest.raises(JobPending) as pending:
        client.then(result_id, wait=0.5)  # longer than max_wait: the client asks again until 0.5 s
    assert 0.45 < time.monotonic() - started < 3
    assert (pending.value.result_id, pending.value.status) == (result_id, "running")
    with pytest.raises(JobPending):
        client.then(result_id, wait=0)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="wait must be a number of seconds"):
            client.then(result_id, wait=bad)
    client.cancel(result_id)


def test_idempotency_key_gives_the_same_job(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "echo")
    client = connect(serve())
    first = client.do_async("echo", "once", idempotency_key="order-17")
    assert client.do_async("echo", "once", idempotency_key="order-17") == first
    assert client.do_async("echo", "once", idempotency_key="order-18") != first
    assert client.do("echo", "once", idempotency_key="order-17") == b"hello once"


def test_headers_go_on_every_request(reactr: Reactr, serve: Any, servers: Servers, connect: Any) -> None:
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Trace", ""))
        return web.json_response({"resultId": UNKNOWN_ID})

    app = web.Application()
    app.router.add_post("/do/{job}", record)
    client = connect(servers.start(app), headers={"X-Trace": "t-1"})
    assert client.do_async("anything") == UNKNOWN_ID and seen == ["t-1"]


async def test_the_async_client_runs_jobs_concurrently(reactr: Reactr, serve: Any) -> None:
    wasm(reactr, "echo", pool_size=2)
    async with AsyncClient(serve()) as client:
        answers = await asyncio.gather(*(client.do("echo", str(n)) for n in range(8)))
        assert answers == [f"hello {n}".encode() for n in range(8)]
        result_id = await client.do_async("echo", "x")
        assert (await client.then(result_id), (await client.status(result_id))["status"]) == (b"hello x", "succeeded")
        await client.cancel(result_id)
        with pytest.raises(ResultNotFound):
            await client.then(result_id)


# --- cancel ---------------------------------------------------------------------------------


def test_cancel_stops_the_job_and_a_second_cancel_forgets_it(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "loop", "infinite-loop", timeout=30)
    client = connect(serve())
    result_id = client.do_async("loop")
    wait_status(client, result_id, "running")
    started = time.monotonic()
    client.cancel(result_id)
    assert time.monotonic() - started < 1
    with pytest.raises(JobCancelled):  # kept, as cancelled
        client.then(result_id)
    status = client.status(result_id)
    assert (status["status"], status["error"]) == ("cancelled", {"code": 409, "message": "job cancelled"})
    client.cancel(result_id)  # a finished job's result: forgotten
    for call in (client.then, client.status, client.cancel):
        with pytest.raises(ResultNotFound) as missing:
            call(result_id)
        assert missing.value.result_id == result_id
        assert str(missing.value) == f"result with ID {result_id} not found"


def test_a_waiter_learns_its_job_was_cancelled(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "loop", "infinite-loop", timeout=30)
    base = serve()
    client, other = connect(base), connect(base)
    result_id = client.do_async("loop")
    wait_status(client, result_id, "running")
    outcome: list[BaseException] = []
    waiter = threading.Thread(target=lambda: outcome.extend(_raised(other.then, result_id)))
    waiter.start()
    time.sleep(0.1)  # the GET /then is waiting
    client.cancel(result_id)
    waiter.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], JobCancelled), outcome
    assert str(outcome[0]) == "job cancelled"


def _raised(call: Callable[..., Any], *args: Any) -> list[BaseException]:
    try:
        call(*args)
    except BaseException as error:
        return [error]
    return []


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [("result-and-error", 418, "teapot"), ("return-err", 400, "job failed")],  # WAT, and Rust via the SDK
)
def test_a_runnables_own_error_is_run_err(
    reactr: Reactr, serve: Any, connect: Any, name: str, code: int, message: str
) -> None:
    if name == "return-err":
        reactr.register(name, str(RUNNABLES / "return-err.wasm"))
    else:
        wasm(reactr, name)
    client = connect(serve())
    with pytest.raises(RunErr) as failed:
        client.do(name, "x")
    assert (type(failed.value), failed.value.code, failed.value.message) == (RunErr, code, message)
    result_id = client.do_async(name, "x")
    with pytest.raises(RunErr) as failed:  # a 400 from the runnable, not a refused request
        client.then(result_id)
    assert (failed.value.code, failed.value.message) == (code, message)
    assert client.status(result_id)["error"] == {"code": code, "message": message}


def test_a_run_err_with_a_server_status_code_stays_a_run_err(reactr: Reactr, serve: Any, connect: Any) -> None:
    codes = {"404": 404, "409": 409, "504": 504, "503": 503, "0": 0}

    def fail(job: Any, ctx: Any) -> None:
        raise RunErr(codes[job.payload().decode()], "from the runnable")

    reactr.register("fail", fail)
    client = connect(serve())
    for text, code in codes.items():
        with pytest.raises(RunErr) as failed:
            client.do("fail", text)
        assert (failed.value.code, failed.value.message) == (code, "from the runnable"), text


def test_a_timeout_is_job_timeout(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "loop", "infinite-loop", timeout=0.3)
    client = connect(serve())
    with pytest.raises(JobTimeout, match="job timeout"):
        client.do("loop")
    result_id = client.do_async("loop")
    with pytest.raises(JobTimeout):
        client.then(result_id)
    assert client.status(result_id)["status"] == "timed_out"


def test_a_trap_is_an_execution_error(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "trap")
    with pytest.raises(ExecutionError, match="unreachable"):
        connect(serve()).do("trap")


def test_an_unknown_runnable_is_runnable_not_found(reactr: Reactr, serve: Any, connect: Any) -> None:
    client = connect(serve())
    calls = (
        lambda: client.do("nope", "x"),
        lambda: client.do_async("nope", "x"),
        lambda: client.invoke_with_callback("nope", "x", "http://127.0.0.1:9/hook"),
    )
    for call in calls:
        with pytest.raises(RunnableNotFound) as missing:
            call()
        assert missing.value.name == "nope"


def test_unknown_and_malformed_ids(reactr: Reactr, serve: Any, connect: Any) -> None:
    client = connect(serve())
    for call in (client.then, client.status, client.cancel):
        with pytest.raises(ResultNotFound) as missing:
            call(UNKNOWN_ID)
        assert missing.value.result_id == UNKNOWN_ID
        for bad in ("short", "a/b?c=1#x"):  # quoted into the path: the server sees the whole id
            with pytest.raises(RequestRejected) as rejected:
                call(bad)
            assert (rejected.value.status, rejected.value.message) == (400, "invalid result ID")
            assert str(rejected.value) == "HTTP 400: invalid result ID"


def test_bearer_auth(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "echo")
    base = serve(make_config(auth_tokens=[TOKEN]))
    for client in (connect(base), connect(base, token="wrong")):
        with pytest.raises(Unauthorized, match="missing or invalid bearer token"):
            client.do("echo", "x")
        with pytest.raises(Unauthorized):
            client.status(UNKNOWN_ID)
    client = connect(base, token=TOKEN)
    result_id = client.do_async("echo", "x")
    assert (client.do("echo", "joe"), client.then(result_id)) == (b"hello joe", b"hello x")


def test_a_body_over_the_limit_is_rejected_with_413(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "echo")
    client = connect(serve(make_config(body_limit=1024)))
    with pytest.raises(RequestRejected) as rejected:
        client.do("echo", b"x" * 2048)
    assert rejected.value.status == 413 and "over the limit of 1024 bytes" in rejected.value.message
    assert client.do("echo", b"x" * 1000) == b"hello " + b"x" * 1000


def test_a_full_queue_is_server_unavailable_with_retry_after(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "loop", "infinite-loop", timeout=30, pool_size=1, queue_size=1)
    client = connect(serve())
    running = client.do_async("loop")
    wait_status(client, running, "running")
    queued = client.do_async("loop")
    for call in (client.do, client.do_async):
        with pytest.raises(ServerUnavailable) as full:
            call("loop")
        assert isinstance(full.value, QueueFull)  # what the embedded API raises
        assert (full.value.status, full.value.retry_after) == (503, 1.0)
        assert "queue is full" in str(full.value)
    client.cancel(queued)
    client.cancel(running)


def test_another_servers_error_page_is_mapped_by_status(servers: Servers, connect: Any) -> None:
    async def gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")

    async def teapot(request: web.Request) -> web.Response:
        return web.Response(status=418, text="")

    app = web.Application()
    app.router.add_post("/do/{job}", gateway)
    app.router.add_get("/jobs/{id}", teapot)
    client = connect(servers.start(app))
    with pytest.raises(ServerUnavailable) as unavailable:
        client.do("x")
    assert (unavailable.value.status, unavailable.value.retry_after) == (502, None)
    assert str(unavailable.value) == "<html>bad gateway</html>"
    with pytest.raises(RequestRejected, match=r"(?i)^HTTP 418: I'm a teapot$"):
        client.status(UNKNOWN_ID)


def test_no_server_is_connection_failed(connect: Any) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    client = connect(base)
    for call in (lambda: client.do("echo", "x"), lambda: client.status(UNKNOWN_ID)):
        with pytest.raises(ConnectionFailed, match=f"is the server running at {base}"):
            call()


def test_a_server_that_does_not_answer_in_time_is_connection_failed(servers: Servers, connect: Any) -> None:
    async def stall(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application()
    app.router.add_get("/jobs/{id}", stall)
    client = connect(servers.start(app), timeout=0.2)
    started = time.monotonic()
    expected = f"^GET http://127.0.0.1:[0-9]+/jobs/{UNKNOWN_ID}: ReadTimeout(: timed out)?$"
    with pytest.raises(ConnectionFailed, match=expected):
        client.status(UNKNOWN_ID)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("localhost:8080", {}, "server URL must be http"),
        ("ftp://host", {}, "server URL must be http"),
        ("http://", {}, "server URL must be http"),
        ("http://127.0.0.1:8080", {"timeout": 0}, "timeout must be a number of seconds above 0"),
    ],
)
def test_bad_client_arguments(url: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Client(url, **options)
    with pytest.raises(ValueError, match=message):
        AsyncClient(url, **options)


# --- callbacks ------------------------------------------------------------------------------


def test_invoke_with_callback_delivers_a_signed_result(
    reactr: Reactr, serve: Any, servers: Servers, connect: Any
) -> None:
    wasm(reactr, "echo")
    wasm(reactr, "fail", "result-and-error")
    deliveries: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()

    async def hook(request: web.Request) -> web.Response:
        deliveries.put((dict(request.headers), await request.read()))
        return web.Response()

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    hook_url = servers.start(receiver) + "/hook"
    client = connect(serve(make_config(callbacks={"allow_private": True, "secret": "hunter2"})))

    for name, body, outcome in (
        ("echo", b"hello joe", "success"),
        ("fail", b'job_err_result: {"code":418,"message":"teapot"}', "error"),
    ):
        result_id = client.invoke_with_callback(name, "joe", hook_url)
        headers, delivered = deliveries.get(timeout=10)
        assert (headers["X-Reactr-Result-Id"], headers["X-Reactr-Outcome"], delivered) == (result_id, outcome, body)
        assert verify_signature("hunter2", headers["X-Reactr-Signature"], delivered)
        assert not verify_signature("hunter3", headers["X-Reactr-Signature"], delivered)
        assert not verify_signature("hunter2", headers["X-Reactr-Signature"], delivered + b"!")


def test_a_refused_callback_url_is_rejected(reactr: Reactr, serve: Any, connect: Any) -> None:
    wasm(reactr, "echo")
    client = connect(serve(make_config(callbacks={"allow_private": False})))
    with pytest.raises(RequestRejected) as rejected:
        client.invoke_with_callback("echo", "x", "http://127.0.0.1:9/hook")
    assert rejected.value.status == 400 and "loopback address" in rejected.value.message


# --- packaging ------------------------------------------------------------------------------


def test_importing_the_package_does_not_import_httpx() -> None:
    code = "import sys, reactr_wasm, reactr_wasm.cli; print('httpx' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=30, check=True)
    assert done.stdout.strip() == b"False"


def test_the_signing_module_stands_alone() -> None:
    """It imports nothing beyond the standard library: no aiohttp, httpx or server module."""
    code = (
        "import runpy, sys; signing = runpy.run_path('reactr_wasm/signing.py')\n"
        "assert signing['verify_signature']('k', signing['sign']('k', b'x', 100), b'x', now=100)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('aiohttp', 'httpx', 'reactr_wasm'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=30, check=True)
    assert done.stdout.strip() == b"[]", done.stdout
