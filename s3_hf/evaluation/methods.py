"""The zero-shot methods of a classification run as spaces: ``label``, ``ensemble``, the baselines (DCLIP, CuPL,
WaffleCLIP) where configured and S^3 per synonym source and metric; built once and cached on disk."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from s3_hf.baselines import BASELINE_METRICS, build_method_space
from s3_hf.baselines.texts import WAFFLE_TEMPLATE, dclip_template
from s3_hf.evaluation.config import ClassificationConfig, EvalConfig
from s3_hf.evaluation.data.records import BenchmarkData
from s3_hf.models.encoders import Encoder
from s3_hf.space.artifact import SynonymSpace
from s3_hf.space.build import build_synonym_space
from s3_hf.text.templates import resolve_templates

logger = logging.getLogger("s3_hf.evaluation")


def synonym_source(spec: str, data: BenchmarkData) -> Any:
    """The synonym source of ``spec``: ``"wordnet"``, ``"curated"`` (the benchmark's curated list) or a file."""
    if spec == "wordnet":
        from s3_hf.synonyms import WordNetSource

        senses = dict(zip(data.class_names, data.wnids, strict=True)) if data.wnids else {}
        return WordNetSource(senses=senses)
    if spec == "curated":
        from s3_hf.synonyms import CuratedSource

        return CuratedSource(data.name)
    return spec  # a synonyms file


def _source_tag(spec: str, data: BenchmarkData) -> tuple[str, str]:
    """(method name, cache tag) of a synonym or descriptor spec."""
    if spec == "wordnet":
        return "wordnet", f"wordnet:{json.dumps(data.wnids)}"
    if spec == "curated":
        from s3_hf.synonyms.curated import read_curated

        content = json.dumps([(e.label, e.synonyms, e.descriptors) for e in read_curated(data.name).entries])
        return "curated", "curated:" + hashlib.sha256(content.encode()).hexdigest()
    return Path(spec).stem, "file:" + hashlib.sha256(Path(spec).read_bytes()).hexdigest()


def _has_curated(data: BenchmarkData) -> bool:
    from s3_hf.synonyms.curated import available

    return data.name in available()


def cached_space(
    cache: Path | None,
    encoder: Encoder,
    labels: list[str],
    synonyms: Callable[[], Any],
    templates: list[str],
    tag: str,
    canonicalization: str | None = None,
    method: str = "s3",
    **options: Any,
) -> SynonymSpace:
    """Build a space, or load it from ``cache`` when the same (model, labels, synonyms, templates,
    canonicalisation, method) was built before. ``synonyms`` makes the synonym source, only when the space has to
    be built; ``method`` is ``"s3"`` (``options``: ``descriptors=True`` for S^3 with descriptors) or a baseline of
    :mod:`s3_hf.baselines` (``options``: its descriptors, prompts or waffle settings; ``tag`` must name them)."""

    def build() -> SynonymSpace:
        if method != "s3":
            return build_method_space(
                encoder,
                None,
                labels,
                method,
                templates=templates,
                progress=True,
                canonicalization=canonicalization,
                **options,
            )
        return build_synonym_space(
            encoder,
            None,
            labels,
            synonyms(),
            templates=templates,
            progress=True,
            canonicalization=canonicalization,
            **options,
        )

    if cache is None:
        return build()
    parts = [encoder.name, str(encoder.revision), json.dumps(labels), tag, json.dumps(templates)]
    if canonicalization is not None:
        parts.append(canonicalization)
    if method != "s3" or options:
        parts.append(json.dumps([method, sorted(options)]))
    folder = cache / "spaces" / hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
    if (folder / "s3_config.json").is_file():
        return SynonymSpace.from_pretrained(folder)
    space = build()
    space.save_pretrained(folder)
    return space


@dataclass(frozen=True)
class Draws:
    """One method's spaces over repeated random draws (WaffleCLIP's seeds): :func:`score_methods` scores each and
    reports the mean over them, their standard deviation and every draw's figures."""

    seeds: tuple[int, ...]
    spaces: tuple[SynonymSpace, ...]


#: A method's space (or several draws of it) and the metric it is scored with.
Spaces = dict[str, tuple[Any, str]]


def method_spaces(cfg: EvalConfig, encoder: Encoder, data: BenchmarkData, cache: Path | None = None) -> Spaces:
    """method name -> (space, metric), for each text canonicalisation of the configuration (a rule other than
    ``None`` names its methods ``method@rule``). Spaces are cached beside the image embeddings.

    Methods: ``label``, ``ensemble``; ``dclip``, ``cupl`` and ``waffle`` where configured; per synonym source
    ``s3/<source>/<metric>`` and, with ``descriptors``, ``s3/<source>+descriptors/<metric>``."""
    opts = cfg.classification
    templates = data.templates if cfg.run.templates == "benchmark" else resolve_templates(cfg.run.templates)
    spaces: Spaces = {}
    sources = [s for s in opts.synonyms if s != "curated" or _has_curated(data)]
    if len(sources) < len(opts.synonyms):
        logger.error("%s has no curated synonym list; its curated methods are skipped.", data.name)
    for rule in opts.canonicalizations:
        suffix = "" if rule is None else f"@{rule}"

        def space(synonyms: Callable[[], Any], texts: list[str], tag: str, rule: str | None = rule, **kw: Any) -> Any:
            return cached_space(cache, encoder, data.class_names, synonyms, texts, tag, rule, **kw)

        spaces["label" + suffix] = (space(lambda: None, [opts.label_template], "label-only"), "label")
        spaces["ensemble" + suffix] = (space(lambda: None, templates, "label-only"), "label")
        spaces.update({m + suffix: v for m, v in _baseline_spaces(opts, data, space).items()})
        for spec in sources:
            name, tag = _source_tag(spec, data)
            source = partial(synonym_source, spec, data)
            built = space(source, templates, tag)
            for metric in cfg.run.metrics:
                spaces[f"s3/{name}/{metric}{suffix}"] = (built, metric)
            if opts.descriptors:
                with_desc = space(source, templates, tag, descriptors=True)
                if not any(c.descriptors for c in with_desc.classes):
                    continue  # the source gives no descriptors: nothing to compare
                for metric in cfg.run.metrics:
                    spaces[f"s3/{name}+descriptors/{metric}{suffix}"] = (with_desc, metric)
    return spaces


def _baseline_spaces(opts: ClassificationConfig, data: BenchmarkData, space: Callable[..., Any]) -> Spaces:
    """DCLIP, CuPL and WaffleCLIP where configured; ``space`` builds (or loads) one space."""
    spaces: Spaces = {}
    descriptor_texts: tuple[Any, str] | None = None  # DCLIP's descriptors and their cache tag
    for method, spec in (("dclip", opts.dclip), ("cupl", opts.cupl)):
        if not spec or (spec == "curated" and not _has_curated(data)):
            continue
        if spec == "curated":
            texts = synonym_source("curated", data).descriptors(data.class_names)
            tag = _source_tag("curated", data)[1]
        else:
            texts, tag = spec, _source_tag(spec, data)[1]
        if method == "dclip":
            descriptor_texts = (texts, tag)
            template = dclip_template(opts.dclip_template)
            built = space(lambda: None, [template], f"dclip:{tag}", method="dclip", descriptors=texts)
        else:  # CuPL's prompts are used as written
            built = space(lambda: None, [opts.label_template], f"cupl:{tag}", method="cupl", prompts=texts)
        spaces[method] = (built, BASELINE_METRICS[method])
    if opts.waffle:
        # WaffleCLIP's own template; its random strings take the characters of DCLIP's descriptors when given
        texts, tag = descriptor_texts or (None, "labels")
        extra = {"descriptors": texts} if texts is not None else {}
        draws = tuple(
            space(
                lambda: None,
                [WAFFLE_TEMPLATE],
                f"waffle:{opts.waffle}:seed={seed}:characters={tag}",
                method="waffle",
                waffle_count=opts.waffle,
                seed=seed,
                **extra,
            )
            for seed in opts.waffle_seeds
        )
        spaces["waffle"] = (Draws(tuple(opts.waffle_seeds), draws), BASELINE_METRICS["waffle"])
    return spaces


def fewshot_base(cfg: EvalConfig, spaces: Spaces) -> str:
    """The zero-shot method few-shot adds to: the configured one, else the first S^3 ``local_center`` method."""
    base = cfg.fewshot.base
    if base:
        if base not in spaces:
            raise ValueError(f"--fewshot-base {base!r} is not one of the methods {sorted(spaces)}.")
        if isinstance(spaces[base][0], Draws):
            raise ValueError(f"--fewshot-base {base!r} is several random draws; pick a single method.")
        return base
    s3 = [m for m in spaces if m.startswith("s3/")]
    return next((m for m in s3 if spaces[m][1] == "local_center"), s3[0] if s3 else "ensemble")


__all__ = ["Draws", "Spaces", "cached_space", "fewshot_base", "method_spaces", "synonym_source"]
