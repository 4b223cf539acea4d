"""POST /do/{job}?callback=URL end to end: a real receiver on loopback gets the outcome."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from reactr_wasm import Config, Job, Reactr
from reactr_wasm.capabilities.egress import read_proxy_environment
from reactr_wasm.config import CallbackConfig, ServerConfig
from reactr_wasm.server.callbacks import verify_signature
from tests.conftest import RUNNABLES
from tests.egress_parts import NAME, Asked, ForwardProxy, ThrowawayCA, make_ca
from tests.test_server_api import Start, answer, wasm


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
    # the run it comes from, as in Redis mode (where a job may run again on another node)
    assert (delivered["X-Reactr-Job-Attempt"], delivered["X-Reactr-Delivery-Id"]) == ("1", f"{result_id}/1")
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


# --- in real networks: a private CA, resolve pins, a forward proxy ------------------------------


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
async def tls_receiver(ca: ThrowawayCA) -> AsyncIterator[Receiver]:
    """A receiver on https://127.0.0.1:PORT with a certificate for api.test (and 127.0.0.1) signed by ``ca``."""
    state = Receiver()
    app = web.Application()
    app.router.add_post("/hook", state.hook)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ca.server_context()).start()
    state.url = f"https://{NAME}:{runner.addresses[0][1]}/hook"
    yield state
    await runner.cleanup()


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    running = await ForwardProxy(hosts={NAME: "127.0.0.1"}).start()
    yield running
    await running.close()


def pin(receiver: Receiver) -> dict[str, list[str]]:
    return {f"{NAME}:{URL(receiver.url).port}": ["127.0.0.1"]}


async def test_a_pinned_callback_is_delivered_over_tls_signed_by_the_ca_file(
    reactr: Reactr, start: Start, tls_receiver: Receiver, ca: ThrowawayCA
) -> None:
    wasm(reactr, "echo")
    client = await start(callback_config(ca_file=ca.ca_cert, resolve=pin(tls_receiver)))
    status, _, _ = await answer(client, "POST", with_callback("echo", tls_receiver.url), data=b"cb")
    assert status == 200
    delivered, payload = await tls_receiver.next()
    assert payload == b"hello cb" and delivered["Host"] == URL(tls_receiver.url).raw_authority


async def test_without_the_ca_file_the_delivery_fails_on_the_certificate(
    reactr: Reactr, start: Start, tls_receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    wasm(reactr, "echo")
    client = await start(callback_config(attempts=1, resolve=pin(tls_receiver)))
    with caplog.at_level(logging.WARNING, logger="reactr_wasm.server.callbacks"):
        assert (await answer(client, "POST", with_callback("echo", tls_receiver.url), data=b"cb"))[0] == 200
        for _ in range(100):
            if "failed (attempt 1 of 1)" in caplog.text:
                break
            await asyncio.sleep(0.05)
    assert "failed (attempt 1 of 1): ClientConnectorCertificateError" in caplog.text
    assert "unable to get local issuer certificate" in caplog.text
    assert tls_receiver.calls.empty()


async def test_a_callback_pinned_to_an_address_the_rules_refuse_is_400(
    reactr: Reactr, start: Start, tls_receiver: Receiver, ca: ThrowawayCA
) -> None:
    runs: list[Job] = []
    reactr.register("count", lambda job, ctx: runs.append(job))
    client = await start(callback_config(allow_private=False, ca_file=ca.ca_cert, resolve=pin(tls_receiver)))
    status, body, _ = await answer(client, "POST", with_callback("count", tls_receiver.url))
    assert (status, body["message"]) == (
        400,
        f"callback URL refused: {NAME} (127.0.0.1) is a loopback address; private destinations are disallowed; "
        "allow them with allow_private = true in [callbacks]",
    )
    await asyncio.sleep(0.05)
    assert runs == [] and tls_receiver.calls.empty()


async def test_a_callback_goes_through_the_proxy_as_a_connect_tunnel(
    reactr: Reactr, start: Start, tls_receiver: Receiver, proxy: ForwardProxy, ca: ThrowawayCA
) -> None:
    wasm(reactr, "echo")
    proxy.credentials = "reactr:s3cret"
    client = await start(callback_config(proxy=proxy.url, ca_file=ca.ca_cert))
    assert (await answer(client, "POST", with_callback("echo", tls_receiver.url), data=b"cb"))[0] == 200
    assert (await tls_receiver.next())[1] == b"hello cb"
    assert proxy.asked == [Asked("CONNECT", URL(tls_receiver.url).raw_authority, "reactr:s3cret")]


async def test_callbacks_take_https_proxy_from_the_environment_and_honour_no_proxy(
    reactr: Reactr, start: Start, tls_receiver: Receiver, proxy: ForwardProxy, ca: ThrowawayCA
) -> None:
    wasm(reactr, "echo")
    environment = read_proxy_environment({"HTTPS_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"})
    client = await start(callback_config(proxy_from_env=True, proxy_environment=environment, ca_file=ca.ca_cert))
    direct = tls_receiver.url.replace(NAME, "127.0.0.1")
    for url in (tls_receiver.url, direct):
        assert (await answer(client, "POST", with_callback("echo", url), data=b"cb"))[0] == 200
        assert (await tls_receiver.next())[0]["Host"] == URL(url).raw_authority
    assert proxy.asked == [Asked("CONNECT", URL(tls_receiver.url).raw_authority, None)]  # 127.0.0.1: NO_PROXY
