"""The http section: wrk against ``reactr-wasm serve`` and a bare aiohttp handler, all running at once, in rounds."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_redis import cpu_seconds, free_port

from benchmarks.paths import ECHO, ROOT
from benchmarks.wrk import WRK_POST, wrk

BARE_SERVER = """
import sys
from aiohttp import web
async def echo(request):
    return web.Response(body=b"hello " + await request.read())
app = web.Application()
app.router.add_post("/do/echo", echo)
loop = None
if sys.argv[2:] == ["uvloop"]:
    import uvloop
    loop = uvloop.new_event_loop()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=loop)
"""

PORT = "{port}"  # in a server's command: where its port goes

# (key, label, arguments after `serve --dir DIR`); "reactr" is the command a user runs: default flags.
HTTP_SERVE_VARIANTS = [
    ("reactr", "reactr-wasm serve, default flags", []),
    ("access_log", "reactr-wasm serve --access-log", ["--access-log"]),
    ("access_log_json", "reactr-wasm serve --access-log --log-format json", ["--access-log", "--log-format", "json"]),
]
HTTP_ASYNCIO_VARIANTS = [  # the default loop is uvloop when installed: the same without it
    ("asyncio", "reactr-wasm serve --loop asyncio", ["--loop", "asyncio"]),
]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def _http_servers(folder: Path) -> dict[str, tuple[str, list[str]]]:
    """key -> (label, command with PORT for its port)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        has_uvloop = False
    else:
        has_uvloop = True
    reactr = [sys.executable, "-m", "reactr_wasm", "serve", "--dir", str(folder)]
    bare = [sys.executable, "-c", BARE_SERVER, PORT]
    servers = {"bare": ("bare aiohttp handler (asyncio loop)", bare)}
    if has_uvloop:
        servers["bare_uvloop"] = ("bare aiohttp handler on uvloop", [*bare, "uvloop"])
    variants = HTTP_SERVE_VARIANTS + (HTTP_ASYNCIO_VARIANTS if has_uvloop else [])
    for key, label, flags in variants:
        servers[key] = (label, [*reactr, *flags, "--port", PORT])
    if not has_uvloop:
        print("http: uvloop is not installed (pip install 'reactr-wasm[fast]'): no uvloop rows")
    return servers


def _start_http_servers(
    servers: dict[str, tuple[str, list[str]]], tmp: Path, running: dict[str, tuple[str, subprocess.Popen[bytes]]]
) -> None:
    """Start each server on core 0 (wrk gets the other), logging to tmp/KEY.log; running: key -> (URL, process)."""
    for key, (_, command) in servers.items():
        port = free_port()
        args = [str(port) if arg == PORT else arg for arg in command]
        with (tmp / f"{key}.log").open("wb") as log:
            proc = subprocess.Popen(["taskset", "-c", "0", *args], cwd=ROOT, stdout=log, stderr=log)
        query = "" if key.startswith("bare") else "?then=true"
        running[key] = (f"http://127.0.0.1:{port}/do/echo{query}", proc)
        wait_port(port)


def bench_http(results: dict[str, float]) -> None:
    """Every server runs at once; each round runs wrk against each in turn, so load from elsewhere on the
    machine hits all alike. A ratio is to the bare handler in the same round; printed: the median over
    rounds (min-max), and the server's CPU time per request, which other load on the machine disturbs
    less than req/s. A server's log goes to a file, as under a process manager."""
    if shutil.which("wrk") is None:
        print("http: skipped, wrk is not installed (apt-get install -y wrk)")
        return
    seconds = int(os.environ.get("BENCH_HTTP_SECONDS", "3"))
    rounds = int(os.environ.get("BENCH_HTTP_ROUNDS", "3"))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "runnables"
        folder.mkdir()
        shutil.copy(ECHO, folder / "echo.wasm")
        script = tmp / "post.lua"
        script.write_text(WRK_POST)
        servers = _http_servers(folder)
        running: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
        rates: dict[str, list[float]] = {key: [] for key in servers}
        cpu_us: dict[str, list[float]] = {key: [] for key in servers}
        answered = dict.fromkeys(servers, 0)
        try:
            _start_http_servers(servers, tmp, running)
            for key, (url, _) in running.items():
                answered[key] += wrk(url, script, 1)[1]  # warm-up: JIT of the fast path, connection pools
            for round_ in range(rounds):
                keys = list(running)
                keys = keys[round_ % len(keys) :] + keys[: round_ % len(keys)]  # each goes first once in a while
                for key in keys:
                    url, proc = running[key]
                    cpu = cpu_seconds(proc.pid)  # taskset execs the server: same pid
                    rate, count = wrk(url, script, seconds)
                    rates[key].append(rate)
                    cpu_us[key].append((cpu_seconds(proc.pid) - cpu) / count * 1e6)
                    answered[key] += count
        finally:
            for _, proc in running.values():
                proc.send_signal(signal.SIGTERM)
            for _, proc in running.values():
                proc.wait(timeout=30)
        logs = {key: (tmp / f"{key}.log").read_text() for key in ("reactr", "access_log")}
    _report_http(servers, rates, cpu_us, rounds, seconds, results)
    for key, text in logs.items():  # the rows measured what they say
        loop = re.search(r"event loop: (\w+)", text)
        print(
            f"  {servers[key][0]}: {answered[key]} requests, {text.count('reactr_wasm.access')} access-log lines, "
            f"{loop.group(1) if loop else '?'} loop"
        )


def _report_http(
    servers: dict[str, tuple[str, list[str]]],
    rates: dict[str, list[float]],
    cpu_us: dict[str, list[float]],
    rounds: int,
    seconds: int,
    results: dict[str, float],
) -> None:
    print(
        f"HTTP POST /do/echo?then=true, wrk 32 connections, {rounds} rounds of {seconds} s; "
        f"ratio to the bare handler in the same round, median (min-max); server CPU per request, median:"
    )
    for key, (label, _) in servers.items():
        ratios = [rate / bare for rate, bare in zip(rates[key], rates["bare"], strict=True)]
        rps, ratio, cpu = statistics.median(rates[key]), statistics.median(ratios), statistics.median(cpu_us[key])
        results[f"http.{key}_rps"], results[f"http.{key}_ratio"] = rps, ratio
        results[f"http.{key}_ratio_min"], results[f"http.{key}_ratio_max"] = min(ratios), max(ratios)
        results[f"http.{key}_cpu_us"] = cpu
        target = "  (target >= 0.85x)" if key == "reactr" else ""
        print(
            f"  {label:50} {rps:7.0f} req/s  {ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})  "
            f"{cpu:5.1f} µs CPU{target}"
        )
    results["http.ratio"] = results["http.reactr_ratio"]
