"""What ``reactr-wasm serve`` writes to stderr: the access log, ``--log-format json``, no secrets, the event loop.

The server runs as a subprocess on a loopback port with its stderr in a file;
the log is read after a clean SIGTERM stop, so every line is in it.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reactr_wasm.config import ConfigError, parse_config
from reactr_wasm.server.logformat import TEXT_FORMAT, JsonFormatter, TextFormatter
from reactr_wasm.server.redaction import Redactor
from tests.conftest import ROOT, wat_module
from tests.services import free_port

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
# `python -c BLOCK_UVLOOP serve ...`: the CLI in a process where `import uvloop` fails, as if not installed
BLOCK_UVLOOP = "import sys; sys.modules['uvloop'] = None; from reactr_wasm.cli import main; sys.exit(main())"
SECRETS = """\
[server]
auth_tokens = ["token-AAAA-1234"]
[callbacks]
secret = "hook-BBBB-5678"
"""
ACCESS_FIELDS = {"remote", "method", "path", "status", "bytes", "duration_ms", "request_id", "job", "result_id"}


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def stop(self) -> str:
        """SIGTERM, a clean exit; the whole log."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0, self.log_path.read_text()
        return self.log_path.read_text()


@contextmanager
def serve(
    tmp_path: Path, *flags: str, config: str = "", python: tuple[str, ...] = ("-m", "reactr_wasm")
) -> Iterator[Served]:
    """``reactr-wasm serve FLAGS`` over echo, swift-style (logs) and result-and-error (fails), once it answers."""
    folder = tmp_path / "runnables"
    folder.mkdir(exist_ok=True)
    for name in ("echo", "swift-style", "result-and-error"):
        (folder / f"{name}.wasm").write_bytes(wat_module(name))
    (tmp_path / "reactr.toml").write_text(config)
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    command = [sys.executable, *python, "serve", "--dir", str(folder), "--config", str(tmp_path / "reactr.toml"),
               "--port", str(port), "--no-watch", *flags]  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log_file, env=ENV, cwd=ROOT)
    served = Served(process, port, log_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"the server did not start:\n{log_path.read_text()}"
                time.sleep(0.05)
        yield served
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def access_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if " reactr_wasm.access: " in line]


# --- the access log, text ------------------------------------------------------------------------


def test_the_access_log_is_off_by_default_and_says_how_to_turn_it_on(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        assert server.request("POST", "/do/echo?then=true", b"joe") == (200, b"hello joe")
        log = server.stop()
    assert access_lines(log) == [], log
    assert "access log off (--access-log or [log] access = true: a line per request)" in log


def test_access_log_lines_name_the_request_job_result_status_and_duration(tmp_path: Path) -> None:
    with serve(tmp_path, "--access-log") as server:
        assert server.request("POST", "/do/echo?then=true", b"joe", {"X-Request-Id": "fast-1"})[0] == 200
        body = server.request("POST", "/do/echo", b"joe", {"X-Request-Id": "async-1"})[1]
        result_id = json.loads(body)["resultId"]
        assert server.request("GET", f"/then/{result_id}", headers={"X-Request-Id": "then-1"}) == (200, b"hello joe")
        assert server.request("POST", "/do/result-and-error?then=true", b"x", {"X-Request-Id": "error-1"})[0] == 418
        assert server.request("POST", "/do/nope", b"x", {"X-Request-Id": "missing-1"})[0] == 404
        log = server.stop()
    lines = {line.split("request_id=")[1].split()[0]: line.split(": ", 1)[1] for line in access_lines(log)}
    assert set(lines) == {"fast-1", "async-1", "then-1", "error-1", "missing-1"}, log
    assert lines["fast-1"].startswith('127.0.0.1 "POST /do/echo?then=true" 200 ')
    assert lines["fast-1"].endswith(" request_id=fast-1 job=echo result_id=-")  # then=true: no result to read back
    assert lines["async-1"].endswith(f" request_id=async-1 job=echo result_id={result_id}")
    assert lines["then-1"].startswith(f'127.0.0.1 "GET /then/{result_id}" 200 ')
    assert lines["then-1"].endswith(f" request_id=then-1 job=echo result_id={result_id}")
    assert lines["error-1"].startswith('127.0.0.1 "POST /do/result-and-error?then=true" 418 ')
    assert lines["missing-1"].startswith('127.0.0.1 "POST /do/nope" 404 ')
    assert lines["missing-1"].endswith(" request_id=missing-1 job=nope result_id=-")
    size, duration = lines["fast-1"].split('" 200 ')[1].split()[:2]
    assert int(size) > 100 and duration.endswith("ms") and 0 < float(duration[:-2]) < 5000


# --- JSON lines ------------------------------------------------------------------------------


def json_log(log: str) -> list[dict[str, Any]]:
    """Every line parsed as one JSON object (a line that is not one fails the test)."""
    records = [json.loads(line) for line in log.splitlines()]
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
        assert record["time"].endswith("Z") and len(record["time"]) == len("2026-01-01T00:00:00.000Z"), record
    return records


def test_json_lines_carry_the_access_fields_and_the_guests_context(tmp_path: Path) -> None:
    with serve(tmp_path, "--access-log", "--log-format", "json") as server:
        body = server.request("POST", "/do/echo", b"joe", {"X-Request-Id": "async-2"})[1]
        result_id = json.loads(body)["resultId"]
        assert server.request("POST", "/do/swift-style?then=true", b"joe", {"X-Request-Id": "then-2"})[0] == 200
        assert server.request("POST", "/do/result-and-error?then=true", b"x", {"X-Request-Id": "error-2"})[0] == 418
        log = server.stop()
    records = json_log(log)
    assert {"listening on 127.0.0.1:" + str(server.port), "stopped"} <= {record["message"] for record in records}
    access = {record["request_id"]: record for record in records if record["logger"] == "reactr_wasm.access"}
    assert set(access) == {"async-2", "then-2", "error-2"}, log
    for record in access.values():
        assert set(record) >= ACCESS_FIELDS and record["level"] == "INFO" and record["remote"] == "127.0.0.1"
        assert record["method"] == "POST" and record["bytes"] > 0 and 0 < record["duration_ms"] < 5000
    assert (access["async-2"]["job"], access["async-2"]["result_id"], access["async-2"]["status"]) == (
        "echo", result_id, 200)  # fmt: skip
    assert access["async-2"]["path"] == "/do/echo"
    assert (access["then-2"]["job"], access["then-2"]["result_id"], access["then-2"]["status"]) == (
        "swift-style", None, 200)  # fmt: skip
    assert access["error-2"]["status"] == 418 and access["error-2"]["path"] == "/do/result-and-error?then=true"
    guest = [record for record in records if record["message"] == "[swift-style] swift-style echo"]
    assert len(guest) == 1 and guest[0]["runnable"] == "swift-style" and "result_id" in guest[0], records
    failed = [record for record in records if record["message"].startswith("request error-2: job result-and-error")]
    assert len(failed) == 1 and failed[0]["level"] == "INFO", records


# --- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_reaches_a_text_or_json_line(tmp_path: Path, log_format: str) -> None:
    with serve(tmp_path, "--access-log", "--log-format", log_format, config=SECRETS) as server:
        authorized = {"Authorization": "Bearer token-AAAA-1234"}
        # a secret in the URL and as the request id: the access line's message and its fields
        assert server.request("POST", "/do/echo?then=true&t=token-AAAA-1234", b"x", authorized)[0] == 200
        assert server.request("POST", "/do/echo", b"x", {**authorized, "X-Request-Id": "hook-BBBB-5678"})[0] == 200
        assert server.request("POST", "/do/echo", b"x", {"Authorization": "Bearer wrong-CCCC-9999"})[0] == 401
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:  # a header quoted by the parser
            sock.sendall(b"POST /do/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cr3t-DDDD\x01\r\n\r\n")
            assert sock.recv(100).split()[1] == b"400"
        log = server.stop()
    for secret in ("token-AAAA-1234", "hook-BBBB-5678", "s3cr3t-DDDD"):
        assert secret not in log, secret
    if log_format == "text":  # masked where they were, the rest of the line kept
        assert '"POST /do/echo?then=true&t=***" 200 ' in log and " request_id=*** job=echo " in log, log
    else:
        access = [record for record in json_log(log) if record["logger"] == "reactr_wasm.access"]
        assert '"POST /do/echo?then=true&t=***" 200 ' in access[0]["message"], access
        assert access[0]["path"] == "/do/echo?then=true&t=***" and access[1]["request_id"] == "***", access
        assert " request_id=*** job=echo " in access[1]["message"], access


# --- config and flags ------------------------------------------------------------------------


def effective(tmp_path: Path, config: str, *flags: str) -> dict[str, Any]:
    (tmp_path / "reactr.toml").write_text(config)
    done = subprocess.run(
        [sys.executable, "-m", "reactr_wasm", "serve", "--config", str(tmp_path / "reactr.toml"), "--print-config",
         *flags], capture_output=True, env=ENV, cwd=ROOT, check=True,
    )  # fmt: skip
    import tomllib

    printed = tomllib.loads(done.stdout.decode())
    return {"access": printed["log"]["access"], "format": printed["log"]["format"], "loop": printed["server"]["loop"]}


def test_flags_override_the_config_file_which_overrides_the_defaults(tmp_path: Path) -> None:
    assert effective(tmp_path, "") == {"access": False, "format": "text", "loop": "auto"}
    file = '[server]\nloop = "asyncio"\n[log]\naccess = true\nformat = "json"\n'
    assert effective(tmp_path, file) == {"access": True, "format": "json", "loop": "asyncio"}
    flags = ("--no-access-log", "--log-format", "text", "--loop", "uvloop")
    assert effective(tmp_path, file, *flags) == {"access": False, "format": "text", "loop": "uvloop"}
    assert effective(tmp_path, "[log]\naccess = false\n", "--access-log")["access"] is True


def test_the_config_file_turns_the_access_log_on_and_the_flag_off_again(tmp_path: Path) -> None:
    config = '[log]\naccess = true\nformat = "json"\n'
    with serve(tmp_path, config=config) as server:
        assert server.request("POST", "/do/echo?then=true", b"x")[0] == 200
        log = server.stop()
    assert [record["logger"] for record in json_log(log)].count("reactr_wasm.access") == 1
    with serve(tmp_path, "--no-access-log", config=config) as server:
        assert server.request("POST", "/do/echo?then=true", b"x")[0] == 200
        log = server.stop()
    assert [record["logger"] for record in json_log(log)].count("reactr_wasm.access") == 0


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ({"log": {"access": "yes"}}, 'log.access: must be true or false, got "yes"'),
        ({"log": {"format": "xml"}}, 'log.format: must be one of "text", "json", got "xml"'),
        ({"log": {"level": "info"}}, "log.level: unknown key; known keys: access, format"),
        ({"server": {"loop": "trio"}}, 'server.loop: must be one of "auto", "asyncio", "uvloop", got "trio"'),
    ],
)
def test_bad_log_and_loop_keys_are_refused(toml: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(toml, source="reactr.toml", base=Path("."), env={})
    assert str(error.value) == f"reactr.toml: {message}"


# --- the event loop --------------------------------------------------------------------------


def test_uvloop_is_used_when_installed(tmp_path: Path) -> None:
    pytest.importorskip("uvloop", reason="the [fast] extra is not installed")
    with serve(tmp_path) as server:
        assert server.request("POST", "/do/echo?then=true", b"joe") == (200, b"hello joe")
        log = server.stop()
    assert "event loop: uvloop" in log
    with serve(tmp_path, "--loop", "asyncio") as server:
        assert server.request("POST", "/do/echo?then=true", b"joe") == (200, b"hello joe")
        log = server.stop()
    assert "event loop: asyncio\n" in log


def test_the_plain_loop_without_uvloop_and_an_error_when_it_is_asked_for(tmp_path: Path) -> None:
    with serve(tmp_path, python=("-c", BLOCK_UVLOOP)) as server:
        assert server.request("POST", "/do/echo?then=true", b"joe") == (200, b"hello joe")
        log = server.stop()
    assert "event loop: asyncio (uvloop is not installed: pip install 'reactr-wasm[fast]' for it)" in log
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_UVLOOP, "serve", "--dir", str(tmp_path / "runnables"), "--loop", "uvloop"],
        capture_output=True, env=ENV, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.decode()
        .strip()
        .endswith("reactr-wasm: server.loop is \"uvloop\" but uvloop is not installed: pip install 'reactr-wasm[fast]'")
    )


# --- the formatters and the redactor, in-process ---------------------------------------------


def _record(**fields: Any) -> logging.LogRecord:
    record = logging.LogRecord("reactr_wasm.test", logging.WARNING, __file__, 1, "job %s failed", ("echo",), None)
    record.__dict__.update(fields)
    return record


def test_the_text_format_is_what_logging_formatter_writes() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", ("y",), sys.exc_info())
    for record in (_record(), failed, _record(stack_info="Stack (most recent call last):\n  here")):
        assert TextFormatter().format(record) == logging.Formatter(TEXT_FORMAT).format(record)


def test_json_has_the_standard_fields_then_the_extras_and_the_traceback() -> None:
    record = _record(runnable="echo", result_id="r1", _marker=True, level="not-this", when=Path("/x"))
    data = json.loads(JsonFormatter().format(record))
    assert list(data) == ["time", "level", "logger", "message", "runnable", "result_id", "when"]
    assert (data["level"], data["logger"], data["message"]) == ("WARNING", "reactr_wasm.test", "job echo failed")
    assert (data["runnable"], data["result_id"], data["when"]) == ("echo", "r1", "/x")  # str() of the unknown
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = JsonFormatter().format(failed)
    assert "\n" not in text and "ValueError: line one\nline two" in json.loads(text)["exception"]


def test_the_redactor_masks_extra_fields_and_non_ascii_text() -> None:
    redactor = Redactor(["token-one-1111"])
    record = _record(path="/do/x?t=token-one-1111", request_id="Bearer-token-ONE-1111", status=200, job="x")
    assert redactor.filter(record)
    assert (record.path, record.request_id, record.status, record.job) == ("/do/x?t=***", "Bearer-***", 200, "x")
    # Non-ASCII text skips the quick check: the pattern still runs (a dotless i matches "i" when ignoring case).
    assert redactor.redact("café token-one-1111") == "café ***"
    dotless = "Author\u0131zation"
    assert redactor.redact(f"{dotless}: Bearer abc") == f"{dotless}: ***"
    assert Redactor(["sécret-1234"]).redact("a SÉCRET-1234 b") == "a *** b"
    plain = "POST /do/echo 200 request_id=1 job=echo"
    assert redactor.redact(plain) is plain
