"""Guest HTTP in real networks: ``resolve`` pins, a private CA (``ca_file``), a forward proxy.

Everything is real and on loopback: a CA made with ``openssl`` at test time, an
aiohttp HTTPS server with a certificate it signed for ``api.test``, a CONNECT
proxy on asyncio streams (``egress_parts``), and a guest
(``tests/modules/capability-call.wat``) calling ``fetch_url`` through a
server built from a config file. The proxy knows ``api.test`` (its own DNS);
this machine does not, so a request that reaches the target by name went
through the pin or the proxy.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from reactr_wasm.capabilities.egress import Egress
from reactr_wasm.capabilities.http import CapabilityError, HttpClient, HttpRules, Resolved
from reactr_wasm.capabilities.http_rules import DENIED, PRIVATE_RANGES
from reactr_wasm.compose import build_service
from reactr_wasm.config import load_config
from tests.conftest import wat_module
from tests.egress_parts import NAME, Asked, ForwardProxy, ThrowawayCA, make_ca
from tests.test_capabilities import Post, call, error_of, rule_denied

GET = 0
GRANT = '[runnables.caller]\ncapabilities = ["http"]\n'


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@dataclass
class Target:
    """An HTTPS (certificate for api.test and 127.0.0.1) and a plain HTTP port of one app."""

    https: int = 0
    http: int = 0
    hosts: list[str] = field(default_factory=list)  # the Host header of each request, in order


@pytest.fixture
async def target(ca: ThrowawayCA) -> AsyncIterator[Target]:
    state = Target()

    async def hello(request: web.Request) -> web.Response:
        state.hosts.append(request.host)
        return web.Response(text=f"hello from {request.host.split(':')[0]}")

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    https = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ca.server_context())
    await https.start()
    http = web.TCPSite(runner, "127.0.0.1", 0)
    await http.start()
    state.https, state.http = (address[1] for address in runner.addresses)
    yield state
    await runner.cleanup()


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    running = await ForwardProxy(hosts={NAME: "127.0.0.1", "public.test": "127.0.0.1"}).start()
    yield running
    await running.close()


Serve = Callable[..., Awaitable[Post]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """``post = await serve(toml, env)``: a real server for that config; ``await post(payload)`` runs ``caller``."""
    folder = tmp_path / "runnables"
    folder.mkdir()
    (folder / "caller.wasm").write_bytes(wat_module("capability-call"))
    stops: list[Callable[[], Awaitable[None]]] = []

    async def start(toml: str, env: dict[str, str] | None = None) -> Post:
        path = tmp_path / "reactr.toml"
        path.write_text(f'runnables_dir = "{folder}"\n' + toml)
        service = build_service(load_config(path, env=env or {}), watch=False)
        runner = web.AppRunner(service.app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        session = aiohttp.ClientSession(f"http://127.0.0.1:{runner.addresses[0][1]}")

        async def stop() -> None:
            await session.close()
            await runner.cleanup()
            await asyncio.to_thread(service.close)

        stops.append(stop)

        async def post(payload: bytes) -> tuple[int, bytes]:
            async with session.post("/do/caller?then=true", data=payload) as response:
                return response.status, await response.read()

        return post

    yield start
    for stop in reversed(stops):
        await stop()


@pytest.fixture
def ca_beside_config(ca: ThrowawayCA, tmp_path: Path) -> str:
    """The CA's certificate copied next to the config file ``serve`` writes: ``ca_file = "ca.pem"``."""
    shutil.copy(ca.ca_cert, tmp_path / "ca.pem")
    return "ca.pem"


def http_table(*lines: str, resolve: dict[str, str] | None = None) -> str:
    text = "[capabilities.http]\n" + "".join(f"{line}\n" for line in lines)
    if resolve:
        text += "[capabilities.http.resolve]\n" + "".join(f'"{key}" = "{value}"\n' for key, value in resolve.items())
    return text + GRANT


# --- resolve and ca_file -------------------------------------------------------------------------


async def test_a_pinned_name_reaches_a_private_https_service_signed_by_the_ca_file(
    serve: Serve, target: Target, ca_beside_config: str
) -> None:
    post = await serve(
        http_table(
            "allow_private = true", f'ca_file = "{ca_beside_config}"', resolve={f"{NAME}:{target.https}": "127.0.0.1"}
        )
    )
    assert await post(call("f", f"https://{NAME}:{target.https}/hello", n=GET)) == (200, b"hello from api.test")
    assert target.hosts == [f"{NAME}:{target.https}"]  # Host (and SNI, and the certificate check) kept the name


async def test_without_the_ca_file_the_certificate_is_refused(serve: Serve, target: Target) -> None:
    post = await serve(http_table("allow_private = true", resolve={f"{NAME}:{target.https}": "127.0.0.1"}))
    url = f"https://{NAME}:{target.https}/hello"
    assert error_of(await post(call("f", url, n=GET))) == f'Get "{url}": tls: unable to get local issuer certificate'
    assert target.hosts == []


async def test_a_pin_to_an_address_the_rules_refuse_is_refused(
    serve: Serve, target: Target, ca_beside_config: str
) -> None:
    post = await serve(http_table(f'ca_file = "{ca_beside_config}"', resolve={f"{NAME}:{target.https}": "127.0.0.1"}))
    assert error_of(await post(call("f", f"https://{NAME}:{target.https}/hello", n=GET))) == rule_denied(
        PRIVATE_RANGES, "allow_private = true"
    )
    assert target.hosts == []


async def test_a_pin_is_for_its_port_only(serve: Serve, target: Target, ca_beside_config: str) -> None:
    post = await serve(
        http_table("allow_private = true", f'ca_file = "{ca_beside_config}"', resolve={f"{NAME}:1": "127.0.0.1"})
    )
    error = error_of(await post(call("f", f"https://{NAME}:{target.https}/hello", n=GET)))
    assert error.startswith(f'Get "https://{NAME}:{target.https}/hello": dial tcp: lookup {NAME}: ')
    assert target.hosts == []


# --- through a proxy -----------------------------------------------------------------------------


async def test_https_goes_through_the_proxy_as_a_connect_tunnel_with_credentials(
    serve: Serve, target: Target, proxy: ForwardProxy, ca_beside_config: str
) -> None:
    proxy.credentials = "reactr:s3cret word"
    proxy_url = f"http://reactr:s3cret%20word@127.0.0.1:{proxy.port}"
    post = await serve(http_table("allow_private = true", f'proxy = "{proxy_url}"', f'ca_file = "{ca_beside_config}"'))
    assert await post(call("f", f"https://{NAME}:{target.https}/hello", n=GET)) == (200, b"hello from api.test")
    assert proxy.asked == [Asked("CONNECT", f"{NAME}:{target.https}", "reactr:s3cret word")]
    assert target.hosts == [f"{NAME}:{target.https}"]


async def test_plain_http_goes_through_the_proxy_in_absolute_form(
    serve: Serve, target: Target, proxy: ForwardProxy
) -> None:
    post = await serve(http_table("allow_private = true", f'proxy = "127.0.0.1:{proxy.port}"'))  # no scheme: http://
    url = f"http://{NAME}:{target.http}/hello"
    assert await post(call("f", url, n=GET)) == (200, b"hello from api.test")
    assert proxy.asked == [Asked("GET", url, None)]


async def test_a_proxy_refusal_reaches_the_guest_without_the_credentials(
    serve: Serve, target: Target, proxy: ForwardProxy, ca_beside_config: str
) -> None:
    proxy.credentials = "reactr:right"
    post = await serve(
        http_table(
            "allow_private = true",
            f'proxy = "http://reactr:wrong@127.0.0.1:{proxy.port}"',
            f'ca_file = "{ca_beside_config}"',
        )
    )
    url = f"https://{NAME}:{target.https}/hello"
    assert (
        error_of(await post(call("f", url, n=GET))) == f'Get "{url}": proxyconnect: 407 Proxy Authentication Required'
    )
    assert target.hosts == []


async def test_a_pinned_name_goes_direct_not_through_the_proxy(
    serve: Serve, target: Target, proxy: ForwardProxy, ca_beside_config: str
) -> None:
    post = await serve(
        http_table(
            "allow_private = true",
            f'proxy = "http://127.0.0.1:{proxy.port}"',
            f'ca_file = "{ca_beside_config}"',
            resolve={f"{NAME}:{target.https}": "127.0.0.1"},
        )
    )
    assert await post(call("f", f"https://{NAME}:{target.https}/hello", n=GET)) == (200, b"hello from api.test")
    assert proxy.asked == []


async def test_proxy_from_env_takes_https_proxy_and_honours_no_proxy(
    serve: Serve, target: Target, proxy: ForwardProxy, ca_beside_config: str
) -> None:
    env = {"HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}", "NO_PROXY": "localhost, .example.com,127.0.0.0/8"}
    post = await serve(
        http_table("allow_private = true", "proxy_from_env = true", f'ca_file = "{ca_beside_config}"'), env
    )
    assert await post(call("f", f"https://{NAME}:{target.https}/hello", n=GET)) == (200, b"hello from api.test")
    assert await post(call("f", f"https://127.0.0.1:{target.https}/hello", n=GET)) == (200, b"hello from 127.0.0.1")
    assert proxy.asked == [Asked("CONNECT", f"{NAME}:{target.https}", None)]  # 127.0.0.1 matched NO_PROXY
    # HTTP_PROXY is not set: plain http goes direct, and api.test does not resolve here.
    error = error_of(await post(call("f", f"http://{NAME}:{target.http}/hello", n=GET)))
    assert error.startswith(f'Get "http://{NAME}:{target.http}/hello": dial tcp: lookup {NAME}: ')
    assert len(proxy.asked) == 1


async def test_without_proxy_from_env_the_variables_are_ignored(
    serve: Serve, target: Target, proxy: ForwardProxy, ca_beside_config: str
) -> None:
    env = {"HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}"}
    post = await serve(http_table("allow_private = true", f'ca_file = "{ca_beside_config}"'), env)
    assert await post(call("f", f"https://127.0.0.1:{target.https}/hello", n=GET)) == (200, b"hello from 127.0.0.1")
    assert proxy.asked == []


# --- what the address rules mean through a proxy (the client alone, DNS answers given) ------------


class Lookups:
    """This machine's DNS for the test: fixed answers, and a record of the names asked."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> Resolved:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError("no such host")
        return Resolved((self.answers[host],))


@pytest.fixture
def client_for() -> Iterator[type[HttpClient]]:
    made: list[HttpClient] = []

    class Tracked(HttpClient):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    yield Tracked
    for client in made:
        client.close()


@pytest.mark.parametrize("proxy_host", ["127.0.0.1", "localhost"])  # an address, or a name the system resolves
async def test_the_rules_judge_our_lookup_and_the_proxy_resolves_again(
    target: Target, proxy: ForwardProxy, client_for: type[HttpClient], proxy_host: str
) -> None:
    # The proxy's own address is private (loopback) and trusted; the destination passed the rules
    # because HERE it resolved to a public address - and the proxy, resolving it itself, reached
    # loopback. That is the residual risk the README states: the proxy's DNS has the last word.
    lookups = Lookups({"public.test": "93.184.215.14"})
    egress = Egress(http_proxy=f"http://{proxy_host}:{proxy.port}")
    client = client_for(HttpRules(), resolver=lookups, egress=egress)
    url = f"http://public.test:{target.http}/hello"
    assert await asyncio.to_thread(client.fetch, GET, url, b"") == b"hello from public.test"
    assert lookups.asked == ["public.test"] and proxy.asked == [Asked("GET", url, None)]


@pytest.mark.parametrize(
    ("host", "refusal"),
    [
        ("private.test", DENIED + PRIVATE_RANGES),  # resolves here to 10.0.0.7
        ("127.0.0.1", DENIED + PRIVATE_RANGES),  # a literal address is judged as written
        ("nowhere.test", "dial tcp: lookup nowhere.test: no such host"),  # cannot be checked: refused
    ],
)
async def test_through_a_proxy_a_destination_the_rules_refuse_is_never_asked_for(
    target: Target, proxy: ForwardProxy, client_for: type[HttpClient], host: str, refusal: str
) -> None:
    client = client_for(
        HttpRules(), resolver=Lookups({"private.test": "10.0.0.7"}), egress=Egress(http_proxy=proxy.url)
    )
    with pytest.raises(CapabilityError) as caught:
        await asyncio.to_thread(client.fetch, GET, f"http://{host}:{target.http}/hello", b"")
    assert str(caught.value).endswith(refusal)
    assert proxy.asked == [] and target.hosts == []


async def test_with_allow_private_nothing_is_looked_up_and_the_proxy_resolves(
    target: Target, proxy: ForwardProxy, client_for: type[HttpClient]
) -> None:
    lookups = Lookups({})
    client = client_for(HttpRules(allow_private=True), resolver=lookups, egress=Egress(http_proxy=proxy.url))
    assert (
        await asyncio.to_thread(client.fetch, GET, f"http://{NAME}:{target.http}/hello", b"") == b"hello from api.test"
    )
    assert lookups.asked == [] and len(proxy.asked) == 1


async def test_a_proxy_that_cannot_be_reached_is_named_as_the_failure(client_for: type[HttpClient]) -> None:
    client = client_for(HttpRules(allow_private=True), egress=Egress(https_proxy="http://reactr:pw@127.0.0.1:1"))
    with pytest.raises(CapabilityError) as caught:
        await asyncio.to_thread(client.fetch, GET, f"https://{NAME}/hello", b"")
    assert str(caught.value) == f'Get "https://{NAME}/hello": proxyconnect tcp: connection refused'
