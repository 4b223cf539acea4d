"""Hostile and broken modules: each fails only itself, with a clear reason."""

from __future__ import annotations

import time

import pytest
import wasmtime

from reactr_wasm import ExecutionError, JobTimeout, Limits, ModuleError, Reactr, WasmEngine
from tests.conftest import wat_module

MIB = 1024 * 1024


def test_infinite_loop_times_out_and_the_worker_keeps_serving(reactr: Reactr) -> None:
    reactr.register("loop", reactr.engine.load("loop", wat_module("infinite-loop"), limits=Limits(timeout=0.3)))
    reactr.register("echo", reactr.engine.load("echo", wat_module("echo")))
    started = time.monotonic()
    with pytest.raises(JobTimeout):
        reactr.do("loop", b"").then(timeout=5)
    assert time.monotonic() - started < 2
    assert reactr.do("echo", b"still here").then(timeout=5) == b"hello still here"
    with pytest.raises(JobTimeout):  # the loop's worker takes the next job too
        reactr.do("loop", b"").then(timeout=5)


def test_memory_bomb_is_capped(engine: WasmEngine) -> None:
    limits = Limits(memory=4 * MIB)
    assert engine.load("bomb", wat_module("memory-bomb"), limits=limits).run(b"") == b"grew"
    with pytest.raises(ExecutionError, match="unreachable"):
        engine.load("bomb-trap", wat_module("memory-bomb-trap"), limits=limits).run(b"")


def test_trap_fails_the_job_and_the_instance_is_not_reused(engine: WasmEngine) -> None:
    trap = engine.load("trap", wat_module("trap"))
    with pytest.raises(ExecutionError, match=r"wasm execution error: failed to wasmFunc: .*unreachable"):
        trap.run(b"")
    assert trap.pool.idle == 0
    with pytest.raises(ExecutionError, match="unreachable"):
        engine.load("late", wat_module("trap-after-result")).run(b"")


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        ("start-trap", "trap in _start"),
        ("missing-run-e", "missing export 'run_e'"),
        ("missing-memory", "missing export 'memory'"),
        ("missing-allocate", "missing export 'allocate'"),
        ("unknown-import", "imports unknown function 'env.not_a_reactr_function'"),
        ("legacy-fetch", "imports 'env.fetch_url' with another signature than the ABI's (6 i32 -> 1 i32)"),
    ],
)
def test_broken_modules_are_refused_with_the_reason(engine: WasmEngine, module: str, reason: str) -> None:
    with pytest.raises(ModuleError) as error:
        engine.load(module, wat_module(module), source=f"tests/modules/{module}.wasm")
    assert reason in str(error.value)
    assert f"tests/modules/{module}.wasm" in str(error.value)


@pytest.mark.parametrize("content", [b"", b"not wasm at all", b"\0asm\x01\0\0\0\xff\xff garbage"])
def test_corrupt_files_are_refused(engine: WasmEngine, content: bytes) -> None:
    with pytest.raises(ModuleError, match=r"corrupt\.wasm"):
        engine.load("corrupt", content, source="corrupt.wasm")


VOID_FUNCTIONS = ["return_result", "return_error", "return_abort", "log_msg", "resp_set_header"]
DATA_FUNCTIONS = [
    "add_ffi_var",
    "request_get_field",
    "request_set_field",
    "cache_set",
    "cache_get",
    "fetch_url",
    "graphql_query",
    "get_static_file",
    "db_exec",
]


@pytest.mark.parametrize("function", VOID_FUNCTIONS + DATA_FUNCTIONS)
def test_out_of_range_pointers_fail_only_that_job(engine: WasmEngine, function: str) -> None:
    bad = engine.load("bad", wat_module("bad-pointers"))
    with pytest.raises(ExecutionError) as error:
        bad.run(function.encode())
    assert f"{function}: pointer" in str(error.value)
    assert "outside guest memory" in str(error.value)
    assert bad.pool.idle == 0  # the faulted instance is gone
    assert engine.load("echo", wat_module("echo")).run(b"ok") == b"hello ok"


@pytest.mark.parametrize(
    ("selector", "reason"),
    [
        ("neg_len", "result of 4294967295 bytes exceeds the limit"),  # -1 as a length is 4 GiB
        ("huge_ptr", r"pointer 2147483632 \+ length 100 is outside guest memory"),
        ("ptr_at_end", "outside guest memory"),
    ],
)
def test_pointer_edge_cases(engine: WasmEngine, selector: str, reason: str) -> None:
    with pytest.raises(ExecutionError, match=reason):
        engine.load("bad", wat_module("bad-pointers")).run(selector.encode())


def test_ffi_calls_without_a_pending_result_return_minus_one(engine: WasmEngine) -> None:
    bad = engine.load("bad", wat_module("bad-pointers"))
    # with nothing pending, get_ffi_result returns -1 before it would touch memory
    assert bad.run(b"get_ffi_result") == b"-1"


ECHO_WITH = r"""
(module
  (import "env" "return_result" (func $ret (param i32 i32 i32)))
  (memory (export "memory") 8)
  (func (export "allocate") (param $n i32) (result i32) {allocate})
  (func (export "deallocate") (param i32 i32) {deallocate})
  (func (export "run_e") (param $p i32) (param $n i32) (param $id i32)
    (call $ret (local.get $p) (local.get $n) (local.get $id))))
"""


@pytest.mark.parametrize("size", [10, 300_000])  # through the job driver, and the step-by-step path
def test_allocate_returning_a_bad_pointer_fails_the_job(engine: WasmEngine, size: int) -> None:
    wasm = wasmtime.wat2wasm(ECHO_WITH.format(allocate="(i32.const 0x7ffffff0)", deallocate=""))
    bad = engine.load("bad-allocate", wasm)
    with pytest.raises(ExecutionError, match=r"failed to instance\.writeMemory: failed to Call allocate"):
        bad.run(b"x" * size)
    assert bad.pool.idle == 0


@pytest.mark.parametrize("size", [10, 300_000])
def test_a_trapping_deallocate_keeps_the_result_but_not_the_instance(engine: WasmEngine, size: int) -> None:
    wasm = wasmtime.wat2wasm(ECHO_WITH.format(allocate="(i32.const 1024)", deallocate="unreachable"))
    leaky = engine.load("bad-deallocate", wasm)
    assert leaky.run(b"y" * size) == b"y" * size
    assert leaky.pool.idle == 0
