"""``s3 space build`` and ``s3 space push``: a deployable Gradio Space folder (:mod:`s3_hf.app.deploy`)."""

from __future__ import annotations

import argparse

from s3_hf.cli.arguments import Subparsers, verbose_arg


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 space`` (and its ``build`` and ``push``) to the ``s3`` command's sub-parsers."""
    g = subparsers.add_parser("space", help="write a deployable Gradio Space folder, or push one to the Hub")
    space_sub = g.add_subparsers(dest="space_command", required=True)
    gb = space_sub.add_parser("build", help="write app.py, README.md, requirements.txt and the s3_hf package to DIR")
    gb.add_argument("dir", help="folder to write (must be empty or absent unless --overwrite)")
    gb.add_argument("--overwrite", action="store_true", help="replace a non-empty DIR")
    gb.add_argument(
        "--model",
        help="the CLIP model the Space serves, a Hub id (default: the app's default model, or with --space the "
        "model the space was built with); preloaded when the Space is built",
    )
    gb.add_argument(
        "--space",
        help="a synonym space on the Hub (org/name) the Space opens with; preloaded when the Space is built",
    )
    gb.add_argument(
        "--zero-gpu",
        action="store_true",
        help="suggest ZeroGPU hardware and list the `spaces` package in requirements.txt",
    )
    gb.add_argument("--token", help="Hub token to read a private --space (default: HF_TOKEN or `hf auth login`)")
    gb.set_defaults(func=run)
    gp = space_sub.add_parser("push", help="upload a folder written by `s3 space build` to a Gradio Space repo")
    gp.add_argument("dir", help="the folder `s3 space build` wrote")
    gp.add_argument("repo_id", help="e.g. your-name/s3-demo")
    gp.add_argument("--token", help="Hub token (default: HF_TOKEN or `hf auth login`)")
    gp.add_argument("--private", action="store_true")
    gp.set_defaults(func=run)
    for sub in (gb, gp):
        verbose_arg(sub)
    return g


def run(args: argparse.Namespace) -> int:
    """Write the Space folder, or push it."""
    from s3_hf.app.deploy import build_space, push_space, resolve_target

    if args.space_command == "build":
        target = resolve_target(args.model, args.space, zero_gpu=args.zero_gpu, token=args.token)
        out = build_space(args.dir, overwrite=args.overwrite, target=target)
        files = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir()))
        print(
            f"Wrote the Gradio Space {out} for {target.served_model()}"
            + (f" and the synonym space {target.space}" if target.space else "")
            + f": {files}.\nDeploy it with `s3 space push {args.dir} YOUR-NAME/SPACE`."
        )
        return 0
    url = push_space(args.dir, args.repo_id, token=args.token, private=args.private)
    print(f"Pushed the Space to {url}")
    return 0
