"""Timing in this process: µs per call of a function, alone or taking turns with others."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def per_job(func: Callable[[], object], seconds: float = 1.0, repeats: int = 5) -> float:
    """Median µs per call over ``repeats`` timed batches of ~``seconds`` each."""
    batch = 1
    while True:  # size a batch to last about seconds / repeats
        start = time.perf_counter()
        for _ in range(batch):
            func()
        elapsed = time.perf_counter() - start
        if elapsed > seconds / repeats / 4:
            batch = max(1, int(batch * (seconds / repeats) / elapsed))
            break
        batch *= 4
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batch):
            func()
        samples.append((time.perf_counter() - start) / batch * 1e6)
    return statistics.median(samples)


def interleaved(funcs: dict[str, Callable[[], object]], seconds: float = 3.0, rounds: int = 9) -> dict[str, float]:
    """Median µs per call of each of ``funcs``, timed in alternating batches.

    Taking turns batch by batch puts every variant through the same moments of
    a shared, noisy machine, so their ratios hold even when the absolute
    numbers drift.
    """
    samples = interleaved_samples(funcs, seconds, rounds)
    return {name: statistics.median(values) for name, values in samples.items()}


def interleaved_samples(funcs: dict[str, Callable[[], object]], seconds: float, rounds: int) -> dict[str, list[float]]:
    """µs per call of each of ``funcs`` in each round (see ``interleaved``)."""
    batches = {
        name: max(1, int(seconds / rounds / len(funcs) / (per_job(func, 0.05, 1) * 1e-6)))
        for name, func in funcs.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(rounds):
        for name, func in funcs.items():
            start = time.perf_counter()
            for _ in range(batches[name]):
                func()
            samples[name].append((time.perf_counter() - start) / batches[name] * 1e6)
    return samples
