"""Images in flight at once: batches decoded, preprocessed (and, on a CPU, encoded) on worker threads while the
caller works, results in input order.

Why threads, and why the policy differs by device (measured with ``s3 bench --parts images``; README, section
Images): on a CPU the encoder already keeps every core busy, so a decode thread beside it only competes for the
same cores. What helps there is running whole batches side by side, each worker decoding, preprocessing and
encoding its own batch on its share of torch's threads (2 workers on 2 cores: the decoding of one batch fills the
gaps of the other's encoder). On a GPU the encoder is not on the CPU at all: workers decode and preprocess ahead
of it, and the caller encodes. PIL and torch release the GIL while they work, so threads run in parallel.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

from s3_hf.errors import InvalidConfigError

T = TypeVar("T")
R = TypeVar("R")

#: Most decode threads a GPU run starts by default.
MAX_GPU_WORKERS = 8


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_image_workers(device: torch.device | str) -> int:
    """Image workers when the user gives none: on a GPU, a decode thread per core up to
    :data:`MAX_GPU_WORKERS`; on a CPU, 2 encoding workers where torch has at least 2 threads to share between them
    (a process limited to one, as in a multi-process run with one core each, gets none)."""
    if torch.device(device).type != "cpu":
        return min(MAX_GPU_WORKERS, cpu_cores())
    return 2 if torch.get_num_threads() >= 2 else 0


def threads_per_worker(workers: int) -> int:
    """torch's intra-op threads for each of ``workers`` encoding workers: the caller's threads, shared out."""
    return max(1, torch.get_num_threads() // max(1, workers))


def batched(items: Sequence[T], batch_size: int) -> list[Sequence[T]]:
    """``items`` cut into consecutive batches of ``batch_size`` (the last may be shorter)."""
    if batch_size < 1:
        raise InvalidConfigError(f"batch_size must be at least 1, got {batch_size}.")
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def map_batches(
    batches: Iterable[T], fn: Callable[[T], R], workers: int = 0, torch_threads: int | None = None
) -> Iterator[R]:
    """``fn(batch)`` for each batch, yielded in input order.

    Args:
        batches: the batches (any iterable; read lazily, at most ``workers + 1`` ahead of the caller).
        fn: the work per batch; it runs on a worker thread when ``workers`` > 0, so it must not depend on
            thread-local state of the caller (``torch.inference_mode`` is per thread: open it inside ``fn``).
        workers: worker threads; 0 runs ``fn`` in the caller, one batch at a time.
        torch_threads: torch's intra-op threads inside each worker (per thread; the caller's are unchanged).
    """
    if workers < 0:
        raise InvalidConfigError(f"workers must be 0 or more (0: no worker threads), got {workers}.")
    if not workers:
        for batch in batches:
            yield fn(batch)
        return

    def init() -> None:
        if torch_threads:
            torch.set_num_threads(torch_threads)  # thread-local for OpenMP and MKL: the caller keeps its own

    source = iter(batches)
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-images", initializer=init) as pool:
        try:
            for batch in source:
                pending.append(pool.submit(fn, batch))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # the caller stopped early or a batch failed: drop what is queued
                future.cancel()


__all__ = ["MAX_GPU_WORKERS", "batched", "cpu_cores", "default_image_workers", "map_batches", "threads_per_worker"]
