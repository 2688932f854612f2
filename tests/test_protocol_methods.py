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
from PIL import Image
from test_protocols import reference_label_map

from s3_hf import protocols

# class 0 is not called "background", as in the references' cls_voc21.txt; one name a class
VOC_ONE = ["sky", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "table"]
VOC_ONE += ["dog", "horse", "motorbike", "person", "plant", "sheep", "sofa", "train", "tv"]


def spread_texts(self, texts, kwargs):
    """Text features for the tiny random model, whose texts are near-identical: one seeded vector per text."""
    rows = [torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(t.encode()))) for t in texts]
    return torch.stack(rows)


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    from s3_hf.engine import S3Engine

    return S3Engine.from_pretrained(tiny_clip_dir, device="cpu")


@pytest.fixture(scope="module")
def voc_one(tmp_path_factory, photos):
    """Two real photos at 48x40 with planted masks and a 21-line class file, one name a line."""
    root = tmp_path_factory.mktemp("voc_one")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i, p in enumerate(photos[:2]):
        Image.open(p).convert("RGB").resize((48, 40)).save(root / "images" / f"{i}.png")
        mask = np.zeros((40, 48), dtype=np.uint8)
        mask[:, 24:] = 8 + i
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    (root / "classes.txt").write_text("\n".join(VOC_ONE) + "\n")
    return root


def run_eval(monkeypatch, folder, args, tmp_path) -> dict[str, list[torch.Tensor]]:
    """``s3 eval --task segmentation`` on ``folder``; per method its label maps, image by image."""
    import s3_hf.eval.segmentation as seg
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
    from s3_hf.encoders.hf import TransformersEncoder

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
    from s3_hf.encoders.hf import TransformersEncoder

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

    from s3_hf.encoders.hf import TransformersEncoder
    from s3_hf.eval.segmentation import load, method_requests
    from s3_hf.segmentation import segment_logits_many
    from s3_hf.templates import resolve_templates

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
