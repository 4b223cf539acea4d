"""Graceful stop: serve() drains jobs and callbacks in flight, bounded by server.drain_timeout."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from reactr_wasm import Config, Reactr
from reactr_wasm.config import CallbackConfig, ServerConfig
from reactr_wasm.server.app import SERVER, create_app
from reactr_wasm.server.run import serve
from tests.conftest import ROOT
from tests.test_server_api import wasm


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_for(port: int, drain_timeout: float = 5.0) -> Config:
    return Config(
        server=ServerConfig(port=port, drain_timeout=drain_timeout),
        callbacks=CallbackConfig(allow_private=True),
    )


async def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"nothing listens on port {port}")


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[str, asyncio.Queue[bytes]]]:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put(await request.read())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("/hook")), received


async def test_stop_waits_for_jobs_and_callbacks_in_flight(
    reactr: Reactr, hooks: tuple[str, asyncio.Queue[bytes]]
) -> None:
    hook, received = hooks
    wasm(reactr, "slow", pool_size=2)
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(reactr, config_for(port), shutdown_event=stop, handle_signals=False))
    await wait_listening(port)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/do/slow?callback={quote(hook, safe='')}", data=b"400000000") as response:
            assert response.status == 200
        waiting = asyncio.create_task(session.post(f"{base}/do/slow?then=true", data=b"400000000"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        stop.set()
        async with await asyncio.wait_for(waiting, 5) as response:  # answered, not cut off
            assert (response.status, await response.read()) == (200, b"done")
        await asyncio.wait_for(server, 5)
    assert time.monotonic() - started < 3
    assert received.get_nowait() == b"done"  # delivered before serve() returned
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_what_is_left_at_the_drain_timeout_is_cancelled(reactr: Reactr) -> None:
    wasm(reactr, "loop", "infinite-loop", timeout=30)
    port = free_port()
    config = config_for(port, drain_timeout=0.3)
    app = create_app(reactr, config)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(reactr, config, app=app, shutdown_event=stop, handle_signals=False))
    await wait_listening(port)
    async with aiohttp.ClientSession() as session, session.post(f"http://127.0.0.1:{port}/do/loop") as response:
        result_id = (await response.json())["resultId"]
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(server, 5)
    assert 0.25 < time.monotonic() - started < 2.5
    record = await app[SERVER].store.get(result_id)  # the drain stored how the job ended
    assert record is not None and record.status.value == "cancelled"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_sigterm_drains_and_exits_0(
    module_dir: Path, tmp_path: Path, hooks: tuple[str, asyncio.Queue[bytes]]
) -> None:
    hook, received = hooks
    port = free_port()
    config = tmp_path / "reactr.toml"
    config.write_text(f"[server]\nport = {port}\ndrain_timeout = 10\n\n[callbacks]\nallow_private = true\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reactr_wasm",
        "serve",
        "--dir",
        str(module_dir),
        "--config",
        str(config),
        "--no-watch",
        "--log-level",
        "warning",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        await wait_listening(port, timeout=20)
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/do/slow?callback={quote(hook, safe='')}"
            async with session.post(url, data=b"500000000") as response:  # ~0.35 s
                assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert await asyncio.wait_for(received.get(), 1) == b"done"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
