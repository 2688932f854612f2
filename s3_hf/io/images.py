"""Images in: paths, URLs, base64 and PIL images, read exactly or at a reduced size (JPEG draft mode), with the
size bounds checked from the file header before decoding; the image-suffix set used wherever a folder is listed."""

from __future__ import annotations

import io
import logging
import math
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from s3_hf import limits
from s3_hf.errors import ImageLoadError, ImageTooLargeError

logger = logging.getLogger(__name__)

ImageInput = str | os.PathLike | Image.Image

#: File suffixes read as images wherever a folder of images is listed (CLI, support sets, benchmarks, bench).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a file with an image suffix (case-insensitive)."""
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_SUFFIXES


def list_images(folder: str | os.PathLike) -> list[str]:
    """The image files directly inside ``folder``, sorted by name."""
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if is_image_file(f))


#: ``image.info`` key of a JPEG decoded at reduced size: its full (width, height), upright.
ORIGINAL_SIZE = "s3_original_size"


def original_size(image: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of the image as a full decode gives it (differs from ``image.size`` after
    :func:`draft_jpeg`)."""
    return tuple(image.info.get(ORIGINAL_SIZE, image.size))  # type: ignore[return-value]


def _to_rgb(image: Image.Image) -> Image.Image:
    """Upright 8-bit RGB. 16-bit and 32-bit greyscale are rescaled, transparency is composited on white."""
    full = image.info.get(ORIGINAL_SIZE)
    if full is not None and image.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF rotations by 90 degrees
        full = full[::-1]
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("RGB")
    if full is not None:
        image.info[ORIGINAL_SIZE] = tuple(full)
    return image


def check_image_size(width: int, height: int, name: str = "the image") -> None:
    """Refuse an image with no pixels, more pixels than ``S3_MAX_IMAGE_PIXELS`` or a long side more than
    ``S3_MAX_IMAGE_ASPECT`` times its short side. Called with the size a file's header declares, before decoding.

    Args:
        width: the declared width in pixels.
        height: the declared height in pixels.
        name: how messages name the image.
    """
    if width < 1 or height < 1:
        raise ImageLoadError(f"{name} has no pixels ({width}x{height}); pass a non-empty image.")
    if width * height > limits.IMAGE_PIXELS.get():
        raise ImageTooLargeError(
            f"{name} is {width}x{height} = {width * height:,} pixels. {limits.IMAGE_PIXELS.hint()} Or downscale it."
        )
    aspect = max(width, height) / min(width, height)
    if aspect > limits.IMAGE_ASPECT.get():
        raise ImageTooLargeError(
            f"{name} is {width}x{height} pixels, an aspect ratio of {aspect:.3g}:1: resized for the model it would "
            f"be a strip of mostly padding or windows. {limits.IMAGE_ASPECT.hint()} Or crop it."
        )


def draft_jpeg(image: Image.Image, min_side: int | None) -> Image.Image:
    """Ask a JPEG file's decoder for the smallest DCT scale (1/2, 1/4 or 1/8) whose short side is still at least
    ``min_side`` (``Image.draft``), before the image is loaded; anything else, or ``None``, is left as is. Never
    upsamples: a JPEG whose short side is already at most ``min_side`` decodes at full size."""
    if not min_side or getattr(image, "format", None) not in ("JPEG", "MPO"):  # MPO: cameras' multi-picture JPEG
        return image
    w, h = image.size
    scale = min_side / min(w, h)
    if scale < 1:
        image.draft(image.mode, (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))))
        if image.size != (w, h):
            image.info[ORIGINAL_SIZE] = (w, h)
    return image


def load_image(image: ImageInput, timeout: float | None = None, min_side: int | None = None) -> Image.Image:
    """Read a path, URL, base64 string or PIL image into an upright RGB PIL image.

    ``min_side``: decode JPEG files, URLs, bytes and base64 data at reduced size (:func:`draft_jpeg`) while the short
    side stays at least ``min_side`` (the model's resize target: the fast path); ``None`` decodes every pixel.

    Raises :class:`ImageLoadError` (naming the input) for a missing, unreadable, truncated or non-image file.
    """
    name = str(image) if not isinstance(image, Image.Image) else "<PIL image>"
    short = name if len(name) < 200 else name[:200] + "..."
    try:
        if isinstance(image, Image.Image):
            check_image_size(*image.size, short)
            image.load()
            return _to_rgb(image)
        if isinstance(image, os.PathLike | str) and os.path.isdir(image):
            raise ImageLoadError(f"{short} is a folder, not an image file. Pass the image files inside it.")
        if isinstance(image, os.PathLike | str) and os.path.isfile(image):
            with Image.open(image) as im:
                check_image_size(*im.size, short)  # the header's size: nothing decoded yet
                draft_jpeg(im, min_side).load()
                return _to_rgb(im)
        if isinstance(image, os.PathLike) or (isinstance(image, str) and _looks_like_path(image)):
            raise ImageLoadError(f"Could not read image {short}: no such file. Check the path.")
        if isinstance(image, str) and image.startswith(("http://", "https://")):
            return image_from_bytes(_download(image, short, timeout), min_side, short)
        if isinstance(image, str) and min_side:
            data = _base64_bytes(image)
            if data is not None:
                return image_from_bytes(data, min_side)
        if isinstance(image, str):
            from transformers.image_utils import load_image as hf_load_image

            try:
                picture = hf_load_image(image, timeout=timeout)
                check_image_size(*picture.size, short)  # decoded already; PIL's own pixel limit bounds that
                return _to_rgb(picture)
            except (ImageLoadError, Image.DecompressionBombError, UnidentifiedImageError):
                raise
            except Exception as err:  # undecodable base64, ...
                raise ImageLoadError(f"Could not decode image {short}: {type(err).__name__}: {err}.") from err
        raise ImageLoadError(
            f"Cannot read an image from an object of type {type(image).__name__}. "
            "Pass a file path, a URL, a base64 string or a PIL.Image."
        )
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(
            f"{short} is too large to decode safely ({err}). If you trust it, raise the limit: "
            "PIL.Image.MAX_IMAGE_PIXELS = N (None removes it)."
        ) from err
    except UnidentifiedImageError as err:
        raise ImageLoadError(f"{short} is not an image file PIL can decode (JPEG, PNG, ...).") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageLoadError(
            f"Could not read image {short}: {err}. Check that the path or URL exists and the file is a "
            "complete, valid image."
        ) from err


def _download(url: str, name: str, timeout: float | None) -> bytes:
    """The bytes at ``url``, fetched as transformers' ``load_image`` fetches them (redirects followed)."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
    except Exception as err:  # the HTTP client's connection, timeout and protocol errors
        raise ImageLoadError(
            f"Could not download image {name}: {type(err).__name__}: {err}. Check the URL and your network, or pass "
            "a local file."
        ) from err
    if response.status_code >= 400:
        raise ImageLoadError(f"Could not download image {name}: HTTP {response.status_code}. Check the URL.")
    return response.content


def _looks_like_path(text: str) -> bool:
    """A string that names a file rather than a URL or base64 data (base64 never holds a dot; it may start with
    a slash, as JPEG data does)."""
    if text.startswith(("http://", "https://", "data:")):
        return False
    return text.startswith(("./", "../", "~")) or ("." in text and len(text) < 4096)


def _base64_bytes(text: str) -> bytes | None:
    """The bytes of base64 image data (with or without a ``data:`` prefix), or ``None`` if it is not base64."""
    import base64
    import binascii

    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None


def image_from_bytes(data: bytes, min_side: int | None = None, name: str = "image bytes") -> Image.Image:
    """Decode image bytes with the same checks as :func:`load_image` (and its reduced-size JPEG decoding);
    ``name`` says where the bytes came from in errors."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            check_image_size(*im.size, name)
            draft_jpeg(im, min_side).load()
            return _to_rgb(im)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"{name} is too large to decode safely ({err}).") from err
    except UnidentifiedImageError as err:
        raise ImageLoadError(f"{name} is not an image file PIL can decode (JPEG, PNG, ...).") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageLoadError(f"Could not decode {name}: {err}.") from err
