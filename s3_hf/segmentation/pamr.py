"""Pixel-adaptive mask refinement (PAMR; Araslanov & Roth, CVPR 2020), NACLIP's default post-processing of its
segmentation logits (10 steps, dilations 8 and 16: ``PAMR(pamr_steps, dilations=pamr_stride)`` in NACLIP
``naclip.py``; the published module is 1-stage-wseg ``models/mods/pamr.py``).

For every pixel ``p`` the neighbours are the 8 pixels at ``p + d·(dy, dx)``, ``dy, dx ∈ {-1, 0, 1}`` not both 0,
for each dilation ``d``: ``N = 8·len(dilations)`` in all. Outside the image a position takes the nearest border
pixel (replicate padding, as the published code pads). From the image ``x`` (any channels ``c``):

- ``σ_c(p)``: the standard deviation (unbiased) of channel ``c`` over the ``9·len(dilations)`` positions of the
  3x3 dilated grids of all dilations, ``p`` itself once per dilation;
- ``a_k(p) = mean_c( -|x_c(p) - x_c(p + o_k)| / (1e-8 + 0.1·σ_c(p)) )`` and the affinity ``A_k(p)`` is the softmax
  of ``a(p)`` over all ``N`` neighbours (both dilations in one softmax);
- each class map is then refined ``steps`` times: ``m(p) ← Σ_k A_k(p) · m(p + o_k)``.

Classes are refined independently, so they go a chunk at a time; and since a pixel's result only depends on rows
within ``steps · max(dilations)`` of it, a tall image goes a block of rows at a time, each block computed on a window
with that many extra rows on both sides (its halo) and only the block's rows kept: the values are those of the
whole-image computation. :func:`plan_pamr` sizes blocks and chunks so the working buffers stay within
:data:`WORKING_BYTES` (see there for the peak).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from s3_hf.errors import InvalidConfigError
from s3_hf.options import DEFAULT_PAMR_DILATIONS

#: NACLIP's defaults (NACLIP ``naclip.py``: ``pamr_steps=10, pamr_stride=(8, 16)``).
STEPS = 10
DILATIONS = DEFAULT_PAMR_DILATIONS

#: The 8 neighbour directions of one dilation, in the published kernel's order.
_DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))

#: Working memory (bytes) PAMR plans its float32 buffers for, besides the caller's scores and the returned copy.
#: A window of ``r`` rows (block plus halos) at width ``W`` with ``N`` neighbours and ``k`` classes per chunk takes
#: at most ``4·(r + 2P)·(W + 2P)·(N + max(4, 2k))`` bytes (``P = max(dilations)``): the affinities, and either the
#: padded image channel, its mean, its scale and a temporary, or per class the padded map and the next map. The peak
#: stays within this budget, except when even a window of three halos (``3·steps·P`` rows) with one class exceeds
#: it (images wider than about 13,000 pixels with NACLIP's values), where that window is the peak. A 12 MP photo
#: (4000 wide, 3000 tall) with NACLIP's values: blocks of 1312 rows in windows of 1632, one class at a time, 512 MiB
#: whatever the number of classes.
WORKING_BYTES = 512 << 20


@dataclass(frozen=True)
class PamrPlan:
    """How :func:`pamr` splits one image: ``rows`` output rows per block, ``halo`` extra rows computed on each side
    of a block (0 when the block is the whole image), ``classes`` class maps refined together, and the planned
    ``peak_bytes`` of working memory."""

    rows: int
    halo: int
    classes: int
    peak_bytes: int


def _offsets(dilations: Sequence[int]) -> list[tuple[int, int]]:
    return [(dy * d, dx * d) for d in dilations for dy, dx in _DIRECTIONS]


def _window_bytes(rows: int, width: int, pad: int, neighbours: int, classes: int) -> int:
    return 4 * (rows + 2 * pad) * (width + 2 * pad) * (neighbours + max(4, 2 * classes))


def plan_pamr(
    height: int,
    width: int,
    classes: int,
    steps: int = STEPS,
    dilations: Sequence[int] = DILATIONS,
    max_bytes: int | None = None,
) -> PamrPlan:
    """The blocks and chunks :func:`pamr` uses for one ``height x width`` image with ``classes`` maps.

    The whole image in one window when one class fits the budget (then as many classes together as fit); else
    blocks of rows, one class at a time, each window as tall as the budget allows but never below three halos.

    Args:
        height: Image rows.
        width: Image columns.
        classes: Number of class maps.
        steps: Refinement steps.
        dilations: Neighbour distances.
        max_bytes: Working-memory budget; default :data:`WORKING_BYTES`.
    """
    budget = int(max_bytes or WORKING_BYTES)
    pad, neighbours = max(dilations), 8 * len(dilations)
    whole = _window_bytes(height, width, pad, neighbours, 1)
    if steps == 0 or whole <= budget:
        fit = (budget // (4 * (height + 2 * pad) * (width + 2 * pad)) - neighbours) // 2
        chunk = max(1, min(classes, fit))
        return PamrPlan(height, 0, chunk, _window_bytes(height, width, pad, neighbours, chunk))
    halo = steps * pad
    per_row = 4 * (width + 2 * pad) * (neighbours + 4)  # one class: the window's bytes grow by this per row
    block = max(budget // per_row - 2 * pad - 2 * halo, halo)
    if block >= height:
        return PamrPlan(height, 0, 1, whole)
    return PamrPlan(block, halo, 1, _window_bytes(block + 2 * halo, width, pad, neighbours, 1))


def _shifted(padded: torch.Tensor, pad: int, dy: int, dx: int, height: int, width: int) -> torch.Tensor:
    """The view of a ``pad``-padded map whose ``(i, j)`` is the unpadded map at ``(i + dy, j + dx)`` (clamped)."""
    return padded[..., pad + dy : pad + dy + height, pad + dx : pad + dx + width]


def _replicate_into(padded: torch.Tensor, t: torch.Tensor, pad: int) -> torch.Tensor:
    """``t`` written into the preallocated ``padded`` with ``pad`` replicated border pixels on every side (the
    published code's ``F.pad(mode="replicate")``, without a new allocation at every step)."""
    height, width = t.shape[-2:]
    padded[..., pad : pad + height, pad : pad + width] = t
    padded[..., pad : pad + height, :pad] = t[..., :, :1]
    padded[..., pad : pad + height, pad + width :] = t[..., :, -1:]
    padded[..., :pad, :] = padded[..., pad : pad + 1, :]
    padded[..., pad + height :, :] = padded[..., pad + height - 1 : pad + height, :]
    return padded


def _affinity(image: torch.Tensor, dilations: Sequence[int]) -> torch.Tensor:
    """``(N, H, W)`` neighbour weights of a ``(c, H, W)`` image, each pixel's summing to 1. Working memory: the
    result and four single-channel maps, reused (a fixed set of buffers keeps the allocator from fragmenting)."""
    channels, height, width = image.shape
    pad, offsets = max(dilations), _offsets(dilations)
    grid = [(0, 0)] * len(dilations) + offsets  # the 3x3 grid of every dilation, the centre once per dilation
    logits = image.new_zeros((len(offsets), height, width))
    padded = image.new_empty((height + 2 * pad, width + 2 * pad))
    mean, scale, tmp = (image.new_empty((height, width)) for _ in range(3))
    for c in range(channels):  # one channel at a time bounds the temporaries to a few maps
        _replicate_into(padded, image[c], pad)
        views = [_shifted(padded, pad, dy, dx, height, width) for dy, dx in grid]
        mean.zero_()
        for v in views:
            mean += v
        mean /= len(views)
        scale.zero_()
        for v in views:
            scale += torch.sub(v, mean, out=tmp).square_()
        scale.div_(len(views) - 1).sqrt_().mul_(0.1).add_(1e-8)
        for k, (dy, dx) in enumerate(offsets):
            logits[k] += torch.sub(image[c], _shifted(padded, pad, dy, dx, height, width), out=tmp).abs_().div_(scale)
    del padded
    logits.div_(-channels)  # the mean over channels of the negated distances
    top = mean.copy_(logits[0])
    for row in logits[1:]:
        torch.maximum(top, row, out=top)
    logits.sub_(top).exp_()  # a softmax over the neighbours, in place, one map at a time
    total = scale.copy_(logits[0])
    for row in logits[1:]:
        total += row
    return logits.div_(total)


def _refine(affinity: torch.Tensor, masks: torch.Tensor, steps: int, dilations: Sequence[int]) -> torch.Tensor:
    """``(k, H, W)`` maps after ``steps`` rounds of ``m(p) ← Σ_k A_k(p) · m(p + o_k)``. Working memory: the padded
    maps and the result, two buffers per class."""
    height, width = masks.shape[-2:]
    pad, offsets = max(dilations), _offsets(dilations)
    padded = affinity.new_empty((masks.shape[0], height + 2 * pad, width + 2 * pad))
    out = affinity.new_empty((masks.shape[0], height, width))
    for _ in range(steps):
        _replicate_into(padded, masks, pad)
        masks = out.zero_()
        for weight, (dy, dx) in zip(affinity, offsets, strict=True):
            out.addcmul_(_shifted(padded, pad, dy, dx, height, width), weight)
    return out


def _check(image: torch.Tensor, scores: torch.Tensor, steps: int, dilations: Sequence[int]) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InvalidConfigError(f"PAMR steps must be a non-negative integer (0 turns PAMR off), got {steps!r}.")
    if isinstance(dilations, str | bytes) or not isinstance(dilations, Sequence) or not dilations:
        raise InvalidConfigError(
            f"PAMR dilations must be a non-empty sequence of positive integers such as (8, 16), got {dilations!r}."
        )
    for d in dilations:
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise InvalidConfigError(
                f"PAMR dilations must be positive integers such as (8, 16), got {d!r} in {tuple(dilations)!r}."
            )
    for name, t in (("image", image), ("scores", scores)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.ndim not in (3, 4):
            what = f"a {t.dtype} tensor of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise InvalidConfigError(
                f"PAMR {name} must be a float tensor of shape ({'3' if name == 'image' else 'K'}, H, W) or "
                f"(B, {'3' if name == 'image' else 'K'}, H, W), got {what}; convert it with .float()."
            )
    if image.ndim != scores.ndim or (image.ndim == 4 and image.shape[0] != scores.shape[0]):
        raise InvalidConfigError(
            f"PAMR image {tuple(image.shape)} and scores {tuple(scores.shape)} must both be (C, H, W) or both "
            "(B, C, H, W) with the same B; pass one image per score map."
        )
    if image.shape[-2:] != scores.shape[-2:]:
        raise InvalidConfigError(
            f"PAMR image size {tuple(image.shape[-2:])} differs from the scores' {tuple(scores.shape[-2:])}; upsample "
            "the scores (and the image) to one size first, as NACLIP does to the original image size."
        )
    if image.shape[-3] < 1 or scores.shape[-3] < 1 or image.shape[-1] * image.shape[-2] == 0:
        raise InvalidConfigError(f"PAMR needs at least one channel, one class and one pixel, got {tuple(image.shape)}.")
    height, width = image.shape[-2:]
    if steps > 0 and max(dilations) >= min(height, width):
        # Replicate padding would make every neighbour at that distance the border row or column for every pixel:
        # the affinity would no longer be local.
        raise InvalidConfigError(
            f"PAMR dilation {max(dilations)} does not fit a {height}x{width} image: every dilation must be smaller "
            f"than the image's shorter side ({min(height, width)} px). Use smaller dilations, a larger image, or "
            "turn PAMR off (steps 0)."
        )
    for name, t in (("image", image), ("scores", scores)):
        if not bool(torch.isfinite(t).all()):
            raise InvalidConfigError(f"PAMR {name} has NaN or infinite values; refine finite values only.")


def pamr(
    image: torch.Tensor,
    scores: torch.Tensor,
    steps: int = STEPS,
    dilations: Sequence[int] = DILATIONS,
    *,
    max_bytes: int | None = None,
) -> torch.Tensor:
    """Refine per-class score maps with the image's local affinities (see the module docstring for the maths).

    NACLIP refines its per-name cosine logits (before the logit scale and the softmax) at the original image size,
    with the normalised model input resized to that size as the image; the score maps must be that size already.

    Args:
        image: ``(C, H, W)`` or ``(B, C, H, W)`` float image (any per-channel affine normalisation gives the same
            result up to the ``1e-8`` in the denominator).
        scores: ``(K, H, W)`` or ``(B, K, H, W)`` float maps, one per class (or per name), same ``H, W`` (and ``B``).
        steps: Refinement steps; 0 returns a copy of ``scores``.
        dilations: Neighbour distances in pixels, each smaller than the image's shorter side.
        max_bytes: Working-memory budget for the plan (:func:`plan_pamr`); default :data:`WORKING_BYTES`.

    Returns:
        The refined maps, the shape and dtype of ``scores`` (computed in float32, or float64 for float64 inputs).

    Raises:
        InvalidConfigError: bad ``steps``/``dilations``, a dilation that does not fit the image, shapes that do not
            match, or non-finite values.
    """
    _check(image, scores, steps, dilations)
    if steps == 0:
        return scores.clone()
    batched = image.ndim == 4
    images, maps = (image, scores) if batched else (image[None], scores[None])
    out = torch.empty_like(maps)
    for b in range(images.shape[0]):
        _refine_image(images[b], maps[b], out[b], steps, dilations, max_bytes)
    return out if batched else out[0]


def _refine_image(
    image: torch.Tensor,
    maps: torch.Tensor,
    out: torch.Tensor,
    steps: int,
    dilations: Sequence[int],
    max_bytes: int | None,
    affinity: torch.Tensor | None = None,
) -> None:
    """PAMR of one ``(C, H, W)`` image's ``(K, H, W)`` maps into ``out``, block by block and chunk by chunk
    (``affinity``: the whole image's, when the caller holds it)."""
    height, width = image.shape[-2:]
    dtype = torch.float64 if torch.float64 in (image.dtype, maps.dtype) else torch.float32
    plan = plan_pamr(height, width, maps.shape[0], steps, dilations, max_bytes)
    with torch.no_grad():
        for r0 in range(0, height, plan.rows):
            r1 = min(height, r0 + plan.rows)
            w0, w1 = max(0, r0 - plan.halo), min(height, r1 + plan.halo)
            if affinity is None or plan.halo:
                window = _affinity(image[:, w0:w1].to(dtype), dilations)
            else:
                window = affinity.to(dtype)
            for c0 in range(0, maps.shape[0], plan.classes):
                c1 = min(maps.shape[0], c0 + plan.classes)
                refined = _refine(window, maps[c0:c1, w0:w1].to(image.device, dtype), steps, dilations)
                out[c0:c1, r0:r1] = refined[:, r0 - w0 : r1 - w0]
            del window


def naclip_guide(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The image NACLIP gives PAMR: the model input (normalised, at the working resolution) resized bilinearly
    (``align_corners=False``) to the original ``height x width`` (NACLIP ``naclip.py``, ``predict``).

    Args:
        pixels: ``(3, h, w)`` normalised model input, the whole image as the windows see it.
        height: Original image rows.
        width: Original image columns.
    """
    if tuple(pixels.shape[-2:]) == (height, width):
        return pixels.float()
    return F.interpolate(pixels[None].float(), size=(height, width), mode="bilinear", align_corners=False)[0]


class PamrRefiner:
    """PAMR of one image for score maps that come a chunk of classes (or names) at a time, e.g. as the ``refine``
    hook of a chunked label map: the image and the values are checked once, and when the whole image fits the budget
    as one window (:func:`plan_pamr`) its affinities are computed once and reused for every chunk. A chunk's result
    equals :func:`pamr` on that chunk.

    Args:
        image: ``(C, H, W)`` float image (NACLIP: :func:`naclip_guide`).
        steps: Refinement steps (0: chunks are returned unchanged).
        dilations: Neighbour distances in pixels, each smaller than the image's shorter side.
        max_bytes: Working-memory budget; default :data:`WORKING_BYTES`.
    """

    def __init__(
        self,
        image: torch.Tensor,
        steps: int = STEPS,
        dilations: Sequence[int] = DILATIONS,
        *,
        max_bytes: int | None = None,
    ) -> None:
        if isinstance(image, torch.Tensor) and image.ndim != 3:
            raise InvalidConfigError(f"PamrRefiner takes one (C, H, W) image, got shape {tuple(image.shape)}.")
        _check(image, image[:1], steps, dilations)
        self.image, self.steps, self.dilations, self.max_bytes = image, steps, tuple(dilations), max_bytes
        height, width = image.shape[-2:]
        whole = steps > 0 and plan_pamr(height, width, 1, steps, dilations, max_bytes).halo == 0
        dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
        self.affinity = _affinity(image.to(dtype), dilations) if whole else None

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        """``(K, H, W)`` refined maps of a ``(K, H, W)`` chunk, the chunk's shape and dtype."""
        _check(self.image, scores, self.steps, self.dilations)
        if self.steps == 0:
            return scores.clone()
        out = torch.empty_like(scores)
        _refine_image(self.image, scores, out, self.steps, self.dilations, self.max_bytes, self.affinity)
        return out


__all__ = ["DILATIONS", "STEPS", "WORKING_BYTES", "PamrPlan", "PamrRefiner", "naclip_guide", "pamr", "plan_pamr"]
