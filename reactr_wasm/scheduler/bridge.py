"""From worker threads to an event loop: callbacks run on the loop, one wake-up per batch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class LoopBridge:
    """Runs ``callback(arg)`` on one event loop for any thread, batching the wake-ups.

    ``call_soon_threadsafe`` writes to the loop's self-pipe on every call; under
    load many jobs finish between two loop iterations, so they share one write.
    Get the bridge of a loop with ``LoopBridge.of(loop)`` on that loop's thread.
    """

    _bridges: dict[asyncio.AbstractEventLoop, LoopBridge] = {}
    _bridges_lock = threading.Lock()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.get_ident()
        self._ready: deque[tuple[Callable[[Any], object], Any]] = deque()
        self._scheduled = False
        self._lock = threading.Lock()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> LoopBridge:
        bridge = cls._bridges.get(loop)
        if bridge is None:
            with cls._bridges_lock:
                for stale in [old for old in cls._bridges if old.is_closed()]:
                    del cls._bridges[stale]
                bridge = cls._bridges.setdefault(loop, cls(loop))
        return bridge

    def call(self, callback: Callable[[Any], object], arg: Any) -> None:
        """Run ``callback(arg)`` on the loop: now when called on its thread, else soon, in call order."""
        if threading.get_ident() == self._thread:
            callback(arg)
            return
        self._ready.append((callback, arg))
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._drain)

    def wake(self, future: asyncio.Future[None]) -> None:
        """Resolve ``future`` (with None) on the loop."""
        self.call(_set_done, future)

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
        ready = self._ready
        while ready:
            callback, arg = ready.popleft()
            try:
                callback(arg)
            except Exception:  # one failing callback must not strand the rest of the batch
                log.exception("callback %r from a worker thread failed", callback)


__all__ = ["LoopBridge"]
