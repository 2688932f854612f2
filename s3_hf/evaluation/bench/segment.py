"""The segmentation part: dense inference per variant and short side, end to end against the dense forward alone,
S^3's per-patch scoring and one plain forward of the whole image; and the peak memory of a segmentation."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from s3_hf.evaluation.bench.config import TEMPLATE, BenchConfig, require
from s3_hf.evaluation.bench.memory import probe_memory
from s3_hf.evaluation.bench.rows import SegmentationResult, SegmentationRow
from s3_hf.evaluation.bench.timing import median_time, sync_for
from s3_hf.evaluation.bench.workload import class_names, image_paths, load_engine, synthetic_synonyms
from s3_hf.io.images import load_image


def bench_segmentation(cfg: BenchConfig, log: Callable[[str], None]) -> SegmentationResult:
    """Dense inference per variant at short sides ``cfg.seg_short_sides``: images/s end to end (decode, sliding
    windows, scoring, upsampling, the label map at the image's full size) and its ratio to the dense forward alone;
    S^3's per-patch scoring alone (``cfg.seg_classes`` classes x ``cfg.concepts`` concepts, ``local_center``) and
    its share of the dense forward, next to one plain forward of the whole image at the same size (the model's own
    last block, positions interpolated); and the peak memory of a segmentation in a fresh process.

    Args:
        cfg: the bench settings (``seg_classes``, ``seg_short_sides``, ``seg_images``, ``memory``).
        log: where progress lines go.
    """
    from s3_hf.segmentation.logits import image_pixels

    require(cfg.seg_short_sides, "it needs --seg-short-sides")
    engine = load_engine(cfg.model, cfg.device)
    require(engine.encoder.has_dense_features, "the model gives no dense patch features (it needs a ViT)")
    labels = class_names(cfg.seg_classes, cfg.images)
    space = engine.build_space(labels, synthetic_synonyms(labels, cfg.concepts), templates=[TEMPLATE])
    request = engine.request(synonym_space=space, metric="local_center")
    paths = image_paths(cfg.images, cfg.seg_images)
    images = [load_image(p) for p in paths]
    mean, std = engine.encoder.pixel_stats()
    rows = []
    for short in cfg.seg_short_sides:
        pixels = [image_pixels(im, mean, std, short) for im in images]
        rows += _variant_rows(cfg, engine, request, paths, pixels, short, log)
    result = SegmentationResult(cfg.seg_classes, cfg.concepts, len(images), rows)
    if cfg.memory:
        result.memory = probe_memory(cfg, "segment")
    return result


def _variant_rows(
    cfg: BenchConfig,
    engine: Any,
    request: Any,
    paths: list[str],
    pixels: list[torch.Tensor],
    short: int,
    log: Callable[[str], None],
) -> list[SegmentationRow]:
    """One row per dense variant at one short side."""
    from s3_hf.models.dense import VARIANTS
    from s3_hf.segmentation.options import SegmentOptions

    sync = sync_for(cfg.device)
    resolved = engine.resolve(request)
    p = engine.encoder.patch_size
    whole = [x[:, : x.shape[1] // p * p, : x.shape[2] // p * p] for x in pixels]
    plain = median_time(partial(_plain_forward, engine, whole), cfg.repeats, sync)
    n = len(pixels)
    rows = []
    for variant in VARIANTS:
        options = SegmentOptions(variant=variant, short_side=short)
        feats: list[torch.Tensor] = []
        dense = median_time(partial(_dense_only, engine, pixels, variant, feats), cfg.repeats, sync)
        flat = [f.reshape(-1, f.shape[-1]) for f in feats]  # the windows of one run
        scoring = median_time(partial(_score_all, engine, flat, resolved), cfg.repeats, sync)
        total = median_time(partial(_segment_all, engine, paths, request, options), cfg.repeats, sync)
        row = SegmentationRow(
            short, variant or "none", n / total, n / dense, dense / total, n / plain, 1000 * scoring / n,
            scoring / dense, sum(len(f) for f in flat) // n,
        )  # fmt: skip
        rows.append(row)
        log(
            f"[segment {short}px {row.variant}] {row.img_s:.2f} img/s end to end, dense forward "
            f"{row.dense_img_s:.2f} img/s (end to end at {row.dense_ratio:.2f}x of it), plain forward "
            f"{row.plain_img_s:.2f} img/s; S^3 scoring "
            f"{row.scoring_ms:.1f} ms/image = {row.scoring_share:.1%} of the dense forward"
        )
    return rows


def _plain_forward(engine: Any, whole: list[torch.Tensor]) -> None:
    for x in whole:  # the whole image at once, the model's own last block
        engine.encoder.dense_features(x[None], None)


def _dense_only(engine: Any, pixels: list[torch.Tensor], variant: str | None, store: list[torch.Tensor]) -> None:
    from s3_hf.models.dense import sliding_logits

    store.clear()

    def window(crop: torch.Tensor) -> torch.Tensor:
        store.append(engine.encoder.dense_features(crop, variant)[0])
        return torch.zeros(1, 1, 1)  # the sliding window needs something to average

    for x in pixels:
        sliding_logits(x, window)


def _score_all(engine: Any, flat: list[torch.Tensor], resolved: Any) -> None:
    for f in flat:
        engine.scores(f, resolved)


def _segment_all(engine: Any, paths: list[str], request: Any, options: Any) -> None:
    for path in paths:  # decode, logits at the working size, the label map at full size
        engine.segment(path, request, options)
