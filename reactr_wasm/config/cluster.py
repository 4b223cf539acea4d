"""The ``[cluster]`` section: Redis mode, where several nodes share one Redis (``docs/cluster.md``).

    [cluster]
    redis = "env(REDIS_URL)"        # redis://[user:password@]host:port/db, rediss://, unix://; secret
    namespace = "reactr"            # key prefix: nodes sharing one share this
    visibility_timeout = 30         # seconds a silent node's job waits before another node takes it
    max_deliveries = 5              # deliveries of one job before it goes to the dead letters
    heartbeat = 1                   # seconds between a node's announcements (dead after 3 missed)
    prefetch = 64                   # jobs one node holds at once

Without ``redis`` the server keeps its queue and results in its own process.
A job runs at most its timeout and a live node extends what it holds, yet a node
whose event loop stalls may miss an extension: the visibility timeout must be
longer than the longest job timeout, so a healthy job is never taken over.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reactr_wasm.config.checks import Invalid, Reader, Rule, integer, seconds

SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass
class ClusterConfig:
    redis: str | None = None  # None: embedded mode, no Redis
    namespace: str = "reactr"
    visibility_timeout: float = 30.0
    max_deliveries: int = 5
    heartbeat: float = 1.0
    prefetch: int = 64

    @property
    def enabled(self) -> bool:
        return self.redis is not None


def redis_url(value: Any) -> str:
    """A Redis URL; the value is a secret (it may hold a password), so it is never shown."""
    if not isinstance(value, str) or not value.startswith(SCHEMES) or any(c.isspace() for c in value):
        raise Invalid(f"must be a Redis URL starting with {', '.join(SCHEMES)}")
    return value


def namespace(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
        raise Invalid("must be 1 to 64 letters, digits, '_', '.' or '-'", value)
    return value


CLUSTER = {
    "redis": Rule(redis_url, secret=True),
    "namespace": Rule(namespace),
    "visibility_timeout": Rule(seconds()),
    "max_deliveries": Rule(integer(1, 1000)),
    "heartbeat": Rule(seconds()),
    "prefetch": Rule(integer(1, 100_000)),
}


def visibility_problem(cluster: ClusterConfig | None, timeouts: Iterable[tuple[str, float]]) -> str | None:
    """Why Redis mode's visibility timeout is too short for the job timeouts (``(dotted key, seconds)``), or None."""
    if cluster is None or not cluster.enabled:
        return None
    key, longest = max(timeouts, key=lambda item: item[1])
    if cluster.visibility_timeout > longest:
        return None
    return (
        f"must be longer than the longest job timeout ({key} = {longest:g} s), "
        f"or another node takes over jobs still running; got {cluster.visibility_timeout:g}"
    )


def check_cluster(reader: Reader, cluster: ClusterConfig | None, timeouts: Iterable[tuple[str, float]]) -> None:
    """In Redis mode, the visibility timeout must outlast every job timeout (``visibility_problem``)."""
    problem = visibility_problem(cluster, timeouts)
    if problem is not None:
        reader.problem("cluster.visibility_timeout", problem)


__all__ = ["CLUSTER", "ClusterConfig", "check_cluster", "visibility_problem"]
