"""The dashboard's routes over HTTP, without a browser: pages, ``/ui/api/runnables``, the job event stream.

``test_dashboard.py`` drives the page itself in Chromium; here the contract the
page relies on, and the stream's bounds (buffer, streams, slow readers, drain).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from reactr_wasm import Config, Limits, Reactr
from reactr_wasm.capabilities.grants import Capabilities
from reactr_wasm.scheduler.stats import JobEvent
from reactr_wasm.server.app import SERVER
from reactr_wasm.server.dashboard import PAGE_HEADERS, PAGES
from reactr_wasm.server.job_feed import BUFFER, MAX_STREAMS, Subscription
from tests.conftest import RUNNABLES
from tests.test_server_api import Client, Start, answer, make_config, wasm

TOKEN = "dash-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server_config() -> Config:
    return make_config()


class Stream:
    """An open ``GET /ui/api/events``: its ``jobs`` events, parsed as the page parses them."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.buffer = b""

    async def frame(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next ``jobs`` event's data."""
        while True:
            while b"\n\n" not in self.buffer:
                self.buffer += await asyncio.wait_for(self.response.content.readany(), timeout)
            frame, self.buffer = self.buffer.split(b"\n\n", 1)
            lines = frame.decode().split("\n")
            if "event: jobs" in lines:
                data = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
                return dict(json.loads("\n".join(data)))

    async def jobs(self, count: int) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while len(seen) < count:
            seen += (await self.frame())["jobs"]
        return seen


async def open_stream(client: Client, headers: dict[str, str] | None = None) -> Stream:
    response = await client.get("/ui/api/events", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["X-Request-Id"]
    return Stream(response)


# --- pages ------------------------------------------------------------------------------------


async def test_the_pages_are_public_with_a_strict_policy(reactr: Reactr, start: Start) -> None:
    client = await start(make_config(auth_tokens=[TOKEN]))
    for path, (_, content_type) in PAGES.items():
        status, body, headers = await answer(client, "GET", path)
        assert status == 200, path
        assert headers["Content-Type"] == f"{content_type}; charset=utf-8"
        for name, wanted in PAGE_HEADERS.items():
            assert headers[name] == wanted
        assert len(body) > 100
    html = (await answer(client, "GET", "/ui"))[1].decode()
    assert '<script src="/ui/app.js" defer></script>' in html and "<script>" not in html  # no inline code
    assert "script-src 'self'" in PAGE_HEADERS["Content-Security-Policy"]
    js = (await answer(client, "GET", "/ui/app.js"))[1].decode()
    assert "innerHTML" not in js and "EventSource" not in js.split("//", 1)[1].split("\n", 1)[1]
    for path in ("/ui/api/runnables", "/ui/api/events"):  # the data is the API's: behind the token
        status, body, headers = await answer(client, "GET", path)
        assert (status, headers["WWW-Authenticate"]) == (401, "Bearer"), path
    assert (await answer(client, "GET", "/ui/nothing", headers=AUTH))[0] == 404


# --- /ui/api/runnables --------------------------------------------------------------------------


async def test_runnables_show_abi_capabilities_pool_and_counters(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo", pool_size=2, prewarm=True)
    reactr.register("cache-get", RUNNABLES / "cache-get.wasm", capabilities=Capabilities())  # imports, not granted
    reactr.register("py", lambda job, ctx: b"ok", timeout=3.0)
    client = await start()
    assert (await answer(client, "POST", "/do/echo?then=true"))[0] == 200
    assert (await answer(client, "POST", "/do/cache-get?then=true"))[0] == 404  # refused: the guest says not found
    status, body, _ = await answer(client, "GET", "/ui/api/runnables")
    assert status == 200
    described = {runnable["name"]: runnable for runnable in body["runnables"]}
    assert list(described) == ["cache-get", "echo", "py"]

    echo = described["echo"]
    assert (echo["kind"], echo["abi"]["ok"], echo["abi"]["problems"], echo["abi"]["restartable"]) == (
        "wasm", True, [], True)  # fmt: skip
    assert "run_e" in echo["abi"]["exports"] and "env.return_result" in echo["abi"]["imports"]
    assert echo["capabilities"] == {"imports": [], "granted": ["cache"], "missing": []}  # the engine's default grant
    assert echo["pool"] | {"threads": 0} == {
        "isolation": "reuse",
        "size": 2,
        "max_threads": 2,
        "threads": 0,
        "queued": 0,
        "inline": False,
        "idle": 2,
        "busy": 0,
        "recycled": {},
    }
    assert echo["counters"]["jobs"]["succeeded"] == 1 and echo["counters"]["runs"] == {"worker": 1, "inline": 0}
    assert echo["limits"] == {"timeout": Limits().timeout, "memory": Limits().memory,
                              "result_size": Limits().result_size}  # fmt: skip

    cache = described["cache-get"]
    assert cache["capabilities"] == {"imports": ["cache"], "granted": [], "missing": ["cache"]}
    assert cache["counters"]["jobs"]["run_err"] == 1

    py = described["py"]
    assert (py["kind"], py["abi"], py["capabilities"], py["limits"]) == ("python", None, None, {"timeout": 3.0})

    server = body["server"]
    assert (server["draining"], server["auth"], server["in_flight"], server["event_streams"]) == (False, False, 0, 0)
    assert server["store"] == {"items": 0, "bytes": 0}
    assert server["callbacks"] == {"pending": 0, "delivered": 0, "failed": 0, "cancelled": 0, "crashed": 0}


# --- /ui/api/events -----------------------------------------------------------------------------


async def test_the_stream_tells_every_finished_job(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    reactr.register("return-err", RUNNABLES / "return-err.wasm")
    client = await start(make_config(auth_tokens=[TOKEN]))
    stream = await open_stream(client, AUTH)
    status, body, _ = await answer(client, "POST", "/do/echo", data=b"x", headers=AUTH)
    assert status == 200
    assert (await answer(client, "GET", f"/then/{body['resultId']}", headers=AUTH))[0] == 200  # told first
    assert (await answer(client, "POST", "/do/return-err?then=true", headers=AUTH))[0] == 400
    first, second = await stream.jobs(2)
    assert (first["runnable"], first["id"], first["outcome"], first["error"]) == (
        "echo", body["resultId"], "succeeded", None)  # fmt: skip
    assert (second["runnable"], second["outcome"]) == ("return-err", "run_err")
    assert second["error"] == '{"code":400,"message":"job failed"}'
    assert 0 <= second["seconds"] < 5 and second["at"] > 1.7e9

    sent, earned = 0, False
    while not earned and sent < 400:  # the fast path runs then=true jobs without a result id once echo is fast
        earned = reactr.worker("echo").runs_inline  # (a streak of fast runs; a busy machine may restart it)
        assert (await answer(client, "POST", "/do/echo?then=true", headers=AUTH))[0] == 200
        sent += 1
    told = await stream.jobs(sent)
    assert [job["outcome"] for job in told] == ["succeeded"] * sent
    assert earned and told[-1]["id"] is None
    stream.response.close()


async def test_a_slow_reader_costs_at_most_its_buffer(reactr: Reactr, start: Start) -> None:
    subscription = Subscription(size=4)
    for number in range(10):
        subscription(JobEvent(float(number), "echo", "", "succeeded", 0.0, None))
    events, dropped = subscription.take()
    assert ([event.at for event in events], dropped) == ([6.0, 7.0, 8.0, 9.0], 6)  # the newest kept
    assert subscription.take() == ([], 0)

    wasm(reactr, "echo")
    client = await start()
    stream = await open_stream(client)  # and it reads nothing while the jobs run
    jobs = BUFFER * 3
    for _ in range(jobs):
        assert (await answer(client, "POST", "/do/echo?then=true"))[0] == 200
    shown: list[dict[str, Any]] = []
    dropped = 0
    while len(shown) + dropped < jobs:
        frame = await stream.frame()
        shown += frame["jobs"]
        dropped += frame["dropped"]
    assert len(shown) + dropped == jobs and dropped > 0  # every job is accounted for, the rest let go
    stream.response.close()


async def test_streams_are_bounded_and_end_when_the_server_drains(reactr: Reactr, start: Start) -> None:
    client = await start()
    streams = [await open_stream(client) for _ in range(MAX_STREAMS)]
    status, body, headers = await answer(client, "GET", "/ui/api/events")
    assert (status, body["message"]) == (503, "at most 16 dashboard event streams at once")
    assert int(headers["Retry-After"]) > 0
    status, _, headers = await answer(client, "HEAD", "/ui/api/events")  # HEAD: the headers, no stream kept
    assert (status, headers["Content-Type"]) == (200, "text/event-stream")
    server = client.server.app[SERVER]
    assert (await answer(client, "GET", "/ui/api/runnables"))[1]["server"]["event_streams"] == MAX_STREAMS
    streams[0].response.close()  # a client that leaves frees its place
    for _ in range(200):
        if (await answer(client, "GET", "/ui/api/runnables"))[1]["server"]["event_streams"] < MAX_STREAMS:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("a closed stream kept its place")
    server.draining = True  # as on SIGTERM: every stream ends, so the drain does not wait for them
    for stream in streams[1:]:
        assert await asyncio.wait_for(stream.response.content.read(), 5) is not None
        assert stream.response.content.at_eof()


async def test_a_stream_without_listeners_adds_nothing_to_the_jobs(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start()
    assert reactr.job_events.listeners == ()
    stream = await open_stream(client)
    assert len(reactr.job_events.listeners) == 1
    stream.response.close()
    for _ in range(200):
        if not reactr.job_events.listeners:
            break
        await asyncio.sleep(0.02)
    assert reactr.job_events.listeners == ()  # no dashboard open: a job is told to nobody
