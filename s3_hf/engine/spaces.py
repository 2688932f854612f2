"""The space of a :class:`~s3_hf.engine.requests.SpaceRequest` built from its labels: S^3's synonym space
(:func:`~s3_hf.space.build.build_synonym_space`) or a baseline's (:func:`~s3_hf.baselines.build_method_space`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from s3_hf.engine.requests import CuplMethod, DclipMethod, S3Method, SpaceRequest, WaffleMethod
from s3_hf.models.encoders import Encoder
from s3_hf.space.artifact import SynonymSpace
from s3_hf.space.build import build_synonym_space


def build_requested_space(encoder: Encoder, request: SpaceRequest, base_model: str | None) -> SynonymSpace:
    """Build the space ``request`` asks for with ``encoder`` (its texts encoded once; the caller caches it).

    Args:
        encoder: the model's encoder.
        request: a space request with labels (not a saved space).
        base_model: the checkpoint name recorded in the space.
    """
    labels = list(request.labels or ())
    if not isinstance(request.method, S3Method):
        return _build_baseline(encoder, request, labels, base_model)
    return build_synonym_space(
        encoder,
        None,
        labels,
        request.synonyms,
        templates=list(request.templates or ()),
        concept_format=request.concept_format,
        params=request.params,
        base_model=base_model,
        tokenizer_kwargs=dict(request.tokenizer_kwargs),
        canonicalization=request.canonicalization,
        descriptors=_class_texts(request.method.descriptors, labels),
    )


def _build_baseline(encoder: Encoder, request: SpaceRequest, labels: list[str], base_model: str | None) -> SynonymSpace:
    from s3_hf.baselines import build_method_space

    method = request.method
    descriptors = prompts = None
    if isinstance(method, DclipMethod):
        descriptors = _class_texts(method.descriptors, labels)
        if descriptors is True:
            from s3_hf.synonyms import resolve_source, source_descriptors

            descriptors = source_descriptors(resolve_source(request.synonyms), labels)
    if isinstance(method, CuplMethod):
        prompts = method.prompts
    waffle = method if isinstance(method, WaffleMethod) else WaffleMethod()
    return build_method_space(
        encoder,
        None,
        labels,
        method.name,
        descriptors=descriptors,
        prompts=prompts,
        templates=list(request.templates or ()),
        base_model=base_model,
        canonicalization=request.canonicalization,
        waffle_count=waffle.count,
        seed=waffle.seed,
        concept=waffle.concept,
    )


def _class_texts(value: Any, labels: list[str]) -> Any:
    """Descriptors given as a mapping or a JSON file, matched to ``labels``; ``True`` or ``None`` as they are."""
    if not isinstance(value, str | os.PathLike | Mapping):
        return value
    from s3_hf.baselines import match_class_texts, read_class_texts

    return match_class_texts(read_class_texts(value, "Descriptors"), labels)[0]


__all__ = ["build_requested_space"]
