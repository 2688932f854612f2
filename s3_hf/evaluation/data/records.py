"""What a benchmark is (before it is loaded) and what loading gives: the records every data module shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from s3_hf.errors import EvalError
from s3_hf.text.templates import IMAGENET_TEMPLATES


@dataclass(frozen=True)
class Benchmark:
    name: str
    hub_id: str | None = None  # a CLIP_benchmark webdataset repo
    revision: str | None = None  # of the Hub repo: branch, tag or commit (None: main)
    split: str = "test"
    image_columns: tuple[str, ...] = ("webp", "jpg", "png", "jpeg")
    label_column: str = "cls"
    path: str | None = None  # a local image folder
    templates: str = "hub"  # "hub": the repo's own template file; else a named set ("imagenet80")
    note: str = ""
    train_split: str | None = "train"  # where few-shot support images are sampled from


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
    hub_id: str | None = None  # the Hub dataset repo it was read from (None: a local folder)
    revision: str | None = None  # the Hub commit it was read at (else the revision asked for)


class EncodedImages(Sequence[Any]):
    """Images held encoded (a Hub split's bytes). Indexing decodes one fully; :meth:`decoded` is a view that
    decodes them as files are decoded (:mod:`s3_hf.io.images`), so that a run's choice of exact or reduced-size JPEG
    decoding applies to them as it does to an image folder's files."""

    def decoded(self, min_side: int | None) -> Sequence[Any]:
        """The images as upright RGB PIL images, JPEGs decoded at reduced size while the short side stays at least
        ``min_side`` (``None``: every pixel)."""
        raise NotImplementedError


class BenchmarkUnavailable(EvalError):
    """The benchmark's data cannot be reached or read (offline, missing folder, private repo, damaged shard, class
    names that do not match the labels); ``s3 eval`` reports it and goes on with the next benchmark."""


def templates_for(spec: str, hub_templates: list[str] | None = None) -> list[str]:
    """A benchmark's prompt templates: ``"hub"`` (the repo's own file, else ImageNet's 80), ``"imagenet80"`` or one
    template."""
    if spec == "hub" and hub_templates:
        return hub_templates
    if spec in ("hub", "imagenet80"):
        return list(IMAGENET_TEMPLATES)
    return [spec]


__all__ = ["Benchmark", "BenchmarkData", "BenchmarkUnavailable", "EncodedImages", "templates_for"]
