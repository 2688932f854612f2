"""The references' multi-name rule (SCLIP, NACLIP, ClearCLIP): class-name files with several names per class,
one query per name, the softmax over every name and the max over each class's names, with SCLIP's area threshold,
a probability threshold to the background and PAMR as an optional refinement of the full-size maps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from s3_hf.errors import InvalidConfigError
from s3_hf.options import DEFAULT_PAMR_DILATIONS
from s3_hf.segmentation.label_maps import no_background, resolve_background
from s3_hf.segmentation.logits import pixel_logits_many, working_pixels
from s3_hf.segmentation.options import SegmentOptions, check_rule_values
from s3_hf.segmentation.upsample import FullSize
from s3_hf.synonyms.base import normalise


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
        check_rule_values(self.background_index, self.area_thd, self.logit_scale)
        if self.logit_scale is None:
            raise InvalidConfigError("The names rule needs a logit_scale (e.g. 40, as NACLIP's).")
        t = self.prob_thd
        if t is not None and (isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 1):
            raise InvalidConfigError(f"prob_thd must be a probability in [0, 1] or None, got {t!r}.")
        if self.background_index is None:
            if self.prob_thd is not None:
                raise no_background("A probability threshold")
            if self.area_thd is not None:
                raise no_background("An area threshold")


def names_label_map(
    cosines: torch.Tensor,
    queries: NameQueries,
    rule: NamesRule,
    size: tuple[int, int] | None = None,
    refine: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``(H, W)`` class indices by the references' multi-name rule (:class:`NamesRule`).

    Bounded memory: the names are upsampled a chunk at a time (:data:`~s3_hf.segmentation.upsample.MAX_UPSAMPLED`);
    one pass keeps per pixel the top scaled logit, its class and the softmax denominator over all queries (a name
    repeated in several classes counts once per class, as the references encode it once per line); a second pass,
    only when the area rule removes a class some pixel had, finds the top among the classes kept. Ties go to the
    lower class index, as ``argmax`` does.

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
    full = FullSize(cosines, height, width)
    row_classes: list[list[int]] = [[] for _ in queries.names]
    for r, c in zip(queries.rows, queries.classes, strict=True):
        row_classes[r].append(c)
    best, index, lse = _top_over_all(_scaled_rows(full, float(rule.logit_scale), refine), row_classes)
    if rule.area_thd is not None:
        assert bg is not None
        area = torch.bincount(index.flatten(), minlength=queries.num_classes).float()
        area[bg] = 0
        keep = area > rule.area_thd * area.sum()  # as SCLIP: against the area of every non-background pixel
        keep[bg] = True
        if not bool(keep[index].all()):
            best, index = _top_among(_scaled_rows(full, float(rule.logit_scale), refine), row_classes, keep)
    if rule.prob_thd is not None:
        assert bg is not None
        index = torch.where((best - lse).exp() < rule.prob_thd, torch.tensor(bg), index)
    return index


def _scaled_rows(
    full: FullSize, scale: float, refine: Callable[[torch.Tensor], torch.Tensor] | None
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(row, (H, W) full-size cosines of that name, refined, times scale)`` for every distinct name in order."""
    for a, chunk in full.chunks():
        if refine is not None:
            chunk = refine(chunk)
        for k, v in enumerate(chunk):
            yield a + k, v * scale


def _top_over_all(
    rows: Iterator[tuple[int, torch.Tensor]], row_classes: list[list[int]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pass over the names: per pixel the top scaled logit, its class and the log of the softmax denominator
    over every query (a name counted once per class it serves)."""
    # rows come in the order of their first class, so with "strictly greater" the lower class keeps a tie
    best = index = total = None
    for r, z in rows:
        count, first = len(row_classes[r]), min(row_classes[r])
        if best is None:
            best, index, total = z, torch.full(z.shape, first, dtype=torch.long), torch.full_like(z, float(count))
            continue
        index.masked_fill_(z > best, first)
        new = torch.maximum(best, z)
        total = total * (best - new).exp_() + (z - new).exp_() * count
        best = new
    assert best is not None and index is not None and total is not None
    return best, index, best + total.log()


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
    pamr_dilations: tuple[int, ...] = DEFAULT_PAMR_DILATIONS,
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
    "NameQueries",
    "NamesRule",
    "names_label_map",
    "names_rule",
    "names_segment",
    "pamr_refiner",
    "read_class_file",
    "read_class_names",
]
