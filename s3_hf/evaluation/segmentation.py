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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from s3_hf.errors import EvalError, ProtocolBenchmarkError
from s3_hf.evaluation.registry import short_paths
from s3_hf.evaluation.report import claim_outputs
from s3_hf.io.files import read_user_text, write_json, write_text
from s3_hf.io.images import is_image_file, load_image, original_size
from s3_hf.segmentation import protocols
from s3_hf.segmentation.core import (
    BACKGROUND,
    NameQueries,
    label_map,
    names_label_map,
    names_rule,
    pamr_refiner,
    pixel_logits_many,
    read_class_file,
    read_class_names,
    resolve_background,
    working_pixels,
)
from s3_hf.segmentation.protocols import DEFAULT_PROTOCOL, ProtocolValues
from s3_hf.text.templates import resolve_templates

logger = logging.getLogger("s3_hf.evaluation")
IMAGE_DIRS = ("images", "JPEGImages", "img")
MASK_DIRS = ("masks", "annotations", "SegmentationClass", "labels")
#: The files a segmentation run writes into its ``--out``.
RUN_FILES = ("segmentation.json", "segmentation.md")


@dataclass(frozen=True)
class SegBenchmark:
    """A segmentation benchmark's conventions: ``reduce_zero_label`` (mask 0 is "other", not scored, and classes are
    1-based: ADE20K; VOC and Context without background), its class count, and a note."""

    name: str
    num_classes: int
    reduce_zero_label: bool = False
    note: str = ""


SEG_REGISTRY: dict[str, SegBenchmark] = {
    "voc21": SegBenchmark("voc21", 21, note="PASCAL VOC 2012 val with background (index 0)"),
    "voc20": SegBenchmark("voc20", 20, True, "PASCAL VOC 2012 val, background not scored"),
    "context60": SegBenchmark("context60", 60, note="PASCAL Context with background"),
    "context59": SegBenchmark("context59", 59, True, "PASCAL Context, background not scored"),
    "coco-stuff": SegBenchmark("coco-stuff", 171, note="COCO-Stuff 164k val, 171 classes"),
    "coco-object": SegBenchmark("coco-object", 81, note="COCO-Object: background + 80 things"),
    "cityscapes": SegBenchmark("cityscapes", 19, note="Cityscapes val, 19 train ids (255 ignore)"),
    "ade20k": SegBenchmark("ade20k", 150, True, "ADE20K val (ADEChallengeData2016: 0 = other)"),
}


@dataclass
class SegData:
    """A loaded benchmark: image and mask paths, the class labels and their other names (as synonym spaces clean
    them), and ``class_names``: every name of every line, as the file gives them (the ``names`` method's queries)."""

    name: str
    images: list[Path]
    masks: list[Path]
    labels: list[str]
    names: dict[str, list[str]]
    reduce_zero_label: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    class_names: list[list[str]] = field(default_factory=list)
    benchmark: str | None = None  # the SEG_REGISTRY name it was given with (protocols have values per benchmark)


def _first_dir(root: Path, names: tuple[str, ...], what: str) -> Path:
    for n in names:
        if (root / n).is_dir():
            return root / n
    raise EvalError(f"{root} has no {what} folder (one of {', '.join(names)}).")


def load(spec: str, class_names: str | None = None) -> SegData:
    """A benchmark from ``NAME=FOLDER`` or ``FOLDER`` (see the module docstring); a typed error saying what is
    missing otherwise."""
    name, _, folder = spec.rpartition("=")
    bench = SEG_REGISTRY.get(name) if name else None
    if name and bench is None:
        raise EvalError(f"Unknown segmentation benchmark {name!r}; use one of {', '.join(SEG_REGISTRY)} or a folder.")
    root = Path(folder)
    if not root.is_dir():
        raise EvalError(f"Segmentation benchmark folder {root} not found. Pass NAME=FOLDER or a folder.")
    image_dir, mask_dir = _first_dir(root, IMAGE_DIRS, "image"), _first_dir(root, MASK_DIRS, "mask")
    names_file = Path(class_names) if class_names else root / "classes.txt"
    if not names_file.is_file():
        raise EvalError(f"No class-name file: {names_file} is missing. Add classes.txt or pass --class-names FILE.")
    text = read_user_text(names_file, EvalError, "Class-name file")
    labels, names = _distinct(*read_class_names(text))
    if bench is not None and len(labels) != bench.num_classes:
        raise EvalError(f"{name} has {bench.num_classes} classes but {names_file} lists {len(labels)}.")
    masks = {p.stem: p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() == ".png"}
    images = [p for p in sorted(image_dir.iterdir()) if is_image_file(p) and p.stem in masks]
    if not images:
        raise EvalError(f"No image in {image_dir} has a mask of the same name in {mask_dir}.")
    return SegData(
        name or root.name,
        images,
        [masks[p.stem] for p in images],
        labels,
        names,
        bench.reduce_zero_label if bench else False,
        class_names=read_class_file(text),
        benchmark=name or None,
    )


def _distinct(labels: list[str], names: dict[str, list[str]]) -> tuple[list[str], dict[str, list[str]]]:
    """Repeated labels (ADE20K names two classes "screen") get their index appended; the bare name stays one of
    the class's names."""
    seen: set[str] = set()
    out, out_names = [], {}
    for i, lab in enumerate(labels):
        others = names.get(lab, [])
        if lab.casefold() in seen:
            renamed = f"{lab} (class {i})"
            logger.warning("Repeated class name %r: class %d is labelled %r.", lab, i, renamed)
            out.append(renamed)
            out_names[renamed] = [lab, *others]
        else:
            out.append(lab)
            out_names[lab] = others
        seen.add(lab.casefold())
    return out, out_names


def _miou_module() -> Any:
    """The project's ``mean_iou`` evaluate module, loaded by path (it works offline)."""
    from s3_hf.evaluation.runner import load_metric

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


def protocol_values(cfg: Any, data: SegData) -> ProtocolValues:
    """The segmentation protocol's values for ``data`` (:func:`s3_hf.segmentation.protocols.resolve`): ``cfg.protocol``
    (default ``"s3"``) for the benchmark's registry name, with ``cfg.protocol_values`` as overrides; under ``"s3"`` the
    config's own ``variant``, ``short_side``, ``window``, ``stride``, ``background_threshold`` and ``fast_decode`` are
    its values."""
    protocol = getattr(cfg, "protocol", DEFAULT_PROTOCOL)
    overrides = dict(getattr(cfg, "protocol_values", None) or {})
    if protocol == DEFAULT_PROTOCOL:
        own = {
            "variant": cfg.variant or "none",
            "short_side": cfg.short_side,
            "window": cfg.window,
            "stride": cfg.stride,
            "prob_threshold": cfg.background_threshold,
            "fast_decode": cfg.fast_decode,
            "background_index": getattr(cfg, "background_index", None),
            "area_threshold": getattr(cfg, "area_threshold", None),
        }
        overrides = {**own, **overrides}
    try:
        return protocols.resolve(protocol, data.benchmark, **overrides)
    except ProtocolBenchmarkError as e:
        raise ProtocolBenchmarkError(f"{data.name}: {e}") from None


def load_all(cfg: Any) -> list[SegData]:
    """Every benchmark of ``cfg``, loaded and checked before any image is encoded: a background or area threshold
    needs a background class in each (``cfg.background_index``, else a class named ``background``); benchmarks
    sharing a name are named by their folders' last path components."""
    datas = [load(spec, cfg.class_names) for spec in cfg.benchmarks]
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
    repeated = [d for d in datas if names.count(d.name) > 1]
    if repeated:
        roots = [str(d.images[0].parent.parent.resolve()) for d in repeated]
        if len(set(roots)) < len(roots):
            raise EvalError("A segmentation benchmark is given twice; pass each once.")
        for data, tail in zip(repeated, short_paths(roots), strict=True):
            data.name = tail
    return datas


def run_segmentation(cfg: Any, engine: Any, accelerator: Any, datas: list[SegData] | None = None) -> dict[str, Any]:
    """Evaluate every segmentation benchmark of ``cfg`` (``datas``: as :func:`load_all` loaded them); per benchmark
    and method mIoU, pixel accuracy and per-class IoU (written by the caller)."""
    miou = _miou_module()
    results: dict[str, Any] = {}
    for data in load_all(cfg) if datas is None else datas:
        values = protocol_values(cfg, data)
        options = values.segment_options()  # this benchmark's: the protocol's values with the overrides
        templates = resolve_templates(values.templates if cfg.templates == "benchmark" else cfg.templates)
        by_rule = uses_names_rule(values)
        requests = method_requests(engine, data, list(cfg.metrics), templates, by_rule)
        resolved = {m: engine.resolve(r) for m, r in requests.items()}  # texts encoded once, before the images
        queries = {m: method_queries(data, m, by_rule) for m in requests}
        rule = names_rule(engine, data.labels, options)
        background = resolve_background(data.labels, options.background_index)
        cosine = [queries[m] is not None for m in resolved]  # the names rule applies its own scale
        k = len(data.labels)
        confusion = {m: np.zeros((k, k), dtype=np.int64) for m in requests}
        mine = list(range(len(data.images)))[accelerator.process_index :: accelerator.num_processes]
        start = time.perf_counter()
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
        seconds = time.perf_counter() - start
        summed = {}
        for method, conf in confusion.items():
            total = accelerator.reduce(torch.from_numpy(conf).to(accelerator.device), reduction="sum")
            summed[method] = total.cpu().numpy()
        methods = {}
        for method, conf in summed.items():
            scores = miou.scores(conf)
            scores["per_class_iou"] = dict(zip(data.labels, scores["per_class_iou"], strict=True))
            methods[method] = scores
        results[data.name] = {
            "name": data.name,
            "images": len(data.images),
            "classes": k,
            "reduce_zero_label": data.reduce_zero_label,
            "methods": methods,
            "seconds_per_image": seconds / max(len(mine), 1),
            "protocol": values.to_dict(),
        }
        if accelerator.is_main_process:
            best = max(methods, key=lambda m: methods[m]["mean_iou"] if np.isfinite(methods[m]["mean_iou"]) else -1)
            logger.info(
                "%s: label mIoU %.4f, best %s %.4f",
                data.name,
                methods["label"]["mean_iou"],
                best,
                methods[best]["mean_iou"],
            )
    return results


def markdown(summary: dict[str, Any]) -> str:
    """The results table: mIoU (%) per benchmark and method, and pixel accuracy."""
    benches = summary["benchmarks"]
    methods = list(dict.fromkeys(m for r in benches.values() for m in r["methods"]))
    lines = [
        f"# s3 eval --task segmentation: {summary['model']}",
        "",
        ("Random weights: timings and format only, no mIoU is meaningful. " if summary["random_weights"] else "")
        + (
            f"Protocol {summary['options']['protocol']}: each benchmark's values (and their sources) are recorded "
            "under `protocol` in segmentation.json."
            if summary["options"].get("protocol", "s3") != "s3"
            else f"Dense variant {summary['options']['variant']}, short side {summary['options']['short_side']}, "
            f"window {summary['options']['window']}, stride {summary['options']['stride']}."
        ),
        "",
        "| benchmark | images | " + " | ".join(f"{m} mIoU" for m in methods) + " | pixel acc. (label) |",
        "| --- | --- | " + " | ".join("---" for _ in methods) + " | --- |",
    ]
    for name, r in benches.items():
        cells = [f"{100 * r['methods'][m]['mean_iou']:.2f}" if m in r["methods"] else "–" for m in methods]
        lines.append(
            f"| {name} | {r['images']} | "
            + " | ".join(cells)
            + f" | {100 * r['methods']['label']['pixel_accuracy']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def write(summary: dict[str, Any], out: Path) -> None:
    claim_outputs(out, RUN_FILES)
    write_json(out / "segmentation.json", summary)
    write_text(out / "segmentation.md", markdown(summary))


__all__ = [
    "RUN_FILES",
    "SEG_REGISTRY",
    "SegBenchmark",
    "SegData",
    "label_queries",
    "load",
    "load_all",
    "markdown",
    "method_queries",
    "method_requests",
    "names_queries",
    "protocol_values",
    "run_segmentation",
    "uses_names_rule",
    "write",
]
