"""``reactr-wasm invoke``, ``then``, ``jobs`` and ``cancel`` as subprocesses, against ``reactr-wasm serve`` ones."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web

from reactr_wasm.client import verify_signature
from tests.conftest import wat_module
from tests.services import free_port, serve_process
from tests.test_cli import ENV, cli
from tests.test_client import UNKNOWN_ID, Loop, Servers

CONFIG = """\
[server]
drain_timeout = 1
[callbacks]
allow_private = true
secret = "hunter2"
[runnables.infinite-loop]
timeout = 0.3
[runnables.forever]
timeout = 120
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    modules = tmp_path_factory.mktemp("runnables")
    for name in ("echo", "result-and-error", "infinite-loop", "trap"):
        (modules / f"{name}.wasm").write_bytes(wat_module(name))
    (modules / "forever.wasm").write_bytes(wat_module("infinite-loop"))  # runs until cancelled
    return modules


@contextmanager
def serving(folder: Path, config: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``reactr-wasm serve --config`` over ``folder`` (the config written beside it), once it answers."""
    config_file = folder.parent / "reactr-cli-client.toml"
    config_file.write_text(config)
    with serve_process(["--dir", folder, "--config", config_file, "--no-watch"]) as served:
        yield served


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[str]:
    with serving(folder, CONFIG) as (_, base):
        yield base


def remote(*args: str, server: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    """``(exit code, stdout, stderr)`` of ``reactr-wasm ARGS --server SERVER``."""
    done = cli(*args, "--server", server, stdin=stdin, env=env)
    return done.returncode, done.stdout, done.stderr.decode()


def wait_status(result_id: str, wanted: str, server: str) -> None:
    deadline = time.monotonic() + 10
    while json.loads(remote("jobs", result_id, server=server)[1])["status"] != wanted:
        assert time.monotonic() < deadline, f"{result_id} never became {wanted}"
        time.sleep(0.05)


# --- start-up ----------------------------------------------------------------------------


def test_serve_logs_each_runnables_url_at_start(folder: Path) -> None:
    with serve_process(["--dir", folder]) as (process, base):
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    log = stderr.decode()
    for name in ("echo", "forever", "infinite-loop", "result-and-error", "trap"):
        assert re.search(rf"^  {name} +POST {base}/do/{name}$", log, re.MULTILINE), log


# --- invoke ---------------------------------------------------------------------------------


def test_invoke_prints_the_result_bytes(server: str, tmp_path: Path) -> None:
    assert remote("invoke", "echo", "--data", "my name is joe", server=server) == (0, b"hello my name is joe", "")
    (tmp_path / "input.bin").write_bytes(b"\x00\xffbytes")
    assert remote("invoke", "echo", "--data", f"@{tmp_path / 'input.bin'}", server=server)[:2] == (
        0,
        b"hello \x00\xffbytes",
    )
    assert remote("invoke", "echo", "--data", "@-", stdin=b"from stdin", server=server)[:2] == (0, b"hello from stdin")
    assert remote("invoke", "echo", server=server)[:2] == (0, b"hello ")


def test_the_server_and_token_come_from_the_environment(server: str) -> None:
    done = cli("invoke", "echo", "--data", "env", env={**ENV, "REACTR_SERVER": server})
    assert (done.returncode, done.stdout) == (0, b"hello env")


def test_invoke_async_then_jobs_then(server: str) -> None:
    code, stdout, _ = remote("invoke", "echo", "--data", "later", "--async", server=server)
    result_id = stdout.decode().strip()
    assert code == 0 and re.fullmatch(r"[0-9a-z]{24}", result_id), stdout
    assert remote("then", result_id, server=server) == (0, b"hello later", "")
    code, stdout, _ = remote("jobs", result_id, server=server)
    status = json.loads(stdout)
    assert (code, status["id"], status["job"], status["status"], status["error"]) == (
        0,
        result_id,
        "echo",
        "succeeded",
        None,
    )


def test_cancel_stops_a_running_job(server: str) -> None:
    result_id = remote("invoke", "forever", "--async", server=server)[1].decode().strip()
    wait_status(result_id, "running", server)
    code, stdout, stderr = remote("then", result_id, "--wait", "0.2", server=server)
    assert (code, stdout, stderr.strip()) == (1, b"", f"reactr-wasm: job {result_id} is still running")
    assert remote("cancel", result_id, server=server) == (0, f"cancelled {result_id}\n".encode(), "")
    code, stdout, _ = remote("jobs", result_id, server=server)  # kept, as cancelled
    assert (code, json.loads(stdout)["status"]) == (0, "cancelled")
    assert remote("then", result_id, server=server) == (1, b"", f"reactr-wasm: job {result_id} failed: job cancelled\n")
    assert remote("cancel", result_id, server=server)[0] == 0  # a finished job's result: forgotten
    for command in ("jobs", "then", "cancel"):
        code, _, stderr = remote(command, result_id, server=server)
        assert (code, stderr.strip()) == (2, f"reactr-wasm: result with ID {result_id} not found"), command


def test_idempotency_key_through_header(server: str) -> None:
    args = ("invoke", "echo", "--data", "once", "--async", "--header", "Idempotency-Key: cli-17")
    first, second = remote(*args, server=server), remote(*args, server=server)
    assert first[0] == second[0] == 0 and first[1] == second[1]


def test_invoke_with_a_callback_prints_the_id_and_the_outcome_is_delivered_signed(server: str) -> None:
    deliveries: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()

    async def hook(request: web.Request) -> web.Response:
        deliveries.put((dict(request.headers), await request.read()))
        return web.Response()

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    loop = Loop()
    servers = Servers(loop)
    try:
        hook_url = servers.start(receiver) + "/hook"
        code, stdout, stderr = remote("invoke", "echo", "--data", "joe", "--callback", hook_url, server=server)
        assert (code, stderr) == (0, "")
        headers, body = deliveries.get(timeout=10)
    finally:
        servers.close()
        loop.close()
    assert (headers["X-Reactr-Result-Id"], body) == (stdout.decode().strip(), b"hello joe")
    assert verify_signature("hunter2", headers["X-Reactr-Signature"], body)


# --- errors and exit codes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("result-and-error", """runnable 'result-and-error' failed: {"code":418,"message":"teapot"}"""),
        ("infinite-loop", "runnable 'infinite-loop' failed: job timeout"),
        ("trap", "runnable 'trap' failed: wasm execution error: "),
    ],
)
def test_a_jobs_error_is_one_line_on_stderr_with_exit_code_1(server: str, name: str, message: str) -> None:
    code, stdout, stderr = remote("invoke", name, "--data", "x", server=server)
    assert (code, stdout) == (1, b"")
    assert stderr.startswith(f"reactr-wasm: {message}") and stderr.count("\n") == 1, stderr
    result_id = remote("invoke", name, "--async", server=server)[1].decode().strip()
    code, _, stderr = remote("then", result_id, server=server)
    assert code == 1 and stderr.startswith(f"reactr-wasm: job {result_id} failed: "), stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("invoke", "nope"), "runnable 'nope' not found at {server}"),
        (("jobs", UNKNOWN_ID), f"result with ID {UNKNOWN_ID} not found"),
        (("jobs", "not-an-id"), "HTTP 400: invalid result ID"),
        (("invoke", "echo", "--data", "@/no/such/file"), "--data @/no/such/file: cannot read: No such file"),
        (("invoke", "echo", "--callback", "ftp://example.com/x"), "HTTP 400: callback URL refused: "),
    ],
)
def test_a_bad_request_exits_2_with_the_reason(server: str, args: tuple[str, ...], message: str) -> None:
    code, stdout, stderr = remote(*args, server=server)
    assert (code, stdout) == (2, b"")
    assert stderr.startswith("reactr-wasm: " + message.format(server=server)) and stderr.count("\n") == 1, stderr


def test_no_server_running_exits_2_and_says_so() -> None:
    base = f"http://127.0.0.1:{free_port()}"
    for args in (("invoke", "echo"), ("jobs", UNKNOWN_ID), ("cancel", UNKNOWN_ID), ("then", UNKNOWN_ID)):
        code, _, stderr = remote(*args, server=base)
        assert code == 2 and stderr.startswith(f"reactr-wasm: cannot connect to {base} ("), stderr
        assert stderr.strip().endswith(f"is the server running at {base}?") and "Traceback" not in stderr


def test_bad_arguments_exit_2_with_usage() -> None:
    for args in (("invoke",), ("invoke", "echo", "--header", "no-colon"), ("then", UNKNOWN_ID, "--wait", "-1")):
        done = cli(*args)
        assert done.returncode == 2 and b"usage: reactr-wasm" in done.stderr, args
    code, _, stderr = remote("invoke", "echo", server="localhost:8080")
    assert (code, stderr.strip()) == (
        2,
        "reactr-wasm: --server: server URL must be http(s)://HOST[:PORT], got 'localhost:8080'",
    )


def test_bearer_token(folder: Path) -> None:
    with serving(folder, '[server]\nauth_tokens = ["tok-1"]\ndrain_timeout = 1\n') as (_, base):
        code, _, stderr = remote("invoke", "echo", server=base)
        assert (code, stderr.strip()) == (
            2,
            f"reactr-wasm: {base}: HTTP 401: missing or invalid bearer token (pass --token or set REACTR_TOKEN)",
        )
        assert remote("invoke", "echo", "--data", "t", "--token", "tok-1", server=base)[:2] == (0, b"hello t")
        done = cli("invoke", "echo", "--data", "e", "--server", base, env={**ENV, "REACTR_TOKEN": "tok-1"})
        assert (done.returncode, done.stdout) == (0, b"hello e")


def test_help_explains_the_client_commands() -> None:
    top = cli("--help").stdout.decode()
    for line in ("run a job on a running server", "show a job's status as JSON", "cancel a job"):
        assert line in top
    assert "examples:" in cli("invoke", "--help").stdout.decode()
