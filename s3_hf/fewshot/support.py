"""Support sets: an image folder, a ``datasets.Dataset`` or a list of (image, label) -> images and class indices."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from s3_hf.errors import InvalidLabelsError
from s3_hf.io.images import is_image_file

IMAGE_COLUMNS = ("image", "img", "jpg", "png", "webp")
LABEL_COLUMNS = ("label", "labels", "cls", "class")


def _index(names: Sequence[str], class_names: Sequence[str], where: str) -> list[int]:
    position = {n.casefold(): i for i, n in enumerate(class_names)}
    position.update({n.replace(" ", "_").casefold(): i for i, n in enumerate(class_names)})
    unknown = sorted({n for n in names if str(n).casefold() not in position})
    if unknown:
        raise InvalidLabelsError(
            f"{where} has labels {unknown[:10]} that are not among the classes ({list(class_names)[:10]}...). "
            "Support labels must name the candidate labels (folder names may use _ for spaces)."
        )
    return [position[str(n).casefold()] for n in names]


def _from_folder(root: Path, class_names: Sequence[str]) -> tuple[list[Any], list[int]]:
    if not root.is_dir():
        raise InvalidLabelsError(f"Support folder {root} does not exist.")
    images, names = [], []
    for sub in sorted(d for d in root.iterdir() if d.is_dir()):
        for f in sorted(sub.iterdir()):
            if is_image_file(f):
                images.append(str(f))
                names.append(sub.name)
    if not images:
        raise InvalidLabelsError(f"No images under {root}: a support folder holds <class>/<image> files.")
    return images, _index(names, class_names, f"Support folder {root}")


def _from_dataset(ds: Any, class_names: Sequence[str]) -> tuple[list[Any], list[int]]:
    image_col = next((c for c in IMAGE_COLUMNS if c in ds.column_names), None)
    label_col = next((c for c in LABEL_COLUMNS if c in ds.column_names), None)
    if image_col is None or label_col is None:
        raise InvalidLabelsError(
            f"The support dataset has columns {ds.column_names}; it needs an image column ({IMAGE_COLUMNS}) and a "
            f"label column ({LABEL_COLUMNS})."
        )
    raw = ds[label_col]
    feature = ds.features[label_col]
    if hasattr(feature, "int2str"):  # ClassLabel: indices -> its names
        raw = [feature.int2str(int(x)) for x in raw]
    elif raw and not isinstance(raw[0], str):
        raw = [class_names[int(x)] if 0 <= int(x) < len(class_names) else str(x) for x in raw]
    return [ds[i][image_col] for i in range(len(ds))], _index([str(x) for x in raw], class_names, "The dataset")


def read_support(support: Any, class_names: Sequence[str]) -> tuple[list[Any], list[int]]:
    """Images (paths or PIL) and class indices into ``class_names`` of a support set.

    ``support`` is a folder with one sub-folder per class, a ``datasets.Dataset`` with image and label columns, or
    a list of ``(image, label)`` pairs whose label is a class name or index. ``None`` or an empty list is empty.
    """
    if support is None:
        return [], []
    if isinstance(support, str | os.PathLike):
        return _from_folder(Path(support), class_names)
    if hasattr(support, "column_names") and hasattr(support, "features"):
        return _from_dataset(support, class_names)
    if isinstance(support, Sequence):
        images, names = [], []
        for item in support:
            if not (isinstance(item, tuple | list) and len(item) == 2):
                raise InvalidLabelsError(f"Support items must be (image, label) pairs, got {type(item).__name__}.")
            image, label = item
            if isinstance(label, int) and not isinstance(label, bool):
                if not 0 <= label < len(class_names):
                    raise InvalidLabelsError(f"Support label index {label} is outside 0..{len(class_names) - 1}.")
                label = class_names[label]
            images.append(image)
            names.append(str(label))
        return images, _index(names, class_names, "The support list")
    raise InvalidLabelsError(
        f"Cannot read a support set from {type(support).__name__}: pass a folder, a datasets.Dataset or a list of "
        "(image, label) pairs."
    )


def require_every_class(targets: Sequence[int], class_names: Sequence[str]) -> None:
    """Raise :class:`InvalidLabelsError` unless every class has a support image (or none has: zero-shot); checked
    before the support images are encoded, so a gap costs nothing."""
    if not targets:
        return
    present = set(targets)
    missing = [c for i, c in enumerate(class_names) if i not in present]
    if missing:
        raise InvalidLabelsError(
            f"The support set has no image of {len(missing)} classes ({missing[:10]}). Give every class at least "
            "one image (a sub-folder named after it), or none at all (zero-shot)."
        )


def sample_shots(labels: Sequence[int], shots: int, seed: int) -> list[int]:
    """Indices of ``shots`` images per class (all of a class's images when it has fewer), drawn with ``seed``;
    sorted, and the same for the same (labels, shots, seed)."""
    if shots < 1:
        raise InvalidLabelsError(f"shots must be at least 1, got {shots}.")
    labels_t = torch.as_tensor(list(labels), dtype=torch.int64)
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in torch.unique(labels_t).tolist():
        idx = torch.nonzero(labels_t == c).flatten()
        chosen.append(idx[torch.randperm(len(idx), generator=gen)[:shots]])
    return sorted(torch.cat(chosen).tolist()) if chosen else []


__all__ = [
    "IMAGE_COLUMNS",
    "LABEL_COLUMNS",
    "read_support",
    "require_every_class",
    "sample_shots",
]
