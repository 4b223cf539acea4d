"""Hot reload of the runnables folder: the folder logic alone, then through a real server on loopback."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path

import aiohttp
import pytest
import wasmtime
from aiohttp import web

from reactr_wasm.compose import build_service, load_folder, register_wasm
from reactr_wasm.config import Config, LimitsConfig, RunnableConfig
from reactr_wasm.errors import JobTimeout
from reactr_wasm.scheduler.reactr import Reactr
from reactr_wasm.server.watch import RunnableFolder

from .conftest import wat_module

RELOAD_BOUND = 2.0  # seconds from a file change to the new behaviour, per the contract


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "runnables"
    path.mkdir()
    return path


def served(reactr: Reactr, name: str, data: bytes) -> bytes:
    value: bytes = reactr.do(name, data).then(timeout=5)
    return value


# --- the folder logic, driven poll by poll -------------------------------------------


def test_start_up_loads_good_modules_and_skips_bad_ones(
    reactr: Reactr, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (folder / "echo.wasm").write_bytes(wat_module("echo"))
    (folder / "broken.wasm").write_bytes(b"\0asm garbage")
    (folder / "notes.txt").write_text("not a runnable")
    (folder / ".hidden.wasm").write_bytes(wat_module("echo"))
    watcher = load_folder(reactr, Config(), folder)
    assert watcher.served == ["echo"] and reactr.names() == ["echo"]
    assert served(reactr, "echo", b"joe") == b"hello joe"
    assert f"runnable 'broken' ({folder / 'broken.wasm'}): cannot compile" in caplog.text


def test_folder_runnables_get_their_configured_overrides(reactr: Reactr, folder: Path) -> None:
    for name in ("counter", "infinite-loop"):
        (folder / f"{name}.wasm").write_bytes(wat_module(name))
    (folder / "fresh-counter.wasm").write_bytes(wat_module("counter"))
    config = Config(
        limits=LimitsConfig(timeout=0.2),
        runnables={"fresh-counter": RunnableConfig(isolation="fresh"), "counter": RunnableConfig(timeout=5)},
    )
    load_folder(reactr, config, folder)
    assert [served(reactr, "fresh-counter", b"") for _ in range(2)] == [b"1", b"1"]
    assert [served(reactr, "counter", b"") for _ in range(2)] == [b"1", b"2"]
    started = time.monotonic()
    with pytest.raises(JobTimeout):
        reactr.do("infinite-loop", b"").then(timeout=5)
    assert time.monotonic() - started < 2


def test_add_replace_remove_with_settling(reactr: Reactr, folder: Path) -> None:
    watcher = RunnableFolder(folder, partial(register_wasm, reactr, Config()), reactr.deregister)
    watcher.poll(settle=False)
    assert reactr.names() == []

    (folder / "greet.wasm").write_bytes(wat_module("echo"))
    watcher.poll()
    assert reactr.names() == [], "a new file waits one poll to settle"
    watcher.poll()
    assert served(reactr, "greet", b"x") == b"hello x"

    (folder / "greet.wasm").write_bytes(wat_module("as-style"))
    watcher.poll()
    watcher.poll()
    assert served(reactr, "greet", b"x") == b"hello, x"

    (folder / "greet.wasm").unlink()
    watcher.poll()
    assert reactr.names() == [] and watcher.served == []


def test_broken_replacement_keeps_the_old_version_and_is_retried_on_change(
    reactr: Reactr, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = folder / "greet.wasm"
    target.write_bytes(wat_module("echo"))
    watcher = load_folder(reactr, Config(), folder)

    target.write_bytes(b"\0asm\x01\0\0\0 truncated")
    watcher.poll(settle=False)
    assert served(reactr, "greet", b"x") == b"hello x"
    assert "cannot compile" in caplog.text and "the previous version keeps serving" in caplog.text

    caplog.clear()
    watcher.poll(settle=False)
    target.touch()
    watcher.poll(settle=False)
    assert caplog.text == "", "the same broken bytes are reported once"

    target.write_bytes(wat_module("as-style"))
    watcher.poll(settle=False)
    assert served(reactr, "greet", b"x") == b"hello, x"


def test_a_file_still_being_written_is_not_loaded_half_way(
    reactr: Reactr, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = load_folder(reactr, Config(), folder)
    wasm = wat_module("echo")
    target = folder / "slowcopy.wasm"
    with target.open("wb") as out:
        for start in range(0, len(wasm), len(wasm) // 3 + 1):
            out.write(wasm[start : start + len(wasm) // 3 + 1])
            out.flush()
            time.sleep(0.01)  # distinct timestamps even on coarse clocks
            watcher.poll()
    watcher.poll()
    assert served(reactr, "slowcopy", b"x") == b"hello x"
    assert "cannot compile" not in caplog.text


def test_a_half_written_file_caught_by_a_poll_heals_on_the_next_change(reactr: Reactr, folder: Path) -> None:
    watcher = load_folder(reactr, Config(), folder)
    wasm, target = wat_module("echo"), folder / "echo.wasm"
    target.write_bytes(wasm[: len(wasm) // 2])  # a writer that paused for longer than a poll
    watcher.poll(settle=False)
    assert reactr.names() == []
    target.write_bytes(wasm)
    watcher.poll(settle=False)
    assert served(reactr, "echo", b"x") == b"hello x"


def test_an_unchanged_rewrite_does_not_reload(reactr: Reactr, folder: Path) -> None:
    target = folder / "counter.wasm"
    target.write_bytes(wat_module("counter"))
    watcher = load_folder(reactr, Config(), folder)
    assert served(reactr, "counter", b"") == b"1"
    target.write_bytes(wat_module("counter"))  # same bytes: the warm instance keeps its state
    watcher.poll(settle=False)
    assert served(reactr, "counter", b"") == b"2"


def test_a_missing_folder_withdraws_nothing(reactr: Reactr, folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    (folder / "echo.wasm").write_bytes(wat_module("echo"))
    watcher = load_folder(reactr, Config(), folder)
    (folder / "echo.wasm").unlink()
    folder.rmdir()
    watcher.poll()
    watcher.poll()
    assert reactr.names() == ["echo"]
    assert caplog.text.count("cannot read runnables folder") == 1


# --- through a real server ---------------------------------------------------------------

Post = Callable[[str, bytes], Awaitable[tuple[int, bytes]]]


@pytest.fixture
async def server(folder: Path) -> AsyncIterator[tuple[Post, aiohttp.ClientSession, str]]:
    config = Config(runnables_dir=folder, limits=LimitsConfig(timeout=20))
    service = build_service(config)
    runner = web.AppRunner(service.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def post(name: str, data: bytes) -> tuple[int, bytes]:
                async with session.post(f"{base}/do/{name}?then=true", data=data) as response:
                    return response.status, await response.read()

            yield post, session, base
    finally:
        await runner.cleanup()
        await asyncio.to_thread(service.close)


async def wait_for(post: Post, name: str, status: int, body: bytes | None = None) -> float:
    """Seconds until ``POST /do/name?then=true`` answers ``status`` (and ``body``); fails after the bound."""
    started = time.monotonic()
    last: tuple[int, bytes] = (0, b"")
    while time.monotonic() - started < RELOAD_BOUND:
        last = await post(name, b"joe")
        if last[0] == status and body in (None, last[1]):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}: still {last} after {RELOAD_BOUND} s, expected {status} {body!r}")


async def test_hot_reload_through_the_server(
    server: tuple[Post, aiohttp.ClientSession, str], folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    post, _, _ = server
    target = folder / "greet.wasm"
    assert (await post("greet", b"joe"))[0] == 404

    target.write_bytes(wat_module("echo"))
    await wait_for(post, "greet", 200, b"hello joe")

    target.write_bytes(wat_module("as-style"))
    await wait_for(post, "greet", 200, b"hello, joe")

    target.write_bytes(b"\0asm\x01\0\0\0 not really")
    await wait_for_log(caplog, "the previous version keeps serving")
    assert f"runnable 'greet' ({target}): cannot compile" in caplog.text
    assert "the previous version keeps serving" in caplog.text
    assert await post("greet", b"joe") == (200, b"hello, joe")

    target.unlink()
    await wait_for(post, "greet", 404)


# A guest that spins on the WASI clock for 2.5 s, then returns "slow v1": a job
# that is surely still running while the file is replaced under it.
SLOW_WAT = """
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "slow v1")
  (func $now (result i64)
    (drop (call $clock (i32.const 1) (i64.const 1000) (i32.const 0)))
    (i64.load (i32.const 0)))
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $until i64)
    (local.set $until (i64.add (call $now) (i64.const 2500000000)))
    (loop $spin (br_if $spin (i64.lt_u (call $now) (local.get $until))))
    (call $return_result (i32.const 64) (i32.const 7) (local.get $ident)))
)
"""


async def test_a_job_in_flight_finishes_on_the_version_it_started_on(
    server: tuple[Post, aiohttp.ClientSession, str], folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reactr_wasm")
    post, session, base = server
    target = folder / "job.wasm"
    target.write_bytes(wasmtime.wat2wasm(SLOW_WAT))
    result_id = await start_job(session, f"{base}/do/job")  # once served: 404 until then
    while await job_status(session, base, result_id) == "queued":
        await asyncio.sleep(0.02)

    target.write_bytes(wat_module("echo"))
    await wait_for_log(caplog, f"runnable 'job' reloaded from {target}")
    assert await post("job", b"joe") == (200, b"hello joe")  # new jobs run on the new version at once
    assert await job_status(session, base, result_id) == "running", "the replacement came after the job ended"

    async with session.get(f"{base}/then/{result_id}") as response:
        assert (response.status, await response.read()) == (200, b"slow v1")


async def job_status(session: aiohttp.ClientSession, base: str, result_id: str) -> str:
    async with session.get(f"{base}/jobs/{result_id}") as response:
        status: str = (await response.json())["status"]
        return status


async def start_job(session: aiohttp.ClientSession, url: str) -> str:
    """POST ``url`` until it is accepted; returns the result id."""
    deadline = time.monotonic() + RELOAD_BOUND
    while True:
        async with session.post(url, data=b"") as response:
            if response.status == 200:
                result_id: str = (await response.json())["resultId"]
                return result_id
        assert time.monotonic() < deadline, f"{url}: not accepted after {RELOAD_BOUND} s"
        await asyncio.sleep(0.05)


async def wait_for_log(caplog: pytest.LogCaptureFixture, text: str) -> None:
    deadline = time.monotonic() + RELOAD_BOUND
    while text not in caplog.text:
        assert time.monotonic() < deadline, f"not logged within {RELOAD_BOUND} s: {text}"
        await asyncio.sleep(0.02)
