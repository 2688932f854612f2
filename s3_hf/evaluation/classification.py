"""Zero-shot classification scores: every method's space scored through the engine on the same image embeddings,
with the project's own ``evaluate`` metric modules (``evaluation/metrics``, loaded by path: they work offline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from s3_hf.evaluation.methods import Draws, Spaces
from s3_hf.evaluation.results import MethodScores, Reliability

METRIC_DIR = Path(__file__).resolve().parent / "metrics"
#: Equal-width bins of the top probability in the expected calibration error (the usual 15, Guo et al. 2017).
ECE_BINS = 15


def load_metric(name: str) -> Any:
    """The project's ``evaluate`` module ``name`` (``top_k_accuracy``, ``mean_per_class_accuracy``, ``mean_iou``,
    ``expected_calibration_error``, ``negative_log_likelihood``)."""
    import evaluate

    return evaluate.load(str(METRIC_DIR / name / f"{name}.py"))


def space_logits(
    engine: Any, v: torch.Tensor, space: Any, metric: str, chunk: int = 4096, support: Any = None
) -> torch.Tensor:
    """The engine's logits of unit image vectors ``v`` against every class of ``space`` with ``metric`` (and a
    fitted few-shot adapter as ``support``), in chunks of ``chunk`` images."""
    resolved = engine.resolve(engine.request(synonym_space=space, metric=metric, support=support))
    return torch.cat([engine.scores(v[i : i + chunk], resolved).logits for i in range(0, len(v), chunk)])


def calibration_inputs(logits: torch.Tensor, scoring: str, labels: Sequence[int], chunk: int = 4096) -> dict[str, list]:
    """What the calibration metrics take from logits ``(N, C)``: per sample the top probability, the top class and
    the probability of the true class. The probabilities are the family's own (its ``scoring`` rule on the engine's
    logits, with the model's temperature; in float64, so that a tiny true-class probability keeps its logarithm)."""
    out: dict[str, list] = {"confidences": [], "predictions": [], "probabilities": []}
    truth = torch.as_tensor(list(labels), device=logits.device)
    for i in range(0, len(logits), chunk):
        z = logits[i : i + chunk].double()
        p = z.sigmoid() if scoring == "sigmoid" else z.softmax(-1)
        top = p.max(-1)
        out["confidences"] += top.values.tolist()
        out["predictions"] += top.indices.tolist()
        out["probabilities"] += p.gather(1, truth[i : i + chunk, None]).squeeze(1).tolist()
    return out


def calibration(logits: torch.Tensor, scoring: str, labels: Sequence[int]) -> tuple[float, float, Reliability]:
    """Expected calibration error (15 bins), negative log-likelihood and the reliability bins of ``logits``."""
    inputs = calibration_inputs(logits, scoring, labels)
    ece = load_metric("expected_calibration_error").compute(
        confidences=inputs["confidences"], predictions=inputs["predictions"], references=list(labels), n_bins=ECE_BINS
    )
    nll = load_metric("negative_log_likelihood").compute(probabilities=inputs["probabilities"])
    bins = Reliability(ece["bin_counts"], ece["bin_accuracy"], ece["bin_confidence"])
    return ece["expected_calibration_error"], nll["negative_log_likelihood"], bins


def _mean_and_std(draws: list[MethodScores], seeds: Sequence[int]) -> MethodScores:
    """One result from several draws' results: each figure's mean, its population standard deviation (``np.std``,
    as WaffleCLIP's ``base_main.py`` reports it) and every draw's figures; the first draw's reliability bins."""
    means, std, figures = {}, {}, {}
    for f in ("top1", "top5", "mean_per_class", "ece", "nll"):
        values = [getattr(d, f) for d in draws]
        if any(x is None for x in values):
            continue
        mean = sum(values) / len(values)
        means[f], figures[f] = mean, values
        std[f] = (sum((x - mean) ** 2 for x in values) / len(values)) ** 0.5
    return MethodScores(**means, std=std, draws={"seeds": list(seeds), **figures}, reliability=draws[0].reliability)


@dataclass
class Scored:
    """One method scored: its figures, its top-1 predictions (its first draw's) and its per-class accuracies (their
    mean over draws), from which its wins and losses against ``label`` are counted."""

    scores: MethodScores
    predictions: list[int]
    per_class: dict[int, float]


def score_logits(logits: torch.Tensor, labels: list[int], scoring: str, metrics: Any = None) -> Scored:
    """Top-1, top-5, mean per-class accuracy, ECE and NLL of one method's ``logits`` ``(N, C)``.

    Args:
        logits: the engine's logits, in the order of ``labels``.
        labels: the true classes.
        scoring: the family's scoring rule (``softmax`` or ``sigmoid``), for the calibration figures.
        metrics: the ``top_k_accuracy`` and ``mean_per_class_accuracy`` modules, when already loaded.
    """
    top_k, per_class = metrics or (load_metric("top_k_accuracy"), load_metric("mean_per_class_accuracy"))
    k = min(5, logits.shape[1])
    ranked = logits.topk(k, dim=-1).indices
    top1 = ranked[:, 0].tolist()
    pc = per_class.compute(predictions=top1, references=labels)
    top = [top_k.compute(predictions=ranked.tolist(), references=labels, k=n)["top_k_accuracy"] for n in (1, k)]
    ece, nll, bins = calibration(logits, scoring, labels)
    scores = MethodScores(top[0], top[1], pc["mean_per_class_accuracy"], ece=ece, nll=nll, reliability=bins)
    return Scored(scores, top1, pc["per_class_accuracy"])


def score_draws(scored: list[Scored], seeds: Sequence[int]) -> Scored:
    """One method of several draws (random texts, stream orders): the mean and standard deviation of each figure,
    the mean per-class accuracies and the first draw's predictions."""
    pcs = [s.per_class for s in scored]
    mean_pc = {c: sum(pc[c] for pc in pcs) / len(pcs) for c in pcs[0]}
    return Scored(_mean_and_std([s.scores for s in scored], seeds), scored[0].predictions, mean_pc)


def score_methods(
    engine: Any,
    emb: torch.Tensor,
    labels: list[int],
    spaces: Spaces,
    chunk: int = 4096,
    extra: dict[str, Scored] | None = None,
) -> tuple[dict[str, MethodScores], dict[str, list[int]]]:
    """Per method: top-1, top-5, mean per-class accuracy and per-class wins/losses against ``label``. A method of
    several :class:`~s3_hf.evaluation.methods.Draws` reports the mean over them (its per-class accuracies too, for
    the wins and losses), the standard deviations and each draw's figures; its predictions are its first draw's.
    ``extra``: methods scored elsewhere (test-time adaptation), reported after the others."""
    metrics = (load_metric("top_k_accuracy"), load_metric("mean_per_class_accuracy"))
    scoring = engine.family.scoring
    scored: dict[str, Scored] = {}
    for method, (space, metric) in spaces.items():
        if isinstance(space, Draws):
            draws = [
                score_logits(space_logits(engine, emb, s, metric, chunk), labels, scoring, metrics)
                for s in space.spaces
            ]
            scored[method] = score_draws(draws, space.seeds)
        else:
            scored[method] = score_logits(space_logits(engine, emb, space, metric, chunk), labels, scoring, metrics)
    scored.update(extra or {})
    base = scored["label"].per_class
    for s in scored.values():
        deltas = [s.per_class[c] - base[c] for c in base]
        s.scores.wins_vs_label = sum(d > 0 for d in deltas)
        s.scores.losses_vs_label = sum(d < 0 for d in deltas)
    return {m: s.scores for m, s in scored.items()}, {m: s.predictions for m, s in scored.items()}


__all__ = [
    "ECE_BINS",
    "METRIC_DIR",
    "Scored",
    "calibration",
    "calibration_inputs",
    "load_metric",
    "score_draws",
    "score_logits",
    "score_methods",
    "space_logits",
]
