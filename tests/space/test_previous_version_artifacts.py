"""Artifacts written by the previous version (0.1.0, committed under tests/fixtures/v0.1.0 with the scores that
version gave) load with today's code and give the same scores; the space equals one built today."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import SYNONYMS

from s3_hf import S3Engine, SSPAdapter, SynonymSpace, build_synonym_space

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v0.1.0"


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    # the fixture's base model is the Hub id s3-hf-tests/tiny-clip; a folder named tiny-clip is its download
    assert tiny_clip_dir.name == "tiny-clip"
    return S3Engine.from_pretrained(str(tiny_clip_dir), device="cpu")


def test_previous_space_loads_and_equals_one_built_today(engine):
    old = SynonymSpace.from_pretrained(FIXTURE / "space")
    new = build_synonym_space(
        engine.model, engine.tokenizer, list(SYNONYMS), SYNONYMS, base_model=old.config.base_model
    )
    assert [c.label for c in old.classes] == [c.label for c in new.classes] == list(SYNONYMS)
    assert [[p.text for p in c.concepts] for c in old.classes] == [[p.text for p in c.concepts] for c in new.classes]
    old_t, new_t = old.tensors.tensors(), new.tensors.tensors()
    assert old_t.keys() == new_t.keys()
    for key in old_t:
        torch.testing.assert_close(old_t[key], new_t[key], rtol=0, atol=1e-6, msg=key)


def test_previous_adapter_loads(engine):
    adapter = SSPAdapter.from_pretrained(FIXTURE / "adapter")
    assert adapter.labels == list(SYNONYMS)


@pytest.mark.parametrize("kind", ["zero_shot", "few_shot"])
def test_previous_artifacts_score_as_they_did(engine, kind):
    expected = json.loads((FIXTURE / "expected.json").read_text())
    images = [str(FIXTURE / p) for p in expected["images"]]
    options = {"support": str(FIXTURE / "adapter")} if kind == "few_shot" else {}
    got = engine.classify(images, engine.request(synonym_space=str(FIXTURE / "space"), **options))
    for row, want in zip(got, expected[kind], strict=True):
        assert [p.label for p in row] == [w["label"] for w in want]
        assert [p.score for p in row] == pytest.approx([w["score"] for w in want], abs=1e-5)
