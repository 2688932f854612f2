"""``s3 eval`` writes CLIP_benchmark's result files (``<out>/clip_benchmark/``): one per benchmark and zero-shot
method, in the schema ``clip_benchmark eval`` writes and ``clip_benchmark build`` reads (its README and cli.py:
``dataset``, ``model``, ``pretrained``, ``task``, ``metrics`` with ``acc1``/``acc5``/``mean_per_class_recall``,
``language``). ``test_clip_benchmark_build.py`` runs CLIP_benchmark's own reader on them where it is installed."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from s3_hf.cli import main
from s3_hf.errors import EvalError
from s3_hf.evaluation import clipbench
from s3_hf.evaluation.results import BenchmarkResult, MethodScores, RunResult

#: What ``clip_benchmark eval`` writes for a single-label zero-shot classification run, key -> type.
SCHEMA = {"dataset": str, "model": str, "pretrained": str, "task": str, "metrics": dict, "language": str}
METRICS = {"acc1", "acc5", "mean_per_class_recall"}


def check_schema(record: dict) -> None:
    for key, kind in SCHEMA.items():
        assert isinstance(record[key], kind), (key, record)
    assert record["task"] == "zeroshot_classification" and record["language"] == "en"
    assert set(record["metrics"]) == METRICS
    assert all(isinstance(v, float) for v in record["metrics"].values())
    # build turns every other top-level field into a CSV column: scalars only
    assert all(v is None or isinstance(v, str | int | float | bool) for k, v in record.items() if k != "metrics")


def read_folder(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((out / clipbench.FOLDER).iterdir())}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three classes, four photos: fewer than five classes, so there is no top-5 accuracy."""
    from skimage import data

    root = tmp_path_factory.mktemp("cbfolder")
    for cls, names in {"cat": ["chelsea", "cat"], "coffee": ["coffee"], "astronaut": ["astronaut"]}.items():
        (root / cls).mkdir()
        for n in names:
            Image.fromarray(np.asarray(getattr(data, n)())).convert("RGB").save(root / cls / f"{n}.png")
    return root


def test_s3_eval_writes_one_file_per_benchmark_and_method(folder, tiny_clip_dir, tmp_path):
    synonyms = tmp_path / "synonyms.json"
    synonyms.write_text(json.dumps({"cat": ["kitty"], "coffee": ["espresso"], "astronaut": ["spaceman"]}))
    out = tmp_path / "out"
    argv = ["eval", "--benchmarks", str(folder), "--out", str(out), "--synonyms", str(synonyms)]
    argv += ["--metrics", "local_center,global_center", "--batch-size", "2"]
    assert main([*argv, "--model", str(tiny_clip_dir)]) == 0
    summary = RunResult.from_dict(json.loads((out / "results.json").read_text()))
    rec = next(iter(summary.benchmarks.values()))
    files = read_folder(out)
    assert len(files) == len(rec.methods) >= 4  # label, ensemble and the two S^3 metrics
    by_method = {r["pretrained"]: r for r in files.values()}
    assert set(by_method) == set(rec.methods)
    for method, record in by_method.items():
        check_schema(record)
        scores = rec.methods[method]
        assert record["dataset"] == rec.name and record["model"] == str(tiny_clip_dir) and record["method"] == method
        assert record["metrics"]["acc1"] == scores.top1
        assert record["metrics"]["mean_per_class_recall"] == scores.mean_per_class
        assert math.isnan(record["metrics"]["acc5"]) and scores.top5 == 1.0  # 3 classes: CLIP_benchmark has NaN
        assert record["random_weights"] is False and record["samples"] == 4 and record["dataset_id"] is None
    assert all(n.endswith("_en_zeroshot_classification.json") for n in files)
    assert "NaN" in next(iter((out / clipbench.FOLDER).iterdir())).read_text()  # as json.dump writes it

    # the same benchmarks with random weights (a checkpoint folder without weight files): every row is marked,
    # and the files of the earlier run (another model) are gone, so that `build` on the folder reads this run
    random = tmp_path / "random-clip"
    shutil.copytree(tiny_clip_dir, random, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    assert main([*argv, "--model", str(random)]) == 0
    marked = read_folder(out)
    assert set(marked).isdisjoint(files) and len(marked) == len(files)
    for record in marked.values():
        check_schema(record)
        assert record["random_weights"] is True and record["pretrained"].endswith(clipbench.RANDOM_MARK)
        assert record["pretrained"] == record["method"] + clipbench.RANDOM_MARK


def test_a_folder_of_files_s3_eval_did_not_write_is_refused_before_any_work(tmp_path):
    out = tmp_path / "out"
    (out / clipbench.FOLDER).mkdir(parents=True)
    (out / clipbench.FOLDER / "mine.json").write_text("{}")
    with pytest.raises(EvalError, match=r"clip_benchmark/mine\.json exists and was not written by s3 eval"):
        clipbench.check_folder(out)
    clipbench.check_folder(out, overwrite=True)
    shutil.rmtree(out / clipbench.FOLDER)
    (out / clipbench.FOLDER).write_text("a file")
    with pytest.raises(EvalError, match="is a file where s3 eval writes a folder"):
        clipbench.check_folder(out, overwrite=True)


def hub_run(classes: int, random_weights: object = False) -> RunResult:
    rec = BenchmarkResult(
        "oxford-pets",
        model="openai/clip-vit-base-patch32",
        samples=10,
        classes=classes,
        methods={"label": MethodScores(0.5, 0.9, 0.4), "tda": MethodScores(0.6, None, None)},
        random_weights=random_weights,
        files={"results": "oxford-pets-0123456789.json"},
        dataset_id="clip-benchmark/wds_vtab-pets",
        dataset_revision="c" * 40,
    )
    failed = BenchmarkResult("cifar10", error="offline")
    return RunResult("openai/clip-vit-base-patch32", "r" * 40, False, benchmarks={"oxford-pets": rec, "x": failed})


def test_records_name_hub_datasets_as_clip_benchmark_does_and_keep_what_is_measured():
    records = clipbench.records(hub_run(classes=37))
    assert sorted(records) == [
        "oxford-pets-0123456789_label_clip-vit-base-patch32_en_zeroshot_classification.json",
        "oxford-pets-0123456789_tda_clip-vit-base-patch32_en_zeroshot_classification.json",
    ]  # nothing for the benchmark that failed
    label = records[sorted(records)[0]]
    check_schema(label)
    assert label["dataset"] == "vtab/pets" and label["model"] == "openai/clip-vit-base-patch32"
    assert label["metrics"] == {"acc1": 0.5, "acc5": 0.9, "mean_per_class_recall": 0.4}  # 37 classes: top-5 kept
    assert (label["dataset_id"], label["dataset_revision"], label["model_revision"]) == (
        "clip-benchmark/wds_vtab-pets",
        "c" * 40,
        "r" * 40,
    )
    tda = records[sorted(records)[1]]["metrics"]
    assert tda["acc1"] == 0.6 and math.isnan(tda["acc5"]) and math.isnan(tda["mean_per_class_recall"])
    assert math.isnan(clipbench.records(hub_run(classes=4))[sorted(records)[0]]["metrics"]["acc5"])
    for mark in (True, None, "yes"):  # anything but False: not known to be trained weights
        assert all(r["random_weights"] is True for r in clipbench.records(hub_run(37, mark)).values())


@pytest.mark.parametrize(
    ("hub_id", "name"),
    [
        ("clip-benchmark/wds_vtab-pets", "vtab/pets"),
        ("clip-benchmark/wds_cars", "cars"),
        ("clip-benchmark/wds_imagenet-a", "imagenet-a"),
        ("clip-benchmark/wds_imagenet_sketch", "imagenet_sketch"),
        ("clip-benchmark/wds_fgvc_aircraft", "fgvc_aircraft"),
        ("acme/wds_toy", "toy-wds"),  # not CLIP_benchmark's copy: the run's name
        (None, "toy-wds"),
    ],
)
def test_dataset_names(hub_id, name):
    assert clipbench.dataset_name(BenchmarkResult("toy-wds", dataset_id=hub_id)) == name
