"""The image part: the decode path on normal and 12 MP photos, exact and fast decoding; images/s of decoding and
preprocessing alone, the bare encoder, S^3 end to end, eval's loader and transformers' pipeline, each without and
with image workers; and the two image-processor backends where torchvision is installed."""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from s3_hf.engine.core import rank
from s3_hf.evaluation.bench.config import TEMPLATE, BenchConfig, require
from s3_hf.evaluation.bench.rows import BackendTimes, DecodeAgreement, ImageRow, ImagesResult
from s3_hf.evaluation.bench.timing import alternate, sync_for
from s3_hf.evaluation.bench.workload import class_names, image_paths, load_engine, tensor_rows, transformers_pipeline
from s3_hf.io.images import load_image


def large_photos(images: str, n: int, folder: Path, megapixels: float = 12.0) -> list[str]:
    """``n`` photos of ``images`` upscaled to ``megapixels`` and saved as JPEG quality 90 in ``folder`` (the size
    phones take), unless ``images`` already holds large photos.

    Args:
        images: the source image folder.
        n: how many photos.
        folder: where the upscaled copies go.
        megapixels: their size.
    """
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for src in image_paths(images, n):
        im = load_image(src)
        scale = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
        dst = folder / (Path(src).stem + ".jpg")
        if scale > 1 and not dst.exists():
            im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BICUBIC).save(
                dst, quality=90
            )
        out.append(str(dst) if scale > 1 else src)
    return out


def _image_calls(
    cfg: BenchConfig,
    engine: Any,
    hf: Any,
    resolved: Any,
    labels: list[str],
    paths: list[str],
    inputs: dict[str, torch.Tensor],
    fast: bool,
    workers: int,
) -> dict[str, Callable[[], Any]]:
    """The columns of one image row, as callables: name -> one pass over ``paths`` (``inputs``: them preprocessed,
    for the bare encoder)."""
    from accelerate import Accelerator

    from s3_hf.evaluation.embeddings import encode_sharded
    from s3_hf.io.parallel import batched, map_batches, threads_per_worker

    encoder = engine.encoder
    chunks = batched(range(len(paths)), cfg.image_batch)
    accelerator = Accelerator(cpu=cfg.device == "cpu")

    def bare(w: int = 0) -> None:  # the encoder alone on preprocessed tensors; w > 0: batches side by side
        threads = threads_per_worker(w) if w else None
        for _ in map_batches(chunks, lambda c: engine.encode_pixels(tensor_rows(inputs, c[0], c[-1] + 1)), w, threads):
            pass

    def decode() -> None:
        for p in paths:
            engine.image_inputs([engine.load_image(p, fast=fast)])

    def s3(w: int = 0) -> None:
        for batch in encoder.encode_image_batches(paths, cfg.image_batch, fast=fast, workers=w):
            out = engine.scores(batch.features, resolved)
            for b in range(len(batch.indices)):
                rank(out, b, resolved)

    def evaluation(w: int = 0) -> None:  # eval's sharded loader (1 process here)
        encode = lambda e, px: (e.encode_pixels(px),)  # noqa: E731
        encode_sharded(accelerator, encoder, paths, cfg.image_batch, encode, "", fast, w, progress=False)

    def transformers() -> None:
        images = [engine.load_image(p, fast=True) for p in paths] if fast else paths
        hf(images, candidate_labels=labels, hypothesis_template=TEMPLATE, batch_size=cfg.image_batch)

    calls: dict[str, Callable[[], Any]] = {"bare": bare, "bare_workers": partial(bare, workers), "decode": decode}
    calls |= {"s3": s3, "s3_workers": partial(s3, workers), "eval": evaluation}
    calls["eval_workers"] = partial(evaluation, workers)
    if hf is not None:
        calls["transformers"] = transformers
    return calls


def _image_rows(
    cfg: BenchConfig, engine: Any, hf: Any, resolved: Any, labels: list[str], name: str, paths: list[str], log: Any
) -> list[ImageRow]:
    """One photo set's rows of :func:`bench_images`: exact and fast decoding."""
    from s3_hf.io.parallel import default_image_workers

    workers = default_image_workers(cfg.device) if cfg.image_workers is None else cfg.image_workers
    n = len(paths)
    inputs = engine.image_inputs([load_image(p) for p in paths])
    rows = []
    for fast in (False, True):
        calls = _image_calls(cfg, engine, hf, resolved, labels, paths, inputs, fast, workers)
        t = alternate(calls, cfg.repeats, sync_for(cfg.device))
        rate = {key: t.rate(key, n) for key in calls}
        has_hf = "transformers" in calls
        row = ImageRow(
            name, "fast" if fast else "exact", n, workers, cfg.device, type(engine.encoder.image_processor).__name__,
            rate["bare"], rate["bare_workers"], rate["decode"], rate["s3"], rate["s3_workers"], rate["eval"],
            rate["eval_workers"], rate.get("transformers"), t.ratio("s3", "bare"), t.ratio("s3_workers", "bare"),
            t.ratio("s3_workers", "bare_workers"), t.ratio("eval_workers", "eval"),
            t.ratio("s3_workers", "transformers") if has_hf else None,
        )  # fmt: skip
        rows.append(row)
        log(
            f"[images {cfg.device} {name} {row.decode}] decode+preprocess {row.decode_img_s:.1f} img/s, "
            f"bare encoder {row.bare_img_s:.1f} ({row.bare_workers_img_s:.1f} with {workers} workers), "
            f"S^3 end to end {row.s3_img_s:.1f} ({row.s3_over_bare:.2f}x of bare; with {workers} workers "
            f"{row.s3_workers_img_s:.1f}, {row.s3_workers_over_bare:.2f}x), eval {row.eval_img_s:.1f} "
            f"({row.eval_workers_img_s:.1f} with workers)"
            + (f", transformers {row.transformers_img_s:.2f}" if has_hf else "")
        )
    return rows


def decode_agreement(engine: Any, resolved: Any, paths: list[str], batch: int) -> DecodeAgreement:
    """How much S^3's scores move between exact and fast decoding of ``paths``: top-1 agreement and the mean and
    largest absolute difference of a class probability. Meaningful only for trained weights (``random_weights``
    says when they were random).

    Args:
        engine: the loaded engine.
        resolved: the resolved request to score with.
        paths: the photos.
        batch: images per encoder batch.
    """
    from s3_hf.models.families import probabilities

    probs = []
    for fast in (False, True):
        v = engine.encode_images(paths, batch_size=batch, fast=fast)
        out = engine.scores(v, resolved)
        probs.append(probabilities(out.logits, out.scoring))
    exact, fast = probs
    diff = (exact - fast).abs()
    return DecodeAgreement(
        len(paths),
        float((exact.argmax(-1) == fast.argmax(-1)).float().mean()),
        float(diff.mean()),
        float(diff.max()),
        bool(engine.encoder.random_weights),
    )


def bench_backends(
    cfg: BenchConfig, paths: list[str], min_side: int | None, log: Callable[[str], None]
) -> BackendTimes | None:
    """Preprocessing of the fast-decoded ``paths`` with transformers' PIL and torchvision image-processor backends,
    where torchvision is installed and the model has a transformers image processor; else ``None`` (and a log line
    saying why).

    Args:
        cfg: the bench settings.
        paths: the photos.
        min_side: the smallest short side fast decoding keeps.
        log: where progress lines go.
    """
    from transformers import AutoImageProcessor

    from s3_hf.models.embedding import image_inputs
    from s3_hf.models.encoders import is_open_clip_name

    if importlib.util.find_spec("torchvision") is None or is_open_clip_name(cfg.model):
        log("[images backends] skipped: needs torchvision and a transformers image processor")
        return None
    images = [load_image(p, min_side=min_side) for p in paths]
    processors = {
        b: AutoImageProcessor.from_pretrained(cfg.model, backend=b, trust_remote_code=False)
        for b in ("pil", "torchvision")
    }

    def preprocess(processor: Any) -> None:
        for im in images:
            image_inputs(processor, [im])

    t = alternate({b: partial(preprocess, proc) for b, proc in processors.items()}, cfg.repeats)  # CPU work only
    out = BackendTimes(
        {b: t.rate(b, len(images)) for b in processors}, {b: type(p).__name__ for b, p in processors.items()}
    )
    log(
        f"[images backends] preprocessing of fast-decoded photos: PIL {out.img_s['pil']:.0f} img/s, "
        f"torchvision {out.img_s['torchvision']:.0f} img/s"
    )
    return out


def bench_images(cfg: BenchConfig, log: Callable[[str], None]) -> ImagesResult:
    """The image path on the normal and a large-photo set, with exact and fast decoding: images/s of decode +
    preprocess alone, the bare encoder, end-to-end S^3 (10 labels) and transformers' pipeline, and of eval's
    loader, each without and with image workers; and the two image-processor backends where torchvision is
    installed. Alternating runs in one process, medians.

    Args:
        cfg: the bench settings (``num_images``, ``large_images``, ``image_batch``, ``image_workers``).
        log: where progress lines go.
    """
    require(importlib.util.find_spec("accelerate"), "eval's image loader needs accelerate (pip install accelerate)")
    labels = class_names(10, cfg.images)
    # the CPU figures always; a GPU's beside them where CUDA is present
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else [cfg.device]
    result = ImagesResult([])
    with tempfile.TemporaryDirectory() as tmp:
        sets = {
            "normal": image_paths(cfg.images, cfg.num_images),
            "12MP": large_photos(cfg.large_images or cfg.images, cfg.num_images, Path(tmp) / "large"),
        }
        for device in devices:
            engine = load_engine(cfg.model, device)
            resolved = engine.resolve(engine.request(labels, hypothesis_template=TEMPLATE))
            hf = transformers_pipeline(engine, "zero-shot-image-classification", device)  # None for open_clip
            on_device = replace(cfg, device=device)
            for name, paths in sets.items():
                result.rows += _image_rows(on_device, engine, hf, resolved, labels, name, paths, log)
            if device == devices[0]:
                result.decode_agreement = agree = decode_agreement(engine, resolved, sets["12MP"], cfg.image_batch)
                log(
                    f"[images agreement] 12 MP, exact vs fast decoding: top-1 agreement {agree.top1_agreement:.1%}, "
                    f"largest probability change {agree.max_abs_prob_diff:.4f}"
                    + (" (random weights: not meaningful)" if agree.random_weights else "")
                )
        result.backends = bench_backends(cfg, sets["12MP"], engine.encoder.decode_min_side(), log)
    return result
