"""What kept results cost a real server: its RSS, read from /proc, around many 1 MiB jobs.

A stored result keeps the job's output only: neither the input of a finished job nor
its Result object stays behind, and the store is bounded by bytes as well as by count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ROOT, wat_module
from tests.services import free_port

MIB = 1024 * 1024
JOBS = 200

needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")


def request(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@contextmanager
def server(tmp_path: Path, config: str = "") -> Iterator[tuple[int, str]]:
    """``reactr-wasm serve`` with ``[server]`` lines ``config`` over echo and a failing module: (pid, base URL)."""
    folder = tmp_path / "runnables"
    folder.mkdir()
    for name in ("echo", "result-and-error"):
        (folder / f"{name}.wasm").write_bytes(wat_module(name))
    port = free_port()
    toml = tmp_path / "reactr.toml"
    toml.write_text(f"[server]\nport = {port}\n{config}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "reactr_wasm", "serve", "--dir", str(folder), "--config", str(toml), "--no-watch",
         "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server stopped: {process.communicate()[1].decode()}")
            try:
                request("GET", f"{base}/health")
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start listening"
                time.sleep(0.05)
        yield process.pid, base
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()


def run_async(base: str, name: str, payload: bytes, count: int) -> list[tuple[int, bytes]]:
    """POST ``count`` async jobs, then GET each result: ``(status, body)`` per job."""
    ids = []
    for _ in range(count):
        status, body = request("POST", f"{base}/do/{name}", payload)
        assert status == 200, body
        ids.append(json.loads(body)["resultId"])
    return [request("GET", f"{base}/then/{result_id}") for result_id in ids]


@needs_proc
@pytest.mark.slow
def test_a_kept_result_costs_its_output_and_a_failed_one_almost_nothing(tmp_path: Path) -> None:
    payload = os.urandom(MIB)
    with server(tmp_path) as (pid, base):
        # Warm up: instances, guest memories, every code path, and the allocator's arenas (after
        # 20 jobs the next 200 failing ones still moved RSS by up to 0.15 MiB each, after 50 by 0.09).
        for name in ("echo", "result-and-error"):
            run_async(base, name, payload, 50)
        before = rss(pid)

        answers = run_async(base, "result-and-error", payload, JOBS)
        assert answers == [(418, b'{"code":418,"message":"teapot"}')] * JOBS
        after_errors = rss(pid)

        answers = run_async(base, "echo", payload, JOBS)
        assert answers == [(200, b"hello " + payload)] * JOBS
        after_echo = rss(pid)

    per_error = (after_errors - before) / JOBS / MIB
    per_echo = (after_echo - after_errors) / JOBS / MIB
    # The output (1 MiB) must stay readable; the 1 MiB input must not (it used to: ~2 MiB per job).
    assert per_echo < 1.4, f"{per_echo:.2f} MiB of RSS per kept 1 MiB echo result"
    assert per_error < 0.2, f"{per_error:.2f} MiB of RSS per failed job with a 1 MiB input"


@needs_proc
@pytest.mark.slow
def test_the_store_is_bounded_by_bytes_oldest_first(tmp_path: Path) -> None:
    payload = os.urandom(MIB)
    with server(tmp_path, 'max_result_bytes = "8MiB"') as (pid, base):
        run_async(base, "echo", payload, 20)
        before = rss(pid)
        ids = []
        for _ in range(JOBS):
            status, body = request("POST", f"{base}/do/echo", payload)
            assert status == 200, body
            ids.append(json.loads(body)["resultId"])
            assert request("GET", f"{base}/then/{ids[-1]}")[0] == 200  # each one finishes and is kept...
        grown = rss(pid) - before
        statuses = [request("GET", f"{base}/jobs/{result_id}")[0] for result_id in ids]

    # ... until newer ones push it out: 8 MiB hold 7 results of 1 MiB + 6 bytes.
    assert statuses == [404] * (JOBS - 7) + [200] * 7
    assert grown < 40 * MIB, f"RSS grew by {grown / MIB:.0f} MiB with an 8 MiB result store"
