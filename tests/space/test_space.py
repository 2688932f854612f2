"""Geometry with known answers: persistence, the radius rule, the kept component, the complex, neighbourhoods; and
the arguments that building a space refuses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import ANGLES, arc
from scipy.sparse.csgraph import minimum_spanning_tree

from s3_hf import build_synonym_space
from s3_hf.errors import InvalidConfigError, SynonymsError
from s3_hf.space.geometry import SpaceParams, build_space, chordal_distances, class_geometry, death_times


def chord(deg: float) -> float:
    return 2 * math.sin(math.radians(deg) / 2)


def test_known_class_geometry():
    g = class_geometry(arc(*ANGLES), SpaceParams())
    assert g.deaths == pytest.approx([chord(10), chord(10), chord(15), chord(95)])
    # ratios 1, 1.5, 6.1: the largest jump is before the outlier's merge
    assert g.radius == pytest.approx(chord(15))
    assert g.kept.tolist() == [True, True, True, True, False]
    # edges within 15°: 0-10, 10-20, 20-35; no triangle (0-20 is 20° apart)
    assert g.simplices == [(0,), (1,), (2,), (3,), (0, 1), (1, 2), (2, 3)]


def test_space_tensors_neighbourhoods_and_centres():
    pts = torch.tensor(np.vstack([arc(*ANGLES), arc(50, 52)]), dtype=torch.float32)
    t, _ = build_space(pts, torch.tensor([0] * 5 + [1] * 2))
    nb = [t.neighbour_indices[t.neighbour_indptr[i] : t.neighbour_indptr[i + 1]].tolist() for i in range(7)]
    assert nb == [[0, 1], [0, 1, 2], [1, 2, 3], [2, 3], [], [5, 6], [5, 6]]
    # local centre of 35° is the mean of 20° and 35°: direction 27.5°
    assert torch.allclose(t.local_centres[3], torch.tensor(arc(27.5)[0], dtype=torch.float32), atol=1e-6)
    assert torch.all(t.local_centres[4] == 0)
    mean = arc(0, 10, 20, 35).mean(0)
    assert torch.allclose(
        t.global_centres[0], torch.tensor(mean / np.linalg.norm(mean), dtype=torch.float32), atol=1e-6
    )
    # second class has two points: fewer than min_points, never pruned, radius is their distance
    assert t.radius.tolist() == pytest.approx([chord(15), chord(2)])
    assert t.kept.tolist() == [True, True, True, True, False, True, True]
    sizes = t.simplex_indptr.diff().tolist()
    assert sizes.count(1) == 6 and sizes.count(2) == 4


def test_no_gap_means_no_pruning():
    g = class_geometry(arc(0, 10, 20, 30, 40), SpaceParams())
    assert g.radius == pytest.approx(chord(10)) and g.kept.all()


def test_gap_ratio_threshold():
    # ratios 1, 1, 1.9: pruned at gap_ratio 1.5, kept whole at 2.0
    pts = arc(0, 10, 20, 30, 49)
    assert not class_geometry(pts, SpaceParams(gap_ratio=1.5)).kept.all()
    assert class_geometry(pts, SpaceParams(gap_ratio=2.0)).kept.all()


def test_radius_none_keeps_everything():
    g = class_geometry(arc(*ANGLES), SpaceParams(radius=None))
    assert g.kept.all() and g.radius == pytest.approx(chord(95))


def test_fixed_radius():
    g = class_geometry(arc(*ANGLES), SpaceParams(radius=chord(12)))
    assert g.kept.tolist() == [True, True, True, False, False]
    assert (0, 1, 2) not in g.simplices and (1, 2) in g.simplices


def test_min_points_protects_small_classes():
    g = class_geometry(arc(0, 5, 120), SpaceParams())
    assert g.kept.all()


def test_tie_goes_to_the_label_component():
    # two pairs: {0°, 5°} and {90°, 95°}. The label (row 0) decides which survives.
    g = class_geometry(arc(0, 5, 90, 95), SpaceParams())
    assert g.kept.tolist() == [True, True, False, False]
    g = class_geometry(arc(90, 0, 5, 95), SpaceParams())
    assert g.kept.tolist() == [True, False, False, True]


def test_largest_component_wins_over_label():
    # the label is the outlier: the three synonyms form the larger component
    g = class_geometry(arc(100, 0, 5, 10), SpaceParams())
    assert g.kept.tolist() == [False, True, True, True]


def test_max_dim_controls_triangles():
    pts = arc(0, 3, 6, 90)
    assert (0, 1, 2) in class_geometry(pts, SpaceParams(max_dim=2, radius=chord(7))).simplices
    assert all(len(s) <= 2 for s in class_geometry(pts, SpaceParams(max_dim=1, radius=chord(7))).simplices)


def test_deaths_are_single_linkage_heights():
    rng = np.random.default_rng(0)
    for n in (2, 5, 12, 30):
        pts = rng.normal(size=(n, 8))
        pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        d = chordal_distances(pts)
        mst = minimum_spanning_tree(d).toarray()
        assert death_times(d) == pytest.approx(sorted(mst[mst > 0].tolist()), abs=1e-12)


def test_build_is_deterministic():
    rng = torch.Generator().manual_seed(1)
    pts = torch.nn.functional.normalize(torch.randn(40, 16, generator=rng), dim=-1)
    cls = torch.arange(4).repeat_interleave(10)
    a, _ = build_space(pts, cls)
    b, _ = build_space(pts, cls)
    for name, x in a.tensors().items():
        assert torch.equal(x, getattr(b, name)), name


@pytest.mark.parametrize("kwargs", [{"radius": "big"}, {"radius": -1.0}, {"gap_ratio": 1.0}, {"min_points": 0}])
def test_invalid_params(kwargs):
    with pytest.raises(InvalidConfigError):
        SpaceParams(**kwargs)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"radius": -0.1}, "radius must be 'auto', a non-negative number or None"),
        ({"radius": "big"}, "radius must be 'auto', a non-negative number or None"),
        ({"radius": True}, "radius must be 'auto', a non-negative number or None"),
        ({"radius": float("nan")}, "radius must be 'auto', a non-negative number or None"),
        ({"gap_ratio": 1.0}, "gap_ratio must be a number > 1"),
        ({"gap_ratio": True}, "gap_ratio must be a number > 1"),
        ({"gap_ratio": float("nan")}, "gap_ratio must be a number > 1"),
        ({"min_points": 0}, "min_points must be a positive integer"),
        ({"min_points": True}, "min_points must be a positive integer"),
        ({"min_points": 2.5}, "min_points must be a positive integer"),
        ({"max_dim": -1}, "max_dim must be an integer >= 0"),
        ({"max_dim": 2.0}, "max_dim must be an integer >= 0"),
    ],
)
def test_hostile_space_params_are_refused(options, fragment):
    with pytest.raises(InvalidConfigError, match=fragment):
        SpaceParams(**options)


# ------------------------------------------------------------------------------------ build_synonym_space
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
        build_synonym_space(model, tokenizer, ["cat", "dog", "airplane"], synonyms, **kwargs)
