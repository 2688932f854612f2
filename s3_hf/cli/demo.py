"""``s3 demo``: scikit-image's sample photos classified with S^3 and vanilla CLIP."""

from __future__ import annotations

import argparse

from s3_hf.cli.arguments import Subparsers, model_args
from s3_hf.cli.classify import compare, report
from s3_hf.cli.common import engine_for
from s3_hf.options import DEFAULT_METRIC, METRIC_NAMES


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 demo`` to the ``s3`` command's sub-parsers."""
    d = subparsers.add_parser("demo", help="classify scikit-image's sample photos with S^3 and vanilla CLIP")
    d.add_argument("--metric", default=DEFAULT_METRIC, choices=METRIC_NAMES)
    d.add_argument("--json", action="store_true")
    model_args(d)
    d.set_defaults(func=run)
    return d


def run(args: argparse.Namespace) -> int:
    """Classify the demo photos and print the comparison with their true classes."""
    from s3_hf.app.demo import DEMO_PHOTOS, DEMO_SYNONYMS, demo_photos

    photos = demo_photos()
    engine = engine_for(args)
    kwargs = {"candidate_labels": list(DEMO_SYNONYMS), "synonyms": DEMO_SYNONYMS}
    results = compare(engine, list(photos.values()), list(photos), kwargs, args.metric, 3)
    print(f"Model: {args.model}\n")
    report(results, args.metric, args.json, truth=DEMO_PHOTOS)
    return 0
