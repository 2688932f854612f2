"""ZERO-S^3 (``tta="zero"``): the views, the vote against a reference of ZERO's published rule, and the engine and
pipeline paths (stateless: the same answer in any order and batch), with the options' errors."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from s3_hf.engine.core import S3Engine
from s3_hf.errors import InvalidConfigError
from s3_hf.io.crops import crop_box
from s3_hf.tta import ZeroConfig
from s3_hf.tta.zero import augmented_views, view_seed, vote

LABELS = ["cat", "dog", "airplane", "cup of coffee", "rocket"]


def reference_vote(logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """ZERO's rule as its paper and ``ttas/zero.py`` state it, written independently: entropy of the softmax per view,
    the int(V * gamma) lowest-entropy views, a zero-temperature softmax (one-hot) each, summed; a tie between the top
    classes goes to the first remaining view (in entropy order) whose argmax is tied, or else to the tied class the
    first remaining view scores highest, and gets one more vote."""
    x = logits.double()
    entropy = torch.tensor([-(row.softmax(0) * row.softmax(0).log()).nansum() for row in x])
    ranked = sorted(range(len(x)), key=lambda i: (float(entropy[i]), i))
    k = int(len(x) * gamma)
    counts = [0.0] * x.shape[1]
    for i in ranked[:k]:
        counts[int(torch.argmax(x[i]))] += 1
    best = max(counts)
    tied = [c for c, n in enumerate(counts) if n == best]
    if len(tied) > 1:
        rest = [x[i] for i in ranked[k:]]
        chosen = next((int(torch.argmax(r)) for r in rest if int(torch.argmax(r)) in tied), None)
        if chosen is None:
            chosen = max(tied, key=lambda c: float(rest[0][c])) if rest else tied[0]
        counts[chosen] += 1
    total = sum(counts)
    return torch.tensor([n / total for n in counts], dtype=torch.float64)


def test_vote_equals_the_reference_rule_on_random_logits():
    gen = torch.Generator().manual_seed(0)
    for trial in range(400):
        views, classes = int(torch.randint(2, 20, (1,), generator=gen)), int(torch.randint(2, 6, (1,), generator=gen))
        logits = torch.randn(views, classes, generator=gen) * 3
        gamma = [0.3, 0.5, 1.0][trial % 3]
        keep = max(1, int(views * gamma))
        got, winner = vote(logits, keep)
        want = reference_vote(logits, keep / views + 1e-9)
        assert torch.allclose(got.double(), want, atol=1e-6), (trial, got, want)
        assert winner == int(want.argmax())


def test_vote_known_answers():
    # three confident views vote 0, 1, 1: class 1 wins 2 of 3
    logits = torch.tensor([[9.0, 0, 0], [0, 9.0, 0], [0, 8.0, 0], [1.0, 1.1, 1.0]])
    fractions, winner = vote(logits, 3)
    assert winner == 1 and fractions.tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    # a tie 0 vs 1 among the two kept views: the first remaining view votes 2 (not tied), the next votes 1
    logits = torch.tensor([[9.0, 0, 0], [0, 9.0, 0], [0, 0, 3.0], [0, 2.0, 0]])
    fractions, winner = vote(logits, 2)
    assert winner == 1 and fractions.tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    # no remaining view's argmax is tied: the tied class the first remaining view scores highest
    logits = torch.tensor([[9.0, 0, 0], [0, 9.0, 0], [0, 1.0, 3.0]])
    assert vote(logits, 2)[1] == 1
    # nothing remains: the lowest tied index
    assert vote(torch.tensor([[9.0, 0], [0, 9.0]]), 2)[1] == 0
    with pytest.raises(ValueError):
        vote(torch.zeros(3, 2), 4)


def test_crop_box_stays_inside_and_follows_the_area_and_ratio_bounds():
    gen = torch.Generator().manual_seed(1)
    for width, height in [(640, 480), (50, 300), (224, 224)]:
        for _ in range(200):
            left, top, w, h = crop_box(width, height, gen)
            assert 0 <= left < left + w <= width and 0 <= top < top + h <= height
            if (w, h) != (width, height):
                assert 0.08 * width * height * 0.9 <= w * h <= width * height
                assert 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1
    # no box can fit (aspect 4-5 on a square): the central crop of the nearest allowed ratio
    assert crop_box(100, 100, torch.Generator().manual_seed(0), ratio=(4.0, 5.0)) == (0, 37, 100, 25)


def test_views_are_seeded_by_the_image_not_by_what_ran_before():
    image = Image.fromarray((torch.arange(64 * 48 * 3) % 251).reshape(64, 48, 3).to(torch.uint8).numpy())
    config = ZeroConfig(views=6, keep=0.5)
    torch.manual_seed(0)
    first = augmented_views(image, config, 32)
    torch.manual_seed(123)
    torch.rand(1000)
    second = augmented_views(image, config, 32)
    assert first[0] is image and len(first) == 6
    assert all(v.size == (32, 32) for v in first[1:])
    assert [v.tobytes() for v in first] == [v.tobytes() for v in second]
    other = augmented_views(image, ZeroConfig(views=6, keep=0.5, seed=1), 32)
    assert [v.tobytes() for v in other[1:]] != [v.tobytes() for v in first[1:]]
    assert view_seed(0, image) != view_seed(0, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    return S3Engine.from_pretrained(tiny_clip_dir, device="cpu")


def test_engine_zero_equals_the_views_scored_and_voted_by_hand(engine, photos):
    config = ZeroConfig(views=8, keep=0.5, seed=3)
    request = engine.request(LABELS)
    got = engine.classify([str(p) for p in photos[:2]], request, tta=config)
    resolved = engine.resolve(request)
    for path, ranked in zip(photos[:2], got, strict=True):
        views = augmented_views(engine.load_image(str(path), fast=False), config, engine.encoder.decode_min_side())
        logits = engine.scores(engine.encode_pixels(engine.image_inputs(views)), resolved).logits
        fractions, winner = vote(logits, 4)
        assert ranked[0].label == LABELS[winner]
        by_label = {p.label: p.score for p in ranked}
        assert [by_label[lab] for lab in LABELS] == pytest.approx(fractions.tolist(), abs=1e-6)
        assert math.isclose(sum(by_label.values()), 1.0, abs_tol=1e-6)


def test_one_view_is_the_static_argmax(engine, photos):
    request = engine.request(LABELS)
    paths = [str(p) for p in photos]
    static = engine.classify(paths, request)
    zero = engine.classify(paths, request, tta=ZeroConfig(views=1, keep=1.0))
    assert [r[0].label for r in zero] == [r[0].label for r in static]
    assert all(r[0].score == 1.0 for r in zero)


def test_pipeline_zero_is_stateless_and_equals_the_engine(s3_pipe, photos):
    config = ZeroConfig(views=6, keep=0.5)
    paths = [str(p) for p in photos[:3]]
    one = s3_pipe(paths, candidate_labels=LABELS, tta=config)
    batched = s3_pipe(paths[::-1], candidate_labels=LABELS, tta=config, batch_size=2)[::-1]
    assert one == batched
    engine = s3_pipe.engine
    typed = engine.classify(paths, engine.request(LABELS), tta=config)
    assert one == [[p.to_dict() for p in r] for r in typed]
    default = s3_pipe(paths[0], candidate_labels=LABELS, tta="zero", top_k=2)
    assert len(default) == 2 and default[0]["score"] >= default[1]["score"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tta": "ts3"}, "stream"),
        ({"tta": "bogus"}, "tta must be"),
        ({"tta": "zero", "return_details": True}, "return_details"),
        ({"tta": "zero", "multi_label": True}, "multi_label"),
    ],
)
def test_pipeline_refuses_what_zero_cannot_do(s3_pipe, photos, kwargs, match):
    with pytest.raises(InvalidConfigError, match=match):
        s3_pipe(str(photos[0]), candidate_labels=LABELS, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"views": 0}, "views"),
        ({"keep": 0}, "keep"),
        ({"keep": 1.5}, "keep"),
        ({"views": 3, "keep": 0.3}, "keeps none"),
        ({"seed": -1}, "seed"),
        ({"scale": (0.5, 0.1)}, "scale"),
        ({"scale": (0.5, 2.0)}, "at most 1"),
        ({"ratio": (0, 1)}, "ratio"),
    ],
)
def test_zero_config_errors(kwargs, match):
    with pytest.raises(InvalidConfigError, match=match):
        ZeroConfig(**kwargs)


def test_engine_classify_takes_abstain_and_multi_label_like_the_pipeline(engine, s3_pipe, photos):
    paths = [str(p) for p in photos[:2]]
    request = engine.request(LABELS)
    for options in ({"abstain_threshold": 1.0}, {"multi_label": True}, {"abstain_threshold": 0.9, "multi_label": True}):
        typed = engine.classify(paths, request, **options)
        piped = s3_pipe.engine.classify(paths, s3_pipe.engine.request(LABELS), **options)
        piped_call = s3_pipe(paths, candidate_labels=LABELS, **options)  # one image per forward: equal to 1e-6
        assert [[p.label for p in r] for r in typed] == [[p["label"] for p in r] for r in piped_call]
        assert [[p.score for p in r] for r in typed] == [
            pytest.approx([p["score"] for p in r], abs=1e-6) for r in piped_call
        ]
        assert typed == piped
    with pytest.raises(InvalidConfigError):
        engine.classify(paths, request, abstain_threshold=0)
