"""``s3 card``: evaluation results written into a space's model card (``model-index``, with the Hub dataset id and
revision of each benchmark read from the Hub) and into ``.eval_results/*.yaml`` beside it, which ``s3 push`` uploads
with the space."""

from __future__ import annotations

import argparse

from s3_hf.cli.arguments import Subparsers
from s3_hf.cli.common import load_eval_module
from s3_hf.errors import EvalError
from s3_hf.io.files import load_json_text, read_user_text


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 card`` to the ``s3`` command's sub-parsers."""
    k = subparsers.add_parser(
        "card", help="write eval results into a space's model card (model-index and .eval_results files)"
    )
    k.add_argument("space", help="artifact folder")
    k.add_argument("--results", required=True, help="results.json written by `s3 eval`")
    k.add_argument("--method", help="method to report (default: the space's metric with its synonyms)")
    k.set_defaults(func=run)
    return k


def run(args: argparse.Namespace) -> int:
    """Write the results of ``--results`` into the space's model card and its ``.eval_results`` files."""
    from s3_hf.space.artifact import SynonymSpace
    from s3_hf.space.card_results import write_eval_results

    report = load_eval_module("report")
    text = read_user_text(args.results, EvalError, "Results file")
    summary = load_json_text(text, EvalError, str(args.results), "It is not a results.json written by `s3 eval`.")
    if not isinstance(summary, dict) or not isinstance(summary.get("benchmarks"), dict):
        raise EvalError(f"{args.results} is not a results.json written by `s3 eval` (no 'benchmarks' object).")
    space = SynonymSpace.from_pretrained(args.space)
    try:
        results = report.card_entries(space, summary, args.method)  # refuses random weights, another model, ...
        paths = write_eval_results(args.space, results, space.config.library_version)
    except (ValueError, KeyError, TypeError) as err:
        raise EvalError(f"Cannot write the results of {args.results} into {args.space}'s card: {err}") from err
    extra = f" and {len(paths) - 1} .eval_results file(s)" if len(paths) > 1 else ""
    print(f"Wrote {len(results)} results into {paths[-1]}{extra}")
    return 0
