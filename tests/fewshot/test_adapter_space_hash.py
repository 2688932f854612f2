"""The space a few-shot adapter was fitted on, by its tensor hash: the adapter 0.1.0 saved records it and matches
its own space; one that records none (older, or fitted on raw features) is used with one warning; another space
is refused with a typed error that says how to refit."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from s3_hf import S3Engine, SSPAdapter, SynonymSpace
from s3_hf.errors import AdapterMismatchError
from s3_hf.fewshot import SSP_CONFIG_NAME

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v0.1.0"


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    assert tiny_clip_dir.name == "tiny-clip"  # a download of the fixture's base model, s3-hf-tests/tiny-clip
    return S3Engine.from_pretrained(str(tiny_clip_dir), device="cpu")


def _without_hash(tmp_path: Path) -> Path:
    folder = Path(shutil.copytree(FIXTURE / "adapter", tmp_path / "adapter"))
    meta = json.loads((folder / SSP_CONFIG_NAME).read_text())
    del meta["info"]["space_sha256"]
    (folder / SSP_CONFIG_NAME).write_text(json.dumps(meta))
    return folder


def test_the_previous_versions_adapter_records_and_matches_its_space():
    adapter = SSPAdapter.from_pretrained(FIXTURE / "adapter")
    assert adapter.check_space(SynonymSpace.from_pretrained(FIXTURE / "space")) is True


def test_an_adapter_is_refused_on_a_space_other_than_its_own(tiny_model):
    from s3_hf import build_synonym_space

    own = SynonymSpace.from_pretrained(FIXTURE / "space")
    fewer = {c.label: [p.text for p in c.concepts[1:3]] for c in own.classes}  # the same classes, fewer synonyms
    other = build_synonym_space(*tiny_model, own.labels, fewer, base_model=own.config.base_model)
    assert other.labels == own.labels and other.tensors_hash() != own.tensors_hash()
    adapter = SSPAdapter.from_pretrained(FIXTURE / "adapter")
    with pytest.raises(AdapterMismatchError, match=r"another synonym space(.|\n)*s3 fewshot"):
        adapter.check_space(other)


def test_an_adapter_without_the_hash_is_used_with_one_warning(engine, tmp_path, caplog):
    folder = _without_hash(tmp_path)
    assert SSPAdapter.from_pretrained(folder).check_space(SynonymSpace.from_pretrained(FIXTURE / "space")) is False
    images = [str(FIXTURE / "support" / "cat" / "cat.png")]
    request = engine.request(synonym_space=str(FIXTURE / "space"), support=str(folder))
    with caplog.at_level(logging.WARNING, logger="s3_hf.engine.adapters"):
        first = engine.classify(images, request)
        assert engine.classify(images, request) == first
    warnings = [r for r in caplog.records if "does not record the space" in r.getMessage()]
    assert len(warnings) == 1 and "s3 fewshot" in warnings[0].getMessage()
    hashed = engine.classify(
        images, engine.request(synonym_space=str(FIXTURE / "space"), support=str(FIXTURE / "adapter"))
    )
    assert [[p.score for p in row] for row in first] == [[p.score for p in row] for row in hashed]
