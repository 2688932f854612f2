"""`s3 eval`: every method side by side on the same cached image embeddings, sharded with accelerate.

Per benchmark: image embeddings are computed once (sharded across processes and gathered back in input order)
and cached on disk by (model, revision, data, preprocessing, dtype); then every method is scored on them:
``label`` (one template), ``ensemble`` (all templates, CLIP's own baseline) and each S^3 metric for each synonym
source. Metrics come from the project's own ``evaluate`` modules in ``eval/metrics``. A benchmark finished with the
same configuration on the same data (its resolved location and data fingerprint) is not recomputed; an unreachable
one is reported and skipped. Every prerequisite is checked before the first image is encoded, and no file in the
results folder that s3 eval did not write is replaced without ``overwrite``. Beside ``results.json``, every
benchmark and zero-shot method gets a file in CLIP_benchmark's format in ``clip_benchmark/``
(:mod:`s3_hf.evaluation.clipbench`), for ``clip_benchmark build``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from s3_hf.baselines.texts import dclip_template
from s3_hf.errors import EvalError
from s3_hf.evaluation import clipbench, fewshot, methods, report, tta
from s3_hf.evaluation.classification import METRIC_DIR, load_metric, score_methods
from s3_hf.evaluation.config import S3_METRICS, TASKS, EvalConfig
from s3_hf.evaluation.data import registry
from s3_hf.evaluation.embeddings import image_embeddings, support_features
from s3_hf.evaluation.results import BenchmarkResult, FewShotResult, MethodScores, RunResult
from s3_hf.io.files import write_json
from s3_hf.models.families import check_canonicalization

logger = logging.getLogger("s3_hf.evaluation")


#: A benchmark's base name is cut to this many characters in its results file names (a file name is at most 255
#: bytes).
NAME_CHARS = 80


@dataclass
class Planned:
    """One benchmark of a run: its spec as given, its name in the results (its own, or its folder's last path
    components where two benchmarks share a name), and its results file stem (unique per location)."""

    spec: str
    name: str
    bench: registry.Benchmark | None = None
    error: str | None = None
    data: registry.BenchmarkData | None = None
    train: registry.BenchmarkData | None = None
    train_error: str | None = None

    @property
    def stem(self) -> str:
        where = registry.location(self.bench) if self.bench else {"spec": self.spec}
        base = re.sub(r"[^\w.+-]", "_", self.bench.name if self.bench else Path(self.spec).name)[:NAME_CHARS]
        digest = hashlib.sha256(json.dumps(where, sort_keys=True).encode()).hexdigest()[:10]
        return f"{base or 'benchmark'}-{digest}"

    @property
    def files(self) -> tuple[str, str]:
        """The results file and the predictions file; neither can be one of the run's own files."""
        return f"{self.stem}.json", f"{self.stem}.predictions.json"


def plan_benchmarks(specs: Sequence[str], imagenet_sample: str | None = None) -> list[Planned]:
    """Resolve every benchmark (nothing is loaded): the same location given twice is evaluated once, and
    benchmarks sharing a base name (``/data/a/test`` and ``/data/b/test``) are named by their folders' last path
    components (``a/test``, ``b/test``) so that each reports its own numbers."""
    plans: list[Planned] = []
    seen: set[str] = set()
    for spec in specs:
        try:
            bench = registry.resolve(spec, imagenet_sample)
        except registry.BenchmarkUnavailable as err:
            plan = Planned(spec, spec, error=str(err))
        else:
            plan = Planned(spec, bench.name, bench)
        key = json.dumps(registry.location(plan.bench) if plan.bench else spec, sort_keys=True)
        if key in seen:
            logger.warning("%s is given twice; it is evaluated once.", spec)
            continue
        seen.add(key)
        plans.append(plan)
    folders = [registry.location(p.bench)["path"] if p.bench and not p.bench.hub_id else None for p in plans]
    for plan, name in zip(plans, registry.distinct_names([p.name for p in plans], folders), strict=True):
        plan.name = name
    return plans


def check_prerequisites(cfg: EvalConfig) -> None:
    """Everything a run needs that can be checked without a model or an image, checked before either is touched:
    the task, the extras, the data locations, the text canonicalisations and the synonym, descriptor and prompt
    sources (``wordnet`` needs nltk and the WordNet corpus)."""
    if cfg.task not in TASKS:
        raise EvalError(f"Unknown task {cfg.task!r}: use classification or segmentation.")
    needed = ["accelerate", "evaluate"]
    if cfg.task == "classification":
        needed.append("matplotlib")
        if any(registry.REGISTRY.get(b, registry.Benchmark("")).hub_id for b in cfg.run.benchmarks):
            needed.append("datasets")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise EvalError(f"s3 eval needs {', '.join(missing)}, which is not installed: pip install 's3-hf[eval]'.")
    if registry.IMAGENET_SAMPLE in cfg.run.benchmarks:  # a missing data location is a usage error: say so up front
        registry.imagenet_sample_dir(cfg.run.imagenet_sample)
    opts = cfg.classification
    for rule in opts.canonicalizations:
        check_canonicalization(rule)
    if cfg.task != "classification":
        return
    if "ts3" in cfg.methods.adaptive and (not opts.synonyms or "local_center" not in cfg.run.metrics):
        raise EvalError("ts3 adapts an S^3 local_center space: keep local_center in --metrics and give --synonyms.")
    for spec in opts.synonyms:
        if spec == "wordnet":
            from s3_hf.synonyms.wordnet import load_wordnet

            load_wordnet()  # WordNetMissingError says how to install it
        elif spec != "curated":
            from s3_hf.synonyms import StaticSource

            StaticSource(spec)
    from s3_hf.baselines.texts import read_class_texts

    for what, spec in (("DCLIP descriptors", opts.dclip), ("CuPL prompts", opts.cupl)):
        if spec and spec != "curated":
            read_class_texts(spec, what)
    if opts.dclip:
        dclip_template(opts.dclip_template)  # SynonymsError names the choices
    seeds = list(opts.waffle_seeds)
    if opts.waffle and (not seeds or any(isinstance(x, bool) or not isinstance(x, int) for x in seeds)):
        raise EvalError(f"WaffleCLIP needs one or more integer seeds (its draws), got {seeds!r}.")


def _previous(path: Path) -> BenchmarkResult | None:
    """A benchmark's results from an earlier run, or ``None``: a damaged file is logged and recomputed."""
    if not path.is_file():
        return None
    try:
        previous = report.read_results(path, "earlier results file")
    except EvalError as err:
        logger.warning("%s It is recomputed.", err)
        return None
    if not isinstance(previous, dict):
        logger.warning("The earlier results file %s holds no results object; it is recomputed.", path)
        return None
    try:
        return BenchmarkResult.from_dict(previous)
    except (KeyError, TypeError, ValueError) as err:
        logger.warning("The earlier results file %s is damaged (%s); it is recomputed.", path, err)
        return None


def _load_data(plan: Planned, cfg: EvalConfig, wanted: bool) -> None:
    """Load a benchmark's test split (and, for few-shot runs, its train split, with every class present);
    what cannot be loaded is recorded on ``plan``."""
    assert plan.bench is not None
    try:
        plan.data = registry.load(plan.bench)
    except registry.BenchmarkUnavailable as err:
        plan.error = str(err)
        return
    if not wanted:
        return
    try:
        # stream train shards until every class has 4x the largest shot count (not the whole split)
        train = registry.load_train(plan.bench, plan.data, per_class=fewshot.STREAM_FACTOR * max(cfg.fewshot.shots))
    except registry.BenchmarkUnavailable as err:
        plan.train_error = str(err)
        return
    absent = sorted(set(range(len(train.class_names))) - set(train.labels))
    if absent:
        names = [train.class_names[c] for c in absent]
        plan.train_error = (
            f"{plan.bench.name}: the train split has no image of {len(absent)} classes ({names[:10]}); few-shot "
            "support needs every class."
        )
        return
    plan.train = train


def _accelerator() -> Any:
    from accelerate import Accelerator

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        os.environ.setdefault("ACCELERATE_USE_CPU", "1")  # torchrun on CPUs: let accelerate use gloo
    return Accelerator()


def _fewshot(
    cfg: EvalConfig, engine: Any, accelerator: Any, plan: Planned, cache: Path
) -> tuple[fewshot.FewShotSupport | None, FewShotResult | None, float]:
    """The benchmark's few-shot support (encoded on every process), or why there is none; and its encoding time."""
    encoder, main = engine.encoder, accelerator.is_main_process
    if not cfg.fewshot.shots:
        return None, None, 0.0
    error = plan.train_error
    if not encoder.has_patch_tokens:
        error = f"few-shot SSP needs patch tokens in the joint space; {engine.family.family} has none"
    if error is not None or plan.train is None:
        if main:
            logger.error("No few-shot runs for %s: %s", plan.name, error)
        return None, FewShotResult(error=error), 0.0
    t0 = time.perf_counter()
    train = plan.train
    runs = fewshot.support_indices(cfg.fewshot, train)
    union = sorted({i for idx in runs.values() for i in idx})
    views = cfg.fewshot.options.augment_views
    glob, local, view_features = support_features(accelerator, encoder, train, union, cfg.run, cache, views)
    support = fewshot.FewShotSupport(runs, union, glob, local, train.labels, view_features)
    return support, None, time.perf_counter() - t0


def _zero_shot(
    cfg: EvalConfig, engine: Any, emb: torch.Tensor, labels: list[int], spaces: Any, processes: int
) -> tuple[dict[str, MethodScores], dict[str, list[int]], dict[str, float]]:
    """The reported static methods and, after them, the test-time adaptation ones (their own timing)."""
    t0 = time.perf_counter()
    adaptive = tta.score_adaptive(engine, cfg.methods, emb, labels, spaces, processes)
    t_adapt = time.perf_counter() - t0
    t0 = time.perf_counter()
    reported = {m: v for m, v in spaces.items() if cfg.methods.reports(m)}
    scores, predictions = score_methods(engine, emb, labels, reported, extra=adaptive)
    timings = {"scoring": time.perf_counter() - t0}
    if cfg.methods.adaptive:
        timings["adaptation"] = t_adapt
    return scores, predictions, timings


def _evaluate(cfg: EvalConfig, engine: Any, accelerator: Any, plan: Planned, cache: Path) -> BenchmarkResult | None:
    """One benchmark's images encoded (on every process) and, on the main process, every method scored."""
    assert plan.bench is not None and plan.data is not None
    data, encoder = plan.data, engine.encoder
    t0 = time.perf_counter()
    emb, cached = image_embeddings(accelerator, encoder, data, cfg.run, cache)
    t_img = time.perf_counter() - t0
    support, fewshot_result, t_support = _fewshot(cfg, engine, accelerator, plan, cache)
    if not accelerator.is_main_process:
        return None
    t0 = time.perf_counter()
    spaces = methods.method_spaces(cfg, encoder, data, cache)
    t_text = time.perf_counter() - t0
    emb = emb.to(accelerator.device)
    scores, predictions, timings = _zero_shot(cfg, engine, emb, data.labels, spaces, accelerator.num_processes)
    if support is not None:
        base = methods.fewshot_base(cfg, spaces)
        t0 = time.perf_counter()
        fewshot_result = fewshot.score_fewshot(engine, cfg.fewshot, emb, data.labels, *spaces[base], support)
        fewshot_result.base = base
        fewshot_result.timings_s = {"support_images": t_support, "fit_and_score": time.perf_counter() - t0}
    result_file, predictions_file = plan.files
    record = BenchmarkResult(
        plan.name,
        identity=registry.identity(plan.bench, data),
        config_key=cfg.key(),
        model=cfg.run.model,
        samples=len(data.labels),
        classes=len(data.class_names),
        class_names=list(data.class_names),
        methods=scores,
        synonyms={m: s.classes[0].source for m, (s, _) in spaces.items() if m.startswith("s3/")},
        embeddings_cached=cached,
        timings_s={"images": t_img, "spaces": t_text, **timings},
        random_weights=encoder.random_weights,
        files={"results": result_file, "predictions": predictions_file},
        fewshot=fewshot_result,
        dataset_id=data.hub_id,
        dataset_revision=data.revision,
    )
    out = Path(cfg.run.out)
    report.claim_outputs(out, plan.files)
    write_json(out / predictions_file, {"labels": data.labels, **predictions}, indent=None)
    write_json(out / result_file, record.to_dict())
    best = max(scores, key=lambda m: scores[m].top1 or 0.0)
    logger.info("%s: label %.4f, best %s %.4f", plan.name, scores["label"].top1, best, scores[best].top1)
    return record


def _reused(cfg: EvalConfig, plan: Planned, main: bool) -> BenchmarkResult | None:
    """A benchmark's earlier results, when they were measured with this configuration on this data."""
    assert plan.bench is not None and plan.data is not None
    out = Path(cfg.run.out)
    previous = _previous(out / plan.files[0])
    if previous is None or previous.error is not None or previous.config_key != cfg.key():
        return None
    if previous.identity != registry.identity(plan.bench, plan.data):
        return None
    if main:
        logger.info("%s: already evaluated with this configuration on this data; skipping.", plan.name)
        report.claim_outputs(out, plan.files)  # ours from now on (it may have been --overwrite'd)
    previous.name = plan.name
    previous.dataset_id = previous.dataset_id or plan.data.hub_id  # files written before these were recorded
    previous.dataset_revision = previous.dataset_revision or plan.data.revision
    return previous


def _run_summary(cfg: EvalConfig, engine: Any, accelerator: Any) -> RunResult:
    import transformers

    import s3_hf

    return RunResult(
        cfg.run.model,
        engine.encoder.revision,
        engine.encoder.random_weights,
        engine.family.family,
        engine.family.scoring,
        list(cfg.classification.canonicalizations),
        cfg.to_dict(),
        {"s3_hf": s3_hf.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        accelerator.num_processes,
    )


def run(cfg: EvalConfig) -> RunResult | Any:
    """Evaluate every benchmark of ``cfg``; returns (and writes to its ``out``) the combined results: a
    :class:`~s3_hf.evaluation.results.RunResult`, or for segmentation a
    :class:`~s3_hf.evaluation.results.SegRunResult`.

    Every prerequisite (extras, synonym sources, data, few-shot classes, the files of ``out``) is checked before
    the first image is encoded. A benchmark's results are reused only when they were measured with the same
    configuration on the same data (its :func:`~s3_hf.evaluation.data.registry.identity`).

    Args:
        cfg: what to run (:meth:`EvalConfig.from_flags` builds one from ``s3 eval``'s options).
    """
    check_prerequisites(cfg)
    out = Path(cfg.run.out)
    if cfg.task == "segmentation":
        from s3_hf.evaluation import segmentation

        return segmentation.run(cfg, _accelerator)
    plans = plan_benchmarks(cfg.run.benchmarks, cfg.run.imagenet_sample)
    report.check_outputs(out, [*report.RUN_FILES, *(f for p in plans for f in p.files)], cfg.run.overwrite)
    clipbench.check_folder(out, cfg.run.overwrite)
    from s3_hf.engine.core import S3Engine

    accelerator = _accelerator()
    main = accelerator.is_main_process
    cache = Path(cfg.run.cache_dir) if cfg.run.cache_dir else out / "cache"
    engine = S3Engine.from_pretrained(cfg.run.model, device=str(accelerator.device), dtype=cfg.run.dtype)
    summary = _run_summary(cfg, engine, accelerator)
    fewshot_wanted = bool(cfg.fewshot.shots) and engine.encoder.has_patch_tokens
    for plan in plans:  # every benchmark's data (and few-shot classes) before the first image is encoded
        if plan.bench is not None:
            _load_data(plan, cfg, fewshot_wanted)
    for plan in plans:
        if plan.data is None or plan.bench is None:
            if main:
                logger.error("Skipping %s: %s", plan.spec, plan.error)
            summary.benchmarks[plan.name] = BenchmarkResult(plan.name, error=plan.error)
            continue
        record = _reused(cfg, plan, main) or _evaluate(cfg, engine, accelerator, plan, cache)
        if record is not None:
            summary.benchmarks[plan.name] = record
    if main:
        report.write_reports(summary, out)
        clipbench.write_files(summary, out)
    accelerator.wait_for_everyone()
    return summary


__all__ = [
    "METRIC_DIR",
    "S3_METRICS",
    "EvalConfig",
    "Planned",
    "check_prerequisites",
    "load_metric",
    "plan_benchmarks",
    "run",
]
