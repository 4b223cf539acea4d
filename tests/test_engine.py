"""The Wasm engine on well-behaved modules: ABI sequence, isolation, request mode, cache."""

from __future__ import annotations

import json
import struct
import threading
import time

import pytest

from reactr_wasm import CoordinatedResponse, ExecutionError, JobCancelled, Limits, RunErr, WasmEngine
from reactr_wasm.wasm.context import RunControl
from tests.conftest import wat_module

LARGE = (b"lorem ipsum dolor sit amet " * 2500)[:64_000] + b"\xff\x00tail"


def test_echo_small_large_and_empty(engine: WasmEngine) -> None:
    echo = engine.load("echo", wat_module("echo"))
    assert echo.run(b"my name is joe") == b"hello my name is joe"
    assert echo.run(LARGE) == b"hello " + LARGE
    assert echo.run(b"") == b"hello "


def test_reuse_keeps_guest_state_fresh_does_not(engine: WasmEngine) -> None:
    reused = engine.load("counter", wat_module("counter"))
    fresh = engine.load("counter-fresh", wat_module("counter"), isolation="fresh")
    assert [reused.run(b"") for _ in range(3)] == [b"1", b"2", b"3"]
    assert [fresh.run(b"") for _ in range(3)] == [b"1", b"1", b"1"]


def test_return_error_is_a_run_err_with_reactr_json(engine: WasmEngine) -> None:
    both = engine.load("result-and-error", wat_module("result-and-error"))
    with pytest.raises(RunErr) as error:
        both.run(b"x")
    assert (error.value.code, error.value.message) == (418, "teapot")
    assert str(error.value) == '{"code":418,"message":"teapot"}'


def test_first_result_wins(engine: WasmEngine) -> None:
    assert engine.load("double", wat_module("double-result")).run(b"") == b"first"


@pytest.mark.parametrize("first", [0, 5, 8192, 8193, 40_000])
@pytest.mark.parametrize("second", [3, 9000])
def test_first_result_wins_whether_the_driver_or_the_host_records_it(
    engine: WasmEngine, first: int, second: int
) -> None:
    two = engine.load("two", wat_module("two-results"))
    assert two.run(struct.pack("<ii", first, second)) == b"a" * first
    assert two.run(struct.pack("<ii", second, first)) == b"a" * second  # the same instance, job after job


@pytest.mark.parametrize("size", [11, 9000])
def test_a_result_over_the_limit_fails_the_job_below_and_above_the_driver_stage(engine: WasmEngine, size: int) -> None:
    two = engine.load("two", wat_module("two-results"), limits=Limits(result_size=10))
    assert two.run(struct.pack("<ii", 10, 3)) == b"a" * 10
    with pytest.raises(ExecutionError, match=f"result of {size} bytes exceeds the limit of 10"):
        two.run(struct.pack("<ii", size, 3))


def test_neither_result_nor_error_is_an_empty_success(engine: WasmEngine) -> None:
    assert engine.load("none", wat_module("no-result")).run(b"anything") == b""


def test_abort_becomes_run_err_minus_one(engine: WasmEngine) -> None:
    with pytest.raises(RunErr) as error:
        engine.load("abort", wat_module("abort")).run(b"")
    assert error.value.code == -1
    assert error.value.message == "runnable abort: boom; file: index.ts, line: 12, col: 5"


def test_init_export_is_called_for_legacy_modules(engine: WasmEngine) -> None:
    assert engine.load("init", wat_module("init-only")).run(b"") == b"hello"


def test_swift_twins_and_assemblyscript_shape(engine: WasmEngine) -> None:
    assert engine.load("swift", wat_module("swift-style")).run(b"Connor") == b"hello Connor"
    assert engine.load("as", wat_module("as-style")).run(b"from AS!") == b"hello, from AS!"


def test_ffi_roundtrip_through_the_shared_cache(engine: WasmEngine) -> None:
    assert engine.load("ffi", wat_module("ffi-roundtrip")).run(b"very important") == b"very important"


def test_request_mode_reads_body_and_returns_headers(engine: WasmEngine) -> None:
    echo = engine.load("echo", wat_module("echo"))
    request = {
        "method": "POST",
        "url": "/hello?x=1",
        "request_id": "abc",
        "body": "d29ybGQ=",
        "headers": {"X-A": "b"},
        "state": {},
    }
    outcome = echo.run(json.dumps(request).encode())
    assert outcome == CoordinatedResponse(b"hello world", {})


def test_timeout_stops_the_guest_and_the_next_job_runs(engine: WasmEngine) -> None:
    looping = engine.load("loop", wat_module("infinite-loop"), limits=Limits(timeout=0.3))
    started = time.monotonic()
    with pytest.raises(Exception, match="job timeout"):
        looping.run(b"")
    assert 0.25 < time.monotonic() - started < 2.0
    assert looping.pool.idle == 0  # the interrupted instance was discarded
    echo = engine.load("echo", wat_module("echo"))
    assert echo.run(b"again") == b"hello again"


def test_cancel_interrupts_a_running_guest(engine: WasmEngine) -> None:
    looping = engine.load("loop", wat_module("infinite-loop"), limits=Limits(timeout=30))
    control = RunControl()
    threading.Timer(0.2, lambda: setattr(control, "cancelled", True)).start()
    started = time.monotonic()
    with pytest.raises(JobCancelled):
        looping.run(b"", control=control)
    assert time.monotonic() - started < 2.0


def test_compiled_modules_are_cached_on_disk(tmp_path: object) -> None:
    from pathlib import Path

    cache_dir = Path(str(tmp_path)) / "cache"
    with WasmEngine(cache_dir=cache_dir) as first:
        first.load("echo", wat_module("echo"))
    artefacts = list(cache_dir.glob("*.cwasm"))
    assert len(artefacts) == 1
    with WasmEngine(cache_dir=cache_dir) as second:
        assert second.load("echo", wat_module("echo")).run(b"x") == b"hello x"
    artefacts[0].write_bytes(b"garbage")  # a corrupt cache entry is ignored and rewritten
    with WasmEngine(cache_dir=cache_dir) as third:
        assert third.load("echo", wat_module("echo")).run(b"y") == b"hello y"


def test_inputs_and_results_beyond_the_driver_stage_take_the_long_way(engine: WasmEngine) -> None:
    from reactr_wasm.wasm.driver import INPUT_CAPACITY, OUTPUT_CAPACITY

    echo = engine.load("echo", wat_module("echo"))  # answers 6 bytes more than it gets
    sizes = (INPUT_CAPACITY - 1, INPUT_CAPACITY, INPUT_CAPACITY + 1, 3 * INPUT_CAPACITY)
    for size in (*sizes, OUTPUT_CAPACITY - 7, OUTPUT_CAPACITY - 6, OUTPUT_CAPACITY - 5, 0):
        data = bytes(i % 251 for i in range(size))
        assert echo.run(data) == b"hello " + data


def test_a_fresh_instance_starts_from_the_module_whatever_the_last_job_wrote(engine: WasmEngine) -> None:
    # Fresh slots are reused by the pooling allocator, part of their memory and table kept
    # resident: each must come back as the module defines it (memory, data, table, size).
    reused = engine.load("scribble", wat_module("scribble"))
    fresh = engine.load("scribble-fresh", wat_module("scribble"), isolation="fresh")
    assert [reused.run(b"") for _ in range(3)] == [b"\x00\x00Af\x03", b"\x01\x01Zg\x04", b"\x02\x02Zg\x05"]
    assert [fresh.run(b"") for _ in range(200)] == [b"\x00\x00Af\x03"] * 200
