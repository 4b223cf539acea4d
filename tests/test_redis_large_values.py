"""Values over the inline bound in Redis mode: staged beside the scripts, kept in keys of their own.

Redis copies and hashes every byte that crosses into Lua, so a payload or a record
over ``INLINE_MAX`` never goes through a script (``RedisLink.run(staged=...)``).
These check that such values land where the layout says, that every node reads them
back whole on every path (consumed, taken at submit, reclaimed, dead-lettered,
replayed by key, read by another node), and that every path dropping them leaves
nothing behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis

from reactr_wasm.backends.records import JobRecord, JobStatus
from reactr_wasm.backends.redis_link import INLINE_MAX, BackendUnavailable
from reactr_wasm.cluster.messages import Delivery, QueuedJob, State
from reactr_wasm.cluster.queue import JobQueue, Outcome
from reactr_wasm.scheduler.job import new_result_id
from tests.conftest import Node
from tests.services import Service

pytestmark = pytest.mark.timeout(30)

SIZE = 8 * INLINE_MAX + 3


def large(tag: bytes) -> bytes:
    """SIZE bytes, different for each tag, binary (not valid UTF-8)."""
    return ((tag + b"\xff\x00" + bytes(range(256))) * (SIZE // (len(tag) + 258) + 1))[:SIZE]


@pytest.fixture
def raw(service: Service) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(service.url)
    yield client
    client.close()


def job(payload: bytes, key: str | None = None) -> tuple[JobRecord, QueuedJob]:
    result_id, now = new_result_id(), time.time()
    record = JobRecord(result_id, "echo", JobStatus.QUEUED, now, key=key, fingerprint=None if key is None else "fp")
    return record, QueuedJob(result_id, "echo", payload, None, now, {"request": "r-1"})


def done(of: Delivery | JobRecord, value: bytes) -> JobRecord:
    """The succeeded record of a delivered job or of a record, with ``value``."""
    job_id, created = (of.job.id, of.job.created) if isinstance(of, Delivery) else (of.id, of.created)
    now = time.time()
    return JobRecord(job_id, "echo", JobStatus.SUCCEEDED, created, now, now, value, "application/octet-stream")


def keys(raw: redis.Redis, queue: JobQueue, kind: str) -> list[bytes]:
    """The keys of one kind of the layout: ``in`` (staged), ``p`` (payloads), ``d`` (records' values)."""
    return sorted(raw.scan_iter(f"{queue.namespace}:{kind}:*"))


# --- payloads ---------------------------------------------------------------------------


async def test_a_large_payload_is_kept_apart_and_delivered_whole(node: Node, raw: redis.Redis) -> None:
    a, b, c = await node("node-a"), await node("node-b"), await node("node-c")
    payload = large(b"payload")
    record, queued = job(payload)
    assert await a.submit(record, queued) is None

    [(entry, fields)] = raw.xrange(a.stream("echo"))
    assert fields[b"p"] == b"1" and QueuedJob.from_bytes(fields[b"j"]) == queued._replace(payload=b"")
    assert raw.get(a.payload_key("echo", entry.decode())) == payload
    assert keys(raw, a, "in") == []  # the staged value was moved, not copied

    [delivery] = await b.consume(["echo"], 10, 1.0)
    assert (delivery.job, delivery.state) == (queued, State.RUN)
    outcome = done(delivery, large(b"outcome"))
    assert await b.complete([Outcome(delivery, outcome)]) == [outcome]
    assert raw.hget(b.store.record_key(record.id), "d") == b""  # the value is apart ...
    assert raw.strlen(b.store.data_key(record.id)) > SIZE
    assert await c.store.get(record.id) == outcome  # ... and read back whole by a node that did not store it
    assert raw.xlen(a.stream("echo")) == 0 and keys(raw, a, "p") == []  # its payload went with its entry

    assert await c.store.delete(record.id) == outcome
    assert keys(raw, a, "d") == [] and keys(raw, a, "in") == []


async def test_large_jobs_taken_at_submit_and_reclaimed_come_whole(node: Node, raw: redis.Redis) -> None:
    a, b = await node("node-a", visibility_timeout=0.2), await node("node-b", visibility_timeout=0.2)
    first, second = job(large(b"first")), job(large(b"second"))
    assert await a.submit(*first) is None
    older = await a.submit(*second, take=True)  # an older entry waits: it is the one taken
    assert isinstance(older, Delivery) and older.job == first[1] and older.state is State.RUN
    [left] = await b.consume(["echo"], 10, 1.0)
    assert left.job == second[1]

    third = job(large(b"third"))
    taken = await a.submit(*third, take=True)  # nothing waits: its own job, as it gave it
    assert isinstance(taken, Delivery) and taken.job == third[1]
    await asyncio.sleep(0.3)  # node-a "dies" holding the three
    again = await b.reclaim(["echo"], 10)
    assert sorted(d.job.id for d in again) == sorted(r.id for r, _ in (first, second, third))
    assert {d.job.id: d.job.payload for d in again} == {q.id: q.payload for _, q in (first, second, third)}
    assert {d.attempt for d in again} == {2}  # the one node-b held and left idle too

    await b.complete([Outcome(d, done(d, b"small")) for d in again])
    assert raw.xlen(a.stream("echo")) == 0 and keys(raw, a, "p") == [] and keys(raw, a, "d") == []


async def test_a_large_job_given_up_keeps_its_payload_in_the_dead_letters(node: Node, raw: redis.Redis) -> None:
    a = await node("node-a", visibility_timeout=0.1, max_deliveries=1)
    b = await node("node-b", visibility_timeout=0.1, max_deliveries=1)
    record, queued = job(large(b"doomed"))
    await a.submit(record, queued)
    await a.consume(["echo"], 1, 1.0)
    await asyncio.sleep(0.15)
    [dead] = await b.reclaim(["echo"], 1)
    assert dead.state is State.DEAD and dead.job == queued
    [failed] = await b.complete([Outcome(dead, b.gave_up(dead))])
    assert failed.status is JobStatus.FAILED

    [(_, letter)] = raw.xrange(f"{a.namespace}:dead:echo")
    assert QueuedJob.from_bytes(letter[b"j"]) == queued._replace(payload=b"") and letter[b"p"] == queued.payload
    assert keys(raw, a, "p") == []


async def test_a_job_whose_payload_went_missing_is_failed_and_dead_lettered(node: Node, raw: redis.Redis) -> None:
    a, b = await node("node-a"), await node("node-b")
    record, queued = job(large(b"lost"))
    await a.submit(record, queued)
    [(entry, _)] = raw.xrange(a.stream("echo"))
    raw.delete(a.payload_key("echo", entry.decode()))  # a Redis that evicts keys, or an operator

    [delivery] = await b.consume(["echo"], 10, 1.0)
    assert delivery.state is State.DEAD and delivery.job.payload == b""  # not run on nothing
    record_failed = b.gave_up(delivery)
    assert "its payload is missing from Redis" in record_failed.error_message
    await b.complete([Outcome(delivery, record_failed)])
    kept = await a.store.get(record.id)
    assert kept is not None and kept.status is JobStatus.FAILED and kept.error_message == record_failed.error_message
    [(_, letter)] = raw.xrange(f"{a.namespace}:dead:echo")
    assert letter[b"reason"] == record_failed.error_message.encode()
    assert raw.xlen(a.stream("echo")) == 0


async def test_a_large_submit_refused_leaves_nothing_staged(node: Node, raw: redis.Redis) -> None:
    a = await node("node-a")
    first = job(large(b"one"), key="order-1")
    await a.submit(*first)
    replay = job(large(b"two"), key="order-1")
    assert await a.submit(*replay) == first[0]  # the key's job: nothing queued
    plain = job(large(b"three"))
    assert await a.submit(*plain) is None
    assert await a.submit(*plain) is None  # the same id again (a retried call): nothing more queued
    assert raw.xlen(a.stream("echo")) == 2 and len(keys(raw, a, "p")) == 2 and keys(raw, a, "in") == []


# --- records --------------------------------------------------------------------------


async def test_a_large_record_is_read_whole_on_every_path(node: Node, raw: redis.Redis) -> None:
    a, b = await node("node-a"), await node("node-b")
    queued_record = job(b"small", key="order-2")[0]
    assert await a.store.add(queued_record) is None
    first = done(queued_record, large(b"first outcome"))
    assert await a.store.finish(first)
    expected = first._replace(key="order-2", fingerprint="fp")
    assert await b.store.get(queued_record.id) == expected  # read from Redis: b did not store it

    other = job(b"small", key="order-2")[0]
    assert await b.store.add(other) == expected  # the key's record, whole, from the script's reply
    assert await b.store.finish(done(queued_record, large(b"second run")))  # a second run after a reclaim ...
    assert await b.store.get(queued_record.id) == expected  # ... and the first outcome stands

    finished_whole = done(other, large(b"added finished"))
    assert await a.store.add(finished_whole) is None  # a finished record added at once (a then=true job)
    assert await b.store.get(other.id) == finished_whole
    assert keys(raw, a, "in") == [] and len(keys(raw, a, "d")) == 2


async def test_dropped_large_records_leave_no_value_behind(node: Node, raw: redis.Redis) -> None:
    now = [time.time()]
    a = await node("node-a", max_results=2, clock=lambda: now[0])
    records = [done(job(b"x")[0], large(str(i).encode())) for i in range(3)]
    for record in records:
        await a.store.add(record)
    assert await a.store.get(records[0].id) is None  # evicted by the count bound, with its value
    assert len(keys(raw, a, "d")) == 2
    now[0] += 61  # past the TTL
    assert await a.store.sweep() == 2
    assert keys(raw, a, "d") == [] and await a.store.size() == (0, 0)


async def test_a_large_outcome_of_a_record_no_longer_kept_reaches_its_waiter(node: Node, raw: redis.Redis) -> None:
    a, b = await node("node-a"), await node("node-b")
    record = job(b"small")[0]
    await a.store.add(record)
    waiter = asyncio.create_task(b.store.wait(record.id, 5))
    assert await b.store.events.ready(5)
    with pytest.raises(TimeoutError):  # it read the record (queued) and waits: it would have returned None
        await asyncio.wait_for(asyncio.shield(waiter), 0.5)
    await b.store.delete(record.id)
    outcome = done(record, large(b"unkept"))
    assert not await a.store.finish(outcome)  # not kept: the record itself is published
    assert await asyncio.wait_for(waiter, 2) == outcome
    assert keys(raw, a, "in") == [] and keys(raw, a, "d") == []


# --- the link --------------------------------------------------------------------------


async def test_a_script_missing_its_staged_value_writes_nothing(node: Node, raw: redis.Redis) -> None:
    a = await node("node-a")
    record = done(job(b"x")[0], b"v")
    args = (a.namespace, 100, 1 << 20, record.id, b"", f"{a.namespace}:in:never-set", 10, "", "", time.time())
    with pytest.raises(BackendUnavailable, match=r"Redis script finish failed: .*staged value .*:never-set is missing"):
        await a.link.run("finish", *args)
    assert raw.exists(a.store.record_key(record.id)) == 0 and await a.store.size() == (0, 0)
    assert await a.store.add(record) is None  # the link is still in step


async def test_a_refused_staged_value_fails_the_call_and_leaves_the_link_in_step(node: Node, raw: redis.Redis) -> None:
    a = await node("node-a")
    await a.store.get("warm-up")  # a connection kept, before Redis refuses writes
    record = done(job(b"x")[0], large(b"refused"))
    raw.config_set("maxmemory", 1)  # noeviction (the default): every write refused, out of memory
    try:
        with pytest.raises(BackendUnavailable, match=r"used memory > .maxmemory."):
            await a.store.add(record)
    finally:
        raw.config_set("maxmemory", 0)
    assert raw.exists(a.store.record_key(record.id)) == 0 and keys(raw, a, "in") == []
    assert await a.store.add(record) is None and await a.store.get(record.id) == record


async def test_a_staged_value_no_script_takes_expires_on_its_own(node: Node, raw: redis.Redis) -> None:
    a = await node("node-a")
    name = f"{a.namespace}:in:left"
    assert await a.link.run("size", a.namespace, staged=[(name, large(b"left"))]) == [0, 0]  # size takes nothing
    assert 0 < raw.pttl(name) <= 60_000


async def test_a_large_value_reaches_a_redis_that_lost_its_scripts(node: Node, raw: redis.Redis) -> None:
    """NOSCRIPT after the staged SETs (a restarted or flushed Redis): the script is sent again, the values kept."""
    a = await node("node-a")
    record = done(job(b"x")[0], large(b"after a flush"))
    raw.script_flush()
    assert await a.store.add(record) is None
    assert await a.store.get(record.id) == record and keys(raw, a, "in") == []
