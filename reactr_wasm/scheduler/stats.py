"""Counts of each runnable's jobs, kept as plain numbers, and who hears of each finished job.

A ``JobStats`` per runnable name lives on its ``Reactr`` (``Reactr.job_stats``)
and passes from a worker to the one that replaces it, so its counts only grow.
The server's ``/metrics`` and dashboard read them when asked; nothing here
knows Prometheus. Counting must cost next to nothing on the hot path (a
``then=true`` echo job costs a few µs of server CPU): an ``int`` increment, and
for a histogram a ``bisect`` into fixed bucket bounds, ~0.2 µs, where a
prometheus-client ``Histogram.observe`` takes a lock and ~2-4 µs.

Counts are updated without a lock from the threads that run jobs: under the
GIL an increment is not interrupted halfway on CPython 3.11-3.13, and a
reader taking one count a moment early or late is what a scrape is anyway.

``JobEvents`` holds the listeners told of every finished job (the dashboard's
live list). Without a listener nothing is made: one attribute test per job.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, NamedTuple

from reactr_wasm.errors import JobCancelled, JobTimeout, RunErr
from reactr_wasm.scheduler.group import Group
from reactr_wasm.scheduler.job import Result

log = logging.getLogger(__name__)

# Outcomes of a job, the index of its count in JobStats.outcomes. "failed" is every other
# failure (trap, abort, host fault, a Python runnable's exception); "rejected": refused at
# submit because the runnable's queue was full (QueueFull), never ran.
OUTCOMES = ("succeeded", "run_err", "failed", "timed_out", "cancelled", "rejected")
SUCCEEDED, RUN_ERR, FAILED, TIMED_OUT, CANCELLED, REJECTED = range(len(OUTCOMES))
WHERE = ("worker", "inline")  # JobStats.runs[inline]: a worker thread, or the caller's thread
ERROR_TEXT = 1000  # characters of a job's error an event keeps (a guest's message may be long)

# Seconds. Jobs run from a few µs (an echo, inline) to their timeout (10 s by default).
DURATION_BUCKETS = (
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
# A queued job waits at least a thread's wake-up (~50-100 µs) for a worker.
WAIT_BUCKETS = (
    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


def outcome_of(error: BaseException | None) -> int:
    """The index in ``OUTCOMES`` of a job that ended with ``error`` (None: it succeeded)."""
    if error is None:
        return SUCCEEDED
    if isinstance(error, RunErr):
        return RUN_ERR
    if isinstance(error, JobTimeout):
        return TIMED_OUT
    if isinstance(error, JobCancelled):
        return CANCELLED
    return FAILED


class Histogram:
    """Observations counted per bucket (``counts[i]``: at most ``bounds[i]``, the last: above all), and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bound >= value: Prometheus' "le"
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at most that)`` per bucket, the last bound ``inf``: Prometheus' shape."""
        total, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), list(self.counts), strict=True):
            total += count
            buckets.append((bound, total))
        return buckets

    @property
    def count(self) -> int:
        return sum(self.counts)


class JobEvent(NamedTuple):
    """One finished job, as the listeners of ``JobEvents`` hear of it."""

    at: float  # Unix seconds
    runnable: str
    result_id: str  # "" for a job that never had one (a then=true answer, an in-process job)
    outcome: str  # one of OUTCOMES
    seconds: float | None  # how long its run took; None when it never ran
    error: str | None  # the job's error, as text (its first ERROR_TEXT characters)


Listener = Callable[[JobEvent], None]


class JobEvents:
    """The listeners told of every job that finishes on one ``Reactr``.

    A listener is called on the thread that finished the job (a worker thread,
    the event loop for an inline run): it must be quick and thread-safe.
    ``listeners`` is a tuple replaced whole, so a job thread never sees it change
    while it walks it.
    """

    def __init__(self) -> None:
        self.listeners: tuple[Listener, ...] = ()

    def add(self, listener: Listener) -> None:
        self.listeners = (*self.listeners, listener)

    def remove(self, listener: Listener) -> None:
        self.listeners = tuple(known for known in self.listeners if known != listener)  # == : bound methods too


class JobStats:
    """One runnable's counts since its ``Reactr`` started: outcomes, runs by where, durations, queue waits.

    ``outcomes[i]`` counts the jobs that ended as ``OUTCOMES[i]``; ``runs[inline]``
    the runs that ended their job on a worker thread (0) or the caller's (1);
    ``duration`` those runs' seconds; ``wait`` the seconds a job queued for a
    worker waited for it (inline runs never wait, and are not in it).
    """

    __slots__ = ("duration", "events", "name", "outcomes", "runs", "wait")

    def __init__(self, name: str, events: JobEvents | None = None) -> None:
        self.name = name
        self.events = events if events is not None else JobEvents()
        self.outcomes = [0] * len(OUTCOMES)
        self.runs = [0, 0]
        self.duration = Histogram(DURATION_BUCKETS)
        self.wait = Histogram(WAIT_BUCKETS)

    def ran_inline(self, seconds: float, result_id: str = "") -> None:
        """A job run on the caller's thread by ``Worker.run_now`` succeeded (``result_id`` "": it has none).

        Every inline job comes here: ``Histogram.observe`` is written out, and a
        run within the first bucket (most of them) skips the search.
        """
        self.runs[1] += 1
        duration = self.duration
        bounds = duration.bounds
        duration.counts[0 if seconds <= bounds[0] else bisect_left(bounds, seconds)] += 1
        duration.sum += seconds
        self.outcomes[SUCCEEDED] += 1
        if self.events.listeners:
            self._tell(result_id, SUCCEEDED, seconds, None)

    def failed_inline(self, seconds: float, error: BaseException, result_id: str = "") -> None:
        """A job run on the caller's thread by ``Worker.run_now`` ended with ``error``."""
        self.runs[1] += 1
        self.duration.observe(seconds)
        outcome = outcome_of(error)
        self.outcomes[outcome] += 1
        if self.events.listeners:
            self._tell(result_id, outcome, seconds, error)

    def ran(
        self, inline: bool, seconds: float, result: Result | None, error: BaseException | None, value: Any = None
    ) -> None:
        """A run ended with ``error`` or ``value``: count the run, and ``result``'s outcome before it ends.

        Counted before the result is finished, so whoever it wakes finds the job
        counted. A run that returned another job's Result or a Group is counted
        when ``result`` settles; a ``result`` of None is counted by whoever holds
        it (a deadline may end it first: ``settled`` as its done-callback).
        """
        self.runs[inline] += 1
        self.duration.observe(seconds)
        if result is None:
            return
        if error is None and isinstance(value, (Result, Group)):
            result.add_done_callback(self.settled)
            return
        outcome = SUCCEEDED if error is None else outcome_of(error)
        self.outcomes[outcome] += 1
        if self.events.listeners:
            self._tell(result.job._id or "", outcome, seconds, error)

    def settled(self, result: Result) -> None:
        """Count the outcome of a job that ended without ``ran`` counting it (cancelled while queued, a chain)."""
        error = result.error
        outcome = SUCCEEDED if error is None else outcome_of(error)
        self.outcomes[outcome] += 1
        if self.events.listeners:
            self._tell(result.job._id or "", outcome, None, error)

    def waited(self, result: Result) -> None:
        """``result``'s job, queued for a worker, starts now: observe how long it waited."""
        started = result.started
        if started is not None:
            self.wait.observe(started - result.created)

    def rejected(self) -> None:
        self.outcomes[REJECTED] += 1

    def _tell(self, result_id: str, outcome: int, seconds: float | None, error: BaseException | None) -> None:
        text = None if error is None else (str(error) or type(error).__name__)[:ERROR_TEXT]
        event = JobEvent(time.time(), self.name, result_id, OUTCOMES[outcome], seconds, text)
        for listener in self.events.listeners:
            try:
                listener(event)
            except Exception:  # a listener's bug must not fail the job's thread
                log.exception("a listener of finished jobs failed on job %s", event.result_id or self.name)


__all__ = [
    "DURATION_BUCKETS",
    "OUTCOMES",
    "WAIT_BUCKETS",
    "WHERE",
    "Histogram",
    "JobEvent",
    "JobEvents",
    "JobStats",
    "Listener",
    "outcome_of",
]
