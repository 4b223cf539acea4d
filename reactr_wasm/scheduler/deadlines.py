"""One thread that fails results whose deadline passed (for runs it cannot stop).

Python code cannot be interrupted from outside, so a Python runnable that
overruns its timeout keeps its worker thread; its result, though, becomes
``JobTimeout`` at the deadline and whatever the run returns later is dropped.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from reactr_wasm.errors import ReactrError
from reactr_wasm.scheduler.job import Result


class DeadlineWatcher:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Result, Callable[[], ReactrError]]] = []
        self._order = itertools.count()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, result: Result, error: Callable[[], ReactrError]) -> None:
        """Fail ``result`` with ``error()`` at ``result.control.deadline`` unless done by then."""
        with self._wakeup:
            heapq.heappush(self._heap, (result.control.deadline, next(self._order), result, error))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="reactr-deadlines", daemon=True)
                self._thread.start()
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wakeup.wait(timeout)
                if self._closed:
                    return
                _, _, result, error = heapq.heappop(self._heap)
            if not result.done():
                result.set_error(error())

    def close(self) -> None:
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join()
