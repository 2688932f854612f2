"""`s3 bench`: throughput of S^3 against bare CLIP and transformers' own pipeline, build cost, memory, size.

Every figure is a median over repeats and, where it says "x", a ratio to a baseline measured in the same
process. Results go to ``bench.json`` and ``bench.md`` (and ``bench.png``) in the output folder.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from s3_hf import TASK, SynonymSpace
from s3_hf.engine.core import rank
from s3_hf.errors import EvalError
from s3_hf.evaluation.registry import IMAGENET_SAMPLE_ENV
from s3_hf.io.files import save_figure, write_json
from s3_hf.io.images import list_images, load_image
from s3_hf.models import loading as models
from s3_hf.space.geometry import build_space
from s3_hf.space.scoring import METRICS

MODEL_ENV = "S3_BENCH_MODEL"
IMAGES_ENV = "S3_BENCH_IMAGES"
TEMPLATE = "a photo of a {}."


def locations(model: str | None = None, images: str | None = None) -> tuple[str, str]:
    """The model and image folder to benchmark: the arguments, else ``$S3_BENCH_MODEL`` and ``$S3_BENCH_IMAGES``
    (images fall back to ``$S3_IMAGENET_SAMPLE``). :class:`EvalError` naming what to set when one is missing."""
    model = model or os.environ.get(MODEL_ENV)
    images = images or os.environ.get(IMAGES_ENV) or os.environ.get(IMAGENET_SAMPLE_ENV)
    missing = []
    if not model:
        missing.append(f"a model (pass --model with a CLIP folder or Hub id, or set {MODEL_ENV})")
    if not images:
        missing.append(f"an image folder (pass --images DIR, or set {IMAGES_ENV})")
    if missing:
        raise EvalError(f"s3 bench needs {' and '.join(missing)}.")
    if not Path(images).is_dir():
        raise EvalError(f"Image folder {images} not found: pass --images DIR with a few JPEG/PNG files.")
    return str(model), str(images)


@dataclass
class BenchConfig:
    model: str
    images: str  # JPEG/PNG files, directly or under images/; a classes.tsv beside them names the classes
    out: str = "bench_results"
    device: str = "cpu"
    classes: Sequence[int] = (10, 100, 1000)
    concepts: int = 10
    batch_sizes: Sequence[int] = (1, 32)
    build_classes: Sequence[int] = (10, 100, 1000)
    build_concepts: Sequence[int] = (5, 10, 20, 50)
    num_images: int = 32
    hf_images: int = 4  # transformers' pipeline re-encodes every label per batch: a few images (or one batch)
    repeats: int = 3
    dtypes: Sequence[str] = ("float32",)
    memory: bool = True
    parts: Sequence[str] = ("inference", "build", "artifact")  # plus memory when `memory`; "fewshot" on request
    fewshot_classes: int = 1000
    fewshot_shots: Sequence[int] = (1, 4, 16)
    seg_classes: int = 150  # segmentation part: classes (ADE20K's count) ...
    seg_short_sides: Sequence[int] = (336, 448)  # ... short sides ...
    seg_images: int = 4  # ... and images
    large_images: str | None = None  # image part: photos to upscale to 12 MP (default: images)
    image_batch: int = 8  # image part: batch size
    image_workers: int | None = None  # image part: workers (None: the device's default)
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- loading
def load_engine(path: str, device: str, dtype: torch.dtype = torch.float32) -> Any:
    """The engine of any supported checkpoint (transformers or open_clip) through the library's one loader: a
    folder without weights (such as clip-vit-b32-shapes) is initialised at random, right for timing, meaningless
    for accuracy."""
    from s3_hf.engine.core import S3Engine

    return S3Engine.from_pretrained(path, device=device, dtype=dtype)


def transformers_pipeline(engine: Any, task: str, device: str) -> Any:
    """The transformers pipeline ``task`` on the engine's model and processors, or ``None`` for a model
    transformers cannot load (open_clip)."""
    from s3_hf.models.encoders import TransformersEncoder

    if not isinstance(engine.encoder, TransformersEncoder):
        return None
    from transformers import pipeline

    return pipeline(
        task, model=engine.model, tokenizer=engine.tokenizer, image_processor=engine.image_processor, device=device
    )


def s3_classifier(engine: Any, device: str) -> Callable[..., Any]:
    """S^3 end to end, as a user runs it: transformers' pipeline face for transformers models, the engine's
    ``classify`` for open_clip ones (which that pipeline cannot load)."""
    pipe = transformers_pipeline(engine, TASK, device)
    if pipe is not None:
        return pipe

    def classify(images: Sequence[str], batch_size: int = 32, **options: Any) -> Any:
        return engine.classify(images, engine.request(**options), batch_size=batch_size)

    classify.engine = engine  # type: ignore[attr-defined]
    return classify


def _rows(inputs: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    return {k: v[start:stop] for k, v in inputs.items()}


def image_paths(folder: str, n: int) -> list[str]:
    root = Path(folder)
    root = root / "images" if (root / "images").is_dir() else root
    files = list_images(root)
    if not files:
        raise EvalError(f"No images in {root}. Pass --images with a folder of image files (JPEG, PNG, ...).")
    return (files * (n // len(files) + 1))[:n]


def class_names(n: int, images: str | os.PathLike) -> list[str]:
    """Real class names from the ``classes.tsv`` of the image folder ``images`` where it has one (the ImageNet
    sample's: realistic token lengths), else synthetic ones."""
    tsv = Path(images) / "classes.tsv"
    names: list[str] = []
    if tsv.is_file():
        rows = tsv.read_text(encoding="utf-8").splitlines()[1:]
        names = list(dict.fromkeys(r.split("\t")[3] for r in rows))
    names += [f"object category {i}" for i in range(len(names), n)]
    return names[:n]


def synthetic_synonyms(labels: Sequence[str], m: int) -> dict[str, list[str]]:
    """``m`` distinct concepts per label, shaped like real synonyms (three words); timing does not depend on
    what they say."""
    kinds = ["kind", "variety", "type", "sort", "form", "breed", "model", "style"]
    return {lab: [f"{kinds[j % len(kinds)]} {j // len(kinds)} {lab.split()[-1]}" for j in range(m)] for lab in labels}


# ----------------------------------------------------------------------------------------------- timing
def median_time(fn: Callable[[], Any], repeats: int, sync: Callable[[], None], warmup: bool = True) -> float:
    if warmup:
        fn()
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def s3_own_work(engine: Any, space: SynonymSpace, metric: str, bs: int, device: Any) -> None:
    """What the S^3 pipeline does for a batch beyond encoding the images: resolve the request (cached), score,
    then rank each image's classes as its postprocessing does."""
    from s3_hf.engine.core import rank

    v = torch.nn.functional.normalize(torch.randn(bs, space.tensors.points.shape[1], device=device), dim=-1)
    resolved = engine.resolve(engine.request(synonym_space=space, metric=metric))
    out = engine.scores(v, resolved)
    for i in range(bs):
        [p.to_dict() for p in rank(out, i, resolved)]


def bench_inference(cfg: BenchConfig, dtype_name: str, log: Callable[[str], None]) -> list[dict[str, Any]]:
    dtype = getattr(torch, dtype_name)
    engine = load_engine(cfg.model, cfg.device, dtype)
    s3 = s3_classifier(engine, cfg.device)
    hf = transformers_pipeline(engine, "zero-shot-image-classification", cfg.device)  # None for open_clip
    sync = _sync(cfg.device)
    paths = image_paths(cfg.images, cfg.num_images)
    few = paths[: max(cfg.hf_images, 1)]
    inputs = engine.image_inputs([load_image(p) for p in paths])

    def bare(bs: int) -> None:  # (a) preprocessed tensors -> image features
        for i in range(0, len(paths), bs):
            engine.encode_pixels(_rows(inputs, i, i + bs))

    def decode_and_encode(bs: int) -> None:  # (b) files -> decoded, preprocessed -> image features
        for i in range(0, len(paths), bs):
            engine.encode_pixels(engine.image_inputs([load_image(p) for p in paths[i : i + bs]]))

    def paired(fn: Callable[[], Any], base: Callable[[], Any], n: int) -> tuple[float, float, float]:
        """Run ``base`` and ``fn`` alternately; (median images/s of fn, of base, median of per-pair ratios).
        Alternating cancels the slow drift of a shared machine that back-to-back blocks of runs pick up."""
        fn(), base()  # warm-up (also builds scoring states)
        t_fn, t_base = [], []
        for _ in range(cfg.repeats):
            t_base.append(median_time(base, 1, sync, warmup=False))
            t_fn.append(median_time(fn, 1, sync, warmup=False))
        ratios = [b / f for b, f in zip(t_base, t_fn, strict=True)]
        return n / statistics.median(t_fn), n / statistics.median(t_base), statistics.median(ratios)

    spaces = {}
    for c in cfg.classes:
        labels = class_names(c, cfg.images)
        syn = synthetic_synonyms(labels, cfg.concepts)
        spaces[c] = engine.build_space(labels, syn, templates=[TEMPLATE])
    rows = []
    for bs in cfg.batch_sizes:
        b_call = partial(decode_and_encode, bs)
        bare_rate, full_rate, a_over_b = paired(partial(bare, bs), b_call, len(paths))
        log(f"[{dtype_name} bs={bs}] bare CLIP {bare_rate:.1f} img/s, with decoding {full_rate:.1f} img/s")
        for c, space in spaces.items():
            row: dict[str, Any] = {"dtype": dtype_name, "batch_size": bs, "classes": c, "concepts": cfg.concepts}
            row.update(bare_img_s=bare_rate, decode_img_s=full_rate, bare_over_decode=a_over_b)
            for metric in METRICS:
                call = partial(s3, paths, synonym_space=space, metric=metric, batch_size=bs)
                rate, _, ratio = paired(call, b_call, len(paths))
                row[f"s3_{metric}_img_s"], row[f"s3_{metric}_ratio"] = rate, ratio
                # S^3's own work per batch (scoring + postprocessing), timed alone: it is far below the noise of
                # the paired ratio on a busy machine, so this says directly how much of a batch it costs
                own = median_time(partial(s3_own_work, engine, space, metric, bs, engine.device), 20, sync)
                row[f"s3_{metric}_own_ms"] = 1000 * own
                row[f"s3_{metric}_own_share"] = own / (bs / full_rate)
            # full batches: transformers' pipeline encodes the labels once per batch of images, not per image
            batch = paths[: max(len(few), bs)]
            row["transformers_img_s"] = None
            if hf is not None:
                call = partial(hf, batch, candidate_labels=space.labels, hypothesis_template=TEMPLATE, batch_size=bs)
                row["transformers_img_s"] = len(batch) / median_time(call, 1, sync)
            rows.append(row)
            lc = row["s3_local_center_img_s"]
            hf_rate = "n/a" if hf is None else f"{row['transformers_img_s']:.2f} img/s"
            log(
                f"  C={c}: local_center {lc:.1f} img/s ({row['s3_local_center_ratio']:.3f}x of b; own work "
                f"{row['s3_local_center_own_ms']:.1f} ms/batch = {row['s3_local_center_own_share']:.2%}); "
                f"transformers {hf_rate}"
            )
    return rows


def bench_fewshot(cfg: BenchConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """SSP's cost: support encoding (global + local features), fitting (tuning included) at 1/4/16 shots per class,
    and pipeline throughput with the 16-shot adapter against (b) and against S^3 alone, in the same process.

    Support features for ``k`` shots are the encoded photos (one per class) repeated ``k`` times with small noise:
    fitting and scoring cost depend on the sizes, not on what the images show."""
    from s3_hf.fewshot import SSPConfig, encode_support_images, fit_for_space

    engine = load_engine(cfg.model, cfg.device)
    s3 = s3_classifier(engine, cfg.device)
    sync = _sync(cfg.device)
    c = cfg.fewshot_classes
    labels = class_names(c, cfg.images)
    space = engine.build_space(labels, synthetic_synonyms(labels, cfg.concepts), templates=[TEMPLATE])
    support = image_paths(cfg.images, c)
    start = time.perf_counter()
    glob, local = encode_support_images(engine.encoder, None, support, batch_size=32)
    sync()
    encode_s = time.perf_counter() - start
    log(f"[fewshot C={c}] support encoding {c / encode_s:.1f} img/s (global + {local.shape[1]} local features each)")
    tau = engine.logit_scale
    out: dict[str, Any] = {"classes": c, "support_img_s": c / encode_s, "patches": local.shape[1], "fit": []}
    gen = torch.Generator().manual_seed(0)
    adapter = None
    for k in cfg.fewshot_shots:
        g = torch.nn.functional.normalize(
            glob.repeat(k, 1) + 0.01 * torch.randn(k * c, glob.shape[1], generator=gen), dim=-1
        )
        loc = local.repeat(k, 1, 1)
        y = list(range(c)) * k
        times = []
        for _ in range(max(1, cfg.repeats)):
            start = time.perf_counter()
            adapter = fit_for_space(space, list(range(c)), g, loc, y, "local_center", tau=tau, config=SSPConfig())
            sync()
            times.append(time.perf_counter() - start)
        out["fit"].append({"shots": k, "support_images": k * c, "fit_s": statistics.median(times)})
        log(f"  {k}-shot: fit (tuning included) {statistics.median(times):.1f} s for {k * c} support images")
    paths = image_paths(cfg.images, cfg.num_images)
    out["inference"] = []
    for bs in cfg.batch_sizes:
        base = partial(s3, paths, synonym_space=space, batch_size=bs)
        b_call = partial(
            lambda b: [
                engine.encode_pixels(engine.image_inputs([load_image(p) for p in paths[i : i + b]]))
                for i in range(0, len(paths), b)
            ],
            bs,
        )
        ssp = partial(s3, paths, synonym_space=space, batch_size=bs, support=adapter)
        ssp(), base(), b_call()  # warm-up
        t_ssp, t_s3, t_b = [], [], []
        for _ in range(cfg.repeats):
            for fn, acc in ((b_call, t_b), (base, t_s3), (ssp, t_ssp)):
                start = time.perf_counter()
                fn()
                sync()
                acc.append(time.perf_counter() - start)
        row = {
            "batch_size": bs,
            "shots": cfg.fewshot_shots[-1],
            "ssp_img_s": len(paths) / statistics.median(t_ssp),
            "ssp_over_b": statistics.median([b / x for b, x in zip(t_b, t_ssp, strict=True)]),
            "ssp_over_s3": statistics.median([b / x for b, x in zip(t_s3, t_ssp, strict=True)]),
        }
        out["inference"].append(row)
        log(
            f"  bs={bs}: S^3 + SSP {row['ssp_img_s']:.1f} img/s, {row['ssp_over_b']:.2f}x of (b), "
            f"{row['ssp_over_s3']:.2f}x of S^3"
        )
    return out


def bench_build(cfg: BenchConfig, log: Callable[[str], None]) -> list[dict[str, Any]]:
    from s3_hf.text.encoding import concept_text, encode_concepts

    engine = load_engine(cfg.model, cfg.device)
    sync = _sync(cfg.device)
    rows = []
    for c in cfg.build_classes:
        labels = class_names(c, cfg.images)
        for m in cfg.build_concepts:
            syn = synthetic_synonyms(labels, m)
            texts = [concept_text(x, lab) for lab in labels for x in [lab, *syn[lab]]]
            start = time.perf_counter()
            points = encode_concepts(engine.encoder, None, texts, [TEMPLATE])
            sync()
            t_text = time.perf_counter() - start
            point_class = torch.arange(c).repeat_interleave(m + 1)
            start = time.perf_counter()
            build_space(points, point_class)
            t_geom = time.perf_counter() - start
            row = {"classes": c, "concepts": m, "prompts": len(texts), "text_s": t_text, "geometry_s": t_geom}
            row["geometry_share"] = t_geom / (t_text + t_geom)
            rows.append(row)
            log(f"[build C={c} M={m}] text {t_text:.1f}s, geometry {t_geom:.2f}s ({row['geometry_share']:.1%})")
    return rows


def save_space(cfg: BenchConfig, classes: int, folder: Path) -> dict[str, Any]:
    """Build and save a space with ``classes`` classes and ``cfg.concepts`` concepts each; its size on disk."""
    engine = load_engine(cfg.model, cfg.device)
    labels = class_names(classes, cfg.images)
    space = engine.build_space(labels, synthetic_synonyms(labels, cfg.concepts), templates=[TEMPLATE])
    space.save_pretrained(folder)
    SynonymSpace.from_pretrained(folder)  # it loads back
    files = {f.name: f.stat().st_size for f in folder.iterdir()}
    return {"classes": classes, "concepts": cfg.concepts, "bytes": sum(files.values()), "files": files}


# ---------------------------------------------------------------------------------------------- image path
def large_photos(images: str, n: int, folder: Path, megapixels: float = 12.0) -> list[str]:
    """``n`` photos of ``images`` upscaled to ``megapixels`` and saved as JPEG quality 90 in ``folder`` (the size
    phones take), unless ``images`` already holds large photos."""
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


def _image_rows(
    cfg: BenchConfig,
    engine: Any,
    hf: Any,
    resolved: Any,
    labels: list[str],
    name: str,
    paths: list[str],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One photo set's rows of :func:`bench_images`: exact and fast decoding."""
    from accelerate import Accelerator

    from s3_hf.evaluation.runner import encode_sharded
    from s3_hf.io.parallel import batched, default_image_workers, map_batches, threads_per_worker

    sync = _sync(cfg.device)
    n = len(paths)
    workers = default_image_workers(cfg.device) if cfg.image_workers is None else cfg.image_workers
    rows = []
    encoder = engine.encoder
    inputs = engine.image_inputs([load_image(p) for p in paths])
    chunks = batched(range(n), cfg.image_batch)
    accelerator = Accelerator(cpu=cfg.device == "cpu")

    def bare(w: int = 0) -> None:  # the encoder alone on preprocessed tensors; w > 0: batches side by side
        threads = threads_per_worker(w) if w else None
        for _ in map_batches(chunks, lambda c: engine.encode_pixels(_rows(inputs, c[0], c[-1] + 1)), w, threads):
            pass

    for fast in (False, True):

        def decode(fast: bool = fast) -> None:
            for p in paths:
                engine.image_inputs([engine.load_image(p, fast=fast)])

        def s3(fast: bool = fast, w: int = 0) -> None:
            for batch in encoder.encode_image_batches(paths, cfg.image_batch, fast=fast, workers=w):
                out = engine.scores(batch.features, resolved)
                for b in range(len(batch.indices)):
                    rank(out, b, resolved)

        def evaluation(fast: bool = fast, w: int = 0) -> None:  # eval's sharded loader (1 process here)
            encode = lambda e, px: (e.encode_pixels(px),)  # noqa: E731
            encode_sharded(accelerator, encoder, paths, cfg.image_batch, encode, "", fast, w, progress=False)

        def transformers(fast: bool = fast) -> None:
            images = [engine.load_image(p, fast=True) for p in paths] if fast else paths
            hf(images, candidate_labels=labels, hypothesis_template=TEMPLATE, batch_size=cfg.image_batch)

        calls = {
            "bare": bare,
            "bare_workers": partial(bare, workers),
            "decode": decode,
            "s3": s3,
            "s3_workers": partial(s3, w=workers),
            "eval": evaluation,
            "eval_workers": partial(evaluation, w=workers),
        }
        if hf is not None:
            calls["transformers"] = transformers
        times: dict[str, list[float]] = {key: [] for key in calls}
        for fn in calls.values():
            fn()  # warm-up
        for _ in range(cfg.repeats):  # alternating, so drift on a shared machine hits every column alike
            for key, fn in calls.items():
                times[key].append(median_time(fn, 1, sync, warmup=False))

        def ratio(a: str, b: str, times: dict[str, list[float]] = times) -> float:
            """Median over the alternating runs of speed(a) / speed(b)."""
            return statistics.median([tb / ta for ta, tb in zip(times[a], times[b], strict=True)])

        row: dict[str, Any] = {"set": name, "decode": "fast" if fast else "exact", "images": n, "workers": workers}
        row["device"] = cfg.device
        row["processor"] = type(encoder.image_processor).__name__
        for key in calls:
            row[f"{key}_img_s"] = n / statistics.median(times[key])
        row["s3_over_bare"] = ratio("s3", "bare")
        row["s3_workers_over_bare"] = ratio("s3_workers", "bare")
        row["s3_workers_over_bare_workers"] = ratio("s3_workers", "bare_workers")
        row["eval_workers_over_eval"] = ratio("eval_workers", "eval")
        if hf is not None:
            row["s3_over_transformers"] = ratio("s3_workers", "transformers")
        rows.append(row)
        log(
            f"[images {cfg.device} {name} {row['decode']}] decode+preprocess {row['decode_img_s']:.1f} img/s, "
            f"bare encoder {row['bare_img_s']:.1f} ({row['bare_workers_img_s']:.1f} with {workers} workers), "
            f"S^3 end to end {row['s3_img_s']:.1f} ({row['s3_over_bare']:.2f}x of bare; with {workers} workers "
            f"{row['s3_workers_img_s']:.1f}, {row['s3_workers_over_bare']:.2f}x), eval {row['eval_img_s']:.1f} "
            f"({row['eval_workers_img_s']:.1f} with workers)"
            + (f", transformers {row['transformers_img_s']:.2f}" if hf is not None else "")
        )
    return rows


def decode_agreement(engine: Any, resolved: Any, paths: list[str], batch: int) -> dict[str, Any]:
    """How much S^3's scores move between exact and fast decoding of ``paths``: top-1 agreement and the mean and
    largest absolute difference of a class probability. Meaningful only for trained weights (``random_weights``
    says when they were random)."""
    from s3_hf.models.families import probabilities

    probs = []
    for fast in (False, True):
        v = engine.encode_images(paths, batch_size=batch, fast=fast)
        out = engine.scores(v, resolved)
        probs.append(probabilities(out.logits, out.scoring))
    exact, fast = probs
    diff = (exact - fast).abs()
    return {
        "images": len(paths),
        "top1_agreement": float((exact.argmax(-1) == fast.argmax(-1)).float().mean()),
        "mean_abs_prob_diff": float(diff.mean()),
        "max_abs_prob_diff": float(diff.max()),
        "random_weights": bool(engine.encoder.random_weights),
    }


def bench_backends(
    cfg: BenchConfig, paths: list[str], min_side: int | None, log: Callable[[str], None]
) -> dict[str, Any] | None:
    """Preprocessing of the fast-decoded ``paths`` with transformers' PIL and torchvision image-processor backends,
    where torchvision is installed and the model has a transformers image processor; else ``None``."""
    import importlib.util

    from transformers import AutoImageProcessor

    from s3_hf.models.embedding import image_inputs
    from s3_hf.models.encoders import is_open_clip_name

    if importlib.util.find_spec("torchvision") is None or is_open_clip_name(cfg.model):
        return None
    images = [load_image(p, min_side=min_side) for p in paths]
    processors = {
        b: AutoImageProcessor.from_pretrained(cfg.model, backend=b, trust_remote_code=False)
        for b in ("pil", "torchvision")
    }
    times: dict[str, list[float]] = {b: [] for b in processors}
    for _ in range(cfg.repeats):
        for b, proc in processors.items():
            times[b].append(median_time(lambda proc=proc: [image_inputs(proc, [im]) for im in images], 1, _sync("cpu")))
    out = {f"{b}_preprocess_img_s": len(images) / statistics.median(t) for b, t in times.items()}
    out["processors"] = {b: type(p).__name__ for b, p in processors.items()}
    log(
        f"[images backends] preprocessing of fast-decoded photos: PIL {out['pil_preprocess_img_s']:.0f} img/s, "
        f"torchvision {out['torchvision_preprocess_img_s']:.0f} img/s"
    )
    return out


def bench_images(cfg: BenchConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """The image path on the normal and a large-photo set, with exact and fast decoding: images/s of decode +
    preprocess alone, the bare encoder, end-to-end S^3 (10 labels) and transformers' pipeline, and of eval's
    loader, each without and with image workers; and the two image-processor backends where torchvision is
    installed. Alternating runs in one process, medians."""

    labels = class_names(10, cfg.images)
    # the CPU figures always; a GPU's beside them where CUDA is present
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else [cfg.device]
    rows = []
    agreement = None
    with tempfile.TemporaryDirectory() as tmp:
        sets = {
            "normal": image_paths(cfg.images, cfg.num_images),
            "12MP": large_photos(cfg.large_images or cfg.images, cfg.num_images, Path(tmp) / "large"),
        }
        for device in devices:
            engine = load_engine(cfg.model, device)
            resolved = engine.resolve(engine.request(labels, hypothesis_template=TEMPLATE))
            hf = transformers_pipeline(engine, "zero-shot-image-classification", device)  # None for open_clip
            run = replace(cfg, device=device)
            for name, paths in sets.items():
                rows += _image_rows(run, engine, hf, resolved, labels, name, paths, log)
            if device == devices[0]:
                agreement = decode_agreement(engine, resolved, sets["12MP"], cfg.image_batch)
                log(
                    f"[images agreement] 12 MP, exact vs fast decoding: top-1 agreement "
                    f"{agreement['top1_agreement']:.1%}, largest probability change "
                    f"{agreement['max_abs_prob_diff']:.4f}"
                    + (" (random weights: not meaningful)" if agreement["random_weights"] else "")
                )
        backends = bench_backends(cfg, sets["12MP"], engine.encoder.decode_min_side(), log)
    return {"rows": rows, "backends": backends, "decode_agreement": agreement}


# ------------------------------------------------------------------------------------------ segmentation
def bench_segmentation(cfg: BenchConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """Dense inference per variant at short sides ``cfg.seg_short_sides``: images/s end to end (decode, sliding
    windows, scoring, upsampling, the label map at the image's full size) and its ratio to the dense forward alone;
    S^3's per-patch scoring alone (``cfg.seg_classes`` classes x ``cfg.concepts`` concepts, ``local_center``) and
    its share of the dense forward, next to one plain forward of the whole image at the same size (the model's own
    last block, positions interpolated); and the peak memory of a segmentation in a fresh process."""
    from s3_hf.models.dense import VARIANTS
    from s3_hf.segmentation.core import SegmentOptions, image_pixels

    engine = load_engine(cfg.model, cfg.device)
    sync = _sync(cfg.device)
    labels = class_names(cfg.seg_classes, cfg.images)
    space = engine.build_space(labels, synthetic_synonyms(labels, cfg.concepts), templates=[TEMPLATE])
    request = engine.request(synonym_space=space, metric="local_center")
    resolved = engine.resolve(request)
    paths = image_paths(cfg.images, cfg.seg_images)
    images = [load_image(p) for p in paths]
    mean, std = engine.encoder.pixel_stats()
    p = engine.encoder.patch_size
    rows = []
    for short in cfg.seg_short_sides:
        pixels = [image_pixels(im, mean, std, short) for im in images]
        whole = [x[:, : x.shape[1] // p * p, : x.shape[2] // p * p] for x in pixels]
        plain = median_time(partial(_plain_forward, engine, whole), cfg.repeats, sync)
        for variant in VARIANTS:
            options = SegmentOptions(variant=variant, short_side=short)
            feats: list[torch.Tensor] = []
            dense = median_time(partial(_dense_only, engine, pixels, variant, feats), cfg.repeats, sync)
            flat = [f.reshape(-1, f.shape[-1]) for f in feats]  # the windows of one run
            scoring = median_time(partial(_score_all, engine, flat, resolved), cfg.repeats, sync)
            total = median_time(partial(_segment_all, engine, paths, request, options), cfg.repeats, sync)
            n = len(images)
            row = {
                "short_side": short,
                "variant": variant or "none",
                "img_s": n / total,
                "dense_img_s": n / dense,
                "dense_ratio": dense / total,  # end to end speed as a share of the dense forward's
                "plain_img_s": n / plain,
                "scoring_ms": 1000 * scoring / n,
                "scoring_share": scoring / dense,
                "patches_per_image": sum(len(f) for f in flat) // n,
            }
            rows.append(row)
            log(
                f"[segment {short}px {row['variant']}] {row['img_s']:.2f} img/s end to end, dense forward "
                f"{row['dense_img_s']:.2f} img/s (end to end at {row['dense_ratio']:.2f}x of it), plain forward "
                f"{row['plain_img_s']:.2f} img/s; S^3 scoring "
                f"{row['scoring_ms']:.1f} ms/image = {row['scoring_share']:.1%} of the dense forward"
            )
    out: dict[str, Any] = {"classes": cfg.seg_classes, "concepts": cfg.concepts, "images": len(images), "rows": rows}
    if cfg.memory:
        out["memory"] = _segment_memory(cfg)
    return out


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


def _segment_memory(cfg: BenchConfig) -> dict[str, int]:
    payload = json.dumps({k: v for k, v in cfg.__dict__.items() if k != "extra"})
    script = _MEMORY_SCRIPT.format(cfg=payload, mode="segment", space="")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"memory measurement (segment) failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------- memory
_MEMORY_SCRIPT = """
import json, resource, sys, torch
from s3_hf.evaluation import bench
cfg = bench.BenchConfig(**json.loads({cfg!r}))
engine = bench.load_engine(cfg.model, cfg.device)
paths = bench.image_paths(cfg.images, 32)
if {mode!r} == "bare":
    from s3_hf.text.encoding import load_image
    engine.encode_pixels(engine.image_inputs([load_image(p) for p in paths]))
elif {mode!r} == "segment":
    from s3_hf.segmentation.core import SegmentOptions
    labels = bench.class_names(cfg.seg_classes, cfg.images)
    request = engine.request(labels, synonyms=bench.synthetic_synonyms(labels, cfg.concepts))
    engine.segment(paths[0], request, SegmentOptions(short_side=max(cfg.seg_short_sides)))
else:
    bench.s3_classifier(engine, cfg.device)(paths, synonym_space={space!r}, batch_size=32)
if cfg.device.startswith("cuda"):
    peak, resident = torch.cuda.max_memory_allocated(), torch.cuda.memory_allocated()
    print(json.dumps({{"peak_bytes": peak, "resident_bytes": resident}}))
else:
    import os
    resident = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    # VmHWM is this process's own peak; ru_maxrss would also count the parent's memory inherited at fork
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    peak = int(status["VmHWM"].split()[0]) * 1024 if "VmHWM" in status else (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({{"peak_bytes": peak, "resident_bytes": resident}}))
"""


def bench_memory(cfg: BenchConfig, space_dir: Path) -> dict[str, Any]:
    """Peak memory of bare CLIP encoding 32 images vs the S^3 pipeline classifying them against the saved
    space ``space_dir`` (each in a fresh process; the space is loaded from disk, as a user would)."""
    out: dict[str, Any] = {}
    payload = json.dumps({k: v for k, v in cfg.__dict__.items() if k != "extra"})
    for mode in ("bare", "s3"):
        script = _MEMORY_SCRIPT.format(cfg=payload, mode=mode, space=str(space_dir))
        res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"memory measurement ({mode}) failed:\n{res.stderr[-2000:]}")
        measured = json.loads(res.stdout.strip().splitlines()[-1])
        out[f"{mode}_peak_bytes"], out[f"{mode}_resident_bytes"] = measured["peak_bytes"], measured["resident_bytes"]
    out["ratio"] = out["s3_peak_bytes"] / out["bare_peak_bytes"]
    out["resident_ratio"] = out["s3_resident_bytes"] / out["bare_resident_bytes"]
    return out


# ---------------------------------------------------------------------------------------------- reports
def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [
        f"# s3 bench: {env['model']} on {env['device_name']}",
        "",
        f"{'Random weights (timing only; no accuracy is measured). ' if env['random_weights'] else ''}"
        f"{env['num_images']} real images, {env['concepts']} concepts per class, medians of {env['repeats']} runs; "
        "`x` = median over runs of the throughput ratio to bare CLIP with decoding and preprocessing (b), the two "
        "run alternately in the same process.",
        "",
    ]
    if results["inference"]:
        lines += [
            "## Inference (images/s)",
            "",
            "| dtype | batch | classes | (a) bare CLIP | (b) + decode | " + " | ".join(METRICS) + " | transformers |",
            "| --- | --- | --- | --- | --- | " + " | ".join("---" for _ in METRICS) + " | --- |",
        ]
        for r in results["inference"]:
            cells = [f"{r[f's3_{m}_img_s']:.1f} ({r[f's3_{m}_ratio']:.2f}x)" for m in METRICS]
            hf = "n/a (not a transformers model)"
            if r.get("transformers_img_s"):
                speedup = r["s3_local_center_img_s"] / r["transformers_img_s"]
                hf = f"{r['transformers_img_s']:.2f} (S^3 {speedup:.0f}x faster)"
            lines.append(
                f"| {r['dtype']} | {r['batch_size']} | {r['classes']} | {r['bare_img_s']:.1f} | "
                f"{r['decode_img_s']:.1f} | " + " | ".join(cells) + f" | {hf} |"
            )
        lines += [
            "",
            "## S^3's own work per batch (scoring + postprocessing, timed alone; share of a batch of (b))",
            "",
            "| dtype | batch | classes | " + " | ".join(METRICS) + " |",
            "| --- | --- | --- | " + " | ".join("---" for _ in METRICS) + " |",
        ]
        for r in results["inference"]:
            cells = [f"{r[f's3_{m}_own_ms']:.1f} ms ({r[f's3_{m}_own_share']:.2%})" for m in METRICS]
            lines.append(f"| {r['dtype']} | {r['batch_size']} | {r['classes']} | " + " | ".join(cells) + " |")
    if results.get("build"):
        lines += [
            "",
            "## Building (one template)",
            "",
            "| classes | concepts | prompts | text s | geometry s | geometry share |",
        ]
        lines.append("| --- | --- | --- | --- | --- | --- |")
        for r in results["build"]:
            lines.append(
                f"| {r['classes']} | {r['concepts']} | {r['prompts']} | {r['text_s']:.1f} | {r['geometry_s']:.2f} | "
                f"{r['geometry_share']:.1%} |"
            )
    if results.get("artifact"):
        a = results["artifact"]
        lines += ["", f"Artifact size at {a['classes']} classes x {a['concepts']} concepts: {a['bytes'] / 1e6:.1f} MB."]
    if results.get("fewshot"):
        f = results["fewshot"]
        lines += [
            "",
            f"## Few-shot (SSP) at {f['classes']} classes",
            "",
            f"Support encoding (global + {f['patches']} local features per image): {f['support_img_s']:.1f} images/s.",
            "",
            "| shots | support images | fit s (tuning included) |",
            "| --- | --- | --- |",
            *[f"| {r['shots']} | {r['support_images']} | {r['fit_s']:.1f} |" for r in f["fit"]],
            "",
            "| batch | shots | S^3 + SSP images/s | x of (b) | x of S^3 alone |",
            "| --- | --- | --- | --- | --- |",
            *[
                f"| {r['batch_size']} | {r['shots']} | {r['ssp_img_s']:.1f} | {r['ssp_over_b']:.2f} | "
                f"{r['ssp_over_s3']:.2f} |"
                for r in f["inference"]
            ],
        ]
    if results.get("images"):
        rows = results["images"]["rows"]
        lines += [
            "",
            "## The image path (images/s; exact = every pixel decoded, fast = reduced-size JPEG decoding)",
            "",
            f"Workers: {rows[0]['workers']} (image worker threads; see s3_hf.io.parallel). Ratios are medians over "
            "alternating runs.",
            "",
            "| device | set | decode | decode + preprocess | bare encoder | bare, workers | S^3 end to end (10 labels) "
            "| S^3, workers | x of bare | x of bare with workers | eval loader | eval, workers "
            "| transformers pipeline | S^3 x of transformers |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *[
                f"| {r['device']} | {r['set']} | {r['decode']} | {r['decode_img_s']:.1f} | {r['bare_img_s']:.1f} | "
                f"{r['bare_workers_img_s']:.1f} | {r['s3_img_s']:.1f} | {r['s3_workers_img_s']:.1f} | "
                f"{r['s3_workers_over_bare']:.2f} | {r['s3_workers_over_bare_workers']:.2f} | {r['eval_img_s']:.1f} | "
                f"{r['eval_workers_img_s']:.1f} | "
                + (
                    f"{r['transformers_img_s']:.2f} | {r['s3_over_transformers']:.2f} |"
                    if "transformers_img_s" in r
                    else "– | – |"
                )
                for r in rows
            ],
        ]
        agree = results["images"].get("decode_agreement")
        if agree:
            lines += [
                "",
                f"S^3 scores, exact vs fast decoding of the {agree['images']} 12 MP photos (10 labels): top-1 "
                f"agreement {agree['top1_agreement']:.1%}, mean |Δp| {agree['mean_abs_prob_diff']:.4f}, largest "
                f"{agree['max_abs_prob_diff']:.4f}"
                + (" (random weights: not meaningful; run with trained weights)." if agree["random_weights"] else "."),
            ]
        backends = results["images"].get("backends")
        if backends:
            lines += [
                "",
                f"Preprocessing of fast-decoded 12 MP photos: PIL backend {backends['pil_preprocess_img_s']:.0f} "
                f"img/s, torchvision backend {backends['torchvision_preprocess_img_s']:.0f} img/s.",
            ]
    if results.get("segmentation"):
        g = results["segmentation"]
        lines += [
            "",
            f"## Segmentation: dense inference at {g['classes']} classes x {g['concepts']} concepts "
            f"({g['images']} images)",
            "",
            "| short side | variant | end to end img/s | dense forward img/s | end to end / dense forward "
            "| plain forward img/s | S^3 scoring ms/img | scoring share of the dense forward |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *[
                f"| {r['short_side']} | {r['variant']} | {r['img_s']:.2f} | {r['dense_img_s']:.2f} | "
                f"{r.get('dense_ratio', r['img_s'] / r['dense_img_s']):.2f} | "
                f"{r['plain_img_s']:.2f} | {r['scoring_ms']:.1f} | {r['scoring_share']:.1%} |"
                for r in g["rows"]
            ],
        ]
        if g.get("memory"):
            lines += [
                "",
                f"Peak memory of one segmentation in a fresh process: {g['memory']['peak_bytes'] / 2**20:,.0f} MiB.",
            ]
    if results.get("memory"):
        m = results["memory"]
        lines += [
            "",
            f"Peak memory classifying 32 images: bare CLIP {m['bare_peak_bytes'] / 2**20:.0f} MiB, S^3 pipeline at "
            f"{results['artifact']['classes']} classes {m['s3_peak_bytes'] / 2**20:.0f} MiB ({m['ratio']:.3f}x); "
            f"resident afterwards {m['bare_resident_bytes'] / 2**20:.0f} vs {m['s3_resident_bytes'] / 2**20:.0f} MiB "
            f"({m['resident_ratio']:.3f}x).",
        ]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    rows = [r for r in results["inference"] if r["batch_size"] == max(x["batch_size"] for x in results["inference"])]
    rows = [r for r in rows if r["dtype"] == rows[0]["dtype"]]
    cs = [r["classes"] for r in rows]
    for m in METRICS:
        axes[0].plot(cs, [r[f"s3_{m}_img_s"] for r in rows], marker="o", label=m)
    axes[0].plot(cs, [r["decode_img_s"] for r in rows], "k--", label="CLIP (b)")
    if all(r.get("transformers_img_s") for r in rows):
        axes[0].plot(cs, [r["transformers_img_s"] for r in rows], "k:", label="transformers pipeline")
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="classes",
        ylabel="images/s",
        title=f"Inference, batch {rows[0]['batch_size']}",
    )
    axes[0].legend(fontsize=7)
    for c in sorted({r["classes"] for r in results.get("build", [])}):
        sub = [r for r in results["build"] if r["classes"] == c]
        axes[1].plot(
            [r["concepts"] for r in sub], [r["text_s"] + r["geometry_s"] for r in sub], marker="o", label=f"C={c} total"
        )
        axes[1].plot([r["concepts"] for r in sub], [r["geometry_s"] for r in sub], ls="--", label=f"C={c} geometry")
    axes[1].set(yscale="log", xlabel="concepts per class (M)", ylabel="seconds", title="Building a space")
    if results.get("build"):
        axes[1].legend(fontsize=7)
    else:
        axes[1].set_axis_off()
    fig.tight_layout()
    save_figure(path, fig, dpi=120)
    plt.close(fig)
    return path


def run(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every part of the benchmark and write ``bench.json``, ``bench.md`` and ``bench.png``."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device_name = (
        torch.cuda.get_device_name(cfg.device) if cfg.device.startswith("cuda") else platform.processor() or "CPU"
    )
    import transformers

    results: dict[str, Any] = {
        "environment": {
            "model": cfg.model,
            "random_weights": not models.has_weights(cfg.model),
            "device": cfg.device,
            "device_name": f"{device_name} ({os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads)",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "num_images": cfg.num_images,
            "concepts": cfg.concepts,
            "repeats": cfg.repeats,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        "inference": [],
    }
    if "inference" in cfg.parts:
        for dtype_name in cfg.dtypes:
            results["inference"] += bench_inference(cfg, dtype_name, log)
    results["build"] = bench_build(cfg, log) if "build" in cfg.parts and cfg.build_classes else []
    if "fewshot" in cfg.parts:
        results["fewshot"] = bench_fewshot(cfg, log)
    if "segmentation" in cfg.parts:
        results["segmentation"] = bench_segmentation(cfg, log)
    if "images" in cfg.parts:
        results["images"] = bench_images(cfg, log)
    with tempfile.TemporaryDirectory() as tmp:
        space_dir = Path(tmp) / "space"
        if "artifact" in cfg.parts or cfg.memory:
            results["artifact"] = save_space(cfg, max(cfg.classes), space_dir)
            log(f"artifact: {results['artifact']['bytes'] / 1e6:.1f} MB")
        if cfg.memory:
            results["memory"] = bench_memory(cfg, space_dir)
            log(f"memory: {results['memory']['ratio']:.3f}x of bare CLIP")
    write_json(out / "bench.json", results)
    (out / "bench.md").write_text(markdown(results))
    if results["inference"]:
        plot(results, out / "bench.png")
    log(f"Wrote {out / 'bench.json'}, {out / 'bench.md'}, {out / 'bench.png'}")
    return results


__all__ = [
    "IMAGES_ENV",
    "MODEL_ENV",
    "TEMPLATE",
    "BenchConfig",
    "bench_build",
    "bench_fewshot",
    "bench_images",
    "bench_inference",
    "bench_memory",
    "bench_segmentation",
    "class_names",
    "image_paths",
    "load_engine",
    "locations",
    "markdown",
    "median_time",
    "plot",
    "run",
    "s3_classifier",
    "s3_own_work",
    "save_space",
    "synthetic_synonyms",
]
