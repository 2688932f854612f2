"""Timing: callables run alternately, round after round, so that the slow drift of a shared machine hits every one
alike (back-to-back blocks of runs would pick it up as a difference between them); medians and ratios of the
rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch


def no_sync() -> None:
    """Nothing to wait for (a CPU runs synchronously)."""


def sync_for(device: str) -> Callable[[], None]:
    """What waits for the device's queued work: CUDA's synchronize, nothing on a CPU."""
    return torch.cuda.synchronize if device.startswith("cuda") else no_sync


@dataclass(frozen=True)
class Timings:
    """Seconds per call name, one per round, in round order."""

    seconds: dict[str, list[float]]

    def median(self, name: str) -> float:
        """The median seconds of ``name`` over the rounds."""
        return statistics.median(self.seconds[name])

    def rate(self, name: str, items: int) -> float:
        """Items per second of ``name`` (``items`` per call), at its median time."""
        return items / self.median(name)

    def ratio(self, name: str, base: str) -> float:
        """The median over rounds of speed(``name``) / speed(``base``), each pair from the same round."""
        pairs = zip(self.seconds[name], self.seconds[base], strict=True)
        return statistics.median([t_base / t_name for t_name, t_base in pairs])


def alternate(
    calls: Mapping[str, Callable[[], Any]],
    repeats: int,
    sync: Callable[[], None] = no_sync,
    warmup: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> Timings:
    """Time ``calls`` in rounds: each round runs every call once, in the mapping's order, and times it (``sync``
    waits for the device before the clock is read). With ``warmup``, one untimed round comes first.

    Args:
        calls: name -> callable taking no argument.
        repeats: timed rounds (at least one is run).
        sync: waits for the device's queued work.
        warmup: run every call once, untimed, first (compiles, caches, first allocations).
        clock: seconds, monotonic.
    """
    if warmup:
        for fn in calls.values():
            fn()
        sync()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(max(1, repeats)):
        for name, fn in calls.items():
            start = clock()
            fn()
            sync()
            seconds[name].append(clock() - start)
    return Timings(seconds)


def median_time(fn: Callable[[], Any], repeats: int, sync: Callable[[], None], warmup: bool = True) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs (after one untimed run with ``warmup``).

    Args:
        fn: the callable to time.
        repeats: timed runs.
        sync: waits for the device's queued work.
        warmup: run ``fn`` once, untimed, first.
    """
    return alternate({"fn": fn}, repeats, sync, warmup).median("fn")
