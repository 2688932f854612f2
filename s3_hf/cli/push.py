"""``s3 push``: an artifact folder (and a few-shot adapter saved beside it) uploaded to a Hub model repo."""

from __future__ import annotations

import argparse
from pathlib import Path

from s3_hf.cli.arguments import Subparsers


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 push`` to the ``s3`` command's sub-parsers."""
    p = subparsers.add_parser("push", help="upload an artifact folder to a Hub model repo")
    p.add_argument("folder")
    p.add_argument("repo_id", help="e.g. your-name/imagenet-s3-vitb32")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or `hf auth login`)")
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Upload the space, then the adapter saved beside it (if any)."""
    from s3_hf.fewshot import SSP_CONFIG_NAME, SSPAdapter
    from s3_hf.space.artifact import SynonymSpace

    space = SynonymSpace.from_pretrained(args.folder)
    adapter = SSPAdapter.from_pretrained(args.folder) if (Path(args.folder) / SSP_CONFIG_NAME).is_file() else None
    url = space.push_to_hub(args.repo_id, token=args.token, private=args.private)
    print(f"Pushed to {url}")
    if adapter is not None:  # a few-shot adapter saved beside the space travels with it
        url = adapter.push_to_hub(args.repo_id, token=args.token, private=args.private)
        print(f"Pushed the few-shot adapter to {url}")
    return 0
