"""The Redis job queue against a real redis-server: submit, consume, complete, reclaim, extend, dead letters, cancel.

Each "node" is a queue with a consumer name of its own over a store and link of
its own, as separate processes would have; a node that "dies" simply stops
calling (its entries stay pending, as after a kill -9).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis

from reactr_wasm.backends.records import ErrorKind, JobRecord, JobStatus
from reactr_wasm.cluster.messages import Delivery, QueuedJob, State
from reactr_wasm.cluster.queue import GROUP, JobQueue, Outcome
from reactr_wasm.errors import QueueFull
from reactr_wasm.scheduler.job import new_result_id
from tests.conftest import Node
from tests.services import Service

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def raw(service: Service) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(service.url)
    yield client
    client.close()


def job(runnable: str = "echo", payload: bytes = b"hi", key: str | None = None) -> tuple[JobRecord, QueuedJob]:
    result_id, now = new_result_id(), time.time()
    record = JobRecord(result_id, runnable, JobStatus.QUEUED, now, key=key, fingerprint=None if key is None else "fp")
    return record, QueuedJob(result_id, runnable, payload, None, now, {"request": "r-1"})


def done(delivery: Delivery, value: bytes) -> JobRecord:
    job = delivery.job
    now = time.time()
    return JobRecord(job.id, job.runnable, JobStatus.SUCCEEDED, job.created, now, now, value, "text/plain")


def pending(raw: redis.Redis, queue: JobQueue, runnable: str = "echo") -> int:
    summary = raw.xpending(queue.stream(runnable), GROUP)
    return int(summary["pending"])


# --- submit, consume, complete ----------------------------------------------------------


async def test_a_submitted_job_is_consumed_run_and_completed(node: Node, raw: redis.Redis) -> None:
    a, b = await node("node-a"), await node("node-b")
    record, queued = job(payload=b"\x00\xffdata")
    assert await a.submit(record, queued) is None
    assert await b.store.get(record.id) == record  # durably there before submit returned
    waiter = asyncio.create_task(b.store.wait(record.id, 5))  # another node waits for it

    [delivery] = await b.consume(["echo"], 10, 1.0)
    assert (delivery.job, delivery.attempt, delivery.state) == (queued, 1, State.RUN)
    running = await a.store.get(record.id)
    assert running is not None and running.status is JobStatus.RUNNING and running.started is not None
    assert raw.xpending_range(b.stream("echo"), GROUP, "-", "+", 10)[0]["consumer"] == b"node-b"

    finished = done(delivery, b"ok")
    assert await b.complete([Outcome(delivery, finished)]) == [finished]
    assert await asyncio.wait_for(waiter, 2) == finished
    assert await a.store.get(record.id) == finished
    assert raw.xlen(a.stream("echo")) == 0 and pending(raw, a) == 0  # acknowledged and deleted
    assert await b.consume(["echo"], 10, 0.05) == []


async def test_consume_takes_a_batch_across_runnables(node: Node) -> None:
    a = await node("node-a")
    jobs = [job("echo") for _ in range(5)] + [job("upper") for _ in range(3)]
    assert await asyncio.gather(*(a.submit(record, queued) for record, queued in jobs)) == [None] * 8
    first = await a.consume(["echo", "upper"], 3, 1.0)  # up to 3 of each
    second = await a.consume(["echo", "upper"], 3, 1.0)
    assert len(first) == 6 and len(second) == 2
    assert sorted(d.job.id for d in first + second) == sorted(queued.id for _, queued in jobs)
    assert {d.runnable for d in first + second} == {"echo", "upper"}


async def test_consume_blocks_until_a_job_comes(node: Node) -> None:
    a, b = await node("node-a"), await node("node-b")
    started = time.monotonic()
    consumer = asyncio.create_task(b.consume(["echo"], 10, 2.0))
    await asyncio.sleep(0.2)
    record, queued = job()
    await a.submit(record, queued)
    [delivery] = await asyncio.wait_for(consumer, 3)
    assert delivery.job.id == record.id and time.monotonic() - started < 1.5


async def test_consume_ahead_sends_the_next_read_with_the_begin_script(node: Node, raw: redis.Redis) -> None:
    a, b = await node("node-a"), await node("node-b")
    first, second, third = job(), job(), job()
    await b.submit(*first)
    [delivery] = await a.consume(["echo"], 2, 1.0, ahead=2)  # one taken, room for one more: a read is ahead
    assert delivery.job.id == first[0].id and delivery.state is State.RUN
    assert a.link.ahead
    await b.submit(*second)
    await b.submit(*third)
    [later] = await a.consume(["echo"], 5, 1.0, ahead=1)  # the read ahead answers, with the room it had: one
    assert later.job.id == second[0].id and later.state is State.RUN and later.attempt == 1
    assert not a.link.ahead  # ahead=1, one taken: nothing read ahead
    assert (await a.store.get(later.job.id)).status is JobStatus.RUNNING  # type: ignore[union-attr]
    pending = raw.xpending(a.stream("echo"), GROUP)
    assert pending["pending"] == 2 and pending["consumers"] == [{"name": b"node-a", "pending": 2}]
    [last] = await b.consume(["echo"], 5, 1.0)  # the third was left in the stream for anyone
    assert last.job.id == third[0].id


async def test_a_submit_that_takes_its_job_delivers_it_to_its_own_consumer(node: Node, raw: redis.Redis) -> None:
    a, b = await node("node-a"), await node("node-b")
    consumer = asyncio.create_task(b.consume(["echo"], 10, 0.5))  # another node waiting for jobs meanwhile
    await asyncio.sleep(0.1)
    record, queued = job()
    taken = await a.submit(record, queued, take=True)
    assert isinstance(taken, Delivery)
    assert (taken.job, taken.attempt, taken.state, taken.runnable) == (queued, 1, State.RUN, "echo")
    assert await consumer == []  # it never saw the job
    [held] = raw.xpending_range(a.stream("echo"), GROUP, "-", "+", 10)
    assert (held["consumer"], held["message_id"].decode(), held["times_delivered"]) == (b"node-a", taken.entry, 1)
    running = await b.store.get(record.id)
    assert running is not None and running.status is JobStatus.RUNNING  # as after begin.lua

    finished = done(taken, b"ok")
    assert await a.complete([Outcome(taken, finished)]) == [finished]
    assert raw.xlen(a.stream("echo")) == 0 and pending(raw, a) == 0


async def test_a_submit_that_takes_gets_the_oldest_waiting_job_first(node: Node, raw: redis.Redis) -> None:
    a = await node("node-a")
    first, second = job(payload=b"first"), job(payload=b"second")
    assert await a.submit(*first) is None  # queued for any node; nobody consumed it yet
    taken = await a.submit(*second, take=True)
    assert isinstance(taken, Delivery) and taken.job == first[1] and taken.state is State.RUN
    assert (await a.store.get(second[0].id)) == second[0]  # still queued, for whichever node reads next
    [left] = await a.consume(["echo"], 10, 0.5)
    assert left.job == second[1] and pending(raw, a) == 2


async def test_a_taking_submit_still_honours_keys_and_bounds(node: Node, raw: redis.Redis) -> None:
    a = await node("node-a")
    record, queued = job(key="order-7")
    assert isinstance(await a.submit(record, queued, take=True), Delivery)
    again = job(key="order-7")
    assert await a.submit(*again, take=True) == record  # the key's job: nothing queued, nothing taken
    with pytest.raises(QueueFull):
        await a.submit(*job(), max_queue=1, take=True)
    assert raw.xlen(a.stream("echo")) == 1 and pending(raw, a) == 1


async def test_a_full_stream_refuses_a_submit(node: Node, raw: redis.Redis) -> None:
    a = await node("node-a")
    for _ in range(2):
        await a.submit(*job(), max_queue=2)
    record, queued = job()
    with pytest.raises(QueueFull, match="runnable 'echo': 2 jobs queued already"):
        await a.submit(record, queued, max_queue=2)
    assert await a.store.get(record.id) is None and raw.xlen(a.stream("echo")) == 2


# --- idempotency -----------------------------------------------------------------------


async def test_a_key_submits_one_job_among_concurrent_submits(node: Node, raw: redis.Redis) -> None:
    a, b = await node("node-a"), await node("node-b")
    jobs = [job(key="order-1") for _ in range(20)]  # 4 sent at once, the others in batches behind them
    replies = await asyncio.gather(*(a.submit(*submitted) for submitted in jobs))
    [winner] = [record for (record, _), reply in zip(jobs, replies, strict=True) if reply is None]
    assert [reply for reply in replies if reply is not None] == [winner] * 19
    assert await b.submit(*job(key="order-1")) == winner  # another node, later
    assert raw.xlen(a.stream("echo")) == 1
    assert [await a.store.get(record.id) is None for record, _ in jobs] == [record != winner for record, _ in jobs]


async def test_a_retried_submit_of_the_same_id_queues_nothing_more(node: Node, raw: redis.Redis) -> None:
    a = await node("node-a")
    record, queued = job()
    await a.submit(record, queued)
    assert await a.submit(record, queued) is None  # e.g. a retry after a lost answer
    assert raw.xlen(a.stream("echo")) == 1


# --- at-least-once: reclaim, extend, dead letters -------------------------------------------


async def test_a_dead_consumers_job_is_reclaimed_after_the_visibility_timeout(node: Node, raw: redis.Redis) -> None:
    a, b = await node("node-a", visibility_timeout=0.3), await node("node-b", visibility_timeout=0.3)
    record, queued = job()
    await a.submit(record, queued)
    [held] = await a.consume(["echo"], 1, 1.0)  # then node-a dies
    assert await b.reclaim(["echo"], 10) == []  # not idle long enough yet
    await asyncio.sleep(0.4)
    [again] = await b.reclaim(["echo"], 10)
    assert (again.job, again.attempt, again.state, again.entry) == (queued, 2, State.RUN, held.entry)
    assert raw.xpending_range(b.stream("echo"), GROUP, "-", "+", 10)[0]["consumer"] == b"node-b"

    second = done(again, b"second")
    assert await b.complete([Outcome(again, second)]) == [second]
    # node-a was only slow: its late outcome does not replace the stored one
    assert await a.complete([Outcome(held, done(held, b"first"))]) == [second]
    assert await a.store.get(record.id) == second
    assert await a.extend([held]) == [held]  # acknowledged: no longer held by anyone


async def test_extend_keeps_a_slow_job_from_being_reclaimed(node: Node) -> None:
    a, b = await node("node-a", visibility_timeout=0.3), await node("node-b", visibility_timeout=0.3)
    await a.submit(*job())
    [held] = await a.consume(["echo"], 1, 1.0)
    for _ in range(6):  # 0.6 s: twice the visibility timeout
        await asyncio.sleep(0.1)
        assert await a.extend([held]) == []
        assert await b.reclaim(["echo"], 10) == []
    await asyncio.sleep(0.4)  # node-a stops extending
    [again] = await b.reclaim(["echo"], 10)
    assert again.attempt == 2
    assert await a.extend([held]) == [held]  # node-a learns it lost the job


async def test_a_job_delivered_too_often_goes_to_the_dead_letters(node: Node, raw: redis.Redis) -> None:
    nodes = [await node(f"node-{i}", visibility_timeout=0.1, max_deliveries=2) for i in range(3)]
    record, queued = job()
    await nodes[0].submit(record, queued)
    waiter = asyncio.create_task(nodes[1].store.wait(record.id, 5))
    [first] = await nodes[0].consume(["echo"], 1, 1.0)
    assert first.attempt == 1
    await asyncio.sleep(0.15)
    [second] = await nodes[1].reclaim(["echo"], 1)
    assert (second.attempt, second.state) == (2, State.RUN)
    await asyncio.sleep(0.15)
    [third] = await nodes[2].reclaim(["echo"], 1)
    assert (third.attempt, third.state) == (3, State.DEAD)

    [failed] = await nodes[2].complete([Outcome(third, nodes[2].gave_up(third))])
    assert failed.status is JobStatus.FAILED and failed.error_kind is ErrorKind.EXECUTION
    assert failed.error_message == "gave up after 2 deliveries (max_deliveries = 2)"
    assert await asyncio.wait_for(waiter, 2) == failed
    assert raw.xlen(nodes[0].stream("echo")) == 0 and pending(raw, nodes[0]) == 0
    [(_, dead)] = raw.xrange(f"{nodes[0].namespace}:dead:echo")
    assert QueuedJob.from_bytes(dead[b"j"]) == queued
    assert (dead[b"id"], dead[b"deliveries"], dead[b"node"]) == (record.id.encode(), b"2", b"node-2")


async def test_a_job_whose_outcome_was_stored_is_not_run_again(node: Node) -> None:
    """Its node stored the outcome, then died before the callback was sent and the entry acknowledged."""
    a, b = await node("node-a", visibility_timeout=0.2), await node("node-b", visibility_timeout=0.2)
    record, queued = job()
    await a.submit(record, queued)
    [held] = await a.consume(["echo"], 1, 1.0)
    stored = done(held, b"ok")
    await a.complete([Outcome(held, stored, ack=False)])  # callback still to send
    await asyncio.sleep(0.3)
    [again] = await b.reclaim(["echo"], 10)
    assert (again.state, again.record, again.attempt) == (State.DONE, stored, 2)
    await b.ack([again])
    assert await b.reclaim(["echo"], 10) == []


async def test_consumers_of_nodes_gone_for_good_are_pruned(node: Node, raw: redis.Redis) -> None:
    a, gone, holding = await node("node-a"), await node("gone"), await node("holding")
    for _ in range(2):
        await a.submit(*job())
    assert await holding.consume(["echo"], 1, 1.0)
    [finished] = await gone.consume(["echo"], 1, 1.0)
    await gone.complete([Outcome(finished, done(finished, b"ok"))])  # it holds nothing now
    await asyncio.sleep(0.1)
    assert await a.prune(["echo", "no-such-runnable"], 0.05) == ["gone"]  # not itself, not one holding a job
    names = {info["name"] for info in raw.xinfo_consumers(a.stream("echo"), GROUP)}
    assert b"holding" in names and b"gone" not in names
    assert await a.prune(["echo"], 3600) == []


# --- cancel ----------------------------------------------------------------------------------


async def test_a_job_cancelled_while_queued_is_not_run(node: Node, raw: redis.Redis) -> None:
    a, b = await node("node-a"), await node("node-b")
    record, queued = job()
    await a.submit(record, queued)
    waiter = asyncio.create_task(b.store.wait(record.id, 5))
    await asyncio.sleep(0.05)
    assert await a.store.delete(record.id) == record  # DELETE /then: forget, then cancel
    await a.cancel(record.id)
    [delivery] = await b.consume(["echo"], 10, 1.0)
    assert delivery.state is State.CANCELLED
    cancelled = record._replace(status=JobStatus.CANCELLED, finished=time.time(), error_kind=ErrorKind.CANCELLED,
                                error_message="job cancelled", error_text="job cancelled")  # fmt: skip
    assert await b.complete([Outcome(delivery, cancelled)]) == [cancelled]
    assert await asyncio.wait_for(waiter, 2) == cancelled  # not kept, but the waiter hears of it
    assert await a.store.get(record.id) is None
    assert raw.xlen(a.stream("echo")) == 0 and not raw.exists(f"{a.namespace}:x:{record.id}")


async def test_cancel_reaches_every_node_listening(node: Node) -> None:
    a, b = await node("node-a"), await node("node-b")
    heard: list[bytes] = []
    b.store.events.on(b.cancel_channel, heard.append)
    assert await b.store.events.ready(5)
    await a.cancel("some-result-id")
    for _ in range(50):
        if heard:
            break
        await asyncio.sleep(0.02)
    assert heard == [b"some-result-id"]


# --- hostile input ----------------------------------------------------------------------------


async def test_an_entry_that_is_not_a_job_is_dropped_not_choked_on(node: Node, raw: redis.Redis) -> None:
    a = await node("node-a")
    await a.submit(*job())  # makes the stream and its group
    raw.xadd(a.stream("echo"), {b"j": b"\xc1 not msgpack"})
    raw.xadd(a.stream("echo"), {b"other": b"x"})
    deliveries = await a.consume(["echo"], 10, 1.0)
    assert [d.state for d in deliveries] == [State.RUN]
    assert raw.xlen(a.stream("echo")) == 1 and pending(raw, a) == 1
