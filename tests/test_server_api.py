"""The HTTP contract (design.md §2) on a real aiohttp server: routes, errors, encodings, limits."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reactr_wasm import Config, CoordinatedResponse, Job, Limits, Reactr, RunErr
from reactr_wasm.config import CallbackConfig, ServerConfig
from reactr_wasm.server.app import create_app
from tests.conftest import RUNNABLES, wat_module
from tests.test_runnables import REQUEST_INFO_ANSWER

Client = TestClient[web.Request, web.Application]
Start = Callable[..., Awaitable[Client]]


def make_config(**server: Any) -> Config:
    server.setdefault("drain_timeout", 2.0)
    return Config(server=ServerConfig(**server), callbacks=CallbackConfig(allow_private=True))


@pytest.fixture
def server_config() -> Config:
    """The config ``start()`` uses when a test passes none."""
    return make_config()


def wasm(reactr: Reactr, name: str, module: str | None = None, *, timeout: float = 10.0, **options: Any) -> None:
    runnable = reactr.engine.load(name, wat_module(module or name), limits=Limits(timeout=timeout))
    reactr.register(name, runnable, **options)


async def answer(client: Client, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
    """``(status, body, headers)``; a JSON body is decoded."""
    async with client.request(method, path, **kwargs) as response:
        body: Any = await response.read()
        if response.content_type == "application/json" and body:
            body = json.loads(body)
        return response.status, body, response.headers


# --- the sync path -------------------------------------------------------------------------


async def test_then_true_answers_the_raw_result(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start()
    status, body, headers = await answer(client, "POST", "/do/echo?then=true", data=b"my name is joe")
    assert (status, body) == (200, b"hello my name is joe")
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["X-Request-Id"]


async def test_every_response_carries_a_request_id_and_a_sane_one_is_echoed(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start()
    _, _, headers = await answer(client, "POST", "/do/echo?then=true", headers={"X-Request-Id": "trace-42"})
    assert headers["X-Request-Id"] == "trace-42"
    _, _, headers = await answer(client, "GET", "/then/bad", headers={"X-Request-Id": "x" * 500})
    assert headers["X-Request-Id"] != "x" * 500 and headers["X-Request-Id"]
    ids = {(await answer(client, "GET", "/nowhere"))[2]["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3


async def test_health_lists_the_runnables(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    reactr.register("py", lambda job, ctx: None)
    client = await start()
    status, health, _ = await answer(client, "GET", "/health")
    assert (status, health["status"], health["runnables"]) == (200, "ok", ["echo", "py"])
    assert health["node"].rsplit("-", 2)[1] == str(os.getpid())  # host-pid-random, as a Redis-mode node's id


async def test_unknown_paths_and_methods_get_json_errors(reactr: Reactr, start: Start) -> None:
    client = await start()
    assert (await answer(client, "GET", "/nowhere"))[:2] == (404, {"code": 404, "message": "not found"})
    assert (await answer(client, "POST", "/do/"))[0] == 404
    status, body, headers = await answer(client, "PUT", "/health")
    assert (status, body, headers["Allow"]) == (405, {"code": 405, "message": "method not allowed"}, "GET,HEAD")
    status, _, headers = await answer(client, "GET", "/do/echo")
    assert (status, headers["Allow"]) == (405, "POST")
    status, body, headers = await answer(client, "HEAD", "/health")
    assert (status, body, headers["Content-Type"]) == (200, b"", "application/json")


async def test_an_unknown_job_is_404_before_anything_runs(reactr: Reactr, start: Start) -> None:
    client = await start()
    for query in ("", "?then=true", "?callback=http://127.0.0.1:9/hook"):
        status, body, _ = await answer(client, "POST", f"/do/missing{query}", data=b"x")
        assert (status, body) == (404, {"code": 404, "message": "runnable 'missing' not found"})


# --- errors ---------------------------------------------------------------------------------


def _raise(error: BaseException) -> Callable[[Job, object], object]:
    def run(job: Job, ctx: object) -> object:
        raise error

    return run


ERRORS: list[tuple[str, int, int, str]] = [
    # runnable, HTTP status, body code, message (or its start)
    ("return-err", 400, 400, "job failed"),  # Rust SDK return_error
    ("result-and-error", 418, 418, "teapot"),
    ("abort", 500, -1, "runnable abort: boom; file: index.ts, line: 12, col: 5"),
    ("trap", 500, 500, "wasm execution error: failed to wasmFunc:"),
    ("loop", 504, 504, "job timeout"),
    ("py-odd-code", 500, 1, "odd"),
    ("py-huge-code", 500, 600, "too big"),
    ("py-bug", 500, 500, "ValueError: boom"),
]


def register_failures(reactr: Reactr) -> None:
    reactr.register("return-err", RUNNABLES / "return-err.wasm")
    wasm(reactr, "result-and-error")
    wasm(reactr, "abort")
    wasm(reactr, "trap")
    wasm(reactr, "loop", "infinite-loop", timeout=0.2)
    reactr.register("py-odd-code", _raise(RunErr(1, "odd")))
    reactr.register("py-huge-code", _raise(RunErr(600, "too big")))
    reactr.register("py-bug", _raise(ValueError("boom")))


@pytest.mark.parametrize("mode", ["then", "async"])
async def test_job_errors_map_to_statuses_with_json_bodies(reactr: Reactr, start: Start, mode: str) -> None:
    register_failures(reactr)
    client = await start()
    for name, status, code, message in ERRORS:
        if mode == "then":
            got, body, headers = await answer(client, "POST", f"/do/{name}?then=true", data=b"x")
        else:
            _, posted, _ = await answer(client, "POST", f"/do/{name}", data=b"x")
            got, body, headers = await answer(client, "GET", f"/then/{posted['resultId']}")
        assert (got, body["code"]) == (status, code), (name, body)
        assert body["message"].startswith(message), (name, body)
        assert headers["Content-Type"] == "application/json"
    trap = await answer(client, "POST", "/do/trap?then=true")
    assert "unreachable" in trap[1]["message"]


# --- result encodings -----------------------------------------------------------------------


async def run(client: Client, mode: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
    """The answer to ``path`` with ``?then=true`` ("then"), or as an async job read by ``GET /then`` ("async")."""
    if mode == "then":
        return await answer(client, "POST", f"{path}?then=true", **kwargs)
    status, posted, _ = await answer(client, "POST", path, **kwargs)
    assert status == 200, posted
    return await answer(client, "GET", f"/then/{posted['resultId']}")


@pytest.mark.parametrize("mode", ["then", "async"])
@pytest.mark.parametrize(
    ("value", "body", "content_type"),
    [
        ({"a": [1, "é"]}, '{"a":[1,"é"]}'.encode(), "application/json"),
        ([1, 2], b"[1,2]", "application/json"),
        (7, b"7", "application/json"),
        ("plain text", b"plain text", "text/plain; charset=utf-8"),
        (b"\x00\xffbytes", b"\x00\xffbytes", "application/octet-stream"),
        (None, b"", None),
    ],
)
async def test_python_values_are_encoded_by_type(
    reactr: Reactr, start: Start, value: object, body: bytes, content_type: str | None, mode: str
) -> None:
    reactr.register("py", lambda job, ctx: value)
    client = await start()
    status, got, headers = await run(client, mode, "/do/py")
    if content_type == "application/json":
        got = json.dumps(got, separators=(",", ":"), ensure_ascii=False).encode()
    assert (status, got, headers.get("Content-Type")) == (200, body, content_type)


@pytest.mark.parametrize("mode", ["then", "async"])
async def test_a_value_json_cannot_encode_is_a_500(reactr: Reactr, start: Start, mode: str) -> None:
    reactr.register("py", lambda job, ctx: {1j})
    client = await start()
    status, body, _ = await run(client, mode, "/do/py")
    assert (status, body) == (500, {"code": 500, "message": "TypeError: Object of type set is not JSON serializable"})


async def test_a_guest_without_a_result_answers_200_empty(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "no-result")
    client = await start()
    assert (await answer(client, "POST", "/do/no-result?then=true", data=b"x"))[:2] == (200, b"")


def coordinated_request(body: bytes, **fields: Any) -> bytes:
    request = {
        "method": "GET",
        "url": "/hello/world?message=whatsup",
        "request_id": "4f1c2b",
        "body": base64.b64encode(body).decode(),
        "headers": {"x-test": "yes"},
        "resp_headers": {},
        "params": {},
        "state": {"hello": base64.b64encode(b"what is up").decode()},
    }
    request.update(fields)
    return json.dumps(request).encode()


async def test_request_mode_answers_the_output_with_the_headers_the_guest_set(reactr: Reactr, start: Start) -> None:
    reactr.register("request-info", RUNNABLES / "request-info.wasm")
    client = await start()
    payload = coordinated_request(b'{"username":"cohix"}')
    status, body, headers = await answer(client, "POST", "/do/request-info?then=true", data=payload)
    assert status == 200
    assert body == REQUEST_INFO_ANSWER
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Reactr"] == "cohix"


async def test_headers_that_would_break_the_response_are_dropped(reactr: Reactr, start: Start) -> None:
    hostile = {
        "Content-Length": "9999",
        "Transfer-Encoding": "chunked",
        "X-Split": "a\r\nSet-Cookie: x=1",
        "Bad Name": "v",
        "X-Request-Id": "spoofed",
        "X-Fine": "kept",
    }
    reactr.register("py", lambda job, ctx: CoordinatedResponse(b"body", hostile))
    client = await start()
    for mode in ("then", "async"):  # an async job's headers are kept with its result
        status, body, headers = await run(client, mode, "/do/py")
        assert (status, body, headers["X-Fine"]) == (200, b"body", "kept")
        assert headers["Content-Length"] == "4" and "Transfer-Encoding" not in headers
        assert "X-Split" not in headers and "Set-Cookie" not in headers and "Bad Name" not in headers
        assert headers["X-Request-Id"] != "spoofed"
        assert headers["Content-Type"] == "application/octet-stream"


# --- sizes, concurrency, limits -------------------------------------------------------------


async def test_large_payloads_round_trip_exactly(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start()
    big = os.urandom(100_000)
    assert (await answer(client, "POST", "/do/echo?then=true", data=big))[:2] == (200, b"hello " + big)
    huge = os.urandom(3 * 1024 * 1024)
    _, posted, _ = await answer(client, "POST", "/do/echo", data=io.BytesIO(huge))
    assert (await answer(client, "GET", f"/then/{posted['resultId']}"))[:2] == (200, b"hello " + huge)


async def test_200_concurrent_requests_all_get_their_own_answer(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo", pool_size=2)
    client = await start()

    async def one(number: int) -> tuple[int, bool]:
        payload = f"request {number} ".encode() * (number % 7 + 1)
        if number % 4:
            status, body, _ = await answer(client, "POST", "/do/echo?then=true", data=payload)
        else:
            _, posted, _ = await answer(client, "POST", "/do/echo", data=payload)
            status, body, _ = await answer(client, "GET", f"/then/{posted['resultId']}")
        return status, body == b"hello " + payload

    results = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(200))), 20)
    assert results == [(200, True)] * 200


async def test_a_body_over_the_limit_is_413(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start(make_config(body_limit=1024))
    assert (await answer(client, "POST", "/do/echo?then=true", data=b"x" * 1024))[0] == 200
    status, body, _ = await answer(client, "POST", "/do/echo?then=true", data=b"x" * 1025)
    assert status == 413 and body["code"] == 413 and "1025" in body["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
        for _ in range(4):
            yield b"y" * 512

    status, body, _ = await answer(client, "POST", "/do/echo?then=true", data=chunks())
    assert status == 413 and body["code"] == 413


async def test_bearer_tokens_guard_everything_but_health(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start(make_config(auth_tokens=["first-token", "second-token"]))
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic first-token"}):
        status, body, got = await answer(client, "POST", "/do/echo?then=true", headers=headers)
        assert (status, body["code"], got["WWW-Authenticate"]) == (401, 401, "Bearer")
    assert (await answer(client, "GET", "/nowhere"))[0] == 401  # no route discovery without a token
    assert (await answer(client, "GET", f"/jobs/{'a' * 24}"))[0] == 401
    for token in ("first-token", "second-token"):
        status, body, _ = await answer(
            client, "POST", "/do/echo?then=true", data=b"you", headers={"Authorization": f"Bearer {token}"}
        )
        assert (status, body) == (200, b"hello you")
    assert (await answer(client, "GET", "/health"))[0] == 200


# --- idempotency ------------------------------------------------------------------------------


def counting(reactr: Reactr, *names: str) -> list[bytes]:
    """Register Python runnables under ``names`` that record each job's data and answer ``run N``."""
    runs: list[bytes] = []

    def count(job: Job, ctx: object) -> bytes:
        runs.append(job.data)
        return b"run %d" % len(runs)

    for name in names:
        reactr.register(name, count)
    return runs


async def test_an_idempotency_key_runs_the_job_once(reactr: Reactr, start: Start) -> None:
    runs = counting(reactr, "count")
    client = await start()
    key = {"Idempotency-Key": "order-1234"}

    first = await asyncio.gather(*(answer(client, "POST", "/do/count", data=b"a", headers=key) for _ in range(10)))
    ids = {body["resultId"] for _, body, _ in first}
    assert len(ids) == 1
    assert sorted(headers.get("Idempotent-Replayed", "") for _, _, headers in first) == [""] + ["true"] * 9
    [result_id] = ids
    assert (await answer(client, "GET", f"/then/{result_id}"))[:2] == (200, b"run 1")
    status, body, headers = await answer(client, "POST", "/do/count?then=true", data=b"a", headers=key)
    assert (status, body, headers["Idempotent-Replayed"]) == (200, b"run 1", "true")
    assert runs == [b"a"]

    assert (await answer(client, "DELETE", f"/then/{result_id}"))[0] == 204
    status, again, headers = await answer(client, "POST", "/do/count", data=b"a", headers=key)  # forgotten: a new job
    assert status == 200 and again["resultId"] != result_id and "Idempotent-Replayed" not in headers

    status, body, _ = await answer(client, "POST", "/do/count", headers={"Idempotency-Key": "k" * 256})
    assert (status, body["code"]) == (400, 400)


async def test_an_idempotency_key_used_for_another_request_is_422(reactr: Reactr, start: Start) -> None:
    runs = counting(reactr, "count", "other")
    client = await start()
    key = {"Idempotency-Key": "order-1234"}
    _, first, _ = await answer(client, "POST", "/do/count", data=b"a", headers=key)
    refused = {
        "code": 422,
        "message": "Idempotency-Key 'order-1234' was already used for a different request (another runnable "
        "or body); use a new key for a new request",
    }
    for path, data in (("/do/count", b"b"), ("/do/count", b""), ("/do/other", b"a"), ("/do/count?then=true", b"b")):
        assert (await answer(client, "POST", path, data=data, headers=key))[:2] == (422, refused), (path, data)

    assert (await answer(client, "GET", f"/then/{first['resultId']}"))[:2] == (200, b"run 1")
    assert runs == [b"a"]  # nothing else ran


async def test_an_idempotency_key_lives_as_long_as_its_result(reactr: Reactr, start: Start) -> None:
    runs = counting(reactr, "count")
    client = await start(make_config(result_ttl=0.3, max_results=2))
    key = {"Idempotency-Key": "order-1234"}

    async def post() -> tuple[str, str | None]:
        status, body, headers = await answer(client, "POST", "/do/count?then=true", data=b"a", headers=key)
        assert status == 200, body
        return body.decode(), headers.get("Idempotent-Replayed")

    assert await post() == ("run 1", None)
    await asyncio.sleep(0.15)
    assert await post() == ("run 1", "true")  # within server.result_ttl of the job's end
    await asyncio.sleep(0.2)
    assert await post() == ("run 2", None)  # the result expired, and the key with it

    for _ in range(2):  # two newer results push it out at max_results
        await answer(client, "POST", "/do/count", data=b"other")
    assert await post() == ("run 5", None)
    assert runs == [b"a", b"a", b"other", b"other", b"a"]


async def test_a_chained_python_runnable_over_http(reactr: Reactr, start: Start) -> None:
    """Reactr's FaaS test server registered a Go runnable; ours registers Python ones next to Wasm."""
    wasm(reactr, "echo")
    reactr.register("first", lambda job, ctx: ctx.do(Job("second", job.data + b" first")))
    reactr.register("second", lambda job, ctx: ctx.do(Job("echo", job.data + b" second")))
    client = await start()
    status, body, _ = await answer(client, "POST", "/do/first?then=true", data=b"go")
    assert (status, body) == (200, b"hello go first second")
    status, body, _ = await answer(client, "POST", "/do/first", data=b"later")
    assert status == 200
    status, value, _ = await answer(client, "GET", f"/then/{body['resultId']}")
    assert (status, value) == (200, b"hello later first second")


async def test_create_app_works_with_default_config(reactr: Reactr) -> None:
    wasm(reactr, "echo")
    client = TestClient(TestServer(create_app(reactr), host="127.0.0.1"))
    await client.start_server()
    try:
        status, body, _ = await answer(client, "POST", "/do/echo?then=true", data=b"joe")
        assert (status, body) == (200, b"hello joe")
    finally:
        await client.close()


async def test_jobs_batched_in_one_loop_turn_each_get_their_own_answer(reactr: Reactr, start: Start) -> None:
    """then=true jobs of proven-fast runnables run back to back after the loop turn (fastpath.ThenBatch)."""
    from reactr_wasm.scheduler.worker import FAST_STREAK

    wasm(reactr, "echo")
    reactr.register("return-err", str(RUNNABLES / "return-err.wasm"))
    for _ in range(FAST_STREAK + 1):  # earn the inline fast path
        reactr.do("echo", b"warm").then(timeout=5)
        with pytest.raises(RunErr):
            reactr.do("return-err", b"").then(timeout=5)
    client = await start()

    async def one(i: int) -> tuple[int, Any]:
        name = "return-err" if i % 5 == 0 else "echo"
        status, body, _ = await answer(client, "POST", f"/do/{name}?then=true", data=str(i).encode())
        return status, body

    answers = await asyncio.gather(*(one(i) for i in range(100)))
    for i, (status, body) in enumerate(answers):
        if i % 5 == 0:
            assert (status, body) == (400, {"code": 400, "message": "job failed"})
        else:
            assert (status, body) == (200, b"hello " + str(i).encode())
