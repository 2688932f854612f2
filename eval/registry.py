"""Benchmarks: name -> where the data comes from, its class names and templates.

Hub benchmarks point at the public CLIP_benchmark copies (``clip-benchmark/wds_*``, webdataset shards with
``classnames.txt`` and ``zeroshot_classification_templates.txt``), the copies CLIP evaluations use. Any local
image folder (one sub-folder per class) and the ImageNet sample (1,000 classes, one photo each; its folder comes
from ``--imagenet-sample`` or ``$S3_IMAGENET_SAMPLE``) work too.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3_hf.encoding import is_image_file
from s3_hf.errors import EvalError
from s3_hf.templates import IMAGENET_TEMPLATES

IMAGENET_SAMPLE = "imagenet-sample"
IMAGENET_SAMPLE_ENV = "S3_IMAGENET_SAMPLE"  # its folder: classes.tsv and images/


@dataclass(frozen=True)
class Benchmark:
    name: str
    hub_id: str | None = None  # a CLIP_benchmark webdataset repo
    split: str = "test"
    image_columns: tuple[str, ...] = ("webp", "jpg", "png", "jpeg")
    label_column: str = "cls"
    path: str | None = None  # a local image folder
    templates: str = "hub"  # "hub": the repo's own template file; else a named set ("imagenet80")
    note: str = ""
    train_split: str | None = "train"  # where few-shot support images are sampled from


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


@dataclass
class BenchmarkData:
    """Loaded benchmark: images (paths or PIL images, in a fixed order), integer labels, class names."""

    name: str
    images: Sequence[Any]
    labels: list[int]
    class_names: list[str]
    templates: list[str]
    wnids: list[str] | None = None
    fingerprint: str = ""  # identifies the data for the embedding cache


class BenchmarkUnavailable(Exception):
    """The benchmark's data cannot be reached (offline, missing folder, private repo)."""


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


def _templates(spec: str, hub_templates: list[str] | None = None) -> list[str]:
    if spec == "hub" and hub_templates:
        return hub_templates
    if spec in ("hub", "imagenet80"):
        return list(IMAGENET_TEMPLATES)
    return [spec]


def _load_imagenet_sample(bench: Benchmark) -> BenchmarkData:
    root = Path(bench.path or "")
    rows = [line.split("\t") for line in (root / "classes.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    names = [r[3].strip() for r in rows]
    wnids = [r[1].strip() for r in rows]
    return BenchmarkData(
        bench.name,
        images=[str(root / "images" / r[2]) for r in rows],
        labels=[int(r[0]) for r in rows],
        class_names=unique_names(names, wnids),
        templates=_templates(bench.templates),
        wnids=wnids,
        fingerprint=f"{root.resolve()}:{len(rows)}",
    )


def unique_names(names: list[str], ids: list[str]) -> list[str]:
    """CLIP's ImageNet names repeat two classes ("missile", "sunglasses"); S^3 needs distinct labels. Repeats take
    a WordNet lemma of their own synset when WordNet is installed, else their id in brackets."""
    if len({n.casefold() for n in names}) == len(names):
        return names
    try:
        from s3_hf.synonyms import WordNetSource

        return WordNetSource().unique_labels(names, ids)[0]
    except Exception:  # no WordNet: still distinct, deterministic
        seen: set[str] = set()
        out = []
        for name, wnid in zip(names, ids, strict=True):
            out.append(f"{name} ({wnid})" if name.casefold() in seen else name)
            seen.add(name.casefold())
        return out


def split_folder(root: Path, split: str) -> Path:
    """A folder benchmark's split: ``root/<split>`` when ``root`` holds ``train/`` and ``test/`` folders (one
    sub-folder per class in each), else ``root`` itself for the test split."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root / split
    if split == "test":
        return root
    raise BenchmarkUnavailable(
        f"{root} has no {split}/ folder: for few-shot runs lay it out as {root}/train/<class>/... and "
        f"{root}/test/<class>/..."
    )


def _load_folder(bench: Benchmark, split: str = "test") -> BenchmarkData:
    root = Path(bench.path or "")
    if not root.is_dir():
        raise BenchmarkUnavailable(f"{bench.name}: folder {root} does not exist. {bench.note}".strip())
    root = split_folder(root, split)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    images, labels = [], []
    for i, c in enumerate(classes):
        for f in sorted((root / c).iterdir()):
            if is_image_file(f):
                images.append(str(f))
                labels.append(i)
    if not images:
        raise BenchmarkUnavailable(f"{bench.name}: no images under {root} (expected {root}/<class>/<image>).")
    names = [c.replace("_", " ") for c in classes]
    stat = f"{len(images)}:{max(os.path.getmtime(p) for p in images):.0f}"
    return BenchmarkData(
        bench.name, images, labels, names, _templates(bench.templates), fingerprint=f"{root.resolve()}:{stat}"
    )


def _load_hub(bench: Benchmark, cache_dir: str | None = None, split: str | None = None) -> BenchmarkData:
    import datasets

    from s3_hf.hub import download

    templates_name = "zeroshot_classification_templates.txt"
    try:
        folder = download(
            bench.hub_id,
            ("classnames.txt", templates_name),
            optional=(templates_name,),
            repo_type="dataset",
            cache_dir=cache_dir,
            what="CLIP_benchmark class names",
        )
        names_file = folder / "classnames.txt"
        tmpl_file = folder / templates_name
        hub_templates = (
            [t.replace("{c}", "{}") for t in tmpl_file.read_text().splitlines() if t.strip()]
            if tmpl_file.is_file()
            else None
        )
        ds = datasets.load_dataset(bench.hub_id, split=split or bench.split, cache_dir=cache_dir)
    except Exception as err:  # offline, gated, renamed: report and let the run continue
        raise BenchmarkUnavailable(f"{bench.name}: cannot load {bench.hub_id} ({type(err).__name__}: {err})") from err
    column = next((c for c in bench.image_columns if c in ds.column_names), None)
    if column is None or bench.label_column not in ds.column_names:
        raise BenchmarkUnavailable(f"{bench.name}: {bench.hub_id} has columns {ds.column_names}, not an image + 'cls'.")
    names = [n.strip() for n in Path(names_file).read_text(encoding="utf-8").splitlines() if n.strip()]
    return BenchmarkData(
        bench.name,
        images=_LazyColumn(ds, column),
        labels=[int(x) for x in ds[bench.label_column]],
        class_names=names,
        templates=_templates(bench.templates, hub_templates),
        fingerprint=f"{bench.hub_id}:{split or bench.split}:{ds._fingerprint}",
    )


class _LazyColumn(Sequence):
    """Decode images on access instead of holding a whole split in memory."""

    def __init__(self, ds: Any, column: str) -> None:
        self.ds, self.column = ds, column

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:
        return self.ds[int(i)][self.column]


def load(bench: Benchmark, cache_dir: str | None = None) -> BenchmarkData:
    """Load a benchmark's test data; raises :class:`BenchmarkUnavailable` with the reason when it cannot."""
    if bench.name == IMAGENET_SAMPLE:
        if not (Path(bench.path or "") / "classes.tsv").is_file():
            raise BenchmarkUnavailable(
                f"{IMAGENET_SAMPLE}: {bench.path} holds no classes.tsv; point --imagenet-sample or "
                f"{IMAGENET_SAMPLE_ENV} at the folder with classes.tsv and images/."
            )
        return _load_imagenet_sample(bench)
    if bench.hub_id:
        return _load_hub(bench, cache_dir)
    return _load_folder(bench)


def load_train(bench: Benchmark, test: BenchmarkData, cache_dir: str | None = None) -> BenchmarkData:
    """The split few-shot support images are sampled from; its classes must be the test split's."""
    if bench.train_split is None:
        raise BenchmarkUnavailable(f"{bench.name} has no train split to sample few-shot support images from.")
    if bench.hub_id:
        data = _load_hub(bench, cache_dir, split=bench.train_split)
    else:
        data = _load_folder(bench, split="train")
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
    "imagenet_sample_dir",
    "load",
    "load_train",
    "resolve",
    "split_folder",
    "unique_names",
]
