"""CLIP_benchmark's own reader (``clip_benchmark build``, which aggregates result JSONs into one CSV) on the files
``s3 eval`` writes. Needs the ``clip_benchmark`` package (which needs torch, torchvision and open_clip); CI runs this
file in the environment that has them (with ``S3_REQUIRE_CLIP_BENCHMARK=1``), elsewhere it is skipped."""

from __future__ import annotations

import argparse
import csv
import math
import os
from pathlib import Path

import pytest

try:
    from clip_benchmark.cli import main_build
except ImportError as _err:  # optional; CI runs this file where clip_benchmark is installed
    if os.environ.get("S3_REQUIRE_CLIP_BENCHMARK") == "1":
        raise
    pytest.skip(
        f"clip_benchmark is not installed ({_err}); pip install clip_benchmark to run CLIP_benchmark's reader on "
        "s3 eval's files",
        allow_module_level=True,
    )

from s3_hf.evaluation import clipbench
from s3_hf.evaluation.results import BenchmarkResult, MethodScores, RunResult


def run(random_weights: bool = False) -> RunResult:
    def bench(name: str, classes: int, hub_id: str | None, figures: dict) -> BenchmarkResult:
        methods = {m: MethodScores(*f) for m, f in figures.items()}
        return BenchmarkResult(
            name,
            model="openai/clip-vit-base-patch32",
            samples=20,
            classes=classes,
            methods=methods,
            random_weights=random_weights,
            files={"results": f"{name}-0123456789.json"},
            dataset_id=hub_id,
            dataset_revision="c" * 40 if hub_id else None,
        )

    pets = bench(
        "oxford-pets", 37, "clip-benchmark/wds_vtab-pets", {"label": (0.5, 0.75, 0.45), "ensemble": (0.6, 0.8, 0.55)}
    )
    toy = bench("toy", 3, None, {"label": (0.25, 1.0, 0.5), "s3/curated/local_center": (0.75, 1.0, 0.7)})
    failed = BenchmarkResult("cifar10", error="offline")
    benchmarks = {"oxford-pets": pets, "toy": toy, "cifar10": failed}
    return RunResult("openai/clip-vit-base-patch32", "r" * 40, random_weights, benchmarks=benchmarks)


def build(tmp_path: Path, summary: RunResult) -> list[dict[str, str]]:
    out = tmp_path / "out"
    written = clipbench.write_files(summary, out)
    table = tmp_path / "benchmark.csv"
    # `clip_benchmark build <folder> --output benchmark.csv`: every .json of the folder
    main_build(argparse.Namespace(files=[str(out / clipbench.FOLDER)], output=str(table)))
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(written) == 4
    return rows


def test_clip_benchmark_build_aggregates_s3_eval_files(tmp_path):
    rows = {(r["dataset"], r["pretrained"]): r for r in build(tmp_path, run())}
    assert set(rows) == {
        ("vtab/pets", "label"),
        ("vtab/pets", "ensemble"),
        ("toy", "label"),
        ("toy", "s3/curated/local_center"),
    }
    for row in rows.values():
        assert row["task"] == "zeroshot_classification" and row["language"] == "en"
        assert row["model_fullname"] == f"openai/clip-vit-base-patch32 {row['pretrained']}"
        assert row["random_weights"] == "False"
    pets = rows[("vtab/pets", "ensemble")]
    assert (float(pets["acc1"]), float(pets["acc5"]), float(pets["mean_per_class_recall"])) == (0.6, 0.8, 0.55)
    assert pets["dataset_id"] == "clip-benchmark/wds_vtab-pets" and pets["dataset_revision"] == "c" * 40
    toy = rows[("toy", "s3/curated/local_center")]
    assert float(toy["acc1"]) == 0.75 and math.isnan(float(toy["acc5"]))  # 3 classes: no top-5, as CLIP_benchmark


def test_random_weight_rows_are_marked_in_the_built_table(tmp_path):
    for row in build(tmp_path, run(random_weights=True)):
        assert row["random_weights"] == "True"
        assert row["model_fullname"].endswith(clipbench.RANDOM_MARK)
