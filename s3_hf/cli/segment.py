"""``s3 segment``: open-vocabulary segmentation of images into index maps and colour overlays with a legend."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from s3_hf.cli.arguments import Subparsers, exact_decode_arg, model_args, protocol_args, protocol_overrides, space_args
from s3_hf.cli.common import engine_for, images, space_kwargs, templates
from s3_hf.errors import BackgroundMissingError, CLIUsageError, InvalidLabelsError
from s3_hf.io.files import read_user_text
from s3_hf.options import DEFAULT_METRIC, METRIC_NAMES
from s3_hf.segmentation.protocols import BENCHMARKS, DEFAULT_PROTOCOL

SUMMARY_NAME = "segments.json"


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 segment`` to the ``s3`` command's sub-parsers."""
    g = subparsers.add_parser(
        "segment", help="open-vocabulary segmentation: index maps and colour overlays with a legend"
    )
    g.add_argument("images", nargs="+", help="image files, folders or URLs")
    space_args(g)
    g.add_argument("--class-names", help="a class-name file: one class a line, comma-separated names (cls_*.txt)")
    g.add_argument("--out", required=True, help="folder to write <image>.png, <image>_overlay.png, segments.json")
    g.add_argument("--metric", choices=METRIC_NAMES, help=f"default: the space's metric ({DEFAULT_METRIC})")
    protocol_args(g)
    g.add_argument("--benchmark", choices=BENCHMARKS, help="the benchmark whose values a reference --protocol takes")
    exact_decode_arg(g)
    g.add_argument("--overwrite", action="store_true", help="replace outputs already in --out")
    model_args(g)
    g.set_defaults(func=run)
    return g


def _check_output_names(images: list[str], stems: list[str]) -> None:
    """Refuse inputs whose output files would overwrite each other (``a.png``'s overlay is ``a_overlay.png``, which
    is also the index map of an input ``a_overlay.png``); names are compared case-insensitively, as some file
    systems do."""
    owner: dict[str, tuple[str, str]] = {SUMMARY_NAME: ("the run", "summary")}
    for path, stem in zip(images, stems, strict=True):
        for name, what in ((f"{stem}.png", "index map"), (f"{stem}_overlay.png", "overlay")):
            if name.casefold() in owner:
                other, other_what = owner[name.casefold()]
                raise CLIUsageError(
                    f"The {what} of {path} and the {other_what} of {other} would both be written to {name}: rename "
                    "one of the images or segment them separately."
                )
            owner[name.casefold()] = (str(path), what)


def _check_outputs(paths: list[str], out: Path, overwrite: bool) -> None:
    """Refuse output names that collide, and files already in ``out`` unless ``overwrite``."""
    stems = [Path(str(p)).stem for p in paths]
    _check_output_names(paths, stems)
    targets = [out / n for stem in stems for n in (f"{stem}.png", f"{stem}_overlay.png")] + [out / SUMMARY_NAME]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise CLIUsageError(
            f"{existing[0]} exists (and {len(existing) - 1} more of the files s3 segment writes): pass another --out, "
            "or --overwrite to replace them."
        )


def _require_background(labels: list[str], options: Any, where: str) -> None:
    """:func:`~s3_hf.segmentation.core.require_background` as a one-line usage error."""
    from s3_hf.segmentation.label_maps import require_background

    try:
        require_background(labels, options.background_threshold, options.background_index)
    except BackgroundMissingError as err:
        raise CLIUsageError(
            f"--background-threshold needs a background class, and there is no class named 'background' {where}: "
            "pass --background-index; add one or drop the threshold."
        ) from err


def _classes(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """The engine's space options and, under a reference protocol, the class names the references' rule queries
    (``None``: the spaces rule)."""
    from s3_hf.segmentation.names import NameQueries, read_class_file, read_class_names

    # a reference protocol runs the references' multi-name rule over the class names (every name a query)
    queries = None
    if args.class_names:
        if args.space or args.labels:
            raise CLIUsageError("Pass one of --class-names, --labels or --space.")
        text = read_user_text(args.class_names, InvalidLabelsError, "Class-name file")
        labels, names = read_class_names(text)
        kwargs: dict[str, Any] = {"candidate_labels": labels, "synonyms": names, "concept_format": "{concept}"}
        kwargs["templates"] = templates(args.templates)
        if args.protocol != DEFAULT_PROTOCOL:
            queries = NameQueries.from_classes(read_class_file(text))
    else:
        kwargs = space_kwargs(args)
        if args.protocol != DEFAULT_PROTOCOL and args.labels is not None and not args.synonyms:
            queries = NameQueries.from_classes([[label] for label in kwargs["candidate_labels"]])
    if args.protocol != DEFAULT_PROTOCOL and queries is None:
        raise CLIUsageError(
            f"--protocol {args.protocol} segments with the references' rule over class names: pass --class-names "
            "or --labels (without --synonyms), or use --protocol s3 with a space."
        )
    return kwargs, queries


def _write(out: Path, path: str, label_ids: Any, labels: list[str], image: Any) -> dict[str, int]:
    """Write an image's index map and overlay; the pixels of each class present."""
    import numpy as np

    from s3_hf.io.files import write_files
    from s3_hf.segmentation.render import index_image, overlay

    stem = Path(str(path)).stem
    index = index_image(label_ids, len(labels))
    shown = overlay(image, label_ids, labels)
    write_files(
        out,
        {
            f"{stem}.png": lambda p, im=index: im.save(p, format="PNG"),
            f"{stem}_overlay.png": lambda p, im=shown: im.save(p, format="PNG"),
        },
    )
    ids = label_ids.numpy()
    present = {labels[c]: int((ids == c).sum()) for c in np.unique(ids)}
    print(f"{path}: " + ", ".join(f"{k} {v / ids.size:.0%}" for k, v in sorted(present.items(), key=lambda x: -x[1])))
    return present


def run(args: argparse.Namespace) -> int:
    """Segment the images and write their index maps, overlays and ``segments.json`` to ``--out``."""
    from s3_hf.io.files import write_json
    from s3_hf.io.images import load_image
    from s3_hf.segmentation.protocols import resolve as resolve_protocol

    values = resolve_protocol(args.protocol, args.benchmark, **protocol_overrides(args))
    options = values.segment_options()
    kwargs, queries = _classes(args)
    paths = images(args.images)
    out = Path(args.out)
    _check_outputs(paths, out, args.overwrite)
    labels = kwargs.get("candidate_labels")
    if labels:  # before the model loads
        _require_background(labels, options, "among the labels")
    engine = engine_for(args)
    if queries is None:
        request = engine.request(metric=args.metric, **kwargs)
        if labels is None:  # a space's classes are known once it loads: check them before any image is read
            _require_background(engine.resolve(request).labels, options, f"in the space {args.space}")
    else:
        template = templates(args.templates) or values.templates
        names = engine.names_request(
            queries, templates=template, pamr_steps=values.pamr_steps, pamr_dilations=values.pamr_dilations
        )
        engine.resolve(names.names)  # the names are encoded before any image is read
    summary = []
    for path in paths:
        image = load_image(path, min_side=options.short_side if options.fast_decode else None)
        if queries is None:
            seg = engine.segment(image, request, options)
        else:
            seg = engine.segment_names(image, names, options)
        label_ids, seg_labels = seg.label_map, seg.labels
        summary.append({"image": str(path), "classes": _write(out, path, label_ids, seg_labels, image)})
    record = {"labels": seg_labels, "images": summary, "protocol": values.to_dict()}
    record["rule"] = "names (the references')" if queries is not None else "spaces"
    write_json(out / SUMMARY_NAME, record)
    print(f"Wrote index maps (<image>.png, class indices), overlays (<image>_overlay.png) and segments.json to {out}.")
    return 0
