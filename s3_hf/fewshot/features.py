"""Support images -> global and local (patch-token) features in CLIP's joint space."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..encoding import ImageInput, load_image, pixel_values
from ..families import embedding_dim


@torch.inference_mode()
def global_and_local(model: Any, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, D)`` unit global embeddings (exactly ``get_image_features``) and ``(B, P, D)`` unit local features:
    the last layer's patch tokens through the vision post-layernorm and the visual projection."""
    out = model.get_image_features(pixel_values=pixels.to(device=model.device, dtype=model.dtype))
    patches = out.last_hidden_state[:, 1:]  # drop the class token
    local = model.visual_projection(model.vision_model.post_layernorm(patches))
    return F.normalize(out.pooler_output.float(), dim=-1), F.normalize(local.float(), dim=-1)


def encode_support_images(
    model: Any,
    image_processor: Callable[..., Any],
    images: Sequence[ImageInput],
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images -> ``(N, D)`` global and ``(N, P, D)`` local features, on the CPU."""
    glob, local = [], []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="Encoding support images", disable=not progress):
        batch = [load_image(im) for im in images[start : start + batch_size]]
        g, loc = global_and_local(model, pixel_values(image_processor, batch))
        glob.append(g.cpu())
        local.append(loc.cpu())
    if not glob:
        dim = embedding_dim(model)
        return torch.empty(0, dim), torch.empty(0, 0, dim)
    return torch.cat(glob), torch.cat(local)


__all__ = [
    "encode_support_images",
    "global_and_local",
]
