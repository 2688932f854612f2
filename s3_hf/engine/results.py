"""What a request resolves to (the space, its selected classes, the metric, the few-shot adapter) and what scoring
gives back: per-class logits, ranked predictions and segmentations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from s3_hf.fewshot import SSPAdapter
from s3_hf.models.families import probabilities
from s3_hf.space.artifact import SynonymSpace
from s3_hf.space.scoring import centre_members, nearest_match, score


@dataclass(frozen=True)
class SpaceSelection:
    """A space and the classes of it a request asks for (indices into ``space.labels``, in request order)."""

    space: SynonymSpace
    index: tuple[int, ...]

    @property
    def labels(self) -> list[str]:
        names = self.space.labels
        return [names[c] for c in self.index]

    @property
    def all_classes(self) -> bool:
        return self.index == tuple(range(self.space.num_classes))


@dataclass(frozen=True)
class Resolved:
    """What a request resolved to: the space and classes, the metric, its ``k`` and the few-shot adapter."""

    selection: SpaceSelection
    metric: str
    knn_k: int
    adapter: SSPAdapter | None = None

    @property
    def space(self) -> SynonymSpace:
        return self.selection.space

    @property
    def labels(self) -> list[str]:
        return self.selection.labels


@dataclass
class ClassScores:
    """Per-image results for the requested classes: logits ``(B, n)``, the family's rule that turns them into
    scores (``"softmax"`` or ``"sigmoid"``) and, when asked, which concept each image matched ``(B, n)`` and which
    concepts formed the centre it was scored against ``(B, n, M)``."""

    logits: torch.Tensor
    matched: torch.Tensor | None = None
    members: torch.Tensor | None = None
    scoring: str = "softmax"


@dataclass(frozen=True)
class Prediction:
    """One class of one image's ranking. ``details`` (with ``return_details``): the matched concept, the kept and
    dropped concepts, and the concepts that formed the centre the image was scored against."""

    label: str
    score: float
    details: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score": self.score, "label": self.label}
        if self.details is not None:
            out["details"] = self.details
        return out


@dataclass(frozen=True)
class Segmentation:
    """One image's segmentation: the class ``labels``, ``logits`` ``(C, h, w)`` at the working resolution (short side
    ``SegmentOptions.short_side``; :func:`~s3_hf.segmentation.label_maps.class_masks` takes them to full size) and the
    ``label_map`` ``(H, W)`` of class indices at the image's full size. ``logits`` is ``None`` for the references'
    names rule (:meth:`S3Engine.segment_names`), which gives a label map, not a probability per class."""

    labels: list[str]
    logits: torch.Tensor | None
    label_map: torch.Tensor


def class_scores(
    v: torch.Tensor,
    resolved: Resolved,
    logit_scale: float,
    details: bool = False,
    logit_bias: float = 0.0,
    scoring: str = "softmax",
) -> ClassScores:
    """Logits of ``v`` for the classes ``resolved`` selects: ``τ·s_c(v) + b``, or SSP's logits with an adapter."""
    state = resolved.space.scoring_state(v.device)
    cols = None if resolved.selection.all_classes else torch.tensor(resolved.selection.index, device=v.device)

    def select(x: torch.Tensor) -> torch.Tensor:
        return x if cols is None else x.index_select(1, cols)

    s = select(score(v, state, resolved.metric, resolved.knn_k))
    if resolved.adapter is not None:
        s = resolved.adapter.logits(v, s)
    out = ClassScores(logits=logit_scale * s.float() + logit_bias, scoring=scoring)
    if details:
        out.matched = select(nearest_match(v, state))
        out.members = select(centre_members(v, state, resolved.metric, resolved.knn_k))
    return out


def rank(
    out: ClassScores, b: int, resolved: Resolved, top_k: int | None = None, details: bool = False
) -> list[Prediction]:
    """Image ``b``'s classes sorted by score (softmax over classes or per-class sigmoid, as the family scores),
    the top ``top_k``, with details when asked."""
    probs = probabilities(out.logits[b], out.scoring)
    order = torch.argsort(probs, descending=True, stable=True)[: top_k or probs.shape[-1]].tolist()
    scores = probs.tolist()  # one conversion, not one .item() per class
    space, index = resolved.space, resolved.selection.index
    labels = space.labels
    results = []
    for j in order:
        c = index[j]
        info = None
        if details:
            assert out.matched is not None and out.members is not None
            concepts = space.concepts(c)
            members = out.members[b, j].tolist()
            info = {
                "matched_concept": concepts[int(out.matched[b, j])],
                "kept": space.concepts(c, kept=True),
                "dropped": space.concepts(c, kept=False),
                "centre": [concepts[i] for i, on in enumerate(members[: len(concepts)]) if on],
            }
        results.append(Prediction(labels[c], scores[j], info))
    return results


__all__ = [
    "ClassScores",
    "Prediction",
    "Resolved",
    "Segmentation",
    "SpaceSelection",
    "class_scores",
    "rank",
]
