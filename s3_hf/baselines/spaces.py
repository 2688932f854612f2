"""The descriptor and prompt baselines as spaces, so that every face scores them with the one metric
implementation S^3 uses (:mod:`s3_hf.space.scoring`):

- ``cupl``: one point per class, the mean of its prompts' embeddings (``n(mean_k n(g(prompt_k)))``), scored with
  the ``label`` metric. With one prompt per class it is the ``label`` baseline with that prompt as template.
- ``dclip``: one point per descriptor text, scored with ``mean_similarity`` (the mean of ``v · t`` over the
  class's texts): DCLIP's mean similarity over its descriptors.
- ``waffle``: one point per random-descriptor text, scored with ``mean_similarity`` (one draw: ``seed``; WaffleCLIP
  reports the mean and standard deviation over the draws of :data:`~s3_hf.baselines.texts.WAFFLE_SEEDS`, as
  ``s3 eval`` does).

No point is pruned (these methods have no complex); a space records its method in ``S3Config.method``. Class
names of a descriptor or prompt file are matched to the labels loosely (case, underscores); classes without an entry
fall back to the label alone (with the templates), and the match report is logged and kept in the provenance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import torch

from s3_hf.baselines.texts import (
    DEFAULT_DCLIP_TEMPLATE,
    DEFAULT_WAFFLE_COUNT,
    METHOD_TEMPLATES,
    MatchReport,
    dclip_texts,
    match_class_texts,
    read_class_texts,
    waffle_descriptors,
    waffle_shape,
    waffle_texts,
)
from s3_hf.baselines.texts import dclip_template as resolve_dclip_template
from s3_hf.errors import InvalidConfigError
from s3_hf.models.encoders import as_encoder
from s3_hf.models.families import check_canonicalization
from s3_hf.models.loading import model_identity
from s3_hf.options import SpaceParams
from s3_hf.space.artifact import S3Config, SynonymSpace
from s3_hf.space.build import check_labels
from s3_hf.space.geometry import build_space
from s3_hf.space.records import ClassRecord, ConceptRecord
from s3_hf.text.encoding import encode_concept_groups
from s3_hf.text.templates import DEFAULT_TEMPLATE, resolve_templates

logger = logging.getLogger(__name__)

BASELINES = ("cupl", "dclip", "waffle")
#: The metric each baseline is scored with.
BASELINE_METRICS = {"cupl": "label", "dclip": "mean_similarity", "waffle": "mean_similarity"}


def build_method_space(
    model: Any,
    tokenizer: Callable[..., Any] | None,
    labels: Sequence[str],
    method: str,
    *,
    descriptors: Mapping[str, Sequence[str]] | str | None = None,
    prompts: Mapping[str, Sequence[str]] | str | None = None,
    templates: str | Sequence[str] | None = None,
    waffle_count: int = DEFAULT_WAFFLE_COUNT,
    seed: int = 0,
    concept: str | None = None,
    dclip_template: str = DEFAULT_DCLIP_TEMPLATE,
    base_model: str | None = None,
    batch_size: int = 256,
    progress: bool = False,
    canonicalization: str | None = None,
) -> SynonymSpace:
    """The space of a baseline ``method`` (``"cupl"``, ``"dclip"`` or ``"waffle"``) for ``labels``.

    Args:
        model: a transformers dual encoder or an :class:`~s3_hf.models.encoders.Encoder`.
        tokenizer: the transformers model's tokenizer (``None`` with an ``Encoder``).
        labels: the class labels.
        method: the baseline.
        descriptors: DCLIP's descriptors, ``{class: [descriptor, ...]}`` or its JSON file (``dclip``); for
            ``waffle``, the dataset's descriptors whose characters make its random strings (default: the labels').
        prompts: CuPL's prompts, ``{class: [prompt, ...]}`` or its JSON file (``cupl``).
        templates: prompt templates of ``dclip`` and ``waffle`` texts, and of ``cupl`` classes without prompts.
            Default: ``dclip_template``'s for ``dclip``, WaffleCLIP's ``"A photo of a {}."`` for ``waffle``,
            ``"This is a photo of {}."`` for ``cupl``.
        waffle_count: pairs of random descriptors (``waffle``).
        seed: the draw of the random descriptors (``waffle``).
        concept: WaffleCLIP's high-level concept (``"food"``, ``"a type of pet"``), or ``None``.
        dclip_template: the template of ``dclip`` texts when ``templates`` is ``None``: ``"dclip"`` (the
            released code's: none), ``"waffle"`` (WaffleCLIP's ``"A photo of a {}."``) or a template.
        base_model: the model name recorded in the config.
        batch_size: texts per forward pass.
        progress: show progress bars.
        canonicalization: rewrite every text before tokenising (``"lower_no_punct"``), or ``None``.
    """
    if method not in BASELINES:
        raise InvalidConfigError(f"Unknown baseline {method!r}; use one of {BASELINES}.")
    labels = check_labels(labels)
    check_canonicalization(canonicalization)
    texts = _method_texts(method, labels, templates, dclip_template, descriptors, prompts, waffle_count, seed, concept)
    encoder = as_encoder(model, tokenizer)
    return _encoded_space(encoder, labels, method, texts, base_model, batch_size, progress, canonicalization)


def _method_texts(
    method: str,
    labels: list[str],
    templates: str | Sequence[str] | None,
    dclip_template: str,
    descriptors: Mapping[str, Sequence[str]] | str | None,
    prompts: Mapping[str, Sequence[str]] | str | None,
    waffle_count: int,
    seed: int,
    concept: str | None,
) -> MethodTexts:
    """The texts of baseline ``method`` for ``labels``, its templates defaulting to the method's own."""
    if templates is None:
        defaults = {**METHOD_TEMPLATES, "dclip": resolve_dclip_template(dclip_template)}
        templates = defaults.get(method, DEFAULT_TEMPLATE)
    resolved = resolve_templates(templates)
    if method == "cupl":
        return _cupl_texts(labels, prompts, resolved)
    if method == "dclip":
        return _dclip_texts(labels, descriptors, resolved)
    return _waffle_texts(labels, descriptors, resolved, waffle_count, seed, concept)


def _encoded_space(
    encoder: Any,
    labels: list[str],
    method: str,
    texts: MethodTexts,
    base_model: str | None,
    batch_size: int,
    progress: bool,
    canonicalization: str | None,
) -> SynonymSpace:
    """Encode ``texts`` and record them, with where they came from, as the unpruned space of ``method``."""
    provenance = {"name": method, "built": datetime.now(UTC).isoformat(timespec="seconds"), **texts.provenance}
    if texts.report is not None:
        logger.info("%s: %s", method, texts.report.summary())
        report = texts.report
        provenance["match"] = {"missing": report.missing, "unused": report.unused, "empty": report.empty}
    limit = encoder.max_text_tokens
    tokenizer_kwargs = {} if encoder.family.family == "open_clip" else {"truncation": True, "max_length": limit}
    points = encode_concept_groups(
        encoder,
        None,
        texts.groups,
        texts.templates,
        batch_size=batch_size,
        progress=progress,
        tokenizer_kwargs=tokenizer_kwargs,
        canonicalization=canonicalization,
    )
    config = S3Config(
        base_model=model_identity(base_model or encoder.name or "unknown"),
        base_model_revision=encoder.revision,
        embedding_dim=int(points.shape[1]),
        class_names=labels,
        templates=list(texts.templates),
        concept_format="{concept}",
        metric=BASELINE_METRICS[method],
        space=SpaceParams(radius=None),
        model_family=encoder.family.family,
        scoring=encoder.family.scoring,
        tokenizer_kwargs={**encoder.family.tokenizer_kwargs, **tokenizer_kwargs},
        text_canonicalization=canonicalization,
        method=method,
        provenance=provenance,
    )
    return _unpruned_space(config, texts.point_texts, points)


@dataclass(frozen=True)
class MethodTexts:
    """What a baseline encodes. ``groups``: the text groups, each one point (the mean of its texts' embeddings
    under ``templates``); ``point_texts``: per class, the texts its points record; ``provenance``: what the texts
    came from; ``report``: how a file's class names matched the labels."""

    groups: list[list[str]]
    point_texts: list[list[str]]
    templates: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)
    report: MatchReport | None = None


def _cupl_texts(
    labels: list[str], prompts: Mapping[str, Sequence[str]] | str | None, templates: list[str]
) -> MethodTexts:
    """CuPL: one point per class, the mean of its prompts (used verbatim); a class without any falls back to the
    templates."""
    if prompts is None:
        raise InvalidConfigError("cupl needs prompts= (a JSON file or a mapping {class: [prompt, ...]}).")
    matched, report = match_class_texts(read_class_texts(prompts, "CuPL prompts"), labels)
    groups = [[p for p in matched.get(lab, [])] or [t.format(lab) for t in templates] for lab in labels]
    provenance = {"file": prompts} if isinstance(prompts, str) else {}
    return MethodTexts(groups, [[lab] for lab in labels], ["{}"], provenance, report)


def _dclip_texts(
    labels: list[str], descriptors: Mapping[str, Sequence[str]] | str | None, templates: list[str]
) -> MethodTexts:
    """DCLIP: one point per descriptor text of each class."""
    if descriptors is None:
        raise InvalidConfigError("dclip needs descriptors= (a JSON file or a mapping {class: [...]}).")
    matched, report = match_class_texts(read_class_texts(descriptors, "DCLIP descriptors"), labels)
    per_class = [dclip_texts(lab, matched.get(lab, [])) for lab in labels]
    provenance = {"file": descriptors} if isinstance(descriptors, str) else {}
    return MethodTexts([[t] for texts in per_class for t in texts], per_class, templates, provenance, report)


def _waffle_texts(
    labels: list[str],
    descriptors: Mapping[str, Sequence[str]] | str | None,
    templates: list[str],
    count: int,
    seed: int,
    concept: str | None,
) -> MethodTexts:
    """WaffleCLIP: one point per random-descriptor text of each class (draw ``seed``), the random strings shaped
    like the dataset's descriptors (the labels' when none are given)."""
    found = None
    if descriptors is not None:
        found = [d for texts in read_class_texts(descriptors, "WaffleCLIP descriptors").values() for d in texts]
    shape = waffle_shape(labels, found)
    shared = waffle_descriptors(shape, count, seed)
    per_class = [waffle_texts(lab, shared, concept) for lab in labels]
    provenance = {"count": count, "seed": seed, "concept": concept, "shape": asdict(shape)}
    return MethodTexts([[t] for texts in per_class for t in texts], per_class, templates, provenance)


def _unpruned_space(config: S3Config, point_texts: list[list[str]], points: torch.Tensor) -> SynonymSpace:
    """The space of ``points`` (``point_texts[c]`` in class ``c``, in order), nothing pruned."""
    counts = torch.tensor([len(t) for t in point_texts])
    point_class = torch.repeat_interleave(torch.arange(len(point_texts)), counts)
    tensors, geoms = build_space(points, point_class, SpaceParams(radius=None))
    provenance = config.provenance
    classes = [
        ClassRecord(lab, [ConceptRecord(t, True) for t in texts], float(g.radius), list(g.deaths), provenance)
        for lab, texts, g in zip(config.class_names, point_texts, geoms, strict=True)
    ]
    return SynonymSpace(config, classes, tensors)


__all__ = ["BASELINES", "BASELINE_METRICS", "build_method_space"]
