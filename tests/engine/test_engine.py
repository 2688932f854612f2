"""The service layer under every face: requests, cached resolution with keys that cannot go stale, scoring."""

from __future__ import annotations

import gc
import json

import pytest
import torch
from helpers import SYNONYMS
from PIL import Image

import s3_hf
from s3_hf.engine.core import S3Engine, class_scores, rank
from s3_hf.errors import InvalidConfigError, ModelLoadError, SynonymsError
from s3_hf.synonyms import StaticSource

LABELS = ["cat", "dog", "airplane"]


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    return S3Engine.from_pretrained(str(tiny_clip_dir), device="cpu")


@pytest.fixture
def text_calls(engine):
    calls = []
    hook = engine.model.text_model.register_forward_hook(lambda *a: calls.append(1))
    yield calls
    hook.remove()


def test_engine_scores_equal_the_pipeline(engine, s3_pipe, photos):
    images = [str(p) for p in photos[:3]]
    request = engine.request(LABELS, synonyms=SYNONYMS, metric="nearest_simplex")
    ours = [[p.to_dict() for p in preds] for preds in engine.classify(images, request, details=True)]
    theirs = s3_pipe(images, candidate_labels=LABELS, synonyms=SYNONYMS, metric="nearest_simplex", return_details=True)
    for a, b in zip(ours, theirs, strict=True):  # batched image encoding may round differently in the last bit
        assert [(r["label"], r["details"]) for r in a] == [(r["label"], r["details"]) for r in b]
        assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-6)


def test_requests_are_validated_before_any_work(engine, text_calls):
    with pytest.raises(SynonymsError, match="list of strings"):
        engine.request(LABELS, synonyms={"cat": 5})
    with pytest.raises(SynonymsError, match="does not exist"):
        engine.request(LABELS, synonyms="no/such/synonyms.yaml")
    with pytest.raises(InvalidConfigError, match="knn_k"):
        engine.request(LABELS, knn_k=0)
    with pytest.raises(InvalidConfigError, match="only apply when a space is built"):
        engine.request(synonym_space="org/space", radius=0.3)
    with pytest.raises(InvalidConfigError, match="tokenizer_kwargs"):
        engine.request(LABELS, tokenizer_kwargs={"padding": ["x"]})
    assert text_calls == []


def test_same_request_resolves_once_and_equal_requests_share(engine, text_calls):
    first = engine.resolve(engine.request(LABELS, synonyms=dict(SYNONYMS)))
    n = len(text_calls)
    again = engine.resolve(engine.request(LABELS, synonyms=dict(SYNONYMS), metric="label"))  # an equal mapping
    assert again.space is first.space and len(text_calls) == n and again.metric == "label"


def test_an_edited_synonyms_file_is_rebuilt(engine, tmp_path, text_calls):
    path = tmp_path / "syn.json"
    path.write_text(json.dumps({"cat": ["kitty"]}))
    a = engine.resolve(engine.request(LABELS, synonyms=str(path))).space
    path.write_text(json.dumps({"cat": ["kitty", "house cat"]}))  # same size class, same second maybe: content keys
    b = engine.resolve(engine.request(LABELS, synonyms=str(path))).space
    assert a.concepts(0) == ["cat", "kitty"] and b.concepts(0) == ["cat", "kitty", "house cat"]


def test_engine_keys_synonyms_by_content(s3_pipe, photos, tmp_path):
    path = tmp_path / "syn.json"
    path.write_text(json.dumps({k: v for k, v in SYNONYMS.items() if k in LABELS}))
    first = s3_pipe(str(photos[0]), candidate_labels=LABELS, synonyms=str(path), return_details=True)
    path.write_text(json.dumps({"cat": ["kitty"]}))
    second = s3_pipe(str(photos[0]), candidate_labels=LABELS, synonyms=str(path), return_details=True)
    cat = {r["label"]: r["details"] for r in second}["cat"]
    assert set(cat["kept"] + cat["dropped"]) == {"cat", "kitty"} and first != second


def test_a_space_folder_rebuilt_on_disk_is_reloaded(engine, tmp_path):
    folder = tmp_path / "space"
    engine.build_space(LABELS, SYNONYMS).save_pretrained(folder)
    request = engine.request(synonym_space=str(folder))
    before = engine.resolve(request).space
    assert engine.resolve(request).space is before  # unchanged folder: cached
    engine.build_space(["cat", "dog"], {k: SYNONYMS[k] for k in ("cat", "dog")}).save_pretrained(folder)
    after = engine.resolve(request).space
    assert after.labels == ["cat", "dog"] and before.labels == LABELS


def test_source_objects_are_held_so_their_ids_cannot_be_reused(engine, text_calls):
    request = engine.request(LABELS, synonyms=StaticSource({"cat": ["kitty"]}))
    space = engine.resolve(request).space
    del request
    gc.collect()
    n = len(text_calls)
    other = engine.resolve(engine.request(LABELS, synonyms=StaticSource({"cat": ["tabby"]}))).space
    assert other is not space and other.concepts(0) == ["cat", "tabby"] and len(text_calls) > n


def test_class_scores_are_tau_times_the_metric_for_a_label_subset(engine, photos):
    space = engine.build_space(LABELS, SYNONYMS)
    resolved = engine.resolve(engine.request(["airplane", "cat"], synonym_space=space))
    assert resolved.labels == ["airplane", "cat"]
    v = engine.encode_images([Image.open(photos[0])])
    out = class_scores(v, resolved, engine.logit_scale)
    full = s3_hf.score(v, space.scoring_state(), "local_center")
    assert torch.allclose(out.logits, engine.logit_scale * full[:, [2, 0]])
    ranked = rank(out, 0, resolved)
    assert {p.label for p in ranked} == {"airplane", "cat"} and sum(p.score for p in ranked) == pytest.approx(1.0)


def test_loading_errors_say_what_to_do(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        S3Engine.from_pretrained(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        S3Engine.from_pretrained(str(tmp_path / "empty"))
