"""Images -> unit vectors through the encoder interface (:mod:`s3_hf.models.encoders`), as plain functions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from s3_hf.io.images import ImageInput
from s3_hf.models.encoders import as_encoder
from s3_hf.models.encoders.hf import image_inputs


def pixel_values(image_processor: Callable[..., Any], images: Sequence[Image.Image]) -> torch.Tensor:
    """The ``pixel_values`` of :func:`image_inputs`."""
    return image_inputs(image_processor, images)["pixel_values"]


def encode_pixels(model: Any, pixels: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Preprocessed images (``pixel_values``, or all of :func:`image_inputs`) -> unit image embeddings (on the
    model's device, float32). ``model`` is a transformers model or an :class:`~s3_hf.models.encoders.Encoder`."""
    return as_encoder(model).encode_pixels(pixels)


def encode_images(
    model: Any,
    image_processor: Callable[..., Any] | None,
    images: Sequence[ImageInput],
    batch_size: int = 32,
    progress: bool = False,
) -> torch.Tensor:
    """Images (paths, URLs or PIL) -> ``(N, D)`` unit vectors."""
    return as_encoder(model, None, image_processor).encode_images(images, batch_size=batch_size, progress=progress)
