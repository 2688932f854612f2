"""Texts and images -> unit vectors with a transformers ``CLIPModel``."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from .errors import ImageLoadError

logger = logging.getLogger(__name__)

ImageInput = str | os.PathLike | Image.Image

DEFAULT_CONCEPT_FORMAT = "{concept}, which is a {label}"


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _to_rgb(image: Image.Image) -> Image.Image:
    """Upright 8-bit RGB. 16-bit and 32-bit greyscale are rescaled, transparency is composited on white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def load_image(image: ImageInput, timeout: float | None = None) -> Image.Image:
    """Read a path, URL, base64 string or PIL image into an upright RGB PIL image.

    Raises :class:`ImageLoadError` (naming the input) for a missing, unreadable, truncated or non-image file.
    """
    name = str(image) if not isinstance(image, Image.Image) else "<PIL image>"
    try:
        if isinstance(image, Image.Image):
            image.load()
            return _to_rgb(image)
        if isinstance(image, os.PathLike | str) and os.path.isfile(image):
            with Image.open(image) as im:
                im.load()
                return _to_rgb(im)
        if isinstance(image, str):
            from transformers.image_utils import load_image as hf_load_image

            return _to_rgb(hf_load_image(image, timeout=timeout))
        raise ImageLoadError(
            f"Cannot read an image from an object of type {type(image).__name__}. "
            "Pass a file path, a URL, a base64 string or a PIL.Image."
        )
    except ImageLoadError:
        raise
    except UnidentifiedImageError as err:
        raise ImageLoadError(f"{name} is not an image file PIL can decode (JPEG, PNG, ...).") from err
    except (OSError, ValueError, SyntaxError) as err:
        short = name if len(name) < 200 else name[:200] + "..."
        raise ImageLoadError(
            f"Could not read image {short}: {err}. Check that the path or URL exists and the file is a "
            "complete, valid image."
        ) from err


def image_from_bytes(data: bytes) -> Image.Image:
    """Decode image bytes with the same checks as :func:`load_image`."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return _to_rgb(im)
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageLoadError(f"Could not decode image bytes: {err}.") from err


def pixel_values(image_processor: Callable[..., Any], images: Sequence[Image.Image]) -> torch.Tensor:
    """Preprocess RGB PIL images. Channels-last is stated explicitly so 1x1 and 3-pixel-wide images work."""
    return image_processor(images=list(images), return_tensors="pt", input_data_format="channels_last")["pixel_values"]


@torch.inference_mode()
def encode_pixels(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """Preprocessed pixel values -> unit image embeddings (on the model's device, float32)."""
    out = model.get_image_features(pixel_values=pixels.to(device=model.device, dtype=model.dtype))
    return F.normalize(out.pooler_output.float(), dim=-1)


def encode_images(
    model: Any,
    image_processor: Callable[..., Any],
    images: Sequence[ImageInput],
    batch_size: int = 32,
    progress: bool = False,
) -> torch.Tensor:
    """Images (paths, URLs or PIL) -> ``(N, D)`` unit vectors."""
    chunks = []
    for batch in tqdm(list(_batches(images, batch_size)), desc="Encoding images", disable=not progress):
        chunks.append(encode_pixels(model, pixel_values(image_processor, [load_image(im) for im in batch])))
    return torch.cat(chunks) if chunks else torch.empty(0, model.config.projection_dim)


@torch.inference_mode()
def encode_texts(
    model: Any,
    tokenizer: Callable[..., Any],
    texts: Sequence[str],
    batch_size: int = 256,
    progress: bool = False,
) -> torch.Tensor:
    """Texts -> ``(N, D)`` unit vectors (float32, on the model's device)."""
    chunks = []
    for batch in tqdm(list(_batches(texts, batch_size)), desc="Encoding texts", disable=not progress):
        tokens = tokenizer(list(batch), padding=True, return_tensors="pt").to(model.device)
        out = model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        chunks.append(F.normalize(out.pooler_output.float(), dim=-1))
    return torch.cat(chunks) if chunks else torch.empty(0, model.config.projection_dim)


def max_text_tokens(model: Any) -> int:
    """The text encoder's context length (77 for CLIP)."""
    return int(model.config.text_config.max_position_embeddings)


def token_lengths(tokenizer: Callable[..., Any], texts: Sequence[str]) -> list[int]:
    """Number of tokens of each text, special tokens included, without truncation."""
    return [len(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]]


def concept_text(concept: str, label: str, concept_format: str = DEFAULT_CONCEPT_FORMAT) -> str:
    """The structured text ``x_ci`` of a concept; the label itself is used bare (DESIGN §2 step 2)."""
    return label if concept == label else concept_format.format(concept=concept, label=label)


def concept_prompts(texts: Sequence[str], templates: Sequence[str]) -> list[str]:
    """All prompts, concept-major: ``[p_1(x_0), ..., p_T(x_0), p_1(x_1), ...]``."""
    return [t.format(x) for x in texts for t in templates]


def encode_concepts(
    model: Any,
    tokenizer: Callable[..., Any],
    texts: Sequence[str],
    templates: Sequence[str],
    batch_size: int = 256,
    progress: bool = False,
) -> torch.Tensor:
    """Each concept text -> the template ensemble ``n(mean_j n(g(p_j(x))))``, shape ``(len(texts), D)``."""
    prompts = concept_prompts(texts, templates)
    emb = encode_texts(model, tokenizer, prompts, batch_size=batch_size, progress=progress)
    emb = emb.view(len(texts), len(templates), -1).mean(dim=1)
    return F.normalize(emb, dim=-1).cpu()
