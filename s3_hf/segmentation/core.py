"""Open-vocabulary semantic segmentation with synonym spaces: every patch of an image is scored against the class
spaces by the same engine, metrics and spaces that classify images.

An image is resized to a short side of ``short_side`` pixels and normalised as the model's preprocessing does;
windows of ``window`` pixels every ``stride`` pixels go through the vision tower with its last block replaced by a
dense variant (:mod:`s3_hf.models.dense`); each patch feature is scored with :meth:`S3Engine.scores` (the logits of the
requested metric, ``τ · s_c(v) + b``); patch logits are upsampled bilinearly to the window and averaged where
windows overlap (the working resolution), then upsampled to the image's full size a chunk of classes at a time.
The label map is the per-pixel argmax; a pixel whose top probability (softmax over classes) is below
``background_threshold`` goes to the class named ``background``.

With one name per class and metric ``label`` this is the base segmenter's own scoring; with several names per class
(a space of names, no pruning) and ``nearest_point`` it is the "max over names" rule of SCLIP and NACLIP; S^3
replaces that max with a point-to-space score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from s3_hf import limits
from s3_hf.errors import BackgroundMissingError, ImageTooLargeError, InvalidConfigError
from s3_hf.models.dense import (
    DEFAULT_VARIANT,
    RESIZE_KERNELS,
    SHORT_SIDE,
    STRIDE,
    WINDOW,
    check_position_rule,
    check_variant,
    rescale_size,
    resize_bilinear,
    sliding_logits_many,
)
from s3_hf.synonyms.base import normalise

BACKGROUND = "background"


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
        for name in ("short_side", "window", "stride"):
            value = getattr(self, name)
            low = 0 if name == "window" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidConfigError(f"{name} must be an integer >= {low}, got {value!r}.")
        if self.resize not in RESIZE_KERNELS:
            raise InvalidConfigError(f"resize must be one of {', '.join(RESIZE_KERNELS)}, got {self.resize!r}.")
        check_position_rule(self.positions)
        v = self.long_side
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise InvalidConfigError(f"long_side must be a positive integer or None, got {v!r}.")
        if not isinstance(self.fast_decode, bool):
            raise InvalidConfigError(f"fast_decode must be True or False, got {self.fast_decode!r}.")
        t = self.background_threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 1):
            raise InvalidConfigError(f"background_threshold must be a probability in [0, 1] or None, got {t!r}.")
        _check_rule_values(self.background_index, self.area_threshold, self.logit_scale)


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
    from s3_hf.engine.core import class_scores

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


#: Most full-resolution logits (elements) held at once: a 12 MP photo at 150 classes would need 7 GB in float32,
#: so the classes are upsampled a chunk at a time (about 256 MB each).
MAX_UPSAMPLED = 1 << 26


class _FullSize:
    """Logits ``(C, h, w)`` bilinearly upsampled to ``(height, width)``, a chunk of classes at a time (all of them
    at once when they fit in :data:`MAX_UPSAMPLED`; interpolation is per class, so the chunks change no value)."""

    def __init__(self, logits: torch.Tensor, height: int, width: int, max_elements: int | None = None) -> None:
        self.logits, self.size = logits.float(), (height, width)
        per = max(1, (max_elements or MAX_UPSAMPLED) // (height * width))
        self.ranges = [(a, min(a + per, len(logits))) for a in range(0, len(logits), per)]

    def _up(self, part: torch.Tensor) -> torch.Tensor:
        if tuple(part.shape[-2:]) == self.size:
            return part
        return F.interpolate(part[None], size=self.size, mode="bilinear", align_corners=False)[0]

    def chunks(self) -> Iterator[tuple[int, torch.Tensor]]:
        """``(first class, (c, H, W) logits)`` per chunk."""
        for a, b in self.ranges:
            yield a, self._up(self.logits[a:b])

    def one(self, c: int) -> torch.Tensor:
        """``(H, W)`` logits of class ``c`` alone."""
        return self._up(self.logits[c : c + 1])[0]

    def top(self, with_lse: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One pass over the classes: per pixel the top logit, its class (the first on ties, as ``argmax`` over all
        classes) and, ``with_lse``, the log of the softmax denominator (accumulated online, rescaled as the top
        grows)."""
        best = index = total = None
        for a, chunk in self.chunks():
            for k, v in enumerate(chunk):  # class by class: a reduction over dim 0 of a large map is slow on CPUs
                if best is None:
                    best, index = v.clone(), torch.full(v.shape, a + k, dtype=torch.long)
                    total = torch.ones_like(v) if with_lse else None
                    continue
                index.masked_fill_(v > best, a + k)  # strictly greater: the first class keeps a tie
                new = torch.maximum(best, v)
                if with_lse:
                    total = total * (best - new).exp_() + (v - new).exp_()
                best = new
        return best, index, (best + total.log()) if with_lse else None


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
    any image size (:data:`MAX_UPSAMPLED`)."""
    bg = require_background(labels, background_threshold, background_index)
    width, height = size or (logits.shape[-1], logits.shape[-2])
    full = _FullSize(logits, height, width)
    top, out, lse = full.top(with_lse=background_threshold is not None)
    if background_threshold is not None:
        top_prob = (top - lse).exp()
        out = torch.where(top_prob < background_threshold, torch.tensor(bg), out)
    return out


def _check_rule_values(background_index: Any, area_threshold: Any, logit_scale: Any) -> None:
    i = background_index
    if i is not None and (isinstance(i, bool) or not isinstance(i, int) or i < 0):
        raise InvalidConfigError(f"background_index must be a class index (0, 1, ...) or None, got {i!r}.")
    a = area_threshold
    if a is not None and (isinstance(a, bool) or not isinstance(a, int | float) or not 0 <= a <= 1):
        raise InvalidConfigError(f"area_threshold must be a fraction in [0, 1] or None, got {a!r}.")
    s = logit_scale
    if s is not None and (isinstance(s, bool) or not isinstance(s, int | float) or not 0 < s < float("inf")):
        raise InvalidConfigError(f"logit_scale must be a positive number or None, got {s!r}.")


def resolve_background(labels: list[str], background_index: int | None = None) -> int | None:
    """The background class: ``background_index`` when given (the references' VOC21, Context60 and COCO-Object
    files put it at index 0, whatever its first name is), else the class named ``background``, else ``None``.

    Args:
        labels: the class labels, in index order.
        background_index: the background's index, or ``None`` to look for a class named ``background``.
    """
    if background_index is not None:
        _check_rule_values(background_index, None, None)
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
        raise _no_background("background_threshold")
    return bg


def _no_background(what: str) -> BackgroundMissingError:
    return BackgroundMissingError(
        f"{what} needs a background class: give background_index (the class file's line for the background, "
        "e.g. 0 for VOC21, Context60 and COCO-Object), or a class named 'background'; or drop the threshold."
    )


def read_class_file(text: str) -> list[list[str]]:
    """Every name of every class of a class-name file, as SCLIP's, NACLIP's and ClearCLIP's ``get_cls_idx`` read
    their ``cls_*.txt``: one class a line, comma-separated names, each stripped; none truncated, cleaned or
    deduplicated (a name may serve several classes). Blank lines are skipped.

    Args:
        text: the file's text.
    """
    classes = []
    for line in text.splitlines():
        names = [p.strip() for p in line.split(",")]
        if any(names):
            classes.append([n for n in names if n])
    if not classes:
        raise InvalidConfigError("The class-name file holds no class.")
    return classes


@dataclass(frozen=True)
class NameQueries:
    """The names of a class-name file as the references query them: one query per name of each class (in file
    order, repeats kept), each encoded once. ``names``: the distinct names (equal up to case and spacing: one text
    encoding serves both); ``rows``: per query, its row in ``names``; ``classes``: per query, its class."""

    names: list[str]
    rows: list[int]
    classes: list[int]
    labels: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @classmethod
    def from_classes(cls, class_names: list[list[str]]) -> NameQueries:
        """From :func:`read_class_file`'s output: per class, its names (the first is its label).

        Args:
            class_names: per class, its names.
        """
        keys: dict[str, int] = {}
        names: list[str] = []
        rows: list[int] = []
        classes: list[int] = []
        for c, line in enumerate(class_names):
            if not line:
                raise InvalidConfigError(f"Class {c} has no name.")
            for name in line:
                text = normalise(name)
                if not text:
                    raise InvalidConfigError(f"Class {c} has a blank name.")
                key = text.casefold()
                if key not in keys:
                    keys[key] = len(names)
                    names.append(text)
                rows.append(keys[key])
                classes.append(c)
        return cls(names, rows, classes, [normalise(line[0]) for line in class_names])

    @classmethod
    def one_per_class(cls, labels: list[str]) -> NameQueries:
        """One query per class, row ``c`` for class ``c``, nothing merged: the rule over per-class scores (an S^3
        method's ``s_c(v)`` maps, one row each) rather than over names.

        Args:
            labels: the class labels, in index order.
        """
        index = list(range(len(labels)))
        return cls(list(labels), index, list(index), list(labels))


@dataclass(frozen=True)
class NamesRule:
    """The references' multi-name rule (SCLIP ``clip_segmentor.py``, NACLIP ``naclip.py``, ClearCLIP
    ``clearclip_segmentor.py``: ``postprocess_result``): per-name cosines at full size times ``logit_scale``,
    softmax over all names, max over each class's names, argmax; SCLIP's ``area_thd``: a class other than the
    background whose argmax area is at most ``area_thd`` times the area of all non-background pixels gets
    probability 0 everywhere (the pixels go to their next class); then a pixel whose (remaining) top probability is
    below ``prob_thd`` goes to ``background_index``. ``None`` turns a threshold off."""

    logit_scale: float
    prob_thd: float | None = None
    area_thd: float | None = None
    background_index: int | None = None

    def __post_init__(self) -> None:
        _check_rule_values(self.background_index, self.area_thd, self.logit_scale)
        if self.logit_scale is None:
            raise InvalidConfigError("The names rule needs a logit_scale (e.g. 40, as NACLIP's).")
        t = self.prob_thd
        if t is not None and (isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 1):
            raise InvalidConfigError(f"prob_thd must be a probability in [0, 1] or None, got {t!r}.")
        if self.background_index is None:
            if self.prob_thd is not None:
                raise _no_background("A probability threshold")
            if self.area_thd is not None:
                raise _no_background("An area threshold")


def names_label_map(
    cosines: torch.Tensor,
    queries: NameQueries,
    rule: NamesRule,
    size: tuple[int, int] | None = None,
    refine: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``(H, W)`` class indices by the references' multi-name rule (:class:`NamesRule`).

    Bounded memory: the names are upsampled a chunk at a time (:data:`MAX_UPSAMPLED`); one pass keeps per pixel the
    top scaled logit, its class and the softmax denominator over all queries (a name repeated in several classes
    counts once per class, as the references encode it once per line); a second pass, only when the area rule
    removes a class some pixel had, finds the top among the classes kept. Ties go to the lower class index, as
    ``argmax`` does.

    Args:
        cosines: ``(len(queries.names), h, w)`` cosine similarities of each distinct name (windows averaged, at the
            working resolution, not scaled).
        queries: the names, their rows and classes.
        rule: the logit scale and the thresholds.
        size: ``(width, height)`` of the label map (bilinear upsampling, ``align_corners=False``); default: the
            cosines' own.
        refine: applied to each upsampled chunk ``(c, H, W)`` of cosines before the scale (a per-channel step
            such as PAMR).
    """
    if cosines.ndim != 3 or cosines.shape[0] != len(queries.names):
        raise InvalidConfigError(
            f"cosines must be ({len(queries.names)}, h, w), one map per distinct name; got {tuple(cosines.shape)}."
        )
    bg = rule.background_index
    if bg is not None and bg >= queries.num_classes:
        raise InvalidConfigError(f"background_index {bg} is out of range: there are {queries.num_classes} classes.")
    width, height = size or (cosines.shape[-1], cosines.shape[-2])
    full = _FullSize(cosines, height, width)
    scale = float(rule.logit_scale)
    row_classes: list[list[int]] = [[] for _ in queries.names]
    for r, c in zip(queries.rows, queries.classes, strict=True):
        row_classes[r].append(c)

    def scaled_rows() -> Iterator[tuple[int, torch.Tensor]]:
        for a, chunk in full.chunks():
            if refine is not None:
                chunk = refine(chunk)
            for k, v in enumerate(chunk):
                yield a + k, v * scale

    # rows come in the order of their first class, so with "strictly greater" the lower class keeps a tie
    best = index = total = None
    for r, z in scaled_rows():
        count, first = len(row_classes[r]), min(row_classes[r])
        if best is None:
            best, index, total = z, torch.full(z.shape, first, dtype=torch.long), torch.full_like(z, float(count))
            continue
        index.masked_fill_(z > best, first)
        new = torch.maximum(best, z)
        total = total * (best - new).exp_() + (z - new).exp_() * count
        best = new
    assert best is not None and index is not None and total is not None
    lse = best + total.log()
    if rule.area_thd is not None:
        assert bg is not None
        area = torch.bincount(index.flatten(), minlength=queries.num_classes).float()
        area[bg] = 0
        keep = area > rule.area_thd * area.sum()  # as SCLIP: against the area of every non-background pixel
        keep[bg] = True
        if not bool(keep[index].all()):
            best, index = _top_among(scaled_rows(), row_classes, keep)
    if rule.prob_thd is not None:
        assert bg is not None
        index = torch.where((best - lse).exp() < rule.prob_thd, torch.tensor(bg), index)
    return index


def _top_among(
    rows: Iterator[tuple[int, torch.Tensor]], row_classes: list[list[int]], keep: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel the top scaled logit among the queries of the kept classes and its class (the lower on ties); a
    class left out has probability 0, below any kept one."""
    best = index = None
    for r, z in rows:
        kept = [c for c in row_classes[r] if keep[c]]
        if not kept:
            continue
        first = min(kept)
        if best is None:
            best, index = z, torch.full(z.shape, first, dtype=torch.long)
            continue
        index[(z > best) | ((z == best) & (index > first))] = first
        best = torch.maximum(best, z)
    assert best is not None and index is not None  # the background class is always kept
    return best, index


def class_masks(logits: torch.Tensor, labels: list[str], label_ids: torch.Tensor) -> list[dict[str, Any]]:
    """transformers' ``image-segmentation`` output: per class present in ``label_ids`` ``(H, W)``, ``{"score",
    "label", "mask"}`` with the mean probability over its pixels (``logits`` upsampled to ``label_ids``' size) and a
    PIL mask (255 inside), in decreasing area."""
    full = _FullSize(logits, *label_ids.shape)
    top, index, lse = full.top()
    out = []
    for c in torch.unique(label_ids).tolist():
        inside = label_ids == c
        # where c is the top class its logit is the top one; elsewhere (pixels given to the background by a
        # threshold, or another labelling) the class is upsampled alone
        own = top if bool((index[inside] == c).all()) else torch.where(index == c, top, full.one(c))
        score = float((own[inside] - lse[inside]).exp().mean())
        mask = Image.fromarray((inside.numpy() * 255).astype(np.uint8))  # 2-D uint8: mode L
        out.append({"score": score, "label": labels[c], "mask": mask, "_area": int(inside.sum())})
    out.sort(key=lambda r: -r.pop("_area"))
    return out


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


def read_class_names(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """A class-name file: one class per line, several comma-separated names allowed (the first is the label), as
    SCLIP's and NACLIP's ``cls_*.txt`` files are. Returns ``(labels, {label: [other names]})``."""
    labels: list[str] = []
    names: dict[str, list[str]] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",") if p.strip()]
        if not parts:
            continue
        labels.append(parts[0])
        names[parts[0]] = parts[1:]
    if not labels:
        raise InvalidConfigError("The class-name file holds no class.")
    return labels, names


def pamr_refiner(
    pixels: torch.Tensor, size: tuple[int, int], steps: int, dilations: tuple[int, ...]
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """PAMR as :func:`names_label_map`'s ``refine`` step when ``steps`` > 0, as NACLIP ``naclip.py`` runs it: the
    affinities come from the normalised model input (``pixels``, :func:`working_pixels`) bilinearly resized to the
    image's full ``size`` ``(width, height)``; ``None`` when ``steps`` is 0."""
    if not steps:
        return None
    from s3_hf.segmentation.pamr import PamrRefiner, naclip_guide

    return PamrRefiner(naclip_guide(pixels, size[1], size[0]), steps, dilations)


def names_rule(engine: Any, labels: list[str], options: SegmentOptions) -> NamesRule:
    """The names rule of ``options``: its logit scale (the model's own when unset), thresholds and background
    (:func:`resolve_background` of ``labels``)."""
    scale = options.logit_scale if options.logit_scale is not None else float(engine.logit_scale)
    background = resolve_background(labels, options.background_index)
    return NamesRule(scale, options.background_threshold, options.area_threshold, background)


def names_segment(
    engine: Any,
    image: Image.Image,
    queries: NameQueries,
    resolved: Any,
    options: SegmentOptions,
    size: tuple[int, int],
    pamr_steps: int = 0,
    pamr_dilations: tuple[int, ...] = (8, 16),
) -> torch.Tensor:
    """``(H, W)`` label map of one image by the references' multi-name rule: per-name cosines over the windows
    (``resolved``: a ``label`` request of ``queries.names``), :func:`names_label_map` at ``size`` ``(width, height)``
    with the options' logit scale (the model's own when unset), thresholds and background, PAMR when
    ``pamr_steps`` > 0 (:func:`pamr_refiner`)."""
    pixels = working_pixels(engine, image, options)
    cosines = pixel_logits_many(engine, pixels, [resolved], options, [True])[0]
    rule = names_rule(engine, queries.labels, options)
    refine = pamr_refiner(pixels, size, pamr_steps, pamr_dilations)
    return names_label_map(cosines, queries, rule, size, refine)


__all__ = [
    "BACKGROUND",
    "NameQueries",
    "NamesRule",
    "SegmentOptions",
    "check_working_size",
    "class_masks",
    "image_pixels",
    "index_image",
    "label_map",
    "names_label_map",
    "names_rule",
    "names_segment",
    "overlay",
    "palette",
    "pamr_refiner",
    "pixel_logits_many",
    "read_class_file",
    "read_class_names",
    "require_background",
    "resolve_background",
    "segment_logits",
    "segment_logits_many",
    "window_logits",
    "working_pixels",
]
