"""`s3 eval --task segmentation`: open-vocabulary segmentation benchmarks, every method on the same dense features,
sharded with accelerate.

A benchmark is a local folder: images (``images/`` or ``JPEGImages/``), index-PNG masks paired by file name
(``masks/``, ``annotations/`` or ``SegmentationClass/``; 255 = ignore) and a class-name file (``classes.txt``, or
``--class-names``), one class a line, several comma-separated names allowed (the first is the label, as in
SCLIP's and NACLIP's ``cls_*.txt``). Pass it as ``NAME=FOLDER`` with a name of :data:`SEG_REGISTRY` (which fixes the
benchmark's conventions, e.g. ADE20K's 0 = "other") or as a bare folder. No public Hub copy of these benchmarks in
this format is registered: download them and pass their folders.

Methods, per benchmark: ``label`` (the first name of each class, metric ``label``: the base segmenter), ``names``
(every name of every line, untruncated and uncleaned, each a query: the multi-name rule of SCLIP, NACLIP and
ClearCLIP, :func:`~s3_hf.segmentation.core.names_label_map`) and ``s3/<metric>`` (S^3 over the names as a synonym space,
cleaned as spaces are: at most 10 names a class, a name equal to another class's label dropped). Under a reference
protocol every method is labelled by that rule at the protocol's logit scale, with its area threshold and PAMR
(:func:`uses_names_rule`): ``label`` over the first names, ``s3/<metric>`` over its per-class scores. Each image's
dense features are computed once per window and scored by every method; per-image confusion matrices are summed
across processes, so 2 processes give exactly the numbers of 1. Dense features are not cached (a 336 px image at
ViT-B/16 is about 900 features per window); built spaces are (text is encoded once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from s3_hf.errors import EvalError, ProtocolBenchmarkError
from s3_hf.evaluation.config import EvalConfig
from s3_hf.evaluation.data.registry import distinct_names
from s3_hf.evaluation.data.seg_benchmarks import SEG_REGISTRY, SegBenchmark, SegData, load, root_of
from s3_hf.evaluation.report import check_outputs, claim_outputs
from s3_hf.evaluation.results import SegBenchmarkResult, SegRunResult
from s3_hf.io.files import write_json, write_text
from s3_hf.io.images import load_image, original_size
from s3_hf.segmentation import protocols
from s3_hf.segmentation.label_maps import BACKGROUND, label_map, resolve_background
from s3_hf.segmentation.logits import pixel_logits_many, working_pixels
from s3_hf.segmentation.names import NameQueries, names_label_map, names_rule, pamr_refiner
from s3_hf.segmentation.protocols import DEFAULT_PROTOCOL, ProtocolValues
from s3_hf.text.templates import resolve_templates

logger = logging.getLogger("s3_hf.evaluation")
#: The files a segmentation run writes into its ``--out``.
RUN_FILES = ("segmentation.json", "segmentation.md")


def _miou_module() -> Any:
    """The project's ``mean_iou`` evaluate module, loaded by path (it works offline)."""
    from s3_hf.evaluation.classification import load_metric

    return load_metric("mean_iou")


def names_queries(data: SegData) -> NameQueries:
    """The ``names`` method's queries: every name of every line of the class file."""
    return NameQueries.from_classes(data.class_names or [[lab, *data.names.get(lab, [])] for lab in data.labels])


def label_queries(data: SegData) -> NameQueries:
    """The ``label`` method's queries under the names rule: the first name of each line (a name two lines share,
    as ADE20K's two ``screen`` classes, encoded once), so ``label`` is the ``names`` method with one name a class."""
    return NameQueries.from_classes([line[:1] for line in data.class_names] or [[lab] for lab in data.labels])


def method_queries(data: SegData, method: str, by_rule: bool) -> NameQueries | None:
    """The queries :func:`~s3_hf.segmentation.core.names_label_map` maps a method's maps back to classes with:
    :func:`names_queries` for ``names``; with ``by_rule`` (:func:`uses_names_rule`) :func:`label_queries` for
    ``label`` and one row a class for ``s3/<metric>`` (its ``s_c(v)`` maps); ``None``: :func:`label_map`."""
    if method == "names":
        return names_queries(data)
    if not by_rule:
        return None
    return label_queries(data) if method == "label" else NameQueries.one_per_class(data.labels)


def uses_names_rule(values: ProtocolValues) -> bool:
    """Whether every method, not only ``names``, is labelled by the names rule over its similarity maps (the
    protocol's logit scale, area threshold and PAMR): under a reference protocol, and under ``s3`` whenever a logit
    scale, an area threshold or PAMR is given, so that a threshold means the same for every method. Otherwise the
    ``label`` and S^3 methods take :func:`~s3_hf.segmentation.core.label_map` at the model's own scale (the same rule:
    a softmax over classes does not see the logit bias)."""
    return (
        values.protocol != DEFAULT_PROTOCOL
        or values.logit_scale is not None
        or values.area_threshold is not None
        or bool(values.pamr_steps)
    )


def method_requests(
    engine: Any, data: SegData, metrics: list[str], templates: Any, by_rule: bool = False
) -> dict[str, Any]:
    """method -> request: ``label``, ``names`` (each distinct name of the class file a class of its own, metric
    ``label``: :func:`names_queries` maps them back) and ``s3/<metric>``; ``by_rule``: ``label`` over
    :func:`label_queries`' names (:func:`uses_names_rule`)."""
    names = {lab: others for lab, others in data.names.items() if others}
    labels = label_queries(data).names if by_rule else data.labels
    out = {
        "label": engine.request(labels, templates=templates, metric="label"),
        "names": engine.request(names_queries(data).names, templates=templates, metric="label"),
    }
    for metric in metrics:
        out[f"s3/{metric}"] = engine.request(data.labels, synonyms=names or None, templates=templates, metric=metric)
    return out


def protocol_values(cfg: EvalConfig, data: SegData) -> ProtocolValues:
    """The segmentation protocol's values for ``data`` (:func:`s3_hf.segmentation.protocols.resolve`): the
    configuration's protocol for the benchmark's registry name, with its ``protocol_values`` as overrides; under
    ``"s3"`` the configuration's own segment options (variant, short side, window, stride, thresholds, decoding)
    are its values."""
    seg = cfg.segmentation
    overrides = dict(seg.protocol_values)
    if seg.protocol == DEFAULT_PROTOCOL:
        o = seg.options
        own = {
            "variant": o.variant or "none",
            "short_side": o.short_side,
            "window": o.window,
            "stride": o.stride,
            "prob_threshold": o.background_threshold,
            "fast_decode": cfg.run.fast_decode,
            "background_index": o.background_index,
            "area_threshold": o.area_threshold,
        }
        overrides = {**own, **overrides}
    try:
        return protocols.resolve(seg.protocol, data.benchmark, **overrides)
    except ProtocolBenchmarkError as e:
        raise ProtocolBenchmarkError(f"{data.name}: {e}") from None


def load_all(cfg: EvalConfig) -> list[SegData]:
    """Every benchmark of ``cfg``, loaded and checked before any image is encoded: a background or area threshold
    needs a background class in each (``cfg.background_index``, else a class named ``background``); benchmarks
    sharing a name are named by their folders' last path components."""
    datas = [load(spec, cfg.segmentation.class_names) for spec in cfg.run.benchmarks]
    for data in datas:  # an unknown protocol, or one without values for a benchmark, stops the run here
        values = protocol_values(cfg, data)
        # the config's own thresholds are among the values (protocol s3), a preset's come with it
        thresholded = values.prob_threshold is not None or values.area_threshold is not None
        if thresholded and resolve_background(data.labels, values.background_index) is None:
            raise EvalError(
                f"{data.name}: protocol {values.protocol!r} thresholds to a background class, and its class names "
                f"({', '.join(data.labels[:5])}...) have none named '{BACKGROUND}'. Give the background's index "
                "(0 in the references' VOC21, Context60 and COCO-Object files), add a class named "
                f"'{BACKGROUND}', or drop the threshold."
            )
    names = [d.name for d in datas]
    roots = [root_of(d) for d in datas if names.count(d.name) > 1]
    if len(set(roots)) < len(roots):
        raise EvalError("A segmentation benchmark is given twice; pass each once.")
    for data, name in zip(datas, distinct_names(names, [root_of(d) for d in datas]), strict=True):
        data.name = name
    return datas


def _confusions(engine: Any, accelerator: Any, data: SegData, values: ProtocolValues, cfg: EvalConfig) -> tuple:
    """Per method the confusion matrix of this process's share of ``data``'s images; and their count."""
    miou = _miou_module()
    options = values.segment_options()  # this benchmark's: the protocol's values with the overrides
    templates = resolve_templates(values.templates if cfg.run.templates == "benchmark" else cfg.run.templates)
    by_rule = uses_names_rule(values)
    requests = method_requests(engine, data, list(cfg.run.metrics), templates, by_rule)
    resolved = {m: engine.resolve(r) for m, r in requests.items()}  # texts encoded once, before the images
    queries = {m: method_queries(data, m, by_rule) for m in requests}
    rule = names_rule(engine, data.labels, options)
    background = resolve_background(data.labels, options.background_index)
    cosine = [queries[m] is not None for m in resolved]  # the names rule applies its own scale
    k = len(data.labels)
    confusion = {m: np.zeros((k, k), dtype=np.int64) for m in requests}
    mine = list(range(len(data.images)))[accelerator.process_index :: accelerator.num_processes]
    for i in mine:
        image = load_image(data.images[i], min_side=options.short_side if options.fast_decode else None)
        truth = np.asarray(Image.open(data.masks[i]))
        size = original_size(image)
        if truth.shape != size[::-1]:
            raise EvalError(f"{data.masks[i]} is {truth.shape[::-1]}, its image {size}: they must match.")
        pixels = working_pixels(engine, image, options)
        logits = pixel_logits_many(engine, pixels, list(resolved.values()), options, cosine)
        # PAMR, the names rule's refinement (every method's under uses_names_rule): one per image, its
        # affinities serve every method
        refine = pamr_refiner(pixels, size, values.pamr_steps, values.pamr_dilations)
        for method, lg in zip(resolved, logits, strict=True):
            if queries[method] is not None:
                pred = names_label_map(lg, queries[method], rule, size, refine).numpy()
            else:
                pred = label_map(lg, data.labels, options.background_threshold, size, background).numpy()
            confusion[method] += miou.confusion_matrix(pred, truth, k, 255, data.reduce_zero_label)
    return confusion, len(mine)


def evaluate_benchmark(cfg: EvalConfig, engine: Any, accelerator: Any, data: SegData) -> SegBenchmarkResult:
    """One benchmark: per method mIoU, pixel accuracy and per-class IoU; per-image confusion matrices are summed
    across processes, so 2 processes give exactly the numbers of 1."""
    miou = _miou_module()
    values = protocol_values(cfg, data)
    start = time.perf_counter()
    confusion, count = _confusions(engine, accelerator, data, values, cfg)
    seconds = time.perf_counter() - start
    methods = {}
    for method, conf in confusion.items():
        total = accelerator.reduce(torch.from_numpy(conf).to(accelerator.device), reduction="sum")
        scores = miou.scores(total.cpu().numpy())
        scores["per_class_iou"] = dict(zip(data.labels, scores["per_class_iou"], strict=True))
        methods[method] = scores
    if accelerator.is_main_process:
        best = max(methods, key=lambda m: methods[m]["mean_iou"] if np.isfinite(methods[m]["mean_iou"]) else -1)
        logger.info(
            "%s: label mIoU %.4f, best %s %.4f",
            data.name,
            methods["label"]["mean_iou"],
            best,
            methods[best]["mean_iou"],
        )
    k = len(data.labels)
    per_image = seconds / max(count, 1)
    return SegBenchmarkResult(
        data.name, len(data.images), k, data.reduce_zero_label, methods, per_image, values.to_dict()
    )


def run(cfg: EvalConfig, make_accelerator: Callable[[], Any]) -> SegRunResult:
    """Every segmentation benchmark of ``cfg``, loaded and checked (:func:`load_all`) before the model loads,
    evaluated and written (``segmentation.json``, ``segmentation.md``) into its ``out``."""
    import s3_hf
    from s3_hf.engine.core import S3Engine

    datas = load_all(cfg)
    out = Path(cfg.run.out)
    check_outputs(out, RUN_FILES, cfg.run.overwrite)
    accelerator = make_accelerator()
    engine = S3Engine.from_pretrained(cfg.run.model, device=str(accelerator.device), dtype=cfg.run.dtype)
    flat = cfg.to_dict()
    summary = SegRunResult(
        cfg.run.model,
        engine.encoder.revision,
        engine.encoder.random_weights,
        engine.family.family,
        {k: flat[k] for k in ("variant", "short_side", "window", "stride", "background_threshold", "protocol")}
        | {"protocol_values": dict(cfg.segmentation.protocol_values)},
        accelerator.num_processes,
        {"s3_hf": s3_hf.__version__, "torch": torch.__version__},
        {d.name: evaluate_benchmark(cfg, engine, accelerator, d) for d in datas},
    )
    if accelerator.is_main_process:
        write(summary, out)
    return summary


def markdown(summary: SegRunResult) -> str:
    """The results table: mIoU (%) per benchmark and method, and pixel accuracy."""
    benches = summary.benchmarks
    methods = list(dict.fromkeys(m for r in benches.values() for m in r.methods))
    o = summary.options
    lines = [
        f"# s3 eval --task segmentation: {summary.model}",
        "",
        ("Random weights: timings and format only, no mIoU is meaningful. " if summary.random_weights else "")
        + (
            f"Protocol {o['protocol']}: each benchmark's values (and their sources) are recorded "
            "under `protocol` in segmentation.json."
            if o.get("protocol", "s3") != "s3"
            else f"Dense variant {o['variant']}, short side {o['short_side']}, window {o['window']}, "
            f"stride {o['stride']}."
        ),
        "",
        "| benchmark | images | " + " | ".join(f"{m} mIoU" for m in methods) + " | pixel acc. (label) |",
        "| --- | --- | " + " | ".join("---" for _ in methods) + " | --- |",
    ]
    for name, r in benches.items():
        cells = [f"{100 * r.methods[m]['mean_iou']:.2f}" if m in r.methods else "–" for m in methods]
        label = r.methods["label"]["pixel_accuracy"]
        lines.append(f"| {name} | {r.images} | " + " | ".join(cells) + f" | {100 * label:.2f} |")
    return "\n".join(lines) + "\n"


def write(summary: SegRunResult, out: Path) -> None:
    claim_outputs(out, RUN_FILES)
    write_json(out / "segmentation.json", summary.to_dict())
    write_text(out / "segmentation.md", markdown(summary))


__all__ = [
    "RUN_FILES",
    "SEG_REGISTRY",
    "SegBenchmark",
    "SegData",
    "evaluate_benchmark",
    "label_queries",
    "load",
    "load_all",
    "markdown",
    "method_queries",
    "method_requests",
    "names_queries",
    "protocol_values",
    "run",
    "uses_names_rule",
    "write",
]
