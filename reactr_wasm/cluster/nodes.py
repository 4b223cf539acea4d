"""Who is alive and what it serves: node ids, heartbeats, and the view every node keeps of the others.

Each node announces itself every ``interval`` seconds (``beat.lua``): a key
``{ns}:node:{id}`` holding its ``NodeInfo`` (msgpack), expiring after three
intervals, and an entry in zset ``{ns}:nodes`` scored by that expiry on Redis's
clock (so the nodes' clocks do not matter). The same script returns every live
node, so each beat also refreshes this node's view: a node that dies stops being
counted within three intervals, and a submit for a runnable no live node serves
is refused (404) from the view, without a round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from reactr_wasm.backends.redis_link import RedisLink

log = logging.getLogger(__name__)

LAPSE_BEATS = 3  # an announcement lapses after this many intervals without a beat


def new_node_id() -> str:
    """``host-pid-random``: stable for the process, unique among the processes sharing one Redis."""
    host = socket.gethostname().split(".")[0] or "node"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class NodeInfo(NamedTuple):
    """What a node announces: its id, where it listens, its runnables, its pid, when it started."""

    id: str
    address: str
    runnables: tuple[str, ...]
    pid: int
    started: float

    def to_bytes(self) -> bytes:
        import msgpack  # type: ignore[import-untyped]

        return msgpack.packb((self.id, self.address, list(self.runnables), self.pid, self.started))  # type: ignore[no-any-return]

    @classmethod
    def from_bytes(cls, data: bytes) -> NodeInfo:
        """Raises ValueError for anything ``to_bytes`` did not make."""
        import msgpack

        try:
            node_id, address, runnables, pid, started = msgpack.unpackb(data)
            return cls(str(node_id), str(address), tuple(map(str, runnables)), int(pid), float(started))
        except (ValueError, TypeError, msgpack.UnpackException) as error:
            raise ValueError(f"not a node announcement: {error}") from None


class Nodes:
    """This node's heartbeat, and its view of every live node (its own included once it beat).

    ``runnables()`` is read at each beat (a hot reload changes it). Run ``run()``
    as a task; ``beat()`` once first to have a view at start. ``close()`` stops
    the beat and withdraws the announcement.
    """

    def __init__(
        self,
        link: RedisLink,
        namespace: str,
        node_id: str,
        *,
        runnables: Callable[[], Iterable[str]],
        address: str = "",
        interval: float = 1.0,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"heartbeat interval must be above 0, got {interval}")
        self.link, self.namespace, self.id = link, namespace, node_id
        self.interval, self.address = interval, address
        self._runnables = runnables
        self._started = time.time()
        self._live: dict[str, NodeInfo] = {}
        self._served: frozenset[str] = frozenset()
        self._task: asyncio.Task[None] | None = None
        self.reachable = False  # whether the last beat reached Redis (``/health`` shows it)

    @property
    def live(self) -> dict[str, NodeInfo]:
        """The live nodes by id, as of the last beat."""
        return self._live

    def serves(self, runnable: str) -> bool:
        """Whether some live node (as of the last beat) serves ``runnable``."""
        return runnable in self._served

    async def beat(self) -> None:
        """Announce this node and refresh the view. Raises BackendUnavailable."""
        info = NodeInfo(self.id, self.address, tuple(sorted(self._runnables())), os.getpid(), self._started)
        lapse = int(self.interval * LAPSE_BEATS * 1000)
        try:
            announcements = await self.link.run("beat", self.namespace, self.id, info.to_bytes(), lapse)
        except BaseException:
            self.reachable = False
            raise
        live: dict[str, NodeInfo] = {}
        for data in announcements:
            try:
                node = NodeInfo.from_bytes(data)
            except ValueError as error:
                log.warning("ignoring a node announcement: %s", error)
                continue
            live[node.id] = node
        self._live = live
        self._served = frozenset(name for node in live.values() for name in node.runnables)
        self.reachable = True

    def start(self) -> None:
        """Beat every ``interval`` seconds from now on (a task on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")

    async def close(self) -> None:
        """Stop beating and withdraw: other nodes stop counting this one at once."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        with contextlib.suppress(Exception):
            await self.link.run("leave", self.namespace, self.id)

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep the last view; submits fail anyway while Redis is away
                log.warning("heartbeat of node %s failed: %s", self.id, error)
            await asyncio.sleep(self.interval)


__all__ = ["NodeInfo", "Nodes", "new_node_id"]
