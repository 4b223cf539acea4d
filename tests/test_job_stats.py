"""The scheduler's per-runnable counts (``scheduler/stats.py``) on a real Reactr: the ways a job can end.

The metrics route and the dashboard only read these; ``test_metrics.py`` checks
what they show. Here: jobs that end without a plain run - at a deadline the run
never meets, through a chain, cancelled in the queue - and the job events.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from reactr_wasm import Job, JobTimeout, Limits, Reactr
from reactr_wasm.scheduler.job import new_result_id
from reactr_wasm.scheduler.stats import (
    CANCELLED,
    FAILED,
    OUTCOMES,
    SUCCEEDED,
    Histogram,
    JobEvent,
    JobStats,
    outcome_of,
)
from reactr_wasm.scheduler.targets import Ctx
from tests.conftest import wat_module


def counts(stats: JobStats) -> dict[str, int]:
    return {name: count for name, count in zip(OUTCOMES, stats.outcomes, strict=True) if count}


def test_a_histogram_counts_each_value_in_the_first_bucket_it_fits() -> None:
    histogram = Histogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(seconds)
    assert histogram.counts == [2, 2, 1]  # a value on a bound is in that bound's bucket ("le")
    assert histogram.cumulative() == [(0.1, 2), (1.0, 4), (float("inf"), 5)]
    assert (histogram.count, histogram.sum) == (5, pytest.approx(8.65))


def test_outcome_of_each_error() -> None:
    from reactr_wasm import ExecutionError, JobCancelled, RunErr

    assert [OUTCOMES[outcome_of(error)] for error in (None, RunErr(400, "no"), JobTimeout(), JobCancelled(),
                                                       ExecutionError("trap"), ValueError("python"))] == [
        "succeeded", "run_err", "timed_out", "cancelled", "failed", "failed"]  # fmt: skip


def test_a_python_job_past_its_deadline_counts_at_the_deadline_though_its_run_goes_on(reactr: Reactr) -> None:
    release = threading.Event()

    def stuck(job: Job, ctx: Ctx) -> bytes:
        release.wait(10)
        return b"too late"

    reactr.register("stuck", stuck, timeout=0.1)
    result = reactr.do("stuck")
    with pytest.raises(JobTimeout):
        result.then(5)
    stats = reactr.job_stats["stuck"]
    assert counts(stats) == {"timed_out": 1}  # counted while the run still holds its thread
    assert stats.runs == [0, 0]
    release.set()
    for _ in range(500):
        if stats.runs[0]:
            break
        time.sleep(0.01)
    assert (counts(stats), stats.runs) == ({"timed_out": 1}, [1, 0])  # the run is counted, the job not twice


def test_a_chained_job_counts_when_the_chain_settles(reactr: Reactr) -> None:
    gate = threading.Event()

    def waits(job: Job, ctx: Ctx) -> bytes:
        gate.wait(10)
        raise ValueError("inner failed")

    def chains(job: Job, ctx: Ctx) -> Any:
        return ctx.do(Job("waits"))  # the outer job resolves with the inner one's outcome

    reactr.register("waits", waits, pool_size=1)
    reactr.register("chains", chains)
    result = reactr.do("chains")
    for _ in range(500):  # the outer run has returned: its run is counted, its job not yet
        if reactr.job_stats["chains"].runs[0]:
            break
        time.sleep(0.01)
    assert counts(reactr.job_stats["chains"]) == {}
    gate.set()
    with pytest.raises(ValueError, match="inner failed"):
        result.then(5)
    assert counts(reactr.job_stats["chains"]) == {"failed": 1}
    assert counts(reactr.job_stats["waits"]) == {"failed": 1}


def test_a_job_cancelled_in_the_queue_counts_as_cancelled_and_never_ran(reactr: Reactr) -> None:
    slow = reactr.engine.load("slow", wat_module("slow"), limits=Limits(timeout=30))
    reactr.register("slow", slow)
    running, queued = reactr.do(Job("slow", b"5000000000")), reactr.do(Job("slow", b"1"))
    for _ in range(500):
        if running.started is not None:
            break
        time.sleep(0.01)
    assert queued.cancel() and running.cancel()
    for result in (running, queued):
        with pytest.raises(Exception, match="cancelled"):
            result.then(5)
    stats = reactr.job_stats["slow"]
    for _ in range(500):  # the queued one is counted when the worker takes it from the queue
        if stats.outcomes[CANCELLED] == 2:
            break
        time.sleep(0.01)
    assert counts(stats) == {"cancelled": 2}
    assert stats.runs == [1, 0] and stats.wait.count == 1  # only the first ran and waited


def test_events_tell_each_finished_job_while_someone_listens(reactr: Reactr) -> None:
    heard: list[JobEvent] = []
    reactr.register("echo", reactr.engine.load("echo", wat_module("echo")))
    reactr.register("trap", reactr.engine.load("trap", wat_module("trap")))
    reactr.job_events.add(heard.append)
    job = Job("echo", b"joe", new_result_id())  # as the server's jobs: an id from the start
    assert reactr.do(job).then(5) == b"hello joe"
    with pytest.raises(Exception, match="unreachable"):
        reactr.do("trap").then(5)
    assert reactr.do_now("echo", b"x") == (False, None)  # not proven fast yet: nothing ran, nothing told
    reactr.job_events.remove(heard.append)
    assert reactr.do("echo", b"unheard").then(5) == b"hello unheard"

    assert [(e.runnable, e.result_id, e.outcome, e.error) for e in heard] == [
        ("echo", job.id, "succeeded", None),
        ("trap", "", "failed", heard[1].error),
    ]
    assert heard[1].error is not None and "unreachable" in heard[1].error
    assert all(event.seconds is not None and 0 <= event.seconds < 5 for event in heard)
    assert counts(reactr.job_stats["echo"]) == {"succeeded": 2}


def test_a_failing_listener_fails_no_job(reactr: Reactr) -> None:
    def broken(event: JobEvent) -> None:
        raise RuntimeError("listener bug")

    reactr.register("echo", reactr.engine.load("echo", wat_module("echo")))
    reactr.job_events.add(broken)
    assert reactr.do("echo", b"x").then(5) == b"hello x"
    assert reactr.job_stats["echo"].outcomes[SUCCEEDED] == 1
    assert reactr.job_stats["echo"].outcomes[FAILED] == 0
