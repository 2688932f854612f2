"""The ``s3`` command: its parser, assembled from one module per sub-command, and :func:`main`, which runs a
sub-command and turns its failures into one line on stderr and an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

import s3_hf.cli.bench as bench
import s3_hf.cli.build as build
import s3_hf.cli.card as card
import s3_hf.cli.classify as classify
import s3_hf.cli.demo as demo
import s3_hf.cli.eval as eval_command
import s3_hf.cli.export as export
import s3_hf.cli.fewshot as fewshot
import s3_hf.cli.inspect as inspect
import s3_hf.cli.push as push
import s3_hf.cli.segment as segment
import s3_hf.cli.space as space
import s3_hf.cli.synonyms as synonyms
from s3_hf.cli.arguments import verbose_arg
from s3_hf.errors import S3Error

#: The sub-commands, in the order ``s3 --help`` lists them.
COMMANDS = (build, classify, segment, fewshot, demo, synonyms, bench, eval_command, card, space, inspect, push, export)


def build_parser() -> argparse.ArgumentParser:
    """The ``s3`` parser: every sub-command's own parser, each taking ``-v`` before or after it."""
    parser = argparse.ArgumentParser(prog="s3", description="S^3 synonym-space zero-shot image classification.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        verbose_arg(command.register(sub))
    return parser


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
    args = build_parser().parse_args(argv)
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
