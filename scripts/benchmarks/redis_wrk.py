"""wrk at 32 connections on Redis mode: then=true with --workers 2 vs 1, and p99 and CPU per job against embedded."""

from __future__ import annotations

import os
import re
import shutil
import statistics
from pathlib import Path

from local_redis import LocalRedis, busy_cpu_seconds

from benchmarks.node import THEN_PATH, Node
from benchmarks.wrk import WRK_POST, WrkRun, wrk_run

ASYNC_PAIR_LUA = """
-- The async pair under load: POST /do/echo, then GET /then/ID for each id answered (FIFO).
local ids, first, last = {}, 1, 0
jobs, bad = 0, 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function request()
  if first <= last then
    local id = ids[first]
    ids[first] = nil
    first = first + 1
    return wrk.format("GET", "/then/" .. id .. "?wait=30")
  end
  return wrk.format("POST", "/do/echo", nil, "world 123")
end
function response(status, headers, body)
  local id = string.match(body, '"resultId"%s*:%s*"([%w_-]+)"')
  if id then
    last = last + 1
    ids[last] = id
  elseif status == 200 and body == "hello world 123" then
    jobs = jobs + 1
  else
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local j, b = 0, 0
  for _, thread in ipairs(threads) do
    j = j + thread:get("jobs")
    b = b + thread:get("bad")
  end
  io.write(string.format("async jobs: %d done, %d bad\\n", j, b))
end
"""


# (server, test) -> per round: rate, p50 ms, p99 ms, server CPU µs/job, wrk's cores, cores of all else but redis-server
WrkFigures = dict[tuple[str, str], list[tuple[float, ...]]]


def bench_redis_wrk(
    folder: Path, tmp: Path, redis: LocalRedis, flags: set[str], results: dict[str, float], section: str = "redis"
) -> None:
    """wrk, 32 connections: then=true with --workers 2 vs 1; p99 and server CPU per job, embedded vs Redis mode.

    ``section="workers"``: the then=true rows of --workers 2 and 1 alone.
    """
    if shutil.which("wrk") is None:
        print(f"{section}: wrk rows skipped, wrk is not installed (apt-get install -y wrk)")
        return
    servers: dict[str, list[str]] = {} if section == "workers" else {"embedded": []}  # key -> flags
    if "--workers" in flags:
        servers["redis"] = ["--redis", redis.url, "--workers", "1"]
        servers["workers2"] = ["--redis", redis.url, "--workers", "2"]
    elif "--redis" in flags:
        servers["redis"] = ["--redis", redis.url]
        print(f"{section}: this build's serve has no --workers: no workers 2 vs 1 row")
    tests = [(key, "then") for key in servers]
    if section == "redis":
        tests += [(key, "pair") for key in ("embedded", "redis") if key in servers]
    seconds = int(os.environ.get("BENCH_HTTP_SECONDS", "3"))
    rounds = int(os.environ.get("BENCH_REDIS_WRK_ROUNDS", "3"))
    scripts = {"then": tmp / "then.lua", "pair": tmp / "pair.lua"}
    scripts["then"].write_text(WRK_POST)
    scripts["pair"].write_text(ASYNC_PAIR_LUA)
    figures: WrkFigures = {test: [] for test in tests}
    nodes: dict[str, Node] = {}
    redis.flush()
    try:
        for key, extra in servers.items():
            nodes[key] = Node(folder, tmp / f"wrk-{key}.log", extra)
        for key, kind in tests:  # warm-up
            _wrk_jobs(nodes[key], kind, scripts[kind], 1)
        for round_ in range(rounds):
            for key, kind in tests[round_ % len(tests) :] + tests[: round_ % len(tests)]:
                cpu, redis_cpu, busy = nodes[key].cpu_seconds(), redis.cpu_seconds(), busy_cpu_seconds()
                run, jobs = _wrk_jobs(nodes[key], kind, scripts[kind], seconds)
                cpu, redis_cpu = nodes[key].cpu_seconds() - cpu, redis.cpu_seconds() - redis_cpu
                others = (busy_cpu_seconds() - busy - cpu - redis_cpu - run.cpu_s) / seconds  # the rest of the machine
                row = (jobs / seconds, run.p50_ms, run.p99_ms, cpu / jobs * 1e6, run.cpu_s / seconds, others)
                figures[key, kind].append(row)
    finally:
        for node in nodes.values():
            node.stop()
        redis.flush()
    _report_redis_wrk(figures, "--workers" in flags, rounds, seconds, results, section)


def _wrk_jobs(node: Node, kind: str, script: Path, seconds: int) -> tuple[WrkRun, int]:
    """One wrk run of a test ("then": POST /do?then=true; "pair": POST /do + GET /then) and the jobs it completed."""
    if kind == "then":
        run = wrk_run(node.url + THEN_PATH, script, seconds)
        return run, run.count
    run = wrk_run(node.url, script, seconds)
    match = re.search(r"async jobs: (\d+) done, (\d+) bad", run.output)
    if not match or match.group(2) != "0":
        raise RuntimeError(f"async pair: wrong answers or no count:\n{run.output}")
    return run, int(match.group(1))


def _report_redis_wrk(
    figures: WrkFigures, workers: bool, rounds: int, seconds: int, results: dict[str, float], section: str
) -> None:
    labels = {"embedded": "embedded", "redis": "Redis mode (--workers 1)" if workers else "Redis mode",
              "workers2": "Redis mode --workers 2"}  # fmt: skip
    whats = {"then": ("POST /do/echo?then=true", "req/s"), "pair": ("async pair (POST /do, GET /then)", "jobs/s")}
    print(f"wrk, 32 connections, {rounds} rounds of {seconds} s, median; CPU of the server's processes per job; "
          "cores busy with wrk and with everything else:")  # fmt: skip
    medians: dict[tuple[str, str], list[float]] = {}
    for (key, kind), values in figures.items():
        medians[key, kind] = [statistics.median(column) for column in zip(*values, strict=True)]
        rate, p50, p99, cpu_us, wrk_cores, others = medians[key, kind]
        what, unit = whats[kind]
        print(f"  {labels[key]:26} {what:34} {rate:7.0f} {unit:6}  p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
              f"{cpu_us:5.1f} µs CPU  wrk {wrk_cores:.2f}  others {others:.2f}")  # fmt: skip
        prefix = f"{section}.wrk.{kind}.{key}"
        results[f"{prefix}_per_s"], results[f"{prefix}_p50_ms"] = rate, p50
        results[f"{prefix}_p99_ms"], results[f"{prefix}_cpu_us"] = p99, cpu_us
        results[f"{prefix}_wrk_cores"], results[f"{prefix}_other_cores"] = wrk_cores, others
    if ("workers2", "then") in figures:
        ratios = [w2[0] / w1[0] for w1, w2 in zip(figures["redis", "then"], figures["workers2", "then"], strict=True)]
        results[f"{section}.workers_ratio"] = ratio = statistics.median(ratios)
        print(f"  then=true --workers 2 / --workers 1: {ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
              f"(target >= 1.6x)")  # fmt: skip
    for kind in ("then", "pair"):
        if ("redis", kind) in medians and ("embedded", kind) in medians:
            cost = medians["redis", kind][3] / medians["embedded", kind][3]
            results[f"{section}.wrk.{kind}.cpu_vs_embedded"] = cost
            print(f"  server CPU per job, Redis mode / embedded, {whats[kind][0]}: {cost:.2f}x")
