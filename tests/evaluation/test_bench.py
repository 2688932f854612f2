"""`s3 bench`: the alternating-timing helper on fake clocks, the typed rows and their JSON shape, the memory probe,
parts that say why they were skipped; and end to end on a tiny model and a handful of real photos (timings are not
asserted)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from s3_hf.cli import main
from s3_hf.space.scoring import METRICS


@pytest.mark.slow
def test_bench_writes_json_table_and_plot(tiny_clip_dir, photos, tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", "--model", str(tiny_clip_dir), "--images", str(photos[0].parent), "--out", str(out)]
    args += ["--classes", "3,7", "--batch-sizes", "1,2", "--build-classes", "3", "--build-concepts", "2,4"]
    args += ["--num-images", "4", "--repeats", "2", "--device", "cpu"]
    assert main(args) == 0
    results = json.loads((out / "bench.json").read_text())
    assert results["environment"]["random_weights"] is False
    assert [(r["batch_size"], r["classes"]) for r in results["inference"]] == [(1, 3), (1, 7), (2, 3), (2, 7)]
    for row in results["inference"]:
        keys = ["bare_img_s", "decode_img_s", "transformers_img_s", "bare_over_decode"]
        keys += [f"s3_{m}_{kind}" for m in METRICS for kind in ("img_s", "ratio", "own_ms", "own_share")]
        for key in keys:
            assert row[key] > 0, key
    assert [(r["classes"], r["concepts"], r["prompts"]) for r in results["build"]] == [(3, 2, 9), (3, 4, 15)]
    assert all(0 <= r["geometry_share"] <= 1 for r in results["build"])
    assert results["artifact"]["classes"] == 7 and results["artifact"]["bytes"] > 0
    assert results["memory"]["bare_peak_bytes"] > 0 and results["memory"]["s3_peak_bytes"] > 0
    table = (out / "bench.md").read_text()
    assert "| float32 | 2 | 7 |" in table and "local_center" in table and "Random weights" not in table
    assert "own work per batch" in table
    assert (out / "bench.png").stat().st_size > 1000


def test_bench_fewshot_part(tiny_clip_dir, photos, tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--model", str(tiny_clip_dir), "--images", str(photos[0].parent), "--out", str(out)]
    args += ["--parts", "fewshot", "--no-memory", "--fewshot-classes", "5", "--fewshot-shots", "1,3"]
    args += ["--num-images", "4", "--batch-sizes", "2", "--repeats", "1", "--device", "cpu", "--classes", "5"]
    assert main(args) == 0
    results = json.loads((out / "bench.json").read_text())
    few = results["fewshot"]
    assert few["classes"] == 5 and few["patches"] == 16 and few["support_img_s"] > 0
    assert [(r["shots"], r["support_images"]) for r in few["fit"]] == [(1, 5), (3, 15)]
    (row,) = few["inference"]
    assert row["batch_size"] == 2 and row["shots"] == 3 and row["ssp_over_b"] > 0 and row["ssp_over_s3"] > 0
    table = (out / "bench.md").read_text()
    assert results["inference"] == [] and "## Few-shot (SSP) at 5 classes" in table and "own work" not in table


def test_model_and_images_come_from_arguments_or_variables(tmp_path, monkeypatch):
    from s3_hf.errors import EvalError
    from s3_hf.evaluation import bench

    for name in ("S3_BENCH_MODEL", "S3_BENCH_IMAGES", "S3_IMAGENET_SAMPLE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(EvalError, match=r"--model .* S3_BENCH_MODEL.* --images DIR, or set S3_BENCH_IMAGES"):
        bench.locations()
    assert bench.locations("m", str(tmp_path)) == ("m", str(tmp_path))
    monkeypatch.setenv("S3_BENCH_MODEL", "from-env")
    monkeypatch.setenv("S3_IMAGENET_SAMPLE", str(tmp_path))  # the bench images default to the ImageNet sample
    assert bench.locations() == ("from-env", str(tmp_path))
    monkeypatch.setenv("S3_BENCH_IMAGES", str(tmp_path / "missing"))
    with pytest.raises(EvalError, match="not found"):
        bench.locations()


@pytest.mark.parametrize("name", ["siglip-base-patch16-224", "siglip2-base-patch16-224"])
def test_shapes_folders_have_the_published_sizes(name, tiny_clip_dir, tmp_path):
    from transformers import AutoConfig, AutoImageProcessor

    from s3_hf.evaluation.shapes import write_shapes
    from s3_hf.models.loading import has_weights

    folder = write_shapes(name, tmp_path / name, tiny_clip_dir)
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == name.split("-")[0] and not has_weights(folder)
    assert (
        config.vision_config.hidden_size,
        config.vision_config.num_hidden_layers,
        config.vision_config.patch_size,
    ) == (
        768,
        12,
        16,
    )
    assert config.text_config.max_position_embeddings == 64 and AutoImageProcessor.from_pretrained(folder) is not None


def test_unknown_shapes_are_an_eval_error(tmp_path):
    from s3_hf.errors import EvalError
    from s3_hf.evaluation.shapes import write_shapes

    with pytest.raises(EvalError, match="Unknown shapes"):
        write_shapes("vit-huge", tmp_path, tmp_path)


@pytest.mark.slow
def test_bench_segmentation_part(tiny_clip_dir, photos, tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--model", str(tiny_clip_dir), "--images", str(photos[0].parent), "--out", str(out)]
    args += ["--parts", "segmentation", "--repeats", "1", "--device", "cpu", "--seg-classes", "5"]
    args += ["--seg-short-sides", "48,64", "--seg-images", "1"]
    from s3_hf.evaluation import bench

    cfg_defaults = bench.BenchConfig(model="", images="")
    assert cfg_defaults.seg_classes == 150 and tuple(cfg_defaults.seg_short_sides) == (336, 448)
    assert main(args) == 0
    seg = json.loads((out / "bench.json").read_text())["segmentation"]
    assert [r["variant"] for r in seg["rows"] if r["short_side"] == 48] == [
        "none",
        "maskclip",
        "sclip",
        "clearclip",
        "naclip",
    ]
    for r in seg["rows"]:
        assert r["img_s"] > 0 and r["dense_img_s"] > 0 and r["plain_img_s"] > 0 and r["scoring_share"] > 0
        assert r["dense_ratio"] == pytest.approx(r["img_s"] / r["dense_img_s"])  # end to end / dense forward
    assert seg["memory"]["peak_bytes"] > 0 and "## Segmentation" in (out / "bench.md").read_text()
    assert "| end to end / dense forward |" in (out / "bench.md").read_text()


@pytest.mark.slow
def test_bench_images_part(tiny_clip_dir, photos, tmp_path):
    """The image path on normal and 12 MP photos, exact and fast decoding; the large set is made on the fly."""
    out = tmp_path / "bench"
    args = ["bench", "--model", str(tiny_clip_dir), "--images", str(photos[0].parent), "--out", str(out)]
    args += ["--parts", "images", "--repeats", "1", "--device", "cpu", "--num-images", "2", "--no-memory"]
    args += ["--workers", "2"]
    assert main(args) == 0
    images = json.loads((out / "bench.json").read_text())["images"]
    rows = images["rows"]
    assert [(r["set"], r["decode"]) for r in rows] == [
        ("normal", "exact"),
        ("normal", "fast"),
        ("12MP", "exact"),
        ("12MP", "fast"),
    ]
    for r in rows:
        assert r["decode_img_s"] > 0 and r["s3_img_s"] > 0 and r["transformers_img_s"] > 0 and r["s3_over_bare"] > 0
        for key in ("bare_workers", "s3_workers", "eval", "eval_workers"):  # each without and with image workers
            assert r[f"{key}_img_s"] > 0
        assert (
            r["device"] == "cpu"
            and r["workers"] == 2
            and r["s3_workers_over_bare_workers"] > 0
            and r["eval_workers_over_eval"] > 0
        )
    agree = images["decode_agreement"]
    assert 0 <= agree["top1_agreement"] <= 1 and 0 <= agree["mean_abs_prob_diff"] <= agree["max_abs_prob_diff"] <= 1
    has_torchvision = importlib.util.find_spec("torchvision") is not None
    assert (images["backends"] is not None) == has_torchvision  # the backends are compared where both exist
    assert "## The image path" in (out / "bench.md").read_text()


# ------------------------------------------------------------------------------------------ timing helper
class FakeClock:
    """A clock that each fake call moves forward by the seconds it is given, and a record of the calls."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def call(self, name: str, seconds: list[float]):
        def run() -> None:
            self.calls.append(name)
            self.now += seconds.pop(0)

        return run


def test_alternate_runs_the_calls_in_turn_after_one_warmup_round():
    from s3_hf.evaluation.bench.timing import alternate

    clock = FakeClock()
    syncs = []
    calls = {"a": clock.call("a", [100.0, 1.0, 2.0, 3.0]), "b": clock.call("b", [100.0, 4.0, 4.0, 4.0])}
    t = alternate(calls, 3, sync=lambda: syncs.append(clock.calls[-1]), clock=clock)
    assert clock.calls == ["a", "b", "a", "b", "a", "b", "a", "b"]  # warm-up round untimed, then a, b per round
    assert t.seconds == {"a": [1.0, 2.0, 3.0], "b": [4.0, 4.0, 4.0]}
    assert syncs == ["b", "a", "b", "a", "b", "a", "b"]  # after the warm-up round, and before every reading


def test_alternate_without_warmup_and_at_least_one_round():
    from s3_hf.evaluation.bench.timing import alternate

    clock = FakeClock()
    t = alternate({"x": clock.call("x", [5.0])}, 0, warmup=False, clock=clock)
    assert clock.calls == ["x"] and t.seconds == {"x": [5.0]}


def test_timings_medians_rates_and_ratios_pair_the_rounds():
    from s3_hf.evaluation.bench.timing import Timings, median_time

    t = Timings({"s3": [2.0, 1.0, 9.0], "b": [1.0, 2.0, 3.0]})
    assert t.median("s3") == 2.0 and t.rate("s3", 10) == 5.0 and t.rate("b", 10) == 5.0
    # per round speed(s3) / speed(b) = t_b / t_s3: 0.5, 2.0, 1/3 -> median 0.5 (not a ratio of the medians, 1.0)
    assert t.ratio("s3", "b") == 0.5 and t.ratio("b", "s3") == 2.0
    runs = []
    assert median_time(lambda: runs.append(1), 3, lambda: None) >= 0 and len(runs) == 4  # a warm-up, then 3 timed


# --------------------------------------------------------------------------------------------- typed rows
def test_inference_row_keeps_the_json_keys_and_reads_them_back():
    from s3_hf.evaluation.bench.rows import InferenceRow, MetricTiming

    metrics = {m: MetricTiming(19.0, 0.95, 1.0, 0.01) for m in METRICS}
    row = InferenceRow("float32", 2, 7, 10, 30.0, 20.0, 1.5, metrics)
    data = row.to_dict()
    first = ["dtype", "batch_size", "classes", "concepts", "bare_img_s", "decode_img_s", "bare_over_decode"]
    assert list(data)[:7] == first
    assert data["s3_local_center_img_s"] == 19.0 and data["s3_label_own_share"] == 0.01
    assert data["transformers_img_s"] is None and list(data)[-1] == "transformers_img_s"
    assert len(data) == 8 + 4 * len(METRICS)
    assert InferenceRow.from_dict(json.loads(json.dumps(data))) == row


def test_image_row_leaves_out_the_transformers_columns_where_it_cannot_run():
    from s3_hf.evaluation.bench.rows import ImageRow

    values = dict(set="normal", decode="fast", images=2, workers=2, device="cpu", processor="CLIPImageProcessor")
    rates = {k: 1.0 for k in ("bare_img_s", "bare_workers_img_s", "decode_img_s", "s3_img_s", "s3_workers_img_s")}
    rates |= {"eval_img_s": 1.0, "eval_workers_img_s": 1.0, "s3_over_bare": 1.0, "s3_workers_over_bare": 1.0}
    rates |= {"s3_workers_over_bare_workers": 1.0, "eval_workers_over_eval": 1.0}
    without = ImageRow(**values, **rates, transformers_img_s=None)
    assert "transformers_img_s" not in without.to_dict() and "s3_over_transformers" not in without.to_dict()
    with_hf = ImageRow(**values, **rates, transformers_img_s=0.5, s3_over_transformers=4.0)
    assert with_hf.to_dict()["transformers_img_s"] == 0.5 and with_hf.to_dict()["s3_over_transformers"] == 4.0
    assert ImageRow.from_dict(without.to_dict()) == without and ImageRow.from_dict(with_hf.to_dict()) == with_hf


def test_memory_and_whole_results_round_trip():
    from s3_hf.evaluation.bench.rows import (
        BackendTimes,
        BenchResults,
        BuildRow,
        Environment,
        ImagesResult,
        MemoryProbe,
        MemoryResult,
    )

    memory = MemoryResult(MemoryProbe(100, 50), MemoryProbe(150, 40))
    assert memory.to_dict() == {
        "bare_peak_bytes": 100,
        "bare_resident_bytes": 50,
        "s3_peak_bytes": 150,
        "s3_resident_bytes": 40,
        "ratio": 1.5,
        "resident_ratio": 0.8,
    }
    env = Environment("m", True, "cpu", "CPU", "2", "5", "3.12", 4, 10, 3, "today")
    results = BenchResults(env, build=[BuildRow(3, 2, 9, 1.0, 0.5, 1 / 3)], memory=memory)
    results.images = ImagesResult([], BackendTimes({"pil": 3.0, "torchvision": 6.0}, {"pil": "P", "torchvision": "T"}))
    results.skipped["fewshot"] = "it needs --fewshot-shots"
    data = json.loads(json.dumps(results.to_dict()))
    assert list(data) == ["environment", "inference", "build", "images", "memory", "skipped"]
    assert data["images"]["backends"]["torchvision_preprocess_img_s"] == 6.0 and data["inference"] == []
    assert BenchResults.from_dict(data) == results


# ------------------------------------------------------------------------------------ prerequisites, probe
def test_a_part_without_what_it_needs_is_skipped_and_says_why(tiny_clip_dir, photos, tmp_path):
    from s3_hf.evaluation import bench

    cfg = bench.BenchConfig(str(tiny_clip_dir), str(photos[0].parent), out=str(tmp_path), parts=("build",))
    cfg.build_concepts, cfg.memory = (), False
    lines: list[str] = []
    results = bench.run(cfg, log=lines.append)
    assert results.build == [] and results.skipped == {"build": "it needs --build-classes and --build-concepts"}
    assert "[build] skipped: it needs --build-classes and --build-concepts" in lines
    written = json.loads((tmp_path / "bench.json").read_text())
    assert written["build"] == [] and written["skipped"] == results.skipped
    assert "Skipped build: it needs --build-classes and --build-concepts." in (tmp_path / "bench.md").read_text()


def test_unknown_parts_are_an_eval_error():
    from s3_hf.errors import EvalError
    from s3_hf.evaluation import bench

    with pytest.raises(EvalError, match=r"Unknown bench part.*segmentaton.*choose from"):
        bench.BenchConfig(model="m", images="i", parts=("inference", "segmentaton"))


def test_the_memory_probe_runs_a_workload_and_prints_what_it_took(tiny_clip_dir, photos, capsys):
    from s3_hf.evaluation.bench import BenchConfig, probe

    cfg = BenchConfig(str(tiny_clip_dir), str(photos[0].parent))
    assert probe.main(["bare", json.dumps(cfg.to_dict())]) == 0
    measured = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert measured["peak_bytes"] >= measured["resident_bytes"] > 0
    assert probe.main(["everything", "{}"]) == 2 and "usage" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- tta part
def test_tta_rows_round_trip_and_say_whether_they_meet_the_bounds():
    from s3_hf.evaluation.bench.rows import BenchResults, Environment, TTAMemory, TTAResult, ZeroCost

    memory = TTAMemory(5, 8, 3, 2, 20, 1223, 1223, 1223)
    result = TTAResult(5, 4, 2, 0.5, 20.0, 0.025, memory)
    zero = TTAResult(5, 4, 2, 0.5, 20.0, 0.025, memory, ZeroCost(4, 64, 2500.0, 37.0, 67.6))
    assert TTAResult.from_dict(json.loads(json.dumps(zero.to_dict()))) == zero
    data = json.loads(json.dumps(result.to_dict()))
    assert data["memory"]["bounded"] is True and data["within_target"] is True and data["overhead"] == 0.025
    assert list(data)[:6] == ["classes", "images", "batch_size", "adapt_ms", "encode_ms", "overhead"]
    assert TTAResult.from_dict(data) == result
    assert not TTAResult(5, 4, 2, 5.0, 20.0, 0.25, memory).within_target
    env = Environment("m", True, "cpu", "CPU", "2", "5", "3.12", 4, 10, 3, "today")
    whole = BenchResults(env, tta=result)
    assert BenchResults.from_dict(json.loads(json.dumps(whole.to_dict()))) == whole


def test_the_memory_bound_is_the_design_formula_and_a_state_stays_within_it():
    from s3_hf.evaluation.bench.adaptation import class_vectors, formula_bytes, stream_memory
    from s3_hf.evaluation.bench.rows import TTAMemory
    from s3_hf.tta import TS3Config, TS3State

    # C(S+ + S-)(D+2)·4 + C²S-/8 + (C+1)(D+1)·4 with C = 5, D = 8, S+ = 3, S- = 2: 1000 + 7 (50 bits) + 216
    assert formula_bytes(5, 8, 3, 2) == 1223 and formula_bytes(1000, 512, 3, 2) == 12_584_052
    state = TS3State(TS3Config(), [f"c{i}" for i in range(5)], 8, 100.0)
    memory = stream_memory(state, class_vectors(5, 8), 20)
    assert state.n_seen == 200 and memory.images == 20 and memory.formula_bytes == 1223
    assert memory.bytes_n == memory.bytes_10n <= memory.formula_bytes and memory.bounded
    assert max(state.pos.sizes()) <= 3 and max(state.neg.sizes()) <= 2
    assert not TTAMemory(5, 8, 3, 2, 20, 1000, 1100, 1223).bounded  # grew with the stream
    assert not TTAMemory(5, 8, 3, 2, 20, 1300, 1300, 1223).bounded  # above the formula


def test_bench_tta_part(tiny_clip_dir, photos, tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--model", str(tiny_clip_dir), "--images", str(photos[0].parent), "--out", str(out)]
    args += ["--parts", "tta", "--no-memory", "--tta-classes", "20", "--tta-stream", "30", "--num-images", "3"]
    args += ["--batch-sizes", "2", "--repeats", "1", "--device", "cpu"]
    assert main(args) == 0
    tta = json.loads((out / "bench.json").read_text())["tta"]
    assert (tta["classes"], tta["images"], tta["batch_size"]) == (20, 3, 2)
    assert tta["adapt_ms"] > 0 and tta["encode_ms"] > 0 and tta["overhead"] > 0
    assert tta["memory"]["images"] == 30 and tta["memory"]["bounded"] is True
    assert tta["memory"]["bytes_n"] == tta["memory"]["bytes_10n"] <= tta["memory"]["formula_bytes"]
    zero = tta["zero"]  # ZERO-S^3 against static S^3 on the same images: 64 views each
    assert (zero["images"], zero["views"]) == (3, 64) and zero["zero_ms"] > zero["static_ms"] > 0 and zero["ratio"] > 1
    table = (out / "bench.md").read_text()
    assert "## Test-time adaptation (TS^3) at 20 classes" in table and "of decode + encode" in table
    assert "ZERO-S^3 (stateless: 64 views per image" in table


def test_the_tta_part_is_skipped_without_images(tiny_clip_dir, tmp_path):
    from s3_hf.evaluation import bench

    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = bench.BenchConfig(str(tiny_clip_dir), str(empty), out=str(tmp_path / "out"), parts=("tta",), memory=False)
    lines: list[str] = []
    results = bench.run(cfg, log=lines.append)
    assert results.tta is None and "holds none" in results.skipped["tta"]
    assert any(line.startswith("[tta] skipped: it needs images") for line in lines)
    assert "Skipped tta: it needs images" in (tmp_path / "out" / "bench.md").read_text()
