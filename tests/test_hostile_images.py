"""Hostile inputs that would exhaust a process: oversized spaces and images, each refused with a typed error before
anything large is allocated (see s3_hf.limits), while ordinary inputs keep their results."""

from __future__ import annotations

import pytest
import torch

from s3_hf import SynonymSpace
from s3_hf.artifact import S3Config
from s3_hf.errors import InvalidConfigError, SpaceTooLargeError
from s3_hf.metrics import ScoringState, score, state_bytes
from s3_hf.records import ClassRecord, ConceptRecord
from s3_hf.space import SpaceTensors


def crafted_space(sizes: list[int], dim: int = 512, seed: int = 0) -> SynonymSpace:
    """A valid space of random unit points, ``sizes[c]`` points in class ``c``, each point its own neighbourhood."""
    g = torch.Generator().manual_seed(seed)
    p = sum(sizes)
    points = torch.nn.functional.normalize(torch.randn(p, dim, generator=g), dim=-1)
    point_class = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    starts = torch.cumsum(torch.tensor(sizes), 0) - torch.tensor(sizes)
    centres = torch.stack([points[a : a + n].mean(0) for a, n in zip(starts.tolist(), sizes, strict=True)])
    tensors = SpaceTensors(
        points=points,
        point_class=point_class,
        kept=torch.ones(p, dtype=torch.bool),
        radius=torch.full((len(sizes),), 0.5, dtype=torch.float64),
        global_centres=torch.nn.functional.normalize(centres, dim=-1),
        neighbour_indptr=torch.arange(p + 1),
        neighbour_indices=torch.arange(p),
        simplex_indptr=torch.arange(p + 1),
        simplex_vertices=torch.arange(p),
    )
    names = [f"class {c}" for c in range(len(sizes))]
    classes = [
        ClassRecord(name, [ConceptRecord(f"{name} concept {j}", True) for j in range(n)], 0.5, [], {})
        for name, n in zip(names, sizes, strict=True)
    ]
    config = S3Config(base_model="tiny", embedding_dim=dim, class_names=names, templates=["{}"], concept_format="{}")
    return SynonymSpace(config, classes, tensors)


# ------------------------------------------------------------------------------------------------- space size
def test_a_space_padded_to_one_huge_class_is_refused_before_allocating():
    # 400 classes, one with 1,200 points: the dense view would pad all 400 to 1,200 (about 21 GB)
    space = crafted_space([1200] + [1] * 399)
    assert state_bytes(space.tensors) > 16 * 2**30
    with pytest.raises(SpaceTooLargeError, match=r"400 classes.*largest class with 1200 points.*S3_MAX_SCORING_MB"):
        space.scoring_state()


def test_the_space_size_is_checked_when_a_saved_space_is_loaded(tmp_path, monkeypatch):
    folder = crafted_space([30] + [1] * 9, dim=64).save_pretrained(tmp_path / "space")
    assert SynonymSpace.from_pretrained(folder).num_classes == 10  # fits the default limit
    need_mb = state_bytes(SynonymSpace.from_pretrained(folder).tensors) / 2**20
    monkeypatch.setenv("S3_MAX_SCORING_MB", str(need_mb / 2))
    with pytest.raises(SpaceTooLargeError, match=f"{folder.name}.*S3_MAX_SCORING_MB"):
        SynonymSpace.from_pretrained(folder)
    monkeypatch.setenv("S3_MAX_SCORING_MB", "lots")
    with pytest.raises(InvalidConfigError, match="S3_MAX_SCORING_MB"):
        SynonymSpace.from_pretrained(folder)


def test_the_size_estimate_bounds_what_the_dense_view_holds():
    space = crafted_space([12, 3, 7], dim=32)
    state = ScoringState.from_space(space.tensors, dtype=torch.float64)
    held = sum(x.numel() * x.element_size() for x in (state.points, state.gram, state.adjacency, state.centre_norms))
    assert held <= state_bytes(space.tensors) <= 4 * held
    v = torch.nn.functional.normalize(torch.randn(2, 32, dtype=torch.float64), dim=-1)
    assert score(v, state, "nearest_point").shape == (2, 3)
