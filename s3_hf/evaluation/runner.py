"""`s3 eval`: every method side by side on the same cached image embeddings, sharded with accelerate.

Per benchmark: image embeddings are computed once (sharded across processes and gathered back in input order)
and cached on disk by (model, revision, data, preprocessing, dtype); then every method is scored on them:
``label`` (one template), ``ensemble`` (all templates, CLIP's own baseline) and each S^3 metric for each synonym
source. Metrics come from the project's own ``evaluate`` modules in ``eval/metrics``. A benchmark finished with the
same configuration on the same data (its resolved location and data fingerprint) is not recomputed; an unreachable
one is reported and skipped. Every prerequisite is checked before the first image is encoded, and no file in the
results folder that s3 eval did not write is replaced without ``overwrite``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from s3_hf import SynonymSpace, build_synonym_space
from s3_hf.baselines.texts import WAFFLE_SEEDS, WAFFLE_TEMPLATE, dclip_template
from s3_hf.errors import EvalError
from s3_hf.evaluation import registry, report
from s3_hf.evaluation.report import write_reports
from s3_hf.fewshot import SSPConfig, fit_for_space, global_and_local, sample_shots, view_keys
from s3_hf.fewshot.features import AugmentedViews, view_side
from s3_hf.fewshot.gda import fit_gda
from s3_hf.io.files import save_tensors, write_json
from s3_hf.io.images import load_image
from s3_hf.io.parallel import default_image_workers
from s3_hf.models.encoders import Encoder
from s3_hf.models.families import check_canonicalization
from s3_hf.space.scoring import METRICS, score
from s3_hf.text.templates import resolve_templates

logger = logging.getLogger("s3_hf.evaluation")
METRIC_DIR = Path(__file__).resolve().parent / "metrics"
S3_METRICS = [m for m in METRICS if m != "label"]


@dataclass
class EvalConfig:
    """What ``s3 eval`` runs.

    Args:
        model: a Hub id or a local checkpoint folder (a folder without weights is initialised at random and its
            results are marked ``random_weights``).
        benchmarks: registered names (``s3 eval --list``) or image folders (one sub-folder per class).
        out: the results folder (``results.json``, ``results.md``, ``gains.png``, one JSON per benchmark).
        synonyms: synonym sources to build S^3 spaces from: ``"wordnet"``, ``"curated"`` or synonyms files.
        metrics: the S^3 metrics to score (every one by default).
        label_template: the single template of the ``label`` baseline.
        templates: the prompts of ``ensemble`` and S^3: ``"benchmark"`` (its own) or a named set.
        batch_size: images per forward pass.
        cache_dir: where image embeddings and built spaces are cached (default ``out/cache``).
        dtype: the model's dtype.
        shots: few-shot runs, support images per class sampled from the train split (none by default).
        seeds: support samples per shot count.
        fewshot_base: the zero-shot method few-shot adds to (default: the first S^3 ``local_center`` method).
        fewshot: :class:`~s3_hf.fewshot.SSPConfig` options.
        imagenet_sample: the imagenet-sample folder (default ``$S3_IMAGENET_SAMPLE``).
        dclip: DCLIP's descriptors: a JSON file ``{class: [descriptor, ...]}`` or ``"curated"`` (the benchmark's
            curated list); ``None`` leaves DCLIP out.
        cupl: CuPL's prompts, a JSON file ``{class: [prompt, ...]}``; ``None`` leaves CuPL out.
        waffle: WaffleCLIP's number of random descriptor pairs (0, the default, leaves it out; the paper uses 15).
        dclip_template: the template around DCLIP's texts: ``"dclip"`` (the released code's: none, the default),
            ``"waffle"`` (WaffleCLIP's ``"A photo of a {}."``) or a template with one ``{}``.
        waffle_seeds: WaffleCLIP's draws; its results are the mean over them, with the standard deviation
            (``top1_std``, ...) and every draw's figures (``draws``). Default: seeds 0-6, as its 7 repetitions.
        descriptors: also score S^3 with descriptors for every synonym source that has them.
        canonicalizations: the text canonicalisations to score every zero-shot method with: ``None`` (the text as
            written, transformers' behaviour) and/or ``"lower_no_punct"``; methods of a canonicalisation other than
            ``None`` are named with the suffix ``@rule``.
        fast_decode: decode JPEGs at the smallest DCT scale that still covers the model's resize target (default);
            ``False`` decodes every pixel, exactly as transformers does.
        workers: image workers: on a CPU, threads that each decode, preprocess and encode a batch (default 2); on a
            GPU, data-loader processes that decode and preprocess ahead of the model (default: up to 8).
        task: ``"classification"`` or ``"segmentation"`` (benchmarks are then ``NAME=FOLDER`` or folders; see
            :mod:`s3_hf.evaluation.segmentation`).
        class_names: segmentation: a class-name file used instead of each folder's ``classes.txt``.
        variant: segmentation: the dense last-block variant (``"naclip"``, ``"sclip"``, ``"clearclip"``,
            ``"maskclip"`` or ``None``).
        short_side: segmentation: images are resized to this short side.
        window: segmentation: the sliding window.
        stride: segmentation: the window stride.
        background_threshold: segmentation: below this top probability a pixel goes to the ``background`` class.
        protocol: segmentation: the protocol preset (:mod:`s3_hf.segmentation.protocols`): ``"s3"`` (these options) or
            ``"sclip"``, ``"naclip"``, ``"clearclip"`` (the references' values per benchmark; benchmarks are then
            given as ``NAME=FOLDER``). Each benchmark's results record every value used.
        protocol_values: segmentation: values replacing the protocol's (any of
            :meth:`s3_hf.segmentation.protocols.ProtocolValues.value_names`).
        extra: free-form notes recorded with the results.
        overwrite: replace files in ``out`` that s3 eval did not write (by default such a file stops the run before
            any work).
    """

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
    shots: Sequence[int] = ()  # few-shot runs: support images per class, sampled from the train split
    seeds: Sequence[int] = (1, 2, 3)
    fewshot_base: str = ""  # the zero-shot method few-shot adds to; "" = the first S^3 local_center method
    fewshot: dict[str, Any] = field(default_factory=dict)  # SSPConfig options
    imagenet_sample: str | None = None  # the imagenet-sample folder; default $S3_IMAGENET_SAMPLE
    dclip: str | None = None
    cupl: str | None = None
    waffle: int = 0
    dclip_template: str = "dclip"
    waffle_seeds: Sequence[int] = WAFFLE_SEEDS
    descriptors: bool = False
    canonicalizations: Sequence[str | None] = (None,)
    fast_decode: bool = True  # JPEGs decoded at reduced size, never below the model's resize target
    workers: int | None = None  # image workers; None: see resolved_workers
    task: str = "classification"  # or "segmentation" (see s3_hf.evaluation.segmentation)
    class_names: str | None = None  # segmentation: a class-name file instead of each folder's classes.txt
    variant: str | None = "naclip"  # segmentation: the dense last-block variant
    short_side: int = 336
    window: int = 224
    stride: int = 112
    background_threshold: float | None = None
    protocol: str = (
        "s3"  # segmentation: s3_hf.segmentation.protocols preset; reference presets hold values per benchmark
    )
    protocol_values: dict[str, Any] = field(default_factory=dict)  # segmentation: overrides of the preset's values
    extra: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False  # replace files in ``out`` that s3 eval did not write

    def resolved_workers(self) -> int:
        """Image workers: as given, else :func:`s3_hf.io.parallel.default_image_workers` for the device (2 encoding
        threads on a CPU with 2 or more of torch's threads; up to 8 data-loader processes on a GPU)."""
        if self.workers is not None:
            return self.workers
        return default_image_workers("cuda" if torch.cuda.is_available() else "cpu")

    def key(self) -> str:
        d = asdict(self)
        for k in ("out", "cache_dir", "benchmarks", "batch_size", "imagenet_sample", "extra", "workers", "overwrite"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# -------------------------------------------------------------------------------------------- embeddings
class _Indices(torch.utils.data.Dataset):
    """Positions only: on a CPU the images are read by :func:`~s3_hf.io.parallel.map_batches` workers."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class _Images(torch.utils.data.Dataset):
    """One image's inputs (``pixel_values`` and, for SigLIP 2, its patch mask and shapes) and its index."""

    def __init__(self, images: Sequence[Any], encoder: Encoder, fast_decode: bool = True) -> None:
        self.images, self.encoder = images, encoder
        self.min_side = encoder.decode_min_side() if fast_decode else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], int]:
        inputs = self.encoder.image_inputs([load_image(self.images[i], min_side=self.min_side)])
        return {k: v[0] for k, v in inputs.items()}, i


def _preprocessing(encoder: Encoder) -> str:
    processor = encoder.image_processor
    if hasattr(processor, "to_dict"):  # the class names the backend (PIL or torchvision); the dict does not
        return type(processor).__name__ + json.dumps(processor.to_dict(), sort_keys=True, default=str)
    return repr(processor)  # an open_clip transform


def embedding_key(cfg: EvalConfig, encoder: Encoder, data: registry.BenchmarkData) -> str:
    prep = _preprocessing(encoder)
    parts = [cfg.model, str(encoder.revision), data.fingerprint, prep, cfg.dtype]
    if cfg.fast_decode:
        parts.append(f"fast-decode:{encoder.decode_min_side()}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def encode_sharded(
    accelerator: Any,
    encoder: Encoder,
    images: Sequence[Any],
    batch_size: int,
    encode: Callable[[Encoder, dict[str, torch.Tensor]], tuple[torch.Tensor, ...]],
    desc: str,
    fast_decode: bool = True,
    workers: int = 0,
    progress: bool = True,
) -> list[torch.Tensor]:
    """``encode(encoder, inputs)`` over ``images``, sharded across processes and gathered back in input order.
    ``workers``: on a CPU, threads that each read and encode a batch (:mod:`s3_hf.io.parallel`); on a GPU, data-loader
    processes that read ahead of the encoder."""
    on_cpu = encoder.device.type == "cpu"
    dataset = _Indices(len(images)) if on_cpu else _Images(images, encoder, fast_decode)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=0 if on_cpu else workers,
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=2 if workers and not on_cpu else None,
    )
    loader = accelerator.prepare(loader)
    if on_cpu:  # this process's shard of positions, read and encoded by the encoder's image workers
        positions = [i for idx in loader for i in idx.tolist()]
        read = encoder.encode_image_batches(
            _Take(images, positions),  # lazily: augmented views are drawn as they are encoded
            batch_size,
            fast=fast_decode,
            workers=workers,
            features=partial(encode, encoder),
        )
        batches: Iterable[Any] = ((b.features, torch.tensor([positions[j] for j in b.indices])) for b in read)
    else:
        batches = ((encode(encoder, inputs), idx) for inputs, idx in loader)
    chunks: list[list[torch.Tensor]] = []
    order = []
    bar = tqdm(total=len(images), desc=desc, unit="img", disable=not (progress and accelerator.is_main_process))
    for outs, idx in batches:
        # plain gather, not gather_for_metrics: its trimming of the last batch reads the loader's state, which is
        # ahead of this loop when workers read ahead; the duplicates padding the last batch are dropped by index
        gathered = accelerator.gather((*(o.contiguous() for o in outs), idx.to(outs[0].device)))
        chunks.append([g.cpu() for g in gathered[:-1]])
        order.append(gathered[-1].cpu())
        bar.update(min(len(order[-1]), bar.total - bar.n))  # all processes' images; padding is not counted
    bar.close()
    idx = torch.cat(order)
    if torch.unique(idx).numel() != len(images):
        raise RuntimeError(f"gathered {torch.unique(idx).numel()} of {len(images)} images")  # cannot happen
    results = []
    for parts in zip(*chunks, strict=True):
        flat = torch.cat(parts)
        out = flat.new_empty((len(images), *flat.shape[1:]))
        out[idx] = flat  # padded duplicates write the same image's features twice
        results.append(out)
    return results


def image_embeddings(
    accelerator: Any, encoder: Encoder, data: registry.BenchmarkData, cfg: EvalConfig, cache: Path
) -> tuple[torch.Tensor, bool]:
    """``(N, D)`` unit image embeddings in dataset order, from the cache or computed across processes."""
    path = cache / f"{embedding_key(cfg, encoder, data)}.safetensors"
    if path.is_file():
        cached = load_file(path)
        if torch.equal(cached["labels"], torch.tensor(data.labels)):
            return cached["embeddings"], True
    (out,) = encode_sharded(
        accelerator,
        encoder,
        data.images,
        cfg.batch_size,
        lambda e, px: (e.encode_pixels(px),),
        f"Encoding {data.name}",
        cfg.fast_decode,
        cfg.resolved_workers(),
    )
    if accelerator.is_main_process:
        save_tensors(path, {"embeddings": out, "labels": torch.tensor(data.labels)})
    accelerator.wait_for_everyone()
    return out, False


class _Take(Sequence[Any]):
    """``items[positions[j]]`` at ``j``, read when indexed."""

    def __init__(self, items: Sequence[Any], positions: Sequence[int]) -> None:
        self.items, self.positions = items, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, j: int) -> Any:  # type: ignore[override]
        return self.items[self.positions[j]]


#: The seed of the support images' augmented views in eval: each train image's views depend on it and on the
#: image's index in the train split only, so every (shots, seed) run sees the same views of an image.
VIEW_SEED = 0


def support_features(
    accelerator: Any,
    encoder: Encoder,
    train: registry.BenchmarkData,
    indices: list[int],
    cfg: EvalConfig,
    cache: Path,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Global ``(n, D)`` and local ``(n, P, D)`` features of the train images ``indices`` (cached; local ones are
    kept and returned in float16: a 16-shot ImageNet support set is 16,000 images x patches x D), and the global
    features ``(n, V, D)`` of ``V`` augmented views of each (``augment_views`` of the few-shot options; ``None``
    when it is 1)."""
    views = SSPConfig(**cfg.fewshot).augment_views
    key = embedding_key(cfg, encoder, train) + hashlib.sha256(json.dumps(indices).encode()).hexdigest()[:8]
    if views > 1:
        key += f"-views{views}-seed{VIEW_SEED}"
    path = cache / f"support-{key}.safetensors"
    if path.is_file():
        cached = load_file(path)
        return cached["global"], cached["local"], cached.get("views")
    glob, local = encode_sharded(
        accelerator,
        encoder,
        [train.images[i] for i in indices],
        cfg.batch_size,
        lambda e, px: tuple(x.half() if x.dim() == 3 else x for x in global_and_local(e, px)),
        f"Encoding {train.name} support",
        cfg.fast_decode,
        cfg.resolved_workers(),
    )
    view_features = None
    if views > 1:  # N x V encodings, global only
        images = AugmentedViews([train.images[i] for i in indices], views, VIEW_SEED, view_side(encoder), indices)
        (flat,) = encode_sharded(
            accelerator,
            encoder,
            images,
            cfg.batch_size,
            lambda e, px: (e.encode_pixels(px),),
            f"Encoding {train.name} support views",
            cfg.fast_decode,
            cfg.resolved_workers(),
        )
        view_features = flat.reshape(len(indices), views, -1)
    if accelerator.is_main_process:
        tensors = {"global": glob, "local": local}
        if view_features is not None:
            tensors["views"] = view_features
        save_tensors(path, tensors)
    accelerator.wait_for_everyone()
    return glob, local, view_features


# ------------------------------------------------------------------------------------------------ methods
def synonym_source(spec: str, data: registry.BenchmarkData) -> Any:
    """The synonym source of ``spec``: ``"wordnet"``, ``"curated"`` (the benchmark's curated list) or a file."""
    if spec == "wordnet":
        from s3_hf.synonyms import WordNetSource

        senses = dict(zip(data.class_names, data.wnids, strict=True)) if data.wnids else {}
        return WordNetSource(senses=senses)
    if spec == "curated":
        from s3_hf.synonyms import CuratedSource

        return CuratedSource(data.name)
    return spec  # a synonyms file


def _source_tag(spec: str, data: registry.BenchmarkData) -> tuple[str, str]:
    """(method name, cache tag) of a synonym or descriptor spec."""
    if spec == "wordnet":
        return "wordnet", f"wordnet:{json.dumps(data.wnids)}"
    if spec == "curated":
        from s3_hf.synonyms.curated import read_curated

        content = json.dumps([(e.label, e.synonyms, e.descriptors) for e in read_curated(data.name).entries])
        return "curated", "curated:" + hashlib.sha256(content.encode()).hexdigest()
    return Path(spec).stem, "file:" + hashlib.sha256(Path(spec).read_bytes()).hexdigest()


def _has_curated(data: registry.BenchmarkData) -> bool:
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
            from s3_hf.baselines import build_method_space

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


def method_spaces(
    cfg: EvalConfig, encoder: Encoder, data: registry.BenchmarkData, cache: Path | None = None
) -> dict[str, tuple[Any, str]]:
    """method name -> (space, metric), for each text canonicalisation of ``cfg`` (a rule other than ``None`` names
    its methods ``method@rule``). Spaces are cached beside the image embeddings.

    Methods: ``label``, ``ensemble``; ``dclip``, ``cupl`` and ``waffle`` where configured; per synonym source
    ``s3/<source>/<metric>`` and, with ``cfg.descriptors``, ``s3/<source>+descriptors/<metric>``."""
    from s3_hf.baselines import BASELINE_METRICS

    labels = data.class_names
    templates = data.templates if cfg.templates == "benchmark" else resolve_templates(cfg.templates)
    spaces: dict[str, tuple[Any, str]] = {}
    sources = [s for s in cfg.synonyms if s != "curated" or _has_curated(data)]
    if len(sources) < len(cfg.synonyms):
        logger.error("%s has no curated synonym list; its curated methods are skipped.", data.name)
    for rule in cfg.canonicalizations:
        suffix = "" if rule is None else f"@{rule}"

        def space(synonyms: Callable[[], Any], texts: list[str], tag: str, rule: str | None = rule, **kw: Any) -> Any:
            return cached_space(cache, encoder, labels, synonyms, texts, tag, rule, **kw)

        spaces["label" + suffix] = (space(lambda: None, [cfg.label_template], "label-only"), "label")
        spaces["ensemble" + suffix] = (space(lambda: None, templates, "label-only"), "label")
        descriptor_texts: tuple[Any, str] | None = None  # DCLIP's descriptors and their cache tag
        for method, spec in (("dclip", cfg.dclip), ("cupl", cfg.cupl)):
            if not spec or (spec == "curated" and not _has_curated(data)):
                continue
            if spec == "curated":
                texts = synonym_source("curated", data).descriptors(labels)
                tag = _source_tag("curated", data)[1]
            else:
                texts, tag = spec, _source_tag(spec, data)[1]
            if method == "dclip":
                descriptor_texts = (texts, tag)
                template = dclip_template(cfg.dclip_template)
                built = space(lambda: None, [template], f"dclip:{tag}", method="dclip", descriptors=texts)
            else:  # CuPL's prompts are used as written
                built = space(lambda: None, [cfg.label_template], f"cupl:{tag}", method="cupl", prompts=texts)
            spaces[method + suffix] = (built, BASELINE_METRICS[method])
        if cfg.waffle:
            # WaffleCLIP's own template; its random strings take the characters of DCLIP's descriptors when given
            texts, tag = descriptor_texts or (None, "labels")
            extra = {"descriptors": texts} if texts is not None else {}
            draws = tuple(
                space(
                    lambda: None,
                    [WAFFLE_TEMPLATE],
                    f"waffle:{cfg.waffle}:seed={seed}:characters={tag}",
                    method="waffle",
                    waffle_count=cfg.waffle,
                    seed=seed,
                    **extra,
                )
                for seed in cfg.waffle_seeds
            )
            spaces["waffle" + suffix] = (Draws(tuple(cfg.waffle_seeds), draws), BASELINE_METRICS["waffle"])
        for spec in sources:
            name, tag = _source_tag(spec, data)
            source = partial(synonym_source, spec, data)
            built = space(source, templates, tag)
            for metric in cfg.metrics:
                spaces[f"s3/{name}/{metric}{suffix}"] = (built, metric)
            if cfg.descriptors:
                with_desc = space(source, templates, tag, descriptors=True)
                if not any(c.descriptors for c in with_desc.classes):
                    continue  # the source gives no descriptors: nothing to compare
                for metric in cfg.metrics:
                    spaces[f"s3/{name}+descriptors/{metric}{suffix}"] = (with_desc, metric)
    return spaces


def load_metric(name: str) -> Any:
    import evaluate

    return evaluate.load(str(METRIC_DIR / name / f"{name}.py"))


def _mean_and_std(draws: list[dict[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
    """One result from several draws' results: each figure's mean, its population standard deviation (``np.std``,
    as WaffleCLIP's ``base_main.py`` reports it) as ``<figure>_std``, and every draw's figures under ``draws``."""
    out: dict[str, Any] = {}
    figures = ("top1", "top5", "mean_per_class")
    for f in figures:
        values = [d[f] for d in draws]
        mean = sum(values) / len(values)
        out[f] = mean
        out[f"{f}_std"] = (sum((x - mean) ** 2 for x in values) / len(values)) ** 0.5
    out["_per_class"] = {c: sum(d["_per_class"][c] for d in draws) / len(draws) for c in draws[0]["_per_class"]}
    out["draws"] = {"seeds": list(seeds), **{f: [d[f] for d in draws] for f in figures}}
    return out


def score_methods(
    emb: torch.Tensor, labels: list[int], spaces: dict[str, tuple[SynonymSpace | Draws, str]], chunk: int = 4096
) -> tuple[dict[str, dict[str, Any]], dict[str, list[int]]]:
    """Per method: top-1, top-5, mean per-class accuracy and per-class wins/losses against ``label``. A method of
    several :class:`Draws` reports the mean over them (its per-class accuracies too, for the wins and losses), the
    standard deviations (``top1_std``, ``top5_std``, ``mean_per_class_std``) and each draw's figures (``draws``);
    its predictions are its first draw's."""
    top_k = load_metric("top_k_accuracy")
    per_class = load_metric("mean_per_class_accuracy")
    results, predictions = {}, {}

    def one(space: SynonymSpace, metric: str) -> tuple[dict[str, Any], list[int]]:
        state = space.scoring_state()
        k = min(5, space.num_classes)
        ranked = torch.cat(
            [score(emb[i : i + chunk], state, metric).topk(k, dim=-1).indices for i in range(0, len(emb), chunk)]
        )
        top1 = ranked[:, 0].tolist()
        pc = per_class.compute(predictions=top1, references=labels)
        return {
            "top1": top_k.compute(predictions=ranked.tolist(), references=labels, k=1)["top_k_accuracy"],
            "top5": top_k.compute(predictions=ranked.tolist(), references=labels, k=k)["top_k_accuracy"],
            "mean_per_class": pc["mean_per_class_accuracy"],
            "_per_class": pc["per_class_accuracy"],
        }, top1

    for method, (space, metric) in spaces.items():
        if isinstance(space, Draws):
            scored = [one(s, metric) for s in space.spaces]
            results[method] = _mean_and_std([r for r, _ in scored], space.seeds)
            predictions[method] = scored[0][1]
        else:
            results[method], predictions[method] = one(space, metric)
    base = results["label"]["_per_class"]
    for r in results.values():
        deltas = [r["_per_class"][c] - base[c] for c in base]
        r["wins_vs_label"] = sum(d > 0 for d in deltas)
        r["losses_vs_label"] = sum(d < 0 for d in deltas)
    for r in results.values():
        del r["_per_class"]
    return results, predictions


# ---------------------------------------------------------------------------------------------- few-shot
FEWSHOT_METHODS = ("zero-shot", "cache", "ssp", "gda")
#: Few-shot support from a Hub train split is sampled from the shards streamed until every class has this many
#: times the largest shot count.
STREAM_FACTOR = 4


def fewshot_base(cfg: EvalConfig, spaces: dict[str, tuple[Any, str]]) -> str:
    if cfg.fewshot_base:
        if cfg.fewshot_base not in spaces:
            raise ValueError(f"--fewshot-base {cfg.fewshot_base!r} is not one of the methods {sorted(spaces)}.")
        if isinstance(spaces[cfg.fewshot_base][0], Draws):
            raise ValueError(f"--fewshot-base {cfg.fewshot_base!r} is several random draws; pick a single method.")
        return cfg.fewshot_base
    s3 = [m for m in spaces if m.startswith("s3/")]
    return next((m for m in s3 if spaces[m][1] == "local_center"), s3[0] if s3 else "ensemble")


def support_indices(cfg: EvalConfig, train: registry.BenchmarkData) -> dict[tuple[int, int], list[int]]:
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


def score_fewshot(
    cfg: EvalConfig,
    emb: torch.Tensor,
    labels: list[int],
    space: SynonymSpace,
    metric: str,
    support: FewShotSupport,
    *,
    tau: float,
    chunk: int = 1024,
) -> dict[str, Any]:
    """Per (shots, seed): top-1 and mean per-class accuracy of zero-shot, the cache alone, SSP and GDA; and per
    shots the mean and standard deviation over seeds. Hyper-parameters are tuned on the support set only."""
    top_k, per_class = load_metric("top_k_accuracy"), load_metric("mean_per_class_accuracy")
    state = space.scoring_state()
    classes = list(range(space.num_classes))
    zero_shot = torch.cat([score(emb[i : i + chunk], state, metric) for i in range(0, len(emb), chunk)])
    records = []
    for (k, seed), idx in tqdm(support.runs.items(), desc="Few-shot runs"):
        rows = support.rows(idx)
        glob, local = support.glob[rows], support.local[rows].float()
        y = [support.train_labels[i] for i in idx]
        views = None if support.views is None else support.views[rows].float()
        keys = None if views is None else view_keys(views)  # Tip-Adapter's cache keys: the mean of the views
        entry: dict[str, Any] = {"shots": k, "seed": seed, "support_images": len(idx)}
        predictions = {"zero-shot": zero_shot.argmax(-1).tolist()}
        for mode in ("cache", "ssp"):
            options = {**cfg.fewshot, "mode": mode, "seed": seed}
            adapter = fit_for_space(
                space, classes, glob, local, y, metric, tau=tau, config=SSPConfig(**options), keys=keys
            )
            out = torch.cat(
                [adapter.logits(emb[i : i + chunk], zero_shot[i : i + chunk]) for i in range(0, len(emb), chunk)]
            )
            predictions[mode] = out.argmax(-1).tolist()
            entry[f"{mode}_params"] = {x: getattr(adapter.info, x) for x in ("alpha", "beta", "gamma", "tuned")}
        support_zero_shot = tau * score(glob.to(state.points.device), state, metric).cpu()
        val_fraction = SSPConfig(**cfg.fewshot).val_fraction
        gda = fit_gda(
            glob if views is None else views,
            y,
            len(classes),
            support_zero_shot,
            seed=seed,
            val_fraction=val_fraction,
            queries=glob,
        )
        predictions["gda"] = (
            torch.cat(
                [gda.logits(emb[i : i + chunk], tau * zero_shot[i : i + chunk]) for i in range(0, len(emb), chunk)]
            )
            .argmax(-1)
            .tolist()
        )
        entry["gda_params"] = gda.info()
        for method, pred in predictions.items():
            pc = per_class.compute(predictions=pred, references=labels)["mean_per_class_accuracy"]
            top1 = top_k.compute(predictions=[[p] for p in pred], references=labels, k=1)["top_k_accuracy"]
            entry[method] = {"top1": top1, "mean_per_class": pc}
        records.append(entry)
    summary: dict[str, Any] = {}
    for k in cfg.shots:
        rows_k = [r for r in records if r["shots"] == k]
        summary[str(k)] = {}
        for method in FEWSHOT_METHODS:
            values = torch.tensor([r[method]["top1"] for r in rows_k], dtype=torch.float64)
            std = float(values.std(unbiased=False)) if len(values) > 1 else 0.0
            summary[str(k)][method] = {"top1_mean": float(values.mean()), "top1_std": std}
    return {"runs": records, "summary": summary}


# --------------------------------------------------------------------------------------------------- run
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
    by_name: dict[str, list[Planned]] = {}
    for plan in plans:
        by_name.setdefault(plan.name, []).append(plan)
    for group in by_name.values():
        folders = [p for p in group if p.bench and not p.bench.hub_id]
        if len(group) < 2 or not folders:
            continue
        tails = registry.short_paths([registry.location(p.bench)["path"] for p in folders])  # type: ignore[arg-type]
        for plan, tail in zip(folders, tails, strict=True):
            plan.name = tail
    return plans


def check_prerequisites(cfg: EvalConfig) -> None:
    """Everything a run needs that can be checked without a model or an image, checked before either is touched:
    the task, the extras, the data locations, the text canonicalisations and the synonym, descriptor and prompt
    sources (``wordnet`` needs nltk and the WordNet corpus)."""
    if cfg.task not in ("classification", "segmentation"):
        raise EvalError(f"Unknown task {cfg.task!r}: use classification or segmentation.")
    needed = ["accelerate", "evaluate"]
    if cfg.task == "classification":
        needed.append("matplotlib")
        if any(registry.REGISTRY.get(b, registry.Benchmark("")).hub_id for b in cfg.benchmarks):
            needed.append("datasets")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise EvalError(f"s3 eval needs {', '.join(missing)}, which is not installed: pip install 's3-hf[eval]'.")
    if registry.IMAGENET_SAMPLE in cfg.benchmarks:  # a missing data location is a usage error: say so up front
        registry.imagenet_sample_dir(cfg.imagenet_sample)
    for rule in cfg.canonicalizations:
        check_canonicalization(rule)
    if cfg.task != "classification":
        return
    for spec in cfg.synonyms:
        if spec == "wordnet":
            from s3_hf.synonyms.wordnet import load_wordnet

            load_wordnet()  # WordNetMissingError says how to install it
        elif spec != "curated":
            from s3_hf.synonyms import StaticSource

            StaticSource(spec)
    from s3_hf.baselines.texts import read_class_texts

    for what, spec in (("DCLIP descriptors", cfg.dclip), ("CuPL prompts", cfg.cupl)):
        if spec and spec != "curated":
            read_class_texts(spec, what)
    if cfg.dclip:
        dclip_template(cfg.dclip_template)  # SynonymsError names the choices
    seeds = list(cfg.waffle_seeds)
    if cfg.waffle and (not seeds or any(isinstance(x, bool) or not isinstance(x, int) for x in seeds)):
        raise EvalError(f"WaffleCLIP needs one or more integer seeds (its draws), got {seeds!r}.")


def _previous(path: Path) -> dict[str, Any] | None:
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
    return previous


def _load_data(plan: Planned, cfg: EvalConfig, fewshot: bool) -> None:
    """Load a benchmark's test split (and, for few-shot runs, its train split, with every class present);
    what cannot be loaded is recorded on ``plan``."""
    assert plan.bench is not None
    try:
        plan.data = registry.load(plan.bench)
    except registry.BenchmarkUnavailable as err:
        plan.error = str(err)
        return
    if not fewshot:
        return
    try:
        # stream train shards until every class has 4x the largest shot count (not the whole split)
        train = registry.load_train(plan.bench, plan.data, per_class=STREAM_FACTOR * max(cfg.shots))
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


def _run_segmentation(cfg: EvalConfig, engine: Any, accelerator: Any, out: Path, datas: list[Any]) -> dict[str, Any]:
    from s3_hf.evaluation import segmentation

    results = segmentation.run_segmentation(cfg, engine, accelerator, datas)
    import s3_hf

    summary = {
        "task": "segmentation",
        "model": cfg.model,
        "revision": engine.encoder.revision,
        "random_weights": engine.encoder.random_weights,
        "family": engine.family.family,
        "options": {
            "variant": cfg.variant,
            "short_side": cfg.short_side,
            "window": cfg.window,
            "stride": cfg.stride,
            "background_threshold": cfg.background_threshold,
            "protocol": cfg.protocol,
            "protocol_values": dict(cfg.protocol_values),
        },
        "processes": accelerator.num_processes,
        "versions": {"s3_hf": s3_hf.__version__, "torch": torch.__version__},
        "benchmarks": results,
    }
    if accelerator.is_main_process:
        segmentation.write(summary, out)
    return summary


def run(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate every benchmark in ``cfg``; returns (and writes to ``cfg.out``) the combined results.

    Every prerequisite (extras, synonym sources, data, few-shot classes, the files of ``cfg.out``) is checked
    before the first image is encoded. A benchmark's results are reused only when they were measured with the same
    configuration on the same data (its :func:`~s3_hf.evaluation.registry.identity`)."""
    check_prerequisites(cfg)
    out = Path(cfg.out)
    seg_data: list[Any] = []
    plans: list[Planned] = []
    if cfg.task == "segmentation":
        from s3_hf.evaluation import segmentation

        seg_data = segmentation.load_all(cfg)
        report.check_outputs(out, segmentation.RUN_FILES, cfg.overwrite)
    else:
        plans = plan_benchmarks(cfg.benchmarks, cfg.imagenet_sample)
        report.check_outputs(out, [*report.RUN_FILES, *(f for p in plans for f in p.files)], cfg.overwrite)
    from accelerate import Accelerator

    from s3_hf.engine.core import S3Engine

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        os.environ.setdefault("ACCELERATE_USE_CPU", "1")  # torchrun on CPUs: let accelerate use gloo
    accelerator = Accelerator()
    main = accelerator.is_main_process
    cache = Path(cfg.cache_dir) if cfg.cache_dir else out / "cache"
    engine = S3Engine.from_pretrained(cfg.model, device=str(accelerator.device), dtype=cfg.dtype)
    encoder = engine.encoder
    if cfg.task == "segmentation":
        return _run_segmentation(cfg, engine, accelerator, out, seg_data)
    key = cfg.key()
    import transformers

    import s3_hf

    summary: dict[str, Any] = {
        "model": cfg.model,
        "revision": encoder.revision,
        "random_weights": encoder.random_weights,
        "family": engine.family.family,
        "scoring": engine.family.scoring,
        "canonicalizations": list(cfg.canonicalizations),
        "config": asdict(cfg),
        "versions": {"s3_hf": s3_hf.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        "processes": accelerator.num_processes,
        "benchmarks": {},
    }
    fewshot_wanted = bool(cfg.shots) and encoder.has_patch_tokens
    for plan in plans:  # every benchmark's data (and few-shot classes) before the first image is encoded
        if plan.bench is not None:
            _load_data(plan, cfg, fewshot_wanted)
    for plan in plans:
        name = plan.name
        if plan.data is None or plan.bench is None:
            if main:
                logger.error("Skipping %s: %s", plan.spec, plan.error)
            summary["benchmarks"][name] = {"name": name, "error": plan.error}
            continue
        bench, data = plan.bench, plan.data
        identity = registry.identity(bench, data)
        result_file, predictions_file = (out / f for f in plan.files)
        previous = _previous(result_file)
        if previous and previous.get("config_key") == key and previous.get("identity") == identity:
            if "methods" in previous:
                if main:
                    logger.info("%s: already evaluated with this configuration on this data; skipping.", name)
                    report.claim_outputs(out, plan.files)  # ours from now on (it may have been --overwrite'd)
                summary["benchmarks"][name] = {**previous, "name": name}
                continue
        t0 = time.perf_counter()
        emb, cached = image_embeddings(accelerator, encoder, data, cfg, cache)
        t_img = time.perf_counter() - t0
        support: FewShotSupport | None = None
        fewshot: dict[str, Any] | None = None
        if cfg.shots and not encoder.has_patch_tokens:
            fewshot = {"error": f"few-shot SSP needs patch tokens in the joint space; {engine.family.family} has none"}
            if main:
                logger.error("No few-shot runs for %s: %s", name, fewshot["error"])
        elif cfg.shots and plan.train is None:
            if main:
                logger.error("No few-shot runs for %s: %s", name, plan.train_error)
            fewshot = {"error": plan.train_error}
        elif cfg.shots and plan.train is not None:
            t0 = time.perf_counter()
            train = plan.train
            runs = support_indices(cfg, train)
            union = sorted({i for idx in runs.values() for i in idx})
            glob, local, views = support_features(accelerator, encoder, train, union, cfg, cache)
            support = FewShotSupport(runs, union, glob, local, train.labels, views)
            t_support = time.perf_counter() - t0
        if not main:
            continue
        t0 = time.perf_counter()
        spaces = method_spaces(cfg, encoder, data, cache)
        t_text = time.perf_counter() - t0
        t0 = time.perf_counter()
        methods, predictions = score_methods(emb.to(accelerator.device), data.labels, spaces)
        t_score = time.perf_counter() - t0
        if support is not None:
            base = fewshot_base(cfg, spaces)
            t0 = time.perf_counter()
            tau = engine.logit_scale
            fewshot = score_fewshot(cfg, emb, data.labels, *spaces[base], support, tau=tau)
            fewshot.update(
                base=base, timings_s={"support_images": t_support, "fit_and_score": time.perf_counter() - t0}
            )
        record = {
            "name": name,
            "identity": identity,
            "config_key": key,
            "model": cfg.model,
            "samples": len(data.labels),
            "classes": len(data.class_names),
            "class_names": list(data.class_names),
            "methods": methods,
            "synonyms": {m: s.classes[0].source for m, (s, _) in spaces.items() if m.startswith("s3/")},
            "embeddings_cached": cached,
            "timings_s": {"images": t_img, "spaces": t_text, "scoring": t_score},
            "random_weights": encoder.random_weights,
            "files": {"results": result_file.name, "predictions": predictions_file.name},
        }
        if fewshot is not None:
            record["fewshot"] = fewshot
        report.claim_outputs(out, plan.files)
        write_json(predictions_file, {"labels": data.labels, **predictions}, indent=None)
        write_json(result_file, record)
        summary["benchmarks"][name] = record
        best = max(methods, key=lambda m: methods[m]["top1"])
        logger.info("%s: label %.4f, best %s %.4f", name, methods["label"]["top1"], best, methods[best]["top1"])
    if main:
        write_reports(summary, out)
    accelerator.wait_for_everyone()
    return summary


__all__ = [
    "FEWSHOT_METHODS",
    "METRIC_DIR",
    "S3_METRICS",
    "Draws",
    "EvalConfig",
    "FewShotSupport",
    "Planned",
    "cached_space",
    "check_prerequisites",
    "embedding_key",
    "encode_sharded",
    "fewshot_base",
    "image_embeddings",
    "load_metric",
    "method_spaces",
    "plan_benchmarks",
    "run",
    "score_fewshot",
    "score_methods",
    "support_features",
    "support_indices",
    "synonym_source",
]
