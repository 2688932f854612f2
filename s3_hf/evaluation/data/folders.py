"""Local benchmarks: image folders (one sub-folder per class, optionally ``train/`` and ``test/``) and the ImageNet
sample (``classes.tsv`` and ``images/``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from s3_hf.evaluation.data.records import Benchmark, BenchmarkData, BenchmarkUnavailable, templates_for
from s3_hf.io.images import is_image_file
from s3_hf.text.distinct import distinct_labels


def load_imagenet_sample(bench: Benchmark) -> BenchmarkData:
    root = Path(bench.path or "")
    rows = [line.split("\t") for line in (root / "classes.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    names = [r[3].strip() for r in rows]
    wnids = [r[1].strip() for r in rows]
    return BenchmarkData(
        bench.name,
        images=[str(root / "images" / r[2]) for r in rows],
        labels=[int(r[0]) for r in rows],
        class_names=unique_names(names, wnids),
        templates=templates_for(bench.templates),
        wnids=wnids,
        fingerprint=folder_fingerprint(root, [root / "classes.tsv", *(root / "images" / r[2] for r in rows)]),
    )


def unique_names(names: list[str], ids: list[str]) -> list[str]:
    """CLIP's ImageNet names repeat two classes ("missile", "sunglasses"); S^3 needs distinct labels. Repeats take
    a WordNet lemma of their own synset when WordNet is installed, else their id in brackets
    (:func:`~s3_hf.text.distinct.distinct_labels` either way)."""
    if len({n.casefold() for n in names}) == len(names):
        return names
    try:
        from s3_hf.synonyms import WordNetSource

        return WordNetSource().unique_labels(names, ids)[0]
    except Exception:  # no WordNet: still distinct, deterministic
        return distinct_labels(names, ids)


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


def load_folder(bench: Benchmark, split: str = "test") -> BenchmarkData:
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
        bench.name, images, labels, names, templates_for(bench.templates), fingerprint=folder_fingerprint(root, images)
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


__all__ = ["folder_fingerprint", "load_folder", "load_imagenet_sample", "split_folder", "unique_names"]
