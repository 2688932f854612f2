"""Point-to-space metrics: hand-computed values, a per-class reference, and an independent simplex solver."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import ANGLES, arc
from scipy.optimize import minimize

from s3_hf.errors import InvalidConfigError
from s3_hf.space.geometry import SpaceParams, build_space
from s3_hf.space.scoring import METRICS, ScoringState, centre_members, score


def cosd(deg: float) -> float:
    return math.cos(math.radians(deg))


@pytest.fixture(scope="module")
def arc_state() -> ScoringState:
    """Class 0: the arc of test_space (kept 0°, 10°, 20°, 35°; outlier 130°). Class 1: a single point at 200°."""
    pts = torch.tensor(np.vstack([arc(*ANGLES), arc(200)]), dtype=torch.float64)
    t, _ = build_space(pts, torch.tensor([0] * 5 + [1]))
    return ScoringState.from_space(t, dtype=torch.float64)


def unit(mean: np.ndarray) -> np.ndarray:
    return mean / np.linalg.norm(mean)


def test_metric_values_by_hand(arc_state):
    v = torch.tensor(arc(25), dtype=torch.float64)  # between 20° and 35°, nearest to 20°
    kept = arc(0, 10, 20, 35)
    vv = arc(25)[0]
    expected = {
        "label": cosd(25),
        "global_center": vv @ unit(kept.sum(0)),
        "nearest_point": cosd(5),
        "mean_similarity": np.mean([cosd(25 - a) for a in (0, 10, 20, 35)]),
        # u* = 20°, N[u*] = {10°, 20°, 35°}
        "local_center": vv @ unit(arc(10, 20, 35).sum(0)),
        # the three nearest kept points: 20°, 35°, 10°
        "local_center_knn": vv @ unit(arc(20, 35, 10).sum(0)),
        # the foot of the perpendicular on the chord 20°-35° lies inside it, at distance cos 2.5° - cos 7.5°
        "nearest_simplex": 1 - 0.5 * (cosd(2.5) - cosd(7.5)) ** 2,
    }
    for metric, value in expected.items():
        got = score(v, arc_state, metric)
        assert got[0, 0].item() == pytest.approx(value, abs=1e-6), metric
        # a class with a single point: every metric is the label's cosine
        assert got[0, 1].item() == pytest.approx(cosd(175), abs=1e-6), metric


def test_nearest_simplex_clamps_to_a_vertex(arc_state):
    v = torch.tensor(arc(40), dtype=torch.float64)  # beyond 35°: the nearest point of the complex is the vertex
    assert score(v, arc_state, "nearest_simplex")[0, 0].item() == pytest.approx(cosd(5), abs=1e-6)


def test_centre_members(arc_state):
    v = torch.tensor(arc(25), dtype=torch.float64)
    members = {m: centre_members(v, arc_state, m)[0, 0].tolist() for m in METRICS}
    assert members["label"] == [True, False, False, False, False]
    assert members["global_center"] == [True, True, True, True, False]
    assert members["nearest_point"] == [False, False, True, False, False]
    assert members["local_center"] == [False, True, True, True, False]
    assert members["local_center_knn"] == [False, True, True, True, False]
    assert members["nearest_simplex"] == [False, False, True, True, False]


def random_space(seed: int, sizes=(1, 3, 6, 11), dim: int = 12, **params):
    g = torch.Generator().manual_seed(seed)
    pts = F.normalize(torch.randn(sum(sizes), dim, generator=g, dtype=torch.float64), dim=-1)
    cls = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    t, _ = build_space(pts, cls, SpaceParams(**params))
    v = F.normalize(torch.randn(7, dim, generator=g, dtype=torch.float64), dim=-1)
    return t, v


def reference(v: torch.Tensor, t, metric: str, k: int = 3) -> torch.Tensor:
    """The metric definitions of the README's method section written out per image and per class, with plain
    loops."""
    out = torch.zeros(len(v), t.num_classes, dtype=torch.float64)
    pts = t.points.double()
    for b in range(len(v)):
        for c in range(t.num_classes):
            idx = torch.nonzero(t.point_class == c).flatten()
            kept = idx[t.kept[idx]]
            sims = pts[kept] @ v[b]
            if metric == "label":
                s = pts[idx[0]] @ v[b]
            elif metric == "global_center":
                s = F.normalize(pts[kept].mean(0), dim=0) @ v[b]
            elif metric == "nearest_point":
                s = sims.max()
            elif metric == "mean_similarity":
                s = sims.mean()
            elif metric == "local_center":
                u = int(kept[sims.argmax()])
                nb = t.neighbour_indices[t.neighbour_indptr[u] : t.neighbour_indptr[u + 1]]
                s = F.normalize(pts[nb].mean(0), dim=0) @ v[b]
            elif metric == "local_center_knn":
                near = kept[sims.argsort(descending=True)[:k]]
                s = F.normalize(pts[near].mean(0), dim=0) @ v[b]
            out[b, c] = s
    return out


@pytest.mark.parametrize("metric", ["label", "global_center", "nearest_point", "mean_similarity", "local_center"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_metrics_match_reference(metric, seed):
    t, v = random_space(seed, radius="auto", gap_ratio=1.2)
    state = ScoringState.from_space(t, dtype=torch.float64)
    torch.testing.assert_close(score(v, state, metric), reference(v, t, metric), atol=1e-6, rtol=0)


@pytest.mark.parametrize("k", [1, 3, 5, 20])
def test_knn_matches_reference(k):
    t, v = random_space(3)
    state = ScoringState.from_space(t, dtype=torch.float64)
    torch.testing.assert_close(
        score(v, state, "local_center_knn", k=k), reference(v, t, "local_center_knn", k), atol=1e-6, rtol=0
    )


def slsqp_distance2(v: np.ndarray, x: np.ndarray) -> float:
    """min ||v - λ·x||² subject to λ >= 0, Σλ = 1, by scipy's SLSQP (an independent solver)."""
    k = len(x)
    res = minimize(
        lambda lam: float(np.sum((v - lam @ x) ** 2)),
        np.full(k, 1.0 / k),
        jac=lambda lam: -2.0 * x @ (v - lam @ x),
        bounds=[(0.0, 1.0)] * k,
        constraints=[{"type": "eq", "fun": lambda lam: lam.sum() - 1.0, "jac": lambda lam: np.ones(k)}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 500},
    )
    return float(res.fun)


@pytest.mark.parametrize("seed", range(4))
def test_nearest_simplex_matches_independent_solver(seed):
    # a large fixed radius gives many edges and triangles
    t, v = random_space(seed, sizes=(1, 4, 7, 9), dim=5, radius=1.5, max_dim=2)
    state = ScoringState.from_space(t, dtype=torch.float64)
    got = score(v, state, "nearest_simplex")
    sizes = t.simplex_indptr.diff()
    assert (sizes == 3).sum() > 5, "the test needs triangles"
    expected = torch.full_like(got, float("-inf"))
    for s in range(len(sizes)):
        verts = t.simplex_vertices[t.simplex_indptr[s] : t.simplex_indptr[s + 1]]
        c = int(t.point_class[verts[0]])
        x = t.points[verts].double().numpy()
        for b in range(len(v)):
            d2 = slsqp_distance2(v[b].numpy(), x)
            expected[b, c] = max(expected[b, c], 1 - 0.5 * d2)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_float32_matches_float64():
    t, v = random_space(5, radius=1.2)
    for metric in METRICS:
        a = score(v.float(), ScoringState.from_space(t), metric)
        b = score(v, ScoringState.from_space(t, dtype=torch.float64), metric)
        torch.testing.assert_close(a.double(), b, atol=1e-5, rtol=0)


def test_unknown_metric(arc_state):
    with pytest.raises(InvalidConfigError, match="Choose one of"):
        score(torch.zeros(1, 3, dtype=torch.float64), arc_state, "cosine")


def test_concept_similarities_cover_pruned_points_and_agree_with_scoring(arc_state):
    v = torch.tensor(arc(15), dtype=torch.float64)
    every = arc_state.concept_similarities(v)[0]  # (C, M): class 0 holds 0°, 10°, 20°, 35° and the 130° outlier
    assert every[0, :5].tolist() == pytest.approx([cosd(15), cosd(5), cosd(5), cosd(20), cosd(115)])
    assert every[1, 0].item() == pytest.approx(cosd(185))
    kept = arc_state.similarities(v)[0]
    assert torch.isinf(kept[0, 4]) and not arc_state.mask[0, 4]  # scoring never sees the pruned outlier
    assert torch.equal(kept[arc_state.mask], every[arc_state.mask])
