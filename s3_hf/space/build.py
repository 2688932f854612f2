"""labels -> concepts -> points -> space: build a :class:`SynonymSpace` with a CLIP model."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import torch

from s3_hf.errors import InvalidConfigError, InvalidLabelsError, SynonymsError, TemplateError
from s3_hf.models.encoders import Encoder, as_encoder
from s3_hf.models.families import check_canonicalization
from s3_hf.models.loading import model_identity
from s3_hf.options import DEFAULT_DESCRIPTOR_FORMAT, check_knn_k
from s3_hf.space.artifact import S3Config, SynonymSpace
from s3_hf.space.geometry import SpaceParams, build_space
from s3_hf.space.records import ClassRecord, ConceptRecord
from s3_hf.space.scoring import DEFAULT_METRIC, check_metric
from s3_hf.synonyms import MAX_CONCEPTS, StaticSource, SynonymsLike, resolve_source
from s3_hf.synonyms.base import clean_all, clean_descriptors, normalise, source_descriptors
from s3_hf.text.encoding import DEFAULT_CONCEPT_FORMAT, concept_text, encode_concept_groups
from s3_hf.text.labels import check_labels
from s3_hf.text.templates import resolve_templates

logger = logging.getLogger(__name__)


def check_concept_format(concept_format: str) -> str:
    try:
        concept_format.format(concept="x", label="y")
    except (KeyError, IndexError, ValueError) as err:
        raise TemplateError(
            f"concept_format {concept_format!r} may only use the fields {{concept}} and {{label}}: {err}"
        ) from err
    if "{concept}" not in concept_format:
        raise TemplateError(f"concept_format {concept_format!r} must contain {{concept}}.")
    return concept_format


def _too_long(encoder: Encoder, texts: list[str], templates: list[str], limit: int) -> list[bool]:
    """Whether any prompt of each text would be truncated. Exact: the longest template screens, and texts
    near the limit are checked against every template."""
    token_lengths = encoder.token_lengths
    widest = max(templates, key=lambda t: token_lengths([t.format("")])[0])
    approx = token_lengths([widest.format(x) for x in texts])
    out = []
    for text, n in zip(texts, approx, strict=True):
        if n < limit - 4:
            out.append(False)
        else:
            out.append(max(token_lengths([t.format(text) for t in templates])) > limit)
    return out


def _descriptor_map(
    descriptors: bool | Mapping[str, Sequence[str]] | None, source: Any, labels: list[str]
) -> dict[str, list[str]] | None:
    if descriptors is None or descriptors is False:
        return None
    if descriptors is True:
        return source_descriptors(source, labels)
    if not isinstance(descriptors, Mapping) or not all(
        isinstance(v, Sequence) and not isinstance(v, str) and all(isinstance(x, str) for x in v)
        for v in descriptors.values()
    ):
        raise SynonymsError("descriptors must be True, None or a mapping {label: [descriptor, ...]}.")
    descriptors = {normalise(str(k)): v for k, v in descriptors.items()}  # keyed as labels are (check_labels)
    unknown = sorted(set(descriptors) - set(labels))
    if unknown:
        raise SynonymsError(f"The descriptors name labels that are not classes: {unknown[:10]}. Fix the spelling.")
    return {label: clean_descriptors(descriptors.get(label, [])) for label in labels}


def _check_descriptor_format(descriptor_format: str) -> None:
    if (
        not isinstance(descriptor_format, str)
        or "{concept}" not in descriptor_format
        or "{descriptor}" not in (descriptor_format)
    ):
        raise TemplateError(
            f"descriptor_format {descriptor_format!r} must contain {{concept}} and {{descriptor}}, as "
            f"{DEFAULT_DESCRIPTOR_FORMAT!r} does."
        )
    try:
        descriptor_format.format(concept="x", descriptor="y")
    except (KeyError, IndexError, ValueError) as err:
        raise TemplateError(f"descriptor_format {descriptor_format!r} is not a valid format string: {err}.") from err


def _fitting_descriptors(
    encoder: Encoder, label: str, descs: list[str], descriptor_format: str, templates: list[str], limit: int
) -> list[str]:
    """The descriptors whose texts with the bare label fit the text encoder (others are dropped with a warning)."""
    if not descs:
        return []
    long = _too_long(encoder, [descriptor_format.format(concept=label, descriptor=d) for d in descs], templates, limit)
    for d, is_long in zip(descs, long, strict=True):
        if is_long:
            logger.warning("Dropping descriptor %r of %r: its prompts exceed %d tokens.", d, label, limit)
    return [d for d, is_long in zip(descs, long, strict=True) if not is_long]


def _class_source(provenance: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The provenance a class record keeps: a per-label ``senses`` map (WordNet's, also inside a synonyms file's
    ``generated_by``) is cut to the class's own ``sense``, so records do not repeat every class's sense."""
    out = dict(provenance)
    for key, value in provenance.items():
        if key == "senses" and isinstance(value, Mapping):
            del out[key]
            if label in value:
                out["sense"] = value[label]
        elif isinstance(value, Mapping) and "senses" in value:
            out[key] = _class_source(value, label)
    return out


def build_synonym_space(
    model: Any,
    tokenizer: Callable[..., Any] | None,
    labels: Sequence[str],
    synonyms: SynonymsLike = None,
    *,
    templates: str | Sequence[str] | None = None,
    concept_format: str = DEFAULT_CONCEPT_FORMAT,
    params: SpaceParams | None = None,
    metric: str = DEFAULT_METRIC,
    knn_k: int = 3,
    max_concepts: int = MAX_CONCEPTS,
    base_model: str | None = None,
    batch_size: int = 256,
    progress: bool = False,
    tokenizer_kwargs: dict[str, Any] | None = None,
    canonicalization: str | None = None,
    descriptors: bool | Mapping[str, Sequence[str]] | None = None,
    descriptor_format: str = DEFAULT_DESCRIPTOR_FORMAT,
) -> SynonymSpace:
    """Build the synonym space of ``labels`` with a CLIP ``model`` and its ``tokenizer`` (the steps are in the
    README, section Method).

    Every concept dropped on the way is recorded in the space's class records with its kind and reason:
    cleaning (duplicates, other classes' labels, too many words, over ``max_concepts``) and prompts the
    tokenizer would truncate in ``ClassRecord.removed`` (they get no point), persistence pruning as concepts
    with ``kept=False``.

    Args:
        model: a transformers dual encoder of a supported family, or an :class:`~s3_hf.models.encoders.Encoder` (such as
            an open_clip checkpoint from :func:`s3_hf.load_encoder`).
        tokenizer: the transformers model's tokenizer (``None`` with an ``Encoder``).
        labels: the class labels, non-empty and distinct (case-insensitively).
        synonyms: a mapping ``{label: [synonym, ...]}``, a JSON/YAML file of one, a :class:`SynonymSource`,
            or ``None`` for label-only spaces. A mapping or file may not name labels that are not classes.
        templates: prompt templates with one ``{}``, or the name of a template set; ``None`` for the default.
        concept_format: how a concept is put into words before the templates, with ``{concept}`` and
            optionally ``{label}``.
        params: the radius rule and complex options (:class:`SpaceParams`); ``None`` for the defaults.
        metric: the default point-to-space metric stored in the space's config.
        knn_k: ``k`` of the ``local_center_knn`` metric, at least 1.
        max_concepts: at most this many synonyms per label, after cleaning.
        base_model: the model name recorded in the config; defaults to ``model.name_or_path``.
        batch_size: prompts encoded per forward pass.
        progress: show progress bars.
        tokenizer_kwargs: keyword arguments passed to the tokenizer when encoding prompts (default
            ``padding=True``).
        canonicalization: rewrite every prompt before tokenising (``"lower_no_punct"``), or ``None``.
        descriptors: S^3 with visual descriptors: ``True`` takes them from the synonym source (its
            ``descriptors`` method), a mapping ``{label: [descriptor, ...]}`` gives them; each concept's point is
            then the mean over ``descriptor_format`` texts, one per descriptor of its class. ``None``: none.
        descriptor_format: how a concept text carries a descriptor, with ``{concept}`` and ``{descriptor}``.

    Returns:
        The validated :class:`SynonymSpace`, ready to score or ``save_pretrained``.

    Raises:
        InvalidLabelsError: labels are empty, duplicated, or too long for the text encoder with the templates.
        SynonymsError: the synonyms name labels that are not classes, or are malformed.
        TemplateError: a template or ``concept_format`` is invalid.
        InvalidConfigError: ``metric``, ``knn_k`` or ``params`` is invalid.
    """
    labels = check_labels(labels)
    templates = resolve_templates(templates)
    concept_format = check_concept_format(concept_format)
    params = params if params is not None else SpaceParams()
    if not isinstance(params, SpaceParams):
        raise InvalidConfigError(f"params must be a SpaceParams, got {type(params).__name__}.")
    check_metric(metric)
    check_knn_k(knn_k)
    for name, value, low in (("max_concepts", max_concepts, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidConfigError(f"{name} must be an integer >= {low}, got {value!r}.")
    check_canonicalization(canonicalization)
    if tokenizer_kwargs is not None and not isinstance(tokenizer_kwargs, dict):
        raise InvalidConfigError(f"tokenizer_kwargs must be a dict, got {type(tokenizer_kwargs).__name__}.")
    encoder = as_encoder(model, tokenizer)
    family = encoder.family
    source = resolve_source(synonyms)
    descriptor_map = _descriptor_map(descriptors, source, labels)
    if descriptor_map is not None:
        _check_descriptor_format(descriptor_format)
    if isinstance(source, StaticSource):
        unknown = sorted(set(source.mapping) - set(labels))
        if unknown:
            raise SynonymsError(
                f"The synonyms name labels that are not classes: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}. "
                f"Class labels are {labels[:10]}{' ...' if len(labels) > 10 else ''}; fix the spelling or remove them."
            )
    raw = source.synonyms(labels)
    if not isinstance(raw, Mapping) or not all(
        isinstance(v, Sequence) and not isinstance(v, str) and all(isinstance(x, str) for x in v) for v in raw.values()
    ):
        raise SynonymsError(
            f"The synonym source {type(source).__name__} must return {{label: [synonym, ...]}} with lists of "
            f"strings; it returned {str(raw)[:200]}. Fix the source."
        )

    limit = encoder.max_text_tokens
    label_long = _too_long(encoder, labels, templates, limit)
    if any(label_long):
        bad = [lab for lab, long in zip(labels, label_long, strict=True) if long]
        raise InvalidLabelsError(
            f"Labels {bad[:5]} are too long: with the prompt templates they exceed the text encoder's {limit} "
            "tokens and would be truncated. Shorten them (put details in synonyms) or use shorter templates."
        )

    class_concepts: list[list[str]] = []
    class_removed: list[list[ConceptRecord]] = []
    class_descriptors: list[list[str]] = []
    groups: list[list[str]] = []
    cleaned = clean_all(labels, raw, max_concepts)
    for label in labels:
        concepts, removed = cleaned[label]
        descs = _fitting_descriptors(
            encoder, label, (descriptor_map or {}).get(label, []), descriptor_format, templates, limit
        )

        def group(text: str, descs: list[str] = descs) -> list[str]:
            return [descriptor_format.format(concept=text, descriptor=d) for d in descs] or [text]

        cand = [group(concept_text(c, label, concept_format)) for c in concepts]
        if len(cand) > 1:
            flat = _too_long(encoder, [x for g in cand for x in g], templates, limit)
            sizes = [len(g) for g in cand]
            starts = [sum(sizes[:i]) for i in range(len(sizes))]
            long = [False] + [any(flat[a : a + n]) for a, n in zip(starts[1:], sizes[1:], strict=True)]
        else:
            long = [False]
        kept = [c for c, is_long in zip(concepts, long, strict=True) if not is_long]
        for c, is_long in zip(concepts, long, strict=True):
            if is_long:
                logger.warning("Dropping synonym %r of %r: its prompts exceed %d tokens.", c, label, limit)
                reason = f"its prompts exceed the text encoder's {limit} tokens"
                removed.append(ConceptRecord.dropped(c, "truncated", reason))
        class_concepts.append(kept)
        class_removed.append(removed)
        class_descriptors.append(descs)
        groups.extend(group(concept_text(c, label, concept_format)) for c in kept)

    points = encode_concept_groups(
        encoder,
        None,
        groups,
        templates,
        batch_size=batch_size,
        progress=progress,
        tokenizer_kwargs=tokenizer_kwargs,
        canonicalization=canonicalization,
    )
    point_class = torch.repeat_interleave(torch.arange(len(labels)), torch.tensor([len(c) for c in class_concepts]))
    tensors, geoms = build_space(points, point_class, params, progress=progress)

    provenance = {**source.provenance(), "built": datetime.now(UTC).isoformat(timespec="seconds")}
    classes = []
    rows = zip(labels, class_concepts, class_removed, geoms, class_descriptors, strict=True)
    for label, concepts, removed, geom, descs in rows:
        pruned = f"outside the compact component at radius {geom.radius:.4f}"
        records = [
            ConceptRecord(concept, True) if kept else ConceptRecord.dropped(concept, "pruned", pruned)
            for concept, kept in zip(concepts, geom.kept.tolist(), strict=True)
        ]
        classes.append(
            ClassRecord(
                label, records, float(geom.radius), list(geom.deaths), _class_source(provenance, label), removed, descs
            )
        )
    config = S3Config(
        base_model=model_identity(base_model or encoder.name or "unknown"),
        base_model_revision=encoder.revision,
        embedding_dim=int(points.shape[1]),
        class_names=labels,
        templates=templates,
        concept_format=concept_format,
        metric=metric,
        knn_k=knn_k,
        space=params,
        model_family=family.family,
        scoring=family.scoring,
        tokenizer_kwargs={**family.tokenizer_kwargs, **(tokenizer_kwargs or {})},
        text_canonicalization=canonicalization,
        descriptor_format=descriptor_format if any(class_descriptors) else None,
        provenance=provenance,
    )
    return SynonymSpace(config, classes, tensors)


__all__ = [
    "build_synonym_space",
    "check_concept_format",
    "check_labels",
]
