"""One destination policy for guest HTTP and webhook callbacks: the same host gets the same answer from both."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from reactr_wasm.capabilities.egress import Egress, resolve_pins
from reactr_wasm.capabilities.errors import CapabilityError
from reactr_wasm.capabilities.http import HttpClient
from reactr_wasm.capabilities.http_rules import DENIED, DOMAIN, HttpRules
from reactr_wasm.capabilities.netrules import domain_refusal, normal_host
from reactr_wasm.config import CallbackConfig
from reactr_wasm.server.callbacks import CallbackRefused, Callbacks

GET = 0
BUECHER = "xn--bcher-kva.example"  # bücher.example, IDNA-encoded


@pytest.mark.parametrize(
    "host", ["bücher.example", "BÜCHER.example", "bücher.example.", "XN--BCHER-KVA.EXAMPLE.", BUECHER, f"{BUECHER}.."]
)
def test_every_spelling_of_a_host_has_one_normal_form(host: str) -> None:
    assert normal_host(host) == BUECHER
    assert normal_host(normal_host(host)) == BUECHER  # idempotent: callers may normalise twice


@pytest.mark.parametrize(
    ("host", "allowed", "blocked", "aliases", "verdict"),
    [
        ("api.example.com", [], [], [], None),
        ("api.example.com", ["*.example.com"], [], [], None),
        ("example.org", ["*.example.com"], [], [], "not allowed"),
        ("x.bad.test", ["*.bad.test"], ["x.bad.test"], [], "blocked"),  # deny wins
        ("alias.test", [], ["evil.test"], ["evil.test."], "blocked"),  # the CNAME target counts for blocking
        ("alias.test", ["alias.test"], [], ["elsewhere.test"], None),  # ...but allowing needs the host itself
        ("BÜCHER.example.", [BUECHER], [], [], None),
        ("Shop.Bücher.Example", ["*.bücher.example."], [], [], None),
        (".example.com", ["example.com"], [], [], "not allowed"),  # an empty label never crashes the matcher
    ],
)
def test_domain_refusal(host: str, allowed: list[str], blocked: list[str], aliases: list[str], verdict: str) -> None:
    assert domain_refusal(host, allowed, blocked, aliases=aliases) == verdict


# Hosts written oddly (case, trailing dot, IDN in either form) against lists written oddly too.
ODD_CASES = [
    ("BÜCHER.example.", [], [BUECHER]),
    ("xn--bcher-kva.example", [], ["Bücher.Example"]),
    ("Shop.BÜCHER.example.", [], ["*.xn--bcher-kva.example."]),
    ("Example.COM.", ["example.com."], []),
    ("API.Example.COM", ["*.EXAMPLE.com"], []),
    ("bücher.example", ["xn--bcher-kva.example"], []),
    ("other.example", [BUECHER], []),
    ("BÜCHER.example.", ["*.example"], ["bücher.example"]),
]


async def _fetch_refused(url: str, allowed: list[str], blocked: list[str], port: int) -> bool:
    """Whether ``fetch_url`` refuses ``url`` for its domain; an allowed one must reach the loopback server."""
    host = url.split("/")[2].rsplit(":", 1)[0]
    rules = HttpRules(allowed_domains=tuple(allowed), blocked_domains=tuple(blocked), allow_private=True)
    egress = Egress(pins=resolve_pins({f"{normal_host(host)}:{port}": "127.0.0.1"}))
    with HttpClient(rules, egress=egress) as client:
        try:
            body = await asyncio.to_thread(client.fetch, GET, url, b"")
        except CapabilityError as error:
            assert str(error) == DENIED + DOMAIN
            return True
    assert body == b"reached"
    return False


async def _callback_refused(url: str, allowed: list[str], blocked: list[str]) -> bool:
    config = CallbackConfig(allow_private=True, allowed_domains=allowed, blocked_domains=blocked)
    callbacks = Callbacks(config)
    try:
        await callbacks.check(url)
    except CallbackRefused as error:
        assert "the domain is" in str(error)
        return True
    finally:
        await callbacks.close()
    return False


@pytest.mark.parametrize(("host", "allowed", "blocked"), ODD_CASES)
async def test_fetch_url_and_callbacks_judge_an_odd_host_alike(
    host: str, allowed: list[str], blocked: list[str]
) -> None:
    async def reached(request: web.Request) -> web.Response:
        return web.Response(body=b"reached")

    app = web.Application()
    app.router.add_get("/", reached)
    async with TestServer(app, host="127.0.0.1") as server:
        url = f"http://{host}:{server.port}/"
        fetch = await _fetch_refused(url, allowed, blocked, server.port)
        callback = await _callback_refused(url, allowed, blocked)
    assert fetch == callback, f"fetch_url refused: {fetch}, callbacks refused: {callback}"
    expected = domain_refusal(host, allowed, blocked) is not None
    assert fetch is expected
