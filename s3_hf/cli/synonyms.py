"""``s3 synonyms``: labels -> a human-editable synonyms file (WordNet, an LLM, or a benchmark's curated list)."""

from __future__ import annotations

import argparse
from typing import Any

from s3_hf.cli.arguments import NON_NEGATIVE, POSITIVE, Subparsers
from s3_hf.cli.common import read_label_table
from s3_hf.errors import CLIUsageError, InvalidLabelsError
from s3_hf.options import MAX_CONCEPTS


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 synonyms`` to the ``s3`` command's sub-parsers."""
    y = subparsers.add_parser("synonyms", help="labels -> a human-editable synonyms file (WordNet or an LLM)")
    y.add_argument(
        "labels",
        nargs="?",
        help="labels file (.txt, .json, or .tsv/.csv with a label/clip_name and wnid column); with --source curated "
        "the benchmark's classes by default",
    )
    y.add_argument("--source", choices=["wordnet", "transformers", "openai", "curated"], default="wordnet")
    y.add_argument("--benchmark", help="curated: the benchmark whose shipped list to write (e.g. imagenet1k)")
    y.add_argument("--out", required=True, help="synonyms file to write (.yaml or .json)")
    y.add_argument("--max-synonyms", type=NON_NEGATIVE, default=MAX_CONCEPTS)
    y.add_argument("--model", help="LLM: Hub id or folder (transformers), model name (openai)")
    y.add_argument("--base-url", help="openai: endpoint base URL (default $OPENAI_BASE_URL or api.openai.com)")
    y.add_argument("--api-key-env", default="OPENAI_API_KEY", help="openai: environment variable with the key")
    y.add_argument("--concurrency", type=POSITIVE, default=4, help="openai: requests in flight")
    y.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="openai: time limit of each request, in total"
    )
    y.add_argument("--retries", type=int, default=3, metavar="N", help="openai: retries of a failed request")
    y.add_argument("--domain", help="LLM: what the dataset is about, e.g. 'aircraft models'")
    y.add_argument(
        "--ambiguous",
        choices=["fit", "first", "label-only", "error"],
        default="fit",
        help="wordnet: the sense of an ambiguous label (fit: the one nearest the other labels)",
    )
    y.add_argument("--no-cache", action="store_true", help="LLM: ignore and do not write the on-disk cache")
    y.add_argument(
        "--descriptors", action="store_true", help="LLM: also ask for up to 5 visual descriptors per label (kept)"
    )
    y.add_argument("--device", default="auto")
    y.add_argument("--batch-size", type=POSITIVE, default=8, help="transformers: labels per generate call")
    y.set_defaults(func=run)
    return y


def make_source(args: argparse.Namespace, senses: dict[str, str]) -> Any:
    """The synonym source named on the command line.

    Args:
        args: the parsed ``s3 synonyms`` arguments.
        senses: WordNet ids by label (WordNet: the sense of each label).
    """
    from s3_hf.synonyms import OpenAICompatSource, TransformersChatSource, WordNetSource

    common = {"max_synonyms": args.max_synonyms}
    if args.source == "curated":
        from s3_hf.synonyms import CuratedSource

        return CuratedSource(args.benchmark)
    if args.source == "wordnet":
        return WordNetSource(senses=senses, ambiguous=args.ambiguous, **common)
    llm = {**common, "domain": args.domain, "cache": False if args.no_cache else True, "progress": True}
    llm["descriptors"] = args.descriptors
    if args.source == "openai":
        if not args.model:
            raise InvalidLabelsError("--source openai needs --model (the endpoint's model name).")
        return OpenAICompatSource(
            args.model,
            args.base_url,
            api_key_env=args.api_key_env,
            concurrency=args.concurrency,
            timeout=args.timeout,
            max_retries=args.retries,
            **llm,
        )
    if not args.model:
        raise InvalidLabelsError("--source transformers needs --model (a Hub id or local folder of a chat LM).")
    device = None if args.device == "auto" else args.device
    return TransformersChatSource(args.model, device=device, batch_size=args.batch_size, **llm)


def _labels(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The labels (a file's, or the curated benchmark's classes) and their WordNet senses when the file gives ids."""
    from s3_hf.synonyms.curated import available, read_curated

    if args.source == "curated":
        if not args.benchmark:
            raise CLIUsageError("--source curated needs --benchmark NAME (one of: " + ", ".join(available()) + ").")
    elif args.benchmark:
        raise CLIUsageError("--benchmark only goes with --source curated.")
    if args.labels is None and args.source != "curated":
        raise CLIUsageError("Pass a labels file (or --source curated --benchmark NAME, whose classes are the labels).")
    if args.labels is None:
        labels, ids = read_curated(args.benchmark).labels, []
    else:
        labels, ids = read_label_table(args.labels)
    senses = dict(zip(labels, ids, strict=True)) if ids else {}
    if ids and len({x.casefold() for x in labels}) < len(labels):
        from s3_hf.synonyms import WordNetSource

        labels, senses = WordNetSource().unique_labels(labels, ids)
    return labels, senses


def run(args: argparse.Namespace) -> int:
    """Ask the source for each label's synonyms and write the synonyms file."""
    from s3_hf.synonyms import source_descriptors, write_synonyms_file
    from s3_hf.synonyms.base import clean_all
    from s3_hf.text.labels import check_labels

    labels, senses = _labels(args)
    check_labels(labels)
    source = make_source(args, senses)
    raw = source.synonyms(labels)
    mapping = {label: concepts[1:] for label, (concepts, _) in clean_all(labels, raw, args.max_synonyms).items()}
    empty = [label for label, syn in mapping.items() if not syn]
    descriptors = source_descriptors(source, labels)
    out = write_synonyms_file(args.out, mapping, source.provenance(), fallback=empty, descriptors=descriptors)
    counts = [len(v) for v in mapping.values()]
    print(
        f"Wrote {out}: {len(labels)} labels, {sum(counts)} synonyms "
        f"({sum(counts) / max(len(labels), 1):.1f} per label, max {max(counts, default=0)}); "
        f"{len(empty)} label-only{': ' + ', '.join(empty[:10]) + (' ...' if len(empty) > 10 else '') if empty else ''}."
    )
    print(f"Review and edit it, then: s3 build --synonyms {out} --out my-space")
    return 0
