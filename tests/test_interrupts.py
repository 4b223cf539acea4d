"""Stops the host makes (timeout, cancel, inline budget) at every step of a job, in both isolation modes.

A stop is recorded when the epoch callback makes it; whichever guest call it
lands in (instantiate, ``_start``, allocate, run_e, deallocate, a nested
``run_job``), the job ends as JobTimeout or JobCancelled, or starts again on a
worker thread when it overran the inline budget. Never as a guest fault.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import wasmtime

from reactr_wasm import Config, JobCancelled, JobTimeout, Limits, ModuleError, Reactr, ReactrError, WasmEngine
from reactr_wasm.scheduler.worker import FAST_STREAK, INLINE_BUDGET_SECONDS
from reactr_wasm.wasm.context import RunControl
from reactr_wasm.wasm.driver import INPUT_CAPACITY
from reactr_wasm.wasm.runnable import InlineBudgetExceeded, WasmRunnable
from tests.conftest import wat_module
from tests.test_reactr_api import CHAIN_WAT
from tests.test_server_api import Start, make_config

SLOW_ALLOCATE = b"x" * 1000  # slow-steps: allocate spins for inputs of 1000 bytes or more
SLOW_ALLOCATE_STEPWISE = b"x" * (INPUT_CAPACITY + 1)  # too large for the driver's stage: written in place
SLOW_DEALLOCATE = b"D"  # slow-steps: deallocate spins when the input starts with "D"


def stop_by(kind: str) -> tuple[RunControl, type[BaseException]]:
    """A run control that stops a guest ~20 ms in, and the error the caller must then get."""
    now = time.monotonic()
    if kind == "timeout":
        return RunControl(now + 0.02), JobTimeout
    control = RunControl(now + 30)
    if kind == "cancel":
        threading.Timer(0.02, lambda: setattr(control, "cancelled", True)).start()
        return control, JobCancelled
    control.budget = now + 0.005  # what an inline run gets, only shorter
    return control, InlineBudgetExceeded


def stopped_quickly(run: Callable[[], object], error: type[BaseException]) -> None:
    started = time.monotonic()
    with pytest.raises(error):
        run()
    assert time.monotonic() - started < 2.0  # interrupted: the spin alone takes ~0.2 s, ~1 s on a busy machine


@pytest.mark.parametrize("kind", ["timeout", "cancel", "budget"])
def test_a_stop_in_start_of_a_fresh_instance_is_the_jobs_stop(engine: WasmEngine, kind: str) -> None:
    runnable = engine.load("slow-start", wat_module("slow-start"), isolation="fresh")
    control, error = stop_by(kind)
    stopped_quickly(lambda: runnable.run(b"joe", control=control), error)
    assert runnable.run(b"joe") == b"hello joe"  # and the next job runs


@pytest.mark.parametrize("isolation", ["fresh", "reuse"])
@pytest.mark.parametrize("kind", ["timeout", "cancel", "budget"])
@pytest.mark.parametrize(
    "data",
    [SLOW_ALLOCATE, SLOW_ALLOCATE_STEPWISE, SLOW_DEALLOCATE],
    ids=["allocate", "allocate-stepwise", "deallocate"],
)
def test_a_stop_around_run_e_is_the_jobs_stop(engine: WasmEngine, isolation: str, kind: str, data: bytes) -> None:
    runnable = engine.load("slow-steps", wat_module("slow-steps"), isolation=isolation)  # type: ignore[arg-type]
    control, error = stop_by(kind)
    stopped_quickly(lambda: runnable.run(data, control=control), error)
    assert runnable.pool.idle == 0  # a reused instance that was stopped is closed, not handed out again
    assert runnable.run(b"ok") == b"done"


@pytest.mark.parametrize("isolation", ["fresh", "reuse"])
def test_a_start_slower_than_the_timeout_refuses_the_module_at_load(engine: WasmEngine, isolation: str) -> None:
    too_slow = r"runnable 'slow-start': did not start within 0.02 s \(the runnable's timeout\)"
    with pytest.raises(ModuleError, match=too_slow):
        engine.load("slow-start", wat_module("slow-start"), limits=Limits(timeout=0.02), isolation=isolation)  # type: ignore[arg-type]


def slow_fresh(reactr: Reactr) -> WasmRunnable:
    """slow-steps with isolation="fresh", registered and run until it earns the inline fast path."""
    runnable = reactr.engine.load("slow", wat_module("slow-steps"), isolation="fresh")
    reactr.register("slow", runnable)
    for _ in range(10 * FAST_STREAK):  # a busy machine may break a streak: keep going until it holds
        result = reactr.do("slow", b"warm")
        inline = result.done()  # finished before do() returned: ran on this thread
        assert result.then(timeout=5) == b"done"
        if inline:
            return runnable
    pytest.fail("slow-steps never earned the inline fast path")


def test_over_budget_in_allocate_of_a_fresh_instance_restarts_the_job(reactr: Reactr) -> None:
    slow_fresh(reactr)
    started = time.monotonic()
    result = reactr.do("slow", SLOW_ALLOCATE)
    held = time.monotonic() - started
    assert result.then(timeout=10) == b"done"  # ran again, from scratch, on a worker thread
    assert held < INLINE_BUDGET_SECONDS + 0.15  # the caller was held for the budget, not the whole spin


def test_over_budget_in_allocate_of_a_fresh_instance_through_do_now(reactr: Reactr) -> None:
    slow_fresh(reactr)
    assert reactr.do_now("slow", b"fast") == (True, b"done")
    assert reactr.do_now("slow", SLOW_ALLOCATE) == (False, None)  # stopped: the caller queues it instead
    assert reactr.do("slow", SLOW_ALLOCATE).then(timeout=10) == b"done"


def test_a_python_runnable_waiting_on_a_fresh_job_that_overran_gets_its_value(reactr: Reactr) -> None:
    slow_fresh(reactr)
    reactr.register("ask", lambda job, ctx: ctx.reactr.do("slow", job.data).then(timeout=10))
    for _ in range(10 * FAST_STREAK):  # the Python runnable earns the inline path too
        if reactr.do("ask", b"warm").done():
            break
    assert reactr.do("ask", SLOW_ALLOCATE).then(timeout=10) == b"done"


def test_the_budget_signal_is_not_an_error_callers_can_catch() -> None:
    assert not issubclass(InlineBudgetExceeded, ReactrError)  # a handler of job errors never sees it as one


@pytest.fixture
def server_config() -> Config:
    return make_config()


async def test_over_budget_in_allocate_of_a_fresh_instance_over_http(reactr: Reactr, start: Start) -> None:
    slow_fresh(reactr)
    client = await start()
    for body in (b"fast", SLOW_ALLOCATE):  # the second one restarts on a worker thread
        async with client.post("/do/slow?then=true", data=body) as response:
            assert (response.status, await response.read()) == (200, b"done")


def test_a_nested_fresh_start_stops_with_the_chain(reactr: Reactr) -> None:
    reactr.register("chain", reactr.engine.load("chain", wasmtime.wat2wasm(CHAIN_WAT)))  # one worker thread
    reactr.register("slow-start", reactr.engine.load("slow-start", wat_module("slow-start"), isolation="fresh"))
    reactr.register("upper", lambda job, ctx: job.payload().upper())
    started = time.monotonic()
    assert reactr.do("chain", b"slow-start:joe").then(timeout=10) == b"hello joe"
    whole = time.monotonic() - started  # a chain job waiting for one nested fresh _start
    result = reactr.do("chain", b"slow-start:joe")
    time.sleep(0.02)
    cancelled_at = time.monotonic()
    result.cancel()
    with pytest.raises(JobCancelled):
        result.then(timeout=10)
    # chain runs on its one worker thread (run_job has effects: never inline), so
    # the next job starts only once the cancelled one has let go of the thread.
    assert reactr.do("chain", b"upper:next").then(timeout=10) == b"NEXT"
    assert time.monotonic() - cancelled_at < whole / 2  # the nested _start was stopped, not run to its end
