"""Dual encoders behind one interface (:class:`Encoder`): transformers families and open_clip checkpoints."""

from __future__ import annotations

import os
from typing import Any

from s3_hf.models.encoders.base import Encoder, ImageBatch
from s3_hf.models.encoders.hf import PATCH_TOKEN_HEADS, TransformersEncoder
from s3_hf.models.encoders.openclip import OpenClipEncoder, is_open_clip_name


def as_encoder(model: Any, tokenizer: Any = None, image_processor: Any = None) -> Encoder:
    """``model`` itself if it is an :class:`Encoder`, else a transformers model wrapped with its processors."""
    if isinstance(model, Encoder):
        return model
    return TransformersEncoder(model, tokenizer, image_processor)


def load_encoder(
    name_or_path: str | os.PathLike,
    *,
    device: str | None = "auto",
    dtype: str | Any | None = None,
    revision: str | None = None,
    seed: int = 0,
) -> Encoder:
    """Load any supported checkpoint: an open_clip one (``hf-hub:org/name``, ``local-dir:PATH`` or a folder with
    ``open_clip_config.json``), else a transformers one (a Hub id or a folder with ``config.json``).

    Args:
        name_or_path: the checkpoint.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``, ...
        dtype: torch dtype or its name; default float32.
        revision: the Hub revision (transformers checkpoints).
        seed: the seed of random initialisation, for a folder without weights.

    Raises:
        ModelLoadError: the checkpoint cannot be found or read (or open_clip is not installed); the message says
            what to pass instead.
        UnsupportedModelError: the checkpoint's family cannot serve S^3 (it says why).
    """
    if is_open_clip_name(name_or_path):
        return OpenClipEncoder.from_pretrained(name_or_path, device=device, dtype=dtype, seed=seed)
    from s3_hf.models.loading import load_model

    loaded = load_model(name_or_path, device=device, dtype=dtype, revision=revision, seed=seed)
    return TransformersEncoder(
        loaded.model,
        loaded.tokenizer,
        loaded.image_processor,
        name=loaded.name,
        random_weights=loaded.random_weights,
        revision=loaded.revision,
    )


__all__ = [
    "PATCH_TOKEN_HEADS",
    "Encoder",
    "ImageBatch",
    "OpenClipEncoder",
    "TransformersEncoder",
    "as_encoder",
    "is_open_clip_name",
    "load_encoder",
]
