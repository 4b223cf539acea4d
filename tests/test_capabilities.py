"""Capabilities end to end: a config file grants them, a real server runs a guest that calls them.

The guest is ``tests/modules/capability-call.wat`` (one host call chosen by the
payload). The fetch and GraphQL target is a real aiohttp server on loopback;
the database is a real SQLite file (PostgreSQL and Redis in their own tests
below, started by the fixtures in ``services.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from reactr_wasm.capabilities.http_rules import DENIED, DOMAIN, PRIVATE_RANGES
from reactr_wasm.compose import build_service
from reactr_wasm.config import Config, load_config
from tests.conftest import RUNNABLES, wat_module
from tests.services import Service, postgres_server, redis_server

NOT_ENABLED = "capability is not enabled"


def not_enabled(runnable: str, *grants: str) -> str:
    """The refusal a guest gets: Reactr's text, then the config line that grants the capability."""
    listed = ", ".join(f'"{name}"' for name in grants)
    return f"{NOT_ENABLED}; grant it with [runnables.{runnable}] capabilities = [{listed}]"


def rule_denied(reason: str, setting: str, runnable: str = "caller") -> str:
    """A rule's refusal: Reactr's text, then the setting that allows it and where it goes."""
    return f"{DENIED}{reason}; allow with {setting} in [capabilities.http] or [runnables.{runnable}.http]"


Answer = tuple[int, bytes]
Post = Callable[..., Awaitable[Answer]]


def call(op: str, arg1: bytes | str = b"", arg2: bytes | str = b"", n: int = 0, *, len1: int | None = None) -> bytes:
    """A capability-call payload: op, n, len(arg1), arg1, arg2."""
    first = arg1.encode() if isinstance(arg1, str) else arg1
    rest = arg2.encode() if isinstance(arg2, str) else arg2
    size = len(first) if len1 is None else len1
    return op.encode() + bytes([n]) + struct.pack("<I", size) + first + rest


def db_vars(*values: str) -> bytes:
    return b"".join(struct.pack("<I", len(value.encode())) + value.encode() for value in values)


def error_of(answer: Answer) -> str:
    status, body = answer
    assert status == 400, answer
    decoded = json.loads(body)
    assert decoded["code"] == 400
    return str(decoded["message"])


# --- the target: a real HTTP server on loopback --------------------------------------------


async def _hello(_: web.Request) -> web.Response:
    return web.Response(text="hello from target")


async def _missing(_: web.Request) -> web.Response:
    return web.Response(status=404, text="nope")


async def _whoami(request: web.Request) -> web.Response:
    return web.Response(text=request.headers.get("Authorization", "none"))


async def _graphql(request: web.Request) -> web.Response:
    query = (await request.json())["query"]
    if "broken" in query:
        return web.json_response({"data": None, "errors": [{"message": "no such field", "path": "broken"}]})
    return web.json_response({"data": {"echo": query, "b": 1}})


@pytest.fixture
async def target() -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes([web.get("/hello", _hello), web.get("/missing", _missing), web.get("/whoami", _whoami)])
    app.add_routes([web.post("/graphql", _graphql)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"localhost:{runner.addresses[0][1]}"
    await runner.cleanup()


# --- the server under test ----------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    runnables = tmp_path / "runnables"
    runnables.mkdir()
    module = wat_module("capability-call")
    for name in ("caller", "other"):
        (runnables / f"{name}.wasm").write_bytes(module)
    for name in ("cache-set", "cache-get"):
        (runnables / f"{name}.wasm").write_bytes((RUNNABLES / f"{name}.wasm").read_bytes())
    return runnables


@pytest.fixture
async def serve(tmp_path: Path, folder: Path) -> AsyncIterator[Callable[[str], Awaitable[Post]]]:
    """``post = await serve(toml)``: a real server for that config; ``await post(payload, job="caller")``."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(toml: str, env: dict[str, str] | None = None) -> Post:
        path = tmp_path / "reactr.toml"
        path.write_text(f'runnables_dir = "{folder}"\n' + toml)
        service = build_service(load_config(path, env=env or {}), watch=False)
        runner = web.AppRunner(service.app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        session = aiohttp.ClientSession()

        async def stop() -> None:
            await session.close()
            await runner.cleanup()
            await asyncio.to_thread(service.close)

        cleanups.append(stop)

        async def post(payload: bytes, job: str = "caller") -> Answer:
            async with session.post(f"{base}/do/{job}?then=true", data=payload) as response:
                return response.status, await response.read()

        return post

    yield start
    for stop in reversed(cleanups):
        await stop()


LOCAL_HTTP = """
[capabilities.http]
allow_private = true
[runnables.caller]
capabilities = ["http", "graphql"]
"""


# --- fetch_url -----------------------------------------------------------------------------


async def test_fetch_granted_reaches_the_target(serve: Any, target: str) -> None:
    post = await serve(LOCAL_HTTP)
    assert await post(call("f", f"http://{target}/hello")) == (200, b"hello from target")


async def test_fetch_not_granted_is_refused_with_a_logged_reason(
    serve: Any, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    post = await serve(LOCAL_HTTP)
    with caplog.at_level(logging.WARNING, logger="reactr_wasm.guest"):
        assert error_of(await post(call("f", f"http://{target}/hello"), job="other")) == not_enabled(
            "other", "http", "cache"
        )
    assert (
        "fetch_url by other refused: capability 'http' is not granted; "
        'grant it with [runnables.other] capabilities = ["http", "cache"]'
    ) in caplog.text


async def test_nothing_is_granted_but_the_cache_by_default(serve: Any, target: str) -> None:
    post = await serve("")
    assert error_of(await post(call("f", f"http://{target}/hello"))) == not_enabled("caller", "http", "cache")
    assert error_of(await post(call("g", f"http://{target}/graphql", "{a}"))) == not_enabled(
        "caller", "graphql", "cache"
    )
    assert error_of(await post(call("s", "a.txt"))) == not_enabled("caller", "cache", "static")
    assert error_of(await post(call("d", "AddUser", n=0))) == not_enabled("caller", "cache", "db")
    assert error_of(await post(call("d", "AddUser", n=9))) == "query type invalid"  # Reactr's order of checks
    assert error_of(await post(call("c", "missing-key"))) == "key not found"


async def test_a_non_2xx_answer_is_an_error_with_status_and_body(serve: Any, target: str) -> None:
    post = await serve(LOCAL_HTTP)
    assert error_of(await post(call("f", f"http://{target}/missing"))) == "404: nope"


async def test_a_name_resolving_to_loopback_is_refused_without_allow_private(serve: Any, target: str) -> None:
    # "localhost" passes every name rule; the check is on the address actually dialled.
    post = await serve(
        '[capabilities.http]\nallowed_domains = ["localhost"]\n[runnables.caller]\ncapabilities = ["http"]'
    )
    assert error_of(await post(call("f", f"http://{target}/hello"))) == rule_denied(
        PRIVATE_RANGES, "allow_private = true"
    )


async def test_allowed_and_blocked_domains(serve: Any, target: str) -> None:
    post = await serve(
        '[capabilities.http]\nallow_private = true\nallowed_domains = ["*.example.com"]\n'
        '[runnables.caller]\ncapabilities = ["http"]\n'
        '[runnables.other]\ncapabilities = ["http"]\n[runnables.other.http]\nallowed_domains = []\n'
        'blocked_domains = ["localhost"]\n'
    )
    domains = "the host in allowed_domains (and not in blocked_domains)"
    assert error_of(await post(call("f", f"http://{target}/hello"))) == rule_denied(DOMAIN, domains)
    assert error_of(await post(call("f", f"http://{target}/hello"), job="other")) == rule_denied(
        DOMAIN, domains, "other"
    )


async def test_a_runnable_can_get_its_own_http_rules(serve: Any, target: str) -> None:
    post = await serve('[capabilities]\ngrant = ["http"]\n[runnables.caller.http]\nallow_private = true\n')
    assert await post(call("f", f"http://{target}/hello")) == (200, b"hello from target")
    assert error_of(await post(call("f", f"http://{target}/hello"), job="other")) == rule_denied(
        PRIVATE_RANGES, "allow_private = true", "other"
    )


async def test_auth_headers_come_from_the_config_and_its_environment(serve: Any, target: str) -> None:
    post = await serve(
        LOCAL_HTTP + '[capabilities.http.auth]\nlocalhost = "Bearer env(TARGET_TOKEN)"\n',
        env={"TARGET_TOKEN": "s3cret"},
    )
    assert await post(call("f", f"http://{target}/whoami")) == (200, b"Bearer s3cret")


async def test_fetch_header_encoding_and_bad_methods(serve: Any, target: str) -> None:
    post = await serve(LOCAL_HTTP)
    assert await post(call("f", f"http://{target}/whoami::Authorization:mine")) == (200, b"mine")
    assert await post(call("f", f"http://{target}/hello::broken-header")) == (200, b"-2")
    assert await post(call("f", f"http://{target}/hello", n=7)) == (200, b"-2"), "unknown method number"


async def test_fetch_timeout_is_bounded_by_the_job_deadline(serve: Any) -> None:
    # A listener that accepts and never answers: the job's 1 s timeout must end the fetch.
    held: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda _, writer: held.append(writer), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        post = await serve(LOCAL_HTTP + "[limits]\ntimeout = 1\n")
        started = asyncio.get_running_loop().time()
        answer = await post(call("f", f"http://127.0.0.1:{port}/slow"))
        assert asyncio.get_running_loop().time() - started < 3
        for writer in held:
            writer.close()
    assert json.loads(answer[1]) == {
        "code": 504,
        "message": "job timeout: the job ran past its limit of 1 s "
        "(limits.timeout, or runnables.caller.timeout for this runnable)",
    }
    assert answer[0] == 504


# --- graphql_query -------------------------------------------------------------------------


async def test_graphql_posts_the_query_and_returns_go_json(serve: Any, target: str) -> None:
    post = await serve(LOCAL_HTTP)
    answer = await post(call("g", f"http://{target}/graphql", "{ repository }"))
    assert answer == (200, b'{"data":{"b":1,"echo":"{ repository }"}}')
    assert error_of(await post(call("g", f"http://{target}/graphql", "{ broken }"))) == (
        "graphQL error; path: broken, message: no such field"
    )


async def test_graphql_follows_the_http_rules(serve: Any, target: str) -> None:
    post = await serve('[runnables.caller]\ncapabilities = ["graphql"]\n')
    assert error_of(await post(call("g", f"http://{target}/graphql", "{a}"))) == rule_denied(
        PRIVATE_RANGES, "allow_private = true"
    )


# --- get_static_file -----------------------------------------------------------------------


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    root = tmp_path / "static"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("# A")
    (tmp_path / "secret.txt").write_text("do not read")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    return root


async def test_static_files_are_read_from_the_configured_folder(serve: Any, static_dir: Path) -> None:
    post = await serve(f'[capabilities]\ngrant = ["static"]\n[capabilities.static]\ndir = "{static_dir}"\n')
    assert await post(call("s", "docs/a.md")) == (200, b"# A")
    assert await post(call("s", "static/docs/a.md")) == (200, b"# A")
    assert error_of(await post(call("s", "nothing.md"))) == "file does not exist"
    for name in ("../secret.txt", "docs/../../secret.txt", "//etc/passwd", "escape.txt", "docs\\a.md"):
        message = error_of(await post(call("s", name)))
        assert message.startswith(f"static file {name!r} refused: "), message


async def test_relative_static_dir_is_relative_to_the_config_file(serve: Any, static_dir: Path) -> None:
    post = await serve('[capabilities]\ngrant = ["static"]\n[capabilities.static]\ndir = "static"\n')
    assert await post(call("s", "/docs/a.md")) == (200, b"# A")


# --- db_exec -----------------------------------------------------------------------------


DB_QUERIES = """
[[capabilities.db.queries]]
name = "AddUser"
type = "insert"
varCount = 2
query = "INSERT INTO users (uuid, email) VALUES ($1, $2)"
[[capabilities.db.queries]]
name = "GetUser"
type = "select"
varCount = 1
query = "SELECT uuid, email FROM users WHERE uuid = $1"
"""


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, uuid TEXT, email TEXT)")
    yield path


async def test_db_named_queries_on_sqlite(serve: Any, sqlite_file: Path) -> None:
    post = await serve(f'[capabilities]\ngrant = ["db"]\n[capabilities.db]\npath = "{sqlite_file}"\n' + DB_QUERIES)
    assert await post(call("d", "AddUser", db_vars("u-1", "a@example.com"), n=0)) == (
        200,
        b'{"lastInsertID":1,"rowsAffected":0}',
    )
    status, body = await post(call("d", "GetUser", db_vars("u-1"), n=1))
    assert (status, json.loads(body)) == (200, [{"uuid": "u-1", "email": "a@example.com"}])
    assert error_of(await post(call("d", "DROP TABLE users", n=3))) == "query not found"
    assert error_of(await post(call("d", "GetUser", db_vars("u-1"), n=0))) == "query type incorrect"
    assert (
        error_of(await post(call("d", "GetUser", n=1))) == "expected 1 variables, got 0: number of variables incorrect"
    )
    assert error_of(await post(call("d", "GetUser", db_vars("u-1"), n=9))) == "query type invalid"
    with sqlite3.connect(sqlite_file) as connection:
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (1,), "the table is still there"


async def test_db_on_postgresql(serve: Any) -> None:
    with postgres_server() as pg:
        import psycopg

        with psycopg.connect(pg.url, autocommit=True) as connection:
            connection.execute("CREATE TABLE users (id SERIAL PRIMARY KEY, uuid TEXT, email TEXT)")
        post = await serve(f'[capabilities]\ngrant = ["db"]\n[capabilities.db]\nurl = "{pg.url}"\n' + DB_QUERIES)
        assert (await post(call("d", "AddUser", db_vars("u-2", "b@example.com"), n=0)))[0] == 200
        status, body = await post(call("d", "GetUser", db_vars("u-2"), n=1))
        assert (status, json.loads(body)) == (200, [{"uuid": "u-2", "email": "b@example.com"}])


# --- cache backends ------------------------------------------------------------------------


async def test_the_memory_cache_is_shared_by_the_runnables_of_a_server(serve: Any) -> None:
    post = await serve("")
    assert await post(b"very important", job="cache-set") == (200, b"hello")
    assert await post(b"", job="cache-get") == (200, b"very important")
    assert await post(call("c", "name")) == (200, b"very important")


async def test_a_runnable_without_the_cache_grant_is_refused(serve: Any) -> None:
    post = await serve("[runnables.caller]\ncapabilities = []\n")
    assert await post(b"very important", job="cache-set") == (200, b"hello")
    assert error_of(await post(call("c", "name"))) == not_enabled("caller", "cache")


@pytest.fixture(scope="module")
def redis() -> Iterator[Service]:
    with redis_server() as service:
        yield service


async def test_redis_cache_backend_namespaces_keys_per_server(serve: Any, redis: Service) -> None:
    import redis as redis_package

    post = await serve(f'[capabilities.cache]\nbackend = "redis"\nurl = "{redis.url}"\nnamespace = "node-a"\n')
    assert await post(b"kept in redis", job="cache-set") == (200, b"hello")
    assert await post(call("c", "name")) == (200, b"kept in redis")
    client = redis_package.Redis.from_url(redis.url)
    try:
        assert client.get("node-a:name") == b"kept in redis"
    finally:
        client.close()


# --- hostile guests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "function"),
    [("F", "fetch_url"), ("G", "graphql_query"), ("S", "get_static_file"), ("D", "db_exec"), ("C", "cache_get")],
)
async def test_bad_pointers_fail_only_that_job(serve: Any, target: str, op: str, function: str) -> None:
    post = await serve(LOCAL_HTTP)
    status, body = await post(call(op, "x"))
    assert status == 500 and function in body.decode(), body
    assert await post(call("f", f"http://{target}/hello")) == (200, b"hello from target"), "the server still works"


@pytest.mark.parametrize("op", ["f", "g", "s", "d", "c"])
async def test_huge_sizes_fail_only_that_job(serve: Any, op: str) -> None:
    post = await serve(LOCAL_HTTP)
    status, body = await post(call(op, "x", len1=0x7FFF_FFF0))
    assert status == 500 and b"memory" in body.lower(), body


async def test_invalid_utf8_arguments_are_errors_not_crashes(serve: Any, target: str, static_dir: Path) -> None:
    post = await serve(
        LOCAL_HTTP + f'[capabilities.static]\ndir = "{static_dir}"\n[runnables.other]\ncapabilities = ["static"]\n'
    )
    assert error_of(await post(call("f", b"http://\xff\xfe/hello")))
    assert error_of(await post(call("s", b"docs/\xff.md"), job="other")) == "file does not exist"


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[capabilities]\ngrant = ["network"]', "capabilities.grant: unknown capability 'network'"),
        ('[capabilities]\ngrant = ["static"]', "capabilities.grant: grants 'static' but [capabilities.static]"),
        ('[runnables.x]\ncapabilities = ["db"]', "runnables.x.capabilities: grants 'db' but [capabilities.db]"),
        ('[capabilities.cache]\nbackend = "redis"', 'capabilities.cache.url: is required when backend = "redis"'),
        ('[capabilities.http]\nallow_private = "yes"', "capabilities.http.allow_private: must be true or false"),
        ("[capabilities.http]\nallowed_ports = [0]", "capabilities.http.allowed_ports: must be a list of port"),
        ("[capabilities.smtp]\nhost = 1", "capabilities.smtp: unknown table"),
        ('[capabilities.db]\npath = "a.db"\nurl = "postgresql://x"', "set either path (SQLite) or url"),
        ('[[capabilities.db.queries]]\nname = "Q"\ntype = 1\nquery = "SELECT 1"', "neither path nor url is set"),
        (
            '[capabilities.db]\npath = "a.db"\n[[capabilities.db.queries]]\nname = "Q"\ntype = 7\nquery = "x"',
            "capabilities.db.queries[0]: query 'Q': 'type' must be",
        ),
        ("[runnables.x.http]\nallow_http = 1", "runnables.x.http.allow_http: must be true or false"),
        (
            '[capabilities.http.auth]\nhost = "env(NOT_SET_ANYWHERE)"',
            "environment variable NOT_SET_ANYWHERE is not set",
        ),
    ],
)
def test_bad_capability_config_names_file_key_and_reason(tmp_path: Path, toml: str, message: str) -> None:
    from reactr_wasm.errors import ConfigError

    path = tmp_path / "reactr.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})
    assert f"{path}: " in str(raised.value) and message in str(raised.value), str(raised.value)


def test_redacted_config_masks_capability_secrets_and_round_trips(tmp_path: Path) -> None:
    from reactr_wasm.config import dump_toml

    path = tmp_path / "reactr.toml"
    path.write_text(
        '[capabilities]\ngrant = ["cache", "http"]\n[capabilities.http.auth]\n"api.example.com" = "Bearer env(T)"\n'
        '[capabilities.cache]\nbackend = "redis"\nurl = "redis://:pw@127.0.0.1:1/0"\n'
        '[capabilities.db]\npath = "a.db"\n' + DB_QUERIES + '[runnables.x]\ncapabilities = ["http"]\n'
        '[runnables.x.http]\nallowed_domains = ["api.example.com"]\n'
    )
    config = load_config(path, env={"T": "s3cret"})
    assert config.capabilities.http.auth == {"api.example.com": "Bearer s3cret"}
    text = dump_toml(config.redacted())
    assert "s3cret" not in text and "pw@" not in text
    again = tmp_path / "again.toml"
    again.write_text(text)
    reread = load_config(again, env={})
    assert reread.capabilities.db.queries == config.capabilities.db.queries
    assert reread.grants("x") == ["http"] and reread.grants("y") == ["cache", "http"]
    assert reread.runnable("x").http == {"allowed_domains": ["api.example.com"]}


def test_default_config_grants_only_the_cache() -> None:
    assert Config().grants("anything") == ["cache"]


def test_the_readme_capabilities_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Capabilities", 1)[1].split("\n## ", 1)[0]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "reactr.toml"
    path.write_text(example)
    config = load_config(path, env={"GITHUB_TOKEN": "t", "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert config.grants("fetch") == ["http", "cache"] and config.grants("hash") == ["cache"]
    assert [query.name for query in config.capabilities.db.queries] == ["AddUser", "GetUser"]
    assert config.capabilities.http.auth == {"api.github.com": "Bearer t"}
    assert config.capabilities.static.dir == tmp_path / "static"


async def test_loading_warns_about_capabilities_used_but_not_granted(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="reactr_wasm.compose"):
        await serve(
            '[runnables.other]\ncapabilities = ["http", "graphql", "static", "db", "cache"]\n'
            '[capabilities.static]\ndir = "."\n[capabilities.db]\npath = "x.db"\n'
        )
    assert "runnable 'caller' (" in caplog.text
    assert "uses db, graphql, http, static but is not granted it" in caplog.text
    assert "runnable 'other'" not in caplog.text
