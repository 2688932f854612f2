"""TDA as a baseline (test T2 of the design): the project's TDA against an independent loop of the published rules,
written here from the paper's formulas (a dict of per-class lists, update before scoring, entropy H / log2 C)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from s3_hf.errors import StreamMismatchError
from s3_hf.options import SpaceParams
from s3_hf.space.geometry import build_space
from s3_hf.space.scoring import ScoringState, score
from s3_hf.tta import TDA, TS3State, tda_config

POS = {"size": 3, "alpha": 2.0, "beta": 5.0}
NEG = {"size": 2, "alpha": 0.117, "beta": 1.0, "entropy": (0.2, 0.5), "mask": (0.03, 1.0)}


def reference_tda(feats, text, tau=100.0):
    """One image at a time: CLIP logits, the caches updated with the image, then the image scored against them."""
    num_classes = text.shape[0]
    pos, neg, out = {}, {}, []

    def offer(cache, c, item, size):
        items = cache.setdefault(c, [])
        if len(items) < size:
            items.append(item)
        elif item[1] < items[-1][1]:
            items[-1] = item
        items.sort(key=lambda x: x[1])  # stable: equal entropies keep their arrival order

    for v in feats.double():
        logits = tau * (text.double() @ v)
        p = logits.softmax(0)
        loss = float(-(p * logits.log_softmax(0)).sum())
        pred = int(logits.argmax())
        offer(pos, pred, (v, loss), POS["size"])
        if NEG["entropy"][0] < loss / math.log2(num_classes) < NEG["entropy"][1]:
            offer(neg, pred, (v, loss, ((p > NEG["mask"][0]) & (p < NEG["mask"][1])).double()), NEG["size"])
        final = logits.clone()
        for c, items in pos.items():
            for k, _ in items:
                final[c] += POS["alpha"] * math.exp(-(POS["beta"] - POS["beta"] * float(v @ k)))
        for items in neg.values():
            for k, _, values in items:
                final -= NEG["alpha"] * math.exp(-(NEG["beta"] - NEG["beta"] * float(v @ k))) * values
        out.append(final)
    return torch.stack(out), pos, neg


@pytest.fixture(scope="module")
def embeddings():
    gen = torch.Generator().manual_seed(0)
    num_classes, dim = 10, 32
    text = F.normalize(torch.randn(num_classes, dim, generator=gen), dim=-1)
    truth = torch.randint(num_classes, (500,), generator=gen)
    strength = torch.rand(500, 1, generator=gen) * 0.3  # from confident to nearly uniform: every cache rule fires
    feats = F.normalize(strength * text[truth] + torch.randn(500, dim, generator=gen) / dim**0.5, dim=-1)
    return feats, text


def test_tda_matches_the_published_rules(embeddings):
    feats, text = embeddings
    labels = [f"class {c}" for c in range(len(text))]
    expected, pos, neg = reference_tda(feats, text)
    tda = TDA(text, labels)
    got = torch.cat([tda(feats[i : i + 37]) for i in range(0, len(feats), 37)])
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=0)
    assert (got.argmax(1) != (feats @ text.T).argmax(1)).any()  # the caches change some predictions
    assert sum(map(len, neg.values())) >= 5 and any(len(items) == 3 for items in pos.values())
    assert tda.n_seen == 500 and tda.state.neg.items == sum(map(len, neg.values()))


def test_one_point_per_class_makes_s3_plain_clip(embeddings):
    feats, text = embeddings
    space, _ = build_space(text, torch.arange(len(text)), SpaceParams())
    torch.testing.assert_close(score(feats, ScoringState.from_space(space), "local_center"), feats @ text.T)
    state = TS3State(tda_config(), [str(c) for c in range(len(text))], text.shape[1], 100.0)
    scores = (feats.double() @ text.double().T).float()
    torch.testing.assert_close(state(feats, scores).double(), reference_tda(feats, text)[0], atol=1e-5, rtol=0)


def test_tda_needs_its_own_order():
    with pytest.raises(StreamMismatchError, match="tda_config"):
        TDA(torch.eye(3), ["a", "b", "c"], config=tda_config(tda_compat=False))
