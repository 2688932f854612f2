"""Requests: one typed, validated record per call, made before any work (cheap: nothing is built or loaded).

A :class:`ClassifyRequest` holds the :class:`SpaceRequest` to score against (classes and the texts that build their
space, or a saved space), the metric and the few-shot support. The text method of a built space is one of the
:data:`MethodSpec` records (S^3 or a baseline of :mod:`s3_hf.baselines`), each holding only its own fields. A
:class:`NamesRequest` is a segmentation by the references' names rule. Requests are hashable: equal requests share
the engine's cache entries (see :mod:`s3_hf.engine.keys`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from s3_hf.baselines.texts import DEFAULT_WAFFLE_COUNT, METHOD_TEMPLATES
from s3_hf.engine.keys import space_key, support_key, synonyms_key, texts_key
from s3_hf.errors import InvalidConfigError, InvalidLabelsError, TemplateError
from s3_hf.fewshot import SSPConfig
from s3_hf.models.families import check_canonicalization
from s3_hf.options import (
    DEFAULT_CONCEPT_FORMAT,
    DEFAULT_PAMR_DILATIONS,
    DEFAULT_TEXT_VECTOR,
    METHODS,
    TEXT_VECTORS,
    SpaceParams,
    check_knn_k,
    check_metric,
)
from s3_hf.space.build import check_concept_format, check_labels
from s3_hf.text.templates import DEFAULT_TEMPLATE, resolve_templates

if TYPE_CHECKING:
    from s3_hf.segmentation.names import NameQueries


# ------------------------------------------------------------------------------------------------ methods
@dataclass(frozen=True)
class S3Method:
    """S^3 itself; with ``descriptors`` (a mapping, a JSON file or ``True``: from the synonym source), S^3 with
    visual descriptors."""

    name: ClassVar[str] = "s3"
    descriptors_key: Hashable = None
    descriptors: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class DclipMethod:
    """DCLIP: the class's visual descriptors (a mapping, DCLIP's JSON file or ``True``: from the synonym source)."""

    name: ClassVar[str] = "dclip"
    descriptors_key: Hashable = None
    descriptors: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class CuplMethod:
    """CuPL: the class's generated prompts (a mapping or CuPL's JSON file)."""

    name: ClassVar[str] = "cupl"
    prompts_key: Hashable = None
    prompts: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class WaffleMethod:
    """WaffleCLIP: ``count`` pairs of random descriptors drawn with ``seed``, and its high-level ``concept``."""

    name: ClassVar[str] = "waffle"
    count: int = DEFAULT_WAFFLE_COUNT
    seed: int = 0
    concept: str | None = None


#: the text method of a built space
MethodSpec = S3Method | DclipMethod | CuplMethod | WaffleMethod


def method_spec(
    method: str = "s3",
    *,
    descriptors: Any = None,
    prompts: Any = None,
    waffle: Mapping[str, Any] | None = None,
    synonyms: Any = None,
) -> MethodSpec:
    """The validated method record of a request's ``method=``, ``descriptors=``, ``prompts=`` and ``waffle=``.

    Args:
        method: ``"s3"`` or a baseline: ``"cupl"``, ``"dclip"``, ``"waffle"``.
        descriptors: visual descriptors per class (``"s3"``, ``"dclip"``).
        prompts: CuPL's prompts per class (``"cupl"``).
        waffle: WaffleCLIP's options ``{"count", "seed", "concept"}`` (``"waffle"``).
        synonyms: the request's synonyms (refused by the methods that use none).
    """
    _check_method_arguments(method, descriptors, prompts, waffle, synonyms)
    if method == "cupl":
        return CuplMethod(texts_key(prompts, "CuPL prompts"), prompts)
    if method == "waffle":
        return _waffle_method(waffle)
    key = texts_key(descriptors, "Descriptors")
    return DclipMethod(key, descriptors) if method == "dclip" else S3Method(key, descriptors)


def _check_method_arguments(method: str, descriptors: Any, prompts: Any, waffle: Any, synonyms: Any) -> None:
    if method not in METHODS:
        raise InvalidConfigError(f"Unknown method {method!r}; use one of {METHODS}.")
    if method == "cupl" and prompts is None:
        raise InvalidConfigError("method='cupl' needs prompts= (a JSON file or {label: [prompt, ...]}).")
    if method == "dclip" and descriptors is None:
        raise InvalidConfigError("method='dclip' needs descriptors= (a JSON file, {label: [...]} or True).")
    if prompts is not None and method != "cupl":
        raise InvalidConfigError("prompts= are CuPL's; pass method='cupl' with them.")
    if waffle is not None and method != "waffle":
        raise InvalidConfigError("waffle= options are WaffleCLIP's; pass method='waffle' with them.")
    if method in ("cupl", "waffle") and synonyms is not None:
        raise InvalidConfigError(f"method={method!r} uses no synonyms; drop synonyms=.")
    if method in ("cupl", "waffle") and descriptors is not None:
        raise InvalidConfigError(f"method={method!r} uses no descriptors; drop descriptors=.")


def _waffle_method(waffle: Mapping[str, Any] | None) -> WaffleMethod:
    if waffle is None:
        return WaffleMethod()
    if not isinstance(waffle, Mapping) or set(waffle) - {"count", "seed", "concept"}:
        raise InvalidConfigError(f"waffle= takes {{'count', 'seed', 'concept'}}, got {waffle!r}.")
    return WaffleMethod(**waffle)


# ------------------------------------------------------------------------------------------------- spaces
@dataclass(frozen=True)
class SpaceRequest:
    """Which space to score against: labels (with synonyms, templates and a text method) to build one, or a saved
    space (``synonym_space``; ``labels`` then an optional subset of its classes)."""

    labels: tuple[str, ...] | None
    templates: tuple[str, ...] | None = None
    concept_format: str = DEFAULT_CONCEPT_FORMAT
    params: SpaceParams = field(default_factory=SpaceParams)
    tokenizer_kwargs: tuple[tuple[str, Any], ...] = ()
    canonicalization: str | None = None
    method: MethodSpec = field(default_factory=S3Method)
    synonyms_key: Hashable = None
    space_key: Hashable = None
    synonyms: Any = field(default=None, compare=False, repr=False)
    synonym_space: Any = field(default=None, compare=False, repr=False)


def check_space_options(options: Mapping[str, Any]) -> None:
    """An :class:`InvalidConfigError` for any name of ``options`` that is not a :class:`SpaceParams` option."""
    unknown = set(options) - set(SpaceParams.option_names())
    if unknown:
        raise InvalidConfigError(
            f"Unknown options {sorted(unknown)}; space options are {list(SpaceParams.option_names())}."
        )


def tokenizer_items(value: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """``tokenizer_kwargs`` as sorted, hashable items (part of the cache key)."""
    if not value:
        return ()
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidConfigError(f"tokenizer_kwargs must be a dict of keyword arguments, got {value!r}.")
    try:
        items = tuple(sorted(value.items()))
        hash(items)
    except TypeError as err:
        raise InvalidConfigError(f"tokenizer_kwargs values must be plain values (str, int, bool): {value!r}.") from err
    return items


def space_request(
    candidate_labels: Sequence[str] | None,
    synonym_space: Any = None,
    *,
    synonyms: Any = None,
    templates: str | Sequence[str] | None = None,
    hypothesis_template: str | None = None,
    concept_format: str = DEFAULT_CONCEPT_FORMAT,
    tokenizer_kwargs: Mapping[str, Any] | None = None,
    canonicalization: str | None = None,
    method: MethodSpec | None = None,
    space_options: Mapping[str, Any] | None = None,
) -> SpaceRequest:
    """The validated space of a request: a saved ``synonym_space`` (which fixes the texts), or one to build from
    ``candidate_labels`` (see :meth:`s3_hf.engine.core.S3Engine.request` for each option)."""
    space_options = dict(space_options or {})
    check_space_options(space_options)
    tok = tokenizer_items(tokenizer_kwargs)
    check_canonicalization(canonicalization)
    method = method or S3Method()
    labels = tuple(check_labels(candidate_labels)) if candidate_labels is not None else None
    if synonym_space is not None:
        texts = synonyms is not None or templates is not None or hypothesis_template is not None
        options = bool(space_options or concept_format != DEFAULT_CONCEPT_FORMAT or tok or canonicalization)
        _check_saved_space(texts, method, options, sorted(space_options))
        return SpaceRequest(labels, space_key=space_key(synonym_space), synonym_space=synonym_space)
    if labels is None:
        raise InvalidLabelsError("Pass candidate_labels=[...] or synonym_space=... to say what the classes are.")
    return SpaceRequest(
        labels,
        templates=request_templates(templates, hypothesis_template, method),
        concept_format=check_concept_format(concept_format),
        params=SpaceParams(**space_options),
        tokenizer_kwargs=tok,
        canonicalization=canonicalization,
        method=method,
        synonyms_key=synonyms_key(synonyms),
        synonyms=synonyms,
    )


def _check_saved_space(texts: bool, method: MethodSpec, options: bool, space_options: list[str]) -> None:
    """A saved space fixes its texts and options: refuse those that only apply when a space is built."""
    if texts:
        raise InvalidConfigError(
            "synonym_space already fixes the synonyms and templates; do not pass synonyms=, templates= "
            "or hypothesis_template= with it."
        )
    if method != S3Method():
        raise InvalidConfigError(
            "synonym_space was built already; method=, descriptors=, prompts= and waffle= only apply when "
            "a space is built from candidate_labels."
        )
    if options:
        raise InvalidConfigError(
            f"synonym_space was built already; options {sorted([*space_options, 'concept_format'])} only "
            "apply when a space is built from candidate_labels."
        )


def request_templates(
    templates: str | Sequence[str] | None, hypothesis_template: str | None, method: MethodSpec
) -> tuple[str, ...]:
    """The prompt templates of a built space: ``templates`` or ``hypothesis_template``, else the method's default
    (DCLIP's and WaffleCLIP's texts come in their authors' templates)."""
    if templates is not None and hypothesis_template is not None:
        raise TemplateError("Pass either hypothesis_template= or templates=, not both.")
    default = DEFAULT_TEMPLATE if method.name == "s3" else METHOD_TEMPLATES.get(method.name, DEFAULT_TEMPLATE)
    return tuple(resolve_templates(templates if templates is not None else hypothesis_template or default))


# ------------------------------------------------------------------------------------------ classification
@dataclass(frozen=True)
class ClassifyRequest:
    """A validated classification request: the space, the metric and, for few-shot, the support set."""

    space: SpaceRequest
    metric: str | None = None  # None: the space's own metric
    knn_k: int | None = None  # None: the space's own
    fewshot: SSPConfig | None = None
    text_vector: str = DEFAULT_TEXT_VECTOR
    support_key: Hashable = None
    support: Any = field(default=None, compare=False, repr=False)


def check_scoring(metric: str | None, knn_k: int | None, text_vector: str) -> None:
    """Typed errors for an unknown metric or text vector, or a ``knn_k`` that is not a positive integer."""
    if metric is not None:
        check_metric(metric)
    if knn_k is not None:
        check_knn_k(knn_k)
    if text_vector not in TEXT_VECTORS:
        raise InvalidConfigError(f"Unknown text_vector {text_vector!r} for few-shot; use one of {TEXT_VECTORS}.")


def fewshot_config(fewshot: SSPConfig | Mapping[str, Any] | None, support: Any) -> SSPConfig | None:
    """``fewshot=`` as an :class:`~s3_hf.fewshot.SSPConfig` (it needs a ``support=`` set)."""
    if fewshot is None:
        return None
    if support is None:
        raise InvalidConfigError("fewshot= options need a support= set of labelled images.")
    if isinstance(fewshot, SSPConfig):
        return fewshot
    if not isinstance(fewshot, Mapping):
        raise InvalidConfigError(f"fewshot must be an SSPConfig or a dict of its options, got {fewshot!r}.")
    return SSPConfig.from_dict(dict(fewshot))


def classify_request(
    space: SpaceRequest,
    *,
    metric: str | None = None,
    knn_k: int | None = None,
    support: Any = None,
    fewshot: SSPConfig | Mapping[str, Any] | None = None,
    text_vector: str = DEFAULT_TEXT_VECTOR,
) -> ClassifyRequest:
    """A validated classification request on ``space`` (see :meth:`s3_hf.engine.core.S3Engine.request`)."""
    check_scoring(metric, knn_k, text_vector)
    config = fewshot_config(fewshot, support)
    return ClassifyRequest(
        space,
        metric=metric,
        knn_k=knn_k,
        fewshot=config,
        text_vector=text_vector,
        support_key=support_key(support),
        support=support,
    )


# ------------------------------------------------------------------------------------------- segmentation
@dataclass(frozen=True)
class NamesRequest:
    """A segmentation by the references' multi-name rule: the class-name ``queries``, the ``label`` request that
    scores each distinct name by its cosine (``names``), and PAMR's steps (0: none) and dilations."""

    queries: NameQueries
    names: ClassifyRequest
    pamr_steps: int = 0
    pamr_dilations: tuple[int, ...] = DEFAULT_PAMR_DILATIONS


def names_request(
    queries: NameQueries,
    *,
    templates: str | Sequence[str] | None = None,
    hypothesis_template: str | None = None,
    pamr_steps: int = 0,
    pamr_dilations: Sequence[int] = DEFAULT_PAMR_DILATIONS,
) -> NamesRequest:
    """The validated names-rule request of ``queries`` (see :meth:`s3_hf.engine.core.S3Engine.names_request`)."""
    space = space_request(queries.names, templates=templates, hypothesis_template=hypothesis_template)
    names = classify_request(space, metric="label")
    return NamesRequest(queries, names, pamr_steps, tuple(pamr_dilations))


__all__ = [
    "ClassifyRequest",
    "CuplMethod",
    "DclipMethod",
    "MethodSpec",
    "NamesRequest",
    "S3Method",
    "SpaceRequest",
    "WaffleMethod",
    "check_scoring",
    "check_space_options",
    "classify_request",
    "fewshot_config",
    "method_spec",
    "names_request",
    "request_templates",
    "space_request",
    "tokenizer_items",
]
