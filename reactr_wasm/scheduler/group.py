"""Groups of results waited on together (Reactr's ``Group``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Generator
from typing import Any

from reactr_wasm.scheduler.job import Result


class Group:
    """Collects results; ``wait()`` returns the first error to arrive, or None.

    Add every result first, then wait: ``group.wait()`` blocks, ``await
    group.wait()`` (or ``await group``) does not. A runnable may return a Group:
    its own result then resolves to None or that first error.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = 0
        self._first_error: BaseException | None = None
        self._listeners: list[Callable[[BaseException | None], None]] = []
        self._done = threading.Event()
        self._done.set()

    def add(self, result: Result) -> None:
        with self._lock:
            self._pending += 1
            self._done.clear()
        result.add_done_callback(self._arrived)

    def _arrived(self, result: Result) -> None:
        with self._lock:
            if result.error is not None and self._first_error is None:
                self._first_error = result.error
            self._pending -= 1
            finished = self._pending == 0
            listeners = self._listeners if finished else []
            if finished:
                self._listeners = []
        if finished:
            self._done.set()
            for listener in listeners:
                listener(self._first_error)

    def on_done(self, listener: Callable[[BaseException | None], None]) -> None:
        """Call ``listener(first_error)`` once every added result is done."""
        with self._lock:
            if self._pending:
                self._listeners.append(listener)
                return
        listener(self._first_error)

    def wait(self, timeout: float | None = None) -> Any:
        """The first error to arrive once every result is done, or None.

        Outside an event loop it blocks (``group.wait()``). Inside one, blocking
        would stall the loop, so it returns an awaitable instead:
        ``await group.wait()``. Raises TimeoutError after ``timeout`` seconds.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self.wait_blocking(timeout)
        return asyncio.wait_for(self.wait_async(), timeout)

    def wait_blocking(self, timeout: float | None = None) -> BaseException | None:
        """Block until every result is done; the first error to arrive, or None."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"group still has {self._pending} results after {timeout}s")
        return self._first_error

    async def wait_async(self) -> BaseException | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[BaseException | None] = loop.create_future()

        def resolve(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, error)

        self.on_done(resolve)
        return await future

    def __await__(self) -> Generator[Any, None, BaseException | None]:
        return self.wait_async().__await__()


def _settle(future: asyncio.Future[BaseException | None], error: BaseException | None) -> None:
    if not future.done():
        future.set_result(error)
