"""Support images -> global and local (patch-token) features in the joint space (through the encoder interface:
see :meth:`s3_hf.encoders.Encoder.global_and_local` for how each family maps its patch tokens)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..encoders.base import as_encoder
from ..encoding import ImageInput


def global_and_local(
    model: Any, pixels: torch.Tensor | Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, D)`` unit global embeddings (exactly the image embeddings) and ``(B, P, D)`` unit local features: the
    last layer's patch tokens mapped into the joint space. ``model`` is a transformers model or an
    :class:`~s3_hf.encoders.Encoder`; ``pixels`` its ``pixel_values`` or all its image inputs."""
    return as_encoder(model).global_and_local(pixels)


def encode_support_images(
    model: Any,
    image_processor: Callable[..., Any] | None,
    images: Sequence[ImageInput],
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images -> ``(N, D)`` global and ``(N, P, D)`` local features, on the CPU."""
    encoder = as_encoder(model, None, image_processor)
    glob, local = [], []
    for batch in encoder.encode_image_batches(images, batch_size, features=encoder.global_and_local, progress=progress):
        g, loc = batch.features
        glob.append(g.cpu())
        local.append(loc.cpu())
    if not glob:
        dim = encoder.dim
        return torch.empty(0, dim), torch.empty(0, 0, dim)
    return torch.cat(glob), torch.cat(local)


__all__ = [
    "encode_support_images",
    "global_and_local",
]
