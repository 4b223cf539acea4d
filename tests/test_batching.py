"""The Batcher: calls sent at once while few are under way, batched behind them under load."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from reactr_wasm.backends.batching import Batcher


class Sends:
    """A send that records its batches and answers each item with item * 10 (ValueError for item < 0)."""

    def __init__(self, delay: float = 0.01) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.fail = False

    async def __call__(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(items)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("down")
        return [ValueError(f"bad {item}") if item < 0 else item * 10 for item in items]


async def test_a_lone_call_is_sent_alone_and_answered() -> None:
    sends = Sends()
    batcher = Batcher(sends, limit=100, parallel=2)
    assert await batcher(1) == 10
    assert await batcher(2) == 20
    assert sends.batches == [[1], [2]]


async def test_calls_past_the_parallel_sends_go_together_in_order() -> None:
    sends = Sends()
    batcher = Batcher(sends, limit=3, parallel=2)
    replies = await asyncio.gather(*(batcher(i) for i in range(9)))
    assert replies == [i * 10 for i in range(9)]
    assert sends.batches[:2] == [[0], [1]]  # sent at once
    assert sends.batches[2:] == [[2, 3, 4], [5, 6, 7], [8]]  # waited, at most `limit` a batch
    assert sum(map(len, sends.batches)) == 9


async def test_an_error_reply_goes_to_its_caller_only() -> None:
    batcher = Batcher(Sends(), limit=10, parallel=1)
    replies = await asyncio.gather(batcher(1), batcher(-2), batcher(3), return_exceptions=True)
    assert replies[0] == 10 and replies[2] == 30
    assert isinstance(replies[1], ValueError) and str(replies[1]) == "bad -2"


async def test_a_failed_send_fails_every_caller_of_its_batch_and_the_next_batch_still_goes() -> None:
    sends = Sends()
    batcher = Batcher(sends, limit=10, parallel=1)
    sends.fail = True
    first = asyncio.gather(*(batcher(i) for i in range(4)), return_exceptions=True)
    await asyncio.sleep(0)
    assert all(isinstance(reply, ConnectionError) for reply in await first)
    sends.fail = False
    assert await batcher(5) == 50


async def test_a_caller_that_goes_away_does_not_stop_its_batch() -> None:
    sends = Sends(delay=0.05)
    batcher = Batcher(sends, limit=10, parallel=1)
    first = asyncio.create_task(batcher(1))
    waiting = asyncio.create_task(batcher(2))
    kept = asyncio.create_task(batcher(3))
    await asyncio.sleep(0.01)
    waiting.cancel()
    assert await first == 10 and await kept == 30
    assert sends.batches == [[1], [2, 3]]  # sent all the same: a submit still happens
    with pytest.raises(asyncio.CancelledError):
        await waiting
