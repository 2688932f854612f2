"""The modules an ONNX export traces: the S^3 head (a fixed function of the unit image embedding, built from a space's
:class:`~s3_hf.space.scoring.ScoringState`) and the image encoder in front of it.

Each head metric is written with operations every ONNX runtime has (matrix products, a mask, an argmax turned into a
one-hot, sums), and computes what :mod:`s3_hf.space.scoring` computes for the same metric.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from s3_hf.errors import InvalidConfigError
from s3_hf.space.scoring import ScoringState

#: Metrics that are one matrix product with a (classes x dim) matrix of the space, and the state field it is.
LINEAR_METRICS = {"label": "labels", "global_center": "global_centres", "mean_similarity": "kept_means"}
#: Metrics that score against the space's kept points (a masked max, or the nearest point's neighbourhood).
POINT_METRICS = ("nearest_point", "local_center")


class S3Head(nn.Module):
    """Unit image embeddings ``(B, D)`` -> S^3's logits ``τ · s_c(v) + b`` and the family's probabilities, for every
    class of the space in order.

    Args:
        state: the space's scoring state (float32, on the CPU).
        metric: a metric of :data:`LINEAR_METRICS` or :data:`POINT_METRICS`.
        logit_scale: ``τ``, the model's factor from cosine similarity to logit.
        logit_bias: ``b``, the model's logit bias.
        scoring: ``"softmax"`` over classes or a per-class ``"sigmoid"``.
    """

    def __init__(self, state: ScoringState, metric: str, logit_scale: float, logit_bias: float, scoring: str) -> None:
        super().__init__()
        if metric not in LINEAR_METRICS and metric not in POINT_METRICS:
            raise InvalidConfigError(f"The ONNX head has no metric {metric!r}.")
        self.metric = metric
        self.scoring = scoring
        self.logit_scale = float(logit_scale)
        self.logit_bias = float(logit_bias)
        self.num_classes, self.max_points = state.num_classes, state.max_points
        f32 = torch.float32
        if metric in LINEAR_METRICS:
            self.register_buffer("vectors", getattr(state, LINEAR_METRICS[metric]).detach().to("cpu", f32).clone())
            return
        self.register_buffer("points", state.points.detach().to("cpu", f32).clone())
        self.register_buffer("kept", state.mask.detach().cpu().clone())
        if metric == "local_center":
            self.register_buffer("adjacency", state.adjacency.detach().to("cpu", f32).clone())
            self.register_buffer("centre_norms", state.centre_norms.detach().to("cpu", f32).clamp(min=1e-12))
            self.register_buffer("slots", torch.arange(state.max_points))

    def space_scores(self, v: torch.Tensor) -> torch.Tensor:
        """``s_c(v)``, ``(B, C)``: the point-to-space scores of :func:`s3_hf.space.scoring.score`."""
        if self.metric in LINEAR_METRICS:
            return v @ self.vectors.T
        sims = (v @ self.points.T).reshape(-1, self.num_classes, self.max_points)
        sims = sims.masked_fill(~self.kept, float("-inf"))
        if self.metric == "nearest_point":
            return sims.amax(-1)
        nearest = (sims.argmax(-1, keepdim=True) == self.slots).to(v.dtype)  # (B, C, M) one-hot of u*
        # N[u*] of each class: the one-hot's row of the class's adjacency, as one batched product over classes
        neighbours = (nearest.transpose(0, 1) @ self.adjacency).transpose(0, 1)
        total = torch.where(neighbours > 0.5, sims, torch.zeros_like(sims)).sum(-1)
        return total / (nearest * self.centre_norms).sum(-1)

    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.logit_scale * self.space_scores(v) + self.logit_bias
        probs = logits.sigmoid() if self.scoring == "sigmoid" else logits.softmax(-1)
        return logits, probs


class ImageEmbedding(nn.Module):
    """``pixel_values`` -> unit image embeddings, as :meth:`~s3_hf.models.encoders.hf.TransformersEncoder.encode_pixels`
    computes them (the model's image features, L2-normalised)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixel_values=pixel_values)
        features = out if isinstance(out, torch.Tensor) else out.pooler_output
        return F.normalize(features, dim=-1)


class S3OnnxModule(nn.Module):
    """What is exported: ``pixel_values`` -> ``(logits, probabilities, image_embeds)``."""

    def __init__(self, embed: nn.Module, head: S3Head) -> None:
        super().__init__()
        self.embed = embed
        self.head = head

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v = self.embed(pixel_values)
        logits, probs = self.head(v)
        return logits, probs, v


__all__ = ["LINEAR_METRICS", "POINT_METRICS", "ImageEmbedding", "S3Head", "S3OnnxModule"]
