"""Node heartbeats and the live view against a real redis-server."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator

import pytest
import redis

from reactr_wasm.backends.redis_link import RedisLink
from reactr_wasm.cluster.nodes import NodeInfo, Nodes, new_node_id
from reactr_wasm.scheduler.job import new_result_id
from tests.services import Service

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def link(service: Service) -> AsyncIterator[RedisLink]:
    made = RedisLink(service.url)
    yield made
    await made.close()


def test_a_node_id_names_the_host_and_process_and_differs_each_time() -> None:
    first, second = new_node_id(), new_node_id()
    assert first != second
    assert re.fullmatch(rf"[^\s:]+-{os.getpid()}-[0-9a-f]{{6}}", first)


async def test_nodes_see_each_other_and_what_they_serve(link: RedisLink) -> None:
    namespace = f"n-{new_result_id()}"
    a = Nodes(link, namespace, "node-a", runnables=lambda: ["echo", "upper"], address="127.0.0.1:8081")
    served = ["hash"]
    b = Nodes(link, namespace, "node-b", runnables=lambda: served, address="127.0.0.1:8082")
    await a.beat()
    await b.beat()
    assert set(b.live) == {"node-a", "node-b"}
    seen = b.live["node-a"]
    assert seen == NodeInfo("node-a", "127.0.0.1:8081", ("echo", "upper"), os.getpid(), seen.started)
    assert [b.serves(name) for name in ("echo", "upper", "hash", "resize")] == [True, True, True, False]

    served.append("resize")  # a hot reload on node-b
    await b.beat()
    await a.beat()
    assert a.serves("resize")


async def test_a_node_that_dies_stops_being_counted_within_three_beats(link: RedisLink) -> None:
    namespace = f"n-{new_result_id()}"
    dying = Nodes(link, namespace, "dying", runnables=lambda: ["only-there"], interval=0.1)
    watcher = Nodes(link, namespace, "watcher", runnables=lambda: ["echo"], interval=0.1)
    dying.start()
    watcher.start()
    await asyncio.sleep(0.25)
    assert watcher.serves("only-there")
    task = dying._task
    assert task is not None
    task.cancel()  # as a kill -9: no word to the others
    await asyncio.sleep(0.45)  # three beats and a margin
    assert not watcher.serves("only-there") and set(watcher.live) == {"watcher"}
    await watcher.close()


async def test_a_node_that_stops_withdraws_at_once(link: RedisLink, service: Service) -> None:
    namespace = f"n-{new_result_id()}"
    leaving = Nodes(link, namespace, "leaving", runnables=lambda: ["echo"], interval=10)
    staying = Nodes(link, namespace, "staying", runnables=lambda: [], interval=10)
    leaving.start()
    await asyncio.sleep(0.05)
    await leaving.close()
    await staying.beat()
    assert set(staying.live) == {"staying"} and not staying.serves("echo")
    raw = redis.Redis.from_url(service.url)
    assert not raw.exists(f"{namespace}:node:leaving")
    raw.close()


async def test_a_garbled_announcement_is_ignored(link: RedisLink, service: Service) -> None:
    namespace = f"n-{new_result_id()}"
    raw = redis.Redis.from_url(service.url)
    raw.set(f"{namespace}:node:intruder", b"\xc1junk", px=10_000)
    raw.zadd(f"{namespace}:nodes", {"intruder": 10**15})
    raw.close()
    node = Nodes(link, namespace, "node-a", runnables=lambda: ["echo"])
    await node.beat()
    assert set(node.live) == {"node-a"}


def test_nonsense_intervals_are_refused(link: RedisLink) -> None:
    with pytest.raises(ValueError, match="heartbeat interval must be above 0"):
        Nodes(link, "ns", "node-a", runnables=list, interval=0)
