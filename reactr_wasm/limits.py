"""The per-runnable bounds, under the names of the config's ``[limits]`` table, with their defaults.

The one place these defaults are written: the config (``LimitsConfig``), the
engine (``Limits`` on every loaded runnable) and the scheduler
(``Reactr.register(queue_size=...)``) all read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
QUEUE_SIZE = 10_000  # queued jobs per runnable; past it a job is refused with QueueFull (HTTP 503)


@dataclass(frozen=True)
class Limits:
    """The hard limits of one Wasm runnable: ``[limits]`` and ``[runnables.NAME]`` in the config.

    ``timeout``: seconds of wall clock per job, then the guest is stopped
    (``JobTimeout``); also the longest its instance may take to start.
    ``memory``: bytes of linear memory per instance. ``result_size``: bytes of
    output per job.
    """

    timeout: float = 10.0
    memory: int = 256 * MIB
    result_size: int = 16 * MIB


__all__ = ["MIB", "QUEUE_SIZE", "Limits"]
