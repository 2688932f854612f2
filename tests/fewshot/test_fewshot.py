"""SSP few-shot: subspace geometry, planted structure, tuning split, adapter files, support sets, pipeline."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import SYNONYMS
from PIL import Image

from s3_hf.errors import (
    ArtifactCorruptError,
    ArtifactNotFoundError,
    ArtifactShapeError,
    FormatVersionError,
    InvalidConfigError,
    InvalidLabelsError,
    ModelMismatchError,
)
from s3_hf.fewshot import (
    SSP_CONFIG_NAME,
    SSP_TENSORS_NAME,
    FitInfo,
    SSPAdapter,
    SSPConfig,
    class_text_vectors,
    fit_for_space,
    fit_ssp,
    global_and_local,
    read_support,
    sample_shots,
)
from s3_hf.fewshot.ssp import orthonormal_basis, project, select_local, validation_split
from s3_hf.models.embedding import encode_pixels, pixel_values

LABELS = list(SYNONYMS)


def planted(classes=10, dim=64, patches=16, objects=5, shots=8, test=40, seed=0):
    """Class clusters offset from their text vectors; each image has a few object patches near its cluster
    centre and background patches drawn from directions shared by all classes."""
    g = torch.Generator().manual_seed(seed)
    text = F.normalize(torch.randn(classes, dim, generator=g), dim=-1)
    centre = F.normalize(0.5 * text + F.normalize(torch.randn(classes, dim, generator=g), dim=-1), dim=-1)
    background = F.normalize(torch.randn(4, dim, generator=g), dim=-1)
    noise = 4.0 / dim**0.5

    def sample(n):
        y = torch.arange(classes).repeat_interleave(n)
        glob = F.normalize(centre[y] + 0.6 * noise * torch.randn(len(y), dim, generator=g), dim=-1)
        local = torch.empty(len(y), patches, dim)
        local[:, :objects] = centre[y][:, None] + 0.5 * noise * torch.randn(len(y), objects, dim, generator=g)
        bg = background[torch.randint(0, 4, (len(y), patches - objects), generator=g)]
        local[:, objects:] = bg + 0.5 * noise * torch.randn(len(y), patches - objects, dim, generator=g)
        return glob, F.normalize(local, dim=-1), y

    return text, sample(shots), sample(test)


@pytest.fixture(scope="module")
def problem():
    return planted()


def names(n):
    return [f"class {i}" for i in range(n)]


# ------------------------------------------------------------------------------------------------ geometry
def test_basis_orthonormal_projection_idempotent_rank_capped():
    g = torch.Generator().manual_seed(1)
    rows = torch.randn(3, 16, generator=g)
    rows = torch.cat([rows, rows[:1] + 2 * rows[1:2], -rows[2:3]])  # 5 rows spanning 3 dimensions
    basis = orthonormal_basis(rows, rank=10)
    assert basis.shape == (16, 3)  # capped at the true span, not 10 (which would be the identity on it)
    assert torch.allclose(basis.T @ basis, torch.eye(3), atol=1e-6)
    x = torch.randn(7, 16, generator=g)
    once = project(x, basis)
    assert torch.allclose(project(once, basis), once, atol=1e-6)
    assert torch.allclose(project(rows, basis), rows, atol=1e-5)  # the span itself is left unchanged
    assert orthonormal_basis(rows, rank=2).shape == (16, 2)
    assert orthonormal_basis(torch.zeros(4, 16)).shape == (16, 0)
    assert orthonormal_basis(torch.zeros(0, 16)).shape == (16, 0)


def test_select_local_known_answer():
    local = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]])  # (1, 3 patches, 2)
    out = select_local(local, torch.tensor([[1.0, 0.0]]), top_s=2)
    # most similar to (1, 0): patch 0 (1.0) then patch 2 (0.6), each times its similarity
    assert torch.allclose(out, torch.tensor([[[1.0, 0.0], [0.36, 0.48]]]))
    assert select_local(local, torch.tensor([[1.0, 0.0]]), top_s=10).shape == (1, 3, 2)


def test_fitted_subspaces(problem):
    text, (sg, sl, sy), _ = problem
    adapter = fit_ssp(sg, sl, sy, text, lambda v: v @ text.T, names(10), SSPConfig(top_s=4, language_rank=500))
    basis = adapter.vision_basis
    assert basis.shape == (64, 10)  # the span of 10 class means
    assert torch.allclose(basis.T @ basis, torch.eye(10), atol=1e-5)
    assert adapter.info.ranks["language"] == [8 * 4] * 10  # 8 shots x top 4 patches, capped at the span
    assert torch.allclose(adapter.language_text.norm(dim=-1), torch.ones(10))
    capped = fit_ssp(sg, sl, sy, text, lambda v: v @ text.T, names(10), SSPConfig(vision_rank=3, language_rank=2))
    assert capped.vision_basis.shape == (64, 3) and capped.info.ranks["language"] == [2] * 10


# ------------------------------------------------------------------------------------------------ behaviour
def test_empty_support_is_exactly_zero_shot(problem):
    text, _, (tg, _, _) = problem
    adapter = fit_ssp(torch.empty(0, 64), torch.empty(0, 16, 64), [], text, lambda v: v @ text.T, names(10))
    zs = tg @ text.T
    assert adapter.is_empty and torch.equal(adapter.logits(tg, zs), zs)


def test_planted_structure_ssp_beats_zero_shot(problem):
    text, (sg, sl, sy), (tg, _, ty) = problem

    def accuracy(scores):
        return (scores.argmax(-1) == ty).float().mean().item()

    zs = tg @ text.T
    ssp = fit_ssp(sg, sl, sy, text, lambda v: v @ text.T, names(10), tau=100.0)
    cache = fit_ssp(sg, sl, sy, text, lambda v: v @ text.T, names(10), SSPConfig(mode="cache"), tau=100.0)
    acc_zs, acc_cache, acc_ssp = accuracy(zs), accuracy(cache.logits(tg, zs)), accuracy(ssp.logits(tg, zs))
    assert ssp.info.tuned and cache.info.gamma == 0.0
    assert acc_ssp > acc_zs + 0.15, (acc_zs, acc_ssp)
    assert acc_ssp > acc_cache, (acc_cache, acc_ssp)  # the vision projection removes the background directions


def test_language_projection_moves_text_towards_the_images(problem):
    text, (sg, sl, sy), (tg, _, ty) = problem
    cfg = SSPConfig(alpha=0.0, beta=1.0, gamma=1.0, lam=0.1, language_rank=1)
    adapter = fit_ssp(sg, sl, sy, text, lambda v: v @ text.T, names(10), cfg)
    assert not adapter.info.tuned  # everything fixed: nothing to tune
    lang_acc = ((tg @ adapter.language_text.T).argmax(-1) == ty).float().mean().item()
    assert lang_acc > ((tg @ text.T).argmax(-1) == ty).float().mean().item() + 0.15


def test_validation_split_is_disjoint_and_per_class():
    labels = torch.tensor([0] * 8 + [1] * 2 + [2])
    fit, val = validation_split(labels, 0.25, seed=3)
    assert set(fit.tolist()).isdisjoint(val.tolist()) and len(fit) + len(val) == len(labels)
    assert torch.bincount(labels[val], minlength=3).tolist() == [2, 1, 0]  # floor(8/4), at least 1, none for k=1
    assert torch.equal(validation_split(labels, 0.25, seed=3)[1], val)
    # tuning sees only support images: a 1-shot support set has no validation split and keeps the defaults
    text = F.normalize(torch.randn(3, 8), dim=-1)
    one = fit_ssp(text, text[:, None].repeat(1, 4, 1), [0, 1, 2], text, lambda v: v @ text.T, names(3))
    assert not one.info.tuned and one.info.validation_images == 0


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"mode": "adapter"}, "mode must be one of"),
        ({"mode": None}, "mode must be one of"),
        ({"mode": "tip"}, "mode must be one of"),
        ({"top_s": 0}, "top_s must be a positive integer"),
        ({"top_s": True}, "top_s must be a positive integer"),
        ({"top_s": 2.0}, "top_s must be a positive integer"),
        ({"lam": -0.5}, "lam must be a finite number >= 0"),
        ({"lam": NAN}, "lam must be a finite number >= 0"),
        ({"lam": INF}, "lam must be a finite number >= 0"),
        ({"lam": "1"}, "lam must be a finite number >= 0"),
        ({"lam": True}, "lam must be a finite number >= 0"),
        ({"vision_rank": 0}, "vision_rank must be a positive integer or None"),
        ({"language_rank": False}, "language_rank must be a positive integer or None"),
        ({"alpha": -1}, "alpha must be a finite number >= 0 or None"),
        ({"beta": NAN}, "beta must be a finite number >= 0 or None"),
        ({"gamma": True}, "gamma must be a finite number >= 0 or None"),
        ({"alpha_grid": ()}, "alpha_grid must be a non-empty list"),
        ({"beta_grid": (1.0, -2.0)}, "beta_grid must be a non-empty list"),
        ({"gamma_grid": (INF,)}, "gamma_grid must be a non-empty list"),
        ({"gamma_grid": "0.5"}, "gamma_grid must be a non-empty list"),
        ({"val_fraction": 0.0}, "val_fraction must be a number in \\(0, 1\\)"),
        ({"val_fraction": 1.0}, "val_fraction must be a number in \\(0, 1\\)"),
        ({"val_fraction": NAN}, "val_fraction must be a number in \\(0, 1\\)"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"seed": True}, "seed must be an integer"),
        ({"augment_views": 0}, "augment_views must be a positive integer"),
        ({"augment_views": True}, "augment_views must be a positive integer"),
    ],
)
def test_hostile_ssp_options_are_refused(options, fragment):
    with pytest.raises(InvalidConfigError, match=fragment):
        SSPConfig(**options)


def test_unknown_few_shot_options_are_refused():
    with pytest.raises(InvalidConfigError, match="Unknown few-shot options"):
        SSPConfig.from_dict({"topk": 3})


def test_ssp_options_accept_their_edges():
    cfg = SSPConfig(lam=0, top_s=1, vision_rank=None, alpha=0, gamma_grid=[0, 1], val_fraction=0.5, seed=-3)
    assert cfg.gamma_grid == (0.0, 1.0) and cfg.lam == 0


def test_errors(problem):
    text, (sg, sl, sy), _ = problem
    keep = sy != 3
    with pytest.raises(InvalidLabelsError, match="class 3"):
        fit_ssp(sg[keep], sl[keep], sy[keep], text, lambda v: v @ text.T, names(10))
    with pytest.raises(InvalidConfigError, match="mode"):
        SSPConfig(mode="adapter")
    with pytest.raises(InvalidConfigError, match="top_s"):
        SSPConfig(top_s=0)
    with pytest.raises(InvalidConfigError, match="Unknown few-shot options"):
        SSPConfig.from_dict({"rank": 3})
    adapter = fit_ssp(sg, sl, sy, text, lambda v: v @ text.T, names(10))
    with pytest.raises(InvalidConfigError, match="shape"):
        adapter.logits(sg, torch.zeros(len(sg), 3))


# ------------------------------------------------------------------------------------------------ files
def test_adapter_round_trip_beside_a_space(problem, small_space, tmp_path):
    text, (sg, sl, sy), (tg, _, _) = problem
    adapter = fit_ssp(sg, sl, sy, text, lambda v: v @ text.T, names(10))
    folder = small_space.save_pretrained(tmp_path / "space")
    adapter.save_pretrained(folder)
    assert not list(folder.glob("*.tmp"))
    loaded = SSPAdapter.from_pretrained(folder)
    zs = tg @ text.T
    assert torch.equal(loaded.logits(tg, zs), adapter.logits(tg, zs))
    assert loaded.labels == adapter.labels and loaded.info == adapter.info
    type(small_space).from_pretrained(folder)  # the space beside it still loads

    empty = fit_ssp(torch.empty(0, 64), torch.empty(0, 4, 64), [], text, lambda v: v @ text.T, names(10))
    empty.save_pretrained(tmp_path / "empty")
    assert SSPAdapter.from_pretrained(tmp_path / "empty").is_empty


def test_adapter_file_errors(problem, tmp_path):
    text, (sg, sl, sy), _ = problem
    folder = fit_ssp(sg, sl, sy, text, lambda v: v @ text.T, names(10)).save_pretrained(tmp_path / "a")
    with pytest.raises(ArtifactNotFoundError):
        SSPAdapter.from_pretrained(tmp_path)
    meta = json.loads((folder / SSP_CONFIG_NAME).read_text())
    (folder / SSP_CONFIG_NAME).write_text(json.dumps({**meta, "labels": names(9)}))
    with pytest.raises(ArtifactShapeError, match="language_text"):
        SSPAdapter.from_pretrained(folder)
    (folder / SSP_CONFIG_NAME).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(FormatVersionError):
        SSPAdapter.from_pretrained(folder)
    (folder / SSP_CONFIG_NAME).write_text(json.dumps(meta))
    (folder / SSP_TENSORS_NAME).write_bytes((folder / SSP_TENSORS_NAME).read_bytes()[:100])
    with pytest.raises(Exception, match="cannot be read"):
        SSPAdapter.from_pretrained(folder)


def test_fit_info_is_typed_and_saved_with_the_same_keys(problem, small_space, tmp_path):
    text, (sg, sl, sy), _ = problem
    adapter = fit_ssp(sg, sl, sy, text, lambda v: v @ text.T, names(10))
    info = adapter.info
    assert isinstance(info, FitInfo) and info.embedding_dim == 64 and info.shots == [8] * 10
    assert info.tuned and info.validation_images == 20 and 0.0 <= info.validation_accuracy <= 1.0
    assert info.base_model is None and info.zero_shot_metric is None  # fitted on raw features: unknown
    saved = json.loads((adapter.save_pretrained(tmp_path / "a") / SSP_CONFIG_NAME).read_text())["info"]
    assert set(saved) == {
        "embedding_dim",
        "shots",
        "alpha",
        "beta",
        "gamma",
        "tuned",
        "validation_images",
        "validation_accuracy",
        "validation_zero_shot_accuracy",
        "ranks",
    }
    empty = fit_ssp(torch.empty(0, 64), torch.empty(0, 4, 64), [], text, lambda v: v @ text.T, names(10))
    assert empty.info.to_dict() == {
        "embedding_dim": 64,
        "shots": [0] * 10,
        "alpha": 0.0,
        "beta": 0.0,
        "gamma": 0.0,
        "tuned": False,
    }
    with pytest.raises(InvalidConfigError, match="extra_info"):
        fit_ssp(sg, sl, sy, text, lambda v: v @ text.T, names(10), extra_info={"note": "x"})

    d = small_space.tensors.points.shape[1]
    glob = F.normalize(torch.randn(3, d), dim=-1)
    on_space = fit_for_space(small_space, [0, 1, 2], glob, glob[:, None].repeat(1, 4, 1), [0, 1, 2], "global_center")
    assert on_space.info.base_model == small_space.config.base_model
    assert on_space.info.zero_shot_metric == "global_center" and on_space.info.text_vector == "global_center"
    on_space.save_pretrained(tmp_path / "s")
    assert SSPAdapter.from_pretrained(tmp_path / "s").info == on_space.info


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda meta: meta.__setitem__("info", [1, 2]), "expected a JSON object"),
        (lambda meta: meta["info"].pop("alpha"), r"lacks the keys \['alpha'\]"),
        (lambda meta: meta["info"].__setitem__("alpha", "high"), "'alpha' must be a number"),
        (lambda meta: meta["info"].__setitem__("tuned", 1), "'tuned' must be true or false"),
        (lambda meta: meta["info"].__setitem__("shots", [8, "8"]), "'shots' must be a list of integers"),
        (lambda meta: meta["info"].__setitem__("embedding_dim", 0), "'embedding_dim' must be a positive integer"),
        (lambda meta: meta["info"].__setitem__("base_model", 7), "'base_model' must be a string or null"),
        (lambda meta: meta["info"].__setitem__("ranks", [3]), "'ranks' must be an object or null"),
        (lambda meta: meta.__setitem__("labels", "cat"), "'labels' must be a non-empty list of strings"),
        (lambda meta: meta.pop("language_term"), "'language_term' must be true or false"),
    ],
)
def test_malformed_fit_info(problem, tmp_path, edit, match):
    text, (sg, sl, sy), _ = problem
    folder = fit_ssp(sg, sl, sy, text, lambda v: v @ text.T, names(10)).save_pretrained(tmp_path / "a")
    meta = json.loads((folder / SSP_CONFIG_NAME).read_text())
    edit(meta)
    (folder / SSP_CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(ArtifactCorruptError, match=match) as err:
        SSPAdapter.from_pretrained(folder)
    assert "Refit the adapter" in str(err.value)


# ------------------------------------------------------------------------------------------------ support sets
def test_read_support_forms(photos, tmp_path):
    import datasets

    root = tmp_path / "support"
    for label, photo in zip(["cat", "dog", "airplane", "cat"], photos, strict=False):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.open(photo).save(root / label / f"{photo.stem}.png")
    images, labels = read_support(root, LABELS)
    assert len(images) == 4 and sorted(labels) == [0, 0, 1, 2]
    pairs = [(str(p), lab) for p, lab in zip(photos, ["cat", "dog", 2], strict=False)]
    assert read_support(pairs, LABELS)[1] == [0, 1, 2]
    ds = datasets.Dataset.from_dict(
        {"image": [str(p) for p in photos[:3]], "label": [2, 0, 1]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=LABELS)}),
    )
    images, labels = read_support(ds, LABELS)
    assert labels == [2, 0, 1] and isinstance(images[0], Image.Image)
    assert read_support(None, LABELS) == ([], []) and read_support([], LABELS) == ([], [])
    with pytest.raises(InvalidLabelsError, match="horse"):
        read_support([(str(photos[0]), "horse")], LABELS)
    with pytest.raises(InvalidLabelsError, match="does not exist"):
        read_support(tmp_path / "nowhere", LABELS)
    with pytest.raises(InvalidLabelsError, match="pairs"):
        read_support([str(photos[0])], LABELS)


def test_sample_shots():
    labels = [0, 0, 0, 1, 1, 2, 0, 1]
    picked = sample_shots(labels, 2, seed=0)
    assert sorted(np.bincount([labels[i] for i in picked]).tolist()) == [1, 2, 2]  # class 2 has one image only
    assert picked == sample_shots(labels, 2, seed=0) and picked == sorted(picked)
    assert {tuple(sample_shots(labels, 1, seed=s)) for s in range(10)} != {tuple(sample_shots(labels, 1, seed=0))}


# ------------------------------------------------------------------------------------------------ model + pipeline
def test_global_and_local_features(tiny_model, tiny_clip_dir, photos):
    from transformers import AutoImageProcessor

    model, _ = tiny_model
    pixels = pixel_values(AutoImageProcessor.from_pretrained(tiny_clip_dir), [Image.open(p) for p in photos[:2]])
    glob, local = global_and_local(model, pixels)
    assert torch.equal(glob, encode_pixels(model, pixels))  # the global feature is CLIP's image embedding
    assert local.shape == (2, (32 // 8) ** 2, 16)  # one feature per 8x8 patch of a 32x32 input
    assert torch.allclose(local.norm(dim=-1), torch.ones(2, 16), atol=1e-5)


def test_text_vectors(small_space):
    g = class_text_vectors(small_space, [2, 0])
    assert torch.equal(g, small_space.tensors.global_centres[[2, 0]])
    label = class_text_vectors(small_space, [1], "label")
    first = int(torch.nonzero(small_space.tensors.point_class == 1)[0])
    assert torch.equal(label[0], small_space.tensors.points[first])
    with pytest.raises(InvalidConfigError):
        class_text_vectors(small_space, [0], "local_center")


def test_pipeline_support(s3_pipe, photos, tmp_path):
    from s3_hf.space.scoring import score

    image = str(photos[4])
    base = s3_pipe(image, candidate_labels=LABELS, synonyms=SYNONYMS)
    assert s3_pipe(image, candidate_labels=LABELS, synonyms=SYNONYMS, support=[]) == base
    support = [(str(p), lab) for p, lab in zip(photos, ["cat", "dog", "airplane", "cat", "dog"], strict=True)]
    fixed = {"alpha": 0.5, "beta": 1.0, "gamma": 0.5}
    out = s3_pipe(image, candidate_labels=LABELS, synonyms=SYNONYMS, support=support, fewshot=fixed)
    assert out != base
    # the pipeline's scores are softmax(tau * (S^3 score + alpha cache + gamma language)) of the fitted adapter
    selection = s3_pipe.engine.space(candidate_labels=LABELS, synonyms=SYNONYMS)
    space = selection.space
    adapter = s3_pipe.engine.adapter(selection, support, "local_center", 3, SSPConfig(**fixed))
    assert adapter.info.shots == [2, 2, 1] and adapter.alpha == 0.5
    v = encode_pixels(s3_pipe.model, pixel_values(s3_pipe.image_processor, [Image.open(image).convert("RGB")]))
    logits = s3_pipe.model.logit_scale.exp() * adapter.logits(v, score(v, space.scoring_state(), "local_center"))
    expected = dict(zip(LABELS, logits.softmax(-1)[0].tolist(), strict=True))
    assert {r["label"]: r["score"] for r in out} == pytest.approx(expected, abs=1e-6)
    # support images are encoded once per support set: the same adapter serves the next call
    assert s3_pipe.engine.adapter(selection, support, "local_center", 3, SSPConfig(**fixed)) is adapter
    adapter.save_pretrained(tmp_path / "adapter")
    again = s3_pipe(image, candidate_labels=LABELS, synonyms=SYNONYMS, support=str(tmp_path / "adapter"))
    assert again == out
    tuned = s3_pipe.engine.adapter(selection, support, "local_center", 3)
    assert tuned.info.tuned and tuned.info.validation_images == 2  # one each of cat and dog
    with pytest.raises(InvalidLabelsError, match="fitted for classes"):
        s3_pipe(image, candidate_labels=LABELS[:2], support=adapter)
    with pytest.raises(InvalidLabelsError, match="no image of"):
        s3_pipe(image, candidate_labels=LABELS, synonyms=SYNONYMS, support=support[:1])
    other = SSPAdapter(
        adapter.labels, adapter.config, replace(adapter.info, base_model="org/other-clip"), adapter._terms
    )
    with pytest.raises(ModelMismatchError, match="other-clip"):
        s3_pipe(image, candidate_labels=LABELS, synonyms=SYNONYMS, support=other)
    with pytest.raises(InvalidConfigError, match="support"):
        s3_pipe(image, candidate_labels=LABELS, fewshot={"mode": "cache"})


def test_adapter_on_the_hub(problem, tmp_path):
    from helpers import COMMIT, fake_hub

    text, (sg, sl, sy), (tg, _, _) = problem
    adapter = fit_ssp(sg, sl, sy, text, lambda v: v @ text.T, names(10))
    with fake_hub({"org/space-only": {"s3_config.json": b"{}"}}) as hub:
        assert adapter.push_to_hub("org/pets-s3", token="hf_fake").endswith(COMMIT)
        (commit,) = hub.commits
        assert sorted(commit["files"]) == sorted([SSP_CONFIG_NAME, SSP_TENSORS_NAME, "s3_manifest.json"])
        loaded = SSPAdapter.from_pretrained("org/pets-s3", cache_dir=tmp_path / "cache")
        with pytest.raises(ArtifactNotFoundError, match="few-shot adapter"):
            SSPAdapter.from_pretrained("org/space-only", cache_dir=tmp_path / "cache")
    zs = tg @ text.T
    assert torch.equal(loaded.logits(tg, zs), adapter.logits(tg, zs))
