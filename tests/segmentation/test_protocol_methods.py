"""Every method under a segmentation protocol: ``label`` and ``s3/<metric>`` take the protocol's logit scale, area
threshold and PAMR as ``names`` does (``label`` under a preset is ``names`` with one name a class, on every pixel);
the transformers pipeline takes ``protocol=`` as ``s3 segment --protocol`` does; and the issue's bad inputs end in
typed errors through the command line and the Python API."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import torch
from helpers import planted_seg_folder
from PIL import Image
from test_protocols import reference_label_map

from s3_hf.segmentation import protocols

# class 0 is not called "background", as in the references' cls_voc21.txt; one name a class
VOC_ONE = ["sky", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "table"]
VOC_ONE += ["dog", "horse", "motorbike", "person", "plant", "sheep", "sofa", "train", "tv"]


def spread_texts(self, texts, kwargs):
    """Text features for the tiny random model, whose texts are near-identical: one seeded vector per text."""
    rows = [torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(t.encode()))) for t in texts]
    return torch.stack(rows)


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    from s3_hf.engine.core import S3Engine

    return S3Engine.from_pretrained(tiny_clip_dir, device="cpu")


@pytest.fixture(scope="module")
def voc_one(tmp_path_factory, photos):
    """Two real photos at 48x40 with planted masks and a 21-line class file, one name a line."""
    return planted_seg_folder(tmp_path_factory.mktemp("voc_one"), photos, VOC_ONE)


def run_eval(monkeypatch, folder, args, tmp_path) -> dict[str, list[torch.Tensor]]:
    """``s3 eval --task segmentation`` on ``folder``; per method its label maps, image by image."""
    import s3_hf.evaluation.segmentation as seg
    from s3_hf.cli import main

    maps: list[torch.Tensor] = []
    rule = seg.names_label_map

    def spy(*a, **kw):
        maps.append(rule(*a, **kw))
        return maps[-1]

    monkeypatch.setattr(seg, "names_label_map", spy)
    out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
    base = ["eval", "--task", "segmentation", "--benchmarks", f"voc21={folder}", "--metrics", "label,nearest_point"]
    assert main([*base, *args, "--out", str(out)]) == 0
    methods = list(json.loads((out / "segmentation.json").read_text())["benchmarks"]["voc21"]["methods"])
    assert methods == ["label", "names", "s3/label", "s3/nearest_point"]
    assert len(maps) == 2 * len(methods)  # every method of every image goes through the names rule
    return {m: maps[k :: len(methods)] for k, m in enumerate(methods)}


PRESETS = [
    ("naclip", ["--short-side", "64", "--window", "32", "--stride", "16"]),  # PAMR, logit scale 40, threshold
    ("sclip", ["--short-side", "64", "--window", "32", "--stride", "16"]),  # logit scale 65, area threshold
    ("clearclip", ["--short-side", "48", "--window", "32", "--stride", "16"]),  # logit scale 50, threshold 0.5
]


@pytest.mark.parametrize(("protocol", "extra"), PRESETS)
def test_label_under_a_preset_is_names_with_one_name_a_class(
    protocol, extra, voc_one, engine, tiny_clip_dir, tmp_path, monkeypatch
):
    from s3_hf.models.encoders.hf import TransformersEncoder

    monkeypatch.setattr(TransformersEncoder, "_text_features", spread_texts)
    args = ["--protocol", protocol, "--model", str(tiny_clip_dir), *extra]
    maps = run_eval(monkeypatch, voc_one, args, tmp_path)
    overrides = dict(zip(("short_side", "window", "stride"), map(int, extra[1::2]), strict=False))
    values = protocols.resolve(protocol, "voc21", **overrides)
    lines, wants = [[n] for n in VOC_ONE], []
    for i in range(2):
        assert torch.equal(maps["label"][i], maps["names"][i])  # every pixel
        # s3/label scores each class by its label alone: the same maps through the same rule
        assert torch.equal(maps["s3/label"][i], maps["label"][i])
        want = reference_label_map(engine, Image.open(voc_one / "images" / f"{i}.png"), values, lines)
        assert (maps["label"][i] == want).float().mean() >= 0.999
        wants.append(want)
    assert len(torch.unique(torch.stack(wants))) > 1  # not trivially one class


@pytest.mark.parametrize(("protocol", "extra"), PRESETS)
def test_under_a_preset_no_method_uses_the_models_own_logit_scale(
    protocol, extra, voc_one, tiny_clip_dir, tmp_path, monkeypatch
):
    """The probability threshold is read at the protocol's scale for every method: the model's own scale changes
    no label map (under ``s3`` with a threshold it does: the check can see a scale)."""
    from s3_hf.models.encoders.hf import TransformersEncoder

    monkeypatch.setattr(TransformersEncoder, "_text_features", spread_texts)
    args = ["--protocol", protocol, "--model", str(tiny_clip_dir), *extra]
    first = run_eval(monkeypatch, voc_one, args, tmp_path)
    monkeypatch.setattr(TransformersEncoder, "logit_scale", property(lambda self: 3.0))
    second = run_eval(monkeypatch, voc_one, args, tmp_path)
    for method in first:
        for a, b in zip(first[method], second[method], strict=True):
            assert torch.equal(a, b), method
    # the protocol's scale is what the threshold reads: at a tiny one every probability is about 1/21, below the
    # threshold, and every pixel of every method goes to class 0
    flat = run_eval(monkeypatch, voc_one, [*args, "--logit-scale", "0.001"], tmp_path)
    for method in first:
        assert any(bool((a != 0).any()) for a in first[method]), method
        assert all(bool((a == 0).all()) for a in flat[method]), method


def test_s3_method_under_a_preset_follows_the_rule_on_its_class_scores(
    voc_one, engine, tiny_clip_dir, tmp_path, monkeypatch
):
    """``s3/nearest_point`` under SCLIP's VOC21 values, head by head: its per-class ``s_c(v)`` maps (windows
    averaged), upsampled, softmax over classes at scale 65, SCLIP's area threshold, threshold 0.95 to class 0."""
    import torch.nn.functional as F

    from s3_hf.evaluation.segmentation import load, method_requests
    from s3_hf.models.encoders.hf import TransformersEncoder
    from s3_hf.segmentation.logits import segment_logits_many
    from s3_hf.text.templates import resolve_templates

    monkeypatch.setattr(TransformersEncoder, "_text_features", spread_texts)
    extra = ["--short-side", "64", "--window", "32", "--stride", "16"]
    maps = run_eval(monkeypatch, voc_one, ["--protocol", "sclip", "--model", str(tiny_clip_dir), *extra], tmp_path)
    values = protocols.resolve("sclip", "voc21", short_side=64, window=32, stride=16)
    data = load(f"voc21={voc_one}")
    templates = resolve_templates(values.templates)
    resolved = engine.resolve(method_requests(engine, data, ["nearest_point"], templates, True)["s3/nearest_point"])
    options = values.segment_options()
    for i in range(2):
        image = Image.open(voc_one / "images" / f"{i}.png").convert("RGB")
        scores = segment_logits_many(engine, image, [resolved], options, [True])[0]
        full = F.interpolate(scores[None], size=(40, 48), mode="bilinear", align_corners=False)[0]
        probs = (full * values.logit_scale).softmax(0)
        area = torch.stack([(probs.argmax(0) == k).sum() for k in range(1, len(VOC_ONE))]).float()
        probs[1:] *= (area > values.area_threshold * area.sum()).float()[:, None, None]
        want = probs.argmax(0)
        want[probs.max(0).values < values.prob_threshold] = 0
        assert (maps["s3/nearest_point"][i] == want).float().mean() >= 0.999


# ---------------------------------------------------------------------------------------------- pipeline

CLASS_LINES = [["sky", "wall", "tree"], ["cat", "kitty"], ["dog", "puppy", "kitty"], ["cup"], ["grass", "field"]]


@pytest.fixture(scope="module")
def seg_pipe(tiny_clip_dir):
    from transformers import pipeline

    import s3_hf

    return pipeline(s3_hf.SEGMENTATION_TASK, model=str(tiny_clip_dir))


@pytest.mark.parametrize(
    ("protocol", "benchmark", "overrides"),
    [
        ("naclip", "voc21", {"short_side": 64}),  # whole image, PAMR, threshold to index 0
        ("sclip", "voc21", {"short_side": 64, "window": 32, "stride": 16}),  # area threshold, logit scale 65
        ("clearclip", "context60", {"short_side": 48, "window": 32, "stride": 16}),
    ],
)
def test_pipeline_under_a_preset_equals_s3_segment(
    protocol, benchmark, overrides, seg_pipe, tiny_clip_dir, photos, tmp_path, monkeypatch
):
    from s3_hf.cli import main
    from s3_hf.models.encoders.hf import TransformersEncoder

    monkeypatch.setattr(TransformersEncoder, "_text_features", spread_texts)
    Image.open(photos[1]).convert("RGB").resize((60, 45)).save(tmp_path / "photo.png")
    (tmp_path / "classes.txt").write_text("\n".join(", ".join(line) for line in CLASS_LINES) + "\n")
    args = ["segment", str(tmp_path / "photo.png"), "--class-names", str(tmp_path / "classes.txt")]
    args += [
        "--protocol",
        protocol,
        "--benchmark",
        benchmark,
        "--out",
        str(tmp_path / "out"),
        "--model",
        str(tiny_clip_dir),
    ]
    for name, value in overrides.items():
        args += ["--" + name.replace("_", "-"), str(value)]
    assert main(args) == 0
    want = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    record = json.loads((tmp_path / "out" / "segments.json").read_text())

    labels, synonyms = [line[0] for line in CLASS_LINES], {line[0]: line[1:] for line in CLASS_LINES}
    out = seg_pipe(
        str(tmp_path / "photo.png"),
        candidate_labels=labels,
        synonyms=synonyms,
        protocol=protocol,
        benchmark=benchmark,
        return_label_map=True,
        **overrides,
    )
    got = np.asarray(out["label_map"])
    assert got.shape == want.shape == (45, 60)
    assert np.array_equal(got, want)  # every pixel
    assert len(np.unique(want)) > 1
    assert out["protocol"] == record["protocol"]  # the same values, with their sources
    assert out["protocol"]["protocol"] == protocol and out["protocol"]["sources"]["short_side"] == "override"
    masks = [np.asarray(s["mask"]) // 255 for s in out["segments"]]
    assert (sum(masks) == 1).all() and all(s["score"] is None for s in out["segments"])
    assert {s["label"] for s in out["segments"]} == {labels[c] for c in np.unique(want)}


def test_pipeline_takes_the_s3_protocol_as_its_own_options(seg_pipe, photos):
    options = {"short_side": 40, "window": 32, "stride": 16}
    plain = seg_pipe(str(photos[0]), candidate_labels=["cat", "sky"], return_label_map=True, **options)
    under = seg_pipe(str(photos[0]), candidate_labels=["cat", "sky"], protocol="s3", return_label_map=True, **options)
    assert np.array_equal(np.asarray(plain["label_map"]), np.asarray(under["label_map"]))
    assert under["protocol"]["protocol"] == "s3" and under["protocol"]["window"] == 32
    assert "protocol" not in plain
    listed = seg_pipe(str(photos[0]), candidate_labels=["cat", "sky"], protocol="s3", **options)
    assert set(listed) == {"segments", "protocol"}


def test_pipeline_protocol_mistakes_are_typed(seg_pipe, photos, tmp_path):
    from s3_hf.errors import (
        BackgroundMissingError,
        InvalidConfigError,
        InvalidLabelsError,
        ProtocolBenchmarkError,
        UnknownProtocolError,
    )

    image = str(photos[0])
    with pytest.raises(UnknownProtocolError, match="use one of s3, sclip, naclip, clearclip"):
        seg_pipe(image, candidate_labels=["cat"], protocol="nope", benchmark="voc21")
    with pytest.raises(ProtocolBenchmarkError, match="Name the benchmark"):
        seg_pipe(image, candidate_labels=["cat"], protocol="naclip")
    with pytest.raises(InvalidLabelsError, match="protocol='s3' with a space"):
        seg_pipe(image, synonym_space=str(tmp_path), protocol="naclip", benchmark="voc21")
    with pytest.raises(InvalidConfigError, match="metric do not apply"):
        seg_pipe(image, candidate_labels=["cat"], protocol="naclip", benchmark="voc21", metric="nearest_point")
    with pytest.raises(InvalidLabelsError, match="not one of candidate_labels"):
        seg_pipe(image, candidate_labels=["cat"], synonyms={"dgo": ["puppy"]}, protocol="naclip", benchmark="voc21")
    small = {"short_side": 40, "window": 32, "stride": 16}
    with pytest.raises(BackgroundMissingError, match="give background_index"):
        seg_pipe(image, candidate_labels=["cat", "dog"], background_threshold=0.3, **small)
    with pytest.raises(InvalidConfigError, match="PAMR dilation 400 does not fit a 300x451 image"):
        seg_pipe(
            image, candidate_labels=["cat"], protocol="naclip", benchmark="voc21", pamr_dilations=(8, 400), **small
        )


# ---------------------------------------------------------------------------------------------- bad input

# the bad inputs through the command line: one line on stderr, exit 2, no traceback; {...}: test paths
CLI_MISTAKES = [
    (
        "unknown protocol (segment)",
        "segment {img} --labels cat,dog --protocol nope --benchmark voc21",
        "use one of s3,",
    ),
    ("unknown protocol (eval)", "eval --task segmentation --protocol nope --benchmarks voc21={voc}", "use one of s3,"),
    (
        "threshold without a background (segment)",
        "segment {img} --labels cat,dog --background-threshold 0.3",
        "--background-index; add one or drop the threshold",
    ),
    (
        "threshold without a background (eval)",
        "eval --task segmentation --benchmarks voc21={voc} --background-threshold 0.3",
        "Give the background's index",
    ),
    (
        "PAMR dilations that do not fit (segment)",
        "segment {img} --labels cat,dog --protocol naclip --benchmark voc21 --short-side 64 --pamr-dilations 8,64",
        "PAMR dilation 64 does not fit a 45x60 image",
    ),
    (
        "PAMR dilations that do not fit (eval)",
        "eval --task segmentation --protocol naclip --benchmarks voc21={voc} --short-side 64 --pamr-dilations 8,48",
        "PAMR dilation 48 does not fit a 40x48 image",
    ),
    ("augment views 0 (fewshot)", "fewshot {sup} --labels cat,dog --augment-views 0", "use 10"),
    ("augment views 0 (eval)", "eval --benchmarks {sup} --shots 1 --augment-views 0", "use 10"),
]


@pytest.mark.parametrize(("what", "command", "message"), CLI_MISTAKES, ids=[c[0] for c in CLI_MISTAKES])
def test_bad_input_is_one_typed_line_on_the_command_line(
    what, command, message, voc_one, tiny_clip_dir, tmp_path, capsys
):
    from s3_hf.cli import main

    Image.new("RGB", (60, 45), "white").save(tmp_path / "small.png")
    paths = {"img": tmp_path / "small.png", "voc": voc_one, "sup": tmp_path}
    args = [a.format(**paths) for a in command.split()]
    assert main([*args, "--model", str(tiny_clip_dir), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "Loading weights" not in line]  # a progress bar
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert message in lines[0]
    assert not (tmp_path / "out" / "segments.json").exists() and not (tmp_path / "out" / "segmentation.json").exists()


def _pamr_misfit() -> None:
    from s3_hf.segmentation.pamr import pamr

    pamr(torch.rand(3, 12, 40), torch.rand(2, 12, 40), 10, (8, 16))


def _names_rule_without_background() -> None:
    from s3_hf.segmentation.names import NamesRule

    NamesRule(40.0, prob_thd=0.1)


def _label_map_without_background() -> None:
    from s3_hf.segmentation.label_maps import label_map

    label_map(torch.rand(2, 4, 4), ["cat", "dog"], 0.3)


def _eval_config_without_background(voc: str) -> None:
    from s3_hf.evaluation.config import EvalConfig
    from s3_hf.evaluation.segmentation import load_all

    flags = dict(variant="naclip", short_side=336, window=224, stride=112, fast_decode=True)
    load_all(EvalConfig.from_flags(model="m", benchmarks=[f"voc21={voc}"], background_threshold=0.3, **flags))


def _augment_views_zero() -> None:
    from s3_hf.fewshot import SSPConfig

    SSPConfig(augment_views=0)


# the same through the Python API: (call, its typed error, what the message tells the user to do)
API_MISTAKES = [
    ("unknown protocol", lambda voc: protocols.resolve("nope", "voc21"), "UnknownProtocolError", "use one of s3,"),
    ("names rule threshold", lambda voc: _names_rule_without_background(), "BackgroundMissingError", "give background"),
    ("label map threshold", lambda voc: _label_map_without_background(), "BackgroundMissingError", "give background"),
    ("eval threshold", _eval_config_without_background, "EvalError", "Give the background's index"),
    ("PAMR misfit", lambda voc: _pamr_misfit(), "InvalidConfigError", "Use smaller dilations"),
    ("augment views 0", lambda voc: _augment_views_zero(), "InvalidConfigError", "use 10"),
]


@pytest.mark.parametrize(("what", "call", "error", "message"), API_MISTAKES, ids=[c[0] for c in API_MISTAKES])
def test_bad_input_is_a_typed_error_in_python(what, call, error, message, voc_one):
    from s3_hf import errors

    with pytest.raises(getattr(errors, error)) as caught:
        call(str(voc_one))
    assert isinstance(caught.value, errors.S3Error) and message in str(caught.value)
