"""The subspaces of SSP: per-class selection of local features, the vision subspace of the class means, the
per-class language subspaces, and the cache and language terms fitted on a support set (see
:mod:`s3_hf.fewshot.ssp` for the method)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from s3_hf.fewshot.config import SSPConfig

RANK_RTOL = 1e-5  # singular values below this fraction of the largest do not count towards the span


def orthonormal_basis(rows: torch.Tensor, rank: int | None = None) -> torch.Tensor:
    """``(D, r)`` orthonormal basis of the span of the top-``r`` right singular vectors of ``rows`` ``(n, D)``;
    ``r`` is capped at the numerical rank of ``rows`` (0 for no rows or all zeros)."""
    dim = rows.shape[-1]
    if rows.shape[0] == 0:
        return torch.zeros(dim, 0)
    _, sv, vh = torch.linalg.svd(rows.double(), full_matrices=False)
    span = int((sv > sv[0] * RANK_RTOL).sum()) if sv[0] > 0 else 0
    r = span if rank is None else min(rank, span)
    return vh[:r].T.float().contiguous()


def project(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Orthogonal projection of the rows of ``x`` onto the span of ``basis`` (columns orthonormal)."""
    return (x @ basis) @ basis.T


def select_local(local: torch.Tensor, anchors: torch.Tensor, top_s: int) -> torch.Tensor:
    """Per image the ``top_s`` local features most similar to its anchor, each times that similarity:
    ``(N, P, D), (N, D) -> (N, s, D)``."""
    sim = torch.einsum("npd,nd->np", local, anchors)
    top = sim.topk(min(top_s, local.shape[1]), dim=1)
    chosen = torch.gather(local, 1, top.indices[..., None].expand(-1, -1, local.shape[-1]))
    return chosen * top.values[..., None]


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(labels, minlength=num_classes)


@dataclass
class Terms:
    """What scoring needs besides the zero-shot scores (fitted on some support images)."""

    vision_basis: torch.Tensor | None  # (D, r_v), None: no projection
    keys: torch.Tensor  # (N, D) unit support global features
    key_labels: torch.Tensor  # (N,) int64
    language_text: torch.Tensor | None  # (C, D) unit projected text vectors, None: no language term
    num_classes: int
    ranks: dict[str, Any] = field(default_factory=dict)

    def projected_keys(self) -> torch.Tensor:
        keys = self.keys if self.vision_basis is None else project(self.keys, self.vision_basis)
        return F.normalize(keys, dim=-1)

    def cache(self, v: torch.Tensor, beta: float, keys: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C)`` mean over each class's keys of ``exp(-β (1 - affinity))``."""
        keys = self.projected_keys() if keys is None else keys
        q = v if self.vision_basis is None else project(v, self.vision_basis.to(v.device))
        affinity = F.normalize(q, dim=-1) @ keys.to(v.device).T
        counts = class_counts(self.key_labels, self.num_classes).clamp(min=1).to(v.device, v.dtype)
        per_key = torch.exp(-beta * (1.0 - affinity))  # (B, N)
        out = torch.zeros(v.shape[0], self.num_classes, device=v.device, dtype=per_key.dtype)
        return out.index_add_(1, self.key_labels.to(v.device), per_key) / counts

    def language(self, v: torch.Tensor) -> torch.Tensor:
        if self.language_text is None:
            return torch.zeros(v.shape[0], self.num_classes, device=v.device, dtype=v.dtype)
        return v @ self.language_text.to(v.device, v.dtype).T


def fit_terms(
    glob: torch.Tensor,
    local: torch.Tensor,
    labels: torch.Tensor,
    text: torch.Tensor,
    cfg: SSPConfig,
    keys: torch.Tensor | None = None,
) -> Terms:
    num_classes, dim = text.shape
    keys = F.normalize(glob if keys is None else keys, dim=-1)
    if cfg.mode == "cache":
        return Terms(None, keys, labels, None, num_classes, {"vision": dim, "language": None})
    counts = class_counts(labels, num_classes).clamp(min=1)[:, None].float()
    onehot = F.one_hot(labels, num_classes).float()  # (N, C)
    vision_sel = select_local(local, glob, cfg.top_s).mean(dim=1)  # (N, D)
    means = onehot.T @ (vision_sel + cfg.lam * glob) / counts  # (C, D) class means
    present = class_counts(labels, num_classes) > 0
    vision_basis = orthonormal_basis(means[present], cfg.vision_rank)
    language_sel = select_local(local, text[labels], cfg.top_s)  # (N, s, D)
    projected, lranks = torch.zeros_like(text), []
    for c in range(num_classes):
        rows = (language_sel[labels == c] + cfg.lam * text[c]).reshape(-1, dim)
        basis = orthonormal_basis(rows, cfg.language_rank)
        lranks.append(basis.shape[1])
        # no support for c: its text vector stays as it is
        projected[c] = project(text[c : c + 1], basis)[0] if basis.shape[1] else text[c]
    ranks = {"vision": vision_basis.shape[1], "language": lranks}
    return Terms(vision_basis, keys, labels, F.normalize(projected, dim=-1), num_classes, ranks)


__all__ = ["RANK_RTOL", "Terms", "class_counts", "fit_terms", "orthonormal_basis", "project", "select_local"]
