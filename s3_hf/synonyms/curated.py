"""Curated synonym lists shipped with the package, for the classes of every benchmark of ``s3 eval``.

Each file in ``s3_hf/synonyms/curated/`` covers one benchmark: per class, in class order, up to ten names of the
*same* visual category (at most five words each; no hypernyms, parts or attributes; never another class's label)
and up to five short visual descriptors, written and reviewed by hand, with the provenance of the class names in
the file. Use them as a synonym source: ``synonyms="curated:imagenet1k"`` in Python, ``--synonyms
curated:imagenet1k`` on the command line, or ``s3 synonyms --source curated --benchmark imagenet1k`` to write an
editable copy. Benchmarks that share ImageNet's classes (ImageNet-V2, -Sketch, -A, -R and the ImageNet sample)
use the ImageNet-1k list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from s3_hf.errors import SynonymsError

CURATED_DIR = Path(__file__).resolve().parent / "curated"
PREFIX = "curated:"
#: Benchmarks that use another benchmark's list (their classes are a subset of, or equal to, its classes).
ALIASES = {
    "imagenetv2": "imagenet1k",
    "imagenet-sketch": "imagenet1k",
    "imagenet-a": "imagenet1k",
    "imagenet-r": "imagenet1k",
    "imagenet-sample": "imagenet1k",
}


@dataclass(frozen=True)
class CuratedEntry:
    """One class of a curated list."""

    label: str
    synonyms: tuple[str, ...]
    descriptors: tuple[str, ...]


@dataclass(frozen=True)
class CuratedList:
    """A benchmark's curated list: its classes in order, and where the class names and the lists come from."""

    benchmark: str
    entries: tuple[CuratedEntry, ...]
    provenance: dict[str, Any]

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.entries]

    def synonyms(self) -> dict[str, list[str]]:
        return {e.label: list(e.synonyms) for e in self.entries}

    def descriptors(self) -> dict[str, list[str]]:
        return {e.label: list(e.descriptors) for e in self.entries}


def available() -> list[str]:
    """The benchmarks with a curated list (aliases included)."""
    return sorted({p.stem for p in CURATED_DIR.glob("*.json")} | set(ALIASES))


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise SynonymsError(f"Curated list {where} must be a list of strings, got {value!r}.")
    return tuple(value)


@cache
def read_curated(benchmark: str) -> CuratedList:
    """The curated list of ``benchmark`` (a registry name or alias), validated.

    Raises:
        SynonymsError: there is no list for ``benchmark`` (the message lists those there are), or it is malformed.
    """
    name = ALIASES.get(benchmark, benchmark)
    path = CURATED_DIR / f"{name}.json"
    if not path.is_file():
        raise SynonymsError(
            f"No curated synonym list for {benchmark!r}; there are lists for: {', '.join(available())}."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        classes = data["classes"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SynonymsError(f"The curated list {path.name} is damaged ({err}); reinstall s3-hf.") from err
    entries = []
    for i, c in enumerate(classes):
        where = f"{path.name} class {i}"
        if not isinstance(c, dict) or not isinstance(c.get("label"), str):
            raise SynonymsError(f"{where} needs a 'label' string.")
        entries.append(
            CuratedEntry(
                c["label"],
                _strings(c.get("synonyms", []), f"{where} synonyms"),
                _strings(c.get("descriptors", []), f"{where} descriptors"),
            )
        )
    return CuratedList(name, tuple(entries), dict(data.get("provenance") or {}))


class CuratedSource:
    """Synonyms and descriptors from a curated list shipped with the package (see the module docstring).

    Args:
        benchmark: a benchmark name (``"imagenet1k"``, ``"oxford-pets"``, ...; ``curated:`` prefix allowed).

    Labels are matched to the list's class names exactly, else ignoring case, underscores and repeated spaces; labels
    that are not classes of the list get no synonyms (label only).
    """

    name = "curated"

    def __init__(self, benchmark: str) -> None:
        self.benchmark = benchmark.removeprefix(PREFIX)
        self.list = read_curated(self.benchmark)
        self._date = datetime.now(UTC).isoformat(timespec="seconds")

    def _matched(self, mapping: dict[str, list[str]], labels: Sequence[str]) -> dict[str, list[str]]:
        from s3_hf.baselines.texts import match_class_texts

        matched = match_class_texts(mapping, labels)[0]
        return {label: list(matched.get(label, [])) for label in labels}

    def synonyms(self, labels: Sequence[str]) -> dict[str, list[str]]:
        return self._matched(self.list.synonyms(), labels)

    def descriptors(self, labels: Sequence[str]) -> dict[str, list[str]]:
        return self._matched(self.list.descriptors(), labels)

    def provenance(self) -> dict[str, Any]:
        return {"name": self.name, "benchmark": self.list.benchmark, **self.list.provenance, "date": self._date}


__all__ = ["ALIASES", "CURATED_DIR", "CuratedEntry", "CuratedList", "CuratedSource", "available", "read_curated"]
