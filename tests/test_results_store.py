"""The result store contract, run against every implementation (``store`` fixture params).

A new implementation joins by adding a param and a branch to ``make_store``; every
test here must then pass for it too. The Redis store runs against a real
redis-server started for this module. Records round-trip through msgpack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from reactr_wasm.backends.memory_results import MemoryResultStore
from reactr_wasm.backends.records import RECORD_OVERHEAD, ErrorKind, JobRecord, JobStatus
from reactr_wasm.backends.redis_link import RedisLink
from reactr_wasm.backends.redis_results import RedisResultStore
from reactr_wasm.backends.results import ResultStore
from reactr_wasm.scheduler.job import new_result_id
from tests.services import Service, redis_server

MakeStore = Callable[..., ResultStore]
START = 1_000_000.0


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis_service() -> Iterator[Service]:
    """One redis-server for this module's Redis stores (each store has a namespace of its own)."""
    with redis_server() as service:
        yield service


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """``make_store(ttl=60, max_results=100, max_bytes=1 GiB, clock=None)``: a store of this param's kind.

    Without a ``clock``, the store's clock stands still at ``START``, when the test records finish.
    """
    made: list[ResultStore] = []
    service: Service | None = request.getfixturevalue("redis_service") if request.param == "redis" else None

    def make(*, ttl: float = 60, max_results: int = 100, max_bytes: int = 1 << 30, clock: Any = None) -> ResultStore:
        clock = clock or Clock()
        store: ResultStore
        if service is None:
            store = MemoryResultStore(ttl=ttl, max_results=max_results, max_bytes=max_bytes, clock=clock)
        else:
            link = RedisLink(service.url)
            try:
                store = RedisResultStore(
                    link, namespace=f"test-{new_result_id()}", ttl=ttl, max_results=max_results,
                    max_bytes=max_bytes, clock=clock,
                )  # fmt: skip
            except ValueError:
                link.client.connection_pool.reset()  # nothing connected yet: nothing to close
                raise
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


def queued(key: str | None = None, fingerprint: str | None = None) -> JobRecord:
    return JobRecord(new_result_id(), "echo", JobStatus.QUEUED, START, key=key, fingerprint=fingerprint)


def finished(record: JobRecord | None = None, value: bytes = b"ok", at: float = START) -> JobRecord:
    """``record`` (or a new one) as it is once its job succeeded with ``value`` at ``at``."""
    return (record or queued())._replace(
        status=JobStatus.SUCCEEDED, started=at, finished=at, value=value, content_type="application/octet-stream"
    )


# --- add, get, delete ---------------------------------------------------------------------


async def test_a_record_reads_back_as_it_was_added_and_reading_keeps_it(make_store: MakeStore) -> None:
    store = make_store()
    record = queued()
    assert await store.add(record) is None
    assert await store.get(record.id) == record
    assert await store.get(record.id) == record
    assert await store.get(new_result_id()) is None
    assert await store.size() == (1, record.nbytes)


async def test_finish_replaces_a_kept_record_and_refuses_an_unknown_one(make_store: MakeStore) -> None:
    store = make_store()
    record = queued()
    await store.add(record)
    done = finished(record)
    assert await store.finish(done) is True
    assert await store.get(record.id) == done
    assert await store.size() == (1, done.nbytes)

    stranger = finished()
    assert await store.finish(stranger) is False  # deleted, expired or evicted: not stored again
    assert await store.get(stranger.id) is None


async def test_the_first_outcome_stored_stands(make_store: MakeStore) -> None:
    """A job run twice (its first node died before acknowledging it) answers what its first run stored."""
    store = make_store()
    record = queued("order-1", "digest-a")
    await store.add(record)
    first = finished(record._replace(key=None, fingerprint=None), value=b"first")
    assert await store.finish(first) is True
    waiter = asyncio.create_task(store.wait(record.id, 5))
    assert await store.finish(finished(record, value=b"second")) is True  # kept: but not replaced
    kept = await store.get(record.id)
    assert kept is not None and kept.value == b"first" and kept.key == "order-1"
    assert (await asyncio.wait_for(waiter, 1)).value == b"first"
    assert await store.size() == (1, kept.nbytes)


async def test_delete_returns_the_record_once(make_store: MakeStore) -> None:
    store = make_store()
    record = finished()
    await store.add(record)
    assert await store.delete(record.id) == record
    assert await store.get(record.id) is None
    assert await store.delete(record.id) is None
    assert await store.size() == (0, 0)


# --- wait ----------------------------------------------------------------------------------


async def test_wait_is_woken_by_finish(make_store: MakeStore) -> None:
    store = make_store()
    record = queued()
    await store.add(record)
    waiters = [asyncio.create_task(store.wait(record.id, 5)) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert not any(waiter.done() for waiter in waiters)

    started = time.monotonic()
    await store.finish(finished(record))
    assert await asyncio.gather(*waiters) == [finished(record)] * 3
    assert time.monotonic() - started < 0.5  # woken, not polled


async def test_wait_gives_the_record_as_it_is_when_the_timeout_passes(make_store: MakeStore) -> None:
    store = make_store()
    record = queued()
    await store.add(record)
    started = time.monotonic()
    assert await store.wait(record.id, 0.2) == record
    assert 0.15 < time.monotonic() - started < 1
    assert await store.wait(record.id, 0) == record


async def test_wait_answers_at_once_for_a_finished_or_unknown_id(make_store: MakeStore) -> None:
    store = make_store()
    done = finished()
    await store.add(done)
    started = time.monotonic()
    assert await store.wait(done.id, 5) == done
    assert await store.wait(new_result_id(), 5) is None
    assert time.monotonic() - started < 0.5


async def test_a_waiter_still_gets_the_end_of_a_job_deleted_while_it_waited(make_store: MakeStore) -> None:
    store = make_store()
    record = queued()
    await store.add(record)
    waiter = asyncio.create_task(store.wait(record.id, 5))
    await asyncio.sleep(0.05)
    await store.delete(record.id)
    cancelled = record._replace(status=JobStatus.CANCELLED, finished=START, error_kind=ErrorKind.CANCELLED,
                                error_message="job cancelled", error_text="job cancelled")  # fmt: skip
    assert await store.finish(cancelled) is False
    assert await asyncio.wait_for(waiter, 1) == cancelled
    assert await store.get(record.id) is None


async def test_a_waiter_that_timed_out_is_not_woken_later(make_store: MakeStore) -> None:
    store = make_store()
    record = queued()
    await store.add(record)
    assert await store.wait(record.id, 0.05) == record
    await store.finish(finished(record))  # no waiter left to wake: must not fail
    assert await store.wait(record.id, 0.05) == finished(record)


# --- bounds: time, count, bytes ------------------------------------------------------------


async def test_a_finished_record_stays_for_the_ttl_after_its_job_ended(make_store: MakeStore) -> None:
    clock = Clock()
    store = make_store(ttl=10, clock=clock)
    record = queued()
    await store.add(record)
    clock.now += 3600
    assert await store.get(record.id) == record  # unfinished: never expires

    await store.finish(finished(record, at=clock.now))
    clock.now += 9.9
    assert await store.get(record.id) is not None
    clock.now += 0.1
    assert await store.get(record.id) is None
    assert await store.size() == (0, 0)  # gone on access, not just hidden


async def test_sweep_drops_what_nobody_fetched(make_store: MakeStore) -> None:
    clock = Clock()
    store = make_store(ttl=5, clock=clock)
    old = [finished(at=clock.now - 10) for _ in range(3)]
    fresh, running = finished(at=clock.now), queued()
    for record in [*old, fresh, running]:
        await store.add(record)
    assert await store.sweep() == 3
    assert await store.size() == (2, fresh.nbytes + running.nbytes)
    assert await store.get(fresh.id) == fresh and await store.get(running.id) == running


async def test_the_oldest_record_goes_first_at_the_count_bound(make_store: MakeStore) -> None:
    store = make_store(max_results=3)
    records = [finished() for _ in range(5)]
    for record in records:
        await store.add(record)
    assert [await store.get(r.id) for r in records] == [None, None, *records[2:]]
    assert (await store.size())[0] == 3


async def test_the_oldest_records_go_first_at_the_byte_bound(make_store: MakeStore) -> None:
    value = b"x" * 10_000
    size = finished(value=value).nbytes
    store = make_store(max_bytes=3 * size + size // 2)  # room for three
    records = [finished(value=value) for _ in range(5)]
    for record in records:
        await store.add(record)
    assert [await store.get(r.id) is not None for r in records] == [False, False, True, True, True]
    assert await store.size() == (3, 3 * size)


async def test_a_job_that_ends_with_a_large_value_pushes_older_records_out(make_store: MakeStore) -> None:
    store = make_store(max_bytes=4 * RECORD_OVERHEAD + 20_000)
    first, second, third = queued(), finished(value=b"y" * 10_000), finished(value=b"z" * 5_000)
    for record in (first, second, third):
        await store.add(record)
    assert await store.finish(finished(first, value=b"x" * 10_000))  # the oldest, but just written: kept
    assert [await store.get(r.id) is not None for r in (first, second, third)] == [True, False, True]


async def test_a_record_over_the_byte_bound_alone_is_still_kept(make_store: MakeStore) -> None:
    store = make_store(max_bytes=1000)
    small, big = finished(), finished(value=b"x" * 5000)
    await store.add(small)
    await store.add(big)
    assert await store.get(small.id) is None
    assert await store.get(big.id) == big  # its client is about to read it


@pytest.mark.parametrize(("ttl", "max_results", "max_bytes"), [(0, 10, 10), (-1, 10, 10), (10, 0, 10), (10, 10, 0)])
async def test_nonsense_bounds_are_refused(make_store: MakeStore, ttl: float, max_results: int, max_bytes: int) -> None:
    with pytest.raises(ValueError, match="ttl must be above 0 and max_results and max_bytes at least 1"):
        make_store(ttl=ttl, max_results=max_results, max_bytes=max_bytes)


# --- idempotency keys -----------------------------------------------------------------------


async def test_a_key_is_bound_to_the_first_record_that_carries_it(make_store: MakeStore) -> None:
    store = make_store()
    first = queued("order-1", "digest-a")
    assert await store.add(first) is None
    second = queued("order-1", "digest-b")
    assert await store.add(second) == first  # replayed or refused by the caller: nothing stored
    assert await store.get(second.id) is None
    assert await store.add(queued("order-2", "digest-b")) is None

    await store.finish(finished(first._replace(key=None, fingerprint=None)))  # key and fingerprint carry over
    kept = await store.add(queued("order-1", "digest-a"))
    assert kept is not None and kept.done and (kept.key, kept.fingerprint) == ("order-1", "digest-a")


@pytest.mark.parametrize("how", ["delete", "expiry", "sweep", "count bound", "byte bound"])
async def test_a_key_is_released_with_its_record(make_store: MakeStore, how: str) -> None:
    clock = Clock()
    store = make_store(ttl=10, max_results=2, max_bytes=3 * RECORD_OVERHEAD + 1000, clock=clock)
    first = finished(queued("order-1", "digest-a"), at=clock.now)
    await store.add(first)
    if how == "delete":
        await store.delete(first.id)
    elif how in ("expiry", "sweep"):
        clock.now += 10
        if how == "sweep":
            assert await store.sweep() == 1
    elif how == "count bound":
        for _ in range(2):
            await store.add(finished())
    else:
        await store.add(finished(value=b"x" * 2000))  # with the first, over the bytes
    assert await store.get(first.id) is None
    again = queued("order-1", "digest-b")
    assert await store.add(again) is None  # the key is free: a new job may take it
    assert await store.get(again.id) == again


# --- the record itself -----------------------------------------------------------------------


def test_a_record_round_trips_through_msgpack() -> None:
    full = JobRecord(
        new_result_id(), "request-info", JobStatus.FAILED, START, START + 1, START + 2, b"\x00\xff", "application/json",
        (("X-Reactr", "cohix"), ("X-Other", "é")), ErrorKind.RUN_ERR, 418, "teapot", '{"code":418,"message":"teapot"}',
        "order-1", "digest",
    )  # fmt: skip
    for record in (full, queued(), finished()):
        packed = record.to_bytes()
        assert isinstance(packed, bytes) and JobRecord.from_bytes(packed) == record


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb([2, "x"]),  # another format version
        msgpack.packb([1, "id", "echo", "queued"]),  # fields missing
        msgpack.packb([1, 5, "echo", "queued", START, None, None, b"", None, None, None, 0, "", None, None, None]),
        msgpack.packb([1, "i", "echo", "lost", START, None, None, b"", None, None, None, 0, "", None, None, None]),
        msgpack.packb([1, "i", "echo", "queued", START, None, None, b"", None, [["X"]], None, 0, "", None, None, None]),
    ],
)
def test_anything_but_a_packed_record_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a packed job record"):
        JobRecord.from_bytes(data)


def test_a_records_size_counts_its_value_texts_and_headers() -> None:
    record = JobRecord("a" * 24, "echo", JobStatus.SUCCEEDED, START, value=b"x" * 100, headers=(("A", "bc"),))
    assert record.nbytes == RECORD_OVERHEAD + 100 + 3
    failed = JobRecord("a" * 24, "echo", JobStatus.FAILED, START, error_message="boom", error_text="boom!")
    assert failed.nbytes == RECORD_OVERHEAD + 9
