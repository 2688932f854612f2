"""Label maps as pictures: an index image that keeps every class id, the PASCAL VOC palette, and the image with its
label map blended in and a legend."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def index_image(label_ids: torch.Tensor, num_labels: int) -> Image.Image:
    """The label map as an index image: 8-bit (mode ``L``) up to 256 classes, 16-bit up to 65,536, else 32-bit
    (mode ``I``), so no class id wraps."""
    ids = label_ids.numpy()
    dtype = np.uint8 if num_labels <= 256 else np.uint16 if num_labels <= 65536 else np.int32
    return Image.fromarray(ids.astype(dtype))


def palette(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 colours: PASCAL VOC's colour map (bit-interleaved class index), so class 0 is black."""
    out = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out[i] = (r, g, b)
    return out


def overlay(image: Image.Image, label_ids: torch.Tensor, labels: list[str], alpha: float = 0.5) -> Image.Image:
    """The image with its label map blended in (``alpha``) and a legend of the classes present on the right."""
    from PIL import ImageDraw

    ids = label_ids.numpy()
    if image.size != (ids.shape[1], ids.shape[0]):  # decoded at reduced size: shown at the label map's size
        image = image.resize((ids.shape[1], ids.shape[0]), Image.Resampling.BILINEAR)
    colours = palette(len(labels))
    blend = (1 - alpha) * np.asarray(image.convert("RGB"), dtype=np.float32) + alpha * colours[ids].astype(np.float32)
    present = [int(c) for c in np.unique(ids)]
    row, box = 18, 12
    legend_w = 16 + 8 * max((len(labels[c]) for c in present), default=0) + box
    canvas = Image.new("RGB", (image.width + legend_w, max(image.height, row * len(present) + 8)), "white")
    canvas.paste(Image.fromarray(blend.clip(0, 255).astype(np.uint8)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, c in enumerate(present):
        y = 4 + k * row
        x = image.width + 6
        draw.rectangle([x, y, x + box, y + box], fill=tuple(int(v) for v in colours[c]), outline="black")
        draw.text((x + box + 6, y), labels[c], fill="black")
    return canvas


__all__ = ["index_image", "overlay", "palette"]
