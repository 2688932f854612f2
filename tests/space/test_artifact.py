"""The synonym-space artifact: bit-exact round trips, the Hub (fake transport), validation errors, atomic saves."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from helpers import COMMIT, fake_hub, folder_files
from safetensors.torch import load_file, save_file

import s3_hf
from s3_hf import SynonymSpace
from s3_hf.errors import (
    ArtifactCorruptError,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactShapeError,
    ArtifactValueError,
    FormatVersionError,
    HubError,
    ModelMismatchError,
)
from s3_hf.space.artifact import CARD_NAME, CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME
from s3_hf.space.remote import HUB_CODE_NAME, MODEL_CONFIG_NAME

#: What saving a space writes: its own files, and what transformers needs to run it alone.
SAVED = [CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME, CARD_NAME, MODEL_CONFIG_NAME, HUB_CODE_NAME]


def assert_same(a: SynonymSpace, b: SynonymSpace) -> None:
    assert a.config == b.config
    assert a.classes == b.classes
    for name, x in a.tensors.tensors().items():
        y = getattr(b.tensors, name)
        assert x.dtype == y.dtype and torch.equal(x, y), name


def test_round_trip_is_bit_exact(small_space, tmp_path):
    folder = small_space.save_pretrained(tmp_path / "space")
    assert sorted(os.listdir(folder)) == sorted(SAVED)
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
    from s3_hf.space.card import render_card

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


def test_push_to_hub_uploads_files_and_card(small_space):
    with fake_hub({}) as hub:
        url = small_space.push_to_hub("org/pets-s3", token="hf_fake")
    assert url.endswith(COMMIT)
    (commit,) = hub.commits
    files = commit["files"]
    assert commit["repo_id"] == "org/pets-s3" and {CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME, CARD_NAME} <= set(files)
    assert b'synonym_space="org/pets-s3"' in files[CARD_NAME]
    assert json.loads(files[CONFIG_NAME])["class_names"] == small_space.labels


def test_push_without_token_or_network(small_space, monkeypatch):
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(HubError, match="hf auth login"):
        small_space.push_to_hub("org/pets-s3")
    with pytest.raises(HubError, match="Could not push"):  # HF_HUB_OFFLINE=1 in tests: no network
        small_space.push_to_hub("org/pets-s3", token="hf_fake")


def _edit_tensors(folder: Path, **changes) -> None:
    """Rewrite the tensor file as another tool would, with a matching content hash, so validation is reached."""
    tensors = load_file(folder / TENSORS_NAME)
    tensors.update(changes)
    save_file(tensors, folder / TENSORS_NAME)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["tensors_sha256"] = hashlib.sha256((folder / TENSORS_NAME).read_bytes()).hexdigest()
    (folder / CONFIG_NAME).write_text(json.dumps(config))


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
    from helpers import make_tiny_clip

    from s3_hf.models.encoders import TransformersEncoder

    with pytest.raises(ModelMismatchError, match="built with"):
        small_space.check_model(TransformersEncoder(s3_pipe.model, name="org/other-clip"))
    other_dim = make_tiny_clip(tmp_path / "tiny-clip", projection_dim=8)
    from transformers import pipeline

    pipe = pipeline(s3_hf.TASK, model=str(other_dim))
    with pytest.raises(ModelMismatchError, match="16-d"):
        pipe(str(photos[0]), synonym_space=small_space)


def test_failed_save_leaves_nothing_half_written(small_space, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("s3_hf.space.artifact.tensor_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        small_space.save_pretrained(tmp_path / "new")
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()

    existing = small_space.save_pretrained(tmp_path / "old")
    before = folder_files(existing)
    monkeypatch.setattr("s3_hf.io.files._exchange", broken)  # fails while swapping the new folder in
    with pytest.raises(OSError):
        small_space.save_pretrained(existing)
    assert folder_files(existing) == before
    assert os.listdir(tmp_path) == ["old"]
    monkeypatch.setattr("s3_hf.io.files._exchange", lambda a, b: False)  # the two-rename path, failing at the second
    real_replace = os.replace
    monkeypatch.setattr(
        "s3_hf.io.files.os.replace", lambda a, b: broken() if str(a).endswith(".tmp") else real_replace(a, b)
    )
    with pytest.raises(OSError):
        small_space.save_pretrained(existing)
    assert folder_files(existing) == before
    assert os.listdir(tmp_path) == ["old"]


# ------------------------------------------------------------------------------------------------ drop records
LONG = "y" * 60  # with the prompt template and concept format, more than the tiny model's 77 tokens
ANGLES = {"cat": 0, "kitty": 10, "tabby": 20, "feline": 35, "sphinx": 130, "dog": 200, "puppy": 202}


@pytest.fixture(scope="module")
def planted_space(tiny_model, tiny_clip_dir):
    """A space built with every kind of drop: cleaning (a duplicate of the label and of a synonym, another class's
    label), truncation (a synonym too long for the tokenizer) and pruning ("sphinx" is planted 95 degrees away
    from the other concepts of "cat")."""
    import numpy as np

    from s3_hf import build_synonym_space

    def encode(model, tokenizer, groups, templates, **kwargs):
        rad = np.radians([ANGLES[g[0].split(",")[0]] for g in groups])
        points = torch.zeros(len(groups), 16)
        points[:, 0], points[:, 1] = torch.tensor(np.cos(rad)), torch.tensor(np.sin(rad))
        return points

    synonyms = {"cat": ["kitty", "CAT", "Kitty", "dog", LONG, "tabby", "feline", "sphinx"], "dog": ["puppy"]}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("s3_hf.space.build.encode_concept_groups", encode)
        return build_synonym_space(*tiny_model, ["cat", "dog"], synonyms, base_model=str(tiny_clip_dir))


def test_every_drop_is_recorded_with_its_reason(planted_space, tmp_path):
    folder = planted_space.save_pretrained(tmp_path / "space")
    cat, dog = json.loads((folder / SYNONYMS_NAME).read_text())["classes"]
    assert cat["removed"] == [
        {"text": "CAT", "kept": False, "kind": "duplicate", "reason": "duplicate of the label"},
        {"text": "Kitty", "kept": False, "kind": "duplicate", "reason": "duplicate of 'kitty'"},
        {"text": "dog", "kept": False, "kind": "other_label", "reason": "the label of another class ('dog')"},
        {"text": LONG, "kept": False, "kind": "truncated", "reason": "its prompts exceed the text encoder's 77 tokens"},
    ]
    assert [c["text"] for c in cat["concepts"]] == ["cat", "kitty", "tabby", "feline", "sphinx"]
    assert [c["kept"] for c in cat["concepts"]] == [True, True, True, True, False]
    assert cat["concepts"][0] == {"text": "cat", "kept": True}  # kept concepts carry no drop keys
    pruned = cat["concepts"][4]
    assert pruned["kind"] == "pruned" and pruned["reason"].startswith("outside the compact component at radius")
    assert dog["removed"] == [] and all(c["kept"] for c in dog["concepts"])

    loaded = SynonymSpace.from_pretrained(folder)
    assert_same(planted_space, loaded)
    assert [x.kind for x in loaded.classes[0].dropped] == [
        "duplicate",
        "duplicate",
        "other_label",
        "truncated",
        "pruned",
    ]
    assert loaded.concepts(0, kept=False) == ["sphinx"]  # only concepts with a point
    card = (folder / CARD_NAME).read_text()
    assert "dropped (why)" in card and "Kitty (duplicate of 'kitty')" in card and "sphinx (outside" in card


def test_inspect_shows_drops_and_why(planted_space, tmp_path, capsys):
    from s3_hf.cli import main

    folder = planted_space.save_pretrained(tmp_path / "space")
    capsys.readouterr()
    assert main(["inspect", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "1 pruned (4 more dropped before embedding)" in text and "dropped (why)" in text
    for shown in (
        "CAT (duplicate of the label)",
        "Kitty (duplicate of 'kitty')",
        "dog (the label of another class ('dog'))",
        f"{LONG} (its prompts exceed the text encoder's 77 tokens)",
        "sphinx (outside the compact component at radius",
    ):
        assert shown in text, shown
    assert main(["inspect", str(folder), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    cat = summary["per_class"][0]
    assert summary["removed"] == 4 and cat["dropped"] == ["sphinx"]
    assert [(d["text"], d["kind"]) for d in cat["drops"]] == [
        ("CAT", "duplicate"),
        ("Kitty", "duplicate"),
        ("dog", "other_label"),
        (LONG, "truncated"),
        ("sphinx", "pruned"),
    ]
    assert all(d["reason"] for d in cat["drops"])


def test_files_without_drop_records_still_load(planted_space, tmp_path):
    folder = planted_space.save_pretrained(tmp_path / "space")
    syn = json.loads((folder / SYNONYMS_NAME).read_text())
    for rec in syn["classes"]:  # the format before drops were recorded: no "removed", no "kind"
        del rec["removed"]
        for c in rec["concepts"]:
            c.pop("kind", None)
    (folder / SYNONYMS_NAME).write_text(json.dumps(syn))
    loaded = SynonymSpace.from_pretrained(folder)
    assert loaded.classes[0].removed == []
    assert loaded.classes[0].concepts == planted_space.classes[0].concepts  # pruned ones read as kind "pruned"


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda syn: syn["classes"].__setitem__(0, "cat"), "expected a JSON object"),
        (lambda syn: syn["classes"][0].__setitem__("label", 3), "'label' must be a string"),
        (lambda syn: syn["classes"][0].__setitem__("concepts", {"cat": True}), "'concepts' must be a list"),
        (lambda syn: syn["classes"][0]["concepts"].__setitem__(0, ["cat", True]), "expected a JSON object"),
        (lambda syn: syn["classes"][0]["concepts"][0].__setitem__("kept", "yes"), "'kept' of 'cat'"),
        (lambda syn: syn["classes"][0]["concepts"][0].__setitem__("text", None), "'text' must be a string"),
        (lambda syn: syn["classes"][0]["concepts"][4].__setitem__("kind", "duplicate"), "'kind' of 'sphinx'"),
        (lambda syn: syn["classes"][0]["removed"][0].__setitem__("kind", "pruned"), "'kind' of 'CAT'"),
        (lambda syn: syn["classes"][0]["removed"][0].pop("kind"), "needs kept: false and a 'kind'"),
        (lambda syn: syn["classes"][0].__setitem__("radius", "big"), "'radius' must be a number"),
        (lambda syn: syn["classes"][0].__setitem__("deaths", [0.1, None]), "'deaths' must be a list of numbers"),
        (lambda syn: syn["classes"][0].__setitem__("source", "wordnet"), "'source' must be an object"),
    ],
)
def test_malformed_class_records(planted_space, tmp_path, edit, match):
    folder = planted_space.save_pretrained(tmp_path / "space")
    syn = json.loads((folder / SYNONYMS_NAME).read_text())
    edit(syn)
    (folder / SYNONYMS_NAME).write_text(json.dumps(syn))
    with pytest.raises(ArtifactCorruptError, match=match) as err:
        SynonymSpace.from_pretrained(folder)
    assert "rebuild it with `s3 build`" in str(err.value) and SYNONYMS_NAME in str(err.value)


def test_save_never_touches_files_it_does_not_own(small_space, tmp_path):
    folder = tmp_path / "space"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "README.md").write_text("# my project\n")
    with pytest.raises(ArtifactError, match="not written by s3-hf"):
        small_space.save_pretrained(folder)
    assert sorted(os.listdir(folder)) == ["README.md", "notes.txt"]
    assert (folder / "README.md").read_text() == "# my project\n"
    small_space.save_pretrained(folder, overwrite=True)  # replaces only the artifact's own files
    assert (folder / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(folder)) == sorted(["notes.txt", *SAVED])
    small_space.save_pretrained(folder)  # rebuilding over its own card needs no flag
    assert SynonymSpace.from_pretrained(folder).labels == small_space.labels


def test_cli_build_refuses_a_foreign_readme(tiny_clip_dir, tmp_path, capsys):
    from s3_hf.cli import main

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "README.md").write_text("keep me")
    args = ["build", "cat,dog", "--out", str(folder), "--model", str(tiny_clip_dir)]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and (folder / "README.md").read_text() == "keep me"
    assert main([*args, "--overwrite"]) == 0


def test_saved_files_follow_the_umask(small_space, tmp_path):
    import stat

    old = os.umask(0o022)
    try:
        folder = small_space.save_pretrained(tmp_path / "shared")
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()} == dict.fromkeys(SAVED, 0o644)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("max_dim", "2", "max_dim must be an integer"),
        ("gap_ratio", "wide", "gap_ratio must be a number"),
        ("radius", [1], "radius must be"),
        ("embedding_dim", 16.5, "embedding_dim must be a positive integer"),
        ("class_names", "cat", "class_names must be a non-empty list of strings"),
        ("templates", [1], "templates must be a non-empty list of strings"),
        ("metric", "cosine", "metric must be one of"),
        ("knn_k", 0, "knn_k must be a positive integer"),
        ("provenance", [], "provenance must be an object"),
    ],
)
def test_config_values_of_the_wrong_type_are_typed_errors(small_space, tmp_path, key, value, match):
    folder = small_space.save_pretrained(tmp_path / "space")
    config = json.loads((folder / CONFIG_NAME).read_text())
    config[key] = value
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ArtifactCorruptError, match=match) as err:
        SynonymSpace.from_pretrained(folder)
    assert CONFIG_NAME in str(err.value)


def test_config_keeps_the_flat_file_format(small_space, tmp_path):
    folder = small_space.save_pretrained(tmp_path / "space")
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert {k: config[k] for k in ("radius", "gap_ratio", "min_points", "max_dim")} == {
        "radius": "auto",
        "gap_ratio": 1.5,
        "min_points": 4,
        "max_dim": 2,
    }
    assert "space" not in config
    assert SynonymSpace.from_pretrained(folder).config.space == s3_hf.SpaceParams()


def test_any_flipped_byte_of_the_tensor_file_is_detected(saved):
    import random

    path = saved / TENSORS_NAME
    original = path.read_bytes()
    header = 8 + int.from_bytes(original[:8], "little")  # safetensors: u64 header size, JSON header, tensor data
    rng = random.Random(0)
    for position in rng.sample(range(header, len(original)), 50):
        data = bytearray(original)
        data[position] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        with pytest.raises(ArtifactCorruptError, match="content hash"):
            SynonymSpace.from_pretrained(saved)
    path.write_bytes(original)
    assert SynonymSpace.from_pretrained(saved).config.tensors_sha256 == hashlib.sha256(original).hexdigest()


def test_rebuilding_over_a_fitted_adapter_is_refused_or_removes_it(small_space, tiny_model, tmp_path):
    from s3_hf import build_synonym_space
    from s3_hf.fewshot import SSP_CONFIG_NAME, SSP_TENSORS_NAME, fit_for_space

    folder = small_space.save_pretrained(tmp_path / "space")
    torch.manual_seed(0)
    glob = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    local = torch.nn.functional.normalize(torch.randn(6, 4, 16), dim=-1)
    adapter = fit_for_space(small_space, [0, 1, 2], glob, local, [0, 1, 2, 0, 1, 2], "local_center")
    adapter.save_pretrained(folder)
    small_space.save_pretrained(folder)  # the same space again: its adapter still fits and stays
    assert (folder / SSP_CONFIG_NAME).is_file()
    other = build_synonym_space(*tiny_model, ["cat", "dog", "airplane"], {"cat": ["kitty"]}, base_model="x/y")
    with pytest.raises(ArtifactError, match="few-shot adapter"):
        other.save_pretrained(folder)
    assert SynonymSpace.from_pretrained(folder).concepts(0) == small_space.concepts(0)  # nothing changed
    other.save_pretrained(folder, overwrite=True)
    assert not (folder / SSP_CONFIG_NAME).exists() and not (folder / SSP_TENSORS_NAME).exists()
    assert SynonymSpace.from_pretrained(folder).concepts(0) == ["cat", "kitty"]
