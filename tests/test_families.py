"""Model families of transformers' zero-shot pipeline: S^3 with a label-only space scores exactly as transformers
does for each (a sigmoid with the logit bias for SigLIP and SigLIP 2, a softmax elsewhere), and spaces and few-shot
adapters know which family they belong to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import make_tiny_family
from PIL import Image
from transformers import pipeline

import s3_hf
from s3_hf.artifact import CONFIG_NAME
from s3_hf.errors import InvalidConfigError, ModelMismatchError

LABELS = ["cat", "dog", "airplane", "cup of coffee"]
FAMILIES = ["clip", "siglip", "siglip2", "metaclip_2"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_clip_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    out = {"clip": tiny_clip_dir}
    for family in FAMILIES[1:]:
        out[family] = make_tiny_family(root / family, family)
    return out


@pytest.fixture(scope="module")
def pipes(checkpoints) -> dict[str, tuple]:
    return {
        family: (pipeline(s3_hf.TASK, model=str(path)), pipeline("zero-shot-image-classification", model=str(path)))
        for family, path in checkpoints.items()
    }


def as_dict(result: list[dict]) -> dict[str, float]:
    return {r["label"]: r["score"] for r in result}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("metric", ["label", "global_center", "nearest_point", "local_center"])
def test_label_only_equals_transformers(pipes, photos, family, metric):
    ours, theirs = pipes[family]
    images = [Image.open(p) for p in photos[:4]]
    expected = theirs(images, candidate_labels=LABELS)
    for batch_size in (1, 4):
        got = ours(images, candidate_labels=LABELS, metric=metric, batch_size=batch_size)
        for a, b in zip(got, expected, strict=True):
            assert as_dict(a) == pytest.approx(as_dict(b), abs=1e-5)
    sums = [sum(as_dict(r).values()) for r in expected]
    if family.startswith("siglip"):  # independent per-class sigmoids: they need not sum to one
        assert ours.engine.family.scoring == "sigmoid" and any(abs(s - 1) > 1e-3 for s in sums)
    else:
        assert ours.engine.family.scoring == "softmax" and sums == pytest.approx([1.0] * len(sums))


@pytest.mark.parametrize("family", FAMILIES)
def test_text_is_encoded_once(pipes, photos, family):
    ours, _ = pipes[family]
    calls = []
    hook = ours.model.text_model.register_forward_hook(lambda *a: calls.append(1))
    try:
        ours(str(photos[0]), candidate_labels=["a", "b"], synonyms={"a": ["aa"]})
        first = len(calls)
        ours([str(p) for p in photos[:3]], candidate_labels=["a", "b"], synonyms={"a": ["aa"]}, batch_size=2)
        assert first > 0 and len(calls) == first
    finally:
        hook.remove()


def test_spaces_record_and_enforce_their_family(pipes, checkpoints, photos, tmp_path):
    clip_pipe, siglip_pipe = pipes["clip"][0], pipes["siglip"][0]
    space = siglip_pipe.engine.build_space(LABELS)
    assert (space.config.model_family, space.config.scoring) == ("siglip", "sigmoid")
    assert space.config.tokenizer_kwargs == {"padding": "max_length", "max_length": 64, "truncation": True}
    folder = space.save_pretrained(tmp_path / "siglip-space")
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["model_family"] == "siglip" and config["scoring"] == "sigmoid"
    assert "- siglip" in (folder / "README.md").read_text()
    clip_space = clip_pipe.engine.build_space(LABELS)
    with pytest.raises(ModelMismatchError, match="built with a clip model"):
        siglip_pipe(str(photos[0]), synonym_space=clip_space)


def test_fewshot_needs_patch_tokens(pipes, photos):
    siglip_pipe = pipes["siglip2"][0]
    support = [(str(p), lab) for p, lab in zip(photos[:3], LABELS[:3], strict=True)]
    with pytest.raises(InvalidConfigError, match="patch tokens"):
        siglip_pipe(str(photos[3]), candidate_labels=LABELS[:3], support=support)
    metaclip = pipes["metaclip_2"][0]
    out = metaclip(str(photos[3]), candidate_labels=LABELS[:3], support=support, fewshot={"alpha": 0.5})
    assert {r["label"] for r in out} == set(LABELS[:3])
