"""The scheduler core: results, pools, cancellation, queue bounds, replacement."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from reactr_wasm import (
    Job,
    JobCancelled,
    JobStatus,
    JobTimeout,
    Limits,
    QueueFull,
    Reactr,
    RunErr,
    RunnableNotFound,
)
from reactr_wasm.scheduler.job import is_result_id, new_result_id
from reactr_wasm.scheduler.worker import FAST_STREAK
from tests.conftest import wat_module


def looping(reactr: Reactr, timeout: float) -> object:
    return reactr.engine.load("loop", wat_module("infinite-loop"), limits=Limits(timeout=timeout))


def test_result_ids_are_24_random_symbols() -> None:
    ids = {new_result_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(is_result_id(i) for i in ids)
    assert not is_result_id("short") and not is_result_id("A" * 24)


def test_do_then_and_await_give_the_same_value(reactr: Reactr) -> None:
    reactr.register("echo", reactr.engine.load("echo", wat_module("echo")))
    result = reactr.do("echo", b"joe")
    assert result.then(timeout=5) == b"hello joe"
    assert result.then(timeout=5) == b"hello joe"  # repeatable, unlike Reactr's Then
    assert asyncio.run(_await(result)) == b"hello joe"
    assert result.status is JobStatus.SUCCEEDED
    assert result.started is not None and result.finished is not None


async def _await(result: object) -> object:
    return await result  # type: ignore[misc]


def test_unknown_runnable_is_refused_at_do(reactr: Reactr) -> None:
    with pytest.raises(RunnableNotFound, match='failed to getWorker for jobType "nope"'):
        reactr.do("nope", b"")


def test_python_runnables_and_their_errors(reactr: Reactr) -> None:
    def teapot(job: Job, ctx: object) -> object:
        raise RunErr(418, "teapot")

    hello = reactr.register("hello", lambda job, ctx: {"hello": job.data})
    reactr.register("teapot", teapot)
    assert hello("world").then(timeout=5) == {"hello": "world"}
    failed = reactr.do("teapot")
    with pytest.raises(RunErr, match="teapot"):
        failed.then(timeout=5)
    assert failed.status is JobStatus.FAILED


@pytest.mark.parametrize("pool_size", [2, 3])
def test_pool_size_runs_jobs_at_the_same_time(reactr: Reactr, pool_size: int) -> None:
    reactr.register("loop", looping(reactr, 0.5), pool_size=pool_size)  # type: ignore[arg-type]
    started = time.monotonic()
    results = [reactr.do("loop", b"") for _ in range(pool_size)]
    for result in results:
        with pytest.raises(JobTimeout):
            result.then(timeout=5)
    assert time.monotonic() - started < 0.95  # one after the other would take >= 1.0 s


def test_cancel_queued_and_running_jobs(reactr: Reactr) -> None:
    reactr.register("loop", looping(reactr, 30))  # type: ignore[arg-type]
    running = reactr.do("loop", b"")
    queued = reactr.do("loop", b"")
    deadline = time.monotonic() + 5
    while running.status is not JobStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    assert queued.cancel()
    assert queued.status is JobStatus.CANCELLED
    started = time.monotonic()
    assert running.cancel()
    with pytest.raises(JobCancelled):
        running.then(timeout=5)
    assert time.monotonic() - started < 1.0
    assert queued.started is None  # it never ran
    assert not running.cancel()  # already finished


def test_queue_bound(reactr: Reactr) -> None:
    reactr.register("loop", looping(reactr, 0.3), queue_size=2)  # type: ignore[arg-type]
    accepted = []
    with pytest.raises(QueueFull, match="queue is full"):
        for _ in range(10):
            accepted.append(reactr.do("loop", b""))
    assert 2 <= len(accepted) <= 3
    for result in accepted:
        result.cancel()


def test_a_wasm_path_takes_its_timeout_from_limits_or_timeout(reactr: Reactr, tmp_path: Path) -> None:
    path = tmp_path / "loop.wasm"
    path.write_bytes(wat_module("infinite-loop"))
    reactr.register("by-limits", path, limits=Limits(timeout=0.2))
    reactr.register("by-timeout", path, limits=Limits(timeout=60), timeout=0.2)  # timeout= replaces limits.timeout
    for name in ("by-limits", "by-timeout"):
        started = time.monotonic()
        with pytest.raises(JobTimeout):
            reactr.do(name, b"").then(timeout=10)
        assert time.monotonic() - started < 5


def test_limits_for_a_runnable_that_is_not_a_path_are_refused(reactr: Reactr) -> None:
    """A loaded module keeps the limits it was loaded with; Python code takes timeout= only."""
    loaded = reactr.engine.load("echo", wat_module("echo"))
    with pytest.raises(ValueError, match="keeps the limits it was loaded with"):
        reactr.register("echo", loaded, limits=Limits(timeout=1))
    with pytest.raises(ValueError, match="keeps the limits it was loaded with"):
        reactr.register("echo", loaded, timeout=1)
    with pytest.raises(ValueError, match="a Python runnable takes timeout="):
        reactr.register("py", lambda job, ctx: None, limits=Limits(timeout=1))
    assert not reactr.has("echo") and not reactr.has("py")
    loaded.close()


def test_replacing_a_runnable_lets_running_jobs_finish_on_the_old_version(reactr: Reactr) -> None:
    gate = threading.Event()

    def old(job: Job, ctx: object) -> str:
        gate.wait(5)
        return "old"

    reactr.register("thing", old)
    in_flight = reactr.do("thing")
    time.sleep(0.05)
    reactr.register("thing", lambda job, ctx: "new")
    assert reactr.do("thing").then(timeout=5) == "new"
    gate.set()
    assert in_flight.then(timeout=5) == "old"


def test_fast_wasm_jobs_run_on_the_callers_thread(reactr: Reactr) -> None:
    reactr.register("echo", reactr.engine.load("echo", wat_module("echo")))
    for _ in range(FAST_STREAK + 1):
        reactr.do("echo", b"x").then(timeout=5)
    assert reactr.do("echo", b"x").done()  # finished before do() returned


def test_awaiting_many_results_from_worker_threads() -> None:
    async def main(reactr: Reactr) -> list[object]:
        return await asyncio.gather(*(reactr.do("py", i) for i in range(500)))

    with Reactr() as reactr:
        reactr.register("py", lambda job, ctx: job.data * 2, pool_size=3)
        assert asyncio.run(main(reactr)) == [i * 2 for i in range(500)]


def test_a_fast_runnable_turning_slow_holds_the_caller_only_for_the_inline_budget(reactr: Reactr) -> None:
    from reactr_wasm.scheduler.worker import INLINE_BUDGET_SECONDS

    reactr.register("slow", reactr.engine.load("slow", wat_module("slow"), limits=Limits(timeout=10)))
    for _ in range(FAST_STREAK + 1):
        reactr.do("slow", b"1000").then(timeout=5)
    assert reactr.do("slow", b"1000").done()  # now inline
    started = time.monotonic()
    result = reactr.do("slow", b"1000000000")  # ~0.7 s of guest work
    held = time.monotonic() - started
    assert held < INLINE_BUDGET_SECONDS + 0.2  # stopped at the budget, not after the whole job
    assert not result.done()
    assert result.then(timeout=10) == b"done"  # ran again, from scratch, on a worker thread
    assert not reactr.do("slow", b"1000").done()  # back on workers until it has shown a longer streak


def test_one_slow_inline_run_is_forgiven_two_in_a_row_are_not(reactr: Reactr, monkeypatch: pytest.MonkeyPatch) -> None:
    from reactr_wasm.scheduler import worker

    monkeypatch.setattr(worker, "INLINE_MAX_SECONDS", 0.001)  # "slow": ~3 ms, well under the inline budget
    reactr.register("slow", reactr.engine.load("slow", wat_module("slow"), limits=Limits(timeout=10)))
    for _ in range(FAST_STREAK + 1):
        reactr.do("slow", b"10").then(timeout=5)
    assert reactr.worker("slow").runs_inline
    assert reactr.do("slow", b"5000000").done()  # slow, on the caller's thread
    assert reactr.worker("slow").runs_inline  # one slow run alone may be a preempted thread
    assert reactr.do("slow", b"10").done()  # a fast one: the count of slow runs starts again
    assert reactr.do("slow", b"5000000").done()
    assert reactr.worker("slow").runs_inline
    assert reactr.do("slow", b"5000000").done()  # the second slow run in a row
    assert not reactr.worker("slow").runs_inline
    assert not reactr.do("slow", b"10").done()  # on workers until it shows a fast streak again


def test_runnables_with_side_effects_are_never_restarted(engine: object) -> None:
    from reactr_wasm import WasmEngine

    assert isinstance(engine, WasmEngine)
    assert engine.load("slow", wat_module("slow")).info.restartable
    assert not engine.load("ffi", wat_module("ffi-roundtrip")).info.restartable  # calls cache_set


def test_prewarm_starts_threads_and_instances_at_registration(reactr: Reactr) -> None:
    echo = reactr.engine.load("echo", wat_module("echo"))
    reactr.register("echo", echo, pool_size=3, prewarm=True)
    assert reactr.worker("echo").threads == 3  # before any job
    assert echo.pool.idle == 3
    reactr.register("lazy", lambda job, ctx: None, pool_size=3)
    assert reactr.worker("lazy").threads == 0
