"""Every route of the app needs the bearer token but the public ones: walked from the app's own router."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from reactr_wasm import Config, Reactr
from reactr_wasm.config import ServerConfig
from reactr_wasm.server.dashboard import PAGES
from reactr_wasm.server.fastpath import DO_ROUTE
from tests.conftest import wat_module

Client = TestClient[web.Request, web.Application]
Start = Callable[..., Awaitable[Client]]
TOKEN = "route-walk-token"
# Routes answered without a token: registered with add_routes(..., public=True), and listed here.
PUBLIC = {("GET", "/health"), ("HEAD", "/health"), ("GET", "/openapi.json"), ("HEAD", "/openapi.json")} | {
    (method, page)
    for page in PAGES
    for method in ("GET", "HEAD")  # the dashboard's code; its data is guarded
}
UNROUTED_METHOD = "PATCH"  # no route takes it: on a known path it reaches the path's 405 route
PATH_VALUES = {"job": "echo", "id": "a" * 24, "tail": "nowhere"}


@pytest.fixture
def server_config() -> Config:
    return Config(server=ServerConfig(auth_tokens=[TOKEN], drain_timeout=2.0))


def walk(app: web.Application) -> list[tuple[str, str, str]]:
    """``(route method, path pattern, request path)`` for every route the app's router holds."""
    routes = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        pattern = info.get("path") or info.get("formatter")
        assert isinstance(pattern, str), info
        routes.append((route.method, pattern, pattern.format(**PATH_VALUES)))
    return routes


async def status(client: Client, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with client.request(method, path, headers=headers, data=b"x") as response:
        return response.status, response.headers


async def test_every_route_but_the_public_ones_answers_401_without_the_token(reactr: Reactr, start: Start) -> None:
    reactr.register("echo", reactr.engine.load("echo", wat_module("echo")))
    client = await start()
    routes = walk(client.server.app)
    assert {(method, pattern) for method, pattern, _ in routes} >= {
        ("POST", "/do/{job}"), ("GET", "/then/{id}"), ("HEAD", "/then/{id}"), ("DELETE", "/then/{id}"),
        ("GET", "/jobs/{id}"), ("HEAD", "/jobs/{id}"), ("GET", "/health"), ("HEAD", "/health"), ("*", "/{tail}"),
    }  # fmt: skip
    for method, pattern, path in routes:
        sent = UNROUTED_METHOD if method == "*" else method
        anonymous, headers = await status(client, sent, path, {})
        if (method, pattern) in PUBLIC:
            assert anonymous == 200, (method, pattern)
        else:
            assert (anonymous, headers.get("WWW-Authenticate")) == (401, "Bearer"), (method, pattern)
        allowed, _ = await status(client, sent, path, {"Authorization": f"Bearer {TOKEN}"})
        assert allowed != 401, (method, pattern)
        if method == "*":  # a catch-all: 405 on a known path, 404 elsewhere, once past the token
            assert allowed == (404 if pattern == "/{tail}" else 405), (method, pattern)


async def test_the_router_bypass_calls_the_guarded_do_route(reactr: Reactr, start: Start) -> None:
    """``serve`` reaches POST /do/{job} past the router (fastpath.py): through the very handler routed here."""
    client = await start()
    app = client.server.app
    [do] = [route.handler for route in app.router.routes() if route.method == "POST"]
    assert app[DO_ROUTE] is do
