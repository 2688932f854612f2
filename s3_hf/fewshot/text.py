"""The link between a synonym space and SSP: per-class text vectors and zero-shot scores from the space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from s3_hf.errors import InvalidConfigError
from s3_hf.fewshot.adapter import SSPAdapter
from s3_hf.fewshot.config import SSPConfig
from s3_hf.fewshot.ssp import fit_ssp
from s3_hf.options import TEXT_VECTORS
from s3_hf.space.artifact import SynonymSpace
from s3_hf.space.scoring import score


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
    keys: torch.Tensor | None = None,
) -> SSPAdapter:
    """Fit SSP for some classes of a synonym space, on top of its zero-shot scores.

    Args:
        space: the synonym space whose scores the adapter adds to.
        index: the classes to fit for, as indices into ``space.labels`` (in the adapter's class order).
        glob: ``(N, D)`` unit global features of the support images, from the space's base model.
        local: ``(N, P, D)`` unit local (patch) features of the same images.
        labels: ``(N,)`` class of each support image as a position in ``index`` (position ``j`` is class
            ``space.labels[index[j]]``).
        metric: the point-to-space metric of the zero-shot scores the adapter is tuned on top of.
        k: ``k`` of the ``local_center_knn`` metric.
        tau: CLIP's logit scale, the temperature of the tuning loss.
        config: the SSP options; ``None`` for the defaults.
        text_vector: each class's text vector, one of ``TEXT_VECTORS``: its S^3 global centre or its label.
        keys: ``(N, D)`` cache keys of the support images (default ``glob``), e.g. the mean of augmented views.

    Returns:
        The fitted :class:`SSPAdapter`; its ``info`` records the space's base model and tensor hash, ``metric`` and
        ``text_vector``.
    """
    state = space.scoring_state()
    cols = torch.as_tensor(list(index), dtype=torch.int64)

    def zero_shot(v: torch.Tensor) -> torch.Tensor:
        return score(v, state, metric, k)[:, cols]

    info: dict[str, Any] = {
        "base_model": space.config.base_model,
        "zero_shot_metric": metric,
        "text_vector": text_vector,
        "space_sha256": space.tensors_hash(),
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
        keys=keys,
    )


__all__ = [
    "class_text_vectors",
    "fit_for_space",
]
