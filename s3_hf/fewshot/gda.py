"""GDA: Gaussian discriminant analysis on the image embeddings, the training-free few-shot baseline of "A
Hard-to-Beat Baseline for Training-free CLIP-based Adaptation" (Wang et al., ICLR 2024).

From labelled support embeddings ``x`` (unit vectors, ``N`` images of ``K`` classes, dimension ``D``): class means
``μ_k``, the shared covariance ``Σ`` of the class-centred embeddings, and its precision by the empirical-Bayes ridge
estimator ``Σ⁻¹ ≈ D · ((N - 1) Σ + tr(Σ) I)⁻¹``. The GDA logit is linear:

    g_k(v) = v · (Σ⁻¹ μ_k) - ½ μ_k · Σ⁻¹ μ_k + log(1 / K),

and the few-shot logit adds it to the zero-shot one, ``zero_shot_k(v) + α g_k(v)``, with ``α`` chosen on a
validation split of the support set (the same split SSP tunes on), never on the test images. With no support
images, ``α = 0`` and the logits are exactly the zero-shot ones.

As in the released code (mrflogs/ICLR24 ``main_few_shots.py``), the support embeddings are those of augmented views
of each image (:mod:`.features`: 10 random resized crops and flips), every view a sample of its class's mean and of
the shared covariance, so that one image per class already gives a covariance (and a head that acts); ``α`` is
picked from the released grid ``{1e-4, ..., 100}``, strictly best validation accuracy first, else ``0.1`` (the
released starting value). Tuning is skipped, keeping that default, when the validation split would leave a class
with fewer than two images to fit on: one image's own crops say little about a class's spread, and its one
validation image per class would pick ``α`` by noise (at two shots it picked the grid minimum every time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from s3_hf.errors import InvalidConfigError, InvalidLabelsError
from s3_hf.fewshot.ssp import validation_split

#: mrflogs/ICLR24 ``main_few_shots.py``: the grid searched on the validation set, and the value it starts from.
DEFAULT_ALPHA_GRID = (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)
DEFAULT_ALPHA = 0.1
#: Tuning needs this many images per class left to fit on after the validation split.
MIN_FIT_IMAGES = 2


@dataclass
class GDA:
    """A fitted GDA head: ``weights`` ``(D, K)`` and ``bias`` ``(K,)``, and the weight ``alpha`` of its logits.
    ``tuned`` says whether ``alpha`` was chosen on ``validation_images`` held-out support images, ``note`` how
    ``alpha`` was set (and why tuning was skipped), ``views`` the embeddings per support image fitted on."""

    weights: torch.Tensor
    bias: torch.Tensor
    alpha: float = DEFAULT_ALPHA
    tuned: bool = False
    note: str = ""
    validation_images: int = 0
    views: int = 1

    def gda_logits(self, v: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` GDA logits of image embeddings ``v``."""
        return v.to(self.weights) @ self.weights + self.bias

    def logits(self, v: torch.Tensor, zero_shot: torch.Tensor) -> torch.Tensor:
        """Zero-shot logits plus ``alpha`` times the GDA logits (exactly ``zero_shot`` when ``alpha`` is 0)."""
        if self.alpha == 0:
            return zero_shot
        return zero_shot + self.alpha * self.gda_logits(v).to(zero_shot)

    def info(self) -> dict[str, Any]:
        """What fitting chose and why, for results files."""
        return {
            "alpha": self.alpha,
            "tuned": self.tuned,
            "note": self.note,
            "validation_images": self.validation_images,
            "views": self.views,
        }


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


def _samples(x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, D)`` or ``(N, V, D)`` embeddings -> ``(N * V, D)`` samples and their labels (views image-major)."""
    if x.dim() == 2:
        return x, labels
    return x.reshape(-1, x.shape[-1]), labels.repeat_interleave(x.shape[1])


def _why_untuned(zero_shot: torch.Tensor | None, fit_labels: torch.Tensor, n_val: int, num_classes: int) -> str | None:
    """Why GDA's weight cannot be tuned on this split (``None``: it can)."""
    if zero_shot is None:
        return "no zero-shot logits of the support images to tune on"
    if n_val == 0:
        return "no validation images (one support image per class)"
    short = (torch.bincount(fit_labels, minlength=num_classes) < MIN_FIT_IMAGES).nonzero().flatten().tolist()
    if short:
        return (
            f"the validation split leaves {len(short)} classes (e.g. {short[:5]}) with fewer than {MIN_FIT_IMAGES} "
            "images to fit on"
        )
    return None


def _best_alpha(
    zero_shot: torch.Tensor, gda: torch.Tensor, labels: torch.Tensor, alpha_grid: Sequence[float]
) -> tuple[float, float]:
    """The grid value with the strictly best accuracy of ``zero_shot + alpha * gda`` (the smaller on ties;
    :data:`DEFAULT_ALPHA` when none is above 0), and that accuracy."""
    best, best_acc = DEFAULT_ALPHA, 0.0
    for a in sorted(alpha_grid):
        acc = float(((zero_shot + a * gda).argmax(-1) == labels).double().mean())
        if acc > best_acc:
            best, best_acc = float(a), acc
    return best, best_acc


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
    queries: torch.Tensor | None = None,
) -> GDA:
    """Fit GDA on support embeddings ``x`` with labels ``y``; ``alpha`` fixed, or tuned on a per-class validation
    split of the support images: the grid value with the strictly best validation accuracy, the smaller on ties,
    :data:`DEFAULT_ALPHA` when none is above 0. Tuning is skipped (``alpha`` is :data:`DEFAULT_ALPHA`, ``note``
    says why) without zero-shot logits, without validation images, or when the split leaves a class fewer than
    :data:`MIN_FIT_IMAGES` images to fit on.

    Args:
        x: ``(N, D)`` support embeddings (unit vectors), or ``(N, V, D)``: ``V`` augmented views of each, every view
            a sample of the class mean and covariance.
        y: the ``N`` images' class indices.
        num_classes: ``K``.
        zero_shot: ``(N, K)`` zero-shot logits of the support images (as they are), for tuning.
        alpha: a fixed weight of the GDA logits (no tuning).
        alpha_grid: the values tried when tuning.
        val_fraction: the share of each class's support images held out for tuning.
        seed: the seed of the validation split.
        queries: ``(N, D)`` embeddings of the support images as they are, scored on the validation split (default:
            ``x``, or the normalised mean of its views).
    """
    labels = torch.as_tensor(list(y), dtype=torch.long)
    if x.dim() not in (2, 3) or (len(labels) and x.shape[0] != len(labels)):
        raise InvalidConfigError(
            f"GDA takes (N, D) or (N, V, D) embeddings of N={len(labels)} images, got {tuple(x.shape)}."
        )
    views = x.shape[1] if x.dim() == 3 else 1
    if len(labels) == 0:  # no support: a head that adds nothing, so the logits stay exactly the zero-shot ones
        zeros = torch.zeros(x.shape[-1], num_classes, dtype=torch.float64)
        return GDA(zeros, torch.zeros(num_classes, dtype=torch.float64), 0.0, note="no support images: zero-shot")
    weights, bias = fit_gda_head(*_samples(x, labels), num_classes)
    if alpha is not None:
        return GDA(weights, bias, float(alpha), note="alpha given", views=views)

    def untuned(why: str, n_val: int = 0) -> GDA:
        return GDA(
            weights, bias, DEFAULT_ALPHA, note=f"not tuned, default alpha: {why}", validation_images=n_val, views=views
        )

    fit_idx, val_idx = validation_split(labels, val_fraction, seed)
    why = _why_untuned(zero_shot, labels[fit_idx], len(val_idx), num_classes)
    if why is not None:
        return untuned(why, len(val_idx) if zero_shot is not None else 0)
    if queries is None:
        queries = x if x.dim() == 2 else F.normalize(x.double().mean(dim=1), dim=-1)
    w, b = fit_gda_head(*_samples(x[fit_idx], labels[fit_idx]), num_classes)
    g = GDA(w, b).gda_logits(queries[val_idx]).to(zero_shot.dtype)
    best, best_acc = _best_alpha(zero_shot[val_idx], g, labels[val_idx], alpha_grid)
    note = f"tuned on {len(val_idx)} validation images (accuracy {best_acc:.3f})"
    return GDA(weights, bias, best, tuned=True, note=note, validation_images=len(val_idx), views=views)


__all__ = ["DEFAULT_ALPHA", "DEFAULT_ALPHA_GRID", "GDA", "MIN_FIT_IMAGES", "fit_gda", "fit_gda_head"]
