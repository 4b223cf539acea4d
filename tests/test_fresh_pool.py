"""The pool fresh instances come from: its size, its memory slots, and a clear error when it is full."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reactr_wasm import Config, ConfigError, FreshPool, Limits, QueueFull, Reactr, WasmEngine
from reactr_wasm.compose import FRESH_HEADROOM, fresh_pool_for
from reactr_wasm.config import load_config
from reactr_wasm.server.app import create_app
from tests.conftest import wat_module
from tests.test_server_api import make_config

MIB = 1024 * 1024


def mappings() -> set[tuple[int, int]]:
    """The address ranges this process has mapped (/proc/self/maps), as (start, end)."""
    spans = set()
    for line in Path("/proc/self/maps").read_text().splitlines():
        start, end = line.split()[0].split("-")
        spans.add((int(start, 16), int(end, 16)))
    return spans


def test_the_pool_reserves_address_space_for_its_slots_not_4_gib_each() -> None:
    before = mappings()
    with WasmEngine(fresh_pool=FreshPool(instances=8, memory=64 * MIB)) as engine:
        echo = engine.load("echo", wat_module("echo"), isolation="fresh", limits=Limits(memory=64 * MIB))
        assert echo.run(b"joe") == b"hello joe"
        largest = max(end - start for start, end in mappings() - before)
    # The memory slots are one reservation: 8 slots of 64 MiB, each with wasmtime's 32 MiB guard.
    # With wasmtime's default 4 GiB reservation per memory it would be over 32 GiB. Only what
    # the pool mapped is looked at: other tests' engines, freed meanwhile, do not count.
    assert 8 * 64 * MIB <= largest <= 8 * (64 + 32) * MIB + 64 * MIB


def test_fresh_instances_are_capped_by_their_memory_limit_inside_the_pool() -> None:
    with WasmEngine(fresh_pool=FreshPool(instances=4, memory=64 * MIB)) as engine:
        bomb = engine.load("bomb", wat_module("memory-bomb"), isolation="fresh", limits=Limits(memory=4 * MIB))
        assert bomb.run(b"") == b"grew"  # memory.grow failed at the runnable's limit, not the slot's


def test_a_memory_limit_larger_than_the_slots_is_refused_at_load() -> None:
    pool = FreshPool(instances=4, memory=64 * MIB)
    over = r"runnable 'echo': memory limit of 134217728 bytes .*FreshPool"
    with WasmEngine(fresh_pool=pool) as engine, pytest.raises(ConfigError, match=over):
        engine.load("echo", wat_module("echo"), isolation="fresh", limits=Limits(memory=128 * MIB))


def test_a_full_pool_is_a_clear_error_and_frees_up_again() -> None:
    with WasmEngine(fresh_pool=FreshPool(instances=2)) as engine:
        echo = engine.load("echo", wat_module("echo"), isolation="fresh")
        counter = engine.load("counter", wat_module("counter"), isolation="fresh")
        held = [echo.pool.acquire(), counter.pool.acquire()]  # the slots are shared by every fresh runnable
        assert engine.fresh_slots_free == 0
        for runnable in (echo, counter):
            with pytest.raises(QueueFull, match=r"all 2 fresh instances are in use; raise \[limits\] fresh_instances"):
                runnable.run(b"x")
        echo.pool.release(held.pop())
        assert echo.run(b"again") == b"hello again"
        counter.pool.release(held.pop())
        assert engine.fresh_slots_free == 2


async def test_a_full_pool_answers_503_over_http() -> None:
    with Reactr(fresh_pool=FreshPool(instances=1)) as reactr:
        echo = reactr.engine.load("echo", wat_module("echo"), isolation="fresh")
        reactr.register("echo", echo)
        held = echo.pool.acquire()
        try:
            server = TestServer(create_app(reactr, make_config()), host="127.0.0.1")
            async with TestClient(server) as client, client.post("/do/echo?then=true", data=b"joe") as response:
                assert response.status == 503
                assert "all 1 fresh instances are in use" in await response.text()
                assert response.headers["Retry-After"] == "1"
        finally:
            echo.pool.release(held)


def test_the_server_sizes_the_pool_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "reactr.toml"
    path.write_text(
        '[limits]\nmemory = "64MiB"\n\n'
        '[runnables.a]\nisolation = "fresh"\npool_size = 3\n\n'
        '[runnables.b]\nisolation = "fresh"\nmemory = "128MiB"\n\n'
        "[runnables.c]\npool_size = 50\n"  # reuse: no fresh instances
    )
    sized = FreshPool(instances=2 * (3 + 1) + FRESH_HEADROOM, memory=128 * MIB)  # a: 3 threads, b: 1
    assert fresh_pool_for(load_config(path)) == sized
    path.write_text("[limits]\nfresh_instances = 5\n")
    assert fresh_pool_for(load_config(path)) == FreshPool(instances=5, memory=256 * MIB)
    path.write_text("[limits]\nfresh_instances = 0\n")
    with pytest.raises(ConfigError, match=r"limits\.fresh_instances"):
        load_config(path)
    assert fresh_pool_for(Config()) == FreshPool(instances=FRESH_HEADROOM)
