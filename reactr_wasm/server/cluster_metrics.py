"""Redis mode's metrics: a node's reclaims and dead letters, and the queue's streams.

| metric | type | labels |
|---|---|---|
| ``reactr_reclaims_total`` | counter | |
| ``reactr_dead_letters_total`` | counter | |
| ``reactr_cluster_jobs_held`` | gauge | |
| ``reactr_stream_lag`` | gauge | runnable |
| ``reactr_stream_pending`` | gauge | runnable |

The streams are the cluster's, so every node reports the same lag: graph it
with ``max``, not ``sum``. Registered by ``Metrics.add_cluster``; this module
imports redis, so the server imports it only then.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from reactr_wasm.backends.redis_link import BackendUnavailable
from reactr_wasm.cluster.queue import GROUP
from reactr_wasm.cluster.worker import ClusterWorker


def _fields(reply: Any) -> dict[str, Any]:
    """A Redis XINFO entry as a dict with text keys, whether it came as RESP3 (a map) or RESP2 (a flat list)."""
    pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2], strict=True)
    return {(key.decode() if isinstance(key, bytes) else key): value for key, value in pairs}


class ClusterCollector:
    """Redis mode: a node's reclaims and dead letters, and its runnables' streams (shared by every node)."""

    def __init__(self, worker: ClusterWorker) -> None:
        self._worker = worker
        self._streams: dict[str, tuple[int, int]] | None = None  # runnable -> (lag, pending), read by refresh()

    async def refresh(self) -> None:
        self._streams = None
        queue, streams = self._worker.queue, {}
        for name in self._worker.reactr.names():
            stream = queue.stream(name)
            length = await queue.link.call("XLEN", stream)
            try:
                groups = [_fields(group) for group in await queue.link.call("XINFO", "GROUPS", stream)]
            except BackendUnavailable as error:
                if "no such key" not in str(error):
                    raise
                groups = []  # no job was ever queued for it
            pending = sum(int(group["pending"]) for group in groups if group["name"] in (GROUP, GROUP.encode()))
            # An entry is deleted once acknowledged, so the stream holds exactly the undelivered and the pending.
            streams[name] = (max(0, int(length) - pending), pending)
        self._streams = streams

    def collect(self) -> Iterator[Metric]:
        worker = self._worker
        yield CounterMetricFamily("reactr_reclaims", "Jobs this node reclaimed from a node that died or stalled",
                                  value=worker.reclaimed)  # fmt: skip
        yield CounterMetricFamily("reactr_dead_letters", "Jobs this node gave up after max_deliveries",
                                  value=worker.gave_up)  # fmt: skip
        yield GaugeMetricFamily("reactr_cluster_jobs_held", "Jobs this node holds: running, or not acknowledged yet",
                                value=worker.held)  # fmt: skip
        if self._streams is None:
            return
        lag = GaugeMetricFamily("reactr_stream_lag", "Jobs queued in Redis that no node has taken yet "
                                "(the same on every node)", labels=["runnable"])  # fmt: skip
        pending = GaugeMetricFamily("reactr_stream_pending", "Jobs taken by some node and not acknowledged yet "
                                    "(the same on every node)", labels=["runnable"])  # fmt: skip
        for name, (waiting, taken) in sorted(self._streams.items()):
            lag.add_metric([name], waiting)
            pending.add_metric([name], taken)
        yield from (lag, pending)


__all__ = ["ClusterCollector"]
