"""The few-shot part: SSP's cost (support encoding, fitting, and pipeline throughput with the adapter)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from s3_hf.evaluation.bench.config import TEMPLATE, BenchConfig, require
from s3_hf.evaluation.bench.rows import FewshotResult, FewshotRow, FitRow
from s3_hf.evaluation.bench.timing import alternate, sync_for
from s3_hf.evaluation.bench.workload import class_names, image_paths, load_engine, s3_classifier, synthetic_synonyms
from s3_hf.io.images import load_image


def bench_fewshot(cfg: BenchConfig, log: Callable[[str], None]) -> FewshotResult:
    """SSP's cost: support encoding (global + local features), fitting (tuning included) at each of
    ``cfg.fewshot_shots`` shots per class, and pipeline throughput with the adapter of the most shots against (b)
    and against S^3 alone, alternating in the same process.

    Support features for ``k`` shots are the encoded photos (one per class) repeated ``k`` times with small noise:
    fitting and scoring cost depend on the sizes, not on what the images show.

    Args:
        cfg: the bench settings (``fewshot_classes``, ``fewshot_shots``, ``batch_sizes``).
        log: where progress lines go.
    """
    from s3_hf.fewshot import encode_support_images

    require(cfg.fewshot_shots and cfg.batch_sizes, "it needs --fewshot-shots and --batch-sizes")
    engine = load_engine(cfg.model, cfg.device)
    c = cfg.fewshot_classes
    labels = class_names(c, cfg.images)
    space = engine.build_space(labels, synthetic_synonyms(labels, cfg.concepts), templates=[TEMPLATE])
    start = time.perf_counter()
    glob, local = encode_support_images(engine.encoder, None, image_paths(cfg.images, c), batch_size=32)
    sync_for(cfg.device)()
    encode_s = time.perf_counter() - start
    log(f"[fewshot C={c}] support encoding {c / encode_s:.1f} img/s (global + {local.shape[1]} local features each)")
    result = FewshotResult(c, c / encode_s, local.shape[1])
    adapter = None
    gen = torch.Generator().manual_seed(0)
    for k in cfg.fewshot_shots:
        g = torch.nn.functional.normalize(
            glob.repeat(k, 1) + 0.01 * torch.randn(k * c, glob.shape[1], generator=gen), dim=-1
        )
        fitted: list[Any] = []
        fit = partial(_fit, engine, space, g, local.repeat(k, 1, 1), list(range(c)) * k, fitted)
        fit_s = alternate({"fit": fit}, cfg.repeats, sync_for(cfg.device), warmup=False).median("fit")
        adapter = fitted[-1]
        result.fit.append(FitRow(k, k * c, fit_s))
        log(f"  {k}-shot: fit (tuning included) {fit_s:.1f} s for {k * c} support images")
    result.inference = _with_adapter(cfg, engine, space, adapter, log)
    return result


def _fit(engine: Any, space: Any, g: torch.Tensor, loc: torch.Tensor, y: list[int], store: list[Any]) -> None:
    from s3_hf.fewshot import SSPConfig, fit_for_space

    classes = list(range(len(space.labels)))
    store.append(fit_for_space(space, classes, g, loc, y, "local_center", tau=engine.logit_scale, config=SSPConfig()))


def _with_adapter(
    cfg: BenchConfig, engine: Any, space: Any, adapter: Any, log: Callable[[str], None]
) -> list[FewshotRow]:
    """Per batch size: S^3 with the adapter alternating with (b) and with S^3 alone."""
    s3 = s3_classifier(engine, cfg.device)
    paths = image_paths(cfg.images, cfg.num_images)
    rows = []
    for bs in cfg.batch_sizes:

        def decode_and_encode(b: int = bs) -> None:
            for i in range(0, len(paths), b):
                engine.encode_pixels(engine.image_inputs([load_image(p) for p in paths[i : i + b]]))

        calls = {
            "b": decode_and_encode,
            "s3": partial(s3, paths, synonym_space=space, batch_size=bs),
            "ssp": partial(s3, paths, synonym_space=space, batch_size=bs, support=adapter),
        }
        t = alternate(calls, cfg.repeats, sync_for(cfg.device))
        row = FewshotRow(
            bs, cfg.fewshot_shots[-1], t.rate("ssp", len(paths)), t.ratio("ssp", "b"), t.ratio("ssp", "s3")
        )
        rows.append(row)
        log(
            f"  bs={bs}: S^3 + SSP {row.ssp_img_s:.1f} img/s, {row.ssp_over_b:.2f}x of (b), "
            f"{row.ssp_over_s3:.2f}x of S^3"
        )
    return rows
