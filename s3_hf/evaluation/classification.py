"""Zero-shot classification scores: every method's space scored through the engine on the same image embeddings,
with the project's own ``evaluate`` metric modules (``evaluation/metrics``, loaded by path: they work offline)."""

from __future__ import annotations

from collections.abc import Sequence
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


def score_methods(
    engine: Any, emb: torch.Tensor, labels: list[int], spaces: Spaces, chunk: int = 4096
) -> tuple[dict[str, MethodScores], dict[str, list[int]]]:
    """Per method: top-1, top-5, mean per-class accuracy and per-class wins/losses against ``label``. A method of
    several :class:`~s3_hf.evaluation.methods.Draws` reports the mean over them (its per-class accuracies too, for
    the wins and losses), the standard deviations and each draw's figures; its predictions are its first draw's."""
    top_k = load_metric("top_k_accuracy")
    per_class = load_metric("mean_per_class_accuracy")
    results: dict[str, MethodScores] = {}
    predictions: dict[str, list[int]] = {}
    classwise: dict[str, dict[int, float]] = {}

    def one(space: Any, metric: str) -> tuple[MethodScores, list[int], dict[int, float]]:
        k = min(5, space.num_classes)
        logits = space_logits(engine, emb, space, metric, chunk)
        ranked = logits.topk(k, dim=-1).indices
        top1 = ranked[:, 0].tolist()
        pc = per_class.compute(predictions=top1, references=labels)
        top = [top_k.compute(predictions=ranked.tolist(), references=labels, k=n)["top_k_accuracy"] for n in (1, k)]
        ece, nll, bins = calibration(logits, engine.family.scoring, labels)
        scores = MethodScores(top[0], top[1], pc["mean_per_class_accuracy"], ece=ece, nll=nll, reliability=bins)
        return scores, top1, pc["per_class_accuracy"]

    for method, (space, metric) in spaces.items():
        if isinstance(space, Draws):
            scored = [one(s, metric) for s in space.spaces]
            pcs = [pc for _, _, pc in scored]
            results[method] = _mean_and_std([r for r, _, _ in scored], space.seeds)
            classwise[method] = {c: sum(pc[c] for pc in pcs) / len(pcs) for c in pcs[0]}
            predictions[method] = scored[0][1]
        else:
            results[method], predictions[method], classwise[method] = one(space, metric)
    base = classwise["label"]
    for method, r in results.items():
        deltas = [classwise[method][c] - base[c] for c in base]
        r.wins_vs_label = sum(d > 0 for d in deltas)
        r.losses_vs_label = sum(d < 0 for d in deltas)
    return results, predictions


__all__ = [
    "ECE_BINS",
    "METRIC_DIR",
    "calibration",
    "calibration_inputs",
    "load_metric",
    "score_methods",
    "space_logits",
]
