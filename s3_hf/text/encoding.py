"""Concept texts and prompts; texts -> unit vectors through the encoder interface (:mod:`s3_hf.models.encoders`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from s3_hf.models.encoders import as_encoder
from s3_hf.options import DEFAULT_CONCEPT_FORMAT


def encode_texts(
    model: Any,
    tokenizer: Callable[..., Any] | None,
    texts: Sequence[str],
    batch_size: int = 256,
    progress: bool = False,
    tokenizer_kwargs: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Texts -> ``(N, D)`` unit vectors (float32, on the model's device). Tokenised as transformers' zero-shot
    pipeline does for the model's family (see :mod:`s3_hf.models.families`); ``tokenizer_kwargs`` override that."""
    encoder = as_encoder(model, tokenizer)
    return encoder.encode_texts(texts, batch_size=batch_size, progress=progress, tokenizer_kwargs=tokenizer_kwargs)


def max_text_tokens(model: Any) -> int:
    """The text encoder's context length (77 for CLIP; see :func:`s3_hf.models.families.max_text_tokens`)."""
    return as_encoder(model).max_text_tokens


def token_lengths(tokenizer: Callable[..., Any], texts: Sequence[str]) -> list[int]:
    """Number of tokens of each text, special tokens included, without truncation (a transformers tokenizer)."""
    return [len(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]]


def concept_text(concept: str, label: str, concept_format: str = DEFAULT_CONCEPT_FORMAT) -> str:
    """The structured text ``x_ci`` of a concept; the label itself is used bare (see the README, section Method)."""
    return label if concept == label else concept_format.format(concept=concept, label=label)


def concept_prompts(texts: Sequence[str], templates: Sequence[str]) -> list[str]:
    """All prompts, concept-major: ``[p_1(x_0), ..., p_T(x_0), p_1(x_1), ...]``."""
    return [t.format(x) for x in texts for t in templates]


def encode_concepts(
    model: Any,
    tokenizer: Callable[..., Any] | None,
    texts: Sequence[str],
    templates: Sequence[str],
    batch_size: int = 256,
    progress: bool = False,
    tokenizer_kwargs: dict[str, Any] | None = None,
    canonicalization: str | None = None,
) -> torch.Tensor:
    """Each concept text -> the template ensemble ``n(mean_j n(g(p_j(x))))``, shape ``(len(texts), D)``; each
    prompt is first put through the text ``canonicalization`` (see :func:`s3_hf.models.families.canonicalize`)."""
    return encode_concept_groups(
        model,
        tokenizer,
        [[t] for t in texts],
        templates,
        batch_size=batch_size,
        progress=progress,
        tokenizer_kwargs=tokenizer_kwargs,
        canonicalization=canonicalization,
    )


def encode_concept_groups(
    model: Any,
    tokenizer: Callable[..., Any] | None,
    groups: Sequence[Sequence[str]],
    templates: Sequence[str],
    batch_size: int = 256,
    progress: bool = False,
    tokenizer_kwargs: dict[str, Any] | None = None,
    canonicalization: str | None = None,
) -> torch.Tensor:
    """Each group of texts (a concept with its descriptors, or a class with its prompts) -> one unit vector, the
    mean over its texts and the templates, ``n(mean_{x, j} n(g(p_j(x))))``; shape ``(len(groups), D)``."""
    from s3_hf.models.families import canonicalize

    if any(not g for g in groups):
        raise ValueError("every group needs at least one text")
    flat = [x for g in groups for x in g]
    prompts = [canonicalize(p, canonicalization) for p in concept_prompts(flat, templates)]
    encoder = as_encoder(model, tokenizer)
    emb = encoder.encode_texts(prompts, batch_size=batch_size, progress=progress, tokenizer_kwargs=tokenizer_kwargs)
    sizes = torch.tensor([len(g) * len(templates) for g in groups], device=emb.device)
    owner = torch.repeat_interleave(torch.arange(len(groups), device=emb.device), sizes)
    sums = torch.zeros(len(groups), emb.shape[-1], device=emb.device, dtype=emb.dtype).index_add_(0, owner, emb)
    return F.normalize(sums / sizes[:, None], dim=-1).cpu()
