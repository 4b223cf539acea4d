"""MemoryResultStore: TTL after finish, bounded count, sweep, forget, idempotency keys."""

from __future__ import annotations

import pytest

from reactr_wasm.backends.results import MemoryResultStore
from reactr_wasm.scheduler.job import Job, Result


class Clock:
    """A wall clock the test moves by hand (Result.finished is wall time)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def finished(value: object = b"ok", at: float | None = None) -> Result:
    result = Result(Job("echo", b""))
    result.set_result(value)
    if at is not None:
        result.finished = at
    return result


def test_a_finished_result_stays_readable_for_the_ttl_then_expires() -> None:
    clock = Clock()
    store = MemoryResultStore(ttl=10, max_results=100, clock=clock)
    result = finished(at=clock.now)
    store.put(result)

    assert store.get(result.id) is result
    assert store.get(result.id) is result  # reading does not remove it
    clock.now += 9.9
    assert store.get(result.id) is result
    clock.now += 0.1
    assert store.get(result.id) is None
    assert len(store) == 0  # expired on access, not just hidden


def test_an_unfinished_result_never_expires_and_its_ttl_starts_when_it_finishes() -> None:
    clock = Clock()
    store = MemoryResultStore(ttl=1, max_results=100, clock=clock)
    result = Result(Job("slow", b""))
    store.put(result)
    clock.now += 3600
    assert store.get(result.id) is result

    result.set_result(b"done")
    result.finished = clock.now
    clock.now += 0.5
    assert store.get(result.id) is result
    clock.now += 0.5
    assert store.get(result.id) is None


def test_the_oldest_result_goes_first_at_the_bound() -> None:
    store = MemoryResultStore(ttl=60, max_results=3)
    results = [finished() for _ in range(5)]
    for result in results:
        store.put(result)

    assert len(store) == 3
    assert [store.get(r.id) for r in results] == [None, None, *results[2:]]


def test_dropping_at_the_bound_does_not_touch_the_result_itself() -> None:
    store = MemoryResultStore(ttl=60, max_results=1)
    running = Result(Job("slow", b""))
    store.put(running)
    store.put(finished())  # drops `running` from the store

    assert store.get(running.id) is None
    running.set_result(b"still delivered")  # someone awaiting it still gets the value
    assert running.outcome() == b"still delivered"


def test_sweep_drops_what_nobody_fetched() -> None:
    clock = Clock()
    store = MemoryResultStore(ttl=5, max_results=100, clock=clock)
    old = [finished(at=clock.now - 10) for _ in range(3)]
    fresh = finished(at=clock.now)
    running = Result(Job("slow", b""))
    for result in [*old, fresh, running]:
        store.put(result)

    assert store.sweep() == 3
    assert len(store) == 2
    assert store.get(fresh.id) is fresh and store.get(running.id) is running


def test_forget_removes_the_result_and_frees_its_key() -> None:
    store = MemoryResultStore(ttl=60, max_results=100)
    first = finished()
    assert store.bind("key", first.id) is None
    store.put(first, "key")

    assert store.forget(first.id) is first
    assert store.get(first.id) is None
    assert store.forget(first.id) is None
    second = finished()
    assert store.bind("key", second.id) is None  # the key is free again


def test_a_bound_key_returns_the_first_result_id_while_the_result_is_kept() -> None:
    clock = Clock()
    store = MemoryResultStore(ttl=10, max_results=100, clock=clock)
    first, second = finished(at=clock.now), finished()
    assert store.bind("key", first.id) is None
    store.put(first, "key")

    assert store.bind("key", second.id) == first.id
    assert store.bind("key", first.id) is None  # binding the same id again is fine
    assert store.bind("other", second.id) is None

    clock.now += 10  # first expires, and its key with it
    assert store.bind("key", second.id) is None


def test_release_undoes_a_bind_whose_job_never_started() -> None:
    store = MemoryResultStore(ttl=60, max_results=100)
    assert store.bind("key", "a" * 24) is None
    assert store.bind("key", "b" * 24) == "a" * 24  # being started: the claim holds
    store.release("key")
    assert store.bind("key", "b" * 24) is None


def test_a_key_goes_with_its_result_at_the_bound() -> None:
    store = MemoryResultStore(ttl=60, max_results=1)
    first = finished()
    store.bind("key", first.id)
    store.put(first, "key")
    store.put(finished())  # evicts first
    assert store.bind("key", "c" * 24) is None


@pytest.mark.parametrize(("ttl", "max_results"), [(0, 10), (-1, 10), (10, 0)])
def test_nonsense_bounds_are_refused(ttl: float, max_results: int) -> None:
    with pytest.raises(ValueError, match="ttl must be above 0"):
        MemoryResultStore(ttl=ttl, max_results=max_results)


def test_discard_frees_the_stored_result_even_from_another_thread() -> None:
    import threading

    from reactr_wasm.scheduler.job import Job

    store = MemoryResultStore(ttl=600, max_results=100)
    results = [Result(Job("x", i)) for i in range(10)]
    for result in results:
        store.put(result)
    assert len(store) == 10
    threads = [threading.Thread(target=result.discard) for result in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store) == 0
    assert store.get(results[0].id) is None
