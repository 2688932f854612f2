"""The build and artifact parts: the cost of building a space (text encoding against geometry) and a saved space's
size on disk."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from s3_hf import SynonymSpace
from s3_hf.evaluation.bench.config import TEMPLATE, BenchConfig, require
from s3_hf.evaluation.bench.rows import ArtifactInfo, BuildRow
from s3_hf.evaluation.bench.timing import sync_for
from s3_hf.evaluation.bench.workload import class_names, load_engine, synthetic_synonyms
from s3_hf.space.geometry import build_space


def bench_build(cfg: BenchConfig, log: Callable[[str], None]) -> list[BuildRow]:
    """One row per (class count, concepts per class): seconds of text encoding (one template) and of geometry.

    Args:
        cfg: the bench settings (``build_classes``, ``build_concepts``).
        log: where progress lines go.
    """
    from s3_hf.text.encoding import concept_text, encode_concepts

    require(cfg.build_classes and cfg.build_concepts, "it needs --build-classes and --build-concepts")
    engine = load_engine(cfg.model, cfg.device)
    sync = sync_for(cfg.device)
    rows = []
    for c in cfg.build_classes:
        labels = class_names(c, cfg.images)
        for m in cfg.build_concepts:
            syn = synthetic_synonyms(labels, m)
            texts = [concept_text(x, lab) for lab in labels for x in [lab, *syn[lab]]]
            start = time.perf_counter()
            points = encode_concepts(engine.encoder, None, texts, [TEMPLATE])
            sync()
            t_text = time.perf_counter() - start
            point_class = torch.arange(c).repeat_interleave(m + 1)
            start = time.perf_counter()
            build_space(points, point_class)
            t_geom = time.perf_counter() - start
            row = BuildRow(c, m, len(texts), t_text, t_geom, t_geom / (t_text + t_geom))
            rows.append(row)
            log(f"[build C={c} M={m}] text {t_text:.1f}s, geometry {t_geom:.2f}s ({row.geometry_share:.1%})")
    return rows


def save_space(cfg: BenchConfig, classes: int, folder: Path) -> ArtifactInfo:
    """Build and save a space with ``classes`` classes and ``cfg.concepts`` concepts each; its size on disk.

    Args:
        cfg: the bench settings.
        classes: how many classes.
        folder: where to save it.
    """
    engine = load_engine(cfg.model, cfg.device)
    labels = class_names(classes, cfg.images)
    space = engine.build_space(labels, synthetic_synonyms(labels, cfg.concepts), templates=[TEMPLATE])
    space.save_pretrained(folder)
    SynonymSpace.from_pretrained(folder)  # it loads back
    files = {f.name: f.stat().st_size for f in folder.iterdir()}
    return ArtifactInfo(classes, cfg.concepts, sum(files.values()), files)
