"""``s3 classify``: images classified with S^3 (and few-shot, when asked) next to vanilla CLIP."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3_hf.cli.arguments import (
    NON_NEGATIVE,
    POSITIVE,
    Subparsers,
    exact_decode_arg,
    fewshot_mode_arg,
    model_args,
    space_args,
)
from s3_hf.cli.classify_tta import StreamOptions, add_zero, stream_report, tta_args, zero_report
from s3_hf.cli.common import engine_for, images, print_table, space_kwargs
from s3_hf.errors import CLIUsageError
from s3_hf.options import DEFAULT_BATCH_SIZE, DEFAULT_METRIC, METRIC_NAMES

if TYPE_CHECKING:
    from s3_hf.engine.core import S3Engine
    from s3_hf.engine.results import ClassScores
    from s3_hf.engine.stream import TS3Stream

logger = logging.getLogger("s3_hf")


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 classify`` to the ``s3`` command's sub-parsers."""
    c = subparsers.add_parser("classify", help="classify images with S^3, next to vanilla CLIP")
    c.add_argument("images", nargs="+", help="image files, folders or URLs")
    space_args(c)
    c.add_argument("--metric", choices=METRIC_NAMES, help=f"default: the space's metric ({DEFAULT_METRIC})")
    c.add_argument("--top-k", type=POSITIVE, default=5)
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.add_argument("--strict", action="store_true", help="stop at the first image that cannot be read")
    exact_decode_arg(c, "decode every JPEG pixel (default: reduced-size JPEG decoding)")
    c.add_argument(
        "--workers",
        type=NON_NEGATIVE,
        help="image worker threads (default: 2 on a CPU, each decoding and encoding a batch; up to 8 decoding "
        "ahead of a GPU; 0: none)",
    )
    c.add_argument(
        "--abstain-threshold",
        metavar="P",
        help="a probability in (0, 1]: an image whose top probability is below it gets 'none of these' first",
    )
    c.add_argument(
        "--multi-label",
        action="store_true",
        help="score each class on its own (SigLIP: its sigmoid; CLIP-like models: against a caption naming no class)",
    )
    c.add_argument("--support", help="few-shot: a folder of <class>/<image> files, or a fitted adapter's folder")
    fewshot_mode_arg(c)
    tta_args(c)
    model_args(c)
    c.set_defaults(func=run)
    return c


def compare(
    engine: S3Engine,
    images: list[Any],
    names: list[str],
    options: dict[str, Any],
    metric: str,
    top_k: int,
    fewshot: dict[str, Any] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    strict: bool = True,
    fast_decode: bool = True,
    workers: int | None = None,
    scoring: ScoreOptions | None = None,
    stream: TS3Stream | None = None,
) -> list[dict[str, Any]]:
    """S^3 (with details, and few-shot when asked) next to vanilla CLIP; every image is encoded once. An image that
    cannot be read stops the run when ``strict``, else it is reported and skipped. ``fast_decode``: JPEGs decoded
    at reduced size (never below the model's resize target); ``workers``: image worker threads (``None``: the
    device's default, see :mod:`s3_hf.io.parallel`); ``scoring``: abstention and per-class scores; ``stream``: a
    TS^3 stream over the same classes, adapted on the images in the order given (each result then has its ``step``
    in the stream and the adapted ranking as ``ts3``)."""
    from s3_hf.engine.results import check_abstain_labels

    scoring = scoring or ScoreOptions()
    s3 = engine.resolve(engine.request(metric=metric, **options, **(fewshot or {})))
    clip = engine.resolve(engine.request(metric="label", **options))
    check_abstain_labels(s3.labels, scoring.abstain_threshold)
    results: list[dict[str, Any]] = []
    skipped = 0
    batches = engine.encoder.encode_image_batches(
        images, batch_size, fast=fast_decode, workers=workers, skip_errors=not strict, progress=len(images) > batch_size
    )
    for batch in batches:
        for i, err in batch.errors:
            logger.warning("Skipping %s: %s", names[i], err)
            skipped += 1
        if batch.features is None:
            continue
        v = batch.features
        s3_out, clip_out = scoring.scores(engine, v, s3, details=True), scoring.scores(engine, v, clip)
        adapted = None if stream is None else _adapted(stream, v, s3_out)
        for b, i in enumerate(batch.indices):
            entry = {
                "image": names[i],
                "s3": [p.to_dict() for p in scoring.rank(s3_out, b, s3, top_k, details=True)],
                "clip": [p.to_dict() for p in scoring.rank(clip_out, b, clip, top_k)],
            }
            if adapted is not None and stream is not None:
                step = stream.n_seen - len(batch.indices) + b + 1
                entry = {"step": step, **entry, "ts3": [p.to_dict() for p in scoring.rank(adapted, b, s3, top_k)]}
            results.append(entry)
    if not results:
        raise CLIUsageError(f"None of the {len(images)} images could be read (see the warnings above).")
    if skipped:
        logger.warning(
            "%d of %d images could not be read and were skipped (--strict stops at the first).", skipped, len(images)
        )
    return results


def _adapted(stream: TS3Stream, v: Any, static: ClassScores) -> ClassScores:
    """The stream's adapted logits of the batch ``v`` (adapting on it), scored by the same rule as ``static``."""
    from s3_hf.engine.results import ClassScores

    return ClassScores(stream.embeddings(v).scores, scoring=static.scoring, baseline=static.baseline)


def report(
    results: list[dict[str, Any]],
    metric: str,
    as_json: bool,
    truth: dict[str, str] | None = None,
    method: str = "S^3",
) -> None:
    """Print :func:`compare`'s results: JSON, or a table of each image's top class by both methods."""
    if as_json:
        print(json.dumps(results, indent=2))
        return
    rows = []
    for r in results:
        top, clip = r["s3"][0], r["clip"][0]
        row = {
            "image": r["image"],
            f"{method} ({metric})": f"{top['label']} ({top['score']:.2f})",
            "matched concept": top["details"]["matched_concept"] if "details" in top else "–",
            "CLIP (label)": f"{clip['label']} ({clip['score']:.2f})",
        }
        if truth is not None:
            row = {
                "image": r["image"],
                "true class": truth[r["image"]],
                **{k: v for k, v in row.items() if k != "image"},
            }
        rows.append(row)
    print_table(rows, list(rows[0]))


def _fewshot_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.support is None:
        return {}
    from s3_hf.fewshot import SSP_CONFIG_NAME

    kwargs: dict[str, Any] = {"support": args.support}
    if not (Path(args.support) / SSP_CONFIG_NAME).is_file():
        kwargs["fewshot"] = {"mode": args.fewshot_mode}
    return kwargs


@dataclass
class ScoreOptions:
    """How ``s3 classify`` turns logits into the scores it prints: ``abstain_threshold`` (``None``: never abstain)
    and ``multi_label`` (each class on its own; see :mod:`s3_hf.engine.label_free`)."""

    abstain_threshold: float | None = None
    multi_label: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ScoreOptions:
        """The flags, checked: a bad ``--abstain-threshold`` is a one-line :class:`CLIUsageError`."""
        from s3_hf.validation import positive_probability

        raw = getattr(args, "abstain_threshold", None)
        try:
            value = None if raw is None else float(raw)
        except ValueError:
            value = raw  # refused just below, in the same words as any other bad value
        threshold = positive_probability("--abstain-threshold", value, optional=True, error=CLIUsageError)
        return cls(threshold, bool(getattr(args, "multi_label", False)))

    def scores(self, engine: S3Engine, v: Any, resolved: Any, details: bool = False) -> ClassScores:
        """The engine's scores, with the label-free baseline when ``multi_label`` needs it."""
        return engine.scores(v, resolved, details, self.multi_label)

    def rank(self, out: ClassScores, b: int, resolved: Any, top_k: int, details: bool = False) -> list[Any]:
        """Image ``b``'s ranking with these options."""
        from s3_hf.engine.results import rank

        return rank(
            out, b, resolved, top_k, details, abstain_threshold=self.abstain_threshold, multi_label=self.multi_label
        )


def run(args: argparse.Namespace) -> int:
    """Classify the images and print the comparison (adapting over them first with ``--tta``)."""
    scoring = ScoreOptions.from_args(args)
    tta = StreamOptions.from_args(args)
    kwargs = space_kwargs(args)
    paths = images(args.images)
    engine = engine_for(args)
    metric = args.metric or DEFAULT_METRIC
    fewshot = _fewshot_kwargs(args)
    method = "S^3" if not fewshot else f"S^3 + {args.fewshot_mode.upper()}"
    stream, resumed = None, 0
    if tta is not None and tta.method == "ts3":
        paths = [paths[i] for i in tta.order(len(paths))]
        stream = tta.open(engine, engine.request(metric=metric, **kwargs))
        resumed = stream.n_seen
    results = compare(
        engine,
        paths,
        paths,
        kwargs,
        metric,
        args.top_k,
        fewshot,
        args.batch_size,
        args.strict,
        not args.exact_decode,
        args.workers,
        scoring,
        stream,
    )
    if tta is not None and tta.method == "zero":
        zero = tta.zero()
        add_zero(engine, results, engine.request(metric=metric, **kwargs), zero, args.top_k, scoring.abstain_threshold)
        zero_report(results, metric, args.json, {"method": "zero", **asdict(zero)})
        return 0
    if tta is None or stream is None:
        report(results, metric, args.json, method=method)
        return 0
    tta.save(stream)
    stream_report(results, metric, args.json, tta.record(paths, resumed, stream.n_seen))
    return 0
