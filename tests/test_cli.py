"""The ``reactr-wasm`` command, run as a user would: a subprocess, its stdout, stderr and exit code."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, wat_module
from tests.services import serve_process

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cli(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "reactr_wasm", *args],
        input=stdin,
        capture_output=True,
        timeout=30,
        env=env or ENV,
        cwd=ROOT,
    )


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    for name in ("echo", "result-and-error", "infinite-loop", "trap", "missing-allocate", "start-trap"):
        (tmp_path / f"{name}.wasm").write_bytes(wat_module(name))
    (tmp_path / "corrupt.wasm").write_bytes(b"\0asm\x01\0\0\0\xff\xff garbage")
    return tmp_path


# --- run ---------------------------------------------------------------------------------


def test_run_prints_the_result_bytes(modules: Path) -> None:
    done = cli("run", str(modules / "echo.wasm"), "--data", "my name is joe")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"hello my name is joe", b"")


def test_run_reads_data_from_a_file_or_stdin(modules: Path) -> None:
    (modules / "input.bin").write_bytes(b"\x00\xffbytes")
    echo = str(modules / "echo.wasm")
    assert cli("run", echo, "--data", f"@{modules / 'input.bin'}").stdout == b"hello \x00\xffbytes"
    assert cli("run", echo, "--data", "@-", stdin=b"from stdin").stdout == b"hello from stdin"


def test_run_accepts_a_coordinated_request(modules: Path) -> None:
    request = {"method": "POST", "url": "/x", "request_id": "r1", "body": "d29ybGQ=", "headers": {}}
    done = cli("run", str(modules / "echo.wasm"), "--data", json.dumps(request))
    assert (done.returncode, done.stdout) == (0, b"hello world")


def test_a_runnable_error_goes_to_stderr_with_exit_code_1(modules: Path) -> None:
    done = cli("run", str(modules / "result-and-error.wasm"), "--data", "x")
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr.decode().strip() == (
        """reactr-wasm: runnable 'result-and-error' failed: {"code":418,"message":"teapot"}"""
    )


def test_a_trap_goes_to_stderr_with_exit_code_1(modules: Path) -> None:
    done = cli("run", str(modules / "trap.wasm"))
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr.startswith(b"reactr-wasm: runnable 'trap' failed: wasm execution error: ")
    assert b"unreachable" in done.stderr and b"Traceback" not in done.stderr


def test_a_timeout_stops_the_job_with_exit_code_1(modules: Path) -> None:
    started = time.monotonic()
    done = cli("run", str(modules / "infinite-loop.wasm"), "--timeout", "0.3")
    assert done.returncode == 1
    assert b"runnable 'infinite-loop' failed: job timeout" in done.stderr
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("corrupt.wasm", "runnable 'corrupt' ({dir}/corrupt.wasm): cannot compile: "),
        ("missing-allocate.wasm", "runnable 'missing-allocate' ({dir}/missing-allocate.wasm): missing export"),
        ("start-trap.wasm", "runnable 'start-trap' ({dir}/start-trap.wasm): trap in _start: "),
        ("absent.wasm", "{dir}/absent.wasm: cannot read: No such file or directory"),
    ],
)
def test_an_unusable_module_is_a_usage_error(modules: Path, file: str, message: str) -> None:
    done = cli("run", str(modules / file), "--data", "x")
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.decode().startswith("reactr-wasm: " + message.format(dir=modules)), done.stderr
    assert b"Traceback" not in done.stderr


def test_bad_arguments_exit_2_with_usage() -> None:
    for args in ((), ("run",), ("run", "x.wasm", "--timeout", "-1"), ("serve", "--port", "99999")):
        done = cli(*args)
        assert done.returncode == 2 and b"usage: reactr-wasm" in done.stderr, args


def test_help_explains_each_command_with_examples() -> None:
    top = cli("--help").stdout.decode()
    for line in ("serve a folder of .wasm runnables over HTTP", "run one job on a .wasm runnable", "examples:"):
        assert line in top
    for command in ("serve", "run", "inspect"):
        assert "examples:" in cli(command, "--help").stdout.decode()


# --- inspect -------------------------------------------------------------------------------


def test_inspect_a_usable_runnable(modules: Path) -> None:
    done = cli("inspect", str(modules / "echo.wasm"))
    assert done.returncode == 0
    text = done.stdout.decode()
    assert "verdict:      usable Reactr runnable" in text
    assert "run_e" in text and "env.return_result" in text

    report = json.loads(cli("inspect", "--json", str(modules / "echo.wasm")).stdout)
    assert report["ok"] is True and report["problems"] == []
    assert {"memory", "allocate", "run_e"} <= set(report["exports"])
    assert "env.return_result" in report["imports"]


def test_inspect_lists_needed_capabilities() -> None:
    report = json.loads(cli("inspect", "--json", str(ROOT / "runnables" / "cache-get.wasm")).stdout)
    assert report["capabilities"] == ["cache"]


@pytest.mark.parametrize(
    ("file", "problem"),
    [
        ("missing-allocate.wasm", "missing export 'allocate'"),
        ("start-trap.wasm", "trap in _start: "),
        ("corrupt.wasm", "cannot compile: "),
    ],
)
def test_inspect_an_unusable_module(modules: Path, file: str, problem: str) -> None:
    done = cli("inspect", str(modules / file))
    assert done.returncode == 1
    assert "verdict:      NOT a usable Reactr runnable" in done.stdout.decode()
    report = json.loads(cli("inspect", "--json", str(modules / file)).stdout)
    assert report["ok"] is False and any(p.startswith(problem) for p in report["problems"])


# --- serve -------------------------------------------------------------------------------


def post(url: str, data: bytes) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def serving(modules: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with serve_process(["--dir", modules]) as served:
        yield served


def test_serve_answers_jobs_and_stops_cleanly_on_sigterm(serving: tuple[subprocess.Popen[bytes], str]) -> None:
    process, base = serving
    assert post(f"{base}/do/echo?then=true", b"my name is joe") == (200, b"hello my name is joe")
    status, body = post(f"{base}/do/result-and-error?then=true", b"x")
    assert (status, json.loads(body)) == (418, {"code": 418, "message": "teapot"})
    assert post(f"{base}/do/nope?then=true", b"x")[0] == 404

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr.decode()
    log = stderr.decode()
    assert "INFO" in log and "corrupt.wasm" in log and "cannot compile" in log  # bad module skipped, logged


def test_print_config_masks_secrets_and_applies_flags(tmp_path: Path) -> None:
    config = tmp_path / "reactr.toml"
    config.write_text(
        '[server]\nport = 9000\n[callbacks]\nsecret = "env(HOOK_SECRET)"\n[runnables.echo]\npool_size = 3\n'
    )
    done = cli(
        "serve",
        "--config",
        str(config),
        "--port",
        "9100",
        "--dir",
        str(tmp_path),
        "--print-config",
        env={**ENV, "HOOK_SECRET": "very-secret-value"},
    )
    assert done.returncode == 0, done.stderr
    assert b"very-secret-value" not in done.stdout
    printed = tomllib.loads(done.stdout.decode())
    assert printed["callbacks"]["secret"] == "***"
    assert printed["server"]["port"] == 9100  # the flag beats the file
    assert printed["runnables_dir"] == str(tmp_path)
    assert printed["runnables"]["echo"]["pool_size"] == 3


def test_serve_refuses_a_bad_config_or_folder(tmp_path: Path) -> None:
    config = tmp_path / "reactr.toml"
    config.write_text('[server]\nport = "x"\n')
    done = cli("serve", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        f'reactr-wasm: {config}: server.port: must be an integer between 1 and 65535, got "x"'
    )
    done = cli("serve", "--dir", str(tmp_path / "missing"))
    assert done.returncode == 2 and b"does not exist" in done.stderr


def test_serve_on_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    modules = tmp_path / "runnables"
    modules.mkdir()
    (modules / "echo.wasm").write_bytes(wat_module("echo"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        quiet = cli("serve", "--dir", str(modules), "--port", str(port), "--log-level", "warning", "--no-watch")
        logged = cli("serve", "--dir", str(modules), "--port", str(port), "--no-watch")
    message = f"reactr-wasm: cannot listen on 127.0.0.1:{port}: address already in use\n"
    assert (quiet.returncode, quiet.stderr.decode()) == (2, message)
    assert logged.returncode == 2 and logged.stderr.decode().endswith(message)  # after the INFO lines
    assert b"Traceback" not in logged.stderr
