"""Test-time adaptation in ``s3 eval``: TDA and TS^3 streamed over the gathered image embeddings.

The protocol: after the static scores, each adaptive method runs a CPU pass per stream seed over the order
``π = torch.randperm(M, generator=torch.Generator().manual_seed(seed))`` (a dedicated generator). It is prequential:
each image is scored once, when it arrives, from the state before it (re-scoring with the final state would be
transductive). The pass reads only the gathered embeddings, in a fixed dtype, so its results are bitwise the same
for any number of processes and batch size. TS^3 adapts the first S^3 ``local_center`` method; TDA the label-only
space, with its published rules (:func:`~s3_hf.tta.tda_config`). Results are the mean and standard deviation over
the seeds, with each order's sha256 and the options' hash.

``--tta-order class-sorted`` is a stress test: the images sorted by true class (each class's in the seed's order),
reported as ``method[class-sorted]``.

``per-process`` simulates deployment: the order is dealt round robin to the N processes (``π[r::N]``) and each
shard adapts on its own state. It is reported as ``method[per-process,N]``, never beside the single-stream rows.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import torch

from s3_hf.evaluation.classification import Scored, load_metric, score_draws, score_logits
from s3_hf.evaluation.config import MethodsConfig, method_family
from s3_hf.evaluation.methods import Draws, Spaces
from s3_hf.evaluation.results import StreamInfo
from s3_hf.tta import TS3Config, tda_config

logger = logging.getLogger("s3_hf.evaluation")

#: Images scored per call of a stream (the state is updated one image after another whatever this is).
CHUNK = 4096


def permutation(m: int, seed: int) -> torch.Tensor:
    """The stream order of ``m`` images for ``seed``: a permutation from a generator of its own."""
    return torch.randperm(m, generator=torch.Generator().manual_seed(seed))


def stream_order(labels: list[int], seed: int, mode: str = "random") -> torch.Tensor:
    """The order images are streamed in: :func:`permutation`, or with ``"class-sorted"`` that permutation stably
    sorted by true class (class 0's images first, each class's in the seeded order)."""
    order = permutation(len(labels), seed)
    if mode == "class-sorted":
        order = order[torch.argsort(torch.tensor(labels, dtype=torch.int64)[order], stable=True)]
    return order


def permutation_hash(order: torch.Tensor) -> str:
    """sha256 of an order's int64 bytes: the same order, the same hash, on any machine."""
    return hashlib.sha256(order.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()


def method_config(method: str) -> TS3Config:
    """The options of ``method``: TS^3's defaults, or TDA as published (ImageNet values)."""
    return TS3Config() if method == "ts3" else tda_config()


def base_method(method: str, spaces: Spaces) -> str | None:
    """The static method ``method`` adapts: ``label`` for TDA; for TS^3 the first S^3 ``local_center`` method
    without a canonicalisation suffix. ``None`` when the run has none."""
    if method == "tda":
        return "label" if "label" in spaces else None
    return next(
        (
            m
            for m, (space, metric) in spaces.items()
            if method_family(m) == "s3" and "@" not in m and metric == "local_center" and not isinstance(space, Draws)
        ),
        None,
    )


def adapted_logits(
    engine: Any, space: Any, metric: str, config: TS3Config, emb: torch.Tensor, order: torch.Tensor, shards: int = 1
) -> torch.Tensor:
    """Adapted logits ``(M, C)`` of ``emb``'s images streamed in ``order``, returned in input order. With
    ``shards`` > 1 the order is dealt round robin to that many streams, each with its own state.

    Args:
        engine: the engine whose ``stream`` scores and adapts.
        space: the static method's space; ``metric`` its metric.
        config: the adaptation's options.
        emb: unit image embeddings ``(M, D)``, in input order.
        order: the stream order (a permutation of ``range(M)``).
        shards: streams the order is dealt to.
    """
    out: torch.Tensor | None = None
    for r in range(shards):
        stream = engine.stream(space, metric=metric, tta=config)
        part = order[r::shards]
        for i in range(0, len(part), CHUNK):
            idx = part[i : i + CHUNK]
            logits = stream.embeddings(emb[idx.to(emb.device)]).scores
            if out is None:
                out = logits.new_empty(len(order), logits.shape[1])
            out[idx] = logits
    assert out is not None
    return out


def method_name(method: str, cfg: MethodsConfig, processes: int) -> str:
    """``ts3``, ``ts3[per-process,N]`` for the per-process simulation, ``ts3[class-sorted]`` for the class-sorted
    stress order (``ts3[per-process,N,class-sorted]`` for both)."""
    tags = [f"per-process,{processes}"] if cfg.tta_stream == "per-process" else []
    tags += [cfg.tta_order] if cfg.tta_order != "random" else []
    return f"{method}[{','.join(tags)}]" if tags else method


def score_adaptive(
    engine: Any, cfg: MethodsConfig, emb: torch.Tensor, labels: list[int], spaces: Spaces, processes: int = 1
) -> dict[str, Scored]:
    """Every adaptive method of ``cfg`` scored over its stream seeds: the mean and std of each figure (ECE and NLL
    as every method reports them), each seed's figures, and how the images were streamed (``stream``).

    Args:
        engine: the run's engine.
        cfg: the methods and stream options.
        emb: the gathered unit image embeddings, in input order.
        labels: their true classes.
        spaces: the run's static methods (the adaptive ones adapt one of them).
        processes: the run's processes (the per-process simulation's shard count).
    """
    out: dict[str, Scored] = {}
    if not cfg.adaptive:
        return out
    metrics = (load_metric("top_k_accuracy"), load_metric("mean_per_class_accuracy"))
    shards = processes if cfg.tta_stream == "per-process" else 1
    for method in cfg.adaptive:
        base = base_method(method, spaces)
        if base is None:
            logger.error("No %s: it adapts an S^3 local_center method, and this run has none.", method)
            continue
        space, metric = spaces[base]
        config = method_config(method)
        draws, hashes = [], []
        for seed in cfg.tta_seeds:
            order = stream_order(labels, seed, cfg.tta_order)
            hashes.append(permutation_hash(order))
            logits = adapted_logits(engine, space, metric, config, emb, order, shards)
            draws.append(score_logits(logits, labels, engine.family.scoring, metrics))
        scored = score_draws(draws, cfg.tta_seeds)
        info = (config.config_hash(), config.to_dict(), list(cfg.tta_seeds), hashes, shards, cfg.tta_order)
        scored.scores.stream = StreamInfo(cfg.tta_stream, base, *info)
        out[method_name(method, cfg, processes)] = scored
    return out


__all__ = [
    "CHUNK",
    "adapted_logits",
    "base_method",
    "method_config",
    "method_name",
    "permutation",
    "permutation_hash",
    "score_adaptive",
    "stream_order",
]
