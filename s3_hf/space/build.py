"""labels -> concepts -> points -> space: build a :class:`SynonymSpace` with a CLIP model."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
from s3_hf.validation import integer

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


def _source_synonyms(source: Any, labels: list[str]) -> Mapping[str, Sequence[str]]:
    """The synonyms ``source`` gives for ``labels``; a static mapping may not name labels that are not classes."""
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
    return raw


def _check_label_lengths(encoder: Encoder, labels: list[str], templates: list[str]) -> None:
    limit = encoder.max_text_tokens
    label_long = _too_long(encoder, labels, templates, limit)
    if any(label_long):
        bad = [lab for lab, long in zip(labels, label_long, strict=True) if long]
        raise InvalidLabelsError(
            f"Labels {bad[:5]} are too long: with the prompt templates they exceed the text encoder's {limit} "
            "tokens and would be truncated. Shorten them (put details in synonyms) or use shorter templates."
        )


def _fitting_concepts(
    encoder: Encoder, label: str, concepts: list[str], texts: list[list[str]], templates: list[str]
) -> tuple[list[str], list[ConceptRecord]]:
    """The concepts whose texts (``texts[i]`` for ``concepts[i]``) fit the text encoder, and the others as
    ``truncated`` drops. The label, first, is always kept (its length was checked)."""
    limit = encoder.max_text_tokens
    long = [False] * len(concepts)
    if len(texts) > 1:
        flat = _too_long(encoder, [x for g in texts for x in g], templates, limit)
        starts = [sum(len(g) for g in texts[:i]) for i in range(len(texts))]
        long = [False] + [any(flat[a : a + len(g)]) for a, g in zip(starts[1:], texts[1:], strict=True)]
    dropped = []
    for c, is_long in zip(concepts, long, strict=True):
        if is_long:
            logger.warning("Dropping synonym %r of %r: its prompts exceed %d tokens.", c, label, limit)
            reason = f"its prompts exceed the text encoder's {limit} tokens"
            dropped.append(ConceptRecord.dropped(c, "truncated", reason))
    return [c for c, is_long in zip(concepts, long, strict=True) if not is_long], dropped


@dataclass
class _Concepts:
    """Per class: the concepts that get a point, those removed before embedding, its descriptors; and the texts
    of every point (one group per point: its descriptor texts, or the concept text alone)."""

    kept: list[list[str]] = field(default_factory=list)
    removed: list[list[ConceptRecord]] = field(default_factory=list)
    descriptors: list[list[str]] = field(default_factory=list)
    groups: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Build:
    """The checked options of one :func:`build_synonym_space` call, and its steps."""

    labels: list[str]
    templates: list[str]
    concept_format: str
    params: Any
    metric: str
    knn_k: int
    max_concepts: int
    batch_size: int
    progress: bool
    tokenizer_kwargs: dict[str, Any] | None
    canonicalization: str | None
    descriptor_format: str
    base_model: str | None

    def __post_init__(self) -> None:
        params = self.params if self.params is not None else SpaceParams()
        if not isinstance(params, SpaceParams):
            raise InvalidConfigError(f"params must be a SpaceParams, got {type(params).__name__}.")
        object.__setattr__(self, "params", params)
        check_metric(self.metric)
        check_knn_k(self.knn_k)
        integer("max_concepts", self.max_concepts, 0)
        integer("batch_size", self.batch_size, 1)
        check_canonicalization(self.canonicalization)
        if self.tokenizer_kwargs is not None and not isinstance(self.tokenizer_kwargs, dict):
            raise InvalidConfigError(f"tokenizer_kwargs must be a dict, got {type(self.tokenizer_kwargs).__name__}.")

    def run(self, encoder: Encoder, source: Any, descriptors: Any) -> SynonymSpace:
        """labels -> concepts -> points -> space."""
        descriptor_map = _descriptor_map(descriptors, source, self.labels)
        if descriptor_map is not None:
            _check_descriptor_format(self.descriptor_format)
        raw = _source_synonyms(source, self.labels)
        _check_label_lengths(encoder, self.labels, self.templates)
        found = self.concepts(encoder, clean_all(self.labels, raw, self.max_concepts), descriptor_map or {})
        points = encode_concept_groups(
            encoder,
            None,
            found.groups,
            self.templates,
            batch_size=self.batch_size,
            progress=self.progress,
            tokenizer_kwargs=self.tokenizer_kwargs,
            canonicalization=self.canonicalization,
        )
        sizes = torch.tensor([len(c) for c in found.kept])
        point_class = torch.repeat_interleave(torch.arange(len(self.labels)), sizes)
        tensors, geoms = build_space(points, point_class, self.params, progress=self.progress)
        provenance = {**source.provenance(), "built": datetime.now(UTC).isoformat(timespec="seconds")}
        classes = _class_records(self.labels, found, geoms, provenance)
        return SynonymSpace(self.config(encoder, int(points.shape[1]), found, provenance), classes, tensors)

    def concepts(
        self, encoder: Encoder, cleaned: Mapping[str, Any], descriptor_map: Mapping[str, list[str]]
    ) -> _Concepts:
        """Each class's concepts after cleaning, less those whose prompts the tokenizer would truncate."""
        found = _Concepts()
        limit = encoder.max_text_tokens
        for label in self.labels:
            concepts, removed = cleaned[label]
            descs = descriptor_map.get(label, [])
            descs = _fitting_descriptors(encoder, label, descs, self.descriptor_format, self.templates, limit)

            def group(concept: str, label: str = label, descs: list[str] = descs) -> list[str]:
                text = concept_text(concept, label, self.concept_format)
                return [self.descriptor_format.format(concept=text, descriptor=d) for d in descs] or [text]

            kept, truncated = _fitting_concepts(encoder, label, concepts, [group(c) for c in concepts], self.templates)
            found.kept.append(kept)
            found.removed.append([*removed, *truncated])
            found.descriptors.append(descs)
            found.groups.extend(group(c) for c in kept)
        return found

    def config(self, encoder: Encoder, dim: int, found: _Concepts, provenance: dict[str, Any]) -> S3Config:
        family = encoder.family
        return S3Config(
            base_model=model_identity(self.base_model or encoder.name or "unknown"),
            base_model_revision=encoder.revision,
            embedding_dim=dim,
            class_names=self.labels,
            templates=self.templates,
            concept_format=self.concept_format,
            metric=self.metric,
            knn_k=self.knn_k,
            space=self.params,
            model_family=family.family,
            scoring=family.scoring,
            tokenizer_kwargs={**family.tokenizer_kwargs, **(self.tokenizer_kwargs or {})},
            text_canonicalization=self.canonicalization,
            descriptor_format=self.descriptor_format if any(found.descriptors) else None,
            provenance=provenance,
        )


def _class_records(
    labels: list[str], found: _Concepts, geoms: Sequence[Any], provenance: Mapping[str, Any]
) -> list[ClassRecord]:
    """One record per class: its concepts (kept, or pruned with the radius), removed concepts and provenance."""
    classes = []
    rows = zip(labels, found.kept, found.removed, geoms, found.descriptors, strict=True)
    for label, concepts, removed, geom, descs in rows:
        pruned = f"outside the compact component at radius {geom.radius:.4f}"
        records = [
            ConceptRecord(concept, True) if kept else ConceptRecord.dropped(concept, "pruned", pruned)
            for concept, kept in zip(concepts, geom.kept.tolist(), strict=True)
        ]
        source = _class_source(provenance, label)
        classes.append(ClassRecord(label, records, float(geom.radius), list(geom.deaths), source, removed, descs))
    return classes


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
    """Build the validated synonym space of ``labels`` with a CLIP ``model`` (README, section Method), recording every
    dropped concept with its kind and reason (cleaning and truncation in ``ClassRecord.removed``, pruning as
    ``kept=False``). Bad input raises InvalidLabelsError, SynonymsError, TemplateError or InvalidConfigError.

    Args:
        model: a transformers dual encoder of a supported family, or an :class:`~s3_hf.models.encoders.Encoder`.
        tokenizer: the transformers model's tokenizer (``None`` with an ``Encoder``).
        labels: the class labels, non-empty and distinct (case-insensitively).
        synonyms: ``{label: [synonym, ...]}``, a JSON/YAML file of one, a :class:`SynonymSource`, or ``None``.
        templates: prompt templates with one ``{}``, or a template set's name; ``None``: the default.
        concept_format: a concept in words before the templates, with ``{concept}`` and optionally ``{label}``.
        params: the radius rule and complex options (:class:`SpaceParams`); ``None``: the defaults.
        metric: the default point-to-space metric stored in the config.
        knn_k: ``k`` of the ``local_center_knn`` metric, at least 1.
        max_concepts: at most this many synonyms per label, after cleaning.
        base_model: the model name recorded in the config (default ``model.name_or_path``).
        batch_size: prompts encoded per forward pass.
        progress: show progress bars.
        tokenizer_kwargs: keyword arguments of the tokenizer for the prompts (default ``padding=True``).
        canonicalization: rewrite every prompt before tokenising (``"lower_no_punct"``), or ``None``.
        descriptors: ``True`` (from the synonym source), ``{label: [descriptor, ...]}`` or ``None``: with them a
            concept's point is the mean over its ``descriptor_format`` texts.
        descriptor_format: how a concept text carries a descriptor, with ``{concept}`` and ``{descriptor}``.
    """
    job = _Build(
        labels=check_labels(labels),
        templates=resolve_templates(templates),
        concept_format=check_concept_format(concept_format),
        params=params,
        metric=metric,
        knn_k=knn_k,
        max_concepts=max_concepts,
        batch_size=batch_size,
        progress=progress,
        tokenizer_kwargs=tokenizer_kwargs,
        canonicalization=canonicalization,
        descriptor_format=descriptor_format,
        base_model=base_model,
    )
    return job.run(as_encoder(model, tokenizer), resolve_source(synonyms), descriptors)


__all__ = [
    "build_synonym_space",
    "check_concept_format",
    "check_labels",
]
