"""``s3 fewshot``: fit SSP (or the cache baseline) on a folder of labelled images and save it beside a space."""

from __future__ import annotations

import argparse
from pathlib import Path

from s3_hf.cli.arguments import AUGMENT_HELP, Subparsers, fewshot_mode_arg, model_args, space_args
from s3_hf.cli.common import engine_for, space_kwargs
from s3_hf.errors import CLIUsageError
from s3_hf.options import DEFAULT_AUGMENT_VIEWS, METRIC_NAMES


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 fewshot`` to the ``s3`` command's sub-parsers."""
    f = subparsers.add_parser("fewshot", help="fit SSP on a folder of labelled images and save it beside a space")
    f.add_argument("support", help="folder with one sub-folder of images per class")
    space_args(f)
    f.add_argument("--metric", choices=METRIC_NAMES, help="zero-shot metric SSP adds to (default: the space's)")
    fewshot_mode_arg(f)
    f.add_argument("--seed", type=int, default=0, help="seed of the validation split and of the augmented views")
    f.add_argument("--augment-views", type=int, default=DEFAULT_AUGMENT_VIEWS, help=AUGMENT_HELP)
    f.add_argument("--out", help="folder to write the adapter to (default: the --space folder)")
    model_args(f)
    f.set_defaults(func=run)
    return f


def run(args: argparse.Namespace) -> int:
    """Fit the adapter on the support folder and save it to ``--out`` (or the space's folder)."""
    kwargs = space_kwargs(args)
    out = args.out or args.space
    if out is None or (args.out is None and not Path(out).is_dir()):
        raise CLIUsageError("Pass --out DIR (with --labels, or with a Hub --space) to say where to write it.")
    from s3_hf.fewshot import SSP_CONFIG_NAME, SSP_TENSORS_NAME, SSPConfig, read_support
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
        f"Wrote {out}/{SSP_CONFIG_NAME} and {SSP_TENSORS_NAME}; use them with `s3 classify --support {out}`."
    )
    return 0
