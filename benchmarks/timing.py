"""Timing helper shared by the benchmarks: compile once, then the median of repeated runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import jax


def median_seconds(fn: Callable[[], object], *, repeats: int = 20, warmup: int = 2,
                   min_seconds: float = 0.0) -> float:
    """Median wall time of ``fn()`` (its outputs blocked on), after ``warmup`` calls.

    Each timed sample repeats ``fn`` until at least ``min_seconds`` have passed and
    divides, so very fast functions are not dominated by timer resolution.
    """
    for _ in range(warmup):
        jax.block_until_ready(fn())
    samples = []
    for _ in range(repeats):
        count, start = 0, time.perf_counter()
        while True:
            jax.block_until_ready(fn())
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        samples.append(elapsed / count)
    return statistics.median(samples)


def machine_description() -> str:
    """One line naming the JAX version and backend devices, for BENCHMARKS.md."""
    import os
    import platform

    devices = jax.devices()
    cpu = platform.processor() or platform.machine()
    return (f"jax {jax.__version__}, {devices[0].platform} x{len(devices)} "
            f"({devices[0].device_kind}), {os.cpu_count()} CPU cores, {cpu}")
