"""POST /do/{job}?callback=URL end to end: a real receiver on loopback gets the outcome."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from reactr_wasm import Config, Job, Reactr
from reactr_wasm.config import CallbackConfig, ServerConfig
from reactr_wasm.server.callbacks import verify_signature

from .conftest import RUNNABLES
from .test_server_api import Start, answer, wasm


def callback_config(**callbacks: Any) -> Config:
    options: dict[str, Any] = {"allow_private": True, "backoff": 0.05, "backoff_max": 0.1, "attempts": 3}
    options.update(callbacks)
    return Config(server=ServerConfig(drain_timeout=2.0), callbacks=CallbackConfig(**options))


@pytest.fixture
def server_config() -> Config:
    return callback_config()


class Receiver:
    """Records deliveries; answers ``statuses`` in turn, then 200."""

    def __init__(self) -> None:
        self.url = ""
        self.statuses: list[int] = []
        self.calls: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def hook(self, request: web.Request) -> web.Response:
        await self.calls.put((dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def next(self) -> tuple[dict[str, str], bytes]:
        return await asyncio.wait_for(self.calls.get(), 5)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/hook", state.hook)
    async with TestServer(app, host="127.0.0.1") as server:
        state.url = str(server.make_url("/hook"))
        yield state


def with_callback(name: str, url: str, extra: str = "") -> str:
    return f"/do/{name}?callback={quote(url, safe='')}{extra}"


async def test_the_result_is_posted_to_the_callback(reactr: Reactr, start: Start, receiver: Receiver) -> None:
    wasm(reactr, "echo")
    client = await start()
    status, body, headers = await answer(client, "POST", with_callback("echo", receiver.url, "&then=true"), data=b"cb")
    assert (status, body) == (200, b"")  # then is ignored with a callback
    result_id = headers["X-Reactr-Result-Id"]

    delivered, payload = await receiver.next()
    assert payload == b"hello cb"
    assert delivered["X-Reactr-Result-Id"] == result_id
    assert (delivered["X-Reactr-Outcome"], delivered["X-Reactr-Attempt"]) == ("success", "1")
    assert (await answer(client, "GET", f"/jobs/{result_id}"))[1]["status"] == "succeeded"


async def test_an_error_is_posted_in_reactrs_format(reactr: Reactr, start: Start, receiver: Receiver) -> None:
    reactr.register("return-err", RUNNABLES / "return-err.wasm")
    client = await start()
    await answer(client, "POST", with_callback("return-err", receiver.url))
    headers, payload = await receiver.next()
    assert payload == b'job_err_result: {"code":400,"message":"job failed"}'
    assert headers["X-Reactr-Outcome"] == "error"


async def test_a_failed_delivery_is_retried(reactr: Reactr, start: Start, receiver: Receiver) -> None:
    wasm(reactr, "echo")
    client = await start()
    receiver.statuses = [500]
    await answer(client, "POST", with_callback("echo", receiver.url), data=b"again")
    first, second = await receiver.next(), await receiver.next()
    assert [headers["X-Reactr-Attempt"] for headers, _ in (first, second)] == ["1", "2"]
    assert first[1] == second[1] == b"hello again"
    assert first[0]["X-Reactr-Result-Id"] == second[0]["X-Reactr-Result-Id"]


async def test_deliveries_are_signed_when_a_secret_is_set(reactr: Reactr, start: Start, receiver: Receiver) -> None:
    wasm(reactr, "echo")
    client = await start(callback_config(secret="hunter2"))
    await answer(client, "POST", with_callback("echo", receiver.url), data=b"signed")
    headers, payload = await receiver.next()
    assert payload == b"hello signed"
    assert verify_signature("hunter2", headers["X-Reactr-Signature"], payload)
    assert not verify_signature("hunter3", headers["X-Reactr-Signature"], payload)


async def test_a_slow_job_is_delivered_when_it_ends(reactr: Reactr, start: Start, receiver: Receiver) -> None:
    wasm(reactr, "slow")
    client = await start()
    started = time.monotonic()
    status, _, _ = await answer(client, "POST", with_callback("slow", receiver.url), data=b"300000000")
    assert status == 200 and time.monotonic() - started < 0.15  # the answer does not wait for the job
    assert (await receiver.next())[1] == b"done"


@pytest.mark.parametrize(
    ("url", "config", "reason"),
    [
        ("RECEIVER", callback_config(allow_private=False), "loopback address"),
        ("http://localhost:9/hook", callback_config(allow_private=False), "loopback address"),
        ("http://169.254.169.254/latest/meta-data/", callback_config(allow_private=False), "link-local"),
        ("http://[::ffff:10.0.0.1]/hook", callback_config(allow_private=False), "private address"),
        ("RECEIVER", callback_config(allow_http=False), "insecure HTTP"),
        ("file:///etc/passwd", callback_config(), "not an absolute http or https URL"),
        ("http://127.1:9/hook", callback_config(allow_private=False), "127.1 (127.0.0.1) is a loopback address"),
        ("http://0x7f.1:9/hook", callback_config(allow_private=False), "0x7f.1 (127.0.0.1) is a loopback address"),
        ("http://134744072/hook", callback_config(blocked_domains=["8.8.8.8"]), "8.8.8.8: the domain is blocked"),
        ("http://1.2.3.4.5/hook", callback_config(), "1.2.3.4.5: ends in a number but is not an IPv4 address"),
        ("http://999.1/hook", callback_config(), "999.1: ends in a number but is not an IPv4 address"),
        ("http://0x100000000/hook", callback_config(), "ends in a number but is not an IPv4 address"),
    ],
)
async def test_a_refused_callback_is_400_and_the_job_never_runs(
    reactr: Reactr, start: Start, receiver: Receiver, url: str, config: Config, reason: str
) -> None:
    runs: list[Job] = []
    reactr.register("count", lambda job, ctx: runs.append(job))
    client = await start(config)
    status, body, _ = await answer(client, "POST", with_callback("count", url.replace("RECEIVER", receiver.url)))
    assert (status, body["code"]) == (400, 400)
    assert body["message"].startswith("callback URL refused: ") and reason in body["message"]
    await asyncio.sleep(0.05)
    assert runs == [] and receiver.calls.empty()


@pytest.mark.parametrize("host", ["2130706433", "127.1", "0x7f.1", "0177.0.0.1", "127.0.0.1."])
async def test_a_legacy_ipv4_host_is_delivered_to_its_address(
    reactr: Reactr, start: Start, receiver: Receiver, host: str
) -> None:
    wasm(reactr, "echo")
    client = await start()
    url = URL(receiver.url)
    callback = str(url).replace("127.0.0.1", host)
    status, body, _ = await answer(client, "POST", with_callback("echo", callback), data=b"cb")
    assert (status, body) == (200, b"")
    delivered, payload = await receiver.next()
    assert payload == b"hello cb"
    assert (delivered["Host"], delivered["X-Reactr-Attempt"]) == (f"127.0.0.1:{url.port}", "1")
