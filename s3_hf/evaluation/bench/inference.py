"""The inference part: images/s of (a) bare CLIP on preprocessed tensors, (b) the same with decoding and
preprocessing, S^3's pipeline for every metric (each alternating with (b)) and transformers' own zero-shot
pipeline; and S^3's own work per batch, timed alone."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from s3_hf import SynonymSpace
from s3_hf.engine.core import rank
from s3_hf.evaluation.bench.config import TEMPLATE, BenchConfig, require
from s3_hf.evaluation.bench.rows import InferenceRow, MetricTiming
from s3_hf.evaluation.bench.timing import alternate, median_time, sync_for
from s3_hf.evaluation.bench.workload import (
    class_names,
    image_paths,
    load_engine,
    s3_classifier,
    synthetic_synonyms,
    tensor_rows,
    transformers_pipeline,
)
from s3_hf.io.images import load_image
from s3_hf.space.scoring import METRICS


def s3_own_work(engine: Any, space: SynonymSpace, metric: str, bs: int, device: Any) -> None:
    """What the S^3 pipeline does for a batch beyond encoding the images: resolve the request (cached), score,
    then rank each image's classes as its postprocessing does.

    Args:
        engine: the loaded engine.
        space: the synonym space to score against.
        metric: the S^3 metric.
        bs: images in the batch.
        device: where the image vectors live.
    """
    v = torch.nn.functional.normalize(torch.randn(bs, space.tensors.points.shape[1], device=device), dim=-1)
    resolved = engine.resolve(engine.request(synonym_space=space, metric=metric))
    out = engine.scores(v, resolved)
    for i in range(bs):
        [p.to_dict() for p in rank(out, i, resolved)]


def bench_inference(cfg: BenchConfig, dtype_name: str, log: Callable[[str], None]) -> list[InferenceRow]:
    """Every (batch size, class count) of ``cfg`` at dtype ``dtype_name``; one row each.

    Args:
        cfg: the bench settings.
        dtype_name: a torch dtype's name (``float32``, ``float16``, ``bfloat16``).
        log: where progress lines go.
    """
    require(cfg.classes and cfg.batch_sizes, "it needs --classes and --batch-sizes")
    dtype = getattr(torch, dtype_name, None)
    require(isinstance(dtype, torch.dtype), f"{dtype_name!r} is not a torch dtype")
    engine = load_engine(cfg.model, cfg.device, dtype)
    s3 = s3_classifier(engine, cfg.device)
    hf = transformers_pipeline(engine, "zero-shot-image-classification", cfg.device)  # None for open_clip
    paths = image_paths(cfg.images, cfg.num_images)
    inputs = engine.image_inputs([load_image(p) for p in paths])

    def bare(bs: int) -> None:  # (a) preprocessed tensors -> image features
        for i in range(0, len(paths), bs):
            engine.encode_pixels(tensor_rows(inputs, i, i + bs))

    def decode_and_encode(bs: int) -> None:  # (b) files -> decoded, preprocessed -> image features
        for i in range(0, len(paths), bs):
            engine.encode_pixels(engine.image_inputs([load_image(p) for p in paths[i : i + bs]]))

    spaces = {}
    for c in cfg.classes:
        labels = class_names(c, cfg.images)
        spaces[c] = engine.build_space(labels, synthetic_synonyms(labels, cfg.concepts), templates=[TEMPLATE])
    rows = []
    for bs in cfg.batch_sizes:
        base = {"a": partial(bare, bs), "b": partial(decode_and_encode, bs)}
        t = alternate(base, cfg.repeats, sync_for(cfg.device))
        bare_rate, full_rate = t.rate("a", len(paths)), t.rate("b", len(paths))
        log(f"[{dtype_name} bs={bs}] bare CLIP {bare_rate:.1f} img/s, with decoding {full_rate:.1f} img/s")
        for c, space in spaces.items():
            row = InferenceRow(dtype_name, bs, c, cfg.concepts, bare_rate, full_rate, t.ratio("a", "b"))
            row.metrics = _metric_timings(cfg, engine, s3, paths, space, bs, base["b"], full_rate)
            row.transformers_img_s = None if hf is None else _transformers_rate(cfg, hf, paths, space, bs)
            rows.append(row)
            lc = row.metrics["local_center"]
            hf_rate = "n/a" if row.transformers_img_s is None else f"{row.transformers_img_s:.2f} img/s"
            log(
                f"  C={c}: local_center {lc.img_s:.1f} img/s ({lc.ratio:.3f}x of b; own work "
                f"{lc.own_ms:.1f} ms/batch = {lc.own_share:.2%}); transformers {hf_rate}"
            )
    return rows


def _metric_timings(
    cfg: BenchConfig,
    engine: Any,
    s3: Callable[..., Any],
    paths: list[str],
    space: SynonymSpace,
    bs: int,
    decode: Callable[[], Any],
    decode_rate: float,
) -> dict[str, MetricTiming]:
    """Per metric: S^3 end to end alternating with (b), and its own work per batch alone."""
    sync = sync_for(cfg.device)
    out = {}
    for metric in METRICS:
        call = partial(s3, paths, synonym_space=space, metric=metric, batch_size=bs)
        t = alternate({"b": decode, "s3": call}, cfg.repeats, sync)
        # S^3's own work per batch (scoring + postprocessing), timed alone: it is far below the noise of the
        # paired ratio on a busy machine, so this says directly how much of a batch it costs
        own = median_time(partial(s3_own_work, engine, space, metric, bs, engine.device), 20, sync)
        out[metric] = MetricTiming(t.rate("s3", len(paths)), t.ratio("s3", "b"), 1000 * own, own / (bs / decode_rate))
    return out


def _transformers_rate(cfg: BenchConfig, hf: Any, paths: list[str], space: SynonymSpace, bs: int) -> float:
    """Images/s of transformers' zero-shot pipeline ``hf`` on full batches (it encodes the labels once per batch of
    images, not per image)."""
    batch = paths[: max(cfg.hf_images, 1, bs)]
    call = partial(hf, batch, candidate_labels=space.labels, hypothesis_template=TEMPLATE, batch_size=bs)
    return len(batch) / median_time(call, 1, sync_for(cfg.device))
