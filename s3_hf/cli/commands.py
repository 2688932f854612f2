"""The ``s3`` command: synonyms, build, classify, inspect, push, eval, card, bench, demo and space."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3_hf.errors import BackgroundMissingError, CLIUsageError, InvalidLabelsError, S3Error, TemplateError
from s3_hf.io.files import load_json_text, read_user_text
from s3_hf.options import (
    DEFAULT_CONCEPT_FORMAT,
    DEFAULT_DENSE_VARIANT,
    DEFAULT_METRIC,
    DEFAULT_MODEL,
    DENSE_VARIANTS,
    MAX_CONCEPTS,
    METRIC_NAMES,
    SpaceParams,
    check_metric,
)
from s3_hf.segmentation.protocols import BENCHMARKS, DEFAULT_PROTOCOL, POSITION_RULES, PROTOCOLS, RESIZE_KERNELS

logger = logging.getLogger("s3_hf")
#: Dense variants as the command line spells them ("none": the model's own last block).
VARIANT_CHOICES = [v or "none" for v in DENSE_VARIANTS]

if TYPE_CHECKING:
    from s3_hf.engine.core import S3Engine


def load_engine(model: str, device: str = "auto", revision: str | None = None) -> S3Engine:
    """The engine for a Hub id or a local checkpoint folder (a typed, actionable error when it cannot load)."""
    from s3_hf.engine.core import S3Engine

    return S3Engine.from_pretrained(model, device=device, revision=revision)


def _model_choice(args: argparse.Namespace) -> tuple[str, str | None]:
    """The model (and Hub revision) to load: ``--model``, else the base model the ``--space`` (or the ``--support``
    adapter) was built with, else the default model."""
    if args.model:
        return args.model, None
    base, revision, source = None, None, ""
    if getattr(args, "space", None):
        from s3_hf.space.artifact import SynonymSpace

        config = SynonymSpace.from_pretrained(args.space).config
        base, revision, source = config.base_model, config.base_model_revision, f"The space {args.space}"
    elif getattr(args, "support", None):
        from s3_hf.fewshot import SSP_CONFIG_NAME, SSPAdapter

        if (Path(args.support) / SSP_CONFIG_NAME).is_file():
            base, source = SSPAdapter.from_pretrained(args.support).info.base_model, f"The adapter {args.support}"
    if not source:
        return DEFAULT_MODEL, None
    from s3_hf.errors import ModelLoadError
    from s3_hf.models.loading import LOCAL_PREFIX, is_local_model

    if not base or base == "unknown":
        raise CLIUsageError(f"{source} does not record the model it was built with: pass --model.")
    if is_local_model(base):
        if not Path(base.removeprefix(LOCAL_PREFIX)).is_dir():
            raise ModelLoadError(
                f"{source} was built with the local model {base}, which is not on this machine: pass --model with "
                "that checkpoint (or a copy of it)."
            )
        return base, None
    return base, revision


def engine_for(args: argparse.Namespace) -> S3Engine:
    """The engine of a command: the model :func:`_model_choice` picks (``args.model`` is set to it, for what the
    command records and prints) on ``--device``."""
    args.model, revision = _model_choice(args)
    return load_engine(args.model, args.device, revision)


def _is(path: Path, kind: str) -> bool:
    """``path.is_file()``/``is_dir()``, false for a string that cannot name a file (too long, NUL bytes)."""
    try:
        return getattr(path, kind)()
    except (OSError, ValueError):
        return False


def _read_stdin(what: str) -> str:
    """Standard input as UTF-8 text (``-`` for a file argument)."""
    try:
        return sys.stdin.buffer.read().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InvalidLabelsError(f"{what} on standard input are not UTF-8 text ({err.reason}): send UTF-8.") from err


_JSON_LABELS = 'Pass a JSON list of strings, such as ["cat", "dog"], or one label per line in a .txt file.'


def read_labels(value: str) -> list[str]:
    """Labels from a file (one per line, or a JSON list of strings) or a comma-separated string, normalised as
    :func:`~s3_hf.space.build.check_labels` compares them (which still checks them)."""
    from s3_hf.synonyms.base import normalise

    path = Path(value)
    if value == "-" or _is(path, "is_file") or (_is(path, "exists") and not _is(path, "is_dir")):  # -, pipes too
        text = _read_stdin("Labels") if value == "-" else read_user_text(path, InvalidLabelsError, "Labels file")
        if path.suffix.lower() == ".json":
            labels = load_json_text(text, InvalidLabelsError, f"labels file {path}", _JSON_LABELS)
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                bad = labels if not isinstance(labels, list) else next(x for x in labels if not isinstance(x, str))
                raise InvalidLabelsError(
                    f'Labels file {path} must hold a JSON list of strings, such as ["cat", "dog"]; it holds '
                    f"{json.dumps(bad)[:80]}. Quote every label."
                )
            return [normalise(x) for x in labels]
        lines = (normalise(line) for line in text.splitlines())
        return [line for line in lines if line and not line.startswith("#")]
    if _is(path, "is_dir"):
        raise InvalidLabelsError(f"Labels file {value} is a folder: pass a file with one label per line.")
    if os.sep in value or value.endswith((".txt", ".json")):
        raise InvalidLabelsError(f"Labels file {value} does not exist.")
    return [normalise(x) for x in value.split(",") if normalise(x)]


def read_label_table(value: str) -> tuple[list[str], list[str] | None]:
    """Labels plus, when given, their WordNet ids. A ``.tsv``/``.csv`` file with a header takes labels from
    its ``label``, ``clip_name`` or ``name`` column and ids from a ``wnid`` column; anything else goes through
    :func:`read_labels`."""
    path = Path(value)
    if _is(path, "is_file") and path.suffix.lower() in (".tsv", ".csv"):
        import csv
        import io

        from s3_hf.synonyms.base import normalise

        text = read_user_text(path, InvalidLabelsError, "Labels table")
        try:
            rows = list(csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
        except csv.Error as err:
            raise InvalidLabelsError(f"Labels table {path} is not a readable table ({err}): fix it.") from err
        columns = rows[0].keys() if rows else []
        col = next((c for c in ("label", "clip_name", "name", "class") if c in columns), None)
        if col is None:
            raise InvalidLabelsError(f"{path} needs a header with a 'label', 'clip_name' or 'name' column.")
        short = next((i for i, r in enumerate(rows) if not isinstance(r[col], str)), None)
        if short is not None:
            raise InvalidLabelsError(f"Row {short + 2} of {path} has no {col!r} value: fill it in or remove the row.")
        ids = [(r["wnid"] or "").strip() for r in rows] if "wnid" in columns else None
        return [normalise(r[col]) for r in rows], ids
    return read_labels(value), None


def _int_at_least(minimum: int) -> Any:
    """An argparse type: an integer >= ``minimum`` (argparse reports the flag and the value)."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"must be an integer, got {value!r}") from err
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
        return number

    return parse


POSITIVE = _int_at_least(1)
AUGMENT_HELP = "few-shot: augmented views (random crop + flip) per support image, as GDA's code; 1: none (default 10)"
NON_NEGATIVE = _int_at_least(0)


def protocol_args(p: argparse.ArgumentParser) -> None:
    """The segmentation protocol (:mod:`s3_hf.segmentation.protocols`) and its values: each option given overrides the
    protocol's value; an option not given keeps it."""
    p.add_argument(
        "--protocol",
        default=DEFAULT_PROTOCOL,
        metavar="{"
        + ",".join(PROTOCOLS)
        + "}",  # checked by s3_hf.segmentation.protocols: an unknown one is a one-line typed error
        help="segmentation: 's3' (s3-hf's defaults) or a reference's values per benchmark (sclip, naclip, clearclip)",
    )
    p.add_argument("--variant", choices=VARIANT_CHOICES, help="dense last-block variant (s3 default: naclip)")
    p.add_argument("--short-side", type=POSITIVE, help="resize to this short side (s3 default: 336)")
    p.add_argument("--long-side", type=POSITIVE, help="long-side cap of the resize (mmseg's 2048 in the references)")
    p.add_argument("--window", type=NON_NEGATIVE, help="sliding window; 0: the whole image (s3 default: 224)")
    p.add_argument("--stride", type=POSITIVE, help="window stride (s3 default: 112)")
    p.add_argument("--resize", choices=RESIZE_KERNELS, help="resize kernel (s3: pil-bicubic; references: bilinear)")
    p.add_argument("--positions", choices=POSITION_RULES, help="position interpolation (s3: size; references: scale)")
    p.add_argument("--logit-scale", type=float, help="scale of the names rule's softmax (s3: the model's own)")
    p.add_argument("--background-threshold", type=float, help="below this top probability: the background class")
    p.add_argument("--background-index", type=NON_NEGATIVE, help="the background class's index (else 'background')")
    p.add_argument("--area-threshold", type=float, help="SCLIP's area threshold (fraction of predicted area)")
    p.add_argument("--pamr-steps", type=NON_NEGATIVE, help="PAMR refinement steps; 0: off (naclip: 10)")
    p.add_argument("--pamr-dilations", help="PAMR dilations, comma list (naclip: 8,16)")


def protocol_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The protocol values given on the command line (:func:`protocol_args`), by value name."""
    given = {
        "variant": args.variant,
        "short_side": args.short_side,
        "long_side": args.long_side,
        "window": args.window,
        "stride": args.stride,
        "resize": args.resize,
        "positions": args.positions,
        "logit_scale": args.logit_scale,
        "prob_threshold": args.background_threshold,
        "background_index": args.background_index,
        "area_threshold": args.area_threshold,
        "pamr_steps": args.pamr_steps,
        "pamr_dilations": tuple(_int_list(args.pamr_dilations, "--pamr-dilations", minimum=1)) or None,
        "fast_decode": False if args.exact_decode else None,
    }
    return {k: v for k, v in given.items() if v is not None}


def _radius(value: str) -> str | float | None:
    if value.lower() == "none":
        return None
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError("radius must be 'auto', 'none' or a number") from err


def _templates(value: str | None) -> Any:
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        text = read_user_text(path, TemplateError, "Templates file")
        return [line.strip() for line in text.splitlines() if line.strip()]
    return value


# --------------------------------------------------------------------------------------------- commands
def cmd_build(args: argparse.Namespace) -> int:
    from s3_hf.space.build import build_synonym_space, check_labels
    from s3_hf.space.geometry import SpaceParams
    from s3_hf.synonyms import resolve_source

    target = Path(os.path.abspath(args.out))
    if not args.out.strip() or target == Path.cwd() or target in Path.cwd().parents:
        raise CLIUsageError(
            f"--out {args.out!r} names the current folder or one holding it: pass a folder for the space."
        )
    if args.labels is not None:
        labels, _ = read_label_table(args.labels)
    elif args.synonyms is not None:
        from s3_hf.synonyms import read_synonyms_file

        labels = list(read_synonyms_file(args.synonyms)[0])
    else:
        raise CLIUsageError("Pass a labels file, or --synonyms FILE whose classes are the labels.")
    labels = check_labels(labels)  # labels and synonyms are checked before the model loads
    synonyms = resolve_source(args.synonyms) if args.synonyms is not None else None
    engine = engine_for(args)
    space = build_synonym_space(
        engine.encoder,
        None,
        labels,
        synonyms,
        templates=_templates(args.templates),
        concept_format=args.concept_format,
        canonicalization=args.canonicalization,
        params=SpaceParams(args.radius, args.gap_ratio, args.min_points, args.max_dim),
        metric=args.metric,
        max_concepts=args.max_concepts,
        base_model=args.model,
        batch_size=args.batch_size,
        progress=True,
    )
    out = space.save_pretrained(args.out, overwrite=args.overwrite)
    s = space.summary()
    print(f"Wrote {out}: {s['classes']} classes, {s['points']} concepts ({s['dropped']} pruned).")
    return 0


def _images(paths: list[str]) -> list[str]:
    """Image files, URLs and the images directly inside folders, in the order given."""
    from s3_hf.io.images import list_images

    out: list[str] = []
    for p in paths:
        if Path(p).is_dir():
            found = list_images(p)
            if not found:
                raise CLIUsageError(f"No images in {p} (looked for .jpg, .png, .webp, ... files directly inside it).")
            out.extend(found)
        else:
            out.append(p)
    return out


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in columns))


def _compare(
    engine: S3Engine,
    images: list[Any],
    names: list[str],
    options: dict[str, Any],
    metric: str,
    top_k: int,
    fewshot: dict[str, Any] | None = None,
    batch_size: int = 32,
    strict: bool = True,
    fast_decode: bool = True,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """S^3 (with details, and few-shot when asked) next to vanilla CLIP; every image is encoded once. An image that
    cannot be read stops the run when ``strict``, else it is reported and skipped. ``fast_decode``: JPEGs decoded
    at reduced size (never below the model's resize target); ``workers``: image worker threads (``None``: the
    device's default, see :mod:`s3_hf.io.parallel`)."""
    from s3_hf.engine.core import rank

    s3 = engine.resolve(engine.request(metric=metric, **options, **(fewshot or {})))
    clip = engine.resolve(engine.request(metric="label", **options))
    results: list[dict[str, Any]] = []
    skipped = 0
    batches = engine.encoder.encode_image_batches(
        images,
        batch_size,
        fast=fast_decode,
        workers=workers,
        skip_errors=not strict,
        progress=len(images) > batch_size,
    )
    for batch in batches:
        for i, err in batch.errors:
            logger.warning("Skipping %s: %s", names[i], err)
            skipped += 1
        if batch.features is None:
            continue
        v = batch.features
        s3_out, clip_out = engine.scores(v, s3, details=True), engine.scores(v, clip)
        for b, i in enumerate(batch.indices):
            results.append(
                {
                    "image": names[i],
                    "s3": [p.to_dict() for p in rank(s3_out, b, s3, top_k, details=True)],
                    "clip": [p.to_dict() for p in rank(clip_out, b, clip, top_k)],
                }
            )
    if not results:
        raise CLIUsageError(f"None of the {len(images)} images could be read (see the warnings above).")
    if skipped:
        logger.warning(
            "%d of %d images could not be read and were skipped (--strict stops at the first).", skipped, len(images)
        )
    return results


def _report(
    results: list[dict[str, Any]],
    metric: str,
    as_json: bool,
    truth: dict[str, str] | None = None,
    method: str = "S^3",
) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    rows = []
    for r in results:
        top, clip = r["s3"][0], r["clip"][0]
        row = {
            "image": r["image"],
            f"{method} ({metric})": f"{top['label']} ({top['score']:.2f})",
            "matched concept": top["details"]["matched_concept"],
            "CLIP (label)": f"{clip['label']} ({clip['score']:.2f})",
        }
        if truth is not None:
            row = {
                "image": r["image"],
                "true class": truth[r["image"]],
                **{k: v for k, v in row.items() if k != "image"},
            }
        rows.append(row)
    _print_table(rows, list(rows[0]))


def _space_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if (args.space is None) == (args.labels is None):
        raise CLIUsageError("Pass exactly one of --space (an artifact folder or Hub id) or --labels.")
    if args.space is not None:
        return {"synonym_space": args.space}
    return {
        "candidate_labels": read_labels(args.labels),
        "synonyms": args.synonyms,
        "templates": _templates(args.templates),
    }


def _fewshot_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.support is None:
        return {}
    kwargs: dict[str, Any] = {"support": args.support}
    if not (Path(args.support) / "ssp_config.json").is_file():
        kwargs["fewshot"] = {"mode": args.fewshot_mode}
    return kwargs


def cmd_classify(args: argparse.Namespace) -> int:
    kwargs = _space_kwargs(args)
    images = _images(args.images)
    engine = engine_for(args)
    metric = args.metric or DEFAULT_METRIC
    fewshot = _fewshot_kwargs(args)
    method = "S^3" if not fewshot else f"S^3 + {args.fewshot_mode.upper()}"
    results = _compare(
        engine,
        images,
        images,
        kwargs,
        metric,
        args.top_k,
        fewshot,
        args.batch_size,
        args.strict,
        not args.exact_decode,
        args.workers,
    )
    _report(results, metric, args.json, method=method)
    return 0


def _check_output_names(images: list[str], stems: list[str]) -> None:
    """Refuse inputs whose output files would overwrite each other (``a.png``'s overlay is ``a_overlay.png``, which
    is also the index map of an input ``a_overlay.png``); names are compared case-insensitively, as some file
    systems do."""
    owner: dict[str, tuple[str, str]] = {"segments.json": ("the run", "summary")}
    for path, stem in zip(images, stems, strict=True):
        for name, what in ((f"{stem}.png", "index map"), (f"{stem}_overlay.png", "overlay")):
            if name.casefold() in owner:
                other, other_what = owner[name.casefold()]
                raise CLIUsageError(
                    f"The {what} of {path} and the {other_what} of {other} would both be written to {name}: rename "
                    "one of the images or segment them separately."
                )
            owner[name.casefold()] = (str(path), what)


def _require_background(labels: list[str], options: Any, where: str) -> None:
    """:func:`~s3_hf.segmentation.core.require_background` as a one-line usage error."""
    from s3_hf.segmentation.core import require_background

    try:
        require_background(labels, options.background_threshold, options.background_index)
    except BackgroundMissingError as err:
        raise CLIUsageError(
            f"--background-threshold needs a background class, and there is no class named 'background' {where}: "
            "pass --background-index; add one or drop the threshold."
        ) from err


def cmd_segment(args: argparse.Namespace) -> int:
    import numpy as np

    from s3_hf.io.files import write_files, write_json
    from s3_hf.io.images import load_image, original_size
    from s3_hf.segmentation.core import (
        NameQueries,
        index_image,
        names_segment,
        overlay,
        read_class_file,
        read_class_names,
    )
    from s3_hf.segmentation.protocols import resolve as resolve_protocol

    values = resolve_protocol(args.protocol, args.benchmark, **protocol_overrides(args))
    options = values.segment_options()
    # a reference protocol runs the references' multi-name rule over the class names (every name a query)
    queries = None
    if args.class_names:
        if args.space or args.labels:
            raise CLIUsageError("Pass one of --class-names, --labels or --space.")
        text = read_user_text(args.class_names, InvalidLabelsError, "Class-name file")
        labels, names = read_class_names(text)
        kwargs: dict[str, Any] = {"candidate_labels": labels, "synonyms": names, "concept_format": "{concept}"}
        kwargs["templates"] = _templates(args.templates)
        if args.protocol != DEFAULT_PROTOCOL:
            queries = NameQueries.from_classes(read_class_file(text))
    else:
        kwargs = _space_kwargs(args)
        if args.protocol != DEFAULT_PROTOCOL and args.labels is not None and not args.synonyms:
            queries = NameQueries.from_classes([[label] for label in kwargs["candidate_labels"]])
    if args.protocol != DEFAULT_PROTOCOL and queries is None:
        raise CLIUsageError(
            f"--protocol {args.protocol} segments with the references' rule over class names: pass --class-names "
            "or --labels (without --synonyms), or use --protocol s3 with a space."
        )
    images = _images(args.images)
    out = Path(args.out)
    stems = [Path(str(p)).stem for p in images]
    _check_output_names(images, stems)
    targets = [out / n for stem in stems for n in (f"{stem}.png", f"{stem}_overlay.png")] + [out / "segments.json"]
    existing = [t for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise CLIUsageError(
            f"{existing[0]} exists (and {len(existing) - 1} more of the files s3 segment writes): pass another --out, "
            "or --overwrite to replace them."
        )
    labels = kwargs.get("candidate_labels")
    if labels:  # before the model loads
        _require_background(labels, options, "among the labels")
    engine = engine_for(args)
    if queries is None:
        request = engine.request(metric=args.metric, **kwargs)
        if labels is None:  # a space's classes are known once it loads: check them before any image is read
            _require_background(engine.resolve(request).labels, options, f"in the space {args.space}")
    else:
        template = _templates(args.templates) or values.templates
        resolved = engine.resolve(engine.request(queries.names, templates=template, metric="label"))
    summary = []
    for path in images:
        image = load_image(path, min_side=options.short_side if options.fast_decode else None)
        if queries is None:
            seg = engine.segment(image, request, options)
            label_ids, seg_labels = seg.label_map, seg.labels
        else:
            size = original_size(image)
            label_ids = names_segment(
                engine, image, queries, resolved, options, size, values.pamr_steps, values.pamr_dilations
            )
            seg_labels = queries.labels
        ids = label_ids.numpy()
        stem = Path(str(path)).stem
        index = index_image(label_ids, len(seg_labels))
        shown = overlay(image, label_ids, seg_labels)

        write_files(
            out,
            {
                f"{stem}.png": lambda p, im=index: im.save(p, format="PNG"),
                f"{stem}_overlay.png": lambda p, im=shown: im.save(p, format="PNG"),
            },
        )
        present = {seg_labels[c]: int((ids == c).sum()) for c in np.unique(ids)}
        summary.append({"image": str(path), "classes": present})
        print(
            f"{path}: " + ", ".join(f"{k} {v / ids.size:.0%}" for k, v in sorted(present.items(), key=lambda x: -x[1]))
        )
    record = {"labels": seg_labels, "images": summary, "protocol": values.to_dict()}
    record["rule"] = "names (the references')" if queries is not None else "spaces"
    write_json(out / "segments.json", record)
    print(f"Wrote index maps (<image>.png, class indices), overlays (<image>_overlay.png) and segments.json to {out}.")
    return 0


def cmd_fewshot(args: argparse.Namespace) -> int:
    kwargs = _space_kwargs(args)
    out = args.out or args.space
    if out is None or (args.out is None and not Path(out).is_dir()):
        raise CLIUsageError("Pass --out DIR (with --labels, or with a Hub --space) to say where to write it.")
    from s3_hf.fewshot import SSPConfig, read_support
    from s3_hf.fewshot.support import require_every_class

    config = SSPConfig.from_dict({"mode": args.fewshot_mode, "seed": args.seed, "augment_views": args.augment_views})
    if "candidate_labels" in kwargs:  # the classes are known: check the support folder before anything is encoded
        labels = kwargs["candidate_labels"]
        require_every_class(read_support(args.support, labels)[1], labels)
    engine = engine_for(args)
    selection = engine.space(**kwargs)
    metric = args.metric or selection.space.config.metric
    adapter = engine.adapter(selection, args.support, metric, selection.space.config.knn_k, config)
    adapter.save_pretrained(out)
    info, shots = adapter.info, adapter.info.shots
    tuning = f"tuned on {info.validation_images} validation images" if info.tuned else "defaults: nothing to tune on"
    print(
        f"Fitted {args.fewshot_mode} on {sum(shots)} support images ({min(shots)}-{max(shots)} per class, "
        f"{len(shots)} classes) over the {metric} scores: alpha={info.alpha:g} beta={info.beta:g} "
        f"gamma={info.gamma:g} ({tuning}).\n"
        f"Wrote {out}/ssp_config.json and ssp_state.safetensors; use them with `s3 classify --support {out}`."
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from s3_hf.app.demo import DEMO_PHOTOS, DEMO_SYNONYMS, demo_photos

    photos = demo_photos()
    engine = engine_for(args)
    kwargs = {"candidate_labels": list(DEMO_SYNONYMS), "synonyms": DEMO_SYNONYMS}
    results = _compare(engine, list(photos.values()), list(photos), kwargs, args.metric, 3)
    print(f"Model: {args.model}\n")
    _report(results, args.metric, args.json, truth=DEMO_PHOTOS)
    return 0


def make_source(args: argparse.Namespace, senses: dict[str, str]) -> Any:
    """The synonym source named on the command line."""
    from s3_hf.synonyms import OpenAICompatSource, TransformersChatSource, WordNetSource

    common = {"max_synonyms": args.max_synonyms}
    if args.source == "curated":
        from s3_hf.synonyms import CuratedSource

        return CuratedSource(args.benchmark)
    if args.source == "wordnet":
        return WordNetSource(senses=senses, ambiguous=args.ambiguous, **common)
    llm = {**common, "domain": args.domain, "cache": False if args.no_cache else True, "progress": True}
    llm["descriptors"] = args.descriptors
    if args.source == "openai":
        if not args.model:
            raise InvalidLabelsError("--source openai needs --model (the endpoint's model name).")
        return OpenAICompatSource(
            args.model,
            args.base_url,
            api_key_env=args.api_key_env,
            concurrency=args.concurrency,
            timeout=args.timeout,
            max_retries=args.retries,
            **llm,
        )
    if not args.model:
        raise InvalidLabelsError("--source transformers needs --model (a Hub id or local folder of a chat LM).")
    device = None if args.device == "auto" else args.device
    return TransformersChatSource(args.model, device=device, batch_size=args.batch_size, **llm)


def _curated() -> list[str]:
    from s3_hf.synonyms.curated import available

    return available()


def cmd_synonyms(args: argparse.Namespace) -> int:
    from s3_hf.synonyms import source_descriptors, write_synonyms_file
    from s3_hf.synonyms.base import clean_all
    from s3_hf.text.labels import check_labels

    if args.source == "curated":
        if not args.benchmark:
            raise CLIUsageError("--source curated needs --benchmark NAME (one of: " + ", ".join(_curated()) + ").")
    elif args.benchmark:
        raise CLIUsageError("--benchmark only goes with --source curated.")
    if args.labels is None and args.source != "curated":
        raise CLIUsageError("Pass a labels file (or --source curated --benchmark NAME, whose classes are the labels).")
    if args.labels is None:
        from s3_hf.synonyms.curated import read_curated

        labels, ids = read_curated(args.benchmark).labels, []
    else:
        labels, ids = read_label_table(args.labels)
    senses = dict(zip(labels, ids, strict=True)) if ids else {}
    if ids and len({x.casefold() for x in labels}) < len(labels):
        from s3_hf.synonyms import WordNetSource

        labels, senses = WordNetSource().unique_labels(labels, ids)
    check_labels(labels)
    source = make_source(args, senses)
    raw = source.synonyms(labels)
    mapping = {label: concepts[1:] for label, (concepts, _) in clean_all(labels, raw, args.max_synonyms).items()}
    empty = [label for label, syn in mapping.items() if not syn]
    descriptors = source_descriptors(source, labels)
    out = write_synonyms_file(args.out, mapping, source.provenance(), fallback=empty, descriptors=descriptors)
    counts = [len(v) for v in mapping.values()]
    print(
        f"Wrote {out}: {len(labels)} labels, {sum(counts)} synonyms "
        f"({sum(counts) / max(len(labels), 1):.1f} per label, max {max(counts, default=0)}); "
        f"{len(empty)} label-only{': ' + ', '.join(empty[:10]) + (' ...' if len(empty) > 10 else '') if empty else ''}."
    )
    print(f"Review and edit it, then: s3 build --synonyms {out} --out my-space")
    return 0


def load_eval_module(name: str) -> Any:
    """``s3_hf.evaluation.<name>`` (``bench``, ``registry``, ``report``, ``runner``), imported only by the commands
    that are its faces."""
    import importlib

    from s3_hf.errors import EvalError

    try:
        return importlib.import_module(f"s3_hf.evaluation.{name}")
    except ModuleNotFoundError as err:
        if err.name not in ("s3_hf.evaluation", f"s3_hf.evaluation.{name}"):
            raise
        raise EvalError(
            f"s3_hf.evaluation.{name} is missing from this installation of s3-hf: reinstall it (pip install s3-hf)."
        ) from err


def cmd_bench(args: argparse.Namespace) -> int:
    bench = load_eval_module("bench")
    model, images = bench.locations(args.model, args.images)
    from s3_hf.models.loading import resolve_device

    device = resolve_device(args.device)
    dtypes = (
        args.dtypes.split(",")
        if args.dtypes
        else (["float32", "float16", "bfloat16"] if device != "cpu" else ["float32"])
    )
    cfg = bench.BenchConfig(
        model=model,
        images=images,
        out=args.out,
        device=device,
        classes=_int_list(args.classes, "--classes"),
        concepts=args.concepts,
        batch_sizes=_int_list(args.batch_sizes, "--batch-sizes"),
        build_classes=_int_list(args.build_classes, "--build-classes"),
        build_concepts=_int_list(args.build_concepts, "--build-concepts"),
        num_images=args.num_images,
        repeats=args.repeats,
        dtypes=dtypes,
        memory=not args.no_memory,
        parts=args.parts.split(","),
        fewshot_classes=args.fewshot_classes,
        fewshot_shots=_int_list(args.fewshot_shots, "--fewshot-shots"),
        seg_classes=args.seg_classes,
        seg_short_sides=_int_list(args.seg_short_sides, "--seg-short-sides", minimum=1),
        seg_images=args.seg_images,
        large_images=args.large_images,
        image_workers=args.workers,
    )
    bench.run(cfg)
    return 0


def _int_list(text: str | None, flag: str, minimum: int = 0) -> list[int]:
    try:
        values = [int(x) for x in (text or "").split(",") if x.strip()]
    except ValueError as err:
        raise CLIUsageError(f"{flag} takes comma-separated integers, got {text!r}.") from err
    if any(v < minimum for v in values):
        raise CLIUsageError(f"{flag} values must be at least {minimum}, got {text!r}.")
    return values


def _json_options(text: str | None, augment_views: int | None = None) -> dict[str, Any]:
    options: Any = {}
    if text:
        hint = "Pass a JSON object, e.g. '{\"top_s\": 4}'."
        options = load_json_text(text, CLIUsageError, "--fewshot-options", hint)
    if not isinstance(options, dict):
        raise CLIUsageError("--fewshot-options must be a JSON object, e.g. '{\"top_s\": 4}'.")
    if augment_views is not None:
        options["augment_views"] = augment_views
    if not options:
        return {}
    from s3_hf.fewshot import SSPConfig

    SSPConfig.from_dict({k: v for k, v in options.items() if k != "mode"})  # fail now, not after encoding
    return options


def cmd_eval(args: argparse.Namespace) -> int:
    runner, registry = load_eval_module("runner"), load_eval_module("registry")
    if args.list:
        for name, b in registry.REGISTRY.items():
            print(f"{name:16s} {b.hub_id or b.path or '(local folder)'}  {b.note}")
        return 0
    if not args.benchmarks:
        raise CLIUsageError("Pass --benchmarks (comma-separated names or folders; `s3 eval --list` shows them).")
    benchmarks = args.benchmarks.split(",")
    if benchmarks == ["paper"]:
        benchmarks = registry.PAPER_SUITE
    synonyms = [x for x in args.synonyms.split(",") if x and x != "none"]
    metrics = [check_metric(m) for m in args.metrics.split(",")] if args.metrics != "all" else runner.S3_METRICS
    cfg = runner.EvalConfig(
        model=args.model,
        benchmarks=benchmarks,
        out=args.out,
        synonyms=synonyms,
        metrics=metrics,
        templates=args.templates,
        batch_size=args.batch_size,
        cache_dir=args.cache_dir,
        dtype=args.dtype,
        shots=_int_list(args.shots, "--shots", minimum=1),
        seeds=_int_list(args.seeds, "--seeds"),
        fewshot_base=args.fewshot_base,
        fewshot=_json_options(args.fewshot_options, args.augment_views),
        imagenet_sample=args.imagenet_sample,
        dclip=args.dclip,
        cupl=args.cupl,
        waffle=args.waffle,
        dclip_template=args.dclip_template,
        waffle_seeds=_int_list(args.waffle_seeds, "--waffle-seeds"),
        descriptors=args.descriptors,
        fast_decode=not args.exact_decode,
        workers=args.workers,
        task=args.task,
        class_names=args.class_names,
        variant=DEFAULT_DENSE_VARIANT if args.variant is None else None if args.variant == "none" else args.variant,
        short_side=args.short_side or 336,
        window=224 if args.window is None else args.window,
        stride=args.stride or 112,
        background_threshold=args.background_threshold,
        protocol=args.protocol,
        protocol_values=protocol_overrides(args),
        canonicalizations={"none": (None,), "lower_no_punct": ("lower_no_punct",), "both": (None, "lower_no_punct")}[
            args.canonicalization
        ],
        overwrite=args.overwrite,
    )
    summary = runner.run(cfg)
    if summary["benchmarks"] and all("error" in r for r in summary["benchmarks"].values()):
        return 1
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    report = load_eval_module("report")
    from s3_hf.errors import EvalError

    text = read_user_text(args.results, EvalError, "Results file")
    summary = load_json_text(text, EvalError, str(args.results), "It is not a results.json written by `s3 eval`.")
    if not isinstance(summary, dict) or not isinstance(summary.get("benchmarks"), dict):
        raise EvalError(f"{args.results} is not a results.json written by `s3 eval` (no 'benchmarks' object).")
    try:
        path = report.write_model_index(args.space, summary, args.method)
    except (ValueError, KeyError, TypeError) as err:
        raise EvalError(f"Cannot write the results of {args.results} into {args.space}'s card: {err}") from err
    print(f"Wrote model-index results into {path}")
    return 0


def cmd_space(args: argparse.Namespace) -> int:
    from s3_hf.app.deploy import build_space, push_space

    if args.space_command == "build":
        out = build_space(args.dir, overwrite=args.overwrite)
        files = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir()))
        print(f"Wrote the Gradio Space {out}: {files}.\nDeploy it with `s3 space push {args.dir} YOUR-NAME/SPACE`.")
        return 0
    url = push_space(args.dir, args.repo_id, token=args.token, private=args.private)
    print(f"Pushed the Space to {url}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from s3_hf.space.files import read_summary

    s = read_summary(args.space, revision=args.revision)  # without torch: inspecting starts at once
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"Synonym space for {s['base_model']} (metric {s['metric']}, radius rule {s['radius_rule']})")
    simplices = ", ".join(f"{n} with {k} vertices" for k, n in sorted(s["simplices"].items()))
    print(
        f"{s['classes']} classes, {s['points']} concepts: {s['kept']} kept, {s['dropped']} pruned "
        f"({s['removed']} more dropped before embedding); "
        f"{s['embedding_dim']}-d points, {s['templates']} templates; simplices: {simplices}\n"
    )
    rows = [
        {
            "class": r["label"],
            "radius": f"{r['radius']:.4f}",
            "kept": ", ".join(r["kept"]),
            "dropped (why)": "; ".join(f"{d['text']} ({d['reason']})" for d in r["drops"]) or "-",
        }
        for r in s["per_class"][: args.limit]
    ]
    _print_table(rows, ["class", "radius", "kept", "dropped (why)"])
    if len(s["per_class"]) > args.limit:
        print(f"... {len(s['per_class']) - args.limit} more classes (--limit N to show more)")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from s3_hf.fewshot import SSP_CONFIG_NAME, SSPAdapter
    from s3_hf.space.artifact import SynonymSpace

    space = SynonymSpace.from_pretrained(args.folder)
    adapter = SSPAdapter.from_pretrained(args.folder) if (Path(args.folder) / SSP_CONFIG_NAME).is_file() else None
    url = space.push_to_hub(args.repo_id, token=args.token, private=args.private)
    print(f"Pushed to {url}")
    if adapter is not None:  # a few-shot adapter saved beside the space travels with it
        url = adapter.push_to_hub(args.repo_id, token=args.token, private=args.private)
        print(f"Pushed the few-shot adapter to {url}")
    return 0


# ------------------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3", description="S^3 synonym-space zero-shot image classification.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    def space_args(p: argparse.ArgumentParser) -> None:  # what _space_kwargs reads
        p.add_argument("--space", help="synonym-space folder or Hub id")
        p.add_argument("--labels", help="labels file or comma-separated labels (instead of --space)")
        p.add_argument("--synonyms", help="JSON/YAML synonyms file (with --labels)")
        p.add_argument("--templates", help="with --labels: a template, a file or a set name")

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model",
            help=f"Hub id or local CLIP folder (default: the model the --space was built with, else {DEFAULT_MODEL})",
        )
        p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
        p.add_argument("--batch-size", type=POSITIVE, default=32)

    metric_help = f"one of {', '.join(METRIC_NAMES)}"
    space_defaults = SpaceParams()
    b = sub.add_parser("build", help="labels (+ synonyms) -> synonym-space artifact folder")
    b.add_argument(
        "labels",
        nargs="?",
        help="labels file (.txt, .json, .tsv; - reads one per line from stdin) or comma-separated labels; default: "
        "the classes of --synonyms",
    )
    b.add_argument("--synonyms", help="JSON/YAML file mapping each label to its synonyms (default: label only)")
    b.add_argument("--out", required=True, help="artifact folder to write")
    b.add_argument("--overwrite", action="store_true", help="replace a README.md in --out that s3-hf did not write")
    b.add_argument("--templates", help="a template with {}, a file with one per line, or a set name (imagenet80)")
    b.add_argument("--concept-format", default=DEFAULT_CONCEPT_FORMAT, help="structured template of synonyms")
    b.add_argument(
        "--canonicalization",
        choices=["lower_no_punct"],
        help="rewrite prompts before tokenising (lower-case, no punctuation: SigLIP 2's recommendation)",
    )
    b.add_argument("--metric", default=DEFAULT_METRIC, choices=METRIC_NAMES, help=f"default metric: {metric_help}")
    b.add_argument(
        "--radius", type=_radius, default=space_defaults.radius, help="'auto' (default), a number, or 'none'"
    )
    b.add_argument("--gap-ratio", type=float, default=space_defaults.gap_ratio)
    b.add_argument("--min-points", type=POSITIVE, default=space_defaults.min_points)
    b.add_argument("--max-dim", type=NON_NEGATIVE, default=space_defaults.max_dim)
    b.add_argument("--max-concepts", type=NON_NEGATIVE, default=MAX_CONCEPTS, help="synonyms kept per label")
    model_args(b)
    b.set_defaults(func=cmd_build)

    c = sub.add_parser("classify", help="classify images with S^3, next to vanilla CLIP")
    c.add_argument("images", nargs="+", help="image files, folders or URLs")
    space_args(c)
    c.add_argument("--metric", choices=METRIC_NAMES, help="default: the space's metric (local_center)")
    c.add_argument("--top-k", type=POSITIVE, default=5)
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.add_argument("--strict", action="store_true", help="stop at the first image that cannot be read")
    c.add_argument(
        "--exact-decode", action="store_true", help="decode every JPEG pixel (default: reduced-size JPEG decoding)"
    )
    c.add_argument(
        "--workers",
        type=NON_NEGATIVE,
        help="image worker threads (default: 2 on a CPU, each decoding and encoding a batch; up to 8 decoding "
        "ahead of a GPU; 0: none)",
    )
    c.add_argument("--support", help="few-shot: a folder of <class>/<image> files, or a fitted adapter's folder")
    c.add_argument("--fewshot-mode", choices=["ssp", "cache"], default="ssp")
    model_args(c)
    c.set_defaults(func=cmd_classify)

    g2 = sub.add_parser("segment", help="open-vocabulary segmentation: index maps and colour overlays with a legend")
    g2.add_argument("images", nargs="+", help="image files, folders or URLs")
    space_args(g2)
    g2.add_argument("--class-names", help="a class-name file: one class a line, comma-separated names (cls_*.txt)")
    g2.add_argument("--out", required=True, help="folder to write <image>.png, <image>_overlay.png, segments.json")
    g2.add_argument("--metric", choices=METRIC_NAMES, help="default: the space's metric (local_center)")
    protocol_args(g2)
    g2.add_argument("--benchmark", choices=BENCHMARKS, help="the benchmark whose values a reference --protocol takes")
    g2.add_argument("--exact-decode", action="store_true", help="decode every JPEG pixel (default: reduced size)")
    g2.add_argument("--overwrite", action="store_true", help="replace outputs already in --out")
    model_args(g2)
    g2.set_defaults(func=cmd_segment)

    f = sub.add_parser("fewshot", help="fit SSP on a folder of labelled images and save it beside a space")
    f.add_argument("support", help="folder with one sub-folder of images per class")
    space_args(f)
    f.add_argument("--metric", choices=METRIC_NAMES, help="zero-shot metric SSP adds to (default: the space's)")
    f.add_argument("--fewshot-mode", choices=["ssp", "cache"], default="ssp")
    f.add_argument("--seed", type=int, default=0, help="seed of the validation split and of the augmented views")
    f.add_argument("--augment-views", type=int, default=10, help=AUGMENT_HELP)
    f.add_argument("--out", help="folder to write the adapter to (default: the --space folder)")
    model_args(f)
    f.set_defaults(func=cmd_fewshot)

    d = sub.add_parser("demo", help="classify scikit-image's sample photos with S^3 and vanilla CLIP")
    d.add_argument("--metric", default=DEFAULT_METRIC, choices=METRIC_NAMES)
    d.add_argument("--json", action="store_true")
    model_args(d)
    d.set_defaults(func=cmd_demo)

    y = sub.add_parser("synonyms", help="labels -> a human-editable synonyms file (WordNet or an LLM)")
    y.add_argument(
        "labels",
        nargs="?",
        help="labels file (.txt, .json, or .tsv/.csv with a label/clip_name and wnid column); with --source curated "
        "the benchmark's classes by default",
    )
    y.add_argument("--source", choices=["wordnet", "transformers", "openai", "curated"], default="wordnet")
    y.add_argument("--benchmark", help="curated: the benchmark whose shipped list to write (e.g. imagenet1k)")
    y.add_argument("--out", required=True, help="synonyms file to write (.yaml or .json)")
    y.add_argument("--max-synonyms", type=NON_NEGATIVE, default=MAX_CONCEPTS)
    y.add_argument("--model", help="LLM: Hub id or folder (transformers), model name (openai)")
    y.add_argument("--base-url", help="openai: endpoint base URL (default $OPENAI_BASE_URL or api.openai.com)")
    y.add_argument("--api-key-env", default="OPENAI_API_KEY", help="openai: environment variable with the key")
    y.add_argument("--concurrency", type=POSITIVE, default=4, help="openai: requests in flight")
    y.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="openai: time limit of each request, in total"
    )
    y.add_argument("--retries", type=int, default=3, metavar="N", help="openai: retries of a failed request")
    y.add_argument("--domain", help="LLM: what the dataset is about, e.g. 'aircraft models'")
    y.add_argument(
        "--ambiguous",
        choices=["fit", "first", "label-only", "error"],
        default="fit",
        help="wordnet: the sense of an ambiguous label (fit: the one nearest the other labels)",
    )
    y.add_argument("--no-cache", action="store_true", help="LLM: ignore and do not write the on-disk cache")
    y.add_argument(
        "--descriptors", action="store_true", help="LLM: also ask for up to 5 visual descriptors per label (kept)"
    )
    y.add_argument("--device", default="auto")
    y.add_argument("--batch-size", type=POSITIVE, default=8, help="transformers: labels per generate call")
    y.set_defaults(func=cmd_synonyms)

    n = sub.add_parser("bench", help="throughput, build cost, memory and size; writes JSON, markdown and a plot")
    n.add_argument("--model", help="CLIP folder or Hub id (default: $S3_BENCH_MODEL)")
    n.add_argument("--images", help="folder of real images (default: $S3_BENCH_IMAGES, else $S3_IMAGENET_SAMPLE)")
    n.add_argument("--out", default="bench_results")
    n.add_argument("--device", default="auto")
    n.add_argument("--dtypes", help="comma list, e.g. float32,float16 (default: float32; GPU adds fp16/bf16)")
    n.add_argument("--classes", default="10,100,1000", help="class counts for inference")
    n.add_argument("--concepts", type=POSITIVE, default=10, help="concepts per class for inference")
    n.add_argument("--batch-sizes", default="1,32")
    n.add_argument("--build-classes", default="10,100,1000")
    n.add_argument("--build-concepts", default="5,10,20,50")
    n.add_argument("--num-images", type=POSITIVE, default=32)
    n.add_argument("--repeats", type=POSITIVE, default=3)
    n.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocess runs")
    n.add_argument(
        "--parts",
        default="inference,build,artifact",
        help="which parts to run (comma list; 'fewshot' adds SSP, 'segmentation' dense inference, "
        "'images' the decode path on normal and 12 MP photos)",
    )
    n.add_argument("--fewshot-classes", type=POSITIVE, default=1000, help="classes of the few-shot part")
    n.add_argument("--fewshot-shots", default="1,4,16", help="support images per class to time fitting at")
    n.add_argument("--seg-classes", type=POSITIVE, default=150, help="segmentation: classes (default 150, ADE20K)")
    n.add_argument("--seg-short-sides", default="336,448", help="segmentation: short sides to time (default 336,448)")
    n.add_argument("--seg-images", type=POSITIVE, default=4, help="segmentation: images to time (default 4)")
    n.add_argument("--large-images", help="images part: photos to upscale to 12 MP (default: --images)")
    n.add_argument("--workers", type=NON_NEGATIVE, help="images part: image workers (default: the device's)")
    n.set_defaults(func=cmd_bench)

    e = sub.add_parser("eval", help="every method side by side on benchmarks (accelerate launch -m s3_hf.cli eval)")
    e.add_argument("--benchmarks", help="comma list of names (see --list), 'paper', or image folders")
    e.add_argument("--list", action="store_true", help="list the registered benchmarks")
    e.add_argument("--model", default=DEFAULT_MODEL)
    e.add_argument("--out", default="eval_results")
    e.add_argument("--synonyms", default="wordnet", help="comma list: 'wordnet', 'curated', synonyms files, or 'none'")
    e.add_argument("--metrics", default="all", help="S^3 metrics to score (default all)")
    e.add_argument(
        "--templates", default="benchmark", help="prompts for ensemble and S^3: 'benchmark' (its own) or a set name"
    )
    e.add_argument("--batch-size", type=POSITIVE, default=64)
    e.add_argument("--cache-dir", help="image-embedding cache (default OUT/cache)")
    e.add_argument("--dtype", default="float32")
    e.add_argument("--shots", default="", help="few-shot runs, e.g. 1,2,4,8,16 (support from the train split)")
    e.add_argument("--seeds", default="1,2,3", help="support samples per shot count (default 1,2,3)")
    e.add_argument("--fewshot-base", default="", help="zero-shot method few-shot builds on (default: S^3 local_center)")
    e.add_argument("--fewshot-options", default="", help='SSP options as JSON, e.g. \'{"top_s": 4, "lam": 0.5}\'')
    e.add_argument("--augment-views", type=int, help=AUGMENT_HELP)
    e.add_argument("--imagenet-sample", help="folder of the imagenet-sample benchmark (default: $S3_IMAGENET_SAMPLE)")
    e.add_argument("--task", choices=["classification", "segmentation"], default="classification")
    e.add_argument("--exact-decode", action="store_true", help="decode every JPEG pixel (default: reduced size)")
    e.add_argument("--workers", type=NON_NEGATIVE, help="decode worker processes (default: 0 on CPU, 8 on GPU)")
    e.add_argument("--class-names", help="segmentation: a class-name file instead of each folder's classes.txt")
    protocol_args(e)
    e.add_argument("--dclip", help="DCLIP's descriptors: a JSON file {class: [descriptor, ...]} or 'curated'")
    e.add_argument("--cupl", help="CuPL's prompts: a JSON file {class: [prompt, ...]}")
    e.add_argument(
        "--waffle", type=NON_NEGATIVE, default=0, help="WaffleCLIP with N random descriptor pairs (the paper: 15)"
    )
    e.add_argument(
        "--dclip-template",
        default="dclip",
        help="DCLIP's template: 'dclip' (the released code: none), 'waffle' ('A photo of a {}.') or a template",
    )
    e.add_argument(
        "--waffle-seeds", default="0,1,2,3,4,5,6", help="WaffleCLIP's draws, reported as mean and std (default 0-6)"
    )
    e.add_argument(
        "--descriptors", action="store_true", help="also score S^3 with descriptors for sources that have them"
    )
    e.add_argument(
        "--canonicalization",
        choices=["none", "lower_no_punct", "both"],
        default="none",
        help="text canonicalisation of every zero-shot method; 'both' reports each method twice "
        "(the lower_no_punct ones named method@lower_no_punct)",
    )
    e.add_argument("--overwrite", action="store_true", help="replace files in --out that s3 eval did not write")
    e.set_defaults(func=cmd_eval)

    k = sub.add_parser("card", help="write eval results into a space's model card (model-index)")
    k.add_argument("space", help="artifact folder")
    k.add_argument("--results", required=True, help="results.json written by `s3 eval`")
    k.add_argument("--method", help="method to report (default: the space's metric with its synonyms)")
    k.set_defaults(func=cmd_card)

    g = sub.add_parser("space", help="write a deployable Gradio Space folder, or push one to the Hub")
    space_sub = g.add_subparsers(dest="space_command", required=True)
    gb = space_sub.add_parser("build", help="write app.py, README.md, requirements.txt and the s3_hf package to DIR")
    gb.add_argument("dir", help="folder to write (must be empty or absent unless --overwrite)")
    gb.add_argument("--overwrite", action="store_true", help="replace a non-empty DIR")
    gb.set_defaults(func=cmd_space)
    gp = space_sub.add_parser("push", help="upload a folder written by `s3 space build` to a Gradio Space repo")
    gp.add_argument("dir", help="the folder `s3 space build` wrote")
    gp.add_argument("repo_id", help="e.g. your-name/s3-demo")
    gp.add_argument("--token", help="Hub token (default: HF_TOKEN or `hf auth login`)")
    gp.add_argument("--private", action="store_true")
    gp.set_defaults(func=cmd_space)

    i = sub.add_parser("inspect", help="summarise a synonym space: classes, kept and pruned concepts, radii")
    i.add_argument("space", help="artifact folder or Hub id")
    i.add_argument("--revision")
    i.add_argument("--limit", type=NON_NEGATIVE, default=20, help="classes to list (default 20)")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_inspect)

    p = sub.add_parser("push", help="upload an artifact folder to a Hub model repo")
    p.add_argument("folder")
    p.add_argument("repo_id", help="e.g. your-name/imagenet-s3-vitb32")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or `hf auth login`)")
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=cmd_push)
    return parser


def _add_verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` works before or after the sub-command (``s3 -v eval ...`` and ``s3 eval ... -v``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if not any("--verbose" in a.option_strings for a in sub._actions):
                    sub.add_argument(
                        "-v",
                        "--verbose",
                        action="store_true",
                        default=argparse.SUPPRESS,
                        help="log details; show tracebacks of errors",
                    )
                _add_verbose_everywhere(sub)


def main(argv: list[str] | None = None) -> int:
    """Run the ``s3`` command. Expected failures print one line on stderr and return 2; ``-v`` adds the
    traceback. Text the terminal's encoding cannot show is printed escaped (``\\u00e9``); a reader that stops
    early (``s3 inspect ... | head``) ends the command quietly.

    Args:
        argv: the arguments (default: the process's).
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        code = _run(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # What Python's documentation recommends: no more writes to the closed pipe, even at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    _add_verbose_everywhere(parser)
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except S3Error as err:
        failure: BaseException = err
        message = str(err)
    except BrokenPipeError:
        raise
    except OSError as err:  # unreadable or unwritable paths, a full disk: the user's to fix
        failure = err
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        message = f"{err.strerror or err}{where}. Check the path and its permissions."
    except Exception as err:
        if verbose:
            raise
        print(
            f"error: unexpected {type(err).__name__}: {err}. This is a bug in s3-hf: run the command again with -v "
            "for the traceback and report it.",
            file=sys.stderr,
        )
        return 1
    if verbose:
        traceback.print_exception(failure, file=sys.stderr)
    print(f"error: {message}", file=sys.stderr)
    return 2


__all__ = ["build_parser", "load_engine", "load_eval_module", "main", "read_label_table", "read_labels"]
