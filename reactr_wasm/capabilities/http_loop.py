"""An asyncio event loop on its own thread, for callers that must block.

Host functions run synchronously on worker threads inside a guest call, but
the HTTP capability's transport (aiohttp) is asynchronous. ``BackgroundLoop``
is the one hand-over point: ``run(coro, timeout)`` schedules the coroutine on
the loop thread and blocks the calling thread until it finishes. One loop
serves every ``HttpClient`` of a server (the composition root creates it and
closes it after the clients); a client built without one owns a private loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Time allowed for sessions' transports to finish closing when the loop stops.
_SHUTDOWN_SECONDS = 5.0


class LoopClosed(RuntimeError):
    """``run`` was called after ``close``."""


class BackgroundLoop:
    """An event loop on a daemon thread, started on first use; ``close()`` stops it.

    Thread-safe: any number of threads may call ``run`` at once. Works as a
    context manager.
    """

    def __init__(self, name: str = "reactr-http") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._closers: set[Callable[[], Awaitable[None]]] = set()

    @property
    def closed(self) -> bool:
        return self._closed

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise LoopClosed(f"event loop {self._name!r} is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def closing(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Have ``close()`` await ``closer()`` on the loop, unless ``discard``-ed first.

        Lets a client that is still open when its owner closes the loop release
        its sessions there (they cannot be closed once the loop is gone).
        """
        with self._lock:
            self._closers.add(closer)

    def discard(self, closer: Callable[[], Awaitable[None]]) -> None:
        with self._lock:
            self._closers.discard(closer)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the loop thread and return its result (or raise its exception).

        Raises TimeoutError (and cancels the coroutine) when it has not finished
        after ``timeout`` seconds, LoopClosed after ``close()``, RuntimeError
        when called from the loop thread itself (it would wait for itself).
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(f"BackgroundLoop.run called on its own thread {self._name!r}")
        try:
            loop = self._running()
        except LoopClosed:
            coro.close()  # never awaited, and must not warn about it
            raise
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """Cancel what still runs, stop the loop and join its thread; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
            closers, self._closers = list(self._closers), set()
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(_wind_down(closers), loop).result(_SHUTDOWN_SECONDS)
        except TimeoutError:
            pass  # stop anyway; a stuck task must not hold the server's shutdown
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def __enter__(self) -> BackgroundLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _wind_down(closers: list[Callable[[], Awaitable[None]]]) -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(closer() for closer in closers), return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
    # Closed transports drop their sockets in callbacks scheduled for the next iterations.
    for _ in range(3):
        await asyncio.sleep(0)


__all__ = ["BackgroundLoop", "LoopClosed"]
