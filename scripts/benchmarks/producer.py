"""The producer program of the redis section: ``scripts/bench --redis-producer SPEC`` runs it in its own process."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from local_redis import busy_cpu_seconds, cpu_seconds, tree_cpu_seconds

from benchmarks.node import KeepAlive


def make_payload(size: int) -> bytes:
    """The queue peers' payloads: b"world 123" for 9 bytes, else ASCII of that size."""
    if size == 9:
        return b"world 123"
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def redis_producer(spec: dict[str, Any]) -> dict[str, Any]:
    """The producer program (its own process, started with ``--redis-producer SPEC``).

    One keep-alive connection (``KeepAlive``), one call in flight, as the queue peers'
    producers: per payload size, 200 jobs of warm-up, then N ``POST /do/echo``
    (enqueue/s), then every result read with ``GET /then/ID`` in order (e2e/s: first
    POST to last result); CPU of the server's processes, redis-server and this
    process over that e2e run, and the cores the rest of the machine kept busy meanwhile;
    then ``latency_n`` jobs one at a time (POST, then GET).
    """
    call = KeepAlive(spec["port"]).call

    def submit(payload: bytes) -> str:
        status, body = call("POST", "/do/echo", payload)
        if status != 200:
            raise RuntimeError(f"POST /do/echo: {status} {body[:300]!r}")
        return str(json.loads(body)["resultId"])

    def result(result_id: str, expected: bytes) -> None:
        status, body = call("GET", f"/then/{result_id}?wait=30")
        if status != 200 or body != expected:
            raise RuntimeError(f"GET /then/{result_id}: {status} {body[:300]!r}")

    def cpu() -> dict[str, float]:
        times = os.times()
        now = {"producer": times.user + times.system, "server": tree_cpu_seconds(spec["server_pid"])}
        if spec.get("redis_pid"):
            now["redis"] = cpu_seconds(spec["redis_pid"])
        now["machine"] = busy_cpu_seconds()
        return now

    out: dict[str, Any] = {}
    for size in spec["sizes"]:
        payload, n = make_payload(size), spec["n"] if size <= 1024 else spec["n_large"]
        expected = b"hello " + payload
        for result_id in [submit(payload) for _ in range(200)]:
            result(result_id, expected)
        cpu0, start = cpu(), time.perf_counter()
        ids = [submit(payload) for _ in range(n)]
        enqueued = time.perf_counter()
        for result_id in ids:
            result(result_id, expected)
        finished, cpu1 = time.perf_counter(), cpu()
        time.sleep(0.2)  # let the server's bookkeeping settle
        latencies = []
        for _ in range(spec["latency_n"]):
            begin = time.perf_counter()
            result(submit(payload), expected)
            latencies.append(time.perf_counter() - begin)
        latencies.sort()
        used = {who: cpu1[who] - cpu0[who] for who in cpu0}
        machine = used.pop("machine")
        out[str(size)] = {
            "n": n,
            "enqueue_per_s": n / (enqueued - start),
            "e2e_per_s": n / (finished - start),
            "p50_ms": 1e3 * latencies[len(latencies) // 2],
            "p99_ms": 1e3 * latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
            **{f"cpu_{who}_us": seconds / n * 1e6 for who, seconds in used.items()},
            "other_cores": (machine - sum(used.values())) / (finished - start),  # the rest of the machine
        }
    return out
