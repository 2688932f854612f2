"""Gradio Space: what S^3 does to one image.

Environment (read at start-up):

- ``S3_MODEL``: the CLIP checkpoint (default openai/clip-vit-base-patch32).
- ``S3_SPACE``: the default synonym space, a Hub repo id or a local folder (optional; always allowed).
- ``S3_LOCAL_SPACES``: local synonym-space folders users may pick, separated by ``os.pathsep`` (``:``); an entry
  ending in ``/*`` allows every sub-folder it has at start-up. Default: none, so users can only enter Hub repo ids
  (``org/name``). Anything else gets the same message whether or not such a path exists on the server.
- ``S3_MAX_LABELS`` (default 100), ``S3_MAX_SYNONYM_ROWS`` (rows of the synonyms table, default 200),
  ``S3_MAX_SYNONYMS`` (synonyms per label, default 20), ``S3_MAX_TEXT`` (characters of one label or synonym,
  default 100).
- ``S3_MAX_MEGAPIXELS``: larger images are refused (default 64); ``S3_MAX_SIDE``: larger images are downscaled
  to this many pixels (default 2048).
- ``S3_CONCURRENCY``: requests processed at once (default 2).
- ``S3_MAX_UPLOAD_MB``: larger uploads are refused by the server (default 50); ``S3_MAX_SPACE_MB``: a Hub synonym
  space whose files add up to more is refused before it is read (default 64). The library's own limits
  (``S3_MAX_SCORING_MB``, ``S3_MAX_IMAGE_ASPECT``, ``S3_MAX_SEGMENT_PIXELS``, ...; see ``s3_hf.limits``) apply too.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from PIL import Image

import s3_hf
from s3_hf import limits
from s3_hf.engine.core import S3Engine, rank
from s3_hf.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    FormatVersionError,
    HubError,
    ImageLoadError,
    ImageTooLargeError,
    ModelMismatchError,
    SpaceTooLargeError,
)
from s3_hf.io.hub import download
from s3_hf.io.images import ORIGINAL_SIZE, draft_jpeg, load_image
from s3_hf.options import DEFAULT_DENSE_VARIANT, DEFAULT_METRIC, DEFAULT_MODEL, DENSE_VARIANTS, METRIC_NAMES
from s3_hf.space.artifact import CONFIG_NAME, REQUIRED_FILES
from s3_hf.space.scoring import centre_members, nearest_match

logger = logging.getLogger("s3_hf.space_app")


def _setting(name: str, default: float, kind: type[int] | type[float] = int) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise SystemExit(f"{name}={raw!r} is not a positive {kind.__name__}; unset it for the default ({default}).")
    return value


MODEL = os.environ.get("S3_MODEL", DEFAULT_MODEL)
DEFAULT_SPACE = os.environ.get("S3_SPACE", "").strip()
MAX_LABELS = _setting("S3_MAX_LABELS", 100)
MAX_SYNONYM_ROWS = _setting("S3_MAX_SYNONYM_ROWS", 200)
MAX_SYNONYMS = _setting("S3_MAX_SYNONYMS", 20)
MAX_TEXT = _setting("S3_MAX_TEXT", 100)
MAX_PIXELS = int(_setting("S3_MAX_MEGAPIXELS", 64.0, float) * 1_000_000)
MAX_SIDE = _setting("S3_MAX_SIDE", 2048)
CONCURRENCY = _setting("S3_CONCURRENCY", 2)
MAX_UPLOAD_MB = _setting("S3_MAX_UPLOAD_MB", 50.0, float)
MAX_SPACE_MB = _setting("S3_MAX_SPACE_MB", 64.0, float)
#: What ``demo.launch`` needs to bound the process: the upload size (Gradio refuses larger files as they arrive).
LAUNCH_OPTIONS: dict[str, Any] = {"max_file_size": int(MAX_UPLOAD_MB * 2**20)}
MAX_TOP_K = 10
PLOT_CLASSES = 4
EXAMPLE_LABELS = "cat, dog, cup of coffee, astronaut, rocket, photographer"
EXAMPLE_SYNONYMS = [
    ["cat", "kitty, house cat, tabby cat, feline"],
    ["cup of coffee", "coffee, espresso, cappuccino, latte"],
    ["astronaut", "spaceman, cosmonaut, space traveler"],
]

NO_IMAGE = "No image: upload, paste or take a photo, or pick an example."
IMAGE_UNREADABLE = (
    "The image could not be read: it is not an image file this app can decode (JPEG, PNG, WebP, ...) or it is "
    "damaged. Upload another image."
)
IMAGE_TOO_LARGE = (
    f"The image is too large or too elongated: this Space accepts images up to {MAX_PIXELS / 1e6:g} megapixels, with "
    f"a long side at most {limits.IMAGE_ASPECT.get():g} times the short side (less for segmentation). Upload a "
    "smaller one, or crop it."
)
ENTER_REPO_ID = "Enter a Hub repo id such as org/name for the synonym space, or leave it empty and type labels."
FAILED = "Classification failed on the server. Try again, or with other inputs; the server log has the details."
TOP_K_MESSAGE = f"Top k must be a whole number from 1 to {MAX_TOP_K}."
MAX_INPUT_CHARS = 1000  # longer than any repo id or folder path a user could mean


def _is_repo_id(text: str) -> bool:
    if text.count("/") != 1:  # huggingface_hub also accepts bare legacy names ("gpt2"); spaces have an owner
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _folder_key(path: str) -> str:
    """A lexical key (no file-system access) under which a folder is matched against the allow-list."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


def local_spaces(value: str, default_space: str = "") -> frozenset[str]:
    """The allow-list of local synonym-space folders: the ``S3_LOCAL_SPACES`` entries (``os.pathsep``-separated;
    ``DIR/*`` stands for the sub-folders ``DIR`` has now) and ``S3_SPACE`` when it names a folder."""
    allowed: set[str] = set()
    for entry in (e.strip() for e in value.split(os.pathsep)):
        if not entry:
            continue
        if entry.endswith(("/*", os.sep + "*")):
            parent = Path(_folder_key(entry[:-2]))
            try:
                subs = sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                subs = []
            if not subs:
                logger.warning("S3_LOCAL_SPACES: %s has no sub-folders; it allows nothing", parent)
            allowed.update(str(p) for p in subs)
        else:
            if not os.path.isdir(entry):
                logger.warning("S3_LOCAL_SPACES: %s is not a folder (yet)", entry)
            allowed.add(_folder_key(entry))
    if default_space and (os.path.isdir(default_space) or not _is_repo_id(default_space)):
        allowed.add(_folder_key(default_space))
    return frozenset(allowed)


LOCAL_SPACES = local_spaces(os.environ.get("S3_LOCAL_SPACES", ""), DEFAULT_SPACE)

try:
    ENGINE = S3Engine.from_pretrained(MODEL)  # loaded once, at start-up; caches spaces across requests
except s3_hf.S3Error as _err:
    raise SystemExit(
        f"{_err}\nSet S3_MODEL to a Hub id you can download or to a local CLIP folder (config.json, "
        "model.safetensors, tokenizer, preprocessor_config.json or processor_config.json)."
    ) from _err


def example_photos() -> list[str]:
    """Real photos bundled with scikit-image, written once to a temporary folder."""
    from skimage import data

    folder = Path(tempfile.mkdtemp(prefix="s3-examples-"))
    paths = []
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(data, name)()).convert("RGB").save(path, quality=90)
        paths.append(str(path))
    return paths


# ----------------------------------------------------------------------------------------------- inputs
def _check_text(text: str, what: str) -> str:
    if len(text) > MAX_TEXT:
        raise gr.Error(f"{what} {text[:40]!r}... is too long (at most {MAX_TEXT} characters). Shorten it.")
    return text


def parse_labels(text: Any) -> list[str]:
    if text is not None and not isinstance(text, str):
        raise gr.Error("Class labels must be text: labels separated by commas.")
    labels = [x.strip() for x in (text or "").replace("\n", ",").split(",") if x.strip()]
    if len(labels) > MAX_LABELS:
        raise gr.Error(f"{len(labels)} labels is too many for this demo (at most {MAX_LABELS}). Use fewer classes.")
    return [_check_text(x, "The label") for x in labels]


def _cell(value: Any, row: int) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):  # the table may send numbers as numbers
        return str(value)
    raise gr.Error(f"Synonyms table, row {row}: cells must be text, got {type(value).__name__}.")


def parse_synonyms(table: Any) -> dict[str, list[str]] | None:
    """``{label: [synonym, ...]}`` from the synonyms table (rows without a label are skipped)."""
    rows = table.get("data", []) if isinstance(table, dict) else (table or [])
    if not isinstance(rows, list | tuple):
        raise gr.Error("The synonyms table must be a list of [label, synonyms] rows.")
    if len(rows) > MAX_SYNONYM_ROWS:
        raise gr.Error(
            f"The synonyms table has {len(rows)} rows; this Space accepts at most {MAX_SYNONYM_ROWS}. Remove rows."
        )
    out: dict[str, list[str]] = {}
    for n, row in enumerate(rows, 1):
        if row is None:
            continue
        if not isinstance(row, list | tuple):
            raise gr.Error(f"Synonyms table, row {n}: a row is [label, synonyms], got {type(row).__name__}.")
        cells = [_cell(c, n).strip() for c in row]
        if any(cells[2:]):
            raise gr.Error(f"Synonyms table, row {n}: a row has two cells, a label and its comma-separated synonyms.")
        if not cells or not cells[0]:
            continue
        label = _check_text(cells[0], "The label")
        syn = out.setdefault(label, [])
        for s in (s.strip() for s in (cells[1] if len(cells) > 1 else "").split(",")):
            if s and s not in syn:
                syn.append(_check_text(s, "The synonym"))
        if len(syn) > MAX_SYNONYMS:
            raise gr.Error(
                f"{label!r} has {len(syn)} synonyms; this Space accepts at most {MAX_SYNONYMS} per label. "
                "Keep the best ones."
            )
    return out or None


def parse_metric(metric: Any) -> str:
    if not isinstance(metric, str) or metric not in METRIC_NAMES:
        shown = repr(metric)[:40]
        raise gr.Error(f"Unknown metric {shown}. Choose one of {', '.join(METRIC_NAMES)}.")
    return metric


def parse_top_k(top_k: Any) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int | float | str):
        raise gr.Error(TOP_K_MESSAGE)
    try:
        value = float(top_k)
    except ValueError:
        raise gr.Error(TOP_K_MESSAGE) from None
    if not value.is_integer() or not 1 <= value <= MAX_TOP_K:
        raise gr.Error(TOP_K_MESSAGE)
    return int(value)


@dataclass(frozen=True)
class SpaceChoice:
    """A synonym space the app may load: an allowed local folder or a Hub repo id, and the text the user typed."""

    typed: str
    location: str
    hub: bool


def parse_space(text: Any) -> SpaceChoice | None:
    """The synonym space the user asked for, or None. Only allow-listed folders and Hub repo ids pass; anything
    else gets one message that does not depend on whether the path exists on the server."""
    if text is None:
        return None
    if not isinstance(text, str) or len(text) > MAX_INPUT_CHARS:
        raise gr.Error(ENTER_REPO_ID)
    text = text.strip()
    if not text:
        return None
    if "\0" not in text and (key := _folder_key(text)) in LOCAL_SPACES:
        return SpaceChoice(text, key, hub=False)
    if _is_repo_id(text):
        return SpaceChoice(text, text, hub=True)
    raise gr.Error(ENTER_REPO_ID)


_hub_folders: dict[str, Path] = {}
_hub_lock = threading.Lock()


def hub_space_folder(repo_id: str) -> str:
    """Download a Hub space (once) and return its snapshot folder. The space is never looked up as a local path,
    so a repo id that happens to name a folder next to the app reads nothing from it."""
    with _hub_lock:
        folder = _hub_folders.get(repo_id)
    if folder is None or not (folder / CONFIG_NAME).is_file():
        # sizes are asked for before anything is downloaded, and checked again on disk (read whole when loaded)
        folder = download(repo_id, REQUIRED_FILES, max_bytes=int(MAX_SPACE_MB * 2**20))
        size = sum((folder / name).stat().st_size for name in REQUIRED_FILES)
        if size > MAX_SPACE_MB * 2**20:
            raise SpaceTooLargeError(f"{repo_id}'s files take {size / 2**20:.0f} MB; this app reads {MAX_SPACE_MB:g}.")
        with _hub_lock:
            if len(_hub_folders) >= 64:
                _hub_folders.clear()
            _hub_folders[repo_id] = folder
    return str(folder)


def space_error(choice: SpaceChoice, err: Exception) -> str:
    """The user-facing message for a space that could not be loaded: no server paths (the library's messages
    name cache folders); the details go to the log."""
    logger.warning("Loading synonym space %r failed: %s", choice.location, err)
    if isinstance(err, ArtifactNotFoundError) and choice.hub:
        return (
            f"{choice.typed!r} is not a local folder this Space allows, and no synonym space could be downloaded "
            "from the Hub under that repo id (it does not exist, is private or holds no s3-hf synonym space, or the "
            "Hub cannot be reached). Check the repo id."
        )
    if isinstance(err, SpaceTooLargeError):
        reason = "it is larger than this Space accepts (too many classes or concepts per class)"
    elif isinstance(err, ModelMismatchError):
        reason = "it was built for another CLIP model than the one this Space runs"
    elif isinstance(err, FormatVersionError):
        reason = "it was saved in a format this version of s3-hf cannot read"
    elif isinstance(err, HubError):
        reason = "the Hub could not be reached; try again later"
    elif isinstance(err, ArtifactNotFoundError):
        reason = "its files are missing"
    else:
        reason = "its files are damaged or do not hold a valid s3-hf synonym space"
    return f"The synonym space {choice.typed!r} could not be loaded: {reason}."


def _uploaded(path: str) -> bool:
    """Whether ``path`` is inside Gradio's upload folder (uploads and cached examples): payloads are client data."""
    from gradio.utils import get_upload_folder

    try:
        return Path(path).resolve().is_relative_to(Path(get_upload_folder()).resolve())
    except (OSError, ValueError, RuntimeError):
        return False


def prepare_image(image: Any, min_side: int | None = None) -> Image.Image:
    """Decode the image ourselves (the event skips Gradio's preprocessing) so bad files get a clear message."""
    if isinstance(image, dict):  # a FileData payload
        image = image.get("path")
    if image is None or image == "":
        raise gr.Error(NO_IMAGE)
    # every unreadable input, including a path outside the uploads, gets one message: it says nothing about the server
    if not isinstance(image, str) or not _uploaded(image):
        raise gr.Error(IMAGE_UNREADABLE)
    try:
        with Image.open(image) as im:  # reads the header only: the size is known before anything is decoded
            if im.width * im.height > MAX_PIXELS:
                raise gr.Error(IMAGE_TOO_LARGE)
            image = load_image(draft_jpeg(im, min_side or ENGINE.encoder.decode_min_side()))
    except gr.Error:
        raise
    except (Image.DecompressionBombError, ImageLoadError) as err:
        logger.info("Image refused: %s", err)
        bomb = isinstance(err, Image.DecompressionBombError | ImageTooLargeError)
        raise gr.Error(IMAGE_TOO_LARGE if bomb else IMAGE_UNREADABLE) from None
    except Exception as err:  # PIL's decoders raise many types on malformed files
        logger.info("Image refused: %s: %s", type(err).__name__, err)
        raise gr.Error(IMAGE_UNREADABLE) from None
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE))  # huge images are downscaled; CLIP sees 224 px anyway
        image.info.pop(ORIGINAL_SIZE, None)  # segment what is shown
    return image


# ---------------------------------------------------------------------------------------------- outputs
def projection_figure(space: s3_hf.SynonymSpace, classes: list[int], v: torch.Tensor) -> plt.Figure:
    """The class spaces projected on their first two principal axes, with the image and the centre it matched."""
    t = space.tensors
    state = space.scoring_state()
    members = centre_members(v[None], state, space.config.metric)[0]
    matched = nearest_match(v[None], state)[0]
    idx = torch.cat([torch.nonzero(t.point_class == c).flatten() for c in classes])
    pts = torch.cat([t.points[idx], v[None].cpu()])
    mean = pts.mean(0, keepdim=True)
    _, _, basis = torch.linalg.svd(pts - mean, full_matrices=False)
    xy = ((pts - mean) @ basis[:2].T).numpy()
    where = {int(p): i for i, p in enumerate(idx)}
    fig, ax = plt.subplots(figsize=(6.5, 5))
    colours = plt.get_cmap("tab10")
    for k, c in enumerate(classes):
        col = colours(k % 10)
        own = [int(p) for p in idx if int(t.point_class[p]) == c]
        start = own[0]
        for p in own:  # 1-skeleton edges
            for q in t.neighbour_indices[t.neighbour_indptr[p] : t.neighbour_indptr[p + 1]].tolist():
                if q > p:
                    ax.plot(*xy[[where[p], where[q]]].T, color=col, lw=0.8, alpha=0.6)
        kept = [p for p in own if bool(t.kept[p])]
        dropped = [p for p in own if not bool(t.kept[p])]
        ax.scatter(*xy[[where[p] for p in kept]].T, color=col, s=30, label=space.labels[c])
        if dropped:
            ax.scatter(*xy[[where[p] for p in dropped]].T, color=col, marker="x", s=40)
        for p in own:
            ax.annotate(space.concepts(c)[p - start], xy[where[p]], fontsize=7, alpha=0.8)
        centre_pts = [start + j for j in torch.nonzero(members[c]).flatten().tolist()]
        if centre_pts and k == 0:
            cxy = xy[[where[p] for p in centre_pts]].mean(0)
            ax.scatter(*cxy, marker="D", s=70, color=col, edgecolor="black", zorder=5, label="centre matched")
            ax.plot(*xy[[where[start + int(matched[c])], -1]].T, ls=":", color="black", lw=1)
    ax.scatter(*xy[-1], marker="*", s=220, color="gold", edgecolor="black", zorder=6, label="image")
    ax.set_title("Class spaces in 2-D: x = pruned, lines = edges of the complex", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def class_options(labels: list[str], choice: SpaceChoice | None, table: dict[str, list[str]] | None) -> dict[str, Any]:
    """The engine's class options from the form: typed labels with the synonyms table's rows for them, or a space
    (downloaded here when it is a Hub repo). Raises ``gr.Error`` when there are no classes."""
    if not labels and choice is None:
        raise gr.Error("No classes: type some labels (comma-separated) or enter a synonym space's Hub repo id.")
    kwargs: dict[str, Any] = {"candidate_labels": labels or None}
    if choice is None:
        # rows for labels that are not among the classes are ignored: the table often outlives a label edit
        syn = {k2: v for k2, v in (table or {}).items() if k2 in labels}
        kwargs["synonyms"] = syn or None
        kwargs["templates"] = "imagenet7"
    return kwargs


@contextmanager
def user_errors(choice: SpaceChoice | None, what: str) -> Iterator[None]:
    """Turn every failure of a request into a ``gr.Error`` that names no server path and shows no stack trace (the
    log keeps them): the space's own message for a space that cannot be had, the library's for bad options."""
    try:
        yield
    except ImageTooLargeError as err:  # the working size of segmentation
        raise gr.Error(IMAGE_TOO_LARGE) from err
    except (ArtifactError, HubError) as err:
        if choice is None:
            logger.exception("%s failed", what)
            raise gr.Error(FAILED) from err
        raise gr.Error(space_error(choice, err)) from err
    except s3_hf.S3Error as err:  # labels, synonyms, options: the library's messages name no server paths
        raise gr.Error(str(err)) from err
    except Exception as err:
        logger.exception("%s failed", what)
        raise gr.Error(FAILED) from err


def classify(
    image: Any, labels_text: str, space_id: str, metric: str, synonyms_table: Any, top_k: float
) -> tuple[dict[str, float], dict[str, float], list[list[Any]], plt.Figure]:
    """S^3 and vanilla CLIP side by side, per-class details, and the projection plot."""
    image = prepare_image(image)
    labels = parse_labels(labels_text)
    choice = parse_space(space_id)
    metric = parse_metric(metric)
    k = parse_top_k(top_k)
    kwargs = class_options(labels, choice, parse_synonyms(synonyms_table))
    with user_errors(choice, "classification"):
        if choice is not None:
            kwargs["synonym_space"] = hub_space_folder(choice.location) if choice.hub else choice.location
        s3_req = ENGINE.resolve(ENGINE.request(metric=metric, **kwargs))
        clip_req = ENGINE.resolve(ENGINE.request(metric="label", **kwargs))
        vs = ENGINE.encode_pixels(ENGINE.image_inputs([image]))
        s3 = rank(ENGINE.scores(vs, s3_req, details=True), 0, s3_req, details=True)
        clip = rank(ENGINE.scores(vs, clip_req), 0, clip_req)
    space = s3_req.space
    v = vs[0].float()
    state = space.scoring_state(v.device)
    sims = (v @ state.points.T).view(state.num_classes, state.max_points)
    rows = []
    for r in s3[:k]:
        c = space.labels.index(r.label)
        d = r.details or {}

        def with_sim(concepts: list[str], c: int = c) -> str:
            all_c = space.concepts(c)
            return ", ".join(f"{x} ({float(sims[c, all_c.index(x)]):.2f})" for x in concepts) or "–"

        rows.append(
            [
                r.label,
                round(r.score, 4),
                d["matched_concept"],
                ", ".join(d["centre"]),
                with_sim(d["kept"]),
                with_sim(d["dropped"]),
            ]
        )
    top_classes = [space.labels.index(r.label) for r in s3[:PLOT_CLASSES]]
    fig = projection_figure(space, top_classes, v.to(state.points.device))
    return (
        {r.label: r.score for r in s3[:k]},
        {r.label: r.score for r in clip[:k]},
        rows,
        fig,
    )


VARIANTS = [v for v in DENSE_VARIANTS if v is not None]


def matched_concepts(image: Image.Image, ids: torch.Tensor, resolved: Any, variant: str) -> dict[int, str]:
    """Per class present in the label map ``ids``, the concept of its space nearest to the class's pooled dense
    features (one pass over the image at the model's window size)."""
    import torch.nn.functional as F

    from s3_hf.segmentation.core import image_pixels

    encoder = ENGINE.encoder
    mean, std = encoder.pixel_stats()
    pixels = image_pixels(image, mean, std, 224)
    p = encoder.patch_size
    pixels = pixels[:, : pixels.shape[1] // p * p, : pixels.shape[2] // p * p]
    feats = encoder.dense_features(pixels[None], variant)[0]  # (gh, gw, D)
    small = F.interpolate(ids[None, None].float(), size=feats.shape[:2], mode="nearest")[0, 0].long()
    present = [int(c) for c in torch.unique(ids)]
    pooled, classes = [], []
    for c in present:
        inside = feats[small.to(feats.device) == c]
        if len(inside):
            pooled.append(F.normalize(inside.mean(0), dim=-1))
            classes.append(c)
    if not pooled:
        return {}
    out = ENGINE.scores(torch.stack(pooled), resolved, details=True)
    found = {}
    for row, c in enumerate(classes):
        ranked = rank(out, row, resolved, details=True)
        found[c] = next(r.details["matched_concept"] for r in ranked if r.label == resolved.labels[c])
    return found


def segment(
    image: Any, labels_text: str, space_id: str, metric: str, synonyms_table: Any, variant: str
) -> tuple[Image.Image, list[list[Any]]]:
    """Open-vocabulary segmentation: the overlay with a legend and, per class present, its area, mean score and the
    concept of its space that matched."""
    from s3_hf.segmentation.core import SegmentOptions, class_masks, overlay

    image = prepare_image(image, SegmentOptions().short_side)
    labels = parse_labels(labels_text)
    choice = parse_space(space_id)
    metric = parse_metric(metric)
    if variant not in VARIANTS:
        raise gr.Error(f"Unknown dense variant; choose one of {', '.join(VARIANTS)}.")
    kwargs = class_options(labels, choice, parse_synonyms(synonyms_table))
    with user_errors(choice, "segmentation"):
        if choice is not None:
            kwargs["synonym_space"] = hub_space_folder(choice.location) if choice.hub else choice.location
        request = ENGINE.request(metric=metric, **kwargs)
        seg = ENGINE.segment(image, request, SegmentOptions(variant=variant))
        concepts = matched_concepts(image, seg.label_map, ENGINE.resolve(request), variant)
    area = seg.label_map.numel()
    rows = []
    for r in class_masks(seg.logits, seg.labels, seg.label_map):
        c = seg.labels.index(r["label"])
        share = float((seg.label_map == c).sum()) / area
        rows.append([r["label"], f"{share:.1%}", round(r["score"], 4), concepts.get(c, "–")])
    return overlay(image, seg.label_map, seg.labels), rows


# --------------------------------------------------------------------------------------------------- UI
def build_demo() -> gr.Blocks:
    with gr.Blocks(title="S^3 zero-shot classification") as demo:
        gr.Markdown(
            "# S^3: Synonymous Semantic Space\nCLIP compares an image with one text per class; S^3 compares it "
            "with a *space* of synonymous concepts per class, pruned by persistence, and scores the image "
            f"against the centre of the part of the space nearest to it. Model: `{MODEL}`."
        )
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    label="Image",
                    type="filepath",
                    sources=["upload", "clipboard", "webcam"],
                    height=300,
                    elem_id="image-input",
                )
                labels = gr.Textbox(label="Class labels (comma-separated)", value=EXAMPLE_LABELS)
                where = (
                    "Hub repo id, org/name, or a folder this Space offers" if LOCAL_SPACES else "Hub repo id, org/name"
                )
                space = gr.Textbox(label=f"…or a synonym space ({where})", value=DEFAULT_SPACE)
                metric = gr.Dropdown(list(METRIC_NAMES), value=DEFAULT_METRIC, label="Point-to-space metric")
                synonyms = gr.Dataframe(
                    headers=["label", "synonyms (comma-separated)"],
                    value=EXAMPLE_SYNONYMS,
                    label="Synonyms (edit freely; labels without a row use their label only)",
                    interactive=True,
                )
                top_k = gr.Slider(1, 10, value=5, step=1, label="Top k")
                button = gr.Button("Classify", variant="primary", elem_id="classify")
            with gr.Column():
                with gr.Row():
                    s3_out = gr.Label(label="S^3", elem_id="s3-result")
                    clip_out = gr.Label(label="Vanilla CLIP", elem_id="clip-result")
                plot = gr.Plot(label="Class spaces", elem_id="projection")
        details = gr.Dataframe(
            headers=["class", "S^3 score", "matched concept", "centre", "kept (similarity)", "pruned (similarity)"],
            label="Per class",
            interactive=False,
        )
        gr.Examples([[p, EXAMPLE_LABELS] for p in example_photos()], inputs=[image, labels], label="Example photos")
        button.click(
            classify,
            [image, labels, space, metric, synonyms, top_k],
            [s3_out, clip_out, details, plot],
            api_name="classify",
            preprocess=False,  # classify() decodes the image itself, so an undecodable file gets a clear message
        )
        with gr.Accordion("Segmentation: every pixel against the class spaces", open=False):
            with gr.Row():
                variant = gr.Dropdown(
                    VARIANTS, value=DEFAULT_DENSE_VARIANT, label="Dense variant (last block, no training)"
                )
                seg_button = gr.Button("Segment", variant="primary", elem_id="segment")
            with gr.Row():
                seg_image = gr.Image(label="Segmentation (legend on the right)", type="pil", elem_id="seg-result")
                seg_rows = gr.Dataframe(
                    headers=["class", "area", "mean score", "matched concept"], label="Per class", interactive=False
                )
        seg_button.click(
            segment,
            [image, labels, space, metric, synonyms, variant],
            [seg_image, seg_rows],
            api_name="segment",
            preprocess=False,
        )
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    return demo


demo = build_demo()

if __name__ == "__main__":
    demo.launch(**LAUNCH_OPTIONS)

__all__ = [
    "SpaceChoice",
    "build_demo",
    "classify",
    "demo",
    "hub_space_folder",
    "local_spaces",
    "parse_labels",
    "parse_metric",
    "parse_space",
    "parse_synonyms",
    "parse_top_k",
    "prepare_image",
    "projection_figure",
    "segment",
    "space_error",
]
