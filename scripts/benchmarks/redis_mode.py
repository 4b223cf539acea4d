"""The redis and workers sections: Redis mode on its own redis-servers, beside embedded mode."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from local_redis import LocalRedis

from benchmarks.node import serve_flags
from benchmarks.paths import ECHO
from benchmarks.peers import compare_peers
from benchmarks.redis_async import bench_redis_async
from benchmarks.redis_wrk import bench_redis_wrk


def echo_folder(tmp: Path) -> Path:
    """A runnables folder in ``tmp`` with the echo runnable as ``echo``."""
    folder = tmp / "runnables"
    folder.mkdir()
    shutil.copy(ECHO, folder / "echo.wasm")
    return folder


def bench_workers(results: dict[str, float]) -> None:
    """The redis section's then=true rows alone: ``serve --redis --workers 2`` vs ``--workers 1``."""
    flags = serve_flags() if shutil.which("redis-server") else set()
    if "--workers" not in flags:
        print("workers: skipped, needs redis-server and a serve with --workers")
        return
    with tempfile.TemporaryDirectory() as tmp_name, LocalRedis("none") as redis:
        tmp = Path(tmp_name)
        bench_redis_wrk(echo_folder(tmp), tmp, redis, flags, results, "workers")


def bench_redis(results: dict[str, float], peers: str | None = None) -> None:
    """Redis mode on its own redis-servers (no persistence, AOF), beside embedded mode; optionally the queue peers."""
    if shutil.which("redis-server") is None:
        print("redis: skipped, redis-server is not installed (apt-get install redis-server)")
        return
    flags = serve_flags()
    if "--redis" not in flags:
        print("redis: this build's serve has no --redis (Redis mode): only the embedded rows")
    modes = ["embedded", "none", "aof"] if "--redis" in flags else ["embedded"]
    with tempfile.TemporaryDirectory() as tmp_name, LocalRedis("none") as plain, LocalRedis("aof") as aof:
        tmp = Path(tmp_name)
        folder = echo_folder(tmp)
        table = bench_redis_async(folder, tmp, {"none": plain, "aof": aof}, modes, results)
        bench_redis_wrk(folder, tmp, plain, flags, results)
    if peers is not None:
        compare_peers(table, [mode for mode in modes if mode != "embedded"], peers, results)
