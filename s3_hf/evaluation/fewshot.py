"""Few-shot runs of a classification benchmark: per (shots, seed) support sample from the train split, zero-shot,
the cache alone, SSP and GDA on top of one zero-shot method, all scored through the engine; hyper-parameters are
tuned on the support set only."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from tqdm.auto import tqdm

from s3_hf.evaluation.classification import calibration, load_metric, space_logits
from s3_hf.evaluation.config import FewShotConfig
from s3_hf.evaluation.data.records import BenchmarkData
from s3_hf.evaluation.results import FEWSHOT_METHODS, FewShotResult, FewShotRun
from s3_hf.fewshot import fit_for_space, sample_shots, view_keys
from s3_hf.fewshot.gda import fit_gda
from s3_hf.space.artifact import SynonymSpace

#: Few-shot support from a Hub train split is sampled from the shards streamed until every class has this many
#: times the largest shot count.
STREAM_FACTOR = 4


def support_indices(cfg: FewShotConfig, train: BenchmarkData) -> dict[tuple[int, int], list[int]]:
    """(shots, seed) -> indices into the train split; the same on every process."""
    return {(k, seed): sample_shots(train.labels, k, seed) for k in cfg.shots for seed in cfg.seeds}


@dataclass
class FewShotSupport:
    """A benchmark's few-shot support: the images of every (shots, seed) run as indices into the train split,
    and the features of the union of those images (encoded once), row ``j`` for train image ``union[j]``."""

    runs: dict[tuple[int, int], list[int]]
    union: list[int]
    glob: torch.Tensor  # (len(union), D)
    local: torch.Tensor  # (len(union), P, D), float16
    train_labels: list[int]  # the whole train split's labels
    views: torch.Tensor | None = None  # (len(union), V, D) augmented views' global features; None: no augmentation

    @cached_property
    def _position(self) -> dict[int, int]:
        return {i: j for j, i in enumerate(self.union)}

    def rows(self, indices: list[int]) -> torch.Tensor:
        """Feature rows of the train images ``indices``."""
        return torch.tensor([self._position[i] for i in indices])


def _scaled(engine: Any, v: torch.Tensor, space: SynonymSpace, metric: str, chunk: int) -> torch.Tensor:
    """``τ · s_c(v)``: the engine's zero-shot logits without the family's logit bias."""
    return space_logits(engine, v, space, metric, chunk) - engine.logit_bias


def _one_run(
    engine: Any,
    cfg: FewShotConfig,
    emb: torch.Tensor,
    space: SynonymSpace,
    metric: str,
    support: FewShotSupport,
    run: tuple[tuple[int, int], list[int]],
    chunk: int,
    labels: list[int],
) -> tuple[FewShotRun, dict[str, list[int]]]:
    """One (shots, seed) run: its record (with the calibration of the cache and SSP, the engine's probabilities)
    and each method's predictions."""
    (k, seed), idx = run
    rows = support.rows(idx)
    glob, local = support.glob[rows], support.local[rows].float()
    y = [support.train_labels[i] for i in idx]
    views = None if support.views is None else support.views[rows].float()
    keys = None if views is None else view_keys(views)  # Tip-Adapter's cache keys: the mean of the views
    record = FewShotRun(k, seed, len(idx))
    classes = list(range(space.num_classes))
    tau = engine.logit_scale
    predictions: dict[str, list[int]] = {}
    for mode in ("cache", "ssp"):
        options = dataclasses.replace(cfg.options, mode=mode, seed=seed)
        adapter = fit_for_space(space, classes, glob, local, y, metric, tau=tau, config=options, keys=keys)
        logits = space_logits(engine, emb, space, metric, chunk, support=adapter)
        predictions[mode] = logits.argmax(-1).tolist()
        ece, nll, _ = calibration(logits, engine.family.scoring, labels)
        record.scores[mode] = {"ece": ece, "nll": nll}
        record.params[mode] = {x: getattr(adapter.info, x) for x in ("alpha", "beta", "gamma", "tuned")}
    support_zero_shot = _scaled(engine, glob.to(emb.device), space, metric, chunk).cpu()
    gda = fit_gda(
        glob if views is None else views,
        y,
        len(classes),
        support_zero_shot,
        seed=seed,
        val_fraction=cfg.options.val_fraction,
        queries=glob,
    )
    zero_shot = _scaled(engine, emb, space, metric, chunk)
    gda_logits = [gda.logits(emb[i : i + chunk], zero_shot[i : i + chunk]) for i in range(0, len(emb), chunk)]
    predictions["gda"] = torch.cat(gda_logits).argmax(-1).tolist()
    record.params["gda"] = gda.info()
    return record, predictions


def score_fewshot(
    engine: Any,
    cfg: FewShotConfig,
    emb: torch.Tensor,
    labels: list[int],
    space: SynonymSpace,
    metric: str,
    support: FewShotSupport,
    *,
    chunk: int = 1024,
) -> FewShotResult:
    """Per (shots, seed): top-1 and mean per-class accuracy of zero-shot, the cache alone, SSP and GDA, and the
    calibration (``ece``, ``nll``) of those whose scores are the engine's probabilities: zero-shot, the cache and
    SSP (GDA's logits add a fitted Gaussian term to the zero-shot logits without the family's bias: not the
    engine's probabilities); and per shots the mean and standard deviation of top-1 over seeds (and the mean ECE
    of the calibrated methods)."""
    top_k, per_class = load_metric("top_k_accuracy"), load_metric("mean_per_class_accuracy")
    logits = space_logits(engine, emb, space, metric, chunk)
    zero_shot = logits.argmax(-1).tolist()
    ece, nll, _ = calibration(logits, engine.family.scoring, labels)
    del logits
    records = []
    for run in tqdm(support.runs.items(), desc="Few-shot runs"):
        record, predictions = _one_run(engine, cfg, emb, space, metric, support, run, chunk, labels)
        record.scores["zero-shot"] = {"ece": ece, "nll": nll}
        for method, pred in {"zero-shot": zero_shot, **predictions}.items():
            pc = per_class.compute(predictions=pred, references=labels)["mean_per_class_accuracy"]
            top1 = top_k.compute(predictions=[[p] for p in pred], references=labels, k=1)["top_k_accuracy"]
            record.scores[method] = {"top1": top1, "mean_per_class": pc, **record.scores.get(method, {})}
        records.append(record)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for k in cfg.shots:
        summary[str(k)] = {}
        for method in FEWSHOT_METHODS:
            values = torch.tensor([r.scores[method]["top1"] for r in records if r.shots == k], dtype=torch.float64)
            std = float(values.std(unbiased=False)) if len(values) > 1 else 0.0
            summary[str(k)][method] = {"top1_mean": float(values.mean()), "top1_std": std}
            eces = [r.scores[method].get("ece") for r in records if r.shots == k]
            eces = [e for e in eces if e is not None]
            if eces:  # the methods scored with the engine's probabilities (not GDA)
                summary[str(k)][method]["ece_mean"] = sum(eces) / len(eces)
    return FewShotResult(records, summary)


__all__ = ["STREAM_FACTOR", "FewShotSupport", "score_fewshot", "support_indices"]
