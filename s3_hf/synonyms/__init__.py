"""Synonym sources: label -> synonymous concepts."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from s3_hf.errors import SynonymSourceError, WordNetMissingError
from s3_hf.synonyms.base import MAX_CONCEPTS, MAX_DESCRIPTORS, SynonymSource, clean_concepts, source_descriptors
from s3_hf.synonyms.curated import CuratedSource
from s3_hf.synonyms.llm import PROMPT_VERSION, LLMSource, TransformersChatSource, build_messages
from s3_hf.synonyms.openai_compat import OpenAICompatSource
from s3_hf.synonyms.parsing import parse_answer
from s3_hf.synonyms.static import (
    LabelOnlySource,
    StaticSource,
    read_descriptors_file,
    read_synonyms_file,
    write_synonyms_file,
)
from s3_hf.synonyms.wordnet import WordNetSource

SynonymsLike = SynonymSource | Mapping[str, Sequence[str]] | str | os.PathLike | None


def resolve_source(synonyms: SynonymsLike) -> SynonymSource:
    """``None`` -> label only, ``"curated:<benchmark>"`` -> a curated list, a mapping or a file path -> static, a
    source -> itself."""
    if synonyms is None:
        return LabelOnlySource()
    if isinstance(synonyms, SynonymSource):
        return synonyms
    if isinstance(synonyms, str) and synonyms.startswith("curated:"):
        return CuratedSource(synonyms)
    return StaticSource(synonyms)


__all__ = [
    "MAX_CONCEPTS",
    "MAX_DESCRIPTORS",
    "PROMPT_VERSION",
    "CuratedSource",
    "LLMSource",
    "LabelOnlySource",
    "OpenAICompatSource",
    "StaticSource",
    "SynonymSource",
    "SynonymSourceError",
    "SynonymsLike",
    "TransformersChatSource",
    "WordNetMissingError",
    "WordNetSource",
    "build_messages",
    "clean_concepts",
    "parse_answer",
    "read_descriptors_file",
    "read_synonyms_file",
    "resolve_source",
    "source_descriptors",
    "write_synonyms_file",
]
