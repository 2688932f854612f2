"""``s3 eval``: every method side by side on benchmarks (:mod:`s3_hf.evaluation.runner`); ``accelerate launch -m
s3_hf.cli eval`` runs it on several processes."""

from __future__ import annotations

import argparse
from typing import Any

from s3_hf.cli.arguments import (
    AUGMENT_HELP,
    NON_NEGATIVE,
    POSITIVE,
    Subparsers,
    exact_decode_arg,
    protocol_args,
    protocol_overrides,
)
from s3_hf.cli.common import int_list, load_eval_module
from s3_hf.errors import CLIUsageError
from s3_hf.io.files import load_json_text
from s3_hf.options import (
    DEFAULT_DENSE_VARIANT,
    DEFAULT_EVAL_BATCH_SIZE,
    DEFAULT_EVAL_SEEDS,
    DEFAULT_MODEL,
    DEFAULT_SHORT_SIDE,
    DEFAULT_STRIDE,
    DEFAULT_TTA_SEEDS,
    DEFAULT_WINDOW,
    TTA_ORDERS,
    TTA_STREAMS,
    check_metric,
)

#: ``--canonicalization``: the text canonicalisations each zero-shot method is scored with.
CANONICALIZATIONS: dict[str, tuple[str | None, ...]] = {
    "none": (None,),
    "lower_no_punct": ("lower_no_punct",),
    "both": (None, "lower_no_punct"),
}


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 eval`` to the ``s3`` command's sub-parsers."""
    e = subparsers.add_parser(
        "eval", help="every method side by side on benchmarks (accelerate launch -m s3_hf.cli eval)"
    )
    e.add_argument("--benchmarks", help="comma list of names (see --list), 'paper', or image folders")
    e.add_argument("--list", action="store_true", help="list the registered benchmarks")
    e.add_argument("--model", default=DEFAULT_MODEL)
    e.add_argument(
        "--out",
        default="eval_results",
        help="results folder: results.json and .md, one JSON per benchmark, and clip_benchmark/ (one file per "
        "benchmark and method in CLIP_benchmark's format, for `clip_benchmark build`)",
    )
    e.add_argument("--synonyms", default="wordnet", help="comma list: 'wordnet', 'curated', synonyms files, or 'none'")
    e.add_argument("--metrics", default="all", help="S^3 metrics to score (default all)")
    e.add_argument(
        "--templates", default="benchmark", help="prompts for ensemble and S^3: 'benchmark' (its own) or a set name"
    )
    e.add_argument("--batch-size", type=POSITIVE, default=DEFAULT_EVAL_BATCH_SIZE)
    e.add_argument("--cache-dir", help="image-embedding cache (default OUT/cache)")
    e.add_argument("--dtype", default="float32")
    e.add_argument("--shots", default="", help="few-shot runs, e.g. 1,2,4,8,16 (support from the train split)")
    seeds = ",".join(map(str, DEFAULT_EVAL_SEEDS))
    e.add_argument("--seeds", default=seeds, help=f"support samples per shot count (default {seeds})")
    e.add_argument("--fewshot-base", default="", help="zero-shot method few-shot builds on (default: S^3 local_center)")
    e.add_argument("--fewshot-options", default="", help='SSP options as JSON, e.g. \'{"top_s": 4, "lam": 0.5}\'')
    e.add_argument("--augment-views", type=int, help=AUGMENT_HELP)
    e.add_argument("--imagenet-sample", help="folder of the imagenet-sample benchmark (default: $S3_IMAGENET_SAMPLE)")
    e.add_argument("--task", choices=["classification", "segmentation"], default="classification")
    exact_decode_arg(e)
    e.add_argument("--workers", type=NON_NEGATIVE, help="decode worker processes (default: 0 on CPU, 8 on GPU)")
    e.add_argument("--class-names", help="segmentation: a class-name file instead of each folder's classes.txt")
    protocol_args(e)
    _baseline_args(e)
    _tta_args(e)
    e.add_argument("--overwrite", action="store_true", help="replace files in --out that s3 eval did not write")
    e.set_defaults(func=run)
    return e


def _baseline_args(e: argparse.ArgumentParser) -> None:
    """The baselines' texts (DCLIP, CuPL, WaffleCLIP), descriptors and text canonicalisation."""
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
        choices=list(CANONICALIZATIONS),
        default="none",
        help="text canonicalisation of every zero-shot method; 'both' reports each method twice "
        "(the lower_no_punct ones named method@lower_no_punct)",
    )


def _tta_args(e: argparse.ArgumentParser) -> None:
    """The methods to report and the test-time adaptation protocol."""
    e.add_argument(
        "--methods",
        default="",
        help="comma list of methods to report: label, ensemble, dclip, cupl, waffle, s3 (default: every configured "
        "one) and the test-time adaptation methods tda, ts3 (default: none)",
    )
    seeds = ",".join(map(str, DEFAULT_TTA_SEEDS))
    e.add_argument(
        "--tta-seeds", default=seeds, help=f"stream orders of tda and ts3, reported as mean and std (default {seeds})"
    )
    e.add_argument(
        "--tta-stream",
        choices=list(TTA_STREAMS),
        default=TTA_STREAMS[0],
        help="one seeded stream over every image, or one per process over its shard (a simulation of deployment, "
        "reported as ts3[per-process,N])",
    )
    e.add_argument(
        "--tta-order",
        choices=list(TTA_ORDERS),
        default=TTA_ORDERS[0],
        help="the stream order: seeded random, or a stress test with the images sorted by true class (reported as "
        "ts3[class-sorted])",
    )


def _json_options(text: str | None, augment_views: int | None = None) -> dict[str, Any]:
    """``--fewshot-options`` (and ``--augment-views``) as SSP options, checked before anything is encoded."""
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


def _segmentation_values(args: argparse.Namespace) -> dict[str, Any]:
    """The segmentation fields of the evaluation config."""
    return {
        "class_names": args.class_names,
        "variant": DEFAULT_DENSE_VARIANT if args.variant is None else None if args.variant == "none" else args.variant,
        "short_side": args.short_side or DEFAULT_SHORT_SIDE,
        "window": DEFAULT_WINDOW if args.window is None else args.window,
        "stride": args.stride or DEFAULT_STRIDE,
        "background_threshold": args.background_threshold,
        "protocol": args.protocol,
        "protocol_values": protocol_overrides(args),
    }


def _config(args: argparse.Namespace, runner: Any, benchmarks: list[str]) -> Any:
    """The evaluation config of the command line."""
    synonyms = [x for x in args.synonyms.split(",") if x and x != "none"]
    metrics = [check_metric(m) for m in args.metrics.split(",")] if args.metrics != "all" else runner.S3_METRICS
    return runner.EvalConfig.from_flags(
        model=args.model,
        benchmarks=benchmarks,
        out=args.out,
        synonyms=synonyms,
        metrics=metrics,
        templates=args.templates,
        batch_size=args.batch_size,
        cache_dir=args.cache_dir,
        dtype=args.dtype,
        shots=int_list(args.shots, "--shots", minimum=1),
        seeds=int_list(args.seeds, "--seeds"),
        fewshot_base=args.fewshot_base,
        fewshot=_json_options(args.fewshot_options, args.augment_views),
        imagenet_sample=args.imagenet_sample,
        dclip=args.dclip,
        cupl=args.cupl,
        waffle=args.waffle,
        dclip_template=args.dclip_template,
        waffle_seeds=int_list(args.waffle_seeds, "--waffle-seeds"),
        descriptors=args.descriptors,
        fast_decode=not args.exact_decode,
        workers=args.workers,
        task=args.task,
        **_segmentation_values(args),
        canonicalizations=CANONICALIZATIONS[args.canonicalization],
        overwrite=args.overwrite,
        methods=[m for m in args.methods.split(",") if m],
        tta_seeds=int_list(args.tta_seeds, "--tta-seeds"),
        tta_stream=args.tta_stream,
        tta_order=args.tta_order,
    )


def run(args: argparse.Namespace) -> int:
    """List the benchmarks, or evaluate; 1 when every benchmark failed."""
    runner, registry = load_eval_module("runner"), load_eval_module("data.registry")
    if args.list:
        for name, b in registry.REGISTRY.items():
            print(f"{name:16s} {b.hub_id or b.path or '(local folder)'}  {b.note}")
        return 0
    if not args.benchmarks:
        raise CLIUsageError("Pass --benchmarks (comma-separated names or folders; `s3 eval --list` shows them).")
    benchmarks = args.benchmarks.split(",")
    if benchmarks == ["paper"]:
        benchmarks = registry.PAPER_SUITE
    summary = runner.run(_config(args, runner, benchmarks))
    if summary.all_failed():
        return 1
    return 0
