"""Benchmarks: name -> where the data comes from, its class names and templates.

Hub benchmarks point at the public CLIP_benchmark copies (``clip-benchmark/wds_*``, webdataset shards with
``classnames.txt`` and ``zeroshot_classification_templates.txt``), the copies CLIP evaluations use; only the split
asked for is downloaded, and after one online run it loads offline from the caches. Any local
image folder (one sub-folder per class) and the ImageNet sample (1,000 classes, one photo each; its folder comes
from ``--imagenet-sample`` or ``$S3_IMAGENET_SAMPLE``) work too.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from s3_hf.errors import EvalError
from s3_hf.evaluation.data.folders import load_folder, load_imagenet_sample
from s3_hf.evaluation.data.hub import load_hub
from s3_hf.evaluation.data.records import Benchmark, BenchmarkData, BenchmarkUnavailable

IMAGENET_SAMPLE = "imagenet-sample"
IMAGENET_SAMPLE_ENV = "S3_IMAGENET_SAMPLE"  # its folder: classes.tsv and images/

_WDS = {
    "imagenet1k": ("wds_imagenet1k", "imagenet80"),
    "imagenetv2": ("wds_imagenetv2", "imagenet80"),
    "imagenet-sketch": ("wds_imagenet_sketch", "imagenet80"),
    "imagenet-a": ("wds_imagenet-a", "imagenet80"),
    "imagenet-r": ("wds_imagenet-r", "imagenet80"),
    "caltech101": ("wds_vtab-caltech101", "hub"),
    "oxford-pets": ("wds_vtab-pets", "hub"),
    "stanford-cars": ("wds_cars", "hub"),
    "flowers102": ("wds_vtab-flowers", "hub"),
    "food101": ("wds_food101", "hub"),
    "fgvc-aircraft": ("wds_fgvc_aircraft", "hub"),
    "sun397": ("wds_sun397", "hub"),
    "dtd": ("wds_vtab-dtd", "hub"),
    "eurosat": ("wds_vtab-eurosat", "hub"),
    "cifar10": ("wds_cifar10", "hub"),
    "cifar100": ("wds_vtab-cifar100", "hub"),
}

REGISTRY: dict[str, Benchmark] = {
    name: Benchmark(name, hub_id=f"clip-benchmark/{repo}", templates=templates)
    for name, (repo, templates) in _WDS.items()
}
REGISTRY["ucf101"] = Benchmark(
    "ucf101",
    templates="a photo of a person doing {}.",
    note="No public Hub copy of UCF101's middle frames in this format: download CoOp's UCF-101-midframes and "
    "pass its test folder as the benchmark (an image folder with one sub-folder per class).",
)
REGISTRY[IMAGENET_SAMPLE] = Benchmark(
    IMAGENET_SAMPLE,
    templates="imagenet80",
    note=f"1,000 classes, one photo each; its folder from --imagenet-sample or ${IMAGENET_SAMPLE_ENV}",
    train_split=None,
)
PAPER_SUITE = [*_WDS, "ucf101"]


def imagenet_sample_dir(path: str | os.PathLike | None = None) -> Path:
    """The ImageNet sample's folder: ``path``, else ``$S3_IMAGENET_SAMPLE``; :class:`EvalError` when neither is set."""
    value = path or os.environ.get(IMAGENET_SAMPLE_ENV)
    if not value:
        raise EvalError(
            f"{IMAGENET_SAMPLE} needs its folder (classes.tsv and images/): pass --imagenet-sample DIR or set "
            f"{IMAGENET_SAMPLE_ENV}=DIR."
        )
    return Path(value)


def resolve(name_or_path: str, imagenet_sample: str | os.PathLike | None = None) -> Benchmark:
    """A registered benchmark or an image folder. ``imagenet_sample`` locates ``imagenet-sample`` (default
    ``$S3_IMAGENET_SAMPLE``)."""
    if name_or_path == IMAGENET_SAMPLE:
        return dataclasses.replace(REGISTRY[IMAGENET_SAMPLE], path=str(imagenet_sample_dir(imagenet_sample)))
    if name_or_path in REGISTRY:
        return REGISTRY[name_or_path]
    if os.path.isdir(name_or_path):
        return Benchmark(Path(name_or_path).name, path=name_or_path, templates="imagenet80")
    raise BenchmarkUnavailable(
        f"Unknown benchmark {name_or_path!r}: use one of {sorted(REGISTRY)} or a folder with one sub-folder per class."
    )


def short_paths(paths: Sequence[str]) -> list[str]:
    """The shortest distinct tails (at least two components) of distinct resolved ``paths``: ``/data/a/test`` and
    ``/data/b/test`` become ``a/test`` and ``b/test``; the names of benchmarks that share a base name."""
    parts = [Path(p).parts for p in paths]
    tails = list(paths)
    for k in range(2, max((len(x) for x in parts), default=0) + 1):
        tails = ["/".join(x[-k:]) for x in parts]
        if len(set(tails)) == len(tails):
            break
    return tails


def distinct_names(names: Sequence[str], folders: Sequence[str | None]) -> list[str]:
    """Benchmarks' names in a run, made distinct where several share one: those of a group that live in a folder
    (``folders[i]``, resolved; ``None`` for a Hub benchmark) are named by their folders' shortest distinct tails
    (:func:`short_paths`: ``/data/a/test`` and ``/data/b/test`` become ``a/test`` and ``b/test``)."""
    out = list(names)
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name, []).append(i)
    for group in groups.values():
        local = [i for i in group if folders[i] is not None]
        if len(group) < 2 or not local:
            continue
        for i, tail in zip(local, short_paths([folders[i] or "" for i in local]), strict=True):
            out[i] = tail
    return out


def location(bench: Benchmark) -> dict[str, str]:
    """Where a benchmark's data lives, known before it is loaded: its Hub id and split, or its resolved folder."""
    if bench.hub_id:
        return {"hub_id": bench.hub_id, "split": bench.split}
    return {"path": str(Path(bench.path or "").resolve())}


def identity(bench: Benchmark, data: BenchmarkData) -> dict[str, str]:
    """A benchmark's resolved identity: its :func:`location` and the fingerprint of the data loaded from it (for a
    Hub split, its revision and the dataset's fingerprint). Results are reused only for an equal identity."""
    return {**location(bench), "fingerprint": data.fingerprint}


def load(bench: Benchmark, cache_dir: str | None = None) -> BenchmarkData:
    """Load a benchmark's test data; raises :class:`BenchmarkUnavailable` with the reason when it cannot."""
    if bench.name == IMAGENET_SAMPLE:
        if not (Path(bench.path or "") / "classes.tsv").is_file():
            raise BenchmarkUnavailable(
                f"{IMAGENET_SAMPLE}: {bench.path} holds no classes.tsv; point --imagenet-sample or "
                f"{IMAGENET_SAMPLE_ENV} at the folder with classes.tsv and images/."
            )
        return load_imagenet_sample(bench)
    if bench.hub_id:
        return load_hub(bench, cache_dir)
    return load_folder(bench)


def load_train(
    bench: Benchmark,
    test: BenchmarkData,
    cache_dir: str | None = None,
    per_class: int | None = None,
    seed: int = 0,
) -> BenchmarkData:
    """The split few-shot support images are sampled from; its classes must be the test split's. From the Hub,
    ``per_class`` streams shards (in an order shuffled by ``seed``) only until every class has that many samples
    (see :func:`_stream_shards`); ``None`` reads the whole split."""
    if bench.train_split is None:
        raise BenchmarkUnavailable(f"{bench.name} has no train split to sample few-shot support images from.")
    if bench.hub_id:
        data = load_hub(bench, cache_dir, split=bench.train_split, per_class=per_class, seed=seed)
    else:
        data = load_folder(bench, split="train")
    if data.class_names != test.class_names:
        raise BenchmarkUnavailable(f"{bench.name}: the train split's classes differ from the test split's.")
    return data


__all__ = [
    "IMAGENET_SAMPLE",
    "IMAGENET_SAMPLE_ENV",
    "PAPER_SUITE",
    "REGISTRY",
    "Benchmark",
    "BenchmarkData",
    "BenchmarkUnavailable",
    "distinct_names",
    "identity",
    "imagenet_sample_dir",
    "load",
    "load_train",
    "location",
    "resolve",
    "short_paths",
]
