"""``s3 push``: a space folder, with the few-shot adapter saved beside it and the results ``s3 card`` wrote into
its card, uploaded to a Hub model repo in one commit that also deletes the files earlier pushes wrote and this one
no longer holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from s3_hf.cli.arguments import Subparsers


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 push`` to the ``s3`` command's sub-parsers."""
    p = subparsers.add_parser(
        "push",
        help="upload a space folder (and its few-shot adapter) to a Hub model repo in one commit",
        description="Upload a space folder and the few-shot adapter saved beside it in one commit. Files an earlier "
        "push wrote that this one no longer holds (an adapter fitted on the space before, renamed files) are "
        "deleted in the same commit; files s3-hf did not write stay.",
    )
    p.add_argument("folder")
    p.add_argument("repo_id", help="e.g. your-name/imagenet-s3-vitb32")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or `hf auth login`)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", help="the branch to commit to (default: main)")
    p.add_argument(
        "--license",
        help="the license in the pushed model card, a Hub license id (default: the folder card's, else apache-2.0)",
    )
    p.add_argument(
        "--bundle",
        action="store_true",
        help="carry the base model's files in base_model/, so the repo runs without fetching the base model",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Upload the space and the adapter saved beside it (if any) in one commit."""
    from s3_hf.fewshot import SSP_CONFIG_NAME, SSPAdapter
    from s3_hf.space.artifact import SynonymSpace
    from s3_hf.space.card_results import carried_from

    space = SynonymSpace.from_pretrained(args.folder)
    adapter = SSPAdapter.from_pretrained(args.folder) if (Path(args.folder) / SSP_CONFIG_NAME).is_file() else None
    card, files = carried_from(args.folder)  # the license and results the folder's card holds (`s3 card`)
    if args.license:
        card["license"] = args.license
    url = space.push_to_hub(
        args.repo_id,
        token=args.token,
        private=args.private,
        revision=args.revision,
        adapter=adapter,
        card=card,
        files=files,
        bundle=args.bundle,
    )
    print(f"Pushed the space{' and its few-shot adapter' if adapter is not None else ''} to {url}")
    return 0
