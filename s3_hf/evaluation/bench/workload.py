"""What the bench runs on: the engine, the two pipelines it is compared through, images, class names, synonyms."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from s3_hf import TASK
from s3_hf.errors import EvalError
from s3_hf.io.images import list_images


def load_engine(path: str, device: str, dtype: torch.dtype = torch.float32) -> Any:
    """The engine of any supported checkpoint (transformers or open_clip) through the library's one loader: a
    folder without weights (such as clip-vit-b32-shapes) is initialised at random, right for timing, meaningless
    for accuracy.

    Args:
        path: a model folder or Hub id.
        device: where to run it.
        dtype: its weights' dtype.
    """
    from s3_hf.engine.core import S3Engine

    return S3Engine.from_pretrained(path, device=device, dtype=dtype)


def transformers_pipeline(engine: Any, task: str, device: str) -> Any:
    """The transformers pipeline ``task`` on the engine's model and processors, or ``None`` for a model
    transformers cannot load (open_clip)."""
    from s3_hf.models.encoders import TransformersEncoder

    if not isinstance(engine.encoder, TransformersEncoder):
        return None
    from transformers import pipeline

    return pipeline(
        task, model=engine.model, tokenizer=engine.tokenizer, image_processor=engine.image_processor, device=device
    )


def s3_classifier(engine: Any, device: str) -> Callable[..., Any]:
    """S^3 end to end, as a user runs it: transformers' pipeline face for transformers models, the engine's
    ``classify`` for open_clip ones (which that pipeline cannot load).

    Args:
        engine: the loaded engine.
        device: its device (for the pipeline).
    """
    pipe = transformers_pipeline(engine, TASK, device)
    if pipe is not None:
        return pipe

    def classify(images: Sequence[str], batch_size: int = 32, **options: Any) -> Any:
        return engine.classify(images, engine.request(**options), batch_size=batch_size)

    classify.engine = engine  # type: ignore[attr-defined]
    return classify


def tensor_rows(inputs: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    """Rows ``start:stop`` of every tensor of a model input batch."""
    return {k: v[start:stop] for k, v in inputs.items()}


def image_paths(folder: str, n: int) -> list[str]:
    """``n`` image files of ``folder`` (or of its ``images/``), repeated in order where it holds fewer.

    Args:
        folder: the image folder.
        n: how many paths to return.
    """
    root = Path(folder)
    root = root / "images" if (root / "images").is_dir() else root
    files = list_images(root)
    if not files:
        raise EvalError(f"No images in {root}. Pass --images with a folder of image files (JPEG, PNG, ...).")
    return (files * (n // len(files) + 1))[:n]


def class_names(n: int, images: str | os.PathLike) -> list[str]:
    """Real class names from the ``classes.tsv`` of the image folder ``images`` where it has one (the ImageNet
    sample's: realistic token lengths), else synthetic ones.

    Args:
        n: how many names.
        images: the image folder, whose ``classes.tsv`` (if any) gives the first names.
    """
    tsv = Path(images) / "classes.tsv"
    names: list[str] = []
    if tsv.is_file():
        rows = tsv.read_text(encoding="utf-8").splitlines()[1:]
        names = list(dict.fromkeys(r.split("\t")[3] for r in rows))
    names += [f"object category {i}" for i in range(len(names), n)]
    return names[:n]


def synthetic_synonyms(labels: Sequence[str], m: int) -> dict[str, list[str]]:
    """``m`` distinct concepts per label, shaped like real synonyms (three words); timing does not depend on
    what they say.

    Args:
        labels: the class names.
        m: concepts per class.
    """
    kinds = ["kind", "variety", "type", "sort", "form", "breed", "model", "style"]
    return {lab: [f"{kinds[j % len(kinds)]} {j // len(kinds)} {lab.split()[-1]}" for j in range(m)] for lab in labels}
