"""The synonym-source protocol and the cleaning every source's output goes through (see the README, section
Method, step 1)."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from s3_hf.options import MAX_CONCEPTS
from s3_hf.space.records import ConceptRecord

logger = logging.getLogger(__name__)

MAX_WORDS = 5
#: Visual descriptors kept per class.
MAX_DESCRIPTORS = 5


@runtime_checkable
class SynonymSource(Protocol):
    """Anything that maps class labels to synonymous concepts.

    ``synonyms`` returns, per label, candidate concepts (the label itself need not be included; cleaning puts
    it first). ``provenance`` describes where they came from (source, model, prompt, date) for the artifact.
    A source may also have ``descriptors(labels) -> {label: [descriptor, ...]}``: short visual descriptors per
    class (see :func:`source_descriptors`).
    """

    name: str

    def synonyms(self, labels: Sequence[str]) -> dict[str, list[str]]: ...

    def provenance(self) -> dict[str, Any]: ...


def source_descriptors(source: Any, labels: Sequence[str]) -> dict[str, list[str]]:
    """The visual descriptors ``source`` gives each label (cleaned: at most :data:`MAX_DESCRIPTORS`, no blanks or
    case-insensitive repeats); empty lists for a source without descriptors."""
    get = getattr(source, "descriptors", None)
    raw = get(labels) if callable(get) else {}
    return {label: clean_descriptors(raw.get(label, [])) for label in labels}


def clean_descriptors(descriptors: Iterable[str], max_descriptors: int = MAX_DESCRIPTORS) -> list[str]:
    """Descriptors stripped, de-duplicated case-insensitively, blanks dropped, at most ``max_descriptors``."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in descriptors:
        text = normalise(raw)
        if text and text.casefold() not in seen and len(out) < max_descriptors:
            seen.add(text.casefold())
            out.append(text)
    return out


def normalise(text: str) -> str:
    """A label or concept as it is compared and stored: Unicode NFC, invisible formatting characters (zero-width
    spaces and joiners, direction marks, soft hyphens) removed, whitespace (line breaks too) collapsed to one space,
    stripped."""
    text = unicodedata.normalize("NFC", str(text))
    if not text.isascii():
        text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return re.sub(r"\s+", " ", text).strip()


def clean_concepts(
    label: str,
    concepts: Iterable[str],
    max_concepts: int = MAX_CONCEPTS,
    other_labels: Iterable[str] | Mapping[str, str] = (),
) -> list[str]:
    """``[label, *synonyms]``: stripped, de-duplicated case-insensitively, at most ``max_concepts`` synonyms.

    Concepts longer than five words or equal to another class's label are dropped with a warning.
    :func:`clean_concepts_with_drops` also returns what was dropped and why.
    """
    return clean_concepts_with_drops(label, concepts, max_concepts, other_labels)[0]


def clean_concepts_with_drops(
    label: str,
    concepts: Iterable[str],
    max_concepts: int = MAX_CONCEPTS,
    other_labels: Iterable[str] | Mapping[str, str] = (),
) -> tuple[list[str], list[ConceptRecord]]:
    """:func:`clean_concepts` and the concepts it dropped, each with its kind and reason.

    Args:
        label: the class label, always the first concept.
        concepts: candidate synonyms from a source.
        max_concepts: at most this many synonyms are kept; later ones are dropped (kind ``"limit"``).
        other_labels: the labels of all classes; a synonym equal to another one is dropped (``"other_label"``).
            Cleaning many labels, pass :func:`label_index` of them (built once) or use :func:`clean_all`.

    Returns:
        ``([label, *synonyms], dropped)``. Blank candidates are skipped without a record; every other dropped
        candidate is a :class:`~s3_hf.space.records.ConceptRecord` of kind ``"duplicate"`` (case-insensitively equal
        to the label or an earlier concept), ``"other_label"``, ``"too_long"`` (more than :data:`MAX_WORDS`
        words) or ``"limit"``, in input order.
    """
    seen = {label.casefold(): label}
    # Looked up only after ``seen``, so the label's own key in a shared index never matches here.
    others = other_labels if isinstance(other_labels, Mapping) else label_index(other_labels)
    out = [label]
    dropped: list[ConceptRecord] = []
    for raw in concepts:
        text = normalise(raw)
        key = text.casefold()
        if not text:
            continue
        if key in seen:
            what = "the label" if seen[key] == label and key == label.casefold() else repr(seen[key])
            dropped.append(ConceptRecord.dropped(text, "duplicate", f"duplicate of {what}"))
            continue
        if key in others:
            logger.warning("Dropping synonym %r of %r: it is the label of another class.", text, label)
            dropped.append(ConceptRecord.dropped(text, "other_label", f"the label of another class ({others[key]!r})"))
            continue
        if len(text.split()) > MAX_WORDS:
            logger.warning("Dropping synonym %r of %r: longer than %d words.", text, label, MAX_WORDS)
            dropped.append(ConceptRecord.dropped(text, "too_long", f"longer than {MAX_WORDS} words"))
            continue
        seen[key] = text
        if len(out) > max_concepts:
            dropped.append(ConceptRecord.dropped(text, "limit", f"over the limit of {max_concepts} synonyms"))
            continue
        out.append(text)
    return out, dropped


def label_index(labels: Iterable[str]) -> dict[str, str]:
    """Labels by their case-folded form (the last of case-insensitive repeats), for cleaning many labels."""
    return {label.casefold(): label for label in labels}


def clean_all(
    labels: Sequence[str], raw: Mapping[str, Iterable[str]], max_concepts: int = MAX_CONCEPTS
) -> dict[str, tuple[list[str], list[ConceptRecord]]]:
    """:func:`clean_concepts_with_drops` of every label's candidates in ``raw`` against the other labels.

    Linear in the number of labels: the labels are indexed once, not once per label.

    Args:
        labels: the class labels.
        raw: candidate synonyms per label (a label missing from it has none).
        max_concepts: at most this many synonyms per label.
    """
    index = label_index(labels)
    return {label: clean_concepts_with_drops(label, raw.get(label, []), max_concepts, index) for label in labels}


__all__ = [
    "MAX_DESCRIPTORS",
    "MAX_WORDS",
    "SynonymSource",
    "clean_all",
    "clean_concepts",
    "clean_concepts_with_drops",
    "clean_descriptors",
    "label_index",
    "normalise",
    "source_descriptors",
]
