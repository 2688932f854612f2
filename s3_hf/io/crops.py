"""Random resized crops drawn from a seeded generator: the few-shot support views (GDA's and Tip-Adapter's code) and
ZERO-S^3's test views both use torchvision's ``RandomResizedCrop`` sampling, written once here."""

from __future__ import annotations

import math

import torch

#: torchvision's default aspect-ratio range (width / height) of a random resized crop.
DEFAULT_RATIO = (3.0 / 4.0, 4.0 / 3.0)
_ATTEMPTS = 10  # boxes drawn before falling back to the central crop


def crop_box(
    width: int,
    height: int,
    gen: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = DEFAULT_RATIO,
) -> tuple[int, int, int, int]:
    """``(left, top, w, h)`` of a random resized crop: up to 10 draws of an area in ``scale`` of the image's and a
    log-uniform aspect ratio in ``ratio`` until the box fits, else the central crop of the image clamped to that ratio
    range (the published algorithm of torchvision's ``RandomResizedCrop``), every draw from ``gen``."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(_ATTEMPTS):
        u = torch.rand(2, generator=gen, dtype=torch.float64).tolist()
        target = area * (scale[0] + u[0] * (scale[1] - scale[0]))
        aspect = math.exp(log_lo + u[1] * (log_hi - log_lo))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=gen))
            left = int(torch.randint(0, width - w + 1, (1,), generator=gen))
            return left, top, w, h
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


__all__ = ["DEFAULT_RATIO", "crop_box"]
