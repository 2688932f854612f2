"""Hostile and mistaken input: every case ends in a typed S3Error (Python) or one line on stderr (CLI), never in a
raw exception, a traceback or lost data. The OpenAI-compatible source's faults are in test_llm_faults.py and the
app's in test_space_app.py."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
import torch
from helpers import SYNONYMS
from PIL import Image

from s3_hf import S3Error, SpaceParams, SSPConfig, SynonymSpace, build_synonym_space
from s3_hf.cli import main
from s3_hf.errors import (
    ArtifactCorruptError,
    ArtifactError,
    ArtifactNotFoundError,
    ImageLoadError,
    InvalidConfigError,
    InvalidLabelsError,
    SynonymsError,
    TemplateError,
)
from s3_hf.space.artifact import CARD_NAME, CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME

LABELS = ["cat", "dog", "airplane"]


# ------------------------------------------------------------------------------------- pipeline parameters
@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        ({"synonyms": {"cat": 5}}, SynonymsError, "list of strings"),
        ({"synonyms": {"cat": ["kitty", 3]}}, SynonymsError, "must all be strings"),
        ({"synonyms": ["cat", "kitty"]}, SynonymsError, "must be a mapping"),
        ({"synonyms": 5}, SynonymsError, "must be a mapping"),
        ({"synonyms": "no-such-synonyms.yaml"}, SynonymsError, "does not exist"),
        ({"templates": ["a {} of {name}"]}, TemplateError, "no other fields"),
        ({"templates": []}, TemplateError, "No prompt templates"),
        ({"templates": [5]}, TemplateError, "placeholder"),
        ({"hypothesis_template": "a photo"}, TemplateError, "placeholder"),
        ({"concept_format": "{concept} of {kind}"}, TemplateError, "may only use"),
        ({"concept_format": "just words"}, TemplateError, "must contain"),
        ({"metric": "cosine"}, InvalidConfigError, "Unknown metric"),
        ({"knn_k": 0}, InvalidConfigError, "knn_k"),
        ({"knn_k": "3"}, InvalidConfigError, "knn_k"),
        ({"top_k": 0}, InvalidConfigError, "top_k"),
        ({"top_k": 2.5}, InvalidConfigError, "top_k"),
        ({"batch_size": 0}, InvalidConfigError, "batch_size"),
        ({"num_workers": -1}, InvalidConfigError, "num_workers"),
        ({"timeout": -1}, InvalidConfigError, "timeout"),
        ({"radius": -0.1}, InvalidConfigError, "radius"),
        ({"radius": "big"}, InvalidConfigError, "radius"),
        ({"gap_ratio": 1.0}, InvalidConfigError, "gap_ratio"),
        ({"min_points": 0}, InvalidConfigError, "min_points"),
        ({"max_dim": "2"}, InvalidConfigError, "max_dim"),
        ({"radios": 0.3}, InvalidConfigError, "Unknown options"),
        ({"fewshot": {"mode": "cache"}}, InvalidConfigError, "support"),
        ({"support": [], "fewshot": {"top_s": 0}}, InvalidConfigError, "top_s"),
        ({"support": [], "fewshot": "cache"}, InvalidConfigError, "fewshot must be"),
        ({"support": [], "text_vector": "centroid"}, InvalidConfigError, "text_vector"),
        ({"support": "no/such/support/folder"}, InvalidLabelsError, "does not exist"),
        ({"tokenizer_kwargs": "padding"}, InvalidConfigError, "tokenizer_kwargs"),
    ],
)
def test_pipeline_parameters(s3_pipe, photos, options, error, fragment):
    with pytest.raises(error, match=fragment):
        s3_pipe(str(photos[0]), candidate_labels=LABELS, **options)


@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        ({"candidate_labels": [1, 2]}, InvalidLabelsError, "non-empty string"),
        ({"candidate_labels": "cat"}, InvalidLabelsError, "list of strings"),
        ({"candidate_labels": ["cat", "Cat"]}, InvalidLabelsError, "Duplicate"),
        ({"synonym_space": 5}, InvalidConfigError, "synonym_space must be"),
        ({"synonym_space": "/no/such/space/folder"}, ArtifactNotFoundError, "local folder"),
    ],
)
def test_pipeline_classes(s3_pipe, photos, options, error, fragment):
    with pytest.raises(error, match=fragment):
        s3_pipe(str(photos[0]), **options)


def test_space_options_with_a_saved_space(s3_pipe, photos, small_space):
    with pytest.raises(InvalidConfigError, match="only apply when a space is built"):
        s3_pipe(str(photos[0]), synonym_space=small_space, radius=0.2)


# ------------------------------------------------------------------------------------------- Python API
class GarbageSource:
    name = "garbage"

    def synonyms(self, labels):
        return {label: 5 for label in labels}

    def provenance(self):
        return {"name": self.name}


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"max_concepts": -1}, InvalidConfigError, "max_concepts"),
        ({"batch_size": 0}, InvalidConfigError, "batch_size"),
        ({"params": "auto"}, InvalidConfigError, "SpaceParams"),
        ({"knn_k": 0}, InvalidConfigError, "knn_k"),
        ({"metric": "euclid"}, InvalidConfigError, "Unknown metric"),
        ({"synonyms": GarbageSource()}, SynonymsError, "must return"),
        ({"synonyms": {"cta": ["kitty"]}}, SynonymsError, "not classes"),
    ],
)
def test_build_synonym_space_arguments(tiny_model, kwargs, error, fragment):
    model, tokenizer = tiny_model
    kwargs = {"synonyms": None, **kwargs}
    synonyms = kwargs.pop("synonyms")
    with pytest.raises(error, match=fragment):
        build_synonym_space(model, tokenizer, LABELS, synonyms, **kwargs)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: SpaceParams(radius=True), "radius"),
        (lambda: SpaceParams(min_points=2.5), "min_points"),
        (lambda: SSPConfig(mode="tip"), "mode"),
        (lambda: SSPConfig(val_fraction=1.0), "val_fraction"),
        (lambda: SSPConfig(alpha=-1), "alpha"),
        (lambda: SSPConfig.from_dict({"topk": 3}), "Unknown few-shot options"),
    ],
)
def test_option_records(make, fragment):
    with pytest.raises(InvalidConfigError, match=fragment):
        make()


# ----------------------------------------------------------------------------------------------- images
def _image_case(kind: str, tmp_path: Path, photos: list[Path]):
    if kind == "missing":
        return str(tmp_path / "missing.jpg")
    if kind == "folder":
        return str(tmp_path)
    if kind == "url":
        return "http://127.0.0.1:9/photo.jpg"  # nothing listens on the discard port
    if kind == "text":
        path = tmp_path / "notes.jpg"
        path.write_text("not an image")
        return str(path)
    if kind == "truncated":
        path = tmp_path / "cut.jpg"
        path.write_bytes(photos[0].read_bytes()[:1500])
        return str(path)
    if kind == "empty":
        path = tmp_path / "empty.png"
        path.write_bytes(b"")
        return str(path)
    if kind == "base64":
        return base64.b64encode(b"definitely not an image").decode()
    if kind == "bytes":
        return b"\x89PNG"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("missing", "no such file"),
        ("folder", "is a folder"),
        ("url", "Could not download"),
        ("text", "not an image file"),
        ("truncated", "truncated"),
        ("empty", "not an image file"),
        ("base64", "image"),
        ("bytes", "Cannot read an image from an object of type bytes"),
    ],
)
def test_bad_images(s3_pipe, tmp_path, photos, kind, fragment):
    with pytest.raises(ImageLoadError, match=fragment):
        s3_pipe(_image_case(kind, tmp_path, photos), candidate_labels=LABELS, timeout=2)


def test_decompression_bomb_is_refused(s3_pipe, tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (400, 300)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # PIL refuses more than twice the limit
    with pytest.raises(ImageLoadError, match="too large to decode safely") as err:
        s3_pipe(str(path), candidate_labels=LABELS)
    assert "MAX_IMAGE_PIXELS" in str(err.value)


# -------------------------------------------------------------------------------------------- artifacts
def _tamper(folder: Path, kind: str) -> None:
    if kind == "classes not objects":
        data = json.loads((folder / SYNONYMS_NAME).read_text())
        data["classes"] = ["cat", "dog", "airplane"]
        (folder / SYNONYMS_NAME).write_text(json.dumps(data))
    elif kind == "config is a list":
        (folder / CONFIG_NAME).write_text("[1, 2]")
    elif kind == "config value type":
        data = json.loads((folder / CONFIG_NAME).read_text())
        data["max_dim"] = "2"
        (folder / CONFIG_NAME).write_text(json.dumps(data))
    elif kind == "flipped byte":
        data = bytearray((folder / TENSORS_NAME).read_bytes())
        data[-5] ^= 0x10
        (folder / TENSORS_NAME).write_bytes(bytes(data))
    elif kind == "synonyms not utf-8":
        (folder / SYNONYMS_NAME).write_bytes(b"\xff\xfe{")
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["classes not objects", "config is a list", "config value type", "flipped byte", "synonyms not utf-8"]
)
def test_damaged_artifacts(small_space, tmp_path, kind):
    folder = small_space.save_pretrained(tmp_path / "space")
    _tamper(folder, kind)
    with pytest.raises(ArtifactCorruptError):
        SynonymSpace.from_pretrained(folder)


def test_artifact_paths(small_space, tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    with pytest.raises(ArtifactNotFoundError, match="is a file"):
        SynonymSpace.from_pretrained(afile)
    with pytest.raises(ArtifactError, match="is a file"):
        small_space.save_pretrained(afile)
    with pytest.raises(OSError):  # a folder cannot be created under a file: the OS says so, nothing is written
        small_space.save_pretrained(afile / "sub")
    assert afile.read_text() == "x"


def test_damaged_adapter(small_space, tmp_path):
    from s3_hf.fewshot import SSPAdapter, fit_for_space

    torch.manual_seed(0)
    glob = torch.nn.functional.normalize(torch.randn(3, 16), dim=-1)
    local = torch.nn.functional.normalize(torch.randn(3, 4, 16), dim=-1)
    folder = fit_for_space(small_space, [0, 1, 2], glob, local, [0, 1, 2], "local_center").save_pretrained(tmp_path)
    (folder / "ssp_config.json").write_text('{"format_version": 1, "labels": 3}')
    with pytest.raises(S3Error):
        SSPAdapter.from_pretrained(folder)


# -------------------------------------------------------------------------------------------------- CLI
def _one_line_error(capsys, fragment: str) -> None:
    """One ``error:`` line, the last thing on stderr (progress bars of model loading may come before it)."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n") and fragment in errors[0], err
    assert "Traceback" not in err


def test_cli_labels_file_not_utf8(tmp_path, tiny_clip_dir, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_bytes("caf\xe9\ndog\n".encode("latin-1"))
    assert main(["build", str(labels), "--out", str(tmp_path / "o"), "--model", str(tiny_clip_dir)]) == 2
    _one_line_error(capsys, "not UTF-8")
    assert not (tmp_path / "o").exists()


def test_cli_labels_file_is_a_folder(tmp_path, tiny_clip_dir, capsys):
    (tmp_path / "labels.txt").mkdir()
    assert main(["build", str(tmp_path / "labels.txt"), "--out", str(tmp_path / "o"), "--model", str(tiny_clip_dir)])
    _one_line_error(capsys, "is a folder")


def test_cli_out_under_a_file(tmp_path, tiny_clip_dir, capsys):
    (tmp_path / "plain").write_text("x")
    out = tmp_path / "plain" / "space"
    assert main(["build", "cat,dog", "--out", str(out), "--model", str(tiny_clip_dir)]) == 2
    _one_line_error(capsys, "plain")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "does not exist"), ("{not json", "is not a results.json"), ("[1, 2]", "is not a results.json")],
)
def test_cli_card_results(small_space, tmp_path, capsys, content, fragment):
    space = small_space.save_pretrained(tmp_path / "space")
    results = tmp_path / "results.json"
    if content is not None:
        results.write_text(content)
    assert main(["card", str(space), "--results", str(results)]) == 2
    _one_line_error(capsys, fragment)


@pytest.mark.parametrize(
    "args",
    [
        ["build", "cat,dog", "--out", "o", "--max-concepts", "-1"],
        ["build", "cat,dog", "--out", "o", "--batch-size", "0"],
        ["build", "cat,dog", "--out", "o", "--min-points", "0"],
        ["inspect", "space", "--limit", "-1"],
        ["classify", "x.jpg", "--labels", "cat", "--top-k", "0"],
        ["synonyms", "l.txt", "--out", "s.yaml", "--max-synonyms", "-2"],
        ["bench", "--repeats", "0"],
        ["build", "cat,dog", "--out", "o", "--radius", "huge"],
    ],
)
def test_cli_out_of_range_flags_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err


def test_cli_yaml_labels_stay_strings(tmp_path, tiny_clip_dir):
    syn = tmp_path / "synonyms.yaml"
    syn.write_text("no: [nope]\n'on': []\n1.0: [one]\nnull: [nothing]\n")
    out = tmp_path / "space"
    assert main(["build", "--synonyms", str(syn), "--out", str(out), "--model", str(tiny_clip_dir)]) == 0
    assert SynonymSpace.from_pretrained(out).labels == ["no", "on", "1.0", "null"]


def test_cli_classify_skips_unreadable_images_unless_strict(tmp_path, tiny_clip_dir, photos, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.open(photos[0]).save(folder / "a.png")
    (folder / "b.jpg").write_text("not an image")
    Image.open(photos[1]).save(folder / "c.png")
    args = ["classify", str(folder), "--labels", "cat,dog", "--model", str(tiny_clip_dir), "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert [r["image"] for r in json.loads(captured.out)] == [str(folder / "a.png"), str(folder / "c.png")]
    assert main([*args, "--strict"]) == 2
    _one_line_error(capsys, "b.jpg")


def test_cli_build_never_loses_a_users_readme(tmp_path, tiny_clip_dir, capsys):
    out = tmp_path / "project"
    out.mkdir()
    (out / CARD_NAME).write_text("# my notes\n")
    assert main(["build", "cat,dog", "--out", str(out), "--model", str(tiny_clip_dir)]) == 2
    _one_line_error(capsys, "--overwrite")
    assert (out / CARD_NAME).read_text() == "# my notes\n" and os.listdir(out) == [CARD_NAME]


def test_engine_keys_synonyms_by_content(s3_pipe, photos, tmp_path):
    path = tmp_path / "syn.json"
    path.write_text(json.dumps({k: v for k, v in SYNONYMS.items() if k in LABELS}))
    first = s3_pipe(str(photos[0]), candidate_labels=LABELS, synonyms=str(path), return_details=True)
    path.write_text(json.dumps({"cat": ["kitty"]}))
    second = s3_pipe(str(photos[0]), candidate_labels=LABELS, synonyms=str(path), return_details=True)
    cat = {r["label"]: r["details"] for r in second}["cat"]
    assert set(cat["kept"] + cat["dropped"]) == {"cat", "kitty"} and first != second
