"""Each refusal names what to change: the grant, the rule's setting, ``server.body_limit``, the
timeout's keys; a module that does not load answers 503 with why; ``inspect`` prints the grant.

Capability and rule refusals seen by guests are in ``test_capabilities.py`` and ``test_examples.py``,
the callback refusal in ``test_server_callbacks.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reactr_wasm import Config, Limits, Reactr
from reactr_wasm.compose import load_folder
from reactr_wasm.server.watch import RunnableFolder
from tests.conftest import ROOT, RUNNABLES, wat_module
from tests.services import free_port, serve_process
from tests.test_cli import cli
from tests.test_examples import post
from tests.test_server_api import Start, answer, make_config


@pytest.fixture
def server_config() -> Config:
    return make_config()


# --- 413 and 504 -------------------------------------------------------------------------------


async def test_a_body_over_the_limit_names_server_body_limit(reactr: Reactr, start: Start) -> None:
    reactr.register("echo", reactr.engine.load("echo", wat_module("echo")))
    client = await start(make_config(body_limit=1024))
    status, body, _ = await answer(client, "POST", "/do/echo?then=true", data=b"x" * 1025)
    assert (status, body) == (
        413, {"code": 413, "message": "request body of 1025 bytes is over the limit of 1024 bytes (server.body_limit)"}
    )  # fmt: skip

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut while reading
        for _ in range(4):
            yield b"y" * 512

    status, body, _ = await answer(client, "POST", "/do/echo?then=true", data=chunks())
    assert (status, body["message"]) == (
        413, "request body of more than 1024 bytes is over the limit of 1024 bytes (server.body_limit)"
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["then", "async"])
async def test_a_timeout_names_its_limit_and_the_keys_that_set_it(reactr: Reactr, start: Start, mode: str) -> None:
    reactr.register("my loop", reactr.engine.load("my loop", wat_module("infinite-loop"), limits=Limits(timeout=0.2)))
    client = await start()
    message = (
        'job timeout: the job ran past its limit of 0.2 s (limits.timeout, or runnables."my loop".timeout '
        "for this runnable)"
    )
    if mode == "then":
        status, body, headers = await answer(client, "POST", "/do/my%20loop?then=true")
    else:
        posted = (await answer(client, "POST", "/do/my%20loop"))[1]["resultId"]
        status, body, headers = await answer(client, "GET", f"/then/{posted}")
        job = (await answer(client, "GET", f"/jobs/{posted}"))[1]
        assert (job["status"], job["error"]) == ("timed_out", {"code": 504, "message": message})
    assert (status, body, headers["X-Reactr-Error"]) == (504, {"code": 504, "message": message}, "JobTimeout")


async def test_a_failed_jobs_status_carries_its_error_as_an_object(reactr: Reactr, start: Start) -> None:
    reactr.register("return-err", RUNNABLES / "return-err.wasm")
    client = await start()
    result_id = (await answer(client, "POST", "/do/return-err", data=b"x"))[1]["resultId"]
    assert (await answer(client, "GET", f"/then/{result_id}"))[0] == 400
    status, job, _ = await answer(client, "GET", f"/jobs/{result_id}")
    assert (status, job["status"], job["error"]) == (200, "failed", {"code": 400, "message": "job failed"})


# --- a module that does not load -----------------------------------------------------------------


def test_the_folder_remembers_why_a_module_does_not_load_while_none_of_it_is_served(
    reactr: Reactr, tmp_path: Path
) -> None:
    folder = tmp_path / "runnables"
    folder.mkdir()
    (folder / "bad.wasm").write_bytes(b"not wasm")
    (folder / "good.wasm").write_bytes(wat_module("echo"))
    watcher: RunnableFolder = load_folder(reactr, Config(), folder)
    assert watcher.load_errors == {
        "bad": f"runnable 'bad' ({folder / 'bad.wasm'}): not a WebAssembly module (bad magic bytes)"
    }
    (folder / "good.wasm").write_bytes(wat_module("missing-allocate"))  # a broken replacement
    watcher.poll(settle=False)
    assert "good" not in watcher.load_errors and reactr.do("good", b"x").then(timeout=5) == b"hello x"
    (folder / "bad.wasm").write_bytes(wat_module("echo"))  # fixed
    watcher.poll(settle=False)
    assert watcher.load_errors == {} and reactr.do("bad", b"y").then(timeout=5) == b"hello y"
    (folder / "other.wasm").write_bytes(b"\0asm broken")
    watcher.poll(settle=False)
    assert "other" in watcher.load_errors
    (folder / "other.wasm").unlink()
    watcher.poll(settle=False)
    assert watcher.load_errors == {}


def test_serve_answers_503_with_the_load_error_until_the_module_loads(tmp_path: Path) -> None:
    folder = tmp_path / "runnables"
    folder.mkdir()
    (folder / "bad.wasm").write_bytes(b"not wasm")
    (folder / "noalloc.wasm").write_bytes(wat_module("missing-allocate"))
    with serve_process(["--dir", folder]) as (_, base):
        status, body, headers = post(f"{base}/do/bad?then=true", b"x")
        assert (status, headers["Retry-After"]) == (503, "1")
        assert json.loads(body) == {
            "code": 503,
            "message": f"runnable 'bad' ({folder / 'bad.wasm'}): not a WebAssembly module (bad magic bytes); "
            "served once a module that loads replaces it",
        }
        status, body, _ = post(f"{base}/do/noalloc", b"x")
        assert status == 503 and "missing export 'allocate'" in json.loads(body)["message"]
        assert post(f"{base}/do/nothing-here?then=true", b"x")[0] == 404

        scratch = tmp_path / "echo.wasm"
        scratch.write_bytes(wat_module("echo"))
        scratch.rename(folder / "bad.wasm")  # fixed: served from now on
        deadline = time.monotonic() + 5
        while (answer_now := post(f"{base}/do/bad?then=true", b"joe"))[0] == 503:
            assert time.monotonic() < deadline, "the fixed module was not served"
            time.sleep(0.05)
        assert answer_now[:2] == (200, b"hello joe")
        (folder / "noalloc.wasm").unlink()  # gone: unknown again
        deadline = time.monotonic() + 5
        while post(f"{base}/do/noalloc", b"x")[0] == 503:
            assert time.monotonic() < deadline, "the removed module still answers 503"
            time.sleep(0.05)
        assert post(f"{base}/do/noalloc", b"x")[0] == 404


# --- inspect -----------------------------------------------------------------------------------


def test_inspect_says_which_imports_need_a_grant_and_prints_the_line() -> None:
    done = cli("inspect", str(RUNNABLES / "fetch.wasm"))
    assert done.returncode == 0
    text = done.stdout.decode()
    assert "needs grants: http (env.fetch_url)\n" in text
    assert 'grant with:   [runnables.fetch] capabilities = ["http"]   (in reactr.toml)\n' in text
    report = json.loads(cli("inspect", "--json", str(RUNNABLES / "counter.wasm")).stdout)
    assert report["grants"] == {"cache": ["env.cache_get", "env.cache_set"]}
    assert report["grant_line"] == '[runnables.counter] capabilities = ["cache"]'

    text = cli("inspect", str(RUNNABLES / "request-info.wasm")).stdout.decode()
    assert "needs grants: none (logging, request fields, response headers and run_job need none)" in text
    assert "grant with" not in text
    report = json.loads(cli("inspect", "--json", str(RUNNABLES / "request-info.wasm")).stdout)
    assert (report["grants"], report["grant_line"]) == ({}, None)


# --- embedded serve() ------------------------------------------------------------------------


def test_embedded_serve_without_logging_set_up_says_where_it_listens() -> None:
    port = free_port()
    code = (
        "import asyncio\n"
        "from reactr_wasm import Config, Reactr, serve\n"
        "from reactr_wasm.config import ServerConfig\n"
        "reactr = Reactr()\n"
        "reactr.register('hello-echo', 'runnables/hello-echo.wasm')\n"
        f"asyncio.run(serve(reactr, Config(server=ServerConfig(port={port}))))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, process.communicate()[1].decode()
            try:
                assert post(f"http://127.0.0.1:{port}/do/hello-echo?then=true", b"joe")[:2] == (200, b"hello joe")
                break
            except OSError:
                assert time.monotonic() < deadline, "the embedded server did not start listening"
                time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert f"INFO reactr_wasm.server.run: listening on 127.0.0.1:{port}".encode() in stderr
    assert f"hello-echo  POST http://127.0.0.1:{port}/do/hello-echo".encode() in stderr
