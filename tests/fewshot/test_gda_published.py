"""GDA as published (mrflogs/ICLR24 main_few_shots.py): support features from augmented views, the head on every
view, the released alpha grid, tuning skipped where the split cannot support it; Tip-Adapter's averaged cache keys."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import SYNONYMS
from PIL import Image

from s3_hf.cli import main
from s3_hf.errors import InvalidConfigError
from s3_hf.fewshot import SSPConfig, encode_support_images, encode_support_views, view_keys
from s3_hf.fewshot.features import CROP_RATIO, CROP_SCALE, AugmentedViews
from s3_hf.fewshot.gda import DEFAULT_ALPHA, DEFAULT_ALPHA_GRID, fit_gda
from s3_hf.io.crops import crop_box

LABELS = list(SYNONYMS)  # cat, dog, airplane
VIEWS = 4  # enough to show the mechanism; the default is the released 10


def reference_gda_logits(views, labels, num_classes, queries, zero_shot, alpha):
    """The released GDA head written out plainly: every view a sample; class means; the shared scatter of the
    class-centred samples; precision D * pinv(S + tr(S) / (n - 1) I); uniform priors; zero-shot + alpha * GDA."""
    samples, sample_labels = [], []
    for i, c in enumerate(labels):
        for v in range(views.shape[1]):
            samples.append(views[i, v].double())
            sample_labels.append(c)
    n, d = len(samples), samples[0].shape[0]
    means = []
    for c in range(num_classes):
        members = [s for s, lab in zip(samples, sample_labels, strict=True) if lab == c]
        means.append(sum(members) / len(members))
    scatter = torch.zeros(d, d, dtype=torch.float64)
    for s, lab in zip(samples, sample_labels, strict=True):
        r = (s - means[lab])[:, None]
        scatter += r @ r.T
    precision = d * torch.linalg.pinv(scatter + torch.trace(scatter) / (n - 1) * torch.eye(d, dtype=torch.float64))
    out = torch.empty(len(queries), num_classes, dtype=torch.float64)
    for q in range(len(queries)):
        for c in range(num_classes):
            w = precision @ means[c]
            b = math.log(1.0 / num_classes) - 0.5 * float(means[c] @ precision @ means[c])
            out[q, c] = float(zero_shot[q, c]) + alpha * (float(queries[q].double() @ w) + b)
    return out


@pytest.fixture(scope="module")
def processor(tiny_clip_dir):
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(tiny_clip_dir)


def test_one_shot_gda_acts_and_equals_the_reference_on_the_same_views(tiny_model, processor, photos):
    model, _ = tiny_model
    support, queries_at = [str(p) for p in photos[:3]], [str(p) for p in photos[3:]]  # one image per class
    views = encode_support_views(model, processor, support, VIEWS, seed=0)
    assert views.shape == (3, VIEWS, 16)
    queries, _ = encode_support_images(model, processor, queries_at)
    support_glob, _ = encode_support_images(model, processor, support)
    zs_support = 100.0 * support_glob @ torch.eye(16)[:, :3]  # any zero-shot logits; only GDA's term is tested
    zs_queries = 100.0 * queries @ torch.eye(16)[:, :3]
    gda = fit_gda(views, [0, 1, 2], 3, zs_support, queries=support_glob)
    assert not gda.tuned and gda.alpha == DEFAULT_ALPHA and "no validation images" in gda.note
    assert gda.views == VIEWS and gda.weights.abs().max() > 0
    got = gda.logits(queries, zs_queries.double())
    assert not torch.allclose(got, zs_queries.double())  # the head acts at one shot
    expected = reference_gda_logits(views, [0, 1, 2], 3, queries, zs_queries, 0.1)  # released initial alpha
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    # without augmentation one image per class has no spread: the head is zero and GDA is zero-shot
    plain = fit_gda(support_glob, [0, 1, 2], 3, zs_support)
    assert torch.equal(plain.weights, torch.zeros_like(plain.weights))


def clusters(shots, views, classes=3, dim=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(classes, dim, generator=gen), dim=-1)
    y = torch.arange(classes).repeat_interleave(shots)
    images = centres[y] + 0.3 * torch.randn(len(y), dim, generator=gen)
    x = F.normalize(images[:, None] + 0.1 * torch.randn(len(y), views, dim, generator=gen), dim=-1)
    wrong = torch.zeros(len(y), classes)
    wrong[torch.arange(len(y)), (y + 1) % classes] = 5.0  # a zero-shot classifier that is always wrong
    return x, y.tolist(), wrong


def test_two_shots_skip_tuning_and_more_shots_tune_meaningfully():
    assert set(DEFAULT_ALPHA_GRID) >= {1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0}  # the released grid
    x, y, wrong = clusters(shots=2, views=VIEWS)
    gda = fit_gda(x, y, 3, wrong)
    assert not gda.tuned and gda.alpha == DEFAULT_ALPHA != min(DEFAULT_ALPHA_GRID)
    assert "fewer than 2 images to fit on" in gda.note and gda.validation_images == 3
    x, y, wrong = clusters(shots=4, views=VIEWS)
    gda = fit_gda(x, y, 3, wrong)
    # 3 images per class left to fit on: a weight large enough to overrule the always-wrong zero-shot logits
    assert gda.tuned and "tuned on 3 validation images (accuracy 1.000)" in gda.note
    assert gda.alpha > min(DEFAULT_ALPHA_GRID)
    small = fit_gda(x, y, 3, wrong, alpha=min(DEFAULT_ALPHA_GRID))
    queries = F.normalize(x.mean(dim=1), dim=-1)
    assert (small.logits(queries, wrong.double()).argmax(-1) != torch.tensor(y)).all()  # the minimum cannot
    assert gda.info()["views"] == VIEWS


def test_views_are_seeded_and_differ(tiny_model, processor, photos):
    images = [str(p) for p in photos[:2]]
    first = AugmentedViews(images, 3, seed=0, side=32)
    again = AugmentedViews(images, 3, seed=0, side=32)
    other = AugmentedViews(images, 3, seed=1, side=32)
    arrays = [np.asarray(first[k]) for k in range(len(first))]
    assert all(a.shape == (32, 32, 3) for a in arrays)
    assert all(np.array_equal(a, np.asarray(again[k])) for k, a in enumerate(arrays))
    assert not np.array_equal(arrays[0], arrays[1]) and not np.array_equal(arrays[0], np.asarray(other[0]))
    model, _ = tiny_model
    a, b = encode_support_views(model, processor, images, 3, seed=0), encode_support_views(model, processor, images, 3)
    assert torch.equal(a, b) and not torch.allclose(a[:, 0], a[:, 1])
    # one view is the image as it is
    plain, _ = encode_support_images(model, processor, images)
    torch.testing.assert_close(encode_support_views(model, processor, images, 1)[:, 0], plain)


def test_crop_boxes_follow_the_published_sampling():
    for seed in range(200):
        gen = torch.Generator().manual_seed(seed)
        width, height = [(640, 480), (100, 400), (900, 120)][seed % 3]
        left, top, w, h = crop_box(width, height, gen, CROP_SCALE, CROP_RATIO)
        assert 0 <= left and left + w <= width and 0 <= top and top + h <= height
        if (width, height) == (640, 480):  # a box always fits: area and ratio within the published ranges
            assert CROP_SCALE[0] - 0.01 <= w * h / (width * height) <= CROP_SCALE[1]
            assert CROP_RATIO[0] - 0.02 <= w / h <= CROP_RATIO[1] + 0.02


def test_cache_keys_are_the_mean_of_the_views(s3_pipe, photos):
    support = [(str(p), lab) for p, lab in zip(photos, ["cat", "dog", "airplane", "cat", "dog"], strict=True)]
    selection = s3_pipe.engine.space(candidate_labels=LABELS, synonyms=SYNONYMS)
    fixed = {"mode": "cache", "alpha": 0.5, "beta": 1.0, "augment_views": 3}
    adapter = s3_pipe.engine.adapter(selection, support, "local_center", 3, SSPConfig(**fixed))
    images = [p for p, _ in support]
    expected = view_keys(encode_support_views(s3_pipe.model, s3_pipe.image_processor, images, 3, seed=0))
    torch.testing.assert_close(adapter._terms.keys, expected)
    plain, _ = encode_support_images(s3_pipe.model, s3_pipe.image_processor, images)
    assert not torch.allclose(adapter._terms.keys, plain)
    one = s3_pipe.engine.adapter(selection, support, "local_center", 3, SSPConfig(**{**fixed, "augment_views": 1}))
    torch.testing.assert_close(one._terms.keys, plain)


@pytest.mark.parametrize("views", [0, -2, True])
def test_augment_views_must_be_positive(views):
    with pytest.raises(InvalidConfigError, match="augment_views must be a positive integer"):
        SSPConfig(augment_views=views)


@pytest.mark.parametrize("command", ["fewshot", "eval"])
def test_cli_augment_views_zero_is_a_one_line_error(command, tmp_path, photos, capsys):
    support = tmp_path / "support"
    (support / "cat").mkdir(parents=True)
    Image.open(photos[0]).save(support / "cat" / "a.png")
    if command == "fewshot":
        args = ["fewshot", str(support), "--labels", "cat", "--out", str(tmp_path / "out"), "--augment-views", "0"]
    else:
        args = ["eval", "--benchmarks", str(support), "--shots", "1", "--augment-views", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "augment_views" in err and "use 10" in err
    assert not (tmp_path / "out").exists()
