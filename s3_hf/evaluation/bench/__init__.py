"""`s3 bench`: throughput of S^3 against bare CLIP and transformers' own pipeline, build cost, memory, size.

Every figure is a median over repeats and, where it says "x", a ratio to a baseline measured in the same
process, the two run alternately (:func:`~s3_hf.evaluation.bench.timing.alternate`). Results go to ``bench.json``
and ``bench.md`` (and ``bench.png``) in the output folder. One module per part (inference, build, fewshot, images,
segment, adaptation for TS^3, memory); the memory probe runs as ``python -m s3_hf.evaluation.bench.probe``.
"""

from s3_hf.evaluation.bench.adaptation import bench_tta, formula_bytes, stream_memory
from s3_hf.evaluation.bench.build import bench_build, save_space
from s3_hf.evaluation.bench.config import IMAGES_ENV, MODEL_ENV, PARTS, TEMPLATE, BenchConfig, PartSkipped, locations
from s3_hf.evaluation.bench.fewshot import bench_fewshot
from s3_hf.evaluation.bench.images import bench_images
from s3_hf.evaluation.bench.inference import bench_inference, s3_own_work
from s3_hf.evaluation.bench.memory import bench_memory
from s3_hf.evaluation.bench.report import markdown, plot
from s3_hf.evaluation.bench.rows import BenchResults
from s3_hf.evaluation.bench.segment import bench_segmentation
from s3_hf.evaluation.bench.suite import run
from s3_hf.evaluation.bench.timing import Timings, alternate, median_time
from s3_hf.evaluation.bench.workload import class_names, image_paths, load_engine, s3_classifier, synthetic_synonyms

__all__ = [
    "IMAGES_ENV",
    "MODEL_ENV",
    "PARTS",
    "TEMPLATE",
    "BenchConfig",
    "BenchResults",
    "PartSkipped",
    "Timings",
    "alternate",
    "bench_build",
    "bench_fewshot",
    "bench_images",
    "bench_inference",
    "bench_memory",
    "bench_segmentation",
    "bench_tta",
    "class_names",
    "formula_bytes",
    "image_paths",
    "load_engine",
    "locations",
    "markdown",
    "median_time",
    "plot",
    "run",
    "s3_classifier",
    "s3_own_work",
    "save_space",
    "stream_memory",
    "synthetic_synonyms",
]
