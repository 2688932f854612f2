"""Per-pixel logits of an image: the model input (resized and normalised), the sliding windows through the dense
vision tower, each patch scored by the engine, and the windows' logits averaged at the working resolution."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from s3_hf.engine.results import class_scores
from s3_hf.models.dense import rescale_size, resize_bilinear, sliding_logits_many
from s3_hf.segmentation.options import SegmentOptions, check_working_size


def image_pixels(
    image: Image.Image,
    mean: list[float],
    std: list[float],
    short_side: int,
    long_side: int | None = None,
    resize: str = "pil-bicubic",
) -> torch.Tensor:
    """``(3, h, w)`` the RGB image resized to a short side of ``short_side`` (with ``long_side``: to fit
    ``(long_side, short_side)``, as mmseg's ``Resize(keep_ratio=True)``; see :func:`~s3_hf.models.dense.rescale_size`),
    scaled to [0, 1] and normalised with ``mean`` and ``std``. ``resize``: ``"pil-bicubic"`` (PIL bicubic with
    antialiasing) or ``"bilinear"`` (cv2-style bilinear without antialiasing,
    :func:`~s3_hf.models.dense.resize_bilinear`)."""
    h, w = rescale_size(image.height, image.width, short_side, long_side)
    rgb = image.convert("RGB")
    if resize == "bilinear":
        arr = resize_bilinear(torch.from_numpy(np.array(rgb)), (h, w)).numpy().astype(np.float32) / 255.0
    else:
        arr = np.asarray(rgb.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    x = torch.from_numpy(arr).permute(2, 0, 1)
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def window_logits(engine: Any, resolved: Any, crop: torch.Tensor, variant: str | None) -> torch.Tensor:
    """``(C, h, w)`` logits of one window ``(1, 3, h, w)``: each patch scored by the engine, upsampled bilinearly."""
    return _windows_logits(engine, [resolved], crop, variant, upsample=True)[0]


def _windows_logits(
    engine: Any,
    resolveds: list[Any],
    crop: torch.Tensor,
    variant: str | None,
    positions: str = "size",
    cosine: list[bool] | None = None,
    upsample: bool = False,
) -> list[torch.Tensor]:
    """Per request ``(C, gh, gw)`` patch logits of one window, ``upsample``: bilinearly to the window ``(C, h, w)``
    (:func:`~s3_hf.models.dense.sliding_logits_many` upsamples patch grids itself, once per image)."""
    # (gh, gw, D), computed once for every request; the position rule is passed only when not the default
    feats = engine.encoder.dense_features(crop, variant, **({} if positions == "size" else {"positions": positions}))[0]
    gh, gw, d = feats.shape
    flat = feats.reshape(-1, d)
    out = []
    for k, resolved in enumerate(resolveds):
        if cosine and cosine[k]:  # the similarities alone (scale 1, bias 0), for a rule with its own scale
            logits = class_scores(flat, resolved, 1.0).logits.float()
        else:
            logits = engine.scores(flat, resolved).logits.float()  # (gh * gw, C)
        grid = logits.T.contiguous().reshape(-1, gh, gw).cpu()  # contiguous: channels-last upsamples ~10x slower
        if upsample:
            grid = F.interpolate(grid[None], size=tuple(crop.shape[-2:]), mode="bilinear", align_corners=False)[0]
        out.append(grid)
    return out


def segment_logits(engine: Any, image: Image.Image, resolved: Any, options: SegmentOptions) -> torch.Tensor:
    """``(C, h, w)`` per-pixel logits of ``image`` for the classes of ``resolved``, at the working resolution (short
    side ``options.short_side``). :func:`label_map` and :func:`class_masks` take them to the image's full size."""
    return segment_logits_many(engine, image, [resolved], options)[0]


def segment_logits_many(
    engine: Any, image: Image.Image, resolveds: list[Any], options: SegmentOptions, cosine: list[bool] | None = None
) -> list[torch.Tensor]:
    """:func:`segment_logits` for several requests on the same dense features (each window is encoded once);
    ``cosine[k]`` true: request ``k``'s maps are its similarities alone (no logit scale or bias), as
    :func:`names_label_map` takes them."""
    return pixel_logits_many(engine, working_pixels(engine, image, options), resolveds, options, cosine)


def working_pixels(engine: Any, image: Image.Image, options: SegmentOptions) -> torch.Tensor:
    """``(3, h, w)`` the model input segmentation works on: ``image`` checked against the size limits, resized and
    normalised as ``options`` say (:func:`image_pixels`)."""
    check_working_size(image.height, image.width, options, engine.encoder.patch_size)
    mean, std = engine.encoder.pixel_stats()
    return image_pixels(image, mean, std, options.short_side, options.long_side, options.resize)


def pixel_logits_many(
    engine: Any, pixels: torch.Tensor, resolveds: list[Any], options: SegmentOptions, cosine: list[bool] | None = None
) -> list[torch.Tensor]:
    """:func:`segment_logits_many` on :func:`working_pixels` already computed (they also guide PAMR)."""
    return sliding_logits_many(
        pixels,
        lambda crop: _windows_logits(engine, resolveds, crop, options.variant, options.positions, cosine),
        options.window,
        options.stride,
    )


__all__ = [
    "image_pixels",
    "pixel_logits_many",
    "segment_logits",
    "segment_logits_many",
    "window_logits",
    "working_pixels",
]
