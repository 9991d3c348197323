"""Timing helpers shared by the benchmarks: compiled first, then repeated, interleaved runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import jax


def median_seconds(fn: Callable[[], object], *, repeats: int = 20, warmup: int = 2,
                   min_seconds: float = 0.0, clock: Callable[[], float] = time.perf_counter
                   ) -> float:
    """Median time of ``fn()`` (its outputs blocked on), after ``warmup`` calls.

    Each timed sample repeats ``fn`` until at least ``min_seconds`` have passed and
    divides, so very fast functions are not dominated by timer resolution. ``clock`` is
    wall time by default; ``time.process_time`` measures this process's CPU time (all its
    threads), which other processes on a shared machine disturb far less.
    """
    for _ in range(warmup):
        jax.block_until_ready(fn())
    samples = []
    for _ in range(repeats):
        count, start = 0, clock()
        while True:
            jax.block_until_ready(fn())
            count += 1
            elapsed = clock() - start
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


class Timed:
    """One benchmarked callable: ``run()`` does ``calls`` calls and blocks on the result."""

    def __init__(self, name: str, run: Callable[[], object], items: int, calls: int = 1):
        self.name, self._run, self.items, self.calls = name, run, items, calls
        start = time.perf_counter()
        jax.block_until_ready(run())
        self.compile_s = time.perf_counter() - start
        self.best_s = float("inf")

    def time_once(self) -> None:
        start = time.perf_counter()
        jax.block_until_ready(self._run())
        self.best_s = min(self.best_s, (time.perf_counter() - start) / self.calls)

    @property
    def rate(self) -> float:
        return self.items / self.best_s


def time_round_robin(timers: list[Timed], repeats: int) -> None:
    for _ in range(repeats):
        for timer in timers:
            timer.time_once()


def interleaved_timings(functions: dict, repeats: int) -> dict:
    """``{"median": {name: s}, "best": {name: s}}``: seconds per call of each (compiled)
    function, timed round-robin so that changes in the machine's load hit all alike."""
    for fn in functions.values():
        jax.block_until_ready(fn())
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {"median": {name: statistics.median(ts) for name, ts in times.items()},
            "best": {name: min(ts) for name, ts in times.items()}}
