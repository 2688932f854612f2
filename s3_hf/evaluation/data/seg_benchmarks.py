"""Segmentation benchmarks as local folders: images (``images/`` or ``JPEGImages/``), index-PNG masks paired by file
name (``masks/``, ``annotations/`` or ``SegmentationClass/``; 255 = ignore) and a class-name file (``classes.txt``, or
``--class-names``), one class a line, several comma-separated names allowed (the first is the label, as in SCLIP's
and NACLIP's ``cls_*.txt``). Given as ``NAME=FOLDER`` with a name of :data:`SEG_REGISTRY` (which fixes the benchmark's
conventions, e.g. ADE20K's 0 = "other") or as a bare folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3_hf.errors import EvalError
from s3_hf.io.files import read_user_text
from s3_hf.io.images import is_image_file
from s3_hf.segmentation.names import read_class_file, read_class_names
from s3_hf.text.distinct import distinct_labels

logger = logging.getLogger("s3_hf.evaluation")
IMAGE_DIRS = ("images", "JPEGImages", "img")
MASK_DIRS = ("masks", "annotations", "SegmentationClass", "labels")


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
    """Repeated labels (ADE20K names two classes "screen") get their index appended
    (:func:`~s3_hf.text.distinct.distinct_labels`); the bare name stays one of the class's names."""
    out = distinct_labels(labels)
    out_names = {}
    for i, (lab, new) in enumerate(zip(labels, out, strict=True)):
        if new == lab:
            out_names[lab] = names.get(lab, [])
            continue
        logger.warning("Repeated class name %r: class %d is labelled %r.", lab, i, new)
        out_names[new] = [lab, *names.get(lab, [])]
    return out, out_names


def root_of(data: SegData) -> str:
    """The resolved folder a benchmark was loaded from."""
    return str(data.images[0].parent.parent.resolve())


__all__ = ["IMAGE_DIRS", "MASK_DIRS", "SEG_REGISTRY", "SegBenchmark", "SegData", "load", "root_of"]
