"""``s3 inspect``: a synonym space summarised (classes, kept and pruned concepts, radii), read without torch."""

from __future__ import annotations

import argparse
import json

from s3_hf.cli.arguments import NON_NEGATIVE, Subparsers
from s3_hf.cli.common import print_table


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 inspect`` to the ``s3`` command's sub-parsers."""
    i = subparsers.add_parser("inspect", help="summarise a synonym space: classes, kept and pruned concepts, radii")
    i.add_argument("space", help="artifact folder or Hub id")
    i.add_argument("--revision")
    i.add_argument("--limit", type=NON_NEGATIVE, default=20, help="classes to list (default 20)")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=run)
    return i


def run(args: argparse.Namespace) -> int:
    """Print the space's summary: JSON, or a header and a table of its first classes."""
    from s3_hf.space.files import read_summary

    s = read_summary(args.space, revision=args.revision)  # without torch: inspecting starts at once
    if args.json:
        print(json.dumps(s.to_dict(), indent=2))
        return 0
    print(f"Synonym space for {s.base_model} (metric {s.metric}, radius rule {s.radius_rule})")
    simplices = ", ".join(f"{n} with {k} vertices" for k, n in sorted(s.simplices.items()))
    print(
        f"{s.classes} classes, {s.points} concepts: {s.kept} kept, {s.dropped} pruned "
        f"({s.removed} more dropped before embedding); "
        f"{s.embedding_dim}-d points, {s.templates} templates; simplices: {simplices}\n"
    )
    rows = [
        {
            "class": r.label,
            "radius": f"{r.radius:.4f}",
            "kept": ", ".join(r.kept),
            "dropped (why)": "; ".join(f"{d.text} ({d.reason})" for d in r.drops) or "-",
        }
        for r in s.per_class[: args.limit]
    ]
    print_table(rows, ["class", "radius", "kept", "dropped (why)"])
    if len(s.per_class) > args.limit:
        print(f"... {len(s.per_class) - args.limit} more classes (--limit N to show more)")
    return 0
