"""Synonym sources: label -> synonymous concepts."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .base import MAX_CONCEPTS, SynonymSource, clean_concepts
from .static import LabelOnlySource, StaticSource, read_synonyms_file

SynonymsLike = SynonymSource | Mapping[str, Sequence[str]] | str | os.PathLike | None


def resolve_source(synonyms: SynonymsLike) -> SynonymSource:
    """``None`` -> label only, a mapping or a file path -> static, a source -> itself."""
    if synonyms is None:
        return LabelOnlySource()
    if isinstance(synonyms, SynonymSource):
        return synonyms
    return StaticSource(synonyms)


__all__ = [
    "MAX_CONCEPTS",
    "LabelOnlySource",
    "StaticSource",
    "SynonymSource",
    "SynonymsLike",
    "clean_concepts",
    "read_synonyms_file",
    "resolve_source",
]
