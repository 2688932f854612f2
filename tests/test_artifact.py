"""The synonym-space artifact: bit-exact round trips, the Hub (fake transport), validation errors, atomic saves."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import torch
from fakehub import COMMIT, fake_hub, folder_files
from huggingface_hub import HfApi
from safetensors.torch import load_file, save_file

import s3_hf
from s3_hf import SynonymSpace
from s3_hf.artifact import CARD_NAME, CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME
from s3_hf.errors import (
    ArtifactCorruptError,
    ArtifactNotFoundError,
    ArtifactShapeError,
    ArtifactValueError,
    FormatVersionError,
    HubError,
    ModelMismatchError,
)


def assert_same(a: SynonymSpace, b: SynonymSpace) -> None:
    assert a.config == b.config
    assert a.classes == b.classes
    for name, x in a.tensors.tensors().items():
        y = getattr(b.tensors, name)
        assert x.dtype == y.dtype and torch.equal(x, y), name


def test_round_trip_is_bit_exact(small_space, tmp_path):
    folder = small_space.save_pretrained(tmp_path / "space")
    assert sorted(os.listdir(folder)) == sorted([CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME, CARD_NAME])
    loaded = SynonymSpace.from_pretrained(folder)
    assert_same(small_space, loaded)
    again = loaded.save_pretrained(tmp_path / "again")
    assert folder_files(folder)[TENSORS_NAME] == folder_files(again)[TENSORS_NAME]


def test_model_card(small_space, tmp_path):
    card = (small_space.save_pretrained(tmp_path / "s", repo_id="org/pets") / CARD_NAME).read_text()
    front = card.split("---")[1]
    assert "library_name: s3-hf" in front
    assert "pipeline_tag: zero-shot-image-classification" in front
    for tag in ("s3-hf", "synonym-space", "clip"):
        assert f"- {tag}" in front
    assert 'synonym_space="org/pets"' in card
    assert "| cat | cat, domestic cat" in card


def test_card_names_hub_base_model(small_space, tmp_path):
    from s3_hf.card import render_card

    space = copy.deepcopy(small_space)
    space.config.base_model = "openai/clip-vit-base-patch32"
    assert "base_model: openai/clip-vit-base-patch32" in render_card(space)


def test_from_pretrained_hub_id_through_fake_transport(small_space, tmp_path, monkeypatch):
    files = folder_files(small_space.save_pretrained(tmp_path / "src"))
    with fake_hub({"org/pets-s3": files}) as hub:
        loaded = SynonymSpace.from_pretrained("org/pets-s3", cache_dir=tmp_path / "cache")
        assert_same(small_space, loaded)
        assert ("GET", f"/org/pets-s3/resolve/{COMMIT}/{TENSORS_NAME}") in hub.requests or any(
            m == "GET" and p.endswith(TENSORS_NAME) for m, p in hub.requests
        )
        with pytest.raises(ArtifactNotFoundError, match="not found"):
            SynonymSpace.from_pretrained("org/missing", cache_dir=tmp_path / "cache")
        incomplete = {k: v for k, v in files.items() if k != SYNONYMS_NAME}
        hub.repos["org/incomplete"] = incomplete
        with pytest.raises(ArtifactNotFoundError, match=r"synonyms\.json"):
            SynonymSpace.from_pretrained("org/incomplete", cache_dir=tmp_path / "cache")
    # offline again: the cached copy still loads, an uncached repo says how to fix it
    assert_same(small_space, SynonymSpace.from_pretrained("org/pets-s3", cache_dir=tmp_path / "cache"))
    with pytest.raises(ArtifactNotFoundError, match="cannot be reached"):
        SynonymSpace.from_pretrained("org/other", cache_dir=tmp_path / "cache")


def test_pipeline_accepts_hub_id(small_space, tmp_path, monkeypatch, s3_pipe, photos, tiny_clip_dir):
    files = folder_files(small_space.save_pretrained(tmp_path / "src"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    with fake_hub({"org/pets-s3": files}):
        from_hub = s3_pipe(str(photos[0]), synonym_space="org/pets-s3")
    local = s3_pipe(str(photos[0]), synonym_space=small_space)
    assert from_hub == local


def test_push_to_hub_uploads_files_and_card(small_space, monkeypatch):
    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create"] = repo_id
        return type("Url", (), {"repo_id": repo_id})()

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls["upload"] = (repo_id, folder_files(Path(folder_path)))
        return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/{COMMIT}"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    url = small_space.push_to_hub("org/pets-s3", token="hf_fake")
    assert url.endswith(COMMIT)
    repo, files = calls["upload"]
    assert repo == "org/pets-s3" and sorted(files) == sorted([CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME, CARD_NAME])
    assert b'synonym_space="org/pets-s3"' in files[CARD_NAME]
    assert json.loads(files[CONFIG_NAME])["class_names"] == small_space.labels


def test_push_without_token_or_network(small_space, monkeypatch):
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(HubError, match="hf auth login"):
        small_space.push_to_hub("org/pets-s3")
    with pytest.raises(HubError, match="Could not push"):  # HF_HUB_OFFLINE=1 in tests: no network
        small_space.push_to_hub("org/pets-s3", token="hf_fake")


@pytest.fixture
def saved(small_space, tmp_path) -> Path:
    return small_space.save_pretrained(tmp_path / "space")


def _edit_tensors(folder: Path, **changes) -> None:
    tensors = load_file(folder / TENSORS_NAME)
    tensors.update(changes)
    save_file(tensors, folder / TENSORS_NAME)


def test_missing_file(saved):
    (saved / SYNONYMS_NAME).unlink()
    with pytest.raises(ArtifactNotFoundError, match=r"synonyms\.json"):
        SynonymSpace.from_pretrained(saved)


def test_missing_folder(tmp_path):
    with pytest.raises(ArtifactNotFoundError):
        SynonymSpace.from_pretrained(tmp_path / "nope")


def test_truncated_safetensors(saved):
    data = (saved / TENSORS_NAME).read_bytes()
    (saved / TENSORS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactCorruptError, match="truncated or corrupt"):
        SynonymSpace.from_pretrained(saved)


def test_corrupt_json(saved):
    (saved / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ArtifactCorruptError, match="not valid JSON"):
        SynonymSpace.from_pretrained(saved)


def test_wrong_shape(saved):
    pts = load_file(saved / TENSORS_NAME)["points"]
    _edit_tensors(saved, points=pts[:, :-1].contiguous())
    with pytest.raises(ArtifactShapeError, match="points"):
        SynonymSpace.from_pretrained(saved)


def test_wrong_dtype(saved):
    pts = load_file(saved / TENSORS_NAME)["points"]
    _edit_tensors(saved, points=pts.double())
    with pytest.raises(ArtifactShapeError, match="float32"):
        SynonymSpace.from_pretrained(saved)


def test_bad_index(saved):
    idx = load_file(saved / TENSORS_NAME)["simplex_vertices"].clone()
    idx[-1] = 10_000
    _edit_tensors(saved, simplex_vertices=idx)
    with pytest.raises(ArtifactShapeError, match="simplex"):
        SynonymSpace.from_pretrained(saved)


def test_nans(saved):
    centres = load_file(saved / TENSORS_NAME)["global_centres"].clone()
    centres[0, 0] = float("nan")
    _edit_tensors(saved, global_centres=centres)
    with pytest.raises(ArtifactValueError, match="NaN"):
        SynonymSpace.from_pretrained(saved)


def test_unknown_format_version(saved):
    cfg = json.loads((saved / CONFIG_NAME).read_text())
    cfg["format_version"] = 99
    (saved / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(FormatVersionError, match="format_version 99"):
        SynonymSpace.from_pretrained(saved)


def test_synonyms_disagree_with_tensors(saved):
    syn = json.loads((saved / SYNONYMS_NAME).read_text())
    syn["classes"][0]["concepts"].pop()
    (saved / SYNONYMS_NAME).write_text(json.dumps(syn))
    with pytest.raises(ArtifactShapeError, match="does not match"):
        SynonymSpace.from_pretrained(saved)


def test_base_model_mismatch(small_space, tmp_path, s3_pipe, photos):
    from conftest import make_tiny_clip

    with pytest.raises(ModelMismatchError, match="built with"):
        small_space.check_model(type("M", (), {"name_or_path": "org/other-clip", "config": s3_pipe.model.config})())
    other_dim = make_tiny_clip(tmp_path / "tiny-clip", projection_dim=8)
    from transformers import pipeline

    pipe = pipeline(s3_hf.TASK, model=str(other_dim))
    with pytest.raises(ModelMismatchError, match="16-d"):
        pipe(str(photos[0]), synonym_space=small_space)


def test_failed_save_leaves_nothing_half_written(small_space, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("s3_hf.artifact.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        small_space.save_pretrained(tmp_path / "new")
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()

    existing = small_space.save_pretrained(tmp_path / "old")
    before = folder_files(existing)
    monkeypatch.setattr("s3_hf.artifact.save_file", broken)
    with pytest.raises(OSError):
        small_space.save_pretrained(existing)
    assert folder_files(existing) == before
    assert os.listdir(tmp_path) == ["old"]
