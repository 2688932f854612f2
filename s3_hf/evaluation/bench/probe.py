"""The memory probe: one workload in this fresh process, then its peak and resident memory as one JSON line.

Run by :func:`s3_hf.evaluation.bench.memory.probe_memory` as
``python -m s3_hf.evaluation.bench.probe MODE CONFIG_JSON [SPACE]``, with MODE one of ``bare`` (the encoder on 32
decoded images), ``s3`` (the S^3 pipeline classifying them against the saved space SPACE) or ``segment`` (one
segmentation at the largest short side of the config).
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from s3_hf.evaluation.bench.config import BenchConfig
from s3_hf.evaluation.bench.workload import class_names, image_paths, load_engine, s3_classifier, synthetic_synonyms
from s3_hf.io.images import load_image

MODES = ("bare", "s3", "segment")
IMAGES = 32


def workload(cfg: BenchConfig, mode: str, space: str | None = None) -> None:
    """Run the workload ``mode`` once.

    Args:
        cfg: the bench settings (model, device, images, segmentation sizes).
        mode: ``bare``, ``s3`` or ``segment``.
        space: the saved space folder ``s3`` classifies against.
    """
    engine = load_engine(cfg.model, cfg.device)
    paths = image_paths(cfg.images, IMAGES)
    if mode == "bare":
        engine.encode_pixels(engine.image_inputs([load_image(p) for p in paths]))
    elif mode == "segment":
        from s3_hf.segmentation.options import SegmentOptions

        labels = class_names(cfg.seg_classes, cfg.images)
        request = engine.request(labels, synonyms=synthetic_synonyms(labels, cfg.concepts))
        engine.segment(paths[0], request, SegmentOptions(short_side=max(cfg.seg_short_sides)))
    else:
        s3_classifier(engine, cfg.device)(paths, synonym_space=space, batch_size=IMAGES)


def measured(device: str) -> dict[str, int]:
    """This process's peak and current memory in bytes: CUDA's allocator on a GPU, else the operating system's."""
    if device.startswith("cuda"):
        return {"peak_bytes": torch.cuda.max_memory_allocated(), "resident_bytes": torch.cuda.memory_allocated()}
    statm = Path("/proc/self/statm")
    if not statm.is_file():  # no /proc (macOS): ru_maxrss is the peak (bytes there), no resident figure
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"peak_bytes": peak, "resident_bytes": peak}
    resident = int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    # VmHWM is this process's own peak; ru_maxrss would also count the parent's memory inherited at fork
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    if "VmHWM" in status:
        peak = int(status["VmHWM"].split()[0]) * 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_bytes": peak, "resident_bytes": resident}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the workload named on the command line and print what it took as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 3) or args[0] not in MODES:
        print(f"usage: python -m {__spec__.name if __spec__ else 'probe'} {{{','.join(MODES)}}} CONFIG_JSON [SPACE]")
        return 2
    cfg = BenchConfig.from_dict(json.loads(args[1]))
    workload(cfg, args[0], args[2] if len(args) == 3 else None)
    print(json.dumps(measured(cfg.device)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
