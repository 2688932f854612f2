"""The memory part: each workload in a fresh process (:mod:`s3_hf.evaluation.bench.probe`), so that its peak is
its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from s3_hf.evaluation.bench.config import BenchConfig
from s3_hf.evaluation.bench.rows import MemoryProbe, MemoryResult

PROBE = "s3_hf.evaluation.bench.probe"


def probe_memory(cfg: BenchConfig, mode: str, space: Path | None = None) -> MemoryProbe:
    """Peak and resident memory of the workload ``mode`` (see :mod:`s3_hf.evaluation.bench.probe`) in a fresh
    process.

    Args:
        cfg: the bench settings.
        mode: ``bare``, ``s3`` or ``segment``.
        space: the saved space folder ``s3`` classifies against.
    """
    command = [sys.executable, "-m", PROBE, mode, json.dumps(cfg.to_dict())]
    if space is not None:
        command.append(str(space))
    res = subprocess.run(command, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"memory measurement ({mode}) failed:\n{res.stderr[-2000:]}")
    return MemoryProbe.from_dict(json.loads(res.stdout.strip().splitlines()[-1]))


def bench_memory(cfg: BenchConfig, space_dir: Path) -> MemoryResult:
    """Peak memory of bare CLIP encoding 32 images vs the S^3 pipeline classifying them against the saved
    space ``space_dir`` (each in a fresh process; the space is loaded from disk, as a user would).

    Args:
        cfg: the bench settings.
        space_dir: the saved space.
    """
    return MemoryResult(bare=probe_memory(cfg, "bare"), s3=probe_memory(cfg, "s3", space_dir))
