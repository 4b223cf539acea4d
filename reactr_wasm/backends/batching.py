"""Calls to Redis that come while others are under way, sent as one.

A round trip through redis-py costs ~50-100 µs of CPU whatever it carries
(``scripts/bench-redis-paths``; a PING on a raw socket costs ~20 µs).
A ``Batcher`` sends a call at once while fewer than ``parallel`` sends are under
way; past that, calls wait and go together in the next send. One call alone
pays nothing extra; under load, batches form by themselves and that cost is
paid once per batch rather than once per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Reply = TypeVar("Reply")


class Batcher(Generic[Item, Reply]):
    """``await batcher(item)``: ``send([items...])``, batching the calls that come while ``parallel`` sends run.

    ``send`` returns one reply per item, in order, or raises: then every caller of
    the batch gets that error. A reply that is an exception is raised to its caller
    alone. At most ``limit`` items go in one ``send``.
    """

    def __init__(
        self, send: Callable[[list[Item]], Awaitable[Sequence[Reply | BaseException]]], limit: int, parallel: int = 4
    ) -> None:
        self._send, self._limit, self._parallel = send, limit, parallel
        self._waiting: list[tuple[Item, asyncio.Future[Reply]]] = []
        self._running = 0  # sends under way
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, item: Item) -> Reply:
        if self._running < self._parallel:  # the common case at low load: no future, no task
            self._running += 1
            try:
                [reply] = await self._send([item])
            finally:
                self._running -= 1
                self._next()
            if isinstance(reply, BaseException):
                raise reply
            return reply
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        return await future

    def _next(self) -> None:
        """A send ended: send what waits, if anything."""
        if self._waiting and self._running < self._parallel:
            batch, self._waiting = self._waiting[: self._limit], self._waiting[self._limit :]
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Reply]]]) -> None:
        try:
            replies = await self._send([item for item, _ in batch])
        except BaseException as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        finally:
            self._running -= 1
            self._next()
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller went away; what it asked for happened all the same
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)


__all__ = ["Batcher"]
