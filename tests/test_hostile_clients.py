"""Hostile clients against a real ``reactr-wasm serve``: slow heads and bodies, floods, hang-ups, leaky headers.

Each test runs the server as a subprocess on a loopback port, its log in a
file (a flood must not block on a full pipe), and plays the client with raw
sockets. The slow clients trickle faster than 1 byte/s to keep the tests short;
what matters is that they never stop and never finish.
"""

from __future__ import annotations

import http.client
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT, wat_module
from tests.services import free_port

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SLOW_HEAD = b"POST /do/echo?then=true HTTP/1.1\r\nHost: slow\r\n"
CLOSED = "closed"  # what read_answer returns when the server reset the connection


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    clients: list[socket.socket | http.client.HTTPConnection] = field(default_factory=list)  # closed at the end

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.clients.append(sock)
        return sock

    def client(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        self.clients.append(connection)
        return connection

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            assert time.monotonic() < deadline, f"{text!r} not logged:\n{log}"
            time.sleep(0.05)
        return log

    def stop(self) -> str:
        """SIGTERM, wait for a clean exit; the whole log."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0, self.log()
        return self.log()


@contextmanager
def reactr_server(tmp_path: Path, config: str = "", nofile: tuple[int, int] | None = None) -> Iterator[Served]:
    """``reactr-wasm serve`` over an echo runnable, once it answers; ``nofile``: its (soft, hard) open-file limit."""
    folder = tmp_path / "runnables"
    folder.mkdir()
    (folder / "echo.wasm").write_bytes(wat_module("echo"))
    (tmp_path / "reactr.toml").write_text(config)
    port = free_port()
    command = [sys.executable, "-m", "reactr_wasm", "serve", "--dir", str(folder),
               "--config", str(tmp_path / "reactr.toml"), "--port", str(port)]  # fmt: skip
    limit: Callable[[], None] | None = None
    if nofile is not None:
        limits = nofile

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)

    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=log_file, env=ENV, cwd=ROOT, preexec_fn=limit
        )
    served = Served(process, port, log_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, served.log()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                    probe.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if probe.recv(100).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the server did not start:\n{served.log()}"
            time.sleep(0.05)
        yield served
    finally:
        for client in served.clients:
            client.close()
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def read_answer(sock: socket.socket, timeout: float) -> tuple[bytes | str, float]:
    """What the server sends until it closes (or ``CLOSED`` on a reset), and when it closed; times out loudly."""
    started = time.monotonic()
    received = b""
    sock.settimeout(timeout)
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        return (received or CLOSED), time.monotonic() - started
    except TimeoutError:
        raise AssertionError(f"the connection was still open after {timeout}s (got {received!r})") from None
    return received, time.monotonic() - started


def trickle(sock: socket.socket, data: bytes, every: float, timeout: float) -> tuple[bytes | str, float]:
    """Send ``data`` one byte per ``every`` seconds until the server answers or closes; what it sent, and when."""
    started = time.monotonic()
    for byte in data:
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            return read_answer(sock, timeout)
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return CLOSED, time.monotonic() - started
    raise AssertionError(f"the server let the client trickle {len(data)} bytes over {time.monotonic() - started:.1f}s")


def status_of(answer: bytes | str) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer) if isinstance(answer, bytes) else None
    return int(match.group(1)) if match else None


@pytest.fixture(scope="module", autouse=True)
def many_files() -> Iterator[None]:
    """This process opens a thousand sockets: raise its own soft open-file limit for the module."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if wanted < 2100:
        pytest.skip(f"the open-file hard limit ({hard}) is too low for a thousand clients")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextmanager
def slow_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that each sent half a request head and then nothing."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sockets.append(sock)
            with suppress(OSError):  # a shed connection may already be reset
                sock.sendall(SLOW_HEAD)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def is_open(sock: socket.socket) -> bool:
    """Whether the server still holds ``sock`` open: it sent nothing and did not close or reset it.

    A peek rather than select(), which cannot watch descriptors above 1023.
    """
    timeout = sock.gettimeout()
    sock.settimeout(0)  # else Python waits for data up to the timeout before it peeks
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)
    return False  # an answer, or the end of the stream


def echo(connection: http.client.HTTPConnection, data: bytes = b"joe") -> tuple[int, bytes, float]:
    started = time.monotonic()
    connection.request("POST", "/do/echo?then=true", body=data)
    response = connection.getresponse()
    return response.status, response.read(), time.monotonic() - started


# --- slow heads and bodies -------------------------------------------------------------------


def test_slow_request_heads_are_cut_after_the_header_timeout(tmp_path: Path) -> None:
    with reactr_server(tmp_path, "[server]\nheader_timeout = 1\n") as server:
        silent = server.connect()  # connects and never sends a byte
        started = time.monotonic()
        answer, _ = trickle(server.connect(), SLOW_HEAD + b"X-Slow: " + b"a" * 100, every=0.2, timeout=5)
        slow_took = time.monotonic() - started
        assert status_of(answer) == 408 or answer == CLOSED, answer
        assert 0.9 < slow_took < 4, slow_took

        silent_answer, _ = read_answer(silent, timeout=3)
        assert status_of(silent_answer) == 408, silent_answer
        assert b'"code":408' in silent_answer  # the API's JSON error, as for every other error

        kept_alive = server.client()  # one quick request, then the next head at 5 bytes/s
        assert echo(kept_alive)[:2] == (200, b"hello joe")
        sock = kept_alive.sock
        assert sock is not None
        started = time.monotonic()
        answer, _ = trickle(sock, SLOW_HEAD + b"X-Slow: " + b"a" * 100, every=0.2, timeout=5)
        assert status_of(answer) == 408 or answer == CLOSED, answer
        assert 0.9 < time.monotonic() - started < 4

        assert echo(server.client())[:2] == (200, b"hello joe")  # normal clients are unaffected
        log = server.stop()
    assert "Traceback" not in log and " ERROR " not in log
    warnings = [line for line in log.splitlines() if "request head" in line and " WARNING " in line]
    assert len(warnings) == 2, log  # one line for the three events, then how many were held back
    assert "[and 2 more like this in the last" in warnings[1]


def test_a_trickled_body_is_cut_with_408_after_the_body_timeout(tmp_path: Path) -> None:
    with reactr_server(tmp_path, "[server]\nbody_timeout = 1\n[log]\naccess = true\n") as server:
        sock = server.connect()
        sock.sendall(b"POST /do/echo?then=true HTTP/1.1\r\nHost: x\r\nX-Request-Id: slow-body\r\n"
                     b"Content-Length: 100\r\n\r\n")  # fmt: skip
        started = time.monotonic()
        # 4 bytes/s: an idle-gap timeout of 1s would never fire; a total deadline does.
        answer, _ = trickle(sock, b"b" * 100, every=0.25, timeout=5)
        took = time.monotonic() - started
        assert status_of(answer) == 408, answer
        assert b"Connection: close" in answer and b'"code":408' in answer
        assert 0.9 < took < 4, took
        assert echo(server.client())[:2] == (200, b"hello joe")
        log = server.wait_for_log("request_id=slow-body")
        access = [line for line in log.splitlines() if "request_id=slow-body" in line]
        assert len(access) == 1 and '" 408 ' in access[0], access
        log = server.stop()
    assert "Traceback" not in log and " ERROR " not in log


# --- many slow clients and the open-file limit ------------------------------------------------


def test_a_thousand_slow_clients_under_a_low_soft_file_limit_do_not_lock_out_a_request(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    with reactr_server(tmp_path, "[server]\nheader_timeout = 60\n", nofile=(256, hard)) as server:
        with slow_clients(server.port, 1000) as sockets:
            time.sleep(0.5)  # let the server accept them all
            status, body, took = echo(server.client())
            assert (status, body) == (200, b"hello joe")
            assert took < 1.0, f"a normal request took {took:.2f}s behind 1000 slow clients"
            assert all(is_open(sock) for sock in sockets)  # the soft limit was raised to the hard one: none shed
        log = server.stop()
    assert f"open-file limit raised from 256 to {hard}" in log
    assert "Too many open files" not in log and "Traceback" not in log


def test_connections_over_the_cap_are_shed_newest_first_without_a_log_flood(tmp_path: Path) -> None:
    # The common default limit, which the server cannot raise: it holds 1024 - 128 - 2 * 128 = 640 connections.
    with reactr_server(tmp_path, "[server]\nheader_timeout = 60\n", nofile=(1024, 1024)) as server:
        kept_alive = server.client()  # connected before the flood: keeps being served
        assert echo(kept_alive)[:2] == (200, b"hello joe")
        with slow_clients(server.port, 1000) as sockets:
            deadline = time.monotonic() + 10
            while is_open(sockets[-1]):  # the last one is over the cap: wait until the server closed it
                assert time.monotonic() < deadline, "the connection over the cap was not closed"
                time.sleep(0.05)
            status, body, took = echo(kept_alive)
            assert (status, body) == (200, b"hello joe") and took < 1.0, took
            open_ones = [is_open(sock) for sock in sockets]
            assert sum(open_ones) == 640 - 1  # the cap, less the kept-alive client
            assert all(open_ones[:639]), "an older connection was shed before a newer one"
        fresh = server.client()  # the slow ones are gone: a new client is served again
        assert echo(fresh)[:2] == (200, b"hello joe")
        log = server.stop()
    assert "Too many open files" not in log and "Invalid file descriptor" not in log and "Traceback" not in log
    shed = [line for line in log.splitlines() if "connection limit" in line]
    assert 1 <= len(shed) <= 3, shed  # one warning, not one per connection


# --- hang-ups and leaky headers ---------------------------------------------------------------


def test_a_client_hanging_up_mid_upload_is_not_a_server_error(tmp_path: Path) -> None:
    with reactr_server(tmp_path, "[log]\naccess = true\n") as server:
        sock = server.connect()
        sock.sendall(b"POST /do/echo?then=true HTTP/1.1\r\nHost: x\r\nX-Request-Id: hangup-1\r\n"
                     b"Content-Length: 1000\r\n\r\n" + b"x" * 10)  # fmt: skip
        time.sleep(0.2)
        sock.close()
        log = server.wait_for_log("request_id=hangup-1")
        assert echo(server.client())[:2] == (200, b"hello joe")
        log = server.stop()
    assert " ERROR " not in log and "Traceback" not in log, log
    access = [line for line in log.splitlines() if "request_id=hangup-1" in line and "reactr_wasm.access" in line]
    assert len(access) == 1 and '" 499 ' in access[0], access  # nginx's "client closed request", not a 500
    assert "request hangup-1: the client closed the connection before sending its whole body" in log


SECRETS_CONFIG = """\
[server]
auth_tokens = ["configured-token-1234"]
[callbacks]
secret = "callback-secret-5678"
[capabilities.http.auth]
"api.example.com" = "Bearer http-secret-9012"
[log]
access = true
"""


def test_a_malformed_header_is_one_warning_and_no_credential_reaches_the_log(tmp_path: Path) -> None:
    with reactr_server(tmp_path, SECRETS_CONFIG) as server:
        sock = server.connect()
        sock.sendall(b"POST /do/echo?then=true HTTP/1.1\r\nHost: x\r\nCookie: session=c00kie-value\r\n"
                     b"Authorization: Bearer s3cr3t\x01\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
        answer, _ = read_answer(sock, timeout=5)
        assert status_of(answer) == 400, answer
        assert b"s3cr3t" not in answer  # the answer does not echo the line back either
        # A token put in the URL by mistake shows up in the access log's request line.
        connection = server.client()
        headers = {"Authorization": "Bearer configured-token-1234", "X-Request-Id": "leaky"}
        connection.request("POST", "/do/echo?then=true&token=configured-token-1234", body=b"x", headers=headers)
        assert connection.getresponse().status == 200
        server.wait_for_log("request_id=leaky")
        log = server.stop()
    for secret in ("s3cr3t", "c00kie-value", "configured-token-1234", "callback-secret-5678", "http-secret-9012"):
        assert secret not in log, secret
    assert "Traceback" not in log and " ERROR " not in log, log
    rejected = [line for line in log.splitlines() if " WARNING " in line]
    assert len(rejected) == 1 and "rejected a malformed request" in rejected[0], rejected
    assert "token=***" in log  # masked where it was, the rest of the line kept


# --- the new [server] keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("header_timeout = 0", "server.header_timeout: must be a number of seconds above 0, got 0"),
        ('body_timeout = "1m"', 'server.body_timeout: must be a number of seconds above 0, got "1m"'),
        ("keepalive_timeout = -1", "server.keepalive_timeout: must be a number of seconds above 0, got -1"),
        ("max_connections = 0", "server.max_connections: must be an integer of at least 1, got 0"),
    ],
)
def test_bad_connection_limits_are_refused(tmp_path: Path, line: str, message: str) -> None:
    from reactr_wasm.config import ConfigError, load_config

    (tmp_path / "reactr.toml").write_text(f"[server]\n{line}\n")
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "reactr.toml")
    assert str(error.value) == f"{tmp_path / 'reactr.toml'}: {message}"
