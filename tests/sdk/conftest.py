"""Fixtures shared by the SDK tests of both languages: the local HTTP target, the database, the config."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from reactr_wasm import Config
from reactr_wasm.config import CallbackConfig, ServerConfig


@pytest.fixture
def server_config() -> Config:
    return Config(server=ServerConfig(drain_timeout=2.0), callbacks=CallbackConfig(allow_private=True))


@pytest.fixture
async def target() -> AsyncIterator[str]:
    """A real HTTP server for fetch_url and graphql_query; answers its base URL."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen = {
            "method": request.method,
            "body": body.decode(),
            "content_type": request.headers.get("Content-Type", ""),
            "x_probe": request.headers.get("X-Probe", ""),
        }
        return web.json_response(seen)

    async def graphql(request: web.Request) -> web.Response:
        query = (await request.json())["query"]
        if "broken" in query:
            return web.json_response({"errors": [{"message": "no such field", "path": ["broken"]}]})
        return web.json_response({"data": {"echo": query}})

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="fetched from the target")

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="nope")

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/missing", missing)
    app.router.add_route("*", "/echo", echo)
    app.router.add_post("/graphql", graphql)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    """The SQLite file of the ``DB`` queries (``support.py``), with its table."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (uuid TEXT PRIMARY KEY, email TEXT NOT NULL)")
    yield path
