"""What the Redis result store does beyond the store contract: other nodes, lost connections, its key layout."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis

from reactr_wasm.backends.records import JobRecord, JobStatus
from reactr_wasm.backends.redis_events import Events
from reactr_wasm.backends.redis_link import BackendUnavailable, RedisLink
from reactr_wasm.backends.redis_results import RedisResultStore
from reactr_wasm.scheduler.job import new_result_id
from tests.services import RedisProcess, Service

pytestmark = pytest.mark.timeout(30)
MakeStore = Callable[..., RedisResultStore]


@pytest.fixture
async def make_store(service: Service) -> AsyncIterator[MakeStore]:
    """Stores of one namespace, as the nodes of one cluster have."""
    namespace, made = f"s-{new_result_id()}", []

    def make(clock: Callable[[], float] = time.time) -> RedisResultStore:
        link = RedisLink(service.url)
        store = RedisResultStore(link, namespace=namespace, ttl=60, max_results=100, max_bytes=1 << 20, clock=clock)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


def queued() -> JobRecord:
    return JobRecord(new_result_id(), "echo", JobStatus.QUEUED, time.time(), key="order-9", fingerprint="fp")


def finished(record: JobRecord) -> JobRecord:
    now = time.time()
    done = record._replace(status=JobStatus.SUCCEEDED, started=now, finished=now, value=b"ok")
    return done._replace(key=None, fingerprint=None)


async def test_a_waiter_on_one_node_is_woken_by_a_finish_on_another(make_store: MakeStore) -> None:
    here, there = make_store(), make_store()
    record = queued()
    await here.add(record)
    waiter = asyncio.create_task(here.wait(record.id, 5))
    assert await here.events.ready(5)
    started, done = time.monotonic(), finished(record)
    assert await there.finish(done)
    woken = await asyncio.wait_for(waiter, 2)
    assert woken == done._replace(key="order-9", fingerprint="fp")  # read back from Redis: the key carried over
    assert time.monotonic() - started < 0.5


async def test_a_finish_while_the_subscription_is_lost_still_wakes_the_waiter(
    make_store: MakeStore, service: Service
) -> None:
    here, there = make_store(), make_store()
    record = queued()
    await here.add(record)
    waiter = asyncio.create_task(here.wait(record.id, 10))
    assert await here.events.ready(5)
    raw = redis.Redis.from_url(service.url)
    assert raw.client_kill_filter(_type="pubsub") == 1
    assert raw.pubsub_numsub(here.done_channel) == [(here.done_channel.encode(), 0)]  # nobody hears the finish
    await there.finish(finished(record))
    assert (await asyncio.wait_for(waiter, 5)).value == b"ok"  # re-checked once subscribed again
    assert await here.events.ready(5)
    raw.close()


async def finished_here(store: RedisResultStore) -> JobRecord:
    """A record ``store`` added and finished, with its done channel subscribed: it keeps it in memory."""
    if not store.events.subscribed:
        await store.wait(new_result_id(), 0.01)  # a waiter subscribes the done channel
        assert await store.events.ready(5)
    record = queued()._replace(key=None, fingerprint=None)
    await store.add(record)
    done = finished(record)
    assert await store.finish(done)
    return done


async def gone_within(store: RedisResultStore, result_id: str, seconds: float = 5.0) -> bool:
    """Whether ``store`` stops answering ``result_id`` within ``seconds``."""
    deadline = time.monotonic() + seconds
    while await store.get(result_id) is not None:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_a_record_finished_here_is_read_from_memory(make_store: MakeStore, service: Service) -> None:
    here = make_store()
    done = await finished_here(here)
    with redis.Redis.from_url(service.url) as raw:
        raw.delete(here.record_key(done.id))  # behind the store's back: not seen
    assert await here.get(done.id) == done
    assert await here.wait(done.id, 1) == done
    assert await make_store().get(done.id) is None  # another node reads Redis


async def test_a_record_finished_here_and_deleted_on_another_node_is_forgotten(make_store: MakeStore) -> None:
    here, there = make_store(), make_store()
    done = await finished_here(here)
    assert await there.delete(done.id) == done
    assert await gone_within(here, done.id)


async def test_a_record_finished_here_and_evicted_by_another_node_is_forgotten(make_store: MakeStore) -> None:
    here, there = make_store(), make_store()
    done = await finished_here(here)
    for _ in range(100):  # max_results = 100: the oldest, ours, goes
        await there.add(queued()._replace(key=None, fingerprint=None))
    assert await gone_within(here, done.id)


async def test_a_record_finished_here_and_swept_by_another_node_is_forgotten(make_store: MakeStore) -> None:
    here, there = make_store(), make_store(clock=lambda: time.time() + 120)  # past the 60 s TTL over there
    done = await finished_here(here)
    assert await there.sweep() == 1
    assert await gone_within(here, done.id)  # not expired by this node's clock: forgotten, not dropped


async def test_a_record_dropped_while_its_outcome_was_being_stored_is_not_kept(make_store: MakeStore) -> None:
    here, there = make_store(), make_store()
    done = await finished_here(there)
    await here.wait(new_result_id(), 0.01)
    assert await here.events.ready(5)
    here.finishing([done.id])  # as the job queue does before its script call; the drop comes first
    last = queued()
    await there.add(last)
    woken = asyncio.create_task(here.wait(last.id, 5))
    assert await there.delete(done.id) == done
    await there.finish(finished(last))  # published after the drop: once heard, the drop was heard too
    assert (await asyncio.wait_for(woken, 5)).value == b"ok"
    here.finished_here([done.id], [done])
    assert await here.get(done.id) is None


async def test_records_finished_here_are_forgotten_when_the_subscription_is_lost(
    make_store: MakeStore, service: Service
) -> None:
    here = make_store()
    done = await finished_here(here)
    raw = redis.Redis.from_url(service.url)
    raw.delete(here.record_key(done.id))  # unseen; a drop while the subscription is lost would be too
    assert await here.get(done.id) == done
    assert raw.client_kill_filter(_type="pubsub") == 1
    assert await gone_within(here, done.id)
    raw.close()


async def test_records_are_msgpack_in_a_hash_with_the_bounds_beside(make_store: MakeStore, service: Service) -> None:
    store = make_store()
    record = queued()
    await store.add(record)
    raw = redis.Redis.from_url(service.url)
    kept = raw.hgetall(store.record_key(record.id))
    assert JobRecord.from_bytes(kept[b"d"]) == record._replace(key=None, fingerprint=None)
    assert (kept[b"k"], kept[b"f"], int(kept[b"n"])) == (b"order-9", b"fp", record.nbytes)
    assert raw.get(f"{store.namespace}:k:order-9") == record.id.encode()
    assert raw.zrange(f"{store.namespace}:age", 0, -1) == [record.id.encode()]
    assert int(raw.get(f"{store.namespace}:bytes") or 0) == record.nbytes
    assert raw.ttl(store.record_key(record.id)) == -1  # no Redis TTL: expiry is the store's (see the module doc)
    raw.close()


async def test_redis_away_is_a_clear_error_and_its_return_is_noticed() -> None:
    server = RedisProcess()
    store = RedisResultStore(RedisLink(server.start().url, timeout=1), namespace="n", ttl=60, max_results=10,
                             max_bytes=1 << 20)  # fmt: skip
    try:
        record = queued()
        await store.add(record)
        server.stop(signal.SIGKILL)
        with pytest.raises(BackendUnavailable, match=r"Redis HMGET failed: .*(Connection|connect)"):
            await store.get(record.id)
        server.start()  # without persistence: back, empty
        assert await store.get(record.id) is None
        assert await store.add(record) is None and await store.get(record.id) == record
    finally:
        await store.close()
        server.close()


async def test_redis_that_stops_answering_is_a_clear_error_within_the_timeout() -> None:
    server = RedisProcess()
    link = RedisLink(server.start().url, timeout=1)
    store = RedisResultStore(link, namespace="n", ttl=60, max_results=10, max_bytes=1 << 20)
    try:
        record = queued()
        await store.add(record)
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)  # up, and silent
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=r"Redis HMGET: no answer within 1 s"):
            await store.get(record.id)
        with pytest.raises(BackendUnavailable, match=r"Redis XREADGROUP: no answer within 1.5 s"):
            await link.read("XREADGROUP", "GROUP", "g", "c", "BLOCK", 500, "STREAMS", "s", ">", block=0.5)
        assert time.monotonic() - started < 4
        server.process.send_signal(signal.SIGCONT)
        assert await store.get(record.id) == record  # the connection closed under the call: a new one, no late answer
    finally:
        if server.process is not None:
            server.process.send_signal(signal.SIGCONT)
        await store.close()
        server.close()


async def test_a_quiet_subscription_stays_and_a_silent_one_is_made_again() -> None:
    server = RedisProcess()
    link = RedisLink(server.start().url, timeout=1)
    events, heard, subscriptions = Events(link, health=0.1), [], []
    try:
        events.on("ch", heard.append, lambda: subscriptions.append(time.monotonic()))
        assert await events.ready(5)
        await asyncio.sleep(1.0)  # ten health periods without a message: answered PINGs keep it
        assert len(subscriptions) == 1 and events.subscribed
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)  # silent: dropped after three periods
        await asyncio.sleep(1.0)
        assert not events.subscribed
        server.process.send_signal(signal.SIGCONT)
        assert await events.ready(5) and len(subscriptions) == 2
        await link.call("PUBLISH", "ch", "after")
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.02)
        assert heard == [b"after"]
    finally:
        if server.process is not None:
            server.process.send_signal(signal.SIGCONT)
        await events.close()
        await link.close()
        server.close()


async def test_a_channel_added_later_is_heard_and_the_first_still_is(make_store: MakeStore, service: Service) -> None:
    here, there = make_store(), make_store()
    record = queued()
    await here.add(record)
    waiter = asyncio.create_task(here.wait(record.id, 10))
    assert await here.events.ready(5)
    heard: list[bytes] = []
    here.events.on(f"{here.namespace}:other", heard.append)  # subscribes again, to both
    assert await here.events.ready(5)
    raw = redis.Redis.from_url(service.url)
    assert raw.publish(f"{here.namespace}:other", b"hello") == 1
    await there.finish(finished(record))
    assert (await asyncio.wait_for(waiter, 5)).value == b"ok"
    for _ in range(50):
        if heard:
            break
        await asyncio.sleep(0.02)
    assert heard == [b"hello"]
    raw.close()


async def test_a_channel_added_while_connecting_is_subscribed_too(make_store: MakeStore, service: Service) -> None:
    store, heard = make_store(), asyncio.Queue[bytes]()
    store.events.on(f"{store.namespace}:first", heard.put_nowait)
    await asyncio.sleep(0)  # the connection is being made, for the first channel only: none to drop yet
    store.events.on(f"{store.namespace}:second", heard.put_nowait)
    assert await store.events.ready(5)
    raw = redis.Redis.from_url(service.url)
    assert raw.publish(f"{store.namespace}:second", b"hello") == 1
    assert await asyncio.wait_for(heard.get(), 5) == b"hello"
    raw.close()


async def test_a_refused_command_in_a_pipeline_fails_the_call_and_leaves_the_link_in_step(service: Service) -> None:
    link = RedisLink(service.url)
    key = f"p-{new_result_id()}"
    try:
        with pytest.raises(BackendUnavailable, match=r"Redis SET failed: WRONGTYPE"):
            await link.pipeline([("SET", key, "v"), ("HMGET", key, "a"), ("GET", key)])
        # every reply of that write was read: the next calls on the same connection get their own
        assert await link.pipeline([("GET", key), ("STRLEN", key)]) == [b"v", 1]
        assert await link.pipeline([("DEL", key)]) == [1]
    finally:
        await link.close()
