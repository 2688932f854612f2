"""Label maps from per-class logits: the per-pixel argmax at full size, the background rule (a threshold on the top
probability sends a pixel to the background class) and transformers' ``image-segmentation`` masks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from s3_hf.errors import BackgroundMissingError, InvalidConfigError
from s3_hf.segmentation.options import check_rule_values
from s3_hf.segmentation.upsample import FullSize

BACKGROUND = "background"


def label_map(
    logits: torch.Tensor,
    labels: list[str],
    background_threshold: float | None = None,
    size: tuple[int, int] | None = None,
    background_index: int | None = None,
) -> torch.Tensor:
    """``(H, W)`` class indices: the per-pixel argmax of ``logits`` bilinearly upsampled to ``size`` (``(width,
    height)``; default: the logits' own); below ``background_threshold`` top probability (softmax over classes),
    the background class (``background_index``, else the class named ``background``). Memory stays bounded for
    any image size (:data:`~s3_hf.segmentation.upsample.MAX_UPSAMPLED`)."""
    bg = require_background(labels, background_threshold, background_index)
    width, height = size or (logits.shape[-1], logits.shape[-2])
    full = FullSize(logits, height, width)
    top, out, lse = full.top(with_lse=background_threshold is not None)
    if background_threshold is not None:
        top_prob = (top - lse).exp()
        out = torch.where(top_prob < background_threshold, torch.tensor(bg), out)
    return out


def resolve_background(labels: list[str], background_index: int | None = None) -> int | None:
    """The background class: ``background_index`` when given (the references' VOC21, Context60 and COCO-Object
    files put it at index 0, whatever its first name is), else the class named ``background``, else ``None``.

    Args:
        labels: the class labels, in index order.
        background_index: the background's index, or ``None`` to look for a class named ``background``.
    """
    if background_index is not None:
        check_rule_values(background_index, None, None)
        if background_index >= len(labels):
            raise InvalidConfigError(
                f"background_index {background_index} is out of range: there are {len(labels)} classes (0 to "
                f"{len(labels) - 1})."
            )
        return background_index
    names = [lab.casefold() for lab in labels]
    return names.index(BACKGROUND) if BACKGROUND in names else None


def require_background(
    labels: list[str], background_threshold: float | None, background_index: int | None = None
) -> int | None:
    """The background class (:func:`resolve_background`); a typed :class:`BackgroundMissingError` when a
    ``background_threshold`` is given and there is none. Check it before any image is read.

    Args:
        labels: the class labels, in index order.
        background_threshold: the threshold rule's probability, or ``None`` for no threshold.
        background_index: the background's index, or ``None`` to look for a class named ``background``.
    """
    bg = resolve_background(labels, background_index)
    if background_threshold is not None and bg is None:
        raise no_background("background_threshold")
    return bg


def no_background(what: str) -> BackgroundMissingError:
    """The typed error of a threshold (``what``) given without a background class."""
    return BackgroundMissingError(
        f"{what} needs a background class: give background_index (the class file's line for the background, "
        "e.g. 0 for VOC21, Context60 and COCO-Object), or a class named 'background'; or drop the threshold."
    )


def class_masks(logits: torch.Tensor | None, labels: list[str], label_ids: torch.Tensor) -> list[dict[str, Any]]:
    """transformers' ``image-segmentation`` output: per class present in ``label_ids`` ``(H, W)``, ``{"score",
    "label", "mask"}`` with the mean probability over its pixels (``logits`` upsampled to ``label_ids``' size) and a
    PIL mask (255 inside), in decreasing area. ``logits`` ``None`` (a rule that gives a label map, not a probability
    per class, such as the references' names rule): every ``score`` is ``None``."""
    full = FullSize(logits, *label_ids.shape) if logits is not None else None
    top, index, lse = full.top() if full is not None else (None, None, None)
    out = []
    for c in torch.unique(label_ids).tolist():
        inside = label_ids == c
        score = None
        if full is not None:
            # where c is the top class its logit is the top one; elsewhere (pixels given to the background by a
            # threshold, or another labelling) the class is upsampled alone
            own = top if bool((index[inside] == c).all()) else torch.where(index == c, top, full.one(c))
            score = float((own[inside] - lse[inside]).exp().mean())
        mask = Image.fromarray((inside.numpy() * 255).astype(np.uint8))  # 2-D uint8: mode L
        out.append({"score": score, "label": labels[c], "mask": mask, "_area": int(inside.sum())})
    out.sort(key=lambda r: -r.pop("_area"))
    return out


__all__ = ["BACKGROUND", "class_masks", "label_map", "no_background", "require_background", "resolve_background"]
