"""Gradio Space: what S^3 does to one image.

Environment: ``S3_MODEL`` (CLIP checkpoint, default openai/clip-vit-base-patch32), ``S3_SPACE`` (default
synonym-space artifact, optional), ``S3_MAX_LABELS`` (default 100), ``S3_CONCURRENCY`` (requests processed at
once, default 2), ``S3_MAX_SIDE`` (larger images are downscaled to this many pixels, default 2048).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

import s3_hf
from s3_hf.encoding import load_image, pixel_values
from s3_hf.engine import S3Engine, rank
from s3_hf.metrics import centre_members, nearest_match
from s3_hf.options import DEFAULT_METRIC, DEFAULT_MODEL, METRIC_NAMES

logger = logging.getLogger("s3_hf.space_app")

MODEL = os.environ.get("S3_MODEL", DEFAULT_MODEL)
DEFAULT_SPACE = os.environ.get("S3_SPACE", "")
MAX_LABELS = int(os.environ.get("S3_MAX_LABELS", "100"))
CONCURRENCY = int(os.environ.get("S3_CONCURRENCY", "2"))
MAX_SIDE = int(os.environ.get("S3_MAX_SIDE", "2048"))
PLOT_CLASSES = 4
EXAMPLE_LABELS = "cat, dog, cup of coffee, astronaut, rocket, photographer"
EXAMPLE_SYNONYMS = [
    ["cat", "kitty, house cat, tabby cat, feline"],
    ["cup of coffee", "coffee, espresso, cappuccino, latte"],
    ["astronaut", "spaceman, cosmonaut, space traveler"],
]

try:
    ENGINE = S3Engine.from_pretrained(MODEL)  # loaded once, at start-up; caches spaces across requests
except s3_hf.S3Error as _err:
    raise SystemExit(
        f"{_err}\nSet S3_MODEL to a Hub id you can download or to a local CLIP folder (config.json, "
        "model.safetensors, tokenizer, preprocessor_config.json)."
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
def parse_labels(text: str | None) -> list[str]:
    labels = [x.strip() for x in (text or "").replace("\n", ",").split(",") if x.strip()]
    if len(labels) > MAX_LABELS:
        raise gr.Error(f"{len(labels)} labels is too many for this demo (at most {MAX_LABELS}). Use fewer classes.")
    return labels


def parse_synonyms(table: Any) -> dict[str, list[str]] | None:
    rows = table.get("data", []) if isinstance(table, dict) else (table or [])
    out: dict[str, list[str]] = {}
    for row in rows:
        if not row or not str(row[0] or "").strip():
            continue
        label = str(row[0]).strip()
        syn = str(row[1] if len(row) > 1 and row[1] is not None else "")
        out[label] = [s.strip() for s in syn.split(",") if s.strip()]
    return out or None


def prepare_image(image: Any) -> Image.Image:
    """Decode the image ourselves (the event skips Gradio's preprocessing) so bad files get a clear message."""
    if isinstance(image, dict):  # a FileData payload
        image = image.get("path")
    if not image:
        raise gr.Error("No image: upload, paste or take a photo, or pick an example.")
    try:
        image = load_image(image)
    except s3_hf.S3Error as err:
        raise gr.Error(str(err)) from err
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE))  # huge images are downscaled; CLIP sees 224 px anyway
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


def classify(
    image: Any, labels_text: str, space_id: str, metric: str, synonyms_table: Any, top_k: float
) -> tuple[dict[str, float], dict[str, float], list[list[Any]], plt.Figure]:
    """S^3 and vanilla CLIP side by side, per-class details, and the projection plot."""
    image = prepare_image(image)
    labels = parse_labels(labels_text)
    space_id = (space_id or "").strip()
    if not labels and not space_id:
        raise gr.Error("No classes: type some labels (comma-separated) or give a synonym-space id/folder.")
    kwargs: dict[str, Any] = {"candidate_labels": labels or None}
    if space_id:
        kwargs["synonym_space"] = space_id
    else:
        # rows for labels that are not among the classes are ignored: the table often outlives a label edit
        syn = {k2: v for k2, v in (parse_synonyms(synonyms_table) or {}).items() if k2 in labels}
        kwargs["synonyms"] = syn or None
        kwargs["templates"] = "imagenet7"
    k = max(1, int(top_k))
    try:
        s3_req = ENGINE.resolve(ENGINE.request(metric=metric, **kwargs))
        clip_req = ENGINE.resolve(ENGINE.request(metric="label", **kwargs))
        vs = ENGINE.encode_pixels(pixel_values(ENGINE.image_processor, [image]))
        s3 = rank(ENGINE.scores(vs, s3_req, details=True), 0, s3_req, details=True)
        clip = rank(ENGINE.scores(vs, clip_req), 0, clip_req)
    except s3_hf.S3Error as err:
        raise gr.Error(str(err)) from err
    except Exception as err:  # never a stack trace in the UI; the log keeps it
        logger.exception("classification failed")
        raise gr.Error(f"Classification failed ({type(err).__name__}): {err}") from err
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
                space = gr.Textbox(label="…or a synonym space (Hub id or folder)", value=DEFAULT_SPACE)
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
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    return demo


demo = build_demo()

if __name__ == "__main__":
    demo.launch()

__all__ = ["build_demo", "classify", "demo", "parse_labels", "parse_synonyms", "prepare_image", "projection_figure"]
