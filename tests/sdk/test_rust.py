"""The Rust guest SDK (sdk/rust, crate ``suborbital``) and its tooling, through a real server.

Guests are built from source at test time with ``RUST.build`` (once per session): the
test-only ``tests/guests/rust/*`` runnables and the examples in ``runnables/src``. Every
SDK function is driven by a runnable served by the real aiohttp app, with capabilities
configured the way a user writes ``reactr.toml``; HTTP and GraphQL calls go to a real
local server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reactr_wasm import Reactr, RunErr, WasmEngine
from reactr_wasm.compose import build_backends, build_reactr, register_wasm
from reactr_wasm.config import ServerConfig, parse_config
from reactr_wasm.server.app import create_app
from reactr_wasm.tooling import rustc
from reactr_wasm.tooling.base import BuildFailed, ToolchainMissing
from reactr_wasm.tooling.rust import RUST
from tests.conftest import ROOT, RUNNABLES
from tests.sdk.support import (
    Client,
    Serve,
    db_queries_scenario,
    do,
    error,
    not_enabled,
    ok,
    request,
    static_files_scenario,
)

GUESTS = ROOT / "tests" / "guests" / "rust"
EXAMPLES = sorted(folder.name for folder in (ROOT / "runnables" / "src").iterdir() if RUST.detect(folder))
Start = Callable[..., Awaitable[Client]]  # conftest's start fixture

pytestmark = pytest.mark.skipif(
    not rustc.DEBIAN_RUSTC.exists(), reason=f"Debian's rustc is not installed ({rustc.APT_INSTALL})"
)


# --- modules ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def guests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The test-only runnables of tests/guests/rust, compiled once per session."""
    out = tmp_path_factory.mktemp("rust-guests")
    modules = {}
    for source in sorted(GUESTS.iterdir()):
        RUST.build(source, out / f"{source.name}.wasm", lambda line: None)
        modules[source.name] = (out / f"{source.name}.wasm").read_bytes()
    return modules


def example(name: str) -> bytes:
    return (RUNNABLES / f"{name}.wasm").read_bytes()


# --- a server configured like reactr.toml -------------------------------------------------------

NO_SEPARATOR = 'URL must not contain "::"'


@pytest.fixture
async def serve(tmp_path: Path, guests: dict[str, bytes]) -> AsyncIterator[Serve]:
    """``await serve(toml, **extra_modules)``: the app with the config's capabilities.

    Serves ``probe`` (tests/guests/rust/sdk-probe), every Rust example, and ``extra_modules``
    (name -> wasm bytes), built through the composition root exactly as ``serve`` does.
    """
    opened: list[tuple[Client, Reactr, Any]] = []

    async def start(toml: str = "", **extra: bytes) -> Client:
        config = parse_config(tomllib.loads(toml), source="reactr.toml", base=tmp_path, env={})
        config.server = ServerConfig(drain_timeout=2.0)
        backends = build_backends(config)
        reactr = build_reactr(config, backends)
        modules = {"probe": guests["sdk-probe"], **{name: example(name) for name in EXAMPLES}, **extra}
        for name, wasm in modules.items():
            register_wasm(reactr, config, name, wasm, tmp_path / f"{name}.wasm", backends)
        client: Client = TestClient(TestServer(create_app(reactr, config), host="127.0.0.1"))
        await client.start_server()
        opened.append((client, reactr, backends))
        return client

    yield start
    for client, reactr, backends in reversed(opened):
        await client.close()
        reactr.close()
        backends.close()


# --- the runnable contract (start fixture from conftest) ----------------------------------------


async def test_echo_error_codes_and_registration(
    reactr: Reactr, start: Start, guests: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    for name, wasm in (("probe", guests["sdk-probe"]), ("unregistered", guests["unregistered"])):
        reactr.register(name, reactr.engine.load(name, wasm))
    reactr.register("hello-echo", str(RUNNABLES / "hello-echo.wasm"))
    client = await start()

    assert await ok(client, "probe", "echo\nline one\nline two") == b"line one\nline two"
    big = bytes(range(256)) * 4096  # 1 MiB, every byte value
    assert await ok(client, "hello-echo", big) == b"hello " + big
    # Reactr's own template (its `_start` calling use_runnable) builds unchanged: hello-echo.
    assert await ok(client, "hello-echo", "joe") == b"hello joe"
    assert await error(client, "probe", "fail\n418\nI'm a teapot") == (418, {"code": 418, "message": "I'm a teapot"})
    # A code outside 400-599 keeps its value in the body; the status is 500.
    assert await error(client, "probe", "fail\n7\nseven") == (500, {"code": 7, "message": "seven"})
    assert await error(client, "probe", "nonsense") == (400, {"code": 400, "message": 'unknown operation "nonsense"'})
    # A module that never registers its runnable fails like Reactr's SDK does.
    assert await error(client, "unregistered", "x") == (500, {"code": -1, "message": "No runnable set"})
    # A panic reaches the caller and the log with its message and location (the SDK's panic
    # hook calls return_abort before the trap), not as a bare `unreachable` trap.
    with caplog.at_level(logging.ERROR, logger="reactr_wasm.guest"):
        status, body = await error(client, "probe", "panic")
    assert status == 500 and body["code"] == -1, body
    assert re.fullmatch(r"runnable abort: probe panicked; file: \S*lib\.rs, line: 114, col: \d+", body["message"])
    assert any(body["message"] in record.getMessage() for record in caplog.records)
    # util: invalid UTF-8 is replaced, JSON strings are escaped.
    assert await ok(client, "probe", "utf8") == "ok\ufffd".encode()
    assert await ok(client, "probe", 'json\nsay "hi"\\\t\x01 é') == '"say \\"hi\\"\\\\\\t\\u0001 é"'.encode()


async def test_request_fields(reactr: Reactr, start: Start, guests: dict[str, bytes]) -> None:
    reactr.register("probe", reactr.engine.load("probe", guests["sdk-probe"]))
    client = await start()
    body = request(
        "req",
        url="/things/9?q=search",
        method="PATCH",
        headers={"x-test": "yes"},
        params={"id": "9"},
        state={"hello": "what is up"},
    )
    fields = json.loads(await ok(client, "probe", body))
    assert fields == {
        "method": "PATCH", "url": "/things/9?q=search", "id": "5d6f1c1e-0000-4000-8000-000000000001",
        "body_raw": "req", "body_field": "ERR unknown error returned from host",  # body is not JSON
        "header": "yes", "url_param": "9", "state": "what is up", "query_param": "search",
        "added": "", "plain_method": "PATCH", "plain_state": 'Some("what is up")',
    }  # fmt: skip

    # Over HTTP a plain body makes a request job too: the fields are the HTTP request's.
    fields = json.loads(await ok(client, "probe", "req"))
    assert (fields["method"], fields["url"], fields["body_raw"]) == ("POST", "/do/probe?then=true", "req")
    # Outside a request job (a raw job, embedded) every read fails as a HostErr; the
    # Reactr-shaped getters answer empty.
    fields = json.loads(reactr.do("probe", b"req").then(timeout=10))
    unknown = "ERR unknown error returned from host"
    assert {key: value for key, value in fields.items() if not key.startswith("plain")} == dict.fromkeys(
        ("method", "url", "id", "body_raw", "body_field", "header", "url_param", "state", "query_param", "added"),
        unknown,
    )
    assert (fields["plain_method"], fields["plain_state"]) == ("", "None")


async def test_request_setters_change_what_later_reads_see(
    reactr: Reactr, start: Start, guests: dict[str, bytes]
) -> None:
    reactr.register("probe", reactr.engine.load("probe", guests["sdk-probe"]))
    client = await start()
    fields = json.loads(await ok(client, "probe", request("req-set", headers={}, params={}, state={"hello": "x"})))
    assert fields["added"] == "yes"
    assert (fields["method"], fields["url"], fields["query_param"]) == ("PUT", "/changed?q=new", "new")
    assert (fields["url_param"], fields["state"]) == ("7", "changed")
    assert json.loads(fields["body_raw"]) == {"name": "field"} and fields["body_field"] == "field"

    # No request to change (a raw job, embedded): the HostErr passes through `?` as code 1.
    with pytest.raises(RunErr) as failed:
        reactr.do("probe", b"req-set").then(timeout=10)
    assert (failed.value.code, failed.value.message) == (1, "unknown error returned from host")


async def test_response_headers(reactr: Reactr, start: Start, guests: dict[str, bytes]) -> None:
    reactr.register("probe", reactr.engine.load("probe", guests["sdk-probe"]))
    client = await start()
    status, body, headers = await do(client, "probe", request("resp\nX-Probe\nset by rust"))
    assert (status, body) == (200, b"headers set")
    assert headers["X-Probe"] == "set by rust" and headers["Content-Type"] == "text/x-probe"


async def test_logging_levels(
    reactr: Reactr, start: Start, guests: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    reactr.register("probe", reactr.engine.load("probe", guests["sdk-probe"]))
    client = await start()
    with caplog.at_level(logging.DEBUG, logger="reactr_wasm.guest"):
        assert await ok(client, "probe", "log\nfrom rust") == b"logged"
    lines = [(record.levelno, record.getMessage()) for record in caplog.records if record.name == "reactr_wasm.guest"]
    assert lines == [
        (logging.DEBUG, "[probe] debug from rust"),
        (logging.INFO, "[probe] info from rust"),
        (logging.WARNING, "[probe] warn from rust"),
        (logging.ERROR, "[probe] error from rust"),
    ]


# --- cache, chaining, examples ------------------------------------------------------------------


async def test_cache_set_get_and_ttl(serve: Serve) -> None:
    client = await serve()
    assert await error(client, "probe", "cache-get\ncolour") == (500, {"code": 1, "message": "key not found"})
    assert await ok(client, "probe", "cache-set\ncolour\nblue\n0") == b"stored"
    assert await ok(client, "probe", "cache-get\ncolour") == b"blue"
    # The cache is shared with the examples: cache-get reads `name`.
    assert await ok(client, "probe", "cache-set\nname\nvery important\n0") == b"stored"
    assert await ok(client, "cache-get") == b"very important"
    assert await ok(client, "probe", "cache-set\nbrief\nsoon gone\n1") == b"stored"
    assert await ok(client, "probe", "cache-get\nbrief") == b"soon gone"
    await asyncio.sleep(1.2)  # the TTL is in seconds
    assert await error(client, "probe", "cache-get\nbrief") == (500, {"code": 1, "message": "key not found"})
    assert await ok(client, "probe", "cache-get\ncolour") == b"blue"  # ttl 0: no expiry


async def test_cache_not_granted(serve: Serve) -> None:
    client = await serve('[capabilities]\ngrant = []\n[runnables.probe]\ncapabilities = ["http"]\n')
    assert await error(client, "probe", "cache-get\nx") == (500, not_enabled("probe", "http", "cache"))
    status, body = await error(client, "probe", "cache-set\nx\ny\n0")
    assert (status, body["code"]) == (500, 1) and body["message"].startswith("cache set failed")
    assert await error(client, "cache-set", "v") == (500, {"code": 500, "message": "cache set failed"})
    assert await error(client, "counter", "c") == (500, {"code": 500, "message": "cache set failed"})


async def test_run_job_chaining(serve: Serve) -> None:
    client = await serve()
    assert await ok(client, "probe", "job\nhello-echo\nfrom a chain") == b"hello from a chain"
    assert await ok(client, "probe", "job\nprobe\njob\nprobe\necho\ntwo levels") == b"two levels"
    # The chained runnable's own RunErr comes back with its code and message (JSON parsed back).
    assert await error(client, "probe", "job\nreturn-err\nx") == (400, {"code": 400, "message": "job failed"})
    tricky = 'quote " backslash \\ tab \t unicode é ☃ 😀'
    assert await error(client, "probe", f"job\nprobe\nfail\n-7\n{tricky}") == (500, {"code": -7, "message": tricky})
    assert await error(client, "probe", "job\nnope\nx") == (
        500, {"code": 1, "message": 'failed to getWorker for jobType "nope"'},
    )  # fmt: skip
    deep = "echo\nbottom"
    for _ in range(9):
        deep = f"job\nprobe\n{deep}"
    assert await error(client, "probe", deep) == (500, {"code": 1, "message": "job chain depth limit (8) reached"})


async def test_counter_example(serve: Serve) -> None:
    client = await serve()
    assert [await ok(client, "counter", "visits") for _ in range(3)] == [b"1", b"2", b"3"]
    assert await ok(client, "counter", "other") == b"1"
    assert await ok(client, "counter") == b"1"  # empty input counts `default`
    assert await ok(client, "probe", "cache-get\ncounter:default") == b"1"
    await ok(client, "probe", "cache-set\ncounter:bad\n12a\n0")
    assert await error(client, "counter", "bad") == (500, {"code": 500, "message": 'counter "bad" holds a non-number'})
    await ok(client, "probe", "cache-set\ncounter:top\n18446744073709551615\n0")
    assert await error(client, "counter", "top") == (500, {"code": 500, "message": 'counter "top" overflowed'})
    assert await error(client, "counter", b"\xff") == (400, {"code": 400, "message": "counter name must be UTF-8"})


async def test_transform_example(serve: Serve) -> None:
    client = await serve()
    body = request('{"name":"cohix"}', url="/orders?lang=en", headers={"x-greeting": "hi"}, params={"id": "42"})
    status, data, headers = await do(client, "transform", body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert data == b'{"message":"hi, cohix!","name":"COHIX","method":"POST","id":"42","lang":"en"}'
    data = await ok(client, "transform", request('{"name":"Zoë \\"Z\\""}'))
    assert data == '{"message":"hello, Zoë \\"Z\\"!","name":"ZOë \\"Z\\"","method":"POST","id":"","lang":""}'.encode()
    missing = (400, {"code": 400, "message": 'body field "name" is required'})
    for bad in ("{}", '{"name":""}', '{"name":3}', "not json"):
        assert await error(client, "transform", request(bad)) == missing
    assert await error(client, "transform", "raw") == missing  # over HTTP, "raw" is the request's body
    with WasmEngine() as engine, pytest.raises(RunErr) as failed:  # a raw job, embedded
        engine.load("transform", (RUNNABLES / "transform.wasm").read_bytes()).run(b"raw")
    assert (failed.value.code, failed.value.message) == (400, "transform needs a request job")


async def test_request_info_outside_a_request() -> None:
    with WasmEngine() as engine, pytest.raises(RunErr) as failed:  # a raw job, embedded
        engine.load("request-info", (RUNNABLES / "request-info.wasm").read_bytes()).run(b"x")
    assert (failed.value.code, failed.value.message) == (500, "method: unknown error returned from host")


# --- capabilities: http, graphql, static, db ----------------------------------------------------


HTTP_GRANTED = """
[capabilities.http]
allow_private = true
[runnables.probe]
capabilities = ["http", "graphql", "cache"]
[runnables.fetch]
capabilities = ["http"]
"""


async def test_http_methods_headers_and_errors(serve: Serve, target: str) -> None:
    client = await serve(HTTP_GRANTED)
    assert await ok(client, "probe", f"http\nGET\n{target}/hello") == b"fetched from the target"
    for method in ("POST", "PUT", "PATCH"):
        seen = json.loads(await ok(client, "probe", f"http\n{method}\n{target}/echo\npayload\nX-Probe=one"))
        assert (seen["method"], seen["body"], seen["x_probe"]) == (method, "payload", "one")
        assert seen["content_type"] == "application/octet-stream"  # a body without a Content-Type
    seen = json.loads(await ok(client, "probe", f"http\nPOST\n{target}/echo\n{{}}\nContent-Type=application/json"))
    assert seen["content_type"] == "application/json"
    for method in ("GET", "OPTIONS", "DELETE"):
        seen = json.loads(await ok(client, "probe", f"http\n{method}\n{target}/echo\n\nX-Probe=two"))
        assert (seen["method"], seen["x_probe"], seen["body"]) == (method, "two", "")
    assert await ok(client, "probe", f"http\nHEAD\n{target}/hello") == b""

    assert await error(client, "probe", f"http\nGET\n{target}/missing") == (500, {"code": 1, "message": "404: nope"})
    # The SDK refuses what the ABI's URL-header encoding cannot carry, before calling the host.
    status, body = await error(client, "probe", f"http\nGET\n{target}/echo\n\nX-Probe=a:b")
    assert status == 500 and "neither may contain ':'" in body["message"]
    status, body = await error(client, "probe", f"http\nGET\n{target}/echo::X-Probe:a")
    assert status == 500 and 'contains "::"' in body["message"]


async def test_http_rules_and_grants(serve: Serve, target: str) -> None:
    client = await serve(HTTP_GRANTED.replace("allow_private = true", "allow_private = false"))
    status, body = await error(client, "probe", f"http\nGET\n{target}/hello")
    assert (status, body["code"]) == (500, 1) and body["message"].startswith("failed to requestIsAllowed: ")
    client = await serve()  # nothing granted but the cache
    assert await error(client, "probe", f"http\nGET\n{target}/hello") == (500, not_enabled("probe", "http", "cache"))


async def test_fetch_example(serve: Serve, target: str) -> None:
    client = await serve(HTTP_GRANTED)
    assert await ok(client, "fetch", f"  {target}/hello\n") == b"fetched from the target"
    # In a request job the ?url= query parameter wins over the body.
    body = request(f"{target}/missing", url=f"/fetch?url={target}/hello")
    assert await ok(client, "fetch", body) == b"fetched from the target"
    assert await ok(client, "fetch", request(f"{target}/hello", url="/fetch")) == b"fetched from the target"
    assert await error(client, "fetch", f"{target}/missing") == (502, {"code": 502, "message": "404: nope"})
    assert await error(client, "fetch", " \n") == (
        400, {"code": 400, "message": "no URL given: send it as the body or as ?url="},
    )  # fmt: skip
    assert await error(client, "fetch", f"{target}/x::y:z") == (400, {"code": 400, "message": NO_SEPARATOR})
    client = await serve()
    assert await error(client, "fetch", f"{target}/hello") == (502, not_enabled("fetch", "http", "cache", code=502))


async def test_graphql_query(serve: Serve, target: str) -> None:
    client = await serve(HTTP_GRANTED)
    assert await ok(client, "probe", f"graphql\n{target}/graphql\n{{ viewer }}") == b'{"data":{"echo":"{ viewer }"}}'
    status, body = await error(client, "probe", f"graphql\n{target}/graphql\n{{ broken }}")
    assert (status, body["code"]) == (500, 1) and body["message"].startswith("graphQL error; path: ")
    client = await serve()
    assert await error(client, "probe", f"graphql\n{target}/graphql\n{{ x }}") == (
        500, not_enabled("probe", "graphql", "cache"),
    )  # fmt: skip


async def test_static_files(serve: Serve, tmp_path: Path) -> None:
    await static_files_scenario(serve, tmp_path)


async def test_db_queries(serve: Serve, database: Path) -> None:
    await db_queries_scenario(serve)


# --- tooling ------------------------------------------------------------------------------------


def copy_tree(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("target", "*.wasm"))
    return destination


@pytest.mark.parametrize("name", ["transform", "hello-echo"])
def test_builds_are_byte_identical_wherever_the_sources_are(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another checkout location, another SDK location, a cold SDK cache: same bytes as committed.
    sdk = copy_tree(ROOT / "sdk", tmp_path / "elsewhere" / "sdk")
    source = copy_tree(ROOT / "runnables" / "src" / name, tmp_path / "elsewhere" / "deeper" / name)
    monkeypatch.setenv("REACTR_WASM_SDK", str(sdk))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    RUST.build(source, tmp_path / "out.wasm", lambda line: None)
    assert (tmp_path / "out.wasm").read_bytes() == example(name), f"runnables/{name}.wasm is stale or not reproducible"


def test_compiler_errors_are_build_failed(tmp_path: Path) -> None:
    source = tmp_path / "broken"
    source.mkdir()
    (source / "lib.rs").write_text("use suborbital::runnable::*;\nfn run() -> Vec<u8> { 42 }\n")
    with pytest.raises(BuildFailed) as failure:
        RUST.build(source, tmp_path / "out.wasm", lambda line: None)
    assert "error[E0308]: mismatched types" in str(failure.value)
    assert "broken/lib.rs:2" in str(failure.value)  # paths shown relative to the runnable's folder
    assert not (tmp_path / "out.wasm").exists()

    (source / "lib.rs").write_text("//! build-target: wasm64-unknown\n")
    with pytest.raises(BuildFailed, match="build-target 'wasm64-unknown' is not one of wasm32-unknown-unknown"):
        RUST.build(source, tmp_path / "out.wasm", lambda line: None)


def test_missing_toolchain_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REACTR_RUSTC", str(tmp_path / "no-rustc"))
    with pytest.raises(ToolchainMissing) as missing:
        RUST.check_toolchain()
    assert str(missing.value).endswith("apt-get install -y rustc libstd-rust-dev-wasm32 lld-14")
    monkeypatch.undo()
    RUST.check_toolchain()  # the real one is complete


def test_scaffold_builds_a_working_runnable(tmp_path: Path, engine: Any) -> None:
    folder = tmp_path / "my-thing"
    folder.mkdir()
    RUST.scaffold("my-thing", folder)
    assert RUST.detect(folder) and "struct MyThing;" in (folder / "lib.rs").read_text()
    lines: list[str] = []
    RUST.build(folder, tmp_path / "my-thing.wasm", lines.append)
    assert any("compiling my-thing (rust, wasm32-unknown-unknown)" in line for line in lines)
    with Reactr(engine=engine) as reactr:
        reactr.register("my-thing", str(tmp_path / "my-thing.wasm"))
        assert reactr.do("my-thing", b"world").then(timeout=10) == b"hello world"
        with pytest.raises(RunErr) as failure:
            reactr.do("my-thing", b"").then(timeout=10)
        assert (failure.value.code, failure.value.message) == (400, "send some input")
