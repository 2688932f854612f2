"""The whole bench: every part asked for, each checking what it needs (a part that cannot run here is skipped
with a line saying why), then ``bench.json``, ``bench.md`` and ``bench.png``."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import torch

from s3_hf.evaluation.bench.adaptation import bench_tta
from s3_hf.evaluation.bench.build import bench_build, save_space
from s3_hf.evaluation.bench.config import BenchConfig, PartSkipped, require
from s3_hf.evaluation.bench.fewshot import bench_fewshot
from s3_hf.evaluation.bench.images import bench_images
from s3_hf.evaluation.bench.inference import bench_inference
from s3_hf.evaluation.bench.memory import bench_memory
from s3_hf.evaluation.bench.report import markdown, plot
from s3_hf.evaluation.bench.rows import ArtifactInfo, BenchResults, Environment, MemoryResult
from s3_hf.evaluation.bench.segment import bench_segmentation
from s3_hf.io.files import write_json
from s3_hf.models.loading import has_weights

T = TypeVar("T")


def environment(cfg: BenchConfig) -> Environment:
    """Where the bench runs: the model, the device, the versions, the sizes, the date."""
    import transformers

    if cfg.device.startswith("cuda"):
        device_name = torch.cuda.get_device_name(cfg.device)
    else:
        device_name = platform.processor() or "CPU"
    return Environment(
        model=cfg.model,
        random_weights=not has_weights(cfg.model),
        device=cfg.device,
        device_name=f"{device_name} ({os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads)",
        torch=torch.__version__,
        transformers=transformers.__version__,
        python=platform.python_version(),
        num_images=cfg.num_images,
        concepts=cfg.concepts,
        repeats=cfg.repeats,
        date=time.strftime("%Y-%m-%d %H:%M:%S"),
    )


def attempt(name: str, part: Callable[[], T], results: BenchResults, log: Callable[[str], None]) -> T | None:
    """``part()``, or ``None`` when it says it cannot run here (:class:`PartSkipped`): then ``results.skipped``
    and the log say why."""
    try:
        return part()
    except PartSkipped as why:
        results.skipped[name] = str(why)
        log(f"[{name}] skipped: {why}")
        return None


def _artifact_and_memory(cfg: BenchConfig, results: BenchResults, log: Callable[[str], None]) -> None:
    """The saved space's size (the artifact part) and, with ``cfg.memory``, the memory part classifying with it."""

    with tempfile.TemporaryDirectory() as tmp:
        space_dir = Path(tmp) / "space"

        def save() -> ArtifactInfo:
            require(cfg.classes, "it needs --classes (the space is saved at the largest)")
            return save_space(cfg, max(cfg.classes), space_dir)

        def measure() -> MemoryResult:
            require(results.artifact, "it classifies with the artifact part's saved space, which was skipped")
            return bench_memory(cfg, space_dir)

        results.artifact = attempt("artifact", save, results, log)
        if results.artifact is not None:
            log(f"artifact: {results.artifact.bytes / 1e6:.1f} MB")
        if cfg.memory:
            results.memory = attempt("memory", measure, results, log)
            if results.memory is not None:
                log(f"memory: {results.memory.ratio:.3f}x of bare CLIP")


def run(cfg: BenchConfig, log: Callable[[str], None] = print) -> BenchResults:
    """Run every part of the benchmark ``cfg`` asks for and write ``bench.json``, ``bench.md`` and ``bench.png``
    in ``cfg.out``.

    Args:
        cfg: the bench settings.
        log: where progress lines go.
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results = BenchResults(environment(cfg))
    if "inference" in cfg.parts:
        for dtype in cfg.dtypes:
            part = partial(bench_inference, cfg, dtype, log)
            results.inference += attempt(f"inference {dtype}", part, results, log) or []
    if "build" in cfg.parts:
        results.build = attempt("build", partial(bench_build, cfg, log), results, log) or []
    if "fewshot" in cfg.parts:
        results.fewshot = attempt("fewshot", partial(bench_fewshot, cfg, log), results, log)
    if "segmentation" in cfg.parts:
        results.segmentation = attempt("segmentation", partial(bench_segmentation, cfg, log), results, log)
    if "images" in cfg.parts:
        results.images = attempt("images", partial(bench_images, cfg, log), results, log)
    if "tta" in cfg.parts:
        results.tta = attempt("tta", partial(bench_tta, cfg, log), results, log)
    if "artifact" in cfg.parts or cfg.memory:
        _artifact_and_memory(cfg, results, log)
    write_json(out / "bench.json", results.to_dict())
    (out / "bench.md").write_text(markdown(results))
    written = [out / "bench.json", out / "bench.md"]
    if results.inference:
        figure = plot(results, out / "bench.png")
        if figure is None:
            log("bench.png skipped: it needs matplotlib (pip install matplotlib)")
        written += [figure] if figure else []
    log("Wrote " + ", ".join(str(p) for p in written))
    return results
