"""Hot reload of the runnables folder: the folder logic alone, then through a real server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO

import aiohttp
import pytest
import wasmtime
from aiohttp import web

from reactr_wasm.compose import build_service, load_folder, register_wasm
from reactr_wasm.config import Config, LimitsConfig, RunnableConfig
from reactr_wasm.errors import JobTimeout
from reactr_wasm.scheduler.reactr import Reactr
from reactr_wasm.server.folder_events import REMOTE_FILESYSTEMS, filesystem_type
from reactr_wasm.server.watch import RunnableFolder
from tests.conftest import MODULES, wat_module

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


# --- an in-place rewrite that pauses mid-file (issue 9, item 7) ------------------------------


def version_modules() -> tuple[bytes, bytes, int]:
    """version.wat as written (answers "11"), its version 2 ("22") and a split between their two differences.

    The two binaries have the same size; the first ``split`` bytes of version 2
    followed by the rest of version 1 make a valid module that answers "21".
    """
    source = (MODULES / "version.wat").read_text()
    code, data = "(i32.const 49)", '(data (i32.const 65) "1")'
    assert source.count(code) == 1 and source.count(data) == 1
    old = bytes(wasmtime.wat2wasm(source))
    new = bytes(wasmtime.wat2wasm(source.replace(code, "(i32.const 50)").replace(data, data.replace("1", "2"))))
    differences = [at for at in range(len(old)) if old[at] != new[at]]
    assert len(old) == len(new) and len(differences) == 2
    return old, new, (differences[0] + differences[1]) // 2


def write_in_place_with_a_pause(target: Path, data: bytes, split: int, pause: float) -> None:
    """Overwrite ``target`` through one open handle: ``data[:split]``, a pause, the rest, then close."""
    with target.open("r+b") as out:
        out.write(data[:split])
        out.flush()
        time.sleep(pause)
        out.write(data[split:])


def test_the_half_new_file_is_a_module_that_answers_from_both_versions(reactr: Reactr) -> None:
    old, new, split = version_modules()
    register_wasm(reactr, Config(), "mixed", new[:split] + old[split:], Path("mixed.wasm"))
    assert served(reactr, "mixed", b"") == b"21", "the scenario below would not show a mixed module"


async def test_an_in_place_rewrite_that_pauses_is_loaded_only_after_close(
    server: tuple[Post, aiohttp.ClientSession, str], folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reactr_wasm")
    post, _, _ = server
    old, new, split = version_modules()
    target = folder / "version.wasm"
    target.write_bytes(old)
    await wait_for(post, "version", 200, b"11")

    writing = asyncio.create_task(asyncio.to_thread(write_in_place_with_a_pause, target, new, split, 1.5))
    during: list[tuple[int, bytes]] = []
    while not writing.done():
        during.append(await post("version", b""))
        await asyncio.sleep(0.02)
    await writing
    after: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + RELOAD_BOUND
    while not after or after[-1] != (200, b"22"):
        assert time.monotonic() < deadline, f"version 2 not served {RELOAD_BOUND} s after close: {after[-3:]}"
        after.append(await post("version", b""))
        await asyncio.sleep(0.02)

    assert len(during) > 20 and set(during) == {(200, b"11")}, "only version 1 is served while the file is open"
    assert set(after) <= {(200, b"11"), (200, b"22")}, "no job is answered by the half-new module"
    assert caplog.text.count("runnable 'version' reloaded") == 1
    assert "polling every" not in caplog.text, "this scenario is about the inotify rule, not the fallback"


# --- the inotify rule, driven event batch by event batch ---------------------------------------


@pytest.fixture
def watched(reactr: Reactr, folder: Path) -> Iterator[RunnableFolder]:
    """The folder served by ``reactr`` and followed by inotify events (applied by ``apply_events``)."""
    with RunnableFolder(folder, partial(register_wasm, reactr, Config()), reactr.deregister) as watcher:
        assert watcher.watch_events() and watcher.mode == "events"
        watcher.poll(settle=False)
        yield watcher


def test_events_load_a_file_rewritten_in_place_only_when_it_is_closed(
    reactr: Reactr, folder: Path, watched: RunnableFolder
) -> None:
    old, new, split = version_modules()
    target = folder / "version.wasm"
    target.write_bytes(old)
    watched.apply_events()
    assert served(reactr, "version", b"") == b"11"
    with target.open("r+b") as out:
        out.write(new[:split])
        out.flush()
        watched.apply_events()
        assert served(reactr, "version", b"") == b"11", "a write alone never loads"
        out.write(new[split:])
        out.flush()
        watched.apply_events()
        assert served(reactr, "version", b"") == b"11", "complete bytes are still not loaded while open"
    watched.apply_events()
    assert served(reactr, "version", b"") == b"22"


def test_events_wait_for_the_next_close_when_a_file_is_written_again_first(
    reactr: Reactr, folder: Path, watched: RunnableFolder
) -> None:
    old, new, split = version_modules()
    target = folder / "version.wasm"
    target.write_bytes(old)
    with target.open("r+b") as out:  # closed-after-write, then written again before the server looks
        out.write(new[:split])
        out.flush()
        watched.apply_events()
        assert reactr.names() == [], "the close of the first writer is followed by a write: not loaded"
    watched.apply_events()
    assert served(reactr, "version", b"") == b"21", "the bytes as the second writer left them on close"


def test_events_drop_a_read_when_the_file_is_written_while_the_server_handles_its_close(
    reactr: Reactr, folder: Path
) -> None:
    old, new, split = version_modules()
    (folder / "version.wasm").write_bytes(old)
    second_writer: list[BinaryIO] = []

    def load(name: str, data: bytes, path: Path) -> None:
        register_wasm(reactr, Config(), name, data, path)
        if name == "echo" and not second_writer:  # while the batch is applied: version.wasm is written again
            second_writer.append((folder / "version.wasm").open("r+b"))
            second_writer[0].write(old[:split])
            second_writer[0].flush()

    with RunnableFolder(folder, load, reactr.deregister) as watcher, contextlib.ExitStack() as handles:
        watcher.poll(settle=False)
        assert watcher.watch_events()
        (folder / "echo.wasm").write_bytes(wat_module("echo"))  # closed first: loaded first
        (folder / "version.wasm").write_bytes(new)
        watcher.apply_events()
        assert served(reactr, "echo", b"x") == b"hello x" and second_writer
        handles.enter_context(second_writer[0])
        assert served(reactr, "version", b"") == b"11", "the read raced a write: dropped, not loaded"
        second_writer[0].close()
        watcher.apply_events()
        assert served(reactr, "version", b"") == b"12", "the bytes as the second writer left them"


def test_events_load_a_file_renamed_in_and_ignore_hidden_scratch_files(
    reactr: Reactr, folder: Path, watched: RunnableFolder
) -> None:
    scratch = folder / ".greet.wasm.tmp"
    scratch.write_bytes(wat_module("echo"))
    watched.apply_events()
    assert reactr.names() == []
    scratch.replace(folder / "greet.wasm")
    watched.apply_events()
    assert served(reactr, "greet", b"x") == b"hello x"

    (folder / "greet.wasm").replace(folder / "hello.wasm")  # a rename inside the folder: one out, one in
    watched.apply_events()
    assert reactr.names() == ["hello"] and served(reactr, "hello", b"x") == b"hello x"
    (folder / "hello.wasm").unlink()
    watched.apply_events()
    assert reactr.names() == [] and watched.served == []


def test_events_keep_the_old_version_on_a_broken_file_and_skip_equal_bytes(
    reactr: Reactr, folder: Path, watched: RunnableFolder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reactr_wasm")
    target = folder / "counter.wasm"
    target.write_bytes(wat_module("counter"))
    watched.apply_events()
    assert served(reactr, "counter", b"") == b"1"
    target.write_bytes(wat_module("counter"))
    target.touch()
    watched.apply_events()
    assert served(reactr, "counter", b"") == b"2", "equal bytes do not reload: the instance keeps its state"
    target.write_bytes(b"\0asm\x01\0\0\0 broken")
    watched.apply_events()
    assert served(reactr, "counter", b"") == b"3"
    assert "cannot compile" in caplog.text and "the previous version keeps serving" in caplog.text
    assert caplog.text.count("runnable 'counter' reloaded") == 0


def test_events_fall_back_to_polling_when_the_folder_goes_away(
    reactr: Reactr, folder: Path, watched: RunnableFolder, caplog: pytest.LogCaptureFixture
) -> None:
    (folder / "echo.wasm").write_bytes(wat_module("echo"))
    watched.apply_events()
    moved = folder.with_name("moved")
    folder.rename(moved)
    watched.apply_events()
    assert watched.mode == "polling" and reactr.names() == ["echo"], "a moved folder withdraws nothing"
    assert f"hot reload of {folder}: events stopped: the folder was moved; polling every 0.5 s" in caplog.text
    watched.poll()
    assert reactr.names() == ["echo"]
    folder.mkdir()
    (folder / "greet.wasm").write_bytes(wat_module("as-style"))
    watched.poll()
    watched.poll()
    assert served(reactr, "greet", b"x") == b"hello, x" and reactr.names() == ["greet"]


def test_events_can_be_turned_off(reactr: Reactr, folder: Path) -> None:
    watcher = RunnableFolder(folder, partial(register_wasm, reactr, Config()), reactr.deregister, events=False)
    assert watcher.mode == "polling"


def test_filesystem_type_reads_mountinfo_and_network_file_systems_are_not_trusted(tmp_path: Path) -> None:
    mountinfo = (
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        "27 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "40 27 0:45 / /srv/my\\040share rw,relatime shared:9 - nfs4 server:/export rw,vers=4.2\n"
        "41 40 0:46 / /srv/my\\040share/local rw - tmpfs tmpfs rw\n"
    )
    assert filesystem_type(Path("/srv/my share/runnables"), mountinfo) == "nfs4"
    assert filesystem_type(Path("/srv/my share/local/x"), mountinfo) == "tmpfs"
    assert filesystem_type(Path("/srv/my shared"), mountinfo) == "ext4"
    assert filesystem_type(Path("/home/me"), "garbage\n") is None
    kind = filesystem_type(tmp_path)
    assert kind is not None and kind.split(".")[0] not in REMOTE_FILESYSTEMS


# --- the polling fallback's guarantee, driven poll by poll -----------------------------------


def test_polling_loads_a_writer_that_pauses_longer_than_an_interval_half_way(reactr: Reactr, folder: Path) -> None:
    """The documented limit of polling: a stat unchanged for one interval is taken as a finished file."""
    old, new, split = version_modules()
    target = folder / "version.wasm"
    target.write_bytes(old)
    watcher = RunnableFolder(folder, partial(register_wasm, reactr, Config()), reactr.deregister, events=False)
    watcher.poll(settle=False)
    with target.open("r+b") as out:
        out.write(new[:split])
        out.flush()
        watcher.poll()
        watcher.poll()  # the writer has paused: the same stat twice
        assert served(reactr, "version", b"") == b"21"
        time.sleep(0.01)  # a later mtime even on coarse clocks
        out.write(new[split:])
    watcher.poll()
    watcher.poll()
    assert served(reactr, "version", b"") == b"22", "the final version once the writer has finished"


def test_polling_never_loads_a_file_renamed_into_place_half_way(reactr: Reactr, folder: Path) -> None:
    old, new, split = version_modules()
    target = folder / "version.wasm"
    target.write_bytes(old)
    watcher = RunnableFolder(folder, partial(register_wasm, reactr, Config()), reactr.deregister, events=False)
    watcher.poll(settle=False)
    scratch = folder / ".version.wasm.tmp"
    with scratch.open("wb") as out:
        out.write(new[:split])
        out.flush()
        for _ in range(3):
            watcher.poll()
            assert served(reactr, "version", b"") == b"11" and reactr.names() == ["version"]
        out.write(new[split:])
    scratch.replace(target)
    watcher.poll()
    watcher.poll()
    assert served(reactr, "version", b"") == b"22"


async def test_the_server_falls_back_to_polling_when_its_folder_is_replaced(
    server: tuple[Post, aiohttp.ClientSession, str], folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    post, _, _ = server
    (folder / "greet.wasm").write_bytes(wat_module("echo"))
    await wait_for(post, "greet", 200, b"hello joe")
    folder.rename(folder.with_name("old-runnables"))
    await wait_for_log(caplog, "events stopped: the folder was moved; polling every 0.5 s instead")
    assert await post("greet", b"joe") == (200, b"hello joe"), "a folder that went away withdraws nothing"

    folder.mkdir()
    (folder / "greet.wasm").write_bytes(wat_module("as-style"))
    await wait_for(post, "greet", 200, b"hello, joe")
    (folder / "greet.wasm").unlink()
    await wait_for(post, "greet", 404)
