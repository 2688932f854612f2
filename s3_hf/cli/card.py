"""``s3 card``: evaluation results written into a space's model card (model-index)."""

from __future__ import annotations

import argparse

from s3_hf.cli.arguments import Subparsers
from s3_hf.cli.common import load_eval_module
from s3_hf.errors import EvalError
from s3_hf.io.files import load_json_text, read_user_text


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 card`` to the ``s3`` command's sub-parsers."""
    k = subparsers.add_parser("card", help="write eval results into a space's model card (model-index)")
    k.add_argument("space", help="artifact folder")
    k.add_argument("--results", required=True, help="results.json written by `s3 eval`")
    k.add_argument("--method", help="method to report (default: the space's metric with its synonyms)")
    k.set_defaults(func=run)
    return k


def run(args: argparse.Namespace) -> int:
    """Write the results of ``--results`` into the space's model card."""
    report = load_eval_module("report")
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
