"""Reactr semantics for Python programs: chaining, groups, helpers, timeouts, autoscale, schedules."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import wasmtime

from reactr_wasm import Ctx, Job, JobStatus, JobTimeout, Reactr, ReactrError, RunErr, WasmEngine
from reactr_wasm.scheduler.group import Group
from reactr_wasm.scheduler.schedule import after, every

# A guest that schedules another job through env.run_job: the input is
# "NAME:PAYLOAD"; it returns the nested job's output, or "error: <text>".
CHAIN_WAT = r"""
(module
  (import "env" "run_job" (func $run_job (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "get_ffi_result" (func $get (param i32 i32) (result i32)))
  (import "env" "return_result" (func $ret (param i32 i32 i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 4096))
  (data (i32.const 16) "error: ")
  (func $alloc (export "allocate") (param $n i32) (result i32)
    (local $p i32) (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $n))) (local.get $p))
  (func (export "deallocate") (param i32 i32))
  (func (export "run_e") (param $p i32) (param $n i32) (param $id i32)
    (local $colon i32) (local $size i32) (local $out i32)
    ;; find ':' in the input
    (local.set $colon (local.get $p))
    (block $found (loop $scan
      (br_if $found (i32.eq (i32.load8_u (local.get $colon)) (i32.const 58)))
      (local.set $colon (i32.add (local.get $colon) (i32.const 1)))
      (br $scan)))
    (local.set $size (call $run_job
      (local.get $p) (i32.sub (local.get $colon) (local.get $p))
      (i32.add (local.get $colon) (i32.const 1))
      (i32.sub (i32.add (local.get $p) (local.get $n)) (i32.add (local.get $colon) (i32.const 1)))
      (local.get $id)))
    (if (i32.ge_s (local.get $size) (i32.const 0))
      (then
        (local.set $out (call $alloc (local.get $size)))
        (drop (call $get (local.get $out) (local.get $id)))
        (call $ret (local.get $out) (local.get $size) (local.get $id)))
      (else
        ;; error text of -size bytes, placed right after "error: " at 16..23
        (local.set $size (i32.sub (i32.const 0) (local.get $size)))
        (local.set $out (call $alloc (i32.add (local.get $size) (i32.const 7))))
        (memory.copy (local.get $out) (i32.const 16) (i32.const 7))
        (drop (call $get (i32.add (local.get $out) (i32.const 7)) (local.get $id)))
        (call $ret (local.get $out) (i32.add (local.get $size) (i32.const 7)) (local.get $id)))))
)
"""


def test_chaining_first_second_last(reactr: Reactr) -> None:
    reactr.register("first", lambda job, ctx: ctx.do(Job("second", [*job.data, "first"])))
    reactr.register("second", lambda job, ctx: ctx.do(Job("last", [*job.data, "second"])))
    reactr.register("last", lambda job, ctx: [*job.data, "last"])
    assert reactr.do("first", []).then(timeout=5) == ["first", "second", "last"]


def test_a_runnable_returning_a_group_resolves_to_its_first_error(reactr: Reactr) -> None:
    def fail(job: Job, ctx: Ctx) -> Any:
        raise RunErr(400, "bad item")

    reactr.register("ok", lambda job, ctx: job.data)
    reactr.register("fail", fail)

    def fan_out(job: Job, ctx: Ctx) -> Group:
        group = Group()
        for name in job.data:
            group.add(ctx.do(Job(name, 1)))
        return group

    reactr.register("fan", fan_out)
    assert reactr.do("fan", ["ok", "ok"]).then(timeout=5) is None
    with pytest.raises(RunErr, match="bad item"):
        reactr.do("fan", ["ok", "fail", "ok"]).then(timeout=5)


def test_group_of_10k_results(reactr: Reactr) -> None:
    reactr.register("double", lambda job, ctx: job.data * 2, pool_size=2)
    group = Group()
    results = [reactr.do("double", i) for i in range(10_000)]
    for result in results:
        group.add(result)
    assert group.wait(timeout=60) is None
    assert sum(r.then() for r in results) == 2 * sum(range(10_000))
    assert asyncio.run(_await_group(group)) is None


async def _await_group(group: Group) -> BaseException | None:
    first: BaseException | None = await group.wait()  # the spelling, inside a loop
    assert first is await group
    return first


def test_result_helpers(reactr: Reactr) -> None:
    reactr.register("text", lambda job, ctx: b'{"a": [1, 2]}')
    assert reactr.do("text").then_str(timeout=5) == '{"a": [1, 2]}'
    assert reactr.do("text").then_json(timeout=5) == {"a": [1, 2]}
    delivered: list[tuple[Any, Any, str]] = []
    done = threading.Event()

    def callback(value: Any, error: BaseException | None) -> None:
        delivered.append((value, error, threading.current_thread().name))
        done.set()

    reactr.do("text").then_do(callback)
    assert done.wait(5)
    assert delivered[0][:2] == (b'{"a": [1, 2]}', None)
    assert delivered[0][2] != threading.current_thread().name


def test_discard_drops_the_value(reactr: Reactr) -> None:
    gate = threading.Event()
    reactr.register("big", lambda job, ctx: gate.wait(5) and b"x" * 10_000_000)
    result = reactr.do("big")
    result.discard()
    gate.set()
    assert result.then(timeout=5) is None
    assert result.status is JobStatus.SUCCEEDED


def test_a_finished_result_keeps_its_output_but_not_its_input(reactr: Reactr) -> None:
    from tests.conftest import wat_module

    for name in ("echo", "result-and-error"):
        reactr.register(name, reactr.engine.load(name, wat_module(name)))
    reactr.register("py", lambda job, ctx: len(job.data))
    data = b"x" * 1_000_000
    echoed, failed, counted = (reactr.do(Job(name, data)) for name in ("echo", "result-and-error", "py"))
    assert echoed.then(timeout=5) == b"hello " + data
    with pytest.raises(RunErr):
        failed.then(timeout=5)
    assert counted.then(timeout=5) == len(data)
    assert [result.job.data for result in (echoed, failed, counted)] == [None] * 3


def test_cancel_by_id_finds_jobs_submitted_with_their_id(reactr: Reactr) -> None:
    gate = threading.Event()
    reactr.register("wait", lambda job, ctx: gate.wait(5) and b"ran", pool_size=1)
    running = reactr.do(Job("wait", None, "r" * 24))
    queued = reactr.do(Job("wait", None, "q" * 24))
    anonymous = reactr.do("wait")

    assert reactr.cancel("q" * 24)  # a queued job never runs
    assert queued.status is JobStatus.CANCELLED
    assert not reactr.cancel(anonymous.id)  # its id was made after do(): not findable by it
    assert not reactr.cancel("x" * 24)
    gate.set()
    assert running.then(timeout=5) == b"ran" and anonymous.then(timeout=5) == b"ran"
    assert not reactr.cancel("r" * 24)  # finished: nothing to cancel


def test_python_timeout_abandons_the_run(reactr: Reactr) -> None:
    release = threading.Event()
    reactr.register("stuck", lambda job, ctx: release.wait(10) and "late", timeout=0.3, pool_size=2)
    started = time.monotonic()
    with pytest.raises(JobTimeout):
        reactr.do("stuck").then(timeout=5)
    assert 0.25 < time.monotonic() - started < 2
    release.set()


class Flaky:
    """A runnable object whose worker start fails a given number of times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.events: list[str] = []

    def on_change(self, event: str) -> None:
        self.events.append(event)
        if event == "start" and self.failures > 0:
            self.failures -= 1
            raise RuntimeError("database not ready")

    def run(self, job: Job, ctx: Ctx) -> str:
        return "ran"


def test_on_change_failures_are_retried(reactr: Reactr) -> None:
    flaky = Flaky(failures=2)
    reactr.register("flaky", flaky, retry_seconds=0.05, max_retries=3)
    assert reactr.do("flaky").then(timeout=5) == "ran"
    assert flaky.events[:3] == ["start", "start", "start"]


def test_on_change_failure_reaches_the_first_job(reactr: Reactr) -> None:
    reactr.register("broken", Flaky(failures=100), retry_seconds=0.01, max_retries=2)
    with pytest.raises(ReactrError, match="failed to start: database not ready"):
        reactr.do("broken").then(timeout=5)


def test_autoscale_grows_under_a_burst_and_shrinks_back(reactr: Reactr) -> None:
    reactr.register("work", lambda job, ctx: time.sleep(0.002), autoscale=8, timeout=5)
    worker = reactr.worker("work")
    results = [reactr.do("work") for _ in range(10_000)]
    peak, deadline = 0, time.monotonic() + 30
    while time.monotonic() < deadline and not results[-1].done():
        peak = max(peak, worker.threads)
        time.sleep(0.05)
    assert peak >= 4
    for result in results:
        result.then(timeout=30)
    deadline = time.monotonic() + 10
    while worker.threads > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker.threads == 1


def test_every_and_after_fire_the_right_number_of_times() -> None:
    fired: list[str] = []
    with Reactr(schedule_interval=0.05) as reactr:
        reactr.register("tick", lambda job, ctx: fired.append(job.data))
        reactr.schedule(every(0.2, lambda: Job("tick", "every")))
        reactr.schedule(after(0.3, lambda: Job("tick", "after")))
        time.sleep(1.05)
    assert fired.count("after") == 1
    assert 5 <= fired.count("every") <= 6  # t = 0, 0.2, 0.4, 0.6, 0.8, (1.0)


def test_wasm_guest_chains_a_job_through_run_job(reactr: Reactr) -> None:
    chain = reactr.engine.load("chain", wasmtime.wat2wasm(CHAIN_WAT))
    reactr.register("chain", chain)
    reactr.register("upper", lambda job, ctx: job.payload().upper())

    def teapot(job: Job, ctx: Ctx) -> Any:
        raise RunErr(418, "teapot")

    reactr.register("teapot", teapot)
    assert reactr.do("chain", b"upper:hello").then(timeout=5) == b"HELLO"
    assert reactr.do("chain", b"teapot:x").then(timeout=5) == b'error: {"code":418,"message":"teapot"}'
    assert reactr.do("chain", b"nobody:x").then(timeout=5) == b'error: failed to getWorker for jobType "nobody"'
    # chain -> chain -> ... runs into the depth limit instead of recursing forever
    nested = reactr.do("chain", b"chain:" * 20 + b"upper:deep").then(timeout=5)
    assert nested.endswith(b"job chain depth limit (8) reached")


def test_reactrs_sharing_an_engine_each_run_their_own_nested_jobs() -> None:
    chain = wasmtime.wat2wasm(CHAIN_WAT)
    with WasmEngine() as engine, Reactr(engine=engine) as first, Reactr(engine=engine) as second:
        for reactr, answer in ((first, b"from the first"), (second, b"from the second")):
            reactr.register("chain", engine.load("chain", chain))
            reactr.register("inner", lambda job, ctx, answer=answer: answer)
        second.register("only-second", lambda job, ctx: b"second only")
        assert first.do("chain", b"inner:x").then(timeout=5) == b"from the first"
        assert second.do("chain", b"inner:x").then(timeout=5) == b"from the second"
        assert first.do("chain", b"only-second:x").then(timeout=5) == (
            b'error: failed to getWorker for jobType "only-second"'
        )
        assert first.do_now("chain", b"inner:x") in ((True, b"from the first"), (False, None))


def test_a_runnable_run_without_a_scheduler_refuses_run_job() -> None:
    with WasmEngine() as engine:
        chain = engine.load("chain", wasmtime.wat2wasm(CHAIN_WAT))
        assert chain.run(b"inner:x") == b"error: job chaining is not available in this host"


def test_run_job_gets_values_encoded_as_http_answers_and_follows_groups(reactr: Reactr) -> None:
    reactr.register("chain", reactr.engine.load("chain", wasmtime.wat2wasm(CHAIN_WAT)))
    reactr.register("upper", lambda job, ctx: job.payload().upper())
    reactr.register("json", lambda job, ctx: {"name": "Zoë"})

    def fails(job: Job, ctx: Ctx) -> Any:
        raise RunErr(409, "conflict")

    reactr.register("fails", fails)

    def fan_out(job: Job, ctx: Ctx) -> Group:
        group = Group()
        group.add(ctx.do(Job("upper", b"a")))
        group.add(ctx.do(Job(job.payload().decode(), b"b")))
        return group

    reactr.register("fan-out", fan_out)
    assert reactr.do("chain", b"json:x").then(timeout=5) == '{"name":"Zoë"}'.encode()  # not ASCII-escaped
    assert reactr.do("chain", b"fan-out:upper").then(timeout=5) == b"", "a Group settles to no value"
    assert reactr.do("chain", b"fan-out:fails").then(timeout=5) == b'error: {"code":409,"message":"conflict"}'


def test_close_gives_up_on_a_python_runnable_that_never_returns() -> None:
    release = threading.Event()
    reactr = Reactr()
    reactr.register("stuck", lambda job, ctx: release.wait(30))
    reactr.do("stuck")
    time.sleep(0.1)
    started = time.monotonic()
    reactr.close(timeout=0.3)
    assert time.monotonic() - started < 2
    release.set()  # let the abandoned thread end
