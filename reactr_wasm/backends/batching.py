"""Calls made in one event-loop turn, sent to Redis as one.

Under load one loop turn handles many requests; each one's submit or read is a
round trip, and in redis-py's asyncio client a round trip costs ~100 µs of CPU
whatever it carries (measured: ``scripts/bench cluster``). A ``Batcher`` queues the
calls of one turn and sends them in one script call after it, so that cost is
paid once per turn rather than once per request. One call alone waits for
nothing but the end of its turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Reply = TypeVar("Reply")


class Batcher(Generic[Item, Reply]):
    """``await batcher(item)``: ``send([items...])`` once per loop turn, each caller gets its own reply.

    ``send`` returns one reply per item, in order, or raises: then every caller of
    the batch gets that error. A reply that is an exception is raised to its caller
    alone. At most ``limit`` items go in one ``send``.
    """

    def __init__(self, send: Callable[[list[Item]], Awaitable[Sequence[Reply | BaseException]]], limit: int) -> None:
        self._send, self._limit = send, limit
        self._waiting: list[tuple[Item, asyncio.Future[Reply]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, item: Item) -> Reply:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self._waiting.append((item, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        for start in range(0, len(waiting), self._limit):
            task = asyncio.get_running_loop().create_task(self._run(waiting[start : start + self._limit]))
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
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller went away; what it asked for happened all the same
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)


__all__ = ["Batcher"]
