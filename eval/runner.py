"""`s3 eval`: every method side by side on the same cached image embeddings, sharded with accelerate.

Per benchmark: image embeddings are computed once (sharded across processes, gathered with
``gather_for_metrics``) and cached on disk by (model, revision, data, preprocessing, dtype); then every method
is scored on them: ``label`` (one template), ``ensemble`` (all templates, CLIP's own baseline) and each S^3
metric for each synonym source. Metrics come from the project's own ``evaluate`` modules in ``eval/metrics``.
A finished benchmark is not recomputed; an unreachable one is reported and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import registry
from report import write_reports

from s3_hf import SynonymSpace, build_synonym_space
from s3_hf.encoding import encode_pixels, load_image, pixel_values
from s3_hf.metrics import METRICS, score
from s3_hf.templates import resolve_templates

logger = logging.getLogger("s3_hf.eval")
METRIC_DIR = Path(__file__).resolve().parent / "metrics"
S3_METRICS = [m for m in METRICS if m != "label"]


@dataclass
class EvalConfig:
    model: str
    benchmarks: Sequence[str]
    out: str = "eval_results"
    synonyms: Sequence[str] = ("wordnet",)  # "wordnet" or synonyms files
    metrics: Sequence[str] = tuple(S3_METRICS)
    label_template: str = "a photo of a {}."
    templates: str = "benchmark"  # prompts of `ensemble` and S^3: the benchmark's own, or a named set
    batch_size: int = 64
    cache_dir: str | None = None
    dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        d = asdict(self)
        for k in ("out", "cache_dir", "benchmarks", "batch_size", "extra"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# -------------------------------------------------------------------------------------------- embeddings
class _Images(torch.utils.data.Dataset):
    def __init__(self, images: Sequence[Any], processor: Any) -> None:
        self.images, self.processor = images, processor

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return pixel_values(self.processor, [load_image(self.images[i])])[0], i


def embedding_key(cfg: EvalConfig, model: Any, processor: Any, data: registry.BenchmarkData) -> str:
    prep = json.dumps(processor.to_dict(), sort_keys=True, default=str)
    parts = [cfg.model, str(getattr(model.config, "_commit_hash", None)), data.fingerprint, prep, cfg.dtype]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def image_embeddings(
    accelerator: Any, model: Any, processor: Any, data: registry.BenchmarkData, cfg: EvalConfig, cache: Path
) -> tuple[torch.Tensor, bool]:
    """``(N, D)`` unit image embeddings in dataset order, from the cache or computed across processes."""
    path = cache / f"{embedding_key(cfg, model, processor, data)}.safetensors"
    if path.is_file():
        cached = load_file(path)
        if torch.equal(cached["labels"], torch.tensor(data.labels)):
            return cached["embeddings"], True
    loader = torch.utils.data.DataLoader(_Images(data.images, processor), batch_size=cfg.batch_size, shuffle=False)
    loader = accelerator.prepare(loader)
    chunks, order = [], []
    for pixels, idx in tqdm(loader, desc=f"Encoding {data.name}", disable=not accelerator.is_main_process):
        emb = encode_pixels(model, pixels.to(model.dtype))
        emb, idx = accelerator.gather_for_metrics((emb.contiguous(), idx.to(emb.device)))
        chunks.append(emb.cpu())
        order.append(idx.cpu())
    emb, idx = torch.cat(chunks), torch.cat(order)
    out = torch.empty_like(emb)
    out[idx] = emb
    if accelerator.is_main_process:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"embeddings": out.contiguous(), "labels": torch.tensor(data.labels)}, str(tmp))
        tmp.replace(path)
    accelerator.wait_for_everyone()
    return out, False


# ------------------------------------------------------------------------------------------------ methods
def synonym_source(spec: str, data: registry.BenchmarkData) -> Any:
    if spec == "wordnet":
        from s3_hf.synonyms import WordNetSource

        senses = dict(zip(data.class_names, data.wnids, strict=True)) if data.wnids else {}
        return WordNetSource(senses=senses)
    return spec  # a synonyms file


def cached_space(
    cache: Path | None,
    model: Any,
    tok: Any,
    labels: list[str],
    synonyms: Callable[[], Any],
    templates: list[str],
    tag: str,
) -> SynonymSpace:
    """Build a space, or load it from ``cache`` when the same (model, labels, synonyms, templates) was built
    before. ``synonyms`` makes the synonym source, only when the space has to be built."""
    if cache is None:
        return build_synonym_space(model, tok, labels, synonyms(), templates=templates, progress=True)
    parts = [str(model.name_or_path), str(getattr(model.config, "_commit_hash", None)), json.dumps(labels), tag]
    parts.append(json.dumps(templates))
    folder = cache / "spaces" / hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
    if (folder / "s3_config.json").is_file():
        return SynonymSpace.from_pretrained(folder)
    space = build_synonym_space(model, tok, labels, synonyms(), templates=templates, progress=True)
    space.save_pretrained(folder)
    return space


def method_spaces(
    cfg: EvalConfig, model: Any, tok: Any, data: registry.BenchmarkData, cache: Path | None = None
) -> dict[str, tuple[Any, str]]:
    """method name -> (space, metric). Spaces are cached beside the image embeddings."""
    labels = data.class_names
    templates = data.templates if cfg.templates == "benchmark" else resolve_templates(cfg.templates)
    spaces: dict[str, tuple[Any, str]] = {
        "label": (cached_space(cache, model, tok, labels, lambda: None, [cfg.label_template], "label-only"), "label"),
        "ensemble": (cached_space(cache, model, tok, labels, lambda: None, templates, "label-only"), "label"),
    }
    for spec in cfg.synonyms:
        if spec == "wordnet":
            name, tag = "wordnet", f"wordnet:{json.dumps(data.wnids)}"
        else:
            name, tag = Path(spec).stem, "file:" + hashlib.sha256(Path(spec).read_bytes()).hexdigest()
        space = cached_space(cache, model, tok, labels, partial(synonym_source, spec, data), templates, tag)
        for metric in cfg.metrics:
            spaces[f"s3/{name}/{metric}"] = (space, metric)
    return spaces


def load_metric(name: str) -> Any:
    import evaluate

    return evaluate.load(str(METRIC_DIR / name / f"{name}.py"))


def score_methods(
    emb: torch.Tensor, labels: list[int], spaces: dict[str, tuple[SynonymSpace, str]], chunk: int = 4096
) -> tuple[dict[str, dict[str, Any]], dict[str, list[int]]]:
    """Per method: top-1, top-5, mean per-class accuracy and per-class wins/losses against ``label``."""
    top_k = load_metric("top_k_accuracy")
    per_class = load_metric("mean_per_class_accuracy")
    results, predictions = {}, {}
    for method, (space, metric) in spaces.items():
        state = space.scoring_state()
        k = min(5, space.num_classes)
        ranked = torch.cat(
            [score(emb[i : i + chunk], state, metric).topk(k, dim=-1).indices for i in range(0, len(emb), chunk)]
        )
        top1 = ranked[:, 0].tolist()
        pc = per_class.compute(predictions=top1, references=labels)
        results[method] = {
            "top1": top_k.compute(predictions=ranked.tolist(), references=labels, k=1)["top_k_accuracy"],
            "top5": top_k.compute(predictions=ranked.tolist(), references=labels, k=k)["top_k_accuracy"],
            "mean_per_class": pc["mean_per_class_accuracy"],
            "_per_class": pc["per_class_accuracy"],
        }
        predictions[method] = top1
    base = results["label"]["_per_class"]
    for r in results.values():
        deltas = [r["_per_class"][c] - base[c] for c in base]
        r["wins_vs_label"] = sum(d > 0 for d in deltas)
        r["losses_vs_label"] = sum(d < 0 for d in deltas)
    for r in results.values():
        del r["_per_class"]
    return results, predictions


# --------------------------------------------------------------------------------------------------- run
def run(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate every benchmark in ``cfg``; returns (and writes to ``cfg.out``) the combined results."""
    from accelerate import Accelerator
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPConfig, CLIPModel

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        os.environ.setdefault("ACCELERATE_USE_CPU", "1")  # torchrun on CPUs: let accelerate use gloo
    accelerator = Accelerator()
    main = accelerator.is_main_process
    out = Path(cfg.out)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else out / "cache"
    random_weights = Path(cfg.model).is_dir() and not any(Path(cfg.model).glob("*.safetensors"))
    if random_weights:
        torch.manual_seed(0)
        model = CLIPModel(CLIPConfig.from_pretrained(cfg.model))
        model.name_or_path = cfg.model
    else:
        model = CLIPModel.from_pretrained(cfg.model)
    model = model.to(accelerator.device, getattr(torch, cfg.dtype)).eval()
    tok, proc = AutoTokenizer.from_pretrained(cfg.model), AutoImageProcessor.from_pretrained(cfg.model)
    key = cfg.key()
    import transformers

    import s3_hf

    summary: dict[str, Any] = {
        "model": cfg.model,
        "revision": getattr(model.config, "_commit_hash", None),
        "random_weights": random_weights,
        "config": asdict(cfg),
        "versions": {"s3_hf": s3_hf.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        "processes": accelerator.num_processes,
        "benchmarks": {},
    }
    for name in cfg.benchmarks:
        result_file = out / f"{Path(name).name}.json"
        if result_file.is_file():
            previous = json.loads(result_file.read_text())
            if previous.get("config_key") == key and "methods" in previous:
                if main:
                    logger.info("%s: already evaluated with this configuration; skipping.", name)
                summary["benchmarks"][previous["name"]] = previous
                continue
        try:
            bench = registry.resolve(name)
            data = registry.load(bench)
        except registry.BenchmarkUnavailable as err:
            if main:
                logger.error("Skipping %s: %s", name, err)
            summary["benchmarks"][Path(name).name] = {"name": Path(name).name, "error": str(err)}
            continue
        t0 = time.perf_counter()
        emb, cached = image_embeddings(accelerator, model, proc, data, cfg, cache)
        t_img = time.perf_counter() - t0
        if not main:
            continue
        t0 = time.perf_counter()
        spaces = method_spaces(cfg, model, tok, data, cache)
        t_text = time.perf_counter() - t0
        t0 = time.perf_counter()
        methods, predictions = score_methods(emb.to(accelerator.device), data.labels, spaces)
        record = {
            "name": bench.name,
            "config_key": key,
            "samples": len(data.labels),
            "classes": len(data.class_names),
            "methods": methods,
            "synonyms": {m: s.classes[0]["source"] for m, (s, _) in spaces.items() if m.startswith("s3/")},
            "embeddings_cached": cached,
            "timings_s": {"images": t_img, "spaces": t_text, "scoring": time.perf_counter() - t0},
            "random_weights": random_weights,
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{bench.name}.predictions.json").write_text(json.dumps({"labels": data.labels, **predictions}))
        result_file = out / f"{bench.name}.json"
        result_file.write_text(json.dumps(record, indent=2) + "\n")
        summary["benchmarks"][bench.name] = record
        best = max(methods, key=lambda m: methods[m]["top1"])
        logger.info("%s: label %.4f, best %s %.4f", bench.name, methods["label"]["top1"], best, methods[best]["top1"])
    if main:
        write_reports(summary, out)
    accelerator.wait_for_everyone()
    return summary
