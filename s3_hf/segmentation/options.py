"""Segmentation's option record (:class:`SegmentOptions`: the dense variant, the resize, the sliding window and
the background rule) and the size checks run before an image is resized."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from s3_hf import limits
from s3_hf.errors import ImageTooLargeError, InvalidConfigError
from s3_hf.models.dense import (
    DEFAULT_VARIANT,
    SHORT_SIDE,
    STRIDE,
    WINDOW,
    check_position_rule,
    check_variant,
    rescale_size,
)
from s3_hf.options import RESIZE_KERNELS
from s3_hf.validation import flag, integer, number, one_of, probability


@dataclass(frozen=True)
class SegmentOptions:
    """How dense inference runs: the last-block ``variant``, the resize and the sliding window, and the background
    rule (``background_threshold``: ``None`` for none, else a probability; it needs a background class:
    ``background_index``, or else a class named ``background``). The names rule (:func:`names_label_map`) also
    reads ``area_threshold`` (SCLIP's, ``None`` for none) and ``logit_scale`` (the scale of its softmax over all
    names; ``None``: the model's own)."""

    variant: str | None = DEFAULT_VARIANT
    short_side: int = SHORT_SIDE
    window: int = WINDOW
    stride: int = STRIDE
    background_threshold: float | None = None
    fast_decode: bool = True  # JPEGs decoded at reduced size, never below short_side
    background_index: int | None = None
    area_threshold: float | None = None
    logit_scale: float | None = None
    # the resize and position rules of s3_hf.segmentation.protocols (window 0: the whole image in one pass)
    resize: str = "pil-bicubic"
    long_side: int | None = None
    positions: str = "size"

    def __post_init__(self) -> None:
        check_variant(self.variant)
        integer("short_side", self.short_side, 1)
        integer("window", self.window, 0)
        integer("stride", self.stride, 1)
        one_of("resize", self.resize, RESIZE_KERNELS)
        check_position_rule(self.positions)
        integer("long_side", self.long_side, 1, optional=True)
        flag("fast_decode", self.fast_decode)
        probability("background_threshold", self.background_threshold, optional=True)
        check_rule_values(self.background_index, self.area_threshold, self.logit_scale)


def check_rule_values(background_index: Any, area_threshold: Any, logit_scale: Any) -> None:
    """Check the background index, area threshold and logit scale shared by :class:`SegmentOptions` and the names
    rule (:class:`~s3_hf.segmentation.names.NamesRule`)."""
    integer("background_index", background_index, 0, optional=True)
    probability("area_threshold", area_threshold, optional=True)
    number("logit_scale", logit_scale, low=0, open_low=True, finite=True, optional=True)


def check_working_size(height: int, width: int, options: SegmentOptions, patch_size: int) -> None:
    """Refuse, before anything is resized, a window or short side smaller than the model's patches and an image whose
    working size (short side ``options.short_side``) exceeds ``S3_MAX_SEGMENT_PIXELS``.

    Args:
        height: the image's height in pixels.
        width: the image's width in pixels.
        options: the segmentation options.
        patch_size: the model's patch size in pixels.
    """
    for name in ("short_side", "window"):
        if getattr(options, name) < patch_size and not (name == "window" and options.window == 0):
            raise InvalidConfigError(
                f"{name} {getattr(options, name)} is smaller than the model's {patch_size}-pixel patches; use at least "
                f"{patch_size} (defaults: short side {SHORT_SIDE}, window {WINDOW})."
            )
    h, w = rescale_size(height, width, options.short_side, options.long_side)
    if h * w > limits.SEGMENT_PIXELS.get():
        raise ImageTooLargeError(
            f"The {width}x{height} image is segmented at {w}x{h} pixels (short side {options.short_side}, aspect "
            f"ratio {max(h, w) / min(h, w):.3g}:1). {limits.SEGMENT_PIXELS.hint()} Or crop it, or lower the short side."
        )


__all__ = ["SegmentOptions", "check_rule_values", "check_working_size"]
