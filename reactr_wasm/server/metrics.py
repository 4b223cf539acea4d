"""``GET /metrics``: the server's Prometheus metrics, read from plain counters when scraped.

The job path only bumps ``int``s and bucket arrays (``scheduler/stats.py``, the
instance pools, the callbacks, the cluster worker); the collectors here turn
them into metric families when Prometheus asks, so a job pays ~0.3 µs for all
of it rather than a prometheus-client ``Counter``/``Histogram`` call each.

| metric | type | labels |
|---|---|---|
| ``reactr_jobs_total`` | counter | runnable, outcome (``stats.OUTCOMES``) |
| ``reactr_runs_total`` | counter | runnable, where (``worker``, ``inline``) |
| ``reactr_job_duration_seconds`` | histogram | runnable |
| ``reactr_queue_wait_seconds`` | histogram | runnable |
| ``reactr_queue_depth`` | gauge | runnable |
| ``reactr_worker_threads`` | gauge | runnable |
| ``reactr_instances`` | gauge | runnable, state (``idle``, ``busy``) |
| ``reactr_instance_recycles_total`` | counter | runnable, reason |
| ``reactr_jobs_in_flight`` | gauge | |
| ``reactr_callback_deliveries_total`` | counter | outcome (``callbacks.DELIVERY_OUTCOMES``) |
| ``reactr_callbacks_pending`` | gauge | |
| ``reactr_result_store_items``, ``reactr_result_store_bytes`` | gauge | |
| ``reactr_build_info`` | gauge (1) | version |

Redis mode adds ``cluster_metrics.py``'s (``Metrics.add_cluster``). The registry
is the app's own, not prometheus-client's global one, so several apps in one
process (tests, embedding) never clash; it also holds prometheus-client's
process, platform and GC collectors (``process_*``, ``python_*``).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from reactr_wasm.errors import RunnableNotFound
from reactr_wasm.scheduler.stats import OUTCOMES, WHERE, Histogram
from reactr_wasm.scheduler.targets import WasmTarget
from reactr_wasm.server.callbacks import DELIVERY_OUTCOMES

if TYPE_CHECKING:
    from reactr_wasm.cluster.worker import ClusterWorker
    from reactr_wasm.server.app import Server

log = logging.getLogger(__name__)

REFRESH_TIMEOUT = 2.0  # seconds a scrape waits for what it must ask a backend (store size, stream lag)
RECYCLE_REASONS = ("trap", "timeout", "cancelled", "over_budget")  # always exported, 0 until one happens


def package_version() -> str:
    try:
        return importlib.metadata.version("reactr-wasm")
    except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


def _bound(bound: float) -> str:
    """A bucket's ``le`` as Prometheus writes it: ``+Inf``, ``0.025``, ``1e-05``."""
    return "+Inf" if bound == float("inf") else repr(bound)


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [(_bound(bound), count) for bound, count in histogram.cumulative()]


class ServerCollector:
    """The metrics of one server: its scheduler's runnables, jobs in flight, callbacks, result store."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._store_size: tuple[int, int] | None = None  # read by refresh(): the store may be remote

    async def refresh(self) -> None:
        self._store_size = None  # left out of the scrape if the store cannot say
        self._store_size = await self._server.store.size()

    def collect(self) -> Iterator[Metric]:
        yield from self._jobs()
        yield from self._workers()
        yield from self._serving()

    def _jobs(self) -> Iterator[Metric]:
        jobs = CounterMetricFamily("reactr_jobs", "Jobs finished, by outcome (rejected: refused with a full queue)",
                                   labels=["runnable", "outcome"])  # fmt: skip
        runs = CounterMetricFamily("reactr_runs", "Job runs that ended their job: on a worker thread or inline",
                                   labels=["runnable", "where"])  # fmt: skip
        duration = HistogramMetricFamily("reactr_job_duration_seconds", "How long each run took",
                                         labels=["runnable"])  # fmt: skip
        wait = HistogramMetricFamily("reactr_queue_wait_seconds",
                                     "How long a job queued for a worker thread waited for it (inline runs never wait)",
                                     labels=["runnable"])  # fmt: skip
        for name, stats in sorted(self._server.reactr.job_stats.items()):
            for outcome, count in zip(OUTCOMES, list(stats.outcomes), strict=True):
                jobs.add_metric([name, outcome], count)
            for where, count in zip(WHERE, list(stats.runs), strict=True):
                runs.add_metric([name, where], count)
            duration.add_metric([name], _buckets(stats.duration), stats.duration.sum)
            wait.add_metric([name], _buckets(stats.wait), stats.wait.sum)
        yield from (jobs, runs, duration, wait)

    def _workers(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("reactr_queue_depth", "Jobs queued for a worker thread", labels=["runnable"])
        threads = GaugeMetricFamily("reactr_worker_threads", "Worker threads running", labels=["runnable"])
        instances = GaugeMetricFamily("reactr_instances", "Wasm instances of the runnable's pool, idle or running",
                                      labels=["runnable", "state"])  # fmt: skip
        recycles = CounterMetricFamily(
            "reactr_instance_recycles", "Instances thrown away because their job trapped or was stopped, by why "
            "(since the module was loaded)", labels=["runnable", "reason"],
        )  # fmt: skip
        reactr = self._server.reactr
        for name in reactr.names():
            try:
                worker = reactr.worker(name)
            except RunnableNotFound:  # removed meanwhile (hot reload)
                continue
            depth.add_metric([name], worker.queued)
            threads.add_metric([name], worker.threads)
            if isinstance(worker.target, WasmTarget):
                pool = worker.target.runnable.pool
                instances.add_metric([name, "idle"], pool.idle)
                instances.add_metric([name, "busy"], pool.busy)
                recycled = dict.fromkeys(RECYCLE_REASONS, 0) | pool.recycled
                for reason, count in recycled.items():
                    recycles.add_metric([name, reason], count)
        yield from (depth, threads, instances, recycles)

    def _serving(self) -> Iterator[Metric]:
        server = self._server
        yield GaugeMetricFamily("reactr_jobs_in_flight", "Jobs this server started and has not stored the end of",
                                value=len(server.jobs))  # fmt: skip
        deliveries = CounterMetricFamily("reactr_callback_deliveries", "Callback deliveries finished, by outcome",
                                         labels=["outcome"])  # fmt: skip
        for outcome in DELIVERY_OUTCOMES:
            deliveries.add_metric([outcome], server.callbacks.outcomes[outcome])
        yield deliveries
        yield GaugeMetricFamily("reactr_callbacks_pending", "Callback deliveries under way (retries included)",
                                value=server.callbacks.pending)  # fmt: skip
        if self._store_size is not None:
            items, size = self._store_size
            yield GaugeMetricFamily("reactr_result_store_items", "Job records in the result store", value=items)
            yield GaugeMetricFamily("reactr_result_store_bytes", "Bytes of job records in the result store", value=size)
        info = InfoMetricFamily("reactr_build", "The reactr-wasm version serving", labels=["version"])
        info.add_metric([package_version()], {})
        yield info


Refresh = Callable[[], Awaitable[None]]


class Metrics:
    """The app's metrics registry and the ``GET /metrics`` handler (``route``)."""

    def __init__(self, server: Server) -> None:
        self.registry = CollectorRegistry()
        self._refreshers: list[Refresh] = []
        collector = ServerCollector(server)
        self.add(collector, collector.refresh)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def add(self, collector: Any, refresh: Refresh | None = None) -> None:
        """Export ``collector``'s metrics; ``refresh()`` runs before each scrape (it may ask a backend)."""
        self.registry.register(collector)
        if refresh is not None:
            self._refreshers.append(refresh)

    def add_cluster(self, worker: ClusterWorker) -> None:
        """Export Redis mode's metrics of ``worker``: reclaims, dead letters, jobs held, stream lag."""
        from reactr_wasm.server.cluster_metrics import ClusterCollector  # imports redis: Redis mode only

        collector = ClusterCollector(worker)
        self.add(collector, collector.refresh)

    async def route(self, request: web.Request) -> web.StreamResponse:
        """The exposition, in the format the scraper's ``Accept`` asks for (OpenMetrics or Prometheus text)."""
        for refresh in self._refreshers:
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT):
                    await refresh()
            except Exception as error:  # that part is left out of this scrape; the rest is still worth having
                log.warning("metrics: %s failed: %s", getattr(refresh, "__qualname__", "a refresh"), error)
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.registry), headers={"Content-Type": content_type})


METRICS = web.AppKey("reactr_metrics", Metrics)


def metrics_route(app: web.Application, server: Server) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The ``GET /metrics`` handler of ``app``; its ``Metrics`` is ``app[METRICS]`` (``add_cluster`` there)."""
    metrics = app[METRICS] = Metrics(server)
    return metrics.route


__all__ = ["METRICS", "Metrics", "ServerCollector", "metrics_route", "package_version"]
