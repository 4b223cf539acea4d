"""Async end to end, one call in flight: a producer process against embedded mode and Redis mode, in rounds."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from local_redis import LocalRedis

from benchmarks.node import Node
from benchmarks.paths import BENCH

MODES = {  # async e2e cells: key -> (label, Redis persistence or None for embedded)
    "embedded": ("embedded (no Redis)", None),
    "none": ("Redis mode, no persistence", "none"),
    "aof": ("Redis mode, AOF everysec", "aof"),
}


def _async_cell(
    mode: str, folder: Path, tmp: Path, redis: LocalRedis | None, spec: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """One node started afresh (on an emptied Redis), the producer run against it, the node stopped."""
    if redis is not None:
        redis.flush()
    node = Node(folder, tmp / f"async-{mode}.log", ["--redis", redis.url] if redis else [])
    try:
        spec = {**spec, "port": node.port, "server_pid": node.process.pid, "redis_pid": redis.pid if redis else 0}
        done = subprocess.run(
            [sys.executable, str(BENCH), "--redis-producer", json.dumps(spec)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"producer ({mode}) failed:\n{done.stderr[-3000:]}")
        return dict(json.loads(done.stdout))
    finally:
        node.stop()
        if redis is not None:
            redis.flush()


def _median_cells(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """size -> figure -> (median, min, max) over rounds."""
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    for size in runs[0]:
        out[size] = {}
        for figure in runs[0][size]:
            values = [run[size][figure] for run in runs]
            out[size][figure] = (statistics.median(values), min(values), max(values))
    return out


def bench_redis_async(
    folder: Path, tmp: Path, redis: dict[str, LocalRedis], modes: list[str], results: dict[str, float]
) -> dict[str, dict[str, dict[str, tuple[float, float, float]]]]:
    """Async e2e, one call in flight: embedded vs Redis mode without and with AOF, in interleaved rounds."""
    rounds = int(os.environ.get("BENCH_REDIS_ROUNDS", "3"))
    spec = {
        "sizes": [int(size) for size in os.environ.get("BENCH_REDIS_SIZES", "9,65536").split(",")],
        "n": int(os.environ.get("BENCH_REDIS_N", "10000")),
        "n_large": int(os.environ.get("BENCH_REDIS_N_LARGE", "1000")),
        "latency_n": int(os.environ.get("BENCH_REDIS_LATENCY_N", "500")),
    }
    runs: dict[str, list[dict[str, dict[str, float]]]] = {mode: [] for mode in modes}
    for round_ in range(rounds):
        for mode in modes[round_ % len(modes) :] + modes[: round_ % len(modes)]:
            persistence = MODES[mode][1]
            runs[mode].append(_async_cell(mode, folder, tmp, redis[persistence] if persistence else None, spec))
    table = {mode: _median_cells(cells) for mode, cells in runs.items()}
    print(
        f"async end to end, one call in flight (a producer process, one keep-alive connection), N={spec['n']} "
        f"(64 KiB: {spec['n_large']}), p50/p99 over {spec['latency_n']} jobs one at a time; "
        f"median (min-max) of {rounds} rounds; CPU µs/job server/redis/producer; cores busy with everything else:"
    )
    for mode, sizes in table.items():
        for size, figures in sizes.items():
            for figure, (median, low, high) in figures.items():
                results[f"redis.{mode}.{size}.{figure}"] = median
                if figure in ("e2e_per_s", "p50_ms"):
                    results[f"redis.{mode}.{size}.{figure}_min"] = low
                    results[f"redis.{mode}.{size}.{figure}_max"] = high
            cpu = "/".join(f"{figures[f'cpu_{who}_us'][0]:.0f}" if f"cpu_{who}_us" in figures else "-"
                           for who in ("server", "redis", "producer"))  # fmt: skip
            print(
                f"  {MODES[mode][0]:28} {size_label(int(size)):>6}  enqueue {_span(figures['enqueue_per_s'], '.0f')}/s"
                f"  e2e {_span(figures['e2e_per_s'], '.0f')}/s  p50 {_span(figures['p50_ms'], '.2f')} ms"
                f"  p99 {figures['p99_ms'][0]:.2f} ms  CPU {cpu}  others {figures['other_cores'][0]:.2f}"
            )
    for mode in modes:
        if mode != "embedded" and "embedded" in table:
            for size in table[mode]:
                ratio = table[mode][size]["cpu_server_us"][0] / table["embedded"][size]["cpu_server_us"][0]
                results[f"redis.{mode}.{size}.server_cpu_vs_embedded"] = ratio
                print(f"  server CPU per async job, {MODES[mode][0]} / embedded, {size_label(int(size))}: "
                      f"{ratio:.2f}x")  # fmt: skip
    return table


def _span(value: tuple[float, float, float], spec: str) -> str:
    return f"{value[0]:{spec}} ({value[1]:{spec}}-{value[2]:{spec}})"


def size_label(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"
