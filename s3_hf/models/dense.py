"""Dense (per-patch) features of CLIP-family ViTs without training: the last transformer block is replaced at
inference by a named variant, the weights are never changed.

Variants of the last block, on its input ``x`` (class token first, then the patch grid), with ``y = ln_1(x)``,
``q, k, v`` its per-head projections and ``s = head_dim^-1/2``:

- ``None``: the model's own block (its patch tokens, as the classification path computes them);
- ``"maskclip"``: the value path only, ``out(v)``: no query/key attention, no residual, no FFN (MaskCLIP);
- ``"sclip"``: attention ``softmax(s q qᵀ) + softmax(s k kᵀ)``, residual and FFN kept (SCLIP);
- ``"clearclip"``: attention ``softmax(s q qᵀ)``, no residual, no FFN (ClearCLIP);
- ``"naclip"``: attention ``softmax(s k kᵀ + G)`` with ``G`` a Gaussian of the patch-grid distance (std
  :data:`NACLIP_STD` patches, ``G_ij = exp(-d_ij² / 2σ²)`` between patches, 0 where the class token is involved),
  no residual, no FFN (NACLIP).

The block's output patch tokens go through the vision tower's final layer norm and projection into the joint
space and are normalised (see :meth:`s3_hf.models.encoders.Encoder.dense_features`). Position embeddings are
interpolated for inputs of another size than the pretraining one. :func:`sliding_logits` runs a per-window
function over an image with the published defaults (short side :data:`SHORT_SIDE`, window :data:`WINDOW`, stride
:data:`STRIDE`) and averages overlapping logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from s3_hf.errors import InvalidConfigError
from s3_hf.options import (
    DEFAULT_DENSE_VARIANT,
    DEFAULT_SHORT_SIDE,
    DEFAULT_STRIDE,
    DEFAULT_WINDOW,
    DENSE_VARIANTS,
    POSITION_RULES,
    RESIZE_KERNELS,
)

VARIANTS = DENSE_VARIANTS
DEFAULT_VARIANT = DEFAULT_DENSE_VARIANT
NACLIP_STD = 5.0
SHORT_SIDE, WINDOW, STRIDE = DEFAULT_SHORT_SIDE, DEFAULT_WINDOW, DEFAULT_STRIDE  # written in s3_hf.options


def check_variant(variant: str | None) -> str | None:
    """``variant`` itself, or an :class:`InvalidConfigError` listing :data:`VARIANTS`."""
    if variant not in VARIANTS:
        raise InvalidConfigError(f"Unknown dense variant {variant!r}; use one of {VARIANTS}.")
    return variant


@dataclass
class BlockParts:
    """The pieces of a pre-norm transformer block the variants need. ``qkv`` maps the normalised input
    ``(B, N, W)`` to ``(q, k, v)``, each ``(B, N, W)``; ``own`` is the block's own forward."""

    ln_1: Callable[[torch.Tensor], torch.Tensor]
    qkv: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    out: Callable[[torch.Tensor], torch.Tensor]
    ln_2: Callable[[torch.Tensor], torch.Tensor]
    mlp: Callable[[torch.Tensor], torch.Tensor]
    heads: int
    own: Callable[[torch.Tensor], torch.Tensor]
    scale_1: Callable[[torch.Tensor], torch.Tensor] = lambda t: t  # layer scale of the attention branch
    scale_2: Callable[[torch.Tensor], torch.Tensor] = lambda t: t  # layer scale of the FFN branch


def gaussian_window(grid: tuple[int, int], std: float = NACLIP_STD, prefix: int = 1) -> torch.Tensor:
    """``(N, N)`` NACLIP's neighbourhood bias over ``prefix`` tokens and a ``grid`` of patches (row-major):
    ``exp(-d² / 2σ²)`` between patches, 0 in the rows and columns of the prefix tokens."""
    h, w = grid
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([rows.flatten(), cols.flatten()], -1).double()
    d2 = torch.cdist(pos, pos) ** 2
    out = torch.zeros(prefix + h * w, prefix + h * w, dtype=torch.float64)
    out[prefix:, prefix:] = torch.exp(-d2 / (2 * std**2))
    return out


def last_block(x: torch.Tensor, parts: BlockParts, variant: str | None, grid: tuple[int, int]) -> torch.Tensor:
    """The last block's output tokens ``(B, N, W)`` under ``variant`` (see the module docstring)."""
    check_variant(variant)
    if variant is None:
        return parts.own(x)
    b, n, width = x.shape
    hd = width // parts.heads

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, n, parts.heads, hd).transpose(1, 2)

    q, k, v = (heads(t) for t in parts.qkv(parts.ln_1(x)))
    scale = hd**-0.5
    if variant == "maskclip":
        o = v
    else:
        if variant == "sclip":
            attn = (scale * q @ q.transpose(-1, -2)).softmax(-1) + (scale * k @ k.transpose(-1, -2)).softmax(-1)
        elif variant == "clearclip":
            attn = (scale * q @ q.transpose(-1, -2)).softmax(-1)
        else:  # naclip
            bias = gaussian_window(grid, NACLIP_STD, n - grid[0] * grid[1]).to(k)
            attn = (scale * k @ k.transpose(-1, -2) + bias).softmax(-1)
        o = attn @ v
    o = parts.out(o.transpose(1, 2).reshape(b, n, width))
    if variant == "sclip":  # residual and FFN kept
        x = x + parts.scale_1(o)
        return x + parts.scale_2(parts.mlp(parts.ln_2(x)))
    return o


def check_position_rule(rule: str) -> str:
    """``rule`` itself, or an :class:`InvalidConfigError` listing :data:`POSITION_RULES`."""
    if rule not in POSITION_RULES:
        raise InvalidConfigError(f"Unknown position interpolation rule {rule!r}; use one of {POSITION_RULES}.")
    return rule


def interpolate_positions(
    pos: torch.Tensor, grid: tuple[int, int], prefix: int = 1, rule: str = "size"
) -> torch.Tensor:
    """Position embeddings ``(prefix + n, W)`` of a square pretraining grid (side ``s``) resized (bicubic,
    ``align_corners=False``, no antialiasing) to ``grid``.

    ``rule="size"`` resizes to the grid (transformers' rule); ``rule="scale"`` passes ``scale_factor=((gh + 0.1) / s,
    (gw + 0.1) / s)`` without recomputing it (the references' ``interpolate_pos_encoding``), so the output has
    ``floor(gh + 0.1) = gh`` rows but the sampling positions follow the slightly larger scale."""
    check_position_rule(rule)
    side = math.isqrt(pos.shape[0] - prefix)
    if (side, side) == grid:
        return pos
    patch = pos[prefix:].reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
    if rule == "size":
        patch = F.interpolate(patch, size=grid, mode="bicubic", align_corners=False)
    else:
        scale = ((grid[0] + 0.1) / side, (grid[1] + 0.1) / side)
        patch = F.interpolate(
            patch, scale_factor=scale, mode="bicubic", align_corners=False, recompute_scale_factor=False
        )
        if tuple(patch.shape[-2:]) != tuple(grid):  # cannot happen for grids below 10^5 patches
            raise InvalidConfigError(f"The scale rule gave a {tuple(patch.shape[-2:])} grid, not {grid}.")
    patch = patch.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1).to(pos.dtype)
    return torch.cat([pos[:prefix], patch])


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows along one side: every ``stride``, plus one flush with the end."""
    if size <= window:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def sliding_logits(
    pixels: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    window: int = WINDOW,
    stride: int = STRIDE,
) -> torch.Tensor:
    """``(C, H, W)`` logits of an image ``pixels`` ``(3, H, W)``: ``fn`` maps each window ``(1, 3, h, w)`` to its
    logits ``(C, h, w)``; overlapping windows are averaged. A window covering the image makes it one pass."""
    return sliding_logits_many(pixels, lambda crop: [fn(crop)], window, stride)[0]


def interpolation_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """``(size_out, size_in)`` bilinear resizing along one axis (``align_corners=False``) as a matrix: its weights
    are those ``F.interpolate`` computes (it is run on the unit vectors), so ``A_h @ L @ A_wᵀ`` is ``L``'s
    bilinear upsampling up to float rounding."""
    unit = torch.eye(size_in)[None, :, None, :]  # (1, size_in, 1, size_in): channel k is the k-th unit vector
    return F.interpolate(unit, size=(1, size_out), mode="bilinear", align_corners=False)[0, :, 0, :].T.contiguous()


def window_counts(height: int, width: int, ys: list[int], xs: list[int], window: int) -> torch.Tensor:
    """``(H, W)`` how many windows cover each pixel: rows times columns, as the windows form a grid."""
    rows, cols = torch.zeros(height), torch.zeros(width)
    for y in ys:
        rows[y : y + window] += 1
    for x in xs:
        cols[x : x + window] += 1
    return rows[:, None] * cols[None, :]


def sliding_logits_many(
    pixels: torch.Tensor,
    fn: Callable[[torch.Tensor], list[torch.Tensor]],
    window: int = WINDOW,
    stride: int = STRIDE,
) -> list[torch.Tensor]:
    """:func:`sliding_logits` for a ``fn`` that returns several logit maps per window (one per request, from the
    same features); each is averaged over the windows on its own. ``window=0`` runs the whole image in one pass.

    A map smaller than its window (a patch grid) counts as its bilinear upsampling (``align_corners=False``) to
    the window, as the references compute it; that sum over windows is done once per image at patch resolution,
    ``out = Σ_windows B_h L B_wᵀ`` with ``B`` each window's :func:`interpolation_matrix` placed at its offset
    (equal to upsampling each window and adding it in place, up to float rounding: about 1e-7 relative), instead
    of upsampling every window's ``C`` maps."""
    _, height, width = pixels.shape
    window = window or max(height, width)
    ys, xs = window_starts(height, window, stride), window_starts(width, window, stride)
    totals: list[torch.Tensor | None] = []  # maps at the window's own size, added in place
    grids: list[dict[tuple[int, int, int], torch.Tensor]] = []  # per (y, h, grid rows): Σ_x L B_wᵀ (C, gh, W)
    matrices: dict[tuple[int, int], torch.Tensor] = {}

    def placed(size_in: int, size_out: int, start: int, full: int) -> torch.Tensor:
        if (size_in, size_out) not in matrices:
            matrices[size_in, size_out] = interpolation_matrix(size_in, size_out)
        out = torch.zeros(full, size_in)
        out[start : start + size_out] = matrices[size_in, size_out]
        return out

    for y in ys:
        for x in xs:
            crop = pixels[:, y : y + window, x : x + window]
            h, w = crop.shape[1:]
            for k, out in enumerate(fn(crop[None])):
                if k == len(totals):
                    totals.append(None)
                    grids.append({})
                out = out.float()
                if tuple(out.shape[-2:]) == (h, w):
                    if totals[k] is None:
                        totals[k] = torch.zeros(out.shape[0], height, width)
                    totals[k][:, y : y + h, x : x + w] += out
                    continue
                gh, gw = out.shape[-2:]
                part = out @ placed(gw, w, x, width).T  # (C, gh, W): upsampled along the width, placed at x
                key = (y, h, gh)
                grids[k][key] = grids[k][key] + part if key in grids[k] else part
    count = window_counts(height, width, ys, xs, window)
    results = []
    for total, grid in zip(totals, grids, strict=True):
        if grid:  # upsampled along the height and placed at y, every row of windows in one product
            left = torch.cat([placed(gh, h, y, height) for y, h, gh in grid], dim=1)  # (H, Σ gh)
            up = torch.matmul(left, torch.cat(list(grid.values()), dim=1))  # (C, H, W)
            total = up if total is None else total.add_(up)
        results.append(total.div_(count))
    return results


def resize_short_side(height: int, width: int, short: int = SHORT_SIDE) -> tuple[int, int]:
    """The size with the short side ``short`` and the aspect ratio kept."""
    scale = short / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def rescale_size(height: int, width: int, short: int, long: int | None = None) -> tuple[int, int]:
    """``(h, w)`` as mmseg's ``Resize(scale=(long, short), keep_ratio=True)`` computes it (mmcv's rescale rule): the
    image is scaled by ``min(long / max(h, w), short / min(h, w))`` so that it fits both, and each side rounded half
    up (``int(x * scale + 0.5)``). Without ``long`` it is :func:`resize_short_side` (rounded half to even)."""
    if long is None:
        return resize_short_side(height, width, short)
    scale = min(max(long, short) / max(height, width), min(long, short) / min(height, width))
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def resize_bilinear(rgb: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(h, w, 3)`` uint8 ``rgb`` ``(H, W, 3)`` resized to ``size`` as cv2's ``INTER_LINEAR`` (mmcv's ``imresize``)
    does: bilinear on half-pixel centres (``align_corners=False``), no antialiasing when shrinking, the result
    rounded to 8 bits. cv2 computes with 11-bit fixed-point weights, so a pixel may differ from it by one level."""
    x = rgb.permute(2, 0, 1)[None].float()
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    return out[0].permute(1, 2, 0).add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)


__all__ = [
    "DEFAULT_VARIANT",
    "NACLIP_STD",
    "POSITION_RULES",
    "RESIZE_KERNELS",
    "SHORT_SIDE",
    "STRIDE",
    "VARIANTS",
    "WINDOW",
    "BlockParts",
    "check_position_rule",
    "check_variant",
    "gaussian_window",
    "interpolate_positions",
    "interpolation_matrix",
    "last_block",
    "rescale_size",
    "resize_bilinear",
    "resize_short_side",
    "sliding_logits",
    "sliding_logits_many",
    "window_counts",
    "window_starts",
]
