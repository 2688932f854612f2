"""How many classes of each benchmark get at least one synonym: from the curated lists shipped with the package and
from WordNet (``python -m s3_hf.evaluation.coverage [--imagenet-sample DIR]``; WordNet needs the ``wordnet`` extra and
its data). ImageNet's WordNet senses come from the sample's ``classes.tsv`` (``--imagenet-sample`` or
``$S3_IMAGENET_SAMPLE``); other benchmarks look their labels up by name, first sense."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from s3_hf.evaluation.data.registry import IMAGENET_SAMPLE_ENV
from s3_hf.synonyms import WordNetSource
from s3_hf.synonyms.base import clean_all
from s3_hf.synonyms.curated import CURATED_DIR, read_curated


def coverage(imagenet_sample: str | None = None) -> list[dict[str, int | str]]:
    """Per benchmark with a curated list: classes, classes with a curated synonym, with a WordNet synonym, and with
    curated descriptors."""
    rows = []
    for path in sorted(CURATED_DIR.glob("*.json")):
        lst = read_curated(path.stem)
        labels = lst.labels
        senses: dict[str, str] = {}
        tsv = Path(imagenet_sample or os.environ.get(IMAGENET_SAMPLE_ENV) or "") / "classes.tsv"
        if path.stem == "imagenet1k" and tsv.is_file():
            table = [r.split("\t") for r in tsv.read_text(encoding="utf-8").splitlines()[1:]]
            senses = {r[3]: r[1] for r in table}
        found = WordNetSource(senses=senses).synonyms(labels)
        unique = list(dict.fromkeys(labels))
        cleaned = clean_all(unique, found, 10)
        rows.append(
            {
                "benchmark": path.stem,
                "classes": len(labels),
                "curated": sum(bool(e.synonyms) for e in lst.entries),
                "wordnet": sum(bool(cleaned[lab][0][1:]) for lab in unique),
                "descriptors": sum(bool(e.descriptors) for e in lst.entries),
            }
        )
    return rows


def markdown(rows: list[dict[str, int | str]]) -> str:
    lines = [
        "| benchmark | classes | with a synonym: curated | with a synonym: WordNet | with descriptors: curated |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['benchmark']} | {r['classes']} | {r['curated']} | {r['wordnet']} | {r['descriptors']} |" for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imagenet-sample", help=f"the imagenet-sample folder (default ${IMAGENET_SAMPLE_ENV})")
    args = parser.parse_args(argv)
    print(markdown(coverage(args.imagenet_sample)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
