"""One wrk run: requests per second, requests answered, p50/p99 and wrk's own CPU time."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import NamedTuple

WRK_POST = 'wrk.method = "POST"\nwrk.body = "my name is joe"\n'


class WrkRun(NamedTuple):
    rate: float  # requests per second
    count: int  # requests answered
    p50_ms: float
    p99_ms: float
    cpu_s: float  # wrk's own CPU time
    output: str


def wrk_run(url: str, script: Path, seconds: int) -> WrkRun:
    """One wrk run, one thread, 32 connections, with its latency distribution."""
    before = os.times()
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    p50, p99 = (re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M) for q in (50, 99))
    if not rate or not count or not p50 or not p99 or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk failed or saw errors:\n{out}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    p50_ms, p99_ms = (float(m.group(1)) * scale[m.group(2)] for m in (p50, p99))
    after = os.times()
    cpu_s = after.children_user + after.children_system - before.children_user - before.children_system
    return WrkRun(float(rate.group(1)), int(count.group(1)), p50_ms, p99_ms, cpu_s, out)


def wrk(url: str, script: Path, seconds: int) -> tuple[float, int]:
    """Requests per second and requests answered."""
    run = wrk_run(url, script, seconds)
    return run.rate, run.count
