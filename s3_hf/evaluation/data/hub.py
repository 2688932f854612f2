"""Hub benchmarks: one split of a CLIP_benchmark webdataset repo (``<split>/*.tar`` shards with ``classnames.txt``
and ``zeroshot_classification_templates.txt``), only the shards asked for downloaded; offline from the caches after
one online run. Images stay encoded in the Arrow cache and are decoded by the project's own decoder when encoded,
JPEGs at reduced size unless the run decodes exactly (:class:`~s3_hf.evaluation.data.records.EncodedImages`)."""

from __future__ import annotations

import io
import logging
import os
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from s3_hf.errors import ImageLoadError, ImageTooLargeError, S3Error
from s3_hf.evaluation.data.records import (
    Benchmark,
    BenchmarkData,
    BenchmarkUnavailable,
    EncodedImages,
    templates_for,
)
from s3_hf.io.files import write_text
from s3_hf.io.images import check_image_size, image_from_bytes
from s3_hf.text.distinct import distinct_labels

logger = logging.getLogger("s3_hf.evaluation")

CLASSNAMES_FILE = "classnames.txt"
TEMPLATES_FILE = "zeroshot_classification_templates.txt"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def load_hub(
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
    folder = _download(
        bench,
        (CLASSNAMES_FILE, TEMPLATES_FILE),
        optional=(TEMPLATES_FILE,),
        revision=bench.revision,
        cache_dir=cache_dir,
    )
    revision = folder.name if _COMMIT.match(folder.name) else bench.revision
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
        templates=templates_for(bench.templates, hub_templates),
        fingerprint=f"{bench.hub_id}@{revision}:{split}:{ds._fingerprint}",
        hub_id=bench.hub_id,
        revision=revision,
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
    names = distinct_labels([line.strip() for line in lines])
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
                # every extension (shards may differ), kept encoded: the project's decoder reads them, exactly or
                # at reduced size (JPEG draft mode) as the run asks, instead of datasets decoding every pixel
                **{c: datasets.Image(decode=False) for c in bench.image_columns},
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


class _LazyColumn(EncodedImages):
    """A split's images, held encoded (as Arrow bytes) instead of a whole split decoded in memory; each sample's
    image is in the first of ``columns`` it has (shards may use different extensions). Indexing decodes every
    pixel (its size checked from its header first); :meth:`decoded` is a view that decodes with
    :func:`~s3_hf.io.images.image_from_bytes`, exactly or at reduced size, as an image folder's files are read."""

    def __init__(self, ds: Any, columns: list[str], where: str, min_side: int | None = None, decode: bool = False):
        self.ds, self.columns, self.where = ds.select_columns([*columns, "__key__"]), columns, where
        self.min_side, self.decode = min_side, decode

    def __len__(self) -> int:
        return len(self.ds)

    def decoded(self, min_side: int | None) -> _LazyColumn:
        return _LazyColumn(self.ds, self.columns, self.where, min_side, decode=True)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        if not -len(self) <= int(i) < len(self):
            raise IndexError(i)
        key = self.ds.data.column("__key__")[int(i)].as_py()
        try:
            row = self.ds[int(i)]
            value = next(row[c] for c in self.columns if row[c] is not None)
            data = value["bytes"] if value.get("bytes") is not None else Path(value["path"]).read_bytes()
            if self.decode:
                return image_from_bytes(data, self.min_side, f"{self.where}: sample {key}'s image")
            image = Image.open(io.BytesIO(data))
            check_image_size(*image.size, f"{self.where}: sample {key}'s image")  # from the header
            image.load()  # every pixel, in its own mode and format, as datasets.Image() gives it
            return image
        except ImageTooLargeError:
            raise
        except Exception as err:
            raise ImageLoadError(
                f"{self.where}: sample {key}'s image cannot be decoded ({type(err).__name__}: {err}). Delete the "
                "benchmark's cached copy and run again; if it persists, the repo's copy is damaged: report it to its "
                "owners, or pass a local image folder instead."
            ) from err


__all__ = ["CLASSNAMES_FILE", "TEMPLATES_FILE", "load_hub"]
