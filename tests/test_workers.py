"""``serve --workers N``: the refusal without Redis, and N real processes sharing one port over a real redis-server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis as redis_client

from reactr_wasm.backends.records import JobRecord, JobStatus
from tests.conftest import ROOT, wat_module
from tests.services import ServeProcess, Service, redis_server

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT and /proc")

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactr_wasm", *args], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=30
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    runnables = tmp_path / "runnables"
    runnables.mkdir()
    for name in ("echo", "slow"):
        (runnables / f"{name}.wasm").write_bytes(wat_module(name))
    return runnables


def test_more_than_one_worker_is_refused_without_redis(folder: Path, tmp_path: Path) -> None:
    done = cli("serve", "--dir", str(folder), "--workers", "2")
    assert done.returncode == 2
    line = done.stderr.strip()
    assert line.startswith("reactr-wasm: --workers 2 needs Redis mode: each process would keep its own queue")
    assert "a result id answered by one process would be unknown to the next" in line
    assert "add --redis redis://HOST:PORT/DB" in line and "\n" not in line

    config = tmp_path / "reactr.toml"
    config.write_text("[server]\nworkers = 3\n")
    done = cli("serve", "--dir", str(folder), "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"reactr-wasm: {config}: server.workers = 3 needs Redis mode")
    done = cli("serve", "--dir", str(folder), "--config", str(config), "--workers", "1", "--print-config")
    assert done.returncode == 0 and "workers = 1" in done.stdout  # the flag beats the file

    config.write_text("[server]\nworkers = 0\n")
    done = cli("serve", "--dir", str(folder), "--config", str(config))
    assert (done.returncode, done.stderr.strip()) == (
        2, f"reactr-wasm: {config}: server.workers: must be an integer between 1 and 256, got 0"
    )  # fmt: skip
    done = cli("serve", "--dir", str(folder), "--workers", "0")
    assert done.returncode == 2 and "--workers: must be an integer between 1 and 256, got '0'" in done.stderr


# ---------------------------------------------------------------- N processes over Redis


@pytest.fixture
def redis() -> Iterator[Service]:
    with redis_server() as service:
        yield service


def children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def health(url: str) -> dict[str, object]:
    """GET /health on a new connection each time: SO_REUSEPORT spreads connections, not requests."""
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        body: dict[str, object] = json.loads(response.read())
        return body


def nodes_seen(url: str, connections: int = 24) -> set[str]:
    return {str(health(url)["node"]) for _ in range(connections)}


def post(url: str, data: bytes) -> dict[str, str]:
    request = urllib.request.Request(url, data=data, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, str] = json.loads(response.read())
        return body


def status(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(json.loads(response.read())["status"])


def then(url: str) -> bytes:
    with urllib.request.urlopen(f"{url}?wait=5", timeout=10) as response:
        return bytes(response.read())


@pytest.fixture
def two_workers(folder: Path, redis: Service, tmp_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(["--dir", folder, "--no-watch", "--redis", redis.url, "--workers", "2"], logs=tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


def test_two_workers_serve_one_port_and_stop_on_sigterm(two_workers: ServeProcess, redis: Service) -> None:
    server = two_workers
    eventually(lambda: len(children(server.pid)) == 2, 20, "two children")
    eventually(lambda: len(nodes_seen(server.url)) == 2, 20, "both children answer on the port")
    pids = children(server.pid)

    ids = [post(f"{server.url}/do/echo", f"joe {n}".encode())["resultId"] for n in range(8)]
    for n, result_id in enumerate(ids):  # every result on new connections, whichever process took the job
        assert then(f"{server.url}/then/{result_id}") == f"hello joe {n}".encode()

    slow = post(f"{server.url}/do/slow", b"1500000000")["resultId"]  # ~1 s: running when SIGTERM comes
    eventually(lambda: status(f"{server.url}/jobs/{slow}") == "running", 20, "the slow job runs")
    server.send(signal.SIGTERM)
    assert server.wait(30) == 0, server.log()
    assert not any(alive(pid) for pid in pids)
    assert "SIGTERM: stopping 2 workers" in server.log()
    with redis_client.Redis.from_url(redis.url) as client:  # the process running it drained: finished, stored
        record = JobRecord.from_bytes(client.hget(f"reactr:r:{slow}", "d"))
    assert (record.status, record.value) == (JobStatus.SUCCEEDED, b"done")


def test_a_killed_worker_is_started_again(two_workers: ServeProcess) -> None:
    server = two_workers
    eventually(lambda: len(children(server.pid)) == 2, 20, "two children")
    eventually(lambda: len(nodes_seen(server.url)) == 2, 20, "both children answer on the port")
    before = nodes_seen(server.url)
    victim, survivor = sorted(children(server.pid))
    os.kill(victim, signal.SIGKILL)

    eventually(lambda: len(children(server.pid) - {victim}) == 2, 20, "a new child in the killed one's place")
    assert survivor in children(server.pid)
    eventually(lambda: len(nodes_seen(server.url) - before) == 1, 20, "the new child answers, with a new node id")
    log = server.log()
    assert f"(pid {victim}) exited unexpectedly (killed by SIGKILL); starting it again in 0.5s" in log


def test_a_killed_supervisor_takes_its_workers_along(two_workers: ServeProcess) -> None:
    server = two_workers
    eventually(lambda: len(children(server.pid)) == 2, 20, "two children")
    pids = children(server.pid)
    server.stop(signal.SIGKILL)
    eventually(lambda: not any(alive(pid) for pid in pids), 20, "the children drain and exit")


def test_a_port_in_use_is_one_line_and_exit_2(folder: Path, redis: Service) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("serve", "--dir", str(folder), "--redis", redis.url, "--workers", "2", "--port", str(port),
                   "--log-level", "warning")  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == f"reactr-wasm: cannot listen on 127.0.0.1:{port}: address already in use"


@pytest.mark.slow  # the backoff: 0.5 + 1 + 2 + 4 + 8 s before the fifth failed start
def test_a_worker_that_keeps_failing_at_start_stops_the_supervisor(folder: Path, tmp_path: Path) -> None:
    with redis_server() as service:
        server = ServeProcess(["--dir", folder, "--no-watch", "--redis", service.url, "--workers", "2"], logs=tmp_path)
        server.start()
        try:
            eventually(lambda: len(children(server.pid)) == 2, 20, "two children")
            eventually(lambda: len(nodes_seen(server.url)) == 2, 20, "both children listen")
            survivor, victim = sorted(children(server.pid))
            folder.rename(tmp_path / "gone")  # a new child now exits 2 at start: no runnables folder
            os.kill(victim, signal.SIGKILL)
            assert server.wait(40) == 2, server.log()
            assert not alive(survivor)
            log = server.log()
            assert log.count("failed to start (exit code 2); trying again in") == 4
            assert "failed to start 5 times in a row (exit code 2)" in log
            assert "children keep failing to start: stopping 2 workers" in log
        finally:
            server.stop(signal.SIGKILL)
