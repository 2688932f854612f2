"""The link between a synonym space and SSP: per-class text vectors and zero-shot scores from the space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..artifact import SynonymSpace
from ..errors import InvalidConfigError
from ..metrics import score
from .ssp import SSPAdapter, SSPConfig, fit_ssp

TEXT_VECTORS = ("global_center", "label")


def class_text_vectors(space: SynonymSpace, index: Sequence[int], kind: str = "global_center") -> torch.Tensor:
    """``(len(index), D)`` one text vector per class: the S^3 global centre of its kept concepts, or its label."""
    t = space.tensors
    cols = torch.as_tensor(list(index), dtype=torch.int64)
    if kind == "global_center":
        return t.global_centres[cols].float()
    if kind == "label":  # each class's points start with its label
        starts = torch.searchsorted(t.point_class, torch.arange(space.num_classes))
        return t.points[starts[cols]].float()
    raise InvalidConfigError(f"Unknown text vector {kind!r} for few-shot; use one of {TEXT_VECTORS}.")


def fit_for_space(
    space: SynonymSpace,
    index: Sequence[int],
    glob: torch.Tensor,
    local: torch.Tensor,
    labels: Sequence[int],
    metric: str,
    k: int = 3,
    tau: float = 100.0,
    config: SSPConfig | None = None,
    text_vector: str = "global_center",
) -> SSPAdapter:
    """Fit SSP for the classes ``index`` of ``space`` on top of its ``metric`` scores. ``labels`` index into
    ``index`` (position ``j`` is class ``space.labels[index[j]]``)."""
    state = space.scoring_state()
    cols = torch.as_tensor(list(index), dtype=torch.int64)

    def zero_shot(v: torch.Tensor) -> torch.Tensor:
        return score(v, state, metric, k)[:, cols]

    info: dict[str, Any] = {
        "base_model": space.config.base_model,
        "zero_shot_metric": metric,
        "text_vector": text_vector,
    }
    return fit_ssp(
        glob,
        local,
        labels,
        class_text_vectors(space, index, text_vector),
        zero_shot,
        [space.labels[c] for c in index],
        config,
        tau=tau,
        extra_info=info,
    )
