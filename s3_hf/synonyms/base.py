"""The synonym-source protocol and the cleaning every source's output goes through (DESIGN §2 step 1)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

logger = logging.getLogger(__name__)

MAX_CONCEPTS = 10
MAX_WORDS = 5


@runtime_checkable
class SynonymSource(Protocol):
    """Anything that maps class labels to synonymous concepts.

    ``synonyms`` returns, per label, candidate concepts (the label itself need not be included; cleaning puts
    it first). ``provenance`` describes where they came from (source, model, prompt, date) for the artifact.
    """

    name: str

    def synonyms(self, labels: Sequence[str]) -> dict[str, list[str]]: ...

    def provenance(self) -> dict[str, Any]: ...


def normalise(text: str) -> str:
    """Strip and collapse whitespace."""
    return re.sub(r"\s+", " ", str(text)).strip()


def clean_concepts(
    label: str,
    concepts: Iterable[str],
    max_concepts: int = MAX_CONCEPTS,
    other_labels: Iterable[str] = (),
) -> list[str]:
    """``[label, *synonyms]``: stripped, de-duplicated case-insensitively, at most ``max_concepts`` synonyms.

    Concepts longer than five words or equal to another class's label are dropped with a warning.
    """
    seen = {label.casefold()}
    others = {o.casefold() for o in other_labels} - seen
    out = [label]
    for raw in concepts:
        text = normalise(raw)
        key = text.casefold()
        if not text or key in seen:
            continue
        if key in others:
            logger.warning("Dropping synonym %r of %r: it is the label of another class.", text, label)
            continue
        if len(text.split()) > MAX_WORDS:
            logger.warning("Dropping synonym %r of %r: longer than %d words.", text, label, MAX_WORDS)
            continue
        seen.add(key)
        out.append(text)
        if len(out) > max_concepts:
            break
    return out
