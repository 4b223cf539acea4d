"""The async flow over HTTP: ids, bounded waits, status, cancel, TTL, queue bound, draining."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from reactr_wasm import Config, Reactr
from reactr_wasm.server.app import SERVER
from tests.test_server_api import Client, Start, answer, make_config, wasm

LONG = b"5000000000"  # slow.wat iterations: several seconds, always cancelled by the test


@pytest.fixture
def server_config() -> Config:
    return make_config()


async def post(client: Client, name: str, data: bytes = b"") -> str:
    status, body, headers = await answer(client, "POST", f"/do/{name}", data=data)
    assert status == 200, body
    assert headers["Location"] == f"/then/{body['resultId']}"
    return str(body["resultId"])


async def status_of(client: Client, result_id: str) -> dict[str, Any]:
    status, body, _ = await answer(client, "GET", f"/jobs/{result_id}")
    assert status == 200, body
    return dict(body)


async def wait_status(client: Client, result_id: str, wanted: str, timeout: float = 5.0) -> list[str]:
    """Poll /jobs until ``wanted``; returns the distinct statuses seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = (await status_of(client, result_id))["status"]
        if not seen or seen[-1] != current:
            seen.append(current)
        if current == wanted:
            return seen
        await asyncio.sleep(0.005)
    raise AssertionError(f"{result_id} never became {wanted}; saw {seen}")


async def test_a_result_id_reads_twice_and_its_status_has_timestamps(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start()
    result_id = await post(client, "echo", b"joe")
    assert re.fullmatch(r"[0-9a-z]{24}", result_id)

    for _ in range(2):  # GET is safe to retry, unlike Reactr's one-shot read
        assert (await answer(client, "GET", f"/then/{result_id}"))[:2] == (200, b"hello joe")
    job = await status_of(client, result_id)
    assert (job["id"], job["job"], job["status"], job["error"]) == (result_id, "echo", "succeeded", None)
    assert job["created"] <= job["started"] <= job["finished"] <= time.time()


async def test_bad_and_unknown_ids(reactr: Reactr, start: Start) -> None:
    client = await start()
    for method, route in (("GET", "/then"), ("GET", "/jobs"), ("DELETE", "/then")):
        for bad in ("short", "A" * 24, "a" * 25, "a" * 23 + "-"):
            assert (await answer(client, method, f"{route}/{bad}"))[:2] == (
                400,
                {"code": 400, "message": "invalid result ID"},
            )
        unknown = "0123456789abcdefghijklmn"
        assert (await answer(client, method, f"{route}/{unknown}"))[:2] == (
            404,
            {"code": 404, "message": f"result with ID {unknown} not found"},
        )


async def test_statuses_move_from_queued_to_running_to_succeeded(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "slow", pool_size=1)
    client = await start()
    blocker = await post(client, "slow", LONG)
    await wait_status(client, blocker, "running")
    job = await post(client, "slow", b"300000000")  # ~0.2 s once it runs
    assert (await status_of(client, job))["status"] == "queued"

    assert (await answer(client, "DELETE", f"/then/{blocker}"))[0] == 204  # answers once the blocker has stopped
    assert (await wait_status(client, job, "succeeded"))[-2:] == ["running", "succeeded"]
    assert (await answer(client, "GET", f"/then/{job}"))[:2] == (200, b"done")


async def test_a_bounded_wait_answers_202_while_the_job_runs(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "slow")
    client = await start()
    result_id = await post(client, "slow", LONG)
    started = time.monotonic()
    status, body, _ = await answer(client, "GET", f"/then/{result_id}?wait=0.2")
    assert 0.15 < time.monotonic() - started < 2
    assert (status, body["resultId"], body["status"]) == (202, result_id, body["status"])
    assert body["status"] in ("queued", "running")
    assert (await answer(client, "GET", f"/then/{result_id}?wait=0"))[0] == 202
    assert (await answer(client, "GET", f"/then/{result_id}?wait=soon"))[:2] == (
        400,
        {"code": 400, "message": "wait must be a number of seconds, 0 or more, got 'soon'"},
    )
    assert (await answer(client, "DELETE", f"/then/{result_id}"))[0] == 204


async def test_then_true_gives_up_after_max_wait_and_the_result_stays_readable(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "slow")
    client = await start(make_config(max_wait=0.2))
    started = time.monotonic()
    status, body, headers = await answer(client, "POST", "/do/slow?then=true", data=b"700000000")  # ~0.5 s
    assert 0.15 < time.monotonic() - started < 2
    assert status == 202 and body["status"] == "running"
    assert headers["Location"] == f"/then/{body['resultId']}"

    async def read() -> tuple[int, Any, Any]:
        while True:  # each GET waits at most max_wait too
            got = await answer(client, "GET", f"/then/{body['resultId']}")
            if got[0] != 202:
                return got

    assert (await asyncio.wait_for(read(), 10))[:2] == (200, b"done")


async def test_cancelling_a_running_guest(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "loop", "infinite-loop", timeout=30)
    client = await start()
    result_id = await post(client, "loop")
    await wait_status(client, result_id, "running")
    waiting = asyncio.create_task(answer(client, "GET", f"/then/{result_id}"))
    await asyncio.sleep(0.05)

    started = time.monotonic()
    assert (await answer(client, "DELETE", f"/then/{result_id}"))[0] == 204
    status, body, _ = await asyncio.wait_for(waiting, 5)  # whoever waited learns it was cancelled
    assert (status, body) == (409, {"code": 409, "message": "job cancelled"})
    assert time.monotonic() - started < 1  # the guest was interrupted, not waited for
    # The record stays, cancelled, for the TTL: GET /then answers 409 and GET /jobs says so.
    assert (await answer(client, "GET", f"/then/{result_id}"))[:2] == (409, {"code": 409, "message": "job cancelled"})
    job = await status_of(client, result_id)
    assert (job["status"], job["error"]) == ("cancelled", {"code": 409, "message": "job cancelled"})
    # DELETE of a finished job forgets it.
    assert (await answer(client, "DELETE", f"/then/{result_id}"))[0] == 204
    for method, route in (("GET", "/then"), ("GET", "/jobs"), ("DELETE", "/then")):
        assert (await answer(client, method, f"{route}/{result_id}"))[0] == 404


async def test_then_true_sees_409_when_its_job_is_cancelled(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "loop", "infinite-loop", timeout=30)
    client = await start(make_config(max_wait=0.2))
    status, body, _ = await answer(client, "POST", "/do/loop?then=true")
    assert status == 202
    waiting = asyncio.create_task(answer(client, "GET", f"/then/{body['resultId']}?wait=5"))
    await asyncio.sleep(0.05)
    assert reactr.cancel(body["resultId"])  # through the scheduler, by id, like DELETE
    assert (await asyncio.wait_for(waiting, 5))[:2] == (409, {"code": 409, "message": "job cancelled"})
    assert (await status_of(client, body["resultId"]))["status"] == "cancelled"


async def test_results_expire_after_the_ttl_even_if_nobody_reads_them(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start(make_config(result_ttl=0.3))
    store = client.app[SERVER].store
    read, unread = await post(client, "echo", b"a"), await post(client, "echo", b"b")
    assert (await answer(client, "GET", f"/then/{read}"))[0] == 200
    await asyncio.sleep(0.35)
    assert (await answer(client, "GET", f"/then/{read}"))[0] == 404
    deadline = time.monotonic() + 2
    while (await store.size())[0] and time.monotonic() < deadline:  # the periodic sweep drops the unread one
        await asyncio.sleep(0.02)
    assert await store.size() == (0, 0) and await store.get(unread) is None


async def test_a_full_queue_is_503_with_retry_after(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "slow", pool_size=1, queue_size=1)
    client = await start()
    running = await post(client, "slow", LONG)
    await wait_status(client, running, "running")
    queued = await post(client, "slow", LONG)
    for query in ("", "?then=true"):
        status, body, headers = await answer(client, "POST", f"/do/slow{query}", data=LONG)
        assert (status, body["code"], headers["Retry-After"]) == (503, 503, "1")
        assert "queue is full" in body["message"]
    for result_id in (queued, running):
        assert (await answer(client, "DELETE", f"/then/{result_id}"))[0] == 204


async def test_a_draining_server_refuses_new_jobs_but_serves_results(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start()
    result_id = await post(client, "echo", b"x")
    client.app[SERVER].draining = True
    status, body, headers = await answer(client, "POST", "/do/echo", data=b"x")
    assert (status, body["code"], headers["Retry-After"]) == (503, 503, "1")
    assert (await answer(client, "GET", "/health"))[0] == 503
    assert (await answer(client, "GET", f"/then/{result_id}"))[:2] == (200, b"hello x")
