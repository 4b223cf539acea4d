"""Schedules: jobs produced on a timer (Reactr's ``Every`` and ``After``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from reactr_wasm.errors import ReactrError
from reactr_wasm.scheduler.job import Job, Result

log = logging.getLogger(__name__)


class Schedule(Protocol):
    """Anything with ``check() -> Job | None`` and ``done() -> bool``."""

    def check(self) -> Job | None: ...

    def done(self) -> bool: ...


class every:
    """Fire at the first check, then whenever ``seconds`` have passed since the last firing."""

    def __init__(self, seconds: float, job: Callable[[], Job]) -> None:
        self.seconds, self._job, self._last = seconds, job, float("-inf")

    def check(self) -> Job | None:
        now = time.monotonic()
        if now - self._last < self.seconds:
            return None
        self._last = now
        return self._job()

    def done(self) -> bool:
        return False


class after:
    """Fire once, at the first check at least ``seconds`` after creation."""

    def __init__(self, seconds: float, job: Callable[[], Job]) -> None:
        self._due, self._job, self._fired = time.monotonic() + seconds, job, False

    def check(self) -> Job | None:
        if self._fired or time.monotonic() < self._due:
            return None
        self._fired = True
        return self._job()

    def done(self) -> bool:
        return self._fired


class Scheduler:
    """Polls every schedule each ``interval`` seconds on one thread; results are discarded."""

    def __init__(self, do: Callable[[Job], Result], interval: float = 1.0) -> None:
        self._do, self.interval = do, interval
        self._schedules: list[Schedule] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, schedule: Schedule) -> None:
        with self._lock:
            self._schedules.append(schedule)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="reactr-schedules", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self.poll()
            if self._stop.wait(self.interval):
                return

    def poll(self) -> None:
        with self._lock:
            schedules = list(self._schedules)
        for schedule in schedules:
            try:
                job = schedule.check()
                if job is not None:
                    self._do(job).discard()
            except ReactrError as error:
                log.warning("scheduled job failed to start: %s", error)
            except Exception:
                log.exception("schedule %r failed", schedule)
            if schedule.done():
                with self._lock:
                    self._schedules.remove(schedule)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
