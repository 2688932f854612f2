"""GDA: Gaussian discriminant analysis on the image embeddings, the training-free few-shot baseline of "A
Hard-to-Beat Baseline for Training-free CLIP-based Adaptation" (Wang et al., ICLR 2024).

From labelled support embeddings ``x`` (unit vectors, ``N`` images of ``K`` classes, dimension ``D``): class means
``μ_k``, the shared covariance ``Σ`` of the class-centred embeddings, and its precision by the empirical-Bayes ridge
estimator ``Σ⁻¹ ≈ D · ((N - 1) Σ + tr(Σ) I)⁻¹``. The GDA logit is linear:

    g_k(v) = v · (Σ⁻¹ μ_k) - ½ μ_k · Σ⁻¹ μ_k + log(1 / K),

and the few-shot logit adds it to the zero-shot one, ``zero_shot_k(v) + α g_k(v)``, with ``α`` chosen on a
validation split of the support set (the same split SSP tunes on), never on the test images. With no support
images, ``α = 0`` and the logits are exactly the zero-shot ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import InvalidLabelsError
from .ssp import validation_split

DEFAULT_ALPHA_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


@dataclass
class GDA:
    """A fitted GDA head: ``weights`` ``(D, K)`` and ``bias`` ``(K,)``, and the weight ``alpha`` of its logits."""

    weights: torch.Tensor
    bias: torch.Tensor
    alpha: float = 1.0
    tuned: bool = False

    def gda_logits(self, v: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` GDA logits of image embeddings ``v``."""
        return v.to(self.weights) @ self.weights + self.bias

    def logits(self, v: torch.Tensor, zero_shot: torch.Tensor) -> torch.Tensor:
        """Zero-shot logits plus ``alpha`` times the GDA logits (exactly ``zero_shot`` when ``alpha`` is 0)."""
        if self.alpha == 0:
            return zero_shot
        return zero_shot + self.alpha * self.gda_logits(v).to(zero_shot)


def fit_gda_head(x: torch.Tensor, y: Sequence[int], num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights (D, K), bias (K,))`` of GDA on embeddings ``x`` ``(N, D)`` with labels ``y``; every class needs
    at least one image. Float64 throughout."""
    x = x.double()
    labels = torch.as_tensor(list(y), dtype=torch.long)
    counts = torch.bincount(labels, minlength=num_classes)
    if len(labels) != len(x) or (counts == 0).any():
        missing = (counts == 0).nonzero().flatten().tolist()
        raise InvalidLabelsError(
            f"GDA needs at least one support image of every class; classes {missing[:10]} have none."
        )
    d = x.shape[1]
    means = torch.zeros(num_classes, d, dtype=torch.float64).index_add_(0, labels, x) / counts[:, None]
    centred = x - means[labels]
    n = len(x)
    cov = centred.T @ centred / max(n - 1, 1)
    precision = d * torch.linalg.pinv((n - 1) * cov + torch.trace(cov) * torch.eye(d, dtype=torch.float64))
    weights = precision @ means.T
    bias = -0.5 * (means @ precision * means).sum(-1) + torch.log(torch.tensor(1.0 / num_classes, dtype=torch.float64))
    return weights, bias


def fit_gda(
    x: torch.Tensor,
    y: Sequence[int],
    num_classes: int,
    zero_shot: torch.Tensor | None = None,
    *,
    alpha: float | None = None,
    alpha_grid: Sequence[float] = DEFAULT_ALPHA_GRID,
    val_fraction: float = 0.25,
    seed: int = 0,
) -> GDA:
    """Fit GDA on support embeddings ``x`` with labels ``y``; ``alpha`` fixed, or tuned on a per-class validation
    split of the support set (``zero_shot``: the support images' zero-shot logits ``(N, K)``): the grid value with
    the best validation accuracy, ties to the smaller. Without validation images (one image per class) or zero-shot
    logits, ``alpha`` is 1.

    Args:
        x: ``(N, D)`` support embeddings (unit vectors).
        y: their class indices.
        num_classes: ``K``.
        zero_shot: ``(N, K)`` zero-shot logits of the support images, for tuning.
        alpha: a fixed weight of the GDA logits (no tuning).
        alpha_grid: the values tried when tuning.
        val_fraction: the share of each class's support images held out for tuning.
        seed: the seed of the validation split.
    """
    labels = torch.as_tensor(list(y), dtype=torch.long)
    if len(labels) == 0:  # no support: a head that adds nothing, so the logits stay exactly the zero-shot ones
        zeros = torch.zeros(x.shape[-1] if x.dim() == 2 else 0, num_classes, dtype=torch.float64)
        return GDA(zeros, torch.zeros(num_classes, dtype=torch.float64), 0.0, tuned=False)
    weights, bias = fit_gda_head(x, labels.tolist(), num_classes)
    if alpha is not None:
        return GDA(weights, bias, float(alpha), tuned=False)
    if zero_shot is None:
        return GDA(weights, bias, 1.0, tuned=False)
    fit_idx, val_idx = validation_split(labels, val_fraction, seed)
    fit_counts = torch.bincount(labels[fit_idx], minlength=num_classes)
    if len(val_idx) == 0 or (fit_counts == 0).any():
        return GDA(weights, bias, 1.0, tuned=False)
    w, b = fit_gda_head(x[fit_idx], labels[fit_idx].tolist(), num_classes)
    head = GDA(w, b)
    g = head.gda_logits(x[val_idx]).to(zero_shot.dtype)
    best, best_acc = float(alpha_grid[0]), -1.0
    for a in sorted(alpha_grid):
        acc = float(((zero_shot[val_idx] + a * g).argmax(-1) == labels[val_idx]).double().mean())
        if acc > best_acc:
            best, best_acc = float(a), acc
    return GDA(weights, bias, best, tuned=True)


__all__ = ["DEFAULT_ALPHA_GRID", "GDA", "fit_gda", "fit_gda_head"]
