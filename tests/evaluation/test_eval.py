"""`s3 eval`: metric modules, 1 vs 2 processes, the embedding cache, resumability, reports, model cards."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import SHARED, assert_same_results, run_eval
from PIL import Image

from s3_hf.cli import main

ROOT = Path(__file__).resolve().parents[1]
IMAGENET_SAMPLE = SHARED / "data" / "imagenet-sample"


@pytest.fixture(scope="module")
def runner():
    from s3_hf.evaluation import runner

    return runner


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A real-photo image folder: 3 classes, 7 images (uneven across 2 processes and batches of 2)."""
    from skimage import data

    root = tmp_path_factory.mktemp("imagefolder")
    for cls, names in {
        "cat": ["chelsea", "cat"],
        "coffee": ["coffee"],
        "astronaut": ["astronaut", "rocket", "camera", "coins"],
    }.items():
        (root / cls).mkdir()
        for n in names:
            Image.fromarray(np.asarray(getattr(data, n)())).convert("RGB").save(root / cls / f"{n}.png")
    return root


def test_metric_modules_match_hand_computation(runner):
    top_k, per_class = runner.load_metric("top_k_accuracy"), runner.load_metric("mean_per_class_accuracy")
    ranked = [[0, 1, 2], [2, 0, 1], [1, 2, 0], [0, 2, 1], [2, 1, 0]]
    refs = [0, 0, 2, 1, 2]
    # top-1: samples 0 and 4 right -> 2/5; top-2: + sample 1 (0 in [2, 0]) and sample 2 (2 in [1, 2]) -> 4/5
    assert top_k.compute(predictions=ranked, references=refs, k=1)["top_k_accuracy"] == pytest.approx(0.4)
    assert top_k.compute(predictions=ranked, references=refs, k=2)["top_k_accuracy"] == pytest.approx(0.8)
    # per class: class 0 -> 1/2, class 1 -> 0/1, class 2 -> 1/2; mean 1/3
    out = per_class.compute(predictions=[r[0] for r in ranked], references=refs)
    assert out["mean_per_class_accuracy"] == pytest.approx(1 / 3)
    assert out["per_class_accuracy"] == {0: 0.5, 1: 0.0, 2: 0.5}


def bench_file(out: Path, name: str, kind: str = "results") -> Path:
    """A benchmark's results (or predictions) file, as results.json names it."""
    return out / json.loads((out / "results.json").read_text())["benchmarks"][name]["files"][kind]


@pytest.mark.slow  # a multi-process run
@pytest.mark.parametrize(
    ("family", "scoring", "canonicalization"),
    [("clip", "softmax", "none"), ("siglip", "sigmoid", "none"), ("siglip2", "sigmoid", "both")],
)
def test_two_processes_equal_one(folder, tiny_clip_dir, tmp_path, family, scoring, canonicalization):
    """2 processes equal 1, for a softmax and two sigmoid families (SigLIP 2 with its patch-mask image inputs, and
    both text canonicalisations); the results say which family, rule and canonicalisations they used."""
    from helpers import make_tiny_family

    model = tiny_clip_dir if family == "clip" else make_tiny_family(tmp_path / f"tiny-{family}", family)
    args = ["--benchmarks", str(folder), "--model", str(model), "--batch-size", "2", "--synonyms", "none"]
    args += ["--canonicalization", canonicalization]
    run_eval([*args, "--out", str(tmp_path / "one")], 1, tmp_path)
    run_eval([*args, "--out", str(tmp_path / "two")], 2, tmp_path)
    name = folder.name
    one = json.loads(bench_file(tmp_path / "one", name, "predictions").read_text())
    two = json.loads(bench_file(tmp_path / "two", name, "predictions").read_text())
    assert len(one["labels"]) == 7 and one == two
    m1 = json.loads(bench_file(tmp_path / "one", name).read_text())["methods"]
    m2 = json.loads(bench_file(tmp_path / "two", name).read_text())["methods"]
    methods = {"label", "ensemble"}
    rules = [None]
    if canonicalization == "both":
        methods |= {"label@lower_no_punct", "ensemble@lower_no_punct"}
        rules.append("lower_no_punct")
    assert_same_results(m1, m2)
    assert set(m1) == methods
    summary = json.loads((tmp_path / "two" / "results.json").read_text())
    assert (summary["family"], summary["scoring"], summary["processes"]) == (family, scoring, 2)
    assert summary["canonicalizations"] == rules


@pytest.fixture(scope="module")
def split_folder(tmp_path_factory) -> Path:
    """train/ and test/ image folders over 3 classes: 3 train images per class, 7 test images (uneven)."""
    from skimage import data

    root = tmp_path_factory.mktemp("splitfolder")
    layout = {
        "train": {"cat": ["chelsea", "cat", "coffee"], "coins": ["coins", "moon", "page"], "rocket": ["rocket"] * 3},
        "test": {"cat": ["chelsea", "cat"], "coins": ["coins"], "rocket": ["rocket", "astronaut", "camera", "text"]},
    }
    for split, classes in layout.items():
        for cls, names in classes.items():
            (root / split / cls).mkdir(parents=True)
            for i, n in enumerate(names):
                arr = np.asarray(getattr(data, n)())
                img = Image.fromarray(arr).convert("RGB")
                if split == "train":  # distinct support images even where the photo repeats
                    img = img.rotate(15 * i).resize((64 + 8 * i, 64))
                img.save(root / split / cls / f"{n}{i}.png")
    return root


@pytest.mark.slow  # a multi-process run
def test_fewshot_two_processes_equal_one(split_folder, tiny_clip_dir, tmp_path):
    args = ["--benchmarks", str(split_folder), "--model", str(tiny_clip_dir), "--batch-size", "2"]
    args += ["--synonyms", "none", "--shots", "1,2", "--seeds", "1,2"]
    run_eval([*args, "--out", str(tmp_path / "one")], 1, tmp_path)
    run_eval([*args, "--out", str(tmp_path / "two")], 2, tmp_path)
    one = json.loads(bench_file(tmp_path / "one", split_folder.name).read_text())
    two = json.loads(bench_file(tmp_path / "two", split_folder.name).read_text())
    assert one["samples"] == 7 and one["fewshot"]["base"] == "ensemble"
    for rec in (one, two):
        rec["fewshot"].pop("timings_s")
    assert_same_results(one["fewshot"], two["fewshot"])
    runs = one["fewshot"]["runs"]
    assert [(r["shots"], r["seed"], r["support_images"]) for r in runs] == [(1, 1, 3), (1, 2, 3), (2, 1, 6), (2, 2, 6)]
    for r in runs:
        # zero-shot is the base method, whatever the support; 1-shot has nothing to validate on: defaults
        assert r["zero-shot"]["top1"] == one["methods"]["ensemble"]["top1"]
        assert r["zero-shot"]["ece"] == one["methods"]["ensemble"]["ece"]
        assert all(r[m]["nll"] >= 0 for m in ("zero-shot", "cache", "ssp")) and "ece" not in r["gda"]
        assert r["ssp_params"]["tuned"] is (r["shots"] == 2)
        assert r["cache_params"]["gamma"] == 0.0
    assert set(one["fewshot"]["summary"]) == {"1", "2"}
    two_shot = one["fewshot"]["summary"]["2"]
    for m in ("zero-shot", "cache", "ssp"):  # the mean ECE over seeds, for the methods with calibrated scores
        want = sum(r[m]["ece"] for r in runs if r["shots"] == 2) / 2
        assert two_shot[m]["ece_mean"] == pytest.approx(want, abs=1e-12)
    assert "ece_mean" not in two_shot["gda"]
    table = (tmp_path / "one" / "results.md").read_text()
    assert "Few-shot top-1" in table and f"| {split_folder.name} | 2 | 2 |" in table
    ece_row = f"| {split_folder.name} | 2 | {100 * two_shot['zero-shot']['ece_mean']:.2f} |"
    assert "Expected calibration error" in table and ece_row in table and table.count(ece_row) == 1


def test_fewshot_eval_with_siglip2(split_folder, tmp_path, runner):
    """Few-shot eval with SigLIP 2: support images go through the data loader with their patch masks, and SSP fits
    on the MAP-pooled patch tokens."""
    from helpers import make_tiny_family

    model = make_tiny_family(tmp_path / "tiny-siglip2", "siglip2")
    cfg = runner.EvalConfig.from_flags(
        model=str(model), benchmarks=[str(split_folder)], out=str(tmp_path / "out"), synonyms=[], shots=[2], seeds=[1]
    )
    rec = runner.run(cfg).to_dict()["benchmarks"][split_folder.name]
    (run,) = rec["fewshot"]["runs"]
    assert run["support_images"] == 6 and 0 <= run["ssp"]["top1"] <= 1


def test_fewshot_needs_a_train_split(folder, tiny_clip_dir, tmp_path, runner):
    cfg = runner.EvalConfig.from_flags(
        model=str(tiny_clip_dir), benchmarks=[str(folder)], out=str(tmp_path), synonyms=[], shots=[1], seeds=[0]
    )
    rec = runner.run(cfg).to_dict()["benchmarks"][folder.name]
    assert "train/" in rec["fewshot"]["error"] and rec["methods"]["label"]["top1"] >= 0  # zero-shot still scored


def test_cache_resume_reports_and_unreachable(folder, tiny_clip_dir, tmp_path, runner, caplog):
    out = tmp_path / "out"
    cfg = runner.EvalConfig.from_flags(
        model=str(tiny_clip_dir), benchmarks=["cifar10", str(folder)], out=str(out), synonyms=[], batch_size=4
    )
    first = runner.run(cfg).to_dict()
    assert "cannot load clip-benchmark/wds_cifar10" in first["benchmarks"]["cifar10"]["error"]  # offline
    rec = first["benchmarks"][folder.name]
    assert rec["embeddings_cached"] is False and rec["samples"] == 7 and rec["classes"] == 3
    for method in ("label", "ensemble"):
        figures = {"top1", "top5", "mean_per_class", "wins_vs_label", "losses_vs_label", "ece", "nll", "reliability"}
        assert set(rec["methods"][method]) == figures
        assert 0 <= rec["methods"][method]["ece"] <= 1 and rec["methods"][method]["nll"] >= 0
        assert sum(rec["methods"][method]["reliability"]["counts"]) == 7
    assert rec["methods"]["label"]["wins_vs_label"] == 0
    table = (out / "results.md").read_text()
    assert f"| {folder.name} | 7 |" in table and "cifar10" in table and "Not evaluated" in table
    assert "## Calibration" in table and f"| {folder.name} | label |" in table
    assert (out / "gains.png").stat().st_size > 1000
    assert (out / "reliability.png").stat().st_size > 1000

    # same configuration: the finished benchmark is not recomputed
    predictions = bench_file(out, folder.name, "predictions")
    predictions.unlink()
    again = runner.run(cfg).to_dict()
    assert again["benchmarks"][folder.name] == rec
    assert not predictions.exists()

    # another method set: scored again, on the cached image embeddings
    cfg.run.templates = "imagenet7"
    third = runner.run(cfg).to_dict()
    assert third["benchmarks"][folder.name]["embeddings_cached"] is True
    assert third["benchmarks"][folder.name]["methods"]["label"] == rec["methods"]["label"]


def test_scoring_time_is_zero_shot_scoring_alone(split_folder, tiny_clip_dir, tmp_path, runner, monkeypatch):
    """``timings_s.scoring`` times the zero-shot methods; few-shot fitting and scoring has its own timing. The
    runner's clock jumps 1,000 s inside the few-shot step, so the assertion does not depend on the machine's speed."""
    real = runner.fewshot.score_fewshot
    jump = [0.0]

    class Clock:
        @staticmethod
        def perf_counter() -> float:
            return time.perf_counter() + jump[0]

    def slow_fewshot(*args, **kwargs):
        jump[0] += 1000.0
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "time", Clock)
    monkeypatch.setattr(runner.fewshot, "score_fewshot", slow_fewshot)
    cfg = runner.EvalConfig.from_flags(
        model=str(tiny_clip_dir), benchmarks=[str(split_folder)], out=str(tmp_path), synonyms=[], shots=[1], seeds=[1]
    )
    rec = runner.run(cfg).to_dict()["benchmarks"][split_folder.name]
    assert rec["fewshot"]["timings_s"]["fit_and_score"] >= 1000.0 > rec["timings_s"]["scoring"]
    assert set(rec["timings_s"]) == {"images", "spaces", "scoring"}


def test_missing_data_locations_are_one_line_errors(tiny_clip_dir, monkeypatch, capsys):
    for name in ("S3_IMAGENET_SAMPLE", "S3_BENCH_MODEL", "S3_BENCH_IMAGES"):
        monkeypatch.delenv(name, raising=False)
    cases = [
        (["eval", "--benchmarks", "imagenet-sample", "--model", str(tiny_clip_dir)], "S3_IMAGENET_SAMPLE"),
        (["bench"], "S3_BENCH_MODEL"),
        (["bench", "--model", str(tiny_clip_dir)], "S3_BENCH_IMAGES"),
    ]
    for argv, variable in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and variable in err, err
        assert "Traceback" not in err


def test_imagenet_sample_folder_from_argument_or_variable(tmp_path, monkeypatch):
    from s3_hf.errors import EvalError
    from s3_hf.evaluation.data import registry

    monkeypatch.delenv("S3_IMAGENET_SAMPLE", raising=False)
    with pytest.raises(EvalError, match="--imagenet-sample"):
        registry.resolve("imagenet-sample")
    assert registry.resolve("imagenet-sample", tmp_path).path == str(tmp_path)
    monkeypatch.setenv("S3_IMAGENET_SAMPLE", str(tmp_path / "elsewhere"))
    assert registry.resolve("imagenet-sample").path == str(tmp_path / "elsewhere")
    with pytest.raises(registry.BenchmarkUnavailable, match=r"holds no classes\.tsv"):
        registry.load(registry.resolve("imagenet-sample"))


def wordnet_synonyms() -> list[str]:
    """``["wordnet"]``; a missing WordNet skips the test, or fails it where S3_REQUIRE_WORDNET is set (CI)."""
    from s3_hf.errors import WordNetMissingError
    from s3_hf.synonyms import WordNetSource

    try:
        WordNetSource()
    except WordNetMissingError as err:
        if os.environ.get("S3_REQUIRE_WORDNET"):
            raise
        pytest.skip(f"WordNet corpus not installed here ({err})")
    return ["wordnet"]


@pytest.mark.skipif(not IMAGENET_SAMPLE.is_dir(), reason=f"{IMAGENET_SAMPLE} (the shared imagenet-sample) is absent")
def test_imagenet_sample_end_to_end(tiny_clip_dir, tmp_path, runner, monkeypatch):
    synonyms = wordnet_synonyms()
    monkeypatch.setenv("S3_IMAGENET_SAMPLE", str(IMAGENET_SAMPLE))
    cfg = runner.EvalConfig.from_flags(
        model=str(tiny_clip_dir),
        benchmarks=["imagenet-sample"],
        out=str(tmp_path / "out"),
        synonyms=synonyms,
        metrics=["local_center", "nearest_simplex"],
        templates="imagenet7",
        batch_size=128,
    )
    rec = runner.run(cfg).to_dict()["benchmarks"]["imagenet-sample"]
    assert rec["samples"] == 1000 and rec["classes"] == 1000 and not rec["embeddings_cached"]
    expected = {"label", "ensemble"} | {f"s3/{s}/{m}" for s in synonyms for m in cfg.run.metrics}
    assert set(rec["methods"]) == expected
    assert (tmp_path / "out" / "results.md").is_file() and (tmp_path / "out" / "gains.png").is_file()
    # another metric set: image embeddings and spaces both come from the cache
    cfg.run.metrics = ["local_center"]

    def no_build(*args, **kwargs):
        raise AssertionError("a cached space was rebuilt")

    monkeypatch.setattr(runner.methods, "build_synonym_space", no_build)
    again = runner.run(cfg).to_dict()["benchmarks"]["imagenet-sample"]
    assert again["embeddings_cached"] is True
    assert again["methods"]["label"] == rec["methods"]["label"]


def test_model_card_results(small_space, tmp_path, capsys):
    space_dir = small_space.save_pretrained(tmp_path / "space")
    method = f"s3/syn/{small_space.config.metric}"
    summary = {
        "model": small_space.config.base_model,
        "random_weights": False,
        "benchmarks": {
            "pets": {
                "class_names": small_space.labels,
                "methods": {"label": {"top1": 0.5}, method: {"top1": 0.625}},
                "synonyms": {method: small_space.classes[0].source},
            },
            "down": {"error": "offline"},
        },
    }
    results = tmp_path / "results.json"
    results.write_text(json.dumps(summary))
    assert main(["card", str(space_dir), "--results", str(results)]) == 0
    card = (space_dir / "README.md").read_text()
    assert "model-index:" in card and "value: 0.625" in card and "top-1 accuracy (label)" in card
    from s3_hf import SynonymSpace

    SynonymSpace.from_pretrained(space_dir)  # still a valid artifact
    results.write_text(json.dumps({**summary, "random_weights": True}))
    assert main(["card", str(space_dir), "--results", str(results)]) == 2
    assert "random weights" in capsys.readouterr().err


@pytest.mark.slow  # a multi-process run
def test_every_method_side_by_side_two_processes_equal_one(split_folder, tiny_clip_dir, tmp_path):
    """Zero-shot (label, ensemble, DCLIP, CuPL, WaffleCLIP, S^3 and S^3 with descriptors) and few-shot (cache, SSP,
    GDA) in one run; 2 processes give exactly the results of 1."""
    syn = tmp_path / "syn.json"
    syn.write_text(
        json.dumps(
            {
                "classes": {"cat": ["kitty"], "coins": ["money"]},
                "descriptors": {"cat": ["whiskers"], "rocket": ["a pointed nose cone"]},
            }
        )
    )
    dclip = tmp_path / "dclip.json"
    dclip.write_text(json.dumps({"cat": ["pointed ears", "whiskers"], "Coins": ["a round shape"]}))
    cupl = tmp_path / "cupl.json"
    cupl.write_text(json.dumps({"cat": ["A cat sitting.", "A furry cat."], "rocket": ["A rocket in flight."]}))
    args = ["--benchmarks", str(split_folder), "--model", str(tiny_clip_dir), "--batch-size", "2"]
    args += ["--synonyms", str(syn), "--metrics", "local_center", "--descriptors", "--dclip", str(dclip)]
    args += ["--cupl", str(cupl), "--waffle", "2", "--shots", "2", "--seeds", "1"]
    run_eval([*args, "--out", str(tmp_path / "one")], 1, tmp_path)
    run_eval([*args, "--out", str(tmp_path / "two")], 2, tmp_path)
    one = json.loads(bench_file(tmp_path / "one", split_folder.name).read_text())
    two = json.loads(bench_file(tmp_path / "two", split_folder.name).read_text())
    methods = {"label", "ensemble", "dclip", "cupl", "waffle", "s3/syn/local_center", "s3/syn+descriptors/local_center"}
    assert set(one["methods"]) == methods
    assert_same_results(one["methods"], two["methods"])
    for rec in (one, two):
        rec["fewshot"].pop("timings_s")
    assert_same_results(one["fewshot"], two["fewshot"])
    (run,) = one["fewshot"]["runs"]
    assert {"zero-shot", "cache", "ssp", "gda"} <= set(run) and "alpha" in run["gda_params"]
    table = (tmp_path / "one" / "results.md").read_text()
    assert "| GDA |" in table and "waffle" in table and "dclip" in table
