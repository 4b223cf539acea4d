"""The AssemblyScript guest SDK (sdk/assemblyscript, ``@suborbital/suborbital``) and its tooling.

Guests are compiled from source at test time with ``ASSEMBLYSCRIPT.build`` (once per
session, in parallel): the test-only ``tests/guests/assemblyscript/*`` runnables. The
examples are the committed ``runnables/*-as.wasm``; a tooling test rebuilds one from
another location and compares bytes. Every SDK function is driven by a runnable served by
the real aiohttp app, with capabilities configured the way a user writes ``reactr.toml``;
HTTP and GraphQL calls go to a real local server, the database is a real SQLite file.

These tests need Node.js and the SDK's pinned compiler (``scripts/setup-dev`` installs
both); without them the session fixture fails with the install command.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reactr_wasm import Reactr, RunErr, WasmEngine
from reactr_wasm.compose import build_backends, build_reactr, register_wasm
from reactr_wasm.config import ServerConfig, parse_config
from reactr_wasm.server.app import create_app
from reactr_wasm.tooling.assemblyscript import ASSEMBLYSCRIPT, compile_runnable
from reactr_wasm.tooling.base import BuildFailed, ToolchainMissing
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

GUESTS = ROOT / "tests" / "guests" / "assemblyscript"
PROBE_SOURCE = GUESTS / "sdk-probe" / "index.ts"
EXAMPLES = ("hello-echo", "hash", "transform", "counter", "fetch", "cache-get", "return-err")
TWINS = ("hello-echo", "hash", "transform", "counter", "fetch")
UNKNOWN = "unknown error returned from host"


# --- modules ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def guests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """tests/guests/assemblyscript compiled once per session, plus the probe on the ``stub`` runtime."""
    ASSEMBLYSCRIPT.check_toolchain()  # fails (not skips) with the install command
    out = tmp_path_factory.mktemp("as-guests")
    builds: dict[str, Callable[[], None]] = {
        source.name: (lambda source=source: ASSEMBLYSCRIPT.build(source, out / f"{source.name}.wasm", lambda _: None))
        for source in sorted(GUESTS.iterdir())
    }
    builds["probe-stub"] = lambda: compile_runnable(GUESTS / "sdk-probe", out / "probe-stub.wasm", runtime="stub")
    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(build) for build in builds.values()]:
            future.result()
    return {name: (out / f"{name}.wasm").read_bytes() for name in builds}


def example(name: str) -> bytes:
    return (RUNNABLES / f"{name}.wasm").read_bytes()


# --- a server configured like reactr.toml -------------------------------------------------------


@pytest.fixture
async def serve(tmp_path: Path, guests: dict[str, bytes]) -> AsyncIterator[Serve]:
    """``await serve(toml, **extra_modules)``: the app with the config's capabilities.

    Serves ``probe`` (tests/guests/assemblyscript/sdk-probe), the AssemblyScript examples and
    their Rust twins, and ``extra_modules``, built through the composition root as ``serve``
    does. Each call has its own backends (a fresh cache).
    """
    opened: list[tuple[Client, Reactr, Any]] = []

    async def start(toml: str = "", **extra: bytes) -> Client:
        config = parse_config(tomllib.loads(toml), source="reactr.toml", base=tmp_path, env={})
        config.server = ServerConfig(drain_timeout=2.0)
        backends = build_backends(config)
        reactr = build_reactr(config, backends)
        modules = {"probe": guests["sdk-probe"], **extra}
        for name in EXAMPLES:
            modules[name] = example(name)
            if name in TWINS:
                modules[f"{name}-as"] = example(f"{name}-as")
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


def line_of(source: Path, text: str) -> int:
    """The 1-based line of ``source`` holding ``text``."""
    return next(number for number, line in enumerate(source.read_text().splitlines(), 1) if text in line)


# --- the runnable contract (start fixture from conftest) ----------------------------------------


async def test_echo_errors_abort_and_registration(
    reactr: Reactr, start: Callable[..., Awaitable[Client]], guests: dict[str, bytes]
) -> None:
    for name in ("sdk-probe", "unregistered"):
        reactr.register(name, reactr.engine.load(name, guests[name]))
    reactr.register("hello-echo-as", str(RUNNABLES / "hello-echo-as.wasm"))
    client = await start()

    assert await ok(client, "sdk-probe", "echo\nline one\nline two") == b"line one\nline two"
    assert await ok(client, "hello-echo-as", "joe") == b"hello joe"
    assert await error(client, "sdk-probe", "fail\n418\nI'm a teapot") == (
        418,
        {"code": 418, "message": "I'm a teapot"},
    )
    assert await error(client, "sdk-probe", "fail\n7\nseven") == (500, {"code": 7, "message": "seven"})
    assert await error(client, "sdk-probe", "nonsense") == (
        400,
        {"code": 400, "message": 'unknown operation "nonsense"'},
    )
    # returnError wins over the value run returns afterwards.
    assert await error(client, "sdk-probe", "fail-then-result") == (409, {"code": 409, "message": "the error wins"})
    assert await error(client, "unregistered", "x") == (500, {"code": -1, "message": "No runnable set"})

    # AssemblyScript's abort (here: a throw) reaches env.return_abort, UTF-8 encoded, with its place.
    status, body = await error(client, "sdk-probe", "throw\nboom ☃")
    line = line_of(PROBE_SOURCE, 'if (op == "throw")')
    assert status == 500 and body["code"] == -1
    assert re.fullmatch(rf"runnable abort: boom ☃; file: index\.ts, line: {line}, col: \d+", body["message"])
    # Result.unwrap on a host error aborts with the error text, from the SDK's own file.
    status, body = await error(client, "sdk-probe", "unwrap")
    assert body["message"].startswith(
        "runnable abort: key not found; file: ~lib/@suborbital/suborbital/assembly/ffi.ts"
    )
    # The instance that aborted was replaced: the next job runs normally.
    assert await ok(client, "sdk-probe", "echo\nstill here") == b"still here"

    # util: invalid UTF-8 becomes U+FFFD, JSON strings are escaped as the examples need.
    assert await ok(client, "sdk-probe", "utf8") == "ok\ufffd".encode()
    assert await ok(client, "sdk-probe", 'json\nsay "hi"\\\t\x01 é') == '"say \\"hi\\"\\\\\\t\\u0001 é"'.encode()


async def test_request_fields(
    reactr: Reactr, start: Callable[..., Awaitable[Client]], guests: dict[str, bytes]
) -> None:
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
    assert json.loads(await ok(client, "probe", body)) == {
        "method": "PATCH", "url": "/things/9?q=search", "id": "5d6f1c1e-0000-4000-8000-000000000001",
        "body_raw": "req", "body_field": f"ERR {UNKNOWN}",  # the body is not JSON
        "header": "yes", "url_param": "9", "state": "what is up", "query_param": "search", "added": "",
    }  # fmt: skip

    # Over HTTP a plain body makes a request job too: the fields are the HTTP request's.
    fields = json.loads(await ok(client, "probe", "req"))
    assert (fields["method"], fields["url"], fields["body_raw"]) == ("POST", "/do/probe?then=true", "req")
    # Outside a request job (a raw job, embedded) every read is an error value, not a trap.
    fields = json.loads(reactr.do("probe", b"req").then(timeout=10))
    assert fields == dict.fromkeys(fields, f"ERR {UNKNOWN}") and len(fields) == 10


async def test_request_setters_change_what_later_reads_see(
    reactr: Reactr, start: Callable[..., Awaitable[Client]], guests: dict[str, bytes]
) -> None:
    reactr.register("probe", reactr.engine.load("probe", guests["sdk-probe"]))
    client = await start()
    fields = json.loads(await ok(client, "probe", request("req-set", headers={}, params={}, state={"hello": "x"})))
    assert fields["added"] == "yes"
    assert (fields["method"], fields["url"], fields["query_param"]) == ("PUT", "/changed?q=new", "new")
    assert (fields["url_param"], fields["state"]) == ("7", "changed")
    assert json.loads(fields["body_raw"]) == {"name": "field"} and fields["body_field"] == "field"
    with pytest.raises(RunErr) as failed:  # a raw job has no request to change
        reactr.do("probe", b"req-set").then(timeout=10)
    assert (failed.value.code, failed.value.message) == (1, UNKNOWN)


async def test_response_headers(
    reactr: Reactr, start: Callable[..., Awaitable[Client]], guests: dict[str, bytes]
) -> None:
    reactr.register("probe", reactr.engine.load("probe", guests["sdk-probe"]))
    client = await start()
    status, body, headers = await do(client, "probe", request("resp\nX-Probe\nset by assemblyscript"))
    assert (status, body) == (200, b"headers set")
    assert headers["X-Probe"] == "set by assemblyscript" and headers["Content-Type"] == "text/x-probe"


async def test_logging_levels(
    reactr: Reactr, start: Callable[..., Awaitable[Client]], guests: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    reactr.register("probe", reactr.engine.load("probe", guests["sdk-probe"]))
    client = await start()
    with caplog.at_level(logging.DEBUG, logger="reactr_wasm.guest"):
        assert await ok(client, "probe", "log\nfrom as ☃") == b"logged"
    lines = [(record.levelno, record.getMessage()) for record in caplog.records if record.name == "reactr_wasm.guest"]
    assert lines == [
        (logging.DEBUG, "[probe] debug from as ☃"),
        (logging.INFO, "[probe] info from as ☃"),
        (logging.WARNING, "[probe] warn from as ☃"),
        (logging.ERROR, "[probe] error from as ☃"),
    ]


# --- cache, chaining, memory --------------------------------------------------------------------


async def test_cache_set_get_and_sharing(serve: Serve) -> None:
    client = await serve()
    assert await error(client, "probe", "cache-get\ncolour") == (500, {"code": 1, "message": "key not found"})
    assert await ok(client, "probe", "cache-set\ncolour\nblue\n0") == b"stored"
    assert await ok(client, "probe", "cache-get\ncolour") == b"blue"
    # One cache for every runnable: the Rust cache-get example reads `name`.
    assert await ok(client, "probe", "cache-set\nname\nvery important\n0") == b"stored"
    assert await ok(client, "cache-get") == b"very important"
    assert await ok(client, "probe", "cache-set\nbrief\nsoon gone\n1") == b"stored"
    assert await ok(client, "probe", "cache-get\nbrief") == b"soon gone"


async def test_cache_not_granted(serve: Serve) -> None:
    client = await serve('[capabilities]\ngrant = []\n[runnables.probe]\ncapabilities = ["http"]\n')
    assert await error(client, "probe", "cache-get\nx") == (500, not_enabled("probe", "http", "cache"))
    status, body = await error(client, "probe", "cache-set\nx\ny\n0")
    assert (status, body["code"]) == (500, 1) and body["message"].startswith("cache set failed")
    assert await error(client, "counter-as", "c") == (500, {"code": 500, "message": "cache set failed"})


async def test_run_job_chaining(serve: Serve) -> None:
    client = await serve()
    assert await ok(client, "probe", "job\nhello-echo-as\nfrom a chain") == b"hello from a chain"
    assert await ok(client, "probe", "job\nhello-echo\nto rust") == b"hello to rust"
    assert await ok(client, "probe", "job\nprobe\njob\nprobe\necho\ntwo levels") == b"two levels"
    # A chained runnable's RunErr comes back with its own code and message.
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


async def test_pooled_instance_memory_stays_bounded(serve: Serve, guests: dict[str, bytes]) -> None:
    # 300 jobs of 256 KiB garbage each on one instance capped at 4 MiB: the minimal runtime
    # collects after every job. The same source on the `stub` runtime (never frees) runs out.
    client = await serve("[limits]\nmemory = '4MiB'\n", **{"probe-stub": guests["probe-stub"]})
    for _ in range(300):
        assert await ok(client, "probe", "garbage\n256") == b"262144"
    for job in range(300):  # noqa: B007 (read after the loop)
        status, body, _ = await do(client, "probe-stub", "garbage\n256")
        if status != 200:
            break
    assert status == 500 and job < 20, (job, body)


# --- the examples: same answers as their Rust twins ---------------------------------------------


PER_RESPONSE = {"Date", "X-Request-ID"}  # headers that differ on every response


async def twin_answers(serve: Serve, name: str, inputs: list[bytes | str], toml: str = "") -> None:
    """Each input to ``name`` and ``name-as`` (a fresh server each): same status, body and headers."""
    answers = []
    for runnable in (name, f"{name}-as"):
        client = await serve(toml)
        seen = []
        for data in inputs:
            status, body, headers = await do(client, runnable, data)
            kept = {key: value for key, value in headers.items() if key not in PER_RESPONSE}
            if runnable != name:  # a refusal's hint names the runnable: compare it as its twin's
                body = body.replace(f"[runnables.{runnable}]".encode(), f"[runnables.{name}]".encode())
                kept["Content-Length"] = str(len(body))
            seen.append((status, body, kept))
        answers.append(seen)
    assert answers[1] == answers[0]


async def test_hello_echo_and_hash_examples(serve: Serve) -> None:
    client = await serve()
    assert await ok(client, "hello-echo-as", "joe") == b"hello joe"
    assert await ok(client, "hash-as", "1000") == b"c5ef3a9c52e87db0"
    assert await ok(client, "hash-as", "") == b"7dbc828d99045443"
    assert await ok(client, "hash-as", "not a number") == b"7dbc828d99045443"
    await twin_answers(serve, "hello-echo", ["joe", "", bytes(range(256)) * 64])
    await twin_answers(serve, "hash", ["1000", " 12\n", "+5", "0", "18446744073709551616", "\u00a07", b"\xff7", "-1"])


async def test_counter_example(serve: Serve) -> None:
    client = await serve()
    assert [await ok(client, "counter-as", "visits") for _ in range(3)] == [b"1", b"2", b"3"]
    assert await ok(client, "counter-as", "other") == b"1"
    assert await ok(client, "counter-as") == b"1"  # empty input counts `default`
    assert await ok(client, "probe", "cache-get\ncounter:default") == b"1"
    await ok(client, "probe", "cache-set\ncounter:bad\n12a\n0")
    assert await error(client, "counter-as", "bad") == (
        500,
        {"code": 500, "message": 'counter "bad" holds a non-number'},
    )
    await ok(client, "probe", "cache-set\ncounter:top\n18446744073709551615\n0")
    assert await error(client, "counter-as", "top") == (500, {"code": 500, "message": 'counter "top" overflowed'})
    await ok(client, "probe", "cache-set\ncounter:big\n18446744073709551614\n0")
    assert await ok(client, "counter-as", "big") == b"18446744073709551615"
    assert await error(client, "counter-as", b"\xff") == (400, {"code": 400, "message": "counter name must be UTF-8"})
    await twin_answers(serve, "counter", ["a", "a", "", "b", "a", b"\xff", "\u00e9\u2603", b"\xe2\x82"])


async def test_transform_example(serve: Serve) -> None:
    client = await serve()
    body = request('{"name":"cohix"}', url="/orders?lang=en", headers={"x-greeting": "hi"}, params={"id": "42"})
    status, data, headers = await do(client, "transform-as", body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert data == b'{"message":"hi, cohix!","name":"COHIX","method":"POST","id":"42","lang":"en"}'
    data = await ok(client, "transform-as", request('{"name":"cohix"}', url="/orders"))
    assert data == b'{"message":"hello, cohix!","name":"COHIX","method":"POST","id":"","lang":""}'
    missing = (400, {"code": 400, "message": 'body field "name" is required'})
    for bad in ("{}", '{"name":""}', '{"name":3}', "not json"):
        assert await error(client, "transform-as", request(bad)) == missing
    assert await error(client, "transform-as", "raw") == missing  # over HTTP, "raw" is the request's body
    with WasmEngine() as engine, pytest.raises(RunErr) as failed:  # a raw job, embedded
        engine.load("transform-as", example("transform-as")).run(b"raw")
    assert (failed.value.code, failed.value.message) == (400, "transform needs a request job")
    await twin_answers(
        serve,
        "transform",
        [
            body,
            request(
                '{"name":"Zoë \\"Z\\" \\u0001\\n\\t\\\\ ☃ 😀"}', headers={"x-greeting": "¡hola"}, url="/x?lang=é&lang=b"
            ),
            request("{}"),
            request('{"name":"x"}', method="DELETE", params={"id": 'a"b'}, headers={"x-greeting": ""}),
            "raw",
        ],
    )


# --- capabilities: http, graphql, static, db ----------------------------------------------------


HTTP_GRANTED = """
[capabilities.http]
allow_private = true
[runnables.probe]
capabilities = ["http", "graphql", "cache"]
[runnables.fetch]
capabilities = ["http"]
[runnables.fetch-as]
capabilities = ["http"]
"""


async def test_http_methods_headers_and_errors(serve: Serve, target: str) -> None:
    client = await serve(HTTP_GRANTED)
    assert await ok(client, "probe", f"http\nGET\n{target}/hello") == b"fetched from the target"
    for method in ("POST", "PUT", "PATCH"):
        seen = json.loads(await ok(client, "probe", f"http\n{method}\n{target}/echo\npayload\nX-Probe=one"))
        assert seen == {
            "method": method,
            "body": "payload",
            "content_type": "application/octet-stream",
            "x_probe": "one",
        }
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
    assert await ok(client, "fetch-as", f"  {target}/hello\n") == b"fetched from the target"
    body = request(f"{target}/missing", url=f"/fetch?url={target}/hello")  # ?url= wins over the body
    assert await ok(client, "fetch-as", body) == b"fetched from the target"
    assert await ok(client, "fetch-as", request(f"{target}/hello", url="/fetch")) == b"fetched from the target"
    assert await error(client, "fetch-as", f"{target}/missing") == (502, {"code": 502, "message": "404: nope"})
    assert await error(client, "fetch-as", " \n") == (
        400, {"code": 400, "message": "no URL given: send it as the body or as ?url="},
    )  # fmt: skip
    assert await error(client, "fetch-as", f"{target}/x::y:z") == (
        400, {"code": 400, "message": 'URL must not contain "::"'},
    )  # fmt: skip
    inputs: list[bytes | str] = [f"\t{target}/hello ", f"{target}/missing", "", f"{target}/a::b", "nonsense"]
    inputs += [request("", url=f"/f?url={target}/echo"), b"\xff" + target.encode()]
    await twin_answers(serve, "fetch", inputs, HTTP_GRANTED)
    await twin_answers(serve, "fetch", [f"{target}/hello"])  # not granted: 502 capability is not enabled


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


def sdk_copy(destination: Path) -> Path:
    """The SDK at another place (its installed compiler linked, not copied): a REACTR_WASM_SDK root."""
    sdk = ROOT / "sdk" / "assemblyscript"
    copy = destination / "assemblyscript"
    copy.mkdir(parents=True)
    for item in ("package.json", "package-lock.json", "index.ts", "assembly"):
        source = sdk / item
        if source.is_dir():
            (copy / item).mkdir()
            for file in source.iterdir():
                (copy / item / file.name).write_bytes(file.read_bytes())
        else:
            (copy / item).write_bytes(source.read_bytes())
    (copy / "node_modules").symlink_to(sdk / "node_modules", target_is_directory=True)
    return destination


def test_build_is_byte_identical_wherever_the_sources_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REACTR_WASM_SDK", str(sdk_copy(tmp_path / "elsewhere" / "sdk")))
    source = tmp_path / "elsewhere" / "deeper" / "transform-as"
    source.mkdir(parents=True)
    (source / "index.ts").write_bytes((ROOT / "runnables" / "src" / "transform-as" / "index.ts").read_bytes())
    ASSEMBLYSCRIPT.build(source, tmp_path / "out.wasm", lambda line: None)
    assert (tmp_path / "out.wasm").read_bytes() == example("transform-as"), "runnables/transform-as.wasm is stale"


async def test_scaffold_builds_and_serves(
    tmp_path: Path, reactr: Reactr, start: Callable[..., Awaitable[Client]]
) -> None:
    folder = tmp_path / "greeter"
    folder.mkdir()
    assert not ASSEMBLYSCRIPT.detect(folder)
    ASSEMBLYSCRIPT.scaffold("greeter", folder)
    assert ASSEMBLYSCRIPT.detect(folder)
    lines: list[str] = []
    ASSEMBLYSCRIPT.build(folder, tmp_path / "greeter.wasm", lines.append)
    assert lines == ["compiling greeter (assemblyscript)"]
    reactr.register("greeter", str(tmp_path / "greeter.wasm"))
    client = await start()
    assert await ok(client, "greeter", "joe") == b"hello joe"
    assert await error(client, "greeter", "") == (400, {"code": 400, "message": "send a name as the input"})


def test_compiler_errors_are_build_failed(tmp_path: Path) -> None:
    source = tmp_path / "broken"
    source.mkdir()
    (source / "index.ts").write_text('import { useRunnable } from "@suborbital/suborbital";\nconst x: i32 = "text";\n')
    with pytest.raises(BuildFailed) as failure:
        ASSEMBLYSCRIPT.build(source, tmp_path / "out.wasm", lambda line: None)
    assert "TS2322" in str(failure.value) and "index.ts(2," in str(failure.value)
    assert not (tmp_path / "out.wasm").exists()


def test_missing_toolchain_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = tmp_path / "sdk" / "assemblyscript"
    sdk.mkdir(parents=True)
    monkeypatch.setenv("REACTR_WASM_SDK", str(tmp_path / "sdk"))
    with pytest.raises(ToolchainMissing) as missing:
        ASSEMBLYSCRIPT.check_toolchain()
    assert str(missing.value).endswith(f"npm ci --prefix {sdk.resolve()}")
    monkeypatch.setenv("PATH", str(tmp_path))  # no node
    with pytest.raises(ToolchainMissing) as missing:
        ASSEMBLYSCRIPT.check_toolchain()
    assert str(missing.value).endswith("apt-get install -y nodejs npm")
