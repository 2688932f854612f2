"""The form's inputs, read and checked: every one a client sent, so every refusal is a ``gr.Error`` with a message
that names no server path."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from s3_hf import limits
from s3_hf.app.settings import AppSettings, folder_key
from s3_hf.engine.results import check_abstain_threshold
from s3_hf.errors import ImageLoadError, ImageTooLargeError
from s3_hf.io.hub import is_repo_id
from s3_hf.io.images import ORIGINAL_SIZE, check_image_size, draft_jpeg, load_image
from s3_hf.options import DENSE_VARIANTS, METRIC_NAMES

logger = logging.getLogger("s3_hf.space_app")

MAX_TOP_K = 10
MAX_INPUT_CHARS = 1000  # longer than any repo id or folder path a user could mean
VARIANTS = [v for v in DENSE_VARIANTS if v is not None]

NO_IMAGE = "No image: upload, paste or take a photo, or pick an example."
IMAGE_UNREADABLE = (
    "The image could not be read: it is not an image file this app can decode (JPEG, PNG, WebP, ...) or it is "
    "damaged. Upload another image."
)
ENTER_REPO_ID = "Enter a Hub repo id such as org/name for the synonym space, or leave it empty and type labels."
FAILED = "Classification failed on the server. Try again, or with other inputs; the server log has the details."
TOP_K_MESSAGE = f"Top k must be a whole number from 1 to {MAX_TOP_K}."
ABSTAIN_NAME = "Abstain below"
ABSTAIN_MESSAGE = f"{ABSTAIN_NAME} must be a probability from 0 to 1 (0 or empty: never abstain)."


def image_too_large() -> str:
    """The message for an image over the library's size or aspect limits (the values in force)."""
    return (
        f"The image is too large or too elongated: this Space accepts images up to "
        f"{limits.IMAGE_PIXELS.get() / 1e6:g} megapixels, with a long side at most {limits.IMAGE_ASPECT.get():g} "
        "times the short side (less for segmentation). Upload a smaller one, or crop it."
    )


def _check_text(text: str, what: str, settings: AppSettings) -> str:
    if len(text) > settings.max_text:
        raise gr.Error(f"{what} {text[:40]!r}... is too long (at most {settings.max_text} characters). Shorten it.")
    return text


def parse_labels(text: Any, settings: AppSettings) -> list[str]:
    """The class labels typed in the form (comma- or line-separated)."""
    if text is not None and not isinstance(text, str):
        raise gr.Error("Class labels must be text: labels separated by commas.")
    labels = [x.strip() for x in (text or "").replace("\n", ",").split(",") if x.strip()]
    if len(labels) > settings.max_labels:
        raise gr.Error(
            f"{len(labels)} labels is too many for this demo (at most {settings.max_labels}). Use fewer classes."
        )
    return [_check_text(x, "The label", settings) for x in labels]


def _cell(value: Any, row: int) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):  # the table may send numbers as numbers
        return str(value)
    raise gr.Error(f"Synonyms table, row {row}: cells must be text, got {type(value).__name__}.")


def _table_rows(table: Any, settings: AppSettings) -> list[Any] | tuple[Any, ...]:
    rows = table.get("data", []) if isinstance(table, dict) else (table or [])
    if not isinstance(rows, list | tuple):
        raise gr.Error("The synonyms table must be a list of [label, synonyms] rows.")
    if len(rows) > settings.max_synonym_rows:
        raise gr.Error(
            f"The synonyms table has {len(rows)} rows; this Space accepts at most {settings.max_synonym_rows}. "
            "Remove rows."
        )
    return rows


def parse_synonyms(table: Any, settings: AppSettings) -> dict[str, list[str]] | None:
    """``{label: [synonym, ...]}`` from the synonyms table (rows without a label are skipped)."""
    out: dict[str, list[str]] = {}
    for n, row in enumerate(_table_rows(table, settings), 1):
        if row is None:
            continue
        if not isinstance(row, list | tuple):
            raise gr.Error(f"Synonyms table, row {n}: a row is [label, synonyms], got {type(row).__name__}.")
        cells = [_cell(c, n).strip() for c in row]
        if any(cells[2:]):
            raise gr.Error(f"Synonyms table, row {n}: a row has two cells, a label and its comma-separated synonyms.")
        if not cells or not cells[0]:
            continue
        label = _check_text(cells[0], "The label", settings)
        syn = out.setdefault(label, [])
        for s in (s.strip() for s in (cells[1] if len(cells) > 1 else "").split(",")):
            if s and s not in syn:
                syn.append(_check_text(s, "The synonym", settings))
        if len(syn) > settings.max_synonyms:
            raise gr.Error(
                f"{label!r} has {len(syn)} synonyms; this Space accepts at most {settings.max_synonyms} per label. "
                "Keep the best ones."
            )
    return out or None


def parse_metric(metric: Any) -> str:
    """The point-to-space metric chosen in the form."""
    if not isinstance(metric, str) or metric not in METRIC_NAMES:
        shown = repr(metric)[:40]
        raise gr.Error(f"Unknown metric {shown}. Choose one of {', '.join(METRIC_NAMES)}.")
    return metric


def parse_variant(variant: Any) -> str:
    """The dense variant chosen for segmentation."""
    if variant not in VARIANTS:
        raise gr.Error(f"Unknown dense variant; choose one of {', '.join(VARIANTS)}.")
    return variant


def parse_top_k(top_k: Any) -> int:
    """How many classes to show: a whole number from 1 to :data:`MAX_TOP_K`."""
    if isinstance(top_k, bool) or not isinstance(top_k, int | float | str):
        raise gr.Error(TOP_K_MESSAGE)
    try:
        value = float(top_k)
    except ValueError:
        raise gr.Error(TOP_K_MESSAGE) from None
    if not value.is_integer() or not 1 <= value <= MAX_TOP_K:
        raise gr.Error(TOP_K_MESSAGE)
    return int(value)


def parse_abstain(value: Any) -> float | None:
    """The "abstain below" probability: ``None`` (never) for an empty field or 0 (what a browser sends for an empty
    number field; no probability is below it), else a probability in ``(0, 1]`` (the engine's check)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass  # the check below says what is expected
    try:
        return check_abstain_threshold(value, error=gr.Error, name=ABSTAIN_NAME)
    except gr.Error:
        raise gr.Error(ABSTAIN_MESSAGE) from None


def parse_checkbox(value: Any, what: str) -> bool:
    """A checkbox of the form: ``True`` or ``False`` (``None``, from a client that leaves it out, is off)."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise gr.Error(f"{what} is a checkbox: send true or false.")
    return value


@dataclass(frozen=True)
class SpaceChoice:
    """A synonym space the app may load: an allowed local folder or a Hub repo id, and the text the user typed."""

    typed: str
    location: str
    hub: bool


def parse_space(text: Any, settings: AppSettings) -> SpaceChoice | None:
    """The synonym space the user asked for, or None. Only allow-listed folders and Hub repo ids pass; anything
    else gets one message that does not depend on whether the path exists on the server."""
    if text is None:
        return None
    if not isinstance(text, str) or len(text) > MAX_INPUT_CHARS:
        raise gr.Error(ENTER_REPO_ID)
    text = text.strip()
    if not text:
        return None
    if "\0" not in text and (key := folder_key(text)) in settings.local_spaces:
        return SpaceChoice(text, key, hub=False)
    if is_repo_id(text):
        return SpaceChoice(text, text, hub=True)
    raise gr.Error(ENTER_REPO_ID)


def uploaded(path: str) -> bool:
    """Whether ``path`` is inside Gradio's upload folder (uploads and cached examples): payloads are client data."""
    from gradio.utils import get_upload_folder

    try:
        return Path(path).resolve().is_relative_to(Path(get_upload_folder()).resolve())
    except (OSError, ValueError, RuntimeError):
        return False


def _decode(path: str, min_side: int) -> Image.Image:
    try:
        with Image.open(path) as im:  # reads the header only: the size is known before anything is decoded
            check_image_size(im.width, im.height)
            return load_image(draft_jpeg(im, min_side))
    except (Image.DecompressionBombError, ImageLoadError) as err:
        logger.info("Image refused: %s", err)
        bomb = isinstance(err, Image.DecompressionBombError | ImageTooLargeError)
        raise gr.Error(image_too_large() if bomb else IMAGE_UNREADABLE) from None
    except Exception as err:  # PIL's decoders raise many types on malformed files
        logger.info("Image refused: %s: %s", type(err).__name__, err)
        raise gr.Error(IMAGE_UNREADABLE) from None


def prepare_image(image: Any, min_side: int, max_side: int) -> Image.Image:
    """Decode the image ourselves (the event skips Gradio's preprocessing) so bad files get a clear message.

    Args:
        image: the payload: a path in Gradio's upload folder or a FileData dict holding one.
        min_side: the short side the model needs (JPEG data is decoded at the smallest scale that covers it).
        max_side: larger images are downscaled to this long side.
    """
    if isinstance(image, dict):  # a FileData payload
        image = image.get("path")
    if image is None or image == "":
        raise gr.Error(NO_IMAGE)
    # every unreadable input, including a path outside the uploads, gets one message: it says nothing about the server
    if not isinstance(image, str) or not uploaded(image):
        raise gr.Error(IMAGE_UNREADABLE)
    picture = _decode(image, min_side)
    if max(picture.size) > max_side:
        picture = picture.copy()
        picture.thumbnail((max_side, max_side))  # huge images are downscaled; CLIP sees 224 px anyway
        picture.info.pop(ORIGINAL_SIZE, None)  # segment what is shown
    return picture


__all__ = [
    "ABSTAIN_MESSAGE",
    "ABSTAIN_NAME",
    "ENTER_REPO_ID",
    "FAILED",
    "IMAGE_UNREADABLE",
    "MAX_TOP_K",
    "NO_IMAGE",
    "VARIANTS",
    "SpaceChoice",
    "image_too_large",
    "parse_abstain",
    "parse_checkbox",
    "parse_labels",
    "parse_metric",
    "parse_space",
    "parse_synonyms",
    "parse_top_k",
    "parse_variant",
    "prepare_image",
    "uploaded",
]
