"""Test-time adaptation in s3 eval: the seeded single stream over gathered embeddings (design tta.md, T9-T10)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import SYNONYMS, run_eval

from s3_hf.errors import InvalidConfigError
from s3_hf.evaluation import tta
from s3_hf.evaluation.classification import score_logits, score_methods, space_logits
from s3_hf.evaluation.config import EvalConfig, MethodsConfig
from s3_hf.evaluation.results import MethodScores
from s3_hf.tta import TS3Config, tda_config

S3 = "s3/syn/local_center"


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    from s3_hf.engine.core import S3Engine

    return S3Engine.from_pretrained(str(tiny_clip_dir), device="cpu")


@pytest.fixture(scope="module")
def spaces(tiny_model, small_space):
    from s3_hf import build_synonym_space

    model, tokenizer = tiny_model
    label = build_synonym_space(model, tokenizer, list(SYNONYMS), None, templates=["a photo of a {}."])
    return {"label": (label, "label"), S3: (small_space, "local_center")}


@pytest.fixture(scope="module")
def stream_data(small_space):
    """120 unit embeddings of the tiny model's size, and their classes."""
    g = torch.Generator().manual_seed(0)
    emb = F.normalize(torch.randn(120, small_space.config.embedding_dim, generator=g), dim=-1)
    labels = torch.randint(0, len(SYNONYMS), (120,), generator=g).tolist()
    return emb, labels


def adaptive(engine, spaces, stream_data, **flags) -> dict[str, MethodScores]:
    emb, labels = stream_data
    cfg = MethodsConfig(**{"methods": ("label", "s3", "tda", "ts3"), **flags})
    return {m: s.scores for m, s in tta.score_adaptive(engine, cfg, emb, labels, spaces).items()}


def test_the_order_is_a_seeded_permutation_with_a_stable_hash():
    order = tta.permutation(50, 1)
    assert sorted(order.tolist()) == list(range(50))
    assert torch.equal(order, torch.randperm(50, generator=torch.Generator().manual_seed(1)))
    assert tta.permutation_hash(order) == hashlib.sha256(order.to(torch.int64).numpy().tobytes()).hexdigest()
    assert tta.permutation_hash(order) != tta.permutation_hash(tta.permutation(50, 2))


def test_same_seeds_same_orders_and_predictions_other_seeds_differ(engine, spaces, stream_data):
    emb, labels = stream_data
    cfg = MethodsConfig(methods=("tda", "ts3"), tta_seeds=(1, 2))
    first = tta.score_adaptive(engine, cfg, emb, labels, spaces)
    again = tta.score_adaptive(engine, cfg, emb, labels, spaces)
    assert set(first) == {"tda", "ts3"}
    for m in first:
        assert first[m].predictions == again[m].predictions
        assert first[m].scores.to_dict() == again[m].scores.to_dict()
    ts3 = first["ts3"].scores
    assert ts3.stream is not None and ts3.stream.protocol == "single-stream" and ts3.stream.base == S3
    assert ts3.stream.config_hash == TS3Config().config_hash() and ts3.stream.seeds == [1, 2]
    assert ts3.stream.permutation_sha256 == [tta.permutation_hash(tta.permutation(120, s)) for s in (1, 2)]
    assert first["tda"].scores.stream.base == "label"
    assert first["tda"].scores.stream.config_hash == tda_config().config_hash()
    other = tta.score_adaptive(engine, MethodsConfig(methods=("ts3",), tta_seeds=(3, 4)), emb, labels, spaces)
    assert other["ts3"].scores.stream.permutation_sha256[0] not in ts3.stream.permutation_sha256
    # per seed figures, then their mean and (population) std
    top1 = ts3.draws["top1"]
    assert len(top1) == 2 and ts3.top1 == pytest.approx(sum(top1) / 2)
    assert ts3.std["top1"] == pytest.approx(abs(top1[0] - top1[1]) / 2)
    assert ts3.ece is not None and ts3.nll is not None and "ece" in ts3.draws


def test_prequential_first_image_of_the_stream_is_static(engine, spaces, stream_data):
    emb, _ = stream_data
    space, metric = spaces[S3]
    static = space_logits(engine, emb, space, metric)
    order = tta.permutation(len(emb), 1)
    adapted = tta.adapted_logits(engine, space, metric, TS3Config(), emb, order)
    first = int(order[0])
    assert torch.allclose(adapted[first], static[first], atol=1e-5, rtol=0)
    assert not torch.allclose(adapted, static)  # later images see the state


def test_zero_weights_equal_the_static_s3_row(engine, spaces, stream_data, monkeypatch):
    emb, labels = stream_data
    zero = TS3Config(pos_alpha=0.0, neg_alpha=0.0, lam=0.0)
    monkeypatch.setattr(tta, "method_config", lambda method: zero)
    ts3 = adaptive(engine, spaces, stream_data, methods=("ts3",), tta_seeds=(1,))["ts3"]
    space, metric = spaces[S3]
    static = space_logits(engine, emb, space, metric)
    adapted = tta.adapted_logits(engine, space, metric, zero, emb, tta.permutation(len(emb), 1))
    assert torch.allclose(adapted, static, atol=1e-5, rtol=0)
    row = score_logits(static, labels, engine.family.scoring).scores
    assert ts3.top1 == row.top1 and ts3.top5 == row.top5 and ts3.mean_per_class == row.mean_per_class
    assert ts3.ece == pytest.approx(row.ece, abs=1e-6) and ts3.nll == pytest.approx(row.nll, abs=1e-6)


def test_per_process_rows_are_named_apart(engine, spaces, stream_data):
    emb, labels = stream_data
    cfg = MethodsConfig(methods=("ts3",), tta_seeds=(1,), tta_stream="per-process")
    out = tta.score_adaptive(engine, cfg, emb, labels, spaces, processes=2)
    (name,) = out
    assert name == "ts3[per-process,2]"
    assert out[name].scores.stream.protocol == "per-process" and out[name].scores.stream.processes == 2
    single = tta.score_adaptive(engine, MethodsConfig(methods=("ts3",), tta_seeds=(1,)), emb, labels, spaces)
    assert single["ts3"].predictions != out[name].predictions or single["ts3"].scores.nll != out[name].scores.nll


def test_class_sorted_order_is_a_stress_row_named_apart(engine, spaces, stream_data):
    emb, labels = stream_data
    order = tta.stream_order(labels, 2, "class-sorted")
    assert sorted(order.tolist()) == list(range(len(labels)))
    assert [labels[i] for i in order] == sorted(labels)
    seeded = tta.permutation(len(labels), 2).tolist()
    for c in set(labels):  # each class's images keep the seed's order
        assert [i for i in order.tolist() if labels[i] == c] == [i for i in seeded if labels[i] == c]
    assert torch.equal(tta.stream_order(labels, 2), tta.permutation(len(labels), 2))
    cfg = MethodsConfig(methods=("ts3",), tta_seeds=(2,), tta_order="class-sorted")
    out = tta.score_adaptive(engine, cfg, emb, labels, spaces)
    (name,) = out
    assert name == "ts3[class-sorted]" and out[name].scores.stream.order == "class-sorted"
    assert out[name].scores.stream.permutation_sha256 == [tta.permutation_hash(order)]
    both = MethodsConfig(methods=("ts3",), tta_seeds=(2,), tta_order="class-sorted", tta_stream="per-process")
    assert tta.method_name("ts3", both, 2) == "ts3[per-process,2,class-sorted]"
    flags = EvalConfig.from_flags(model="m", benchmarks=["b"], methods=["ts3"], tta_order="class-sorted").to_dict()
    assert flags["tta_order"] == "class-sorted" and EvalConfig.from_flags(**flags).to_dict() == flags


def test_adaptive_rows_beside_static_ones_with_wins_against_label(engine, spaces, stream_data):
    emb, labels = stream_data
    extra = tta.score_adaptive(engine, MethodsConfig(methods=("ts3", "tda")), emb, labels, spaces)
    scores, predictions = score_methods(engine, emb, labels, spaces, extra=extra)
    assert list(scores) == ["label", S3, "ts3", "tda"] and set(predictions) == set(scores)
    back = MethodScores.from_dict(json.loads(json.dumps(scores["ts3"].to_dict())))
    assert back.to_dict() == scores["ts3"].to_dict() and back.stream.protocol == "single-stream"
    assert "stream" not in scores[S3].to_dict()
    from s3_hf.evaluation.report import markdown
    from s3_hf.evaluation.results import BenchmarkResult, RunResult

    table = markdown(RunResult("m", benchmarks={"b": BenchmarkResult("b", samples=120, methods=scores)}))
    section = table.split("## Test-time adaptation")[1]
    assert "| b | ts3 | single-stream | s3/syn/local_center |" in section and "| b | tda |" in section
    plain = markdown(
        RunResult("m", benchmarks={"b": BenchmarkResult("b", samples=120, methods={"label": scores["label"]})})
    )
    assert "Test-time adaptation" not in plain


def test_without_methods_the_configuration_is_unchanged():
    plain = EvalConfig.from_flags(model="m", benchmarks=["b"])
    assert not {"methods", "tta_seeds", "tta_stream"} & set(plain.to_dict())
    picked = EvalConfig.from_flags(model="m", benchmarks=["b"], methods=["label", "ts3"], tta_seeds=[1, 2, 3])
    assert picked.to_dict()["methods"] == ["label", "ts3"] and picked.key() != plain.key()
    assert EvalConfig.from_flags(**picked.to_dict()).to_dict() == picked.to_dict()
    assert picked.methods.reports("label") and picked.methods.reports("label@lower_no_punct")
    assert not picked.methods.reports(S3) and not picked.methods.reports("ensemble")
    assert plain.methods.reports("ensemble") and picked.methods.adaptive == ["ts3"]


@pytest.mark.parametrize(
    "flags",
    [
        {"methods": ["zero"]},
        {"tta_seeds": []},
        {"tta_seeds": [1, 1]},
        {"tta_seeds": [True]},
        {"tta_stream": "x"},
        {"tta_order": "sorted"},
    ],
)
def test_bad_method_options_are_refused(flags):
    with pytest.raises(InvalidConfigError):
        MethodsConfig(**flags)


@pytest.mark.slow  # a multi-process run
def test_tta_two_processes_equal_one(split_folder_tta: Path, tiny_clip_dir, tmp_path):
    """T10: over the same cached features, the single stream gives bitwise the results of one process with two.
    The guarantee is stated on cached features (design tta.md section 4): the encoder's bits may vary with the
    number of processes (their threads), so the second run reads the first one's embedding cache."""
    syn = tmp_path / "syn.json"
    syn.write_text(json.dumps({"classes": {"cat": ["kitty"], "coins": ["money"], "rocket": ["missile"]}}))
    args = ["--benchmarks", str(split_folder_tta), "--model", str(tiny_clip_dir), "--batch-size", "2"]
    args += ["--synonyms", str(syn), "--metrics", "local_center", "--methods", "label,s3,tda,ts3"]
    args += ["--tta-seeds", "1,2,3"]
    run_eval([*args, "--out", str(tmp_path / "one")], 1, tmp_path)
    args += ["--cache-dir", str(tmp_path / "one" / "cache")]
    run_eval([*args, "--out", str(tmp_path / "two")], 2, tmp_path)
    recs = []
    for out in ("one", "two"):
        summary = json.loads((tmp_path / out / "results.json").read_text())
        (bench,) = summary["benchmarks"].values()
        recs.append(json.loads((tmp_path / out / bench["files"]["results"]).read_text()))
        assert summary["processes"] == (1 if out == "one" else 2)
        assert "| ts3 |" in (tmp_path / out / "results.md").read_text()
    one, two = recs
    assert set(one["methods"]) == {"label", "s3/syn/local_center", "tda", "ts3"}
    assert two["embeddings_cached"] and one["methods"] == two["methods"]
    stream = one["methods"]["ts3"]["stream"]
    assert stream["protocol"] == "single-stream" and stream["seeds"] == [1, 2, 3]
    assert len(set(stream["permutation_sha256"])) == 3 and len(one["methods"]["ts3"]["draws"]["top1"]) == 3
    # a per-process run is a differently named row
    run_eval([*args, "--tta-stream", "per-process", "--out", str(tmp_path / "pp")], 2, tmp_path)
    summary = json.loads((tmp_path / "pp" / "results.json").read_text())
    (bench,) = summary["benchmarks"].values()
    methods = json.loads((tmp_path / "pp" / bench["files"]["results"]).read_text())["methods"]
    assert {"ts3[per-process,2]", "tda[per-process,2]"} <= set(methods) and "ts3" not in methods


@pytest.fixture(scope="module")
def split_folder_tta(tmp_path_factory) -> Path:
    """An image folder over 3 classes, 7 images (uneven across 2 processes and batches of 2)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("ttafolder")
    for cls, names in {
        "cat": ["chelsea", "cat"],
        "coins": ["coins"],
        "rocket": ["rocket", "astronaut", "camera", "text"],
    }.items():
        (root / cls).mkdir()
        for n in names:
            Image.fromarray(np.asarray(getattr(data, n)())).convert("RGB").save(root / cls / f"{n}.png")
    return root
