"""The argument groups several ``s3`` commands share (model and device, space, segmentation protocol), their argparse
types, and the ``-v`` flag every command takes. Defaults come from :mod:`s3_hf.options` and
:mod:`s3_hf.segmentation.protocols`, never written here a second time."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Protocol

from s3_hf.cli.common import int_list
from s3_hf.options import (
    DEFAULT_AUGMENT_VIEWS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_MODEL,
    DEFAULT_SHORT_SIDE,
    DEFAULT_STRIDE,
    DEFAULT_WINDOW,
    DENSE_VARIANTS,
    FEWSHOT_MODES,
)
from s3_hf.segmentation.protocols import DEFAULT_PROTOCOL, POSITION_RULES, PROTOCOLS, RESIZE_KERNELS

#: Dense variants as the command line spells them ("none": the model's own last block).
VARIANT_CHOICES = [v or "none" for v in DENSE_VARIANTS]
AUGMENT_HELP = (
    "few-shot: augmented views (random crop + flip) per support image, as GDA's code; 1: none "
    f"(default {DEFAULT_AUGMENT_VIEWS})"
)


def int_at_least(minimum: int) -> Callable[[str], int]:
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


class Subparsers(Protocol):
    """What ``ArgumentParser.add_subparsers`` returns, as the commands' ``register`` functions use it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


POSITIVE = int_at_least(1)
NON_NEGATIVE = int_at_least(0)


def verbose_arg(parser: argparse.ArgumentParser) -> None:
    """``-v`` on a sub-command, so it works before or after it (``s3 -v eval ...`` and ``s3 eval ... -v``); not given,
    it leaves the main parser's value alone."""
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log details; show tracebacks of errors"
    )


def space_args(p: argparse.ArgumentParser) -> None:
    """Where the classes come from: a saved space, or labels (with synonyms and templates); what
    :func:`~s3_hf.cli.common.space_kwargs` reads."""
    p.add_argument("--space", help="synonym-space folder or Hub id")
    p.add_argument("--labels", help="labels file or comma-separated labels (instead of --space)")
    p.add_argument("--synonyms", help="JSON/YAML synonyms file (with --labels)")
    p.add_argument("--templates", help="with --labels: a template, a file or a set name")


def model_args(p: argparse.ArgumentParser) -> None:
    """The model, the device and the image batch size of a command that loads the engine."""
    p.add_argument(
        "--model",
        help=f"Hub id or local CLIP folder (default: the model the --space was built with, else {DEFAULT_MODEL})",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--batch-size", type=POSITIVE, default=DEFAULT_BATCH_SIZE)


def fewshot_mode_arg(p: argparse.ArgumentParser) -> None:
    """The few-shot adapter to fit (SSP by default)."""
    p.add_argument("--fewshot-mode", choices=list(FEWSHOT_MODES), default=FEWSHOT_MODES[0])


def exact_decode_arg(p: argparse.ArgumentParser, text: str = "decode every JPEG pixel (default: reduced size)") -> None:
    """``--exact-decode``: JPEGs decoded in full instead of at reduced size."""
    p.add_argument("--exact-decode", action="store_true", help=text)


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
    p.add_argument("--short-side", type=POSITIVE, help=f"resize to this short side (s3 default: {DEFAULT_SHORT_SIDE})")
    p.add_argument("--long-side", type=POSITIVE, help="long-side cap of the resize (mmseg's 2048 in the references)")
    p.add_argument(
        "--window", type=NON_NEGATIVE, help=f"sliding window; 0: the whole image (s3 default: {DEFAULT_WINDOW})"
    )
    p.add_argument("--stride", type=POSITIVE, help=f"window stride (s3 default: {DEFAULT_STRIDE})")
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
        "pamr_dilations": tuple(int_list(args.pamr_dilations, "--pamr-dilations", minimum=1)) or None,
        "fast_decode": False if args.exact_decode else None,
    }
    return {k: v for k, v in given.items() if v is not None}
