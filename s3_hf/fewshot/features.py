"""Support images -> global and local (patch-token) features in the joint space (through the encoder interface:
see :meth:`s3_hf.models.encoders.Encoder.global_and_local` for how each family maps its patch tokens), and the global
features of augmented views of each support image.

Augmented views follow the released few-shot code of GDA (mrflogs/ICLR24 ``main_few_shots.py``) and Tip-Adapter
(gaopengcuhk/Tip-Adapter ``main.py``): a random resized crop (area ``scale`` 0.5-1 of the image, aspect ratio 3/4-4/3,
resized bicubically to the model's square input) and a horizontal flip with probability 1/2, ``augment_epoch: 10``
views per image. Each view is drawn from its own generator seeded by (seed, image key, view), so the views of an image
are the same whatever else is encoded with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from s3_hf.errors import InvalidConfigError
from s3_hf.io.crops import DEFAULT_RATIO, crop_box
from s3_hf.io.images import ImageInput, load_image
from s3_hf.models.encoders import as_encoder
from s3_hf.options import DEFAULT_AUGMENT_VIEWS, DEFAULT_BATCH_SIZE

#: ``RandomResizedCrop(size, scale=(0.5, 1), interpolation=BICUBIC)`` in both releases; torchvision's default ratio.
CROP_SCALE = (0.5, 1.0)
CROP_RATIO = DEFAULT_RATIO


def global_and_local(
    model: Any, pixels: torch.Tensor | Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, D)`` unit global embeddings (exactly the image embeddings) and ``(B, P, D)`` unit local features: the
    last layer's patch tokens mapped into the joint space. ``model`` is a transformers model or an
    :class:`~s3_hf.models.encoders.Encoder`; ``pixels`` its ``pixel_values`` or all its image inputs."""
    return as_encoder(model).global_and_local(pixels)


def encode_support_images(
    model: Any,
    image_processor: Callable[..., Any] | None,
    images: Sequence[ImageInput],
    batch_size: int = DEFAULT_BATCH_SIZE,
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


def check_augment_views(views: Any) -> int:
    """``views`` as an int, or :class:`InvalidConfigError` unless it is a positive integer."""
    if not isinstance(views, int) or isinstance(views, bool) or views < 1:
        raise InvalidConfigError(
            f"augment_views must be a positive integer, got {views!r}: use {DEFAULT_AUGMENT_VIEWS} (random crops and "
            "flips, as GDA's and Tip-Adapter's code) or 1 (each support image as it is, no augmentation)."
        )
    return views


def _generator(seed: int, key: int, view: int) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{key}:{view}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def augmented_view(image: Image.Image, side: int | None, seed: int, key: int, view: int) -> Image.Image:
    """View ``view`` of ``image`` (an RGB PIL image whose key is ``key``): a random resized crop, resized bicubically
    to ``side x side`` (``None``: the crop's short side), flipped left-right with probability 1/2."""
    gen = _generator(seed, key, view)
    left, top, w, h = crop_box(*image.size, gen, CROP_SCALE, CROP_RATIO)
    out = side or min(w, h)
    picture = image.resize((out, out), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))
    if float(torch.rand(1, generator=gen)) < 0.5:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return picture


class AugmentedViews(Sequence[Image.Image]):
    """The ``views`` augmented views of each image, image-major (item ``i * views + v``), read and drawn lazily
    when indexed, so that only the images being encoded are in memory. ``keys``: each image's key for the seeds
    (default its position). One view is the image as it is (no crop, no flip)."""

    def __init__(
        self,
        images: Sequence[ImageInput],
        views: int,
        seed: int = 0,
        side: int | None = None,
        keys: Sequence[int] | None = None,
    ) -> None:
        self.images, self.views, self.seed, self.side = images, check_augment_views(views), seed, side
        self.keys = list(range(len(images))) if keys is None else list(keys)
        self._last: tuple[int, Image.Image] | None = None  # views of one image are read in a row

    def __len__(self) -> int:
        return len(self.images) * self.views

    def __getitem__(self, k: int) -> Image.Image:  # type: ignore[override]
        if not 0 <= k < len(self):
            raise IndexError(k)
        i, v = divmod(k, self.views)
        last = self._last
        if last is None or last[0] != i:
            last = (i, load_image(self.images[i]))
            self._last = last
        if self.views == 1:
            return last[1]
        return augmented_view(last[1], self.side, self.seed, self.keys[i], v)


def view_side(model: Any) -> int | None:
    """The square side views are resized to: the model's resize target, so that its processor leaves them as they
    are (``None`` where it has none)."""
    return as_encoder(model).decode_min_side()


def encode_support_views(
    model: Any,
    image_processor: Callable[..., Any] | None,
    images: Sequence[ImageInput],
    views: int = DEFAULT_AUGMENT_VIEWS,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> torch.Tensor:
    """``(N, views, D)`` unit global features of ``views`` augmented views of each image (``N x views`` encodings),
    on the CPU; with ``views=1``, of the images as they are.

    Args:
        model: a transformers model or an :class:`~s3_hf.models.encoders.Encoder`.
        image_processor: a transformers model's image processor (``None`` for an encoder).
        images: the support images (paths or PIL images).
        views: views per image (a positive integer).
        seed: the seed of the crops and flips; the same seed gives the same views.
        batch_size: views per forward pass.
        progress: show a progress bar.
    """
    encoder = as_encoder(model, None, image_processor)
    sequence = AugmentedViews(images, views, seed, encoder.decode_min_side())
    out = [b.features.cpu() for b in encoder.encode_image_batches(sequence, batch_size, progress=progress)]
    if not out:
        return torch.empty(0, views, encoder.dim)
    return torch.cat(out).reshape(len(images), views, -1)


def view_keys(views: torch.Tensor) -> torch.Tensor:
    """``(N, D)`` cache keys from ``(N, V, D)`` view features: the normalised mean of each image's views, as
    Tip-Adapter's ``build_cache_model`` (``utils.py``) averages its augmented epochs (it averages the embeddings
    before their normalisation; the encoders here return unit embeddings, so each view weighs the same)."""
    return F.normalize(views.float().mean(dim=1), dim=-1)


__all__ = [
    "CROP_RATIO",
    "CROP_SCALE",
    "DEFAULT_AUGMENT_VIEWS",
    "AugmentedViews",
    "augmented_view",
    "check_augment_views",
    "crop_box",
    "encode_support_images",
    "encode_support_views",
    "global_and_local",
    "view_keys",
    "view_side",
]
