"""What ``s3 bench`` measures: the model and images, the parts, their sizes; and how a part says it was skipped."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from s3_hf.errors import EvalError
from s3_hf.evaluation.data.registry import IMAGENET_SAMPLE_ENV

MODEL_ENV = "S3_BENCH_MODEL"
IMAGES_ENV = "S3_BENCH_IMAGES"
TEMPLATE = "a photo of a {}."
PARTS = ("inference", "build", "artifact", "fewshot", "segmentation", "images", "tta")


class PartSkipped(Exception):
    """A part of the bench cannot run here; the message says what it needs."""


def locations(model: str | None = None, images: str | None = None) -> tuple[str, str]:
    """The model and image folder to benchmark: the arguments, else ``$S3_BENCH_MODEL`` and ``$S3_BENCH_IMAGES``
    (images fall back to ``$S3_IMAGENET_SAMPLE``). :class:`EvalError` naming what to set when one is missing.

    Args:
        model: a CLIP folder or Hub id, or ``None`` for ``$S3_BENCH_MODEL``.
        images: a folder of images, or ``None`` for ``$S3_BENCH_IMAGES`` (else ``$S3_IMAGENET_SAMPLE``).
    """
    model = model or os.environ.get(MODEL_ENV)
    images = images or os.environ.get(IMAGES_ENV) or os.environ.get(IMAGENET_SAMPLE_ENV)
    missing = []
    if not model:
        missing.append(f"a model (pass --model with a CLIP folder or Hub id, or set {MODEL_ENV})")
    if not images:
        missing.append(f"an image folder (pass --images DIR, or set {IMAGES_ENV})")
    if missing:
        raise EvalError(f"s3 bench needs {' and '.join(missing)}.")
    if not Path(images).is_dir():
        raise EvalError(f"Image folder {images} not found: pass --images DIR with a few JPEG/PNG files.")
    return str(model), str(images)


@dataclass
class BenchConfig:
    model: str
    images: str  # JPEG/PNG files, directly or under images/; a classes.tsv beside them names the classes
    out: str = "bench_results"
    device: str = "cpu"
    classes: Sequence[int] = (10, 100, 1000)
    concepts: int = 10
    batch_sizes: Sequence[int] = (1, 32)
    build_classes: Sequence[int] = (10, 100, 1000)
    build_concepts: Sequence[int] = (5, 10, 20, 50)
    num_images: int = 32
    hf_images: int = 4  # transformers' pipeline re-encodes every label per batch: a few images (or one batch)
    repeats: int = 3
    dtypes: Sequence[str] = ("float32",)
    memory: bool = True
    parts: Sequence[str] = ("inference", "build", "artifact")  # plus memory when `memory`; "fewshot" on request
    fewshot_classes: int = 1000
    fewshot_shots: Sequence[int] = (1, 4, 16)
    seg_classes: int = 150  # segmentation part: classes (ADE20K's count) ...
    seg_short_sides: Sequence[int] = (336, 448)  # ... short sides ...
    seg_images: int = 4  # ... and images
    large_images: str | None = None  # image part: photos to upscale to 12 MP (default: images)
    image_batch: int = 8  # image part: batch size
    image_workers: int | None = None  # image part: workers (None: the device's default)
    tta_classes: int = 1000  # tta part: classes of the TS^3 state (synthetic unit vectors) ...
    tta_stream: int = 1000  # ... and N: its memory is read after N and 10N images
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown:
            raise EvalError(f"Unknown bench part(s) {', '.join(unknown)}: choose from {', '.join(PARTS)}.")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values (``extra`` left out), for a child process."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchConfig:
        return cls(**data)


def require(condition: Any, reason: str) -> None:
    """Raise :class:`PartSkipped` with ``reason`` unless ``condition`` holds."""
    if not condition:
        raise PartSkipped(reason)
