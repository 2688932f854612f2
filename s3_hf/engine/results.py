"""What a request resolves to (the space, its selected classes, the metric, the few-shot adapter) and what scoring
gives back: per-class logits, ranked predictions and segmentations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from s3_hf.errors import InvalidConfigError, InvalidLabelsError
from s3_hf.fewshot import SSPAdapter
from s3_hf.models.families import probabilities
from s3_hf.space.artifact import SynonymSpace
from s3_hf.space.scoring import centre_members, nearest_match, score
from s3_hf.validation import flag, positive_probability

#: The label of the entry ``rank`` puts first when no class reaches ``abstain_threshold``.
NONE_OF_THESE = "none of these"


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
    concepts formed the centre it was scored against ``(B, n, M)``; ``baseline`` ``(B,)``: the label-free logit
    ``multi_label`` compares each class with in a softmax family (:mod:`s3_hf.engine.label_free`); ``votes``
    ``(B, n)``: ZERO-S^3's vote fractions (``tta="zero"``), which then rank the classes instead of the logits (the
    logits are those of the image itself, its static S^3 scores)."""

    logits: torch.Tensor
    matched: torch.Tensor | None = None
    members: torch.Tensor | None = None
    scoring: str = "softmax"
    baseline: torch.Tensor | None = None
    votes: torch.Tensor | None = None


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


def space_scores(v: torch.Tensor, resolved: Resolved) -> torch.Tensor:
    """The point-to-space scores ``s_c(v)`` of unit image vectors ``v`` for the classes ``resolved`` selects,
    ``(B, C)``: no logit scale, bias or few-shot terms."""
    s = score(v, resolved.space.scoring_state(v.device), resolved.metric, resolved.knn_k)
    if resolved.selection.all_classes:
        return s
    return s.index_select(1, torch.tensor(resolved.selection.index, device=v.device))


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

    s = space_scores(v, resolved)
    if resolved.adapter is not None:
        s = resolved.adapter.logits(v, s)
    out = ClassScores(logits=logit_scale * s.float() + logit_bias, scoring=scoring)
    if details:
        out.matched = select(nearest_match(v, state))
        out.members = select(centre_members(v, state, resolved.metric, resolved.knn_k))
    return out


def check_abstain_threshold(
    value: Any, error: type[Exception] = InvalidConfigError, name: str = "abstain_threshold"
) -> float | None:
    """``abstain_threshold``: ``None`` (never abstain) or a probability in ``(0, 1]``; ``name`` as the message
    calls it (a flag's spelling on the command line)."""
    return positive_probability(name, value, optional=True, error=error)


def check_multi_label(value: Any, error: type[Exception] = InvalidConfigError) -> bool:
    """``multi_label``: ``True`` or ``False``."""
    return flag("multi_label", value, error=error)


def check_abstain_labels(labels: Any, abstain_threshold: float | None) -> None:
    """An :class:`InvalidLabelsError` when abstaining is asked for and a class is called :data:`NONE_OF_THESE`
    (its entry could not be told from an abstention)."""
    if abstain_threshold is not None and labels is not None and NONE_OF_THESE in labels:
        raise InvalidLabelsError(
            f"A class is labelled {NONE_OF_THESE!r}, the label of an abstention: rename it, or drop abstain_threshold."
        )


def class_probabilities(out: ClassScores, b: int, multi_label: bool = False) -> torch.Tensor:
    """Image ``b``'s probability per class: the family's rule (softmax over classes, or per-class sigmoid); with
    ``multi_label`` each class on its own (sigmoid families as they are, softmax families against the label-free
    baseline: ``sigmoid(z_c - z_0)``, see :mod:`s3_hf.engine.label_free`); ZERO-S^3's vote fractions when present."""
    if out.votes is not None:
        if multi_label:
            raise InvalidConfigError("tta='zero' votes for one class per view: it has no multi_label form.")
        return out.votes[b]
    if not multi_label or out.scoring == "sigmoid":
        return probabilities(out.logits[b], out.scoring)
    if out.baseline is None:
        raise InvalidConfigError("multi_label with a softmax family needs the label-free baseline logits (baseline=).")
    return (out.logits[b].float() - out.baseline[b].float()).sigmoid()


def rank(
    out: ClassScores,
    b: int,
    resolved: Resolved,
    top_k: int | None = None,
    details: bool = False,
    *,
    abstain_threshold: float | None = None,
    multi_label: bool = False,
) -> list[Prediction]:
    """Image ``b``'s classes sorted by score (softmax over classes or per-class sigmoid, as the family scores; each
    class on its own with ``multi_label``), the top ``top_k``, with details when asked. With ``abstain_threshold``,
    when the top probability is below it the list starts with ``Prediction(NONE_OF_THESE, abstain_threshold)``
    (still sorted by score: no class reached the threshold), then the ranked classes, unchanged."""
    probs = class_probabilities(out, b, multi_label)
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
    if abstain_threshold is not None and (not scores or max(scores) < abstain_threshold):
        results.insert(0, Prediction(NONE_OF_THESE, float(abstain_threshold)))
    return results


__all__ = [
    "NONE_OF_THESE",
    "ClassScores",
    "Prediction",
    "Resolved",
    "Segmentation",
    "SpaceSelection",
    "check_abstain_labels",
    "check_abstain_threshold",
    "check_multi_label",
    "class_probabilities",
    "class_scores",
    "rank",
    "space_scores",
]
