"""``S3Engine.classify``'s work: images -> scores (static, or ZERO-S^3's votes) -> rankings with the call's options
(``top_k``, details, ``abstain_threshold``, ``multi_label``), the options checked before any image is read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from s3_hf.engine.results import (
    Prediction,
    Resolved,
    check_abstain_labels,
    check_abstain_threshold,
    check_multi_label,
    rank,
)
from s3_hf.engine.zero import check_tta, classify_zero, refuse_with_zero

if TYPE_CHECKING:
    from s3_hf.engine.core import S3Engine


def classify_images(
    engine: S3Engine,
    images: Sequence[Any],
    resolved: Resolved,
    *,
    top_k: int | None,
    details: bool,
    batch_size: int,
    progress: bool,
    tta: Any = None,
    abstain_threshold: float | None = None,
    multi_label: bool = False,
) -> list[list[Prediction]]:
    """Per image, the classes of ``resolved`` ranked with these options (see :meth:`S3Engine.classify`)."""
    zero = check_tta(tta)
    multi_label = check_multi_label(multi_label)
    abstain_threshold = check_abstain_threshold(abstain_threshold)
    check_abstain_labels(resolved.labels, abstain_threshold)
    if zero is not None:
        refuse_with_zero(details, multi_label)
        out = classify_zero(engine, images, resolved, zero, batch_size, progress)
    else:
        v = engine.encode_images(images, batch_size=batch_size, progress=progress)
        out = engine.scores(v, resolved, details, multi_label)
    return [
        rank(out, b, resolved, top_k, details, abstain_threshold=abstain_threshold, multi_label=multi_label)
        for b in range(len(out.logits))
    ]


__all__ = ["classify_images"]
