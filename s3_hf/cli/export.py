"""``s3 export onnx``: a synonym space's image encoder plus its S^3 head as ONNX, with the class names, the image
processor and a config beside it (:mod:`s3_hf.export`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from s3_hf.cli.arguments import Subparsers, verbose_arg
from s3_hf.export.config import EXPORTABLE_METRICS, MODEL_NAME
from s3_hf.options import METRIC_NAMES


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 export`` (and its ``onnx``) to the ``s3`` command's sub-parsers."""
    x = subparsers.add_parser("export", help="export a synonym space for serving outside Python (ONNX)")
    formats = x.add_subparsers(dest="export_format", required=True)
    o = formats.add_parser(
        "onnx", help="write the image encoder plus the S^3 head as ONNX, with labels.json and s3_onnx.json"
    )
    o.add_argument("--space", required=True, help="synonym-space folder or Hub id")
    o.add_argument("--out", required=True, help="folder to write (must be empty or absent unless --overwrite)")
    o.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    o.add_argument(
        "--metric",
        choices=METRIC_NAMES,
        help=f"the head's metric (default: the space's own); these export: {', '.join(EXPORTABLE_METRICS)}",
    )
    o.add_argument("--model", help="Hub id or local folder of the base model (default: the one the space records)")
    o.set_defaults(func=run, device="cpu")
    verbose_arg(o)
    return x


def run(args: argparse.Namespace) -> int:
    """Check the options, load the space and its model on the CPU, and write the export."""
    from s3_hf.cli.common import engine_for
    from s3_hf.export.onnx import check_export_metric, check_out, export_onnx, require_exporter
    from s3_hf.space.artifact import SynonymSpace

    if args.metric is not None:
        check_export_metric(args.metric)
    check_out(Path(args.out), args.overwrite)  # the user's inputs are checked before anything heavy is loaded
    space = SynonymSpace.from_pretrained(args.space)
    check_export_metric(args.metric or space.config.metric)
    require_exporter()
    result = export_onnx(space, args.out, model=engine_for(args), metric=args.metric, overwrite=args.overwrite)
    config = result.config
    print(
        f"Wrote the ONNX export of {args.space} ({config.num_classes} classes, metric {config.metric}) to "
        f"{result.folder}: {', '.join(config.files)}.\nonnxruntime's outputs differ from torch's by at most "
        f"{max(config.check.values()):.1e}. Input: pixel_values {config.input['shape']} from the image processor "
        f"beside {MODEL_NAME}; outputs: logits, probabilities ({config.scoring}) and image_embeds."
    )
    return 0
