"""``s3 build``: labels (and synonyms) -> a synonym-space artifact folder."""

from __future__ import annotations

import argparse

from s3_hf.cli.arguments import NON_NEGATIVE, POSITIVE, Subparsers, model_args
from s3_hf.cli.common import engine_for, read_label_table, templates
from s3_hf.errors import CLIUsageError
from s3_hf.options import DEFAULT_CONCEPT_FORMAT, DEFAULT_METRIC, MAX_CONCEPTS, METRIC_NAMES, SpaceParams


def _radius(value: str) -> str | float | None:
    if value.lower() == "none":
        return None
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError("radius must be 'auto', 'none' or a number") from err


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 build`` to the ``s3`` command's sub-parsers."""
    space_defaults = SpaceParams()
    b = subparsers.add_parser("build", help="labels (+ synonyms) -> synonym-space artifact folder")
    b.add_argument(
        "labels",
        nargs="?",
        help="labels file (.txt, .json, .tsv; - reads one per line from stdin) or comma-separated labels; default: "
        "the classes of --synonyms",
    )
    b.add_argument("--synonyms", help="JSON/YAML file mapping each label to its synonyms (default: label only)")
    b.add_argument("--out", required=True, help="artifact folder to write")
    b.add_argument(
        "--overwrite", action="store_true", help="replace a README.md or config.json in --out that s3-hf did not write"
    )
    b.add_argument(
        "--bundle",
        action="store_true",
        help="copy the base model's files into --out/base_model, so the space runs without fetching the base model",
    )
    b.add_argument("--templates", help="a template with {}, a file with one per line, or a set name (imagenet80)")
    b.add_argument("--concept-format", default=DEFAULT_CONCEPT_FORMAT, help="structured template of synonyms")
    b.add_argument(
        "--canonicalization",
        choices=["lower_no_punct"],
        help="rewrite prompts before tokenising (lower-case, no punctuation: SigLIP 2's recommendation)",
    )
    metric_help = f"one of {', '.join(METRIC_NAMES)}"
    b.add_argument("--metric", default=DEFAULT_METRIC, choices=METRIC_NAMES, help=f"default metric: {metric_help}")
    b.add_argument(
        "--radius", type=_radius, default=space_defaults.radius, help="'auto' (default), a number, or 'none'"
    )
    b.add_argument("--gap-ratio", type=float, default=space_defaults.gap_ratio)
    b.add_argument("--min-points", type=POSITIVE, default=space_defaults.min_points)
    b.add_argument("--max-dim", type=NON_NEGATIVE, default=space_defaults.max_dim)
    b.add_argument("--max-concepts", type=NON_NEGATIVE, default=MAX_CONCEPTS, help="synonyms kept per label")
    model_args(b)
    b.set_defaults(func=run)
    return b


def _check_out(out: str) -> None:
    """The folder rule of :mod:`s3_hf.io.files` (not the current folder nor one holding it, not a file), checked
    before the model loads."""
    from s3_hf.io.files import target_folder

    if not out.strip():
        raise CLIUsageError(f"--out {out!r} names the current folder or one holding it: pass a folder for the space.")
    try:
        target_folder(out)
    except IsADirectoryError as err:
        raise CLIUsageError(
            f"--out {out!r} names the current folder or one holding it: pass a folder for the space."
        ) from err
    except NotADirectoryError as err:
        raise CLIUsageError(f"--out {out!r} is a file: pass a folder for the space.") from err


def run(args: argparse.Namespace) -> int:
    """Build the space and write it to ``--out``."""
    from s3_hf.space.build import build_synonym_space, check_labels
    from s3_hf.synonyms import resolve_source

    _check_out(args.out)
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
        templates=templates(args.templates),
        concept_format=args.concept_format,
        canonicalization=args.canonicalization,
        params=SpaceParams(args.radius, args.gap_ratio, args.min_points, args.max_dim),
        metric=args.metric,
        max_concepts=args.max_concepts,
        base_model=args.model,
        batch_size=args.batch_size,
        progress=True,
    )
    out = space.save_pretrained(args.out, overwrite=args.overwrite, bundle=args.bundle)
    s = space.summary()
    print(f"Wrote {out}: {s.classes} classes, {s.points} concepts ({s.dropped} pruned).")
    return 0
