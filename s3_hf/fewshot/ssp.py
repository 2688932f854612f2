"""SSP (Selective Vision-Language Subspace Projection): a training-free few-shot adapter on zero-shot scores.

With ``k`` labelled support images per class (global features ``g``, local features ``l`` from
:mod:`.features`) and one text vector ``t_c`` per class (an S^3 centre or the label):

1. **Selection.** Per support image keep the ``s`` local features most similar to its global feature (vision
   side) and the ``s`` most similar to its class's text vector (language side), each weighted by that similarity.
2. **Vision subspace.** Per class the mean of the selected vision-side features plus ``λ`` times the mean global
   feature; the span of the top ``r_v`` right singular vectors of these stacked class means. Support keys and
   test features are projected onto it for the cache.
3. **Language subspaces.** Per class the span of the top ``r_l`` right singular vectors of its selected
   language-side features, each plus ``λ t_c``. The text vector is projected into its own class subspace,
   ``t'_c = P_c t_c``, and an image is scored by its projection ``<P_c v, P_c t_c> / ||P_c t_c|| = v . n(t'_c)``.
4. **Logits** (before CLIP's temperature ``τ``): ``s_c(v) + α · cache_c(v) + γ · lang_c(v)`` with the zero-shot
   (S^3) score ``s_c``, the Tip-Adapter-style cache ``cache_c(v) = mean over class-c keys k of
   exp(-β (1 - n(P v) . n(P k)))`` and the language score above. ``α, β, γ`` are chosen on a validation split of
   the support set, never on test data.

Ranks are capped at the numerical rank of what spans the subspace (a larger rank would silently make a
projection the identity on that span). Scoring holds ``(B, N)`` and ``(B, C)`` tensors only, never ``B x C x D``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from s3_hf.errors import InvalidConfigError, InvalidLabelsError
from s3_hf.fewshot.adapter import (
    PROVENANCE_KEYS,
    SSP_CONFIG_NAME,
    SSP_FORMAT_VERSION,
    SSP_TENSORS_NAME,
    FitInfo,
    SSPAdapter,
)
from s3_hf.fewshot.config import (
    ALPHA_GRID,
    BETA_GRID,
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    DEFAULT_GAMMA,
    GAMMA_GRID,
    MODES,
    SSPConfig,
)
from s3_hf.fewshot.subspaces import class_counts, fit_terms, orthonormal_basis, project, select_local


def validation_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (fit, val): per class ``max(1, floor(k * fraction))`` images go to validation when the class has
    ``k >= 2`` support images, none otherwise. Deterministic for a given seed."""
    gen = torch.Generator().manual_seed(seed)
    fit, val = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = max(1, int(len(idx) * fraction)) if len(idx) >= 2 else 0
        val.append(idx[:n_val])
        fit.append(idx[n_val:])
    return torch.cat(fit).sort().values, torch.cat(val).sort().values


def _tune(
    glob: torch.Tensor,
    local: torch.Tensor,
    labels: torch.Tensor,
    text: torch.Tensor,
    zero_shot: Callable[[torch.Tensor], torch.Tensor],
    cfg: SSPConfig,
    tau: float,
    keys: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Grid search of the unset α, β, γ on a validation split: best accuracy, ties to the lower cross-entropy
    (at temperature ``tau``), then to the earlier grid point (the grids start closest to zero-shot)."""
    fit_idx, val_idx = validation_split(labels, cfg.val_fraction, cfg.seed)
    fixed = {"alpha": cfg.alpha, "beta": cfg.beta, "gamma": cfg.gamma}
    if cfg.mode == "cache":
        fixed["gamma"] = 0.0
    if len(val_idx) == 0 or all(v is not None for v in fixed.values()):
        chosen = {k: (v if v is not None else d) for (k, v), d in zip(fixed.items(), _DEFAULTS, strict=True)}
        return {**chosen, "tuned": False, "validation_images": len(val_idx)}
    terms = fit_terms(
        glob[fit_idx], local[fit_idx], labels[fit_idx], text, cfg, None if keys is None else keys[fit_idx]
    )
    v, y = glob[val_idx], labels[val_idx]
    zs, lang, keys = zero_shot(v).float(), terms.language(v), terms.projected_keys()
    grid = {k: (fixed[k],) if fixed[k] is not None else getattr(cfg, f"{k}_grid") for k in fixed}
    best: tuple[float, float] | None = None
    chosen = {}
    for beta in grid["beta"]:
        cache = terms.cache(v, beta, keys)
        for alpha in grid["alpha"]:
            for gamma in grid["gamma"]:
                logits = tau * (zs + alpha * cache + gamma * lang)
                acc = (logits.argmax(-1) == y).float().mean().item()
                loss = F.cross_entropy(logits, y).item()
                if best is None or acc > best[0] or (acc == best[0] and loss < best[1]):
                    best, chosen = (acc, loss), {"alpha": alpha, "beta": beta, "gamma": gamma}
    assert best is not None
    zs_acc = (zs.argmax(-1) == y).float().mean().item()
    return {
        **chosen,
        "tuned": True,
        "validation_images": len(val_idx),
        "validation_accuracy": best[0],
        "validation_zero_shot_accuracy": zs_acc,
    }


_DEFAULTS = (DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA)


def _check_support(
    glob: torch.Tensor,
    local: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str],
    keys: torch.Tensor | None,
) -> torch.Tensor:
    """The support images per class, once the features agree with the labels and every class has an image."""
    num_classes = len(class_names)
    if glob.shape[0] != labels.shape[0] or local.shape[0] != labels.shape[0]:
        raise InvalidConfigError(f"{glob.shape[0]} global / {local.shape[0]} local features for {len(labels)} labels.")
    if keys is not None and tuple(keys.shape) != tuple(glob.shape):
        raise InvalidConfigError(f"{tuple(keys.shape)} cache keys for {tuple(glob.shape)} global features.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise InvalidLabelsError(f"Support labels must be class indices in 0..{num_classes - 1}.")
    shots = class_counts(labels, num_classes)
    missing = [class_names[c] for c in torch.nonzero(shots == 0).flatten().tolist()]
    if missing:
        raise InvalidLabelsError(
            f"The support set has no image of {len(missing)} classes ({missing[:10]}). Give every class at least "
            "one image, or none at all (zero-shot)."
        )
    return shots


def fit_ssp(
    glob: torch.Tensor,
    local: torch.Tensor,
    labels: torch.Tensor | Sequence[int],
    text: torch.Tensor,
    zero_shot: Callable[[torch.Tensor], torch.Tensor],
    class_names: Sequence[str],
    config: SSPConfig | None = None,
    tau: float = 100.0,
    extra_info: Mapping[str, str | None] | None = None,
    keys: torch.Tensor | None = None,
) -> SSPAdapter:
    """Fit SSP (or the cache alone) on the features of a labelled support set; see the module docstring and the
    README, section Few-shot (SSP), for the method.

    Args:
        glob: ``(N, D)`` unit global features (CLIP image embeddings) of the support images.
        local: ``(N, P, D)`` unit local (patch) features of the same images.
        labels: ``(N,)`` class index of each support image, into ``class_names``. Every class needs at least one
            image, or the whole support set must be empty.
        text: ``(C, D)`` one text vector per class (normalised here), e.g. its S^3 global centre.
        zero_shot: maps ``(B, D)`` image embeddings to their ``(B, C)`` zero-shot scores (cosine scale); used to
            tune α, β, γ on the validation split.
        class_names: the ``C`` class labels, in the order of ``text``'s rows.
        config: the SSP options; ``None`` for the defaults.
        tau: CLIP's logit scale, the temperature of the tuning loss.
        extra_info: what the adapter is fitted on top of, recorded in its :class:`FitInfo`: any of
            ``base_model``, ``zero_shot_metric``, ``text_vector`` and ``space_sha256``.
        keys: ``(N, D)`` the support images' cache keys (default ``glob``), e.g. the mean of their augmented
            views (:func:`~s3_hf.fewshot.features.view_keys`); ``glob`` stays the images as they are.

    Returns:
        The fitted :class:`SSPAdapter`; with an empty support set, one that returns the zero-shot scores
        unchanged.

    Raises:
        InvalidConfigError: shapes disagree, or ``extra_info`` has other keys.
        InvalidLabelsError: a label is out of range, or a class has no support image.
    """
    cfg = config or SSPConfig()
    labels = torch.as_tensor(labels, dtype=torch.int64)
    num_classes = len(class_names)
    if text.shape[0] != num_classes:
        raise InvalidConfigError(f"{text.shape[0]} text vectors for {num_classes} classes.")
    provenance = dict(extra_info or {})
    unknown = sorted(set(provenance) - set(PROVENANCE_KEYS))
    if unknown:
        raise InvalidConfigError(f"Unknown extra_info keys {unknown}; fit_ssp records only {list(PROVENANCE_KEYS)}.")
    dim = int(text.shape[1])
    if labels.numel() == 0:
        empty = FitInfo(dim, [0] * num_classes, 0.0, 0.0, 0.0, False, **provenance)
        return SSPAdapter(class_names, cfg, empty, None)
    shots = _check_support(glob, local, labels, class_names, keys)
    glob, local, text = glob.float(), local.float(), F.normalize(text.float(), dim=-1)
    keys = None if keys is None else keys.float()
    chosen = _tune(glob, local, labels, text, zero_shot, cfg, tau, keys)
    chosen.update({k: float(chosen[k]) for k in ("alpha", "beta", "gamma")})
    terms = fit_terms(glob, local, labels, text, cfg, keys)
    info = FitInfo(embedding_dim=dim, shots=shots.tolist(), ranks=terms.ranks, **chosen, **provenance)
    return SSPAdapter(class_names, cfg, info, terms)


__all__ = [
    "ALPHA_GRID",
    "BETA_GRID",
    "GAMMA_GRID",
    "MODES",
    "SSP_CONFIG_NAME",
    "SSP_FORMAT_VERSION",
    "SSP_TENSORS_NAME",
    "FitInfo",
    "SSPAdapter",
    "SSPConfig",
    "fit_ssp",
    "orthonormal_basis",
    "project",
    "select_local",
    "validation_split",
]
