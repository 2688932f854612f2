"""Benchmarks: name -> where the data comes from, its class names and templates.

Hub benchmarks point at the public CLIP_benchmark copies (``clip-benchmark/wds_*``, webdataset shards with
``classnames.txt`` and ``zeroshot_classification_templates.txt``), the copies CLIP evaluations use; only the split
asked for is downloaded, and after one online run it loads offline from the caches. Any local
image folder (one sub-folder per class) and the ImageNet sample (1,000 classes, one photo each; its folder comes
from ``--imagenet-sample`` or ``$S3_IMAGENET_SAMPLE``) work too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3_hf.errors import EvalError, ImageLoadError, S3Error
from s3_hf.io.files import write_text
from s3_hf.io.images import is_image_file
from s3_hf.text.templates import IMAGENET_TEMPLATES

logger = logging.getLogger("s3_hf.evaluation")

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


class BenchmarkUnavailable(EvalError):
    """The benchmark's data cannot be reached or read (offline, missing folder, private repo, damaged shard, class
    names that do not match the labels); ``s3 eval`` reports it and goes on with the next benchmark."""


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
        fingerprint=folder_fingerprint(root, [root / "classes.tsv", *(root / "images" / r[2] for r in rows)]),
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
    return BenchmarkData(
        bench.name, images, labels, names, _templates(bench.templates), fingerprint=folder_fingerprint(root, images)
    )


def folder_fingerprint(root: Path, files: Sequence[str | os.PathLike]) -> str:
    """``root``'s resolved path and a hash of ``files`` (relative to it, sorted) with their sizes and modification
    times: a file added, removed, renamed, moved to another class or rewritten changes it."""
    digest = hashlib.sha256()
    for rel in sorted(os.path.relpath(f, root) for f in files):
        try:
            st = os.stat(os.path.join(root, rel))
        except OSError as err:
            raise BenchmarkUnavailable(f"{root}: {rel} cannot be read ({err.strerror or err}).") from err
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return f"{root.resolve()}:{len(files)}:{digest.hexdigest()[:24]}"


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


def location(bench: Benchmark) -> dict[str, str]:
    """Where a benchmark's data lives, known before it is loaded: its Hub id and split, or its resolved folder."""
    if bench.hub_id:
        return {"hub_id": bench.hub_id, "split": bench.split}
    return {"path": str(Path(bench.path or "").resolve())}


def identity(bench: Benchmark, data: BenchmarkData) -> dict[str, str]:
    """A benchmark's resolved identity: its :func:`location` and the fingerprint of the data loaded from it (for a
    Hub split, its revision and the dataset's fingerprint). Results are reused only for an equal identity."""
    return {**location(bench), "fingerprint": data.fingerprint}


CLASSNAMES_FILE = "classnames.txt"
TEMPLATES_FILE = "zeroshot_classification_templates.txt"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _load_hub(
    bench: Benchmark,
    cache_dir: str | None = None,
    split: str | None = None,
    per_class: int | None = None,
    seed: int = 0,
) -> BenchmarkData:
    """One split of a CLIP_benchmark webdataset repo: ``<split>/*.tar`` shards of ``<key>.<image ext>`` +
    ``<key>.cls`` samples, read in shard order, with the repo's ``classnames.txt`` and templates file. With
    ``per_class``, only the shards :func:`_stream_shards` streams until every class has that many samples."""
    split = split or bench.split
    folder = _download(bench, (CLASSNAMES_FILE, TEMPLATES_FILE), optional=(TEMPLATES_FILE,), cache_dir=cache_dir)
    revision = folder.name if _COMMIT.match(folder.name) else None
    names = _class_names(bench, folder / CLASSNAMES_FILE)
    tmpl_file = folder / TEMPLATES_FILE
    hub_templates = (
        [t.replace("{c}", "{}") for t in tmpl_file.read_text(encoding="utf-8").splitlines() if t.strip()]
        if tmpl_file.is_file()
        else None
    )
    shards = _shards(bench, split, revision, cache_dir)
    if per_class:
        shards = _stream_shards(bench, split, shards, len(names), per_class, seed, revision, cache_dir)
    _download(bench, shards, revision=revision, cache_dir=cache_dir)
    ds = _read_shards(bench, split, [folder / s for s in shards], cache_dir)
    columns, labels = _checked_samples(bench, split, ds, names)
    return BenchmarkData(
        bench.name,
        images=_LazyColumn(ds, columns, f"{bench.name} ({bench.hub_id}, {split})"),
        labels=labels,
        class_names=names,
        templates=_templates(bench.templates, hub_templates),
        fingerprint=f"{bench.hub_id}@{revision}:{split}:{ds._fingerprint}",
    )


def _shard_labels(path: Path, label_column: str) -> list[int]:
    """The class indices of a shard's samples, read from its ``.<label_column>`` members (no image is decoded)."""
    import tarfile

    labels = []
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(f".{label_column}"):
                    data = tar.extractfile(member)
                    labels.append(int((data.read() if data else b"-1").strip() or -1))
    except (tarfile.TarError, OSError, ValueError):
        return []  # counted as nothing; the full read reports a damaged shard
    return labels


def _stream_shards(
    bench: Benchmark,
    split: str,
    shards: list[str],
    num_classes: int,
    per_class: int,
    seed: int,
    revision: str | None,
    cache_dir: str | None,
) -> list[str]:
    """Download shards one at a time, in an order shuffled by ``seed`` (the same on every process), until every
    class has at least ``per_class`` samples; the shards read, in that order. Few-shot support for a 16-shot run
    of ImageNet so reads a small share of the train split instead of all of it."""
    import random

    order = list(shards)
    random.Random(f"stream:{seed}").shuffle(order)
    counts = [0] * num_classes
    read: list[str] = []
    for name in order:
        folder = _download(bench, [name], revision=revision, cache_dir=cache_dir)  # the file's own folder
        read.append(name)
        for label in _shard_labels(folder / Path(name).name, bench.label_column):
            if 0 <= label < num_classes:
                counts[label] += 1
        if min(counts) >= per_class:
            break
    logger.info(
        "%s: streamed %d of %d %s shards for few-shot support (at least %d samples per class).",
        bench.name,
        len(read),
        len(shards),
        split,
        min(counts),
    )
    return read


def _download(
    bench: Benchmark,
    names: Sequence[str],
    optional: Sequence[str] = (),
    revision: str | None = None,
    cache_dir: str | None = None,
) -> Path:
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    from s3_hf.io.hub import download

    try:
        return download(
            bench.hub_id or "",
            names,
            optional=optional,
            revision=revision,
            repo_type="dataset",
            cache_dir=cache_dir,
            what="CLIP_benchmark benchmark",
        )
    except S3Error as err:
        if isinstance(err.__cause__, LocalEntryNotFoundError | OfflineModeIsEnabled):
            raise BenchmarkUnavailable(
                f"{bench.name}: cannot load {bench.hub_id}: it is not in the Hub cache and the Hub cannot be reached "
                "(offline or HF_HUB_OFFLINE=1). Run once with network access to download it, or pass a local image "
                "folder (one sub-folder per class) instead."
            ) from err
        raise BenchmarkUnavailable(f"{bench.name}: cannot load {bench.hub_id}: {err}") from err


def _shard_manifest(bench: Benchmark, split: str, revision: str | None, cache_dir: str | None) -> Path:
    import datasets

    root = Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / "s3_hf-shards"
    return root / (bench.hub_id or "").replace("/", "--") / f"{revision or 'main'}-{split}.txt"


def _shards(bench: Benchmark, split: str, revision: str | None, cache_dir: str | None) -> list[str]:
    """The split's ``.tar`` shards in numeric order (``10.tar`` after ``9.tar``), listed on the Hub; offline, the
    list saved by the last online run (a shard folder in the cache may be half downloaded)."""
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled

    manifest = _shard_manifest(bench, split, revision, cache_dir)
    try:
        tree = HfApi().list_repo_tree(bench.hub_id or "", split, revision=revision, repo_type="dataset")
        shards = [f.path for f in tree if f.path.endswith(".tar")]
    except EntryNotFoundError:
        shards = []
    except (OfflineModeIsEnabled, httpx2.TransportError) as err:
        if not manifest.is_file():
            raise BenchmarkUnavailable(
                f"{bench.name}: cannot list the {split} shards of {bench.hub_id} ({type(err).__name__}) and they "
                "were never downloaded. Run once with network access (HF_HUB_OFFLINE unset) to cache them, or "
                "pass a local image folder (one sub-folder per class) instead."
            ) from err
        return manifest.read_text(encoding="utf-8").split()
    except HfHubHTTPError as err:
        raise BenchmarkUnavailable(
            f"{bench.name}: cannot list the {split} shards of {bench.hub_id}: {err}. Check your network and the "
            "repo name."
        ) from err
    if not shards:
        raise BenchmarkUnavailable(
            f"{bench.name}: {bench.hub_id} has no {split}/*.tar webdataset shards: it is not a CLIP_benchmark copy "
            f"with a {split} split. Pick another benchmark or pass a local image folder."
        )
    shards.sort(key=lambda name: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)])
    write_text(manifest, "\n".join(shards) + "\n")  # atomic: processes of one run write it concurrently
    return shards


def _class_names(bench: Benchmark, path: Path) -> list[str]:
    """``classnames.txt``: line i names class i. Repeated names get their index appended (S^3 needs distinct
    labels; there is no WordNet id to tell them apart)."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if not lines or blank:
        where = f"line {blank[0]} is blank" if blank else "it is empty"
        raise BenchmarkUnavailable(
            f"{bench.name}: {bench.hub_id}'s {CLASSNAMES_FILE} must hold one class name per line (line i naming "
            f"class i), but {where}. Fix the file in the repo, or pass a local image folder instead."
        )
    names, seen = [], set()
    for i, line in enumerate(lines):
        name = line.strip()
        names.append(f"{name} (class {i})" if name.casefold() in seen else name)
        seen.add(name.casefold())
    renamed = [n for n, line in zip(names, lines, strict=True) if n != line.strip()]
    if renamed:
        logger.warning("%s: repeated class names renamed: %s", bench.name, ", ".join(renamed))
    return names


def _read_shards(bench: Benchmark, split: str, shards: list[Path], cache_dir: str | None) -> Any:
    import datasets

    damaged = {p: why for p in shards if (why := _incomplete_tar(p))}
    if not damaged:
        features = datasets.Features(
            {
                **{c: datasets.Image() for c in bench.image_columns},  # every extension: shards may differ
                bench.label_column: datasets.Value("int64"),
                "__key__": datasets.Value("string"),
            }
        )
        try:
            return datasets.load_dataset(
                "webdataset",
                data_files={split: [str(p) for p in shards]},
                split=split,
                features=features,
                cache_dir=cache_dir,
            )
        except datasets.exceptions.DatasetGenerationError as err:
            cause = err.__cause__ or err
            damaged = {p: str(cause) for p in shards if not _readable_tar(p)}
            if not damaged:
                raise BenchmarkUnavailable(
                    f"{bench.name}: {bench.hub_id}'s {split} shards cannot be read ({type(cause).__name__}: {cause})."
                    f" Each sample needs an image ({', '.join('.' + c for c in bench.image_columns)}) and a "
                    f".{bench.label_column} file holding its class index: fix the shards, or pass a local image "
                    "folder instead."
                ) from err
    repo_cache = shards[0].parents[3] if shards[0].parents[2].name == "snapshots" else shards[0].parent
    which = ", ".join(f"{p.parent.name}/{p.name} ({why})" for p, why in damaged.items())
    raise BenchmarkUnavailable(
        f"{bench.name}: {bench.hub_id}'s {which} is not a complete tar archive: a cut-off or damaged download. "
        f"Delete the cached copy ({repo_cache}) and run again to download it afresh; if that fails too, the repo's "
        "copy is damaged: report it to its owners, or pass a local image folder instead."
    )


def _incomplete_tar(path: Path) -> str | None:
    """Why ``path`` cannot be a whole tar archive, judged from its size and its end alone: tar files are whole
    512-byte blocks ending in two zero blocks. A shard cut off between two samples reads without error (tarfile
    stops quietly at the end), losing the samples after the cut."""
    size = path.stat().st_size
    if size < 1024 or size % 512:
        return f"{size} bytes, not whole 512-byte tar blocks"
    with path.open("rb") as f:
        f.seek(-1024, os.SEEK_END)
        if f.read().strip(b"\0"):
            return "no end-of-archive blocks"
    return None


def _readable_tar(path: Path) -> bool:
    """Whether every member of ``path`` reads, read as datasets reads it (as a stream)."""
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if member.isfile():
                    tar.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError):
        return False
    return True


def _checked_samples(bench: Benchmark, split: str, ds: Any, names: list[str]) -> tuple[list[str], list[int]]:
    """The image columns that hold images and the labels, once every sample has an image and a label naming
    one of ``names``; read from the Arrow table, without decoding an image."""
    import pyarrow.compute as pc

    table = ds.data
    where = f"{bench.name}: {bench.hub_id} ({split} split)"
    if not len(table):
        raise BenchmarkUnavailable(f"{where} holds no samples. Delete its cached copy and run again.")
    keys = table.column("__key__")

    def first_keys(mask: Any) -> str:
        found = keys.filter(mask).to_pylist()
        return ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")

    no_image = pc.is_null(table.column(bench.image_columns[0]))
    for c in bench.image_columns[1:]:
        no_image = pc.and_(no_image, pc.is_null(table.column(c)))
    if pc.any(no_image).as_py():
        raise BenchmarkUnavailable(
            f"{where}: samples {first_keys(no_image)} have no image ("
            f"{', '.join('.' + c for c in bench.image_columns)}). Fix the shards, or pass a local image folder."
        )
    labels = table.column(bench.label_column)
    no_label = pc.is_null(labels)
    if pc.any(no_label).as_py():
        raise BenchmarkUnavailable(
            f"{where}: samples {first_keys(no_label)} have no .{bench.label_column} label file. Fix the shards, or "
            "pass a local image folder."
        )
    outside = pc.or_(pc.less(labels, 0), pc.greater_equal(labels, len(names)))
    if pc.any(outside).as_py():
        raise BenchmarkUnavailable(
            f"{where}: labels run from {pc.min(labels).as_py()} to {pc.max(labels).as_py()} but {CLASSNAMES_FILE} "
            f"names {len(names)} classes (0 to {len(names) - 1}); samples {first_keys(outside)} have no class name. "
            f"The class-name file does not match the shards: fix {CLASSNAMES_FILE} in the repo (line i naming class "
            "i), or pass a local image folder instead."
        )
    columns = [c for c in bench.image_columns if table.column(c).null_count < len(table)]
    return columns, labels.to_pylist()


class _LazyColumn(Sequence):
    """Decode images on access instead of holding a whole split in memory; each sample's image is in the first of
    ``columns`` it has (shards may use different extensions)."""

    def __init__(self, ds: Any, columns: list[str], where: str) -> None:
        self.ds, self.columns, self.where = ds.select_columns([*columns, "__key__"]), columns, where

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        if not -len(self) <= int(i) < len(self):
            raise IndexError(i)
        try:
            row = self.ds[int(i)]
        except Exception as err:
            key = self.ds.data.column("__key__")[int(i)].as_py()
            raise ImageLoadError(
                f"{self.where}: sample {key}'s image cannot be decoded ({type(err).__name__}: {err}). Delete the "
                "benchmark's cached copy and run again; if it persists, the repo's copy is damaged: report it to its "
                "owners, or pass a local image folder instead."
            ) from err
        return next(row[c] for c in self.columns if row[c] is not None)


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
        data = _load_hub(bench, cache_dir, split=bench.train_split, per_class=per_class, seed=seed)
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
    "folder_fingerprint",
    "identity",
    "imagenet_sample_dir",
    "load",
    "load_train",
    "location",
    "resolve",
    "short_paths",
    "split_folder",
    "unique_names",
]
