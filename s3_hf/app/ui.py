"""Gradio Space: what S^3 does to one image.

:func:`create_app` builds the app over an engine and its settings; :func:`launch` (the Space's ``app.py``) builds
both from the environment (see :mod:`s3_hf.app.settings`) and serves. Importing this module loads no model and
builds no UI.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from s3_hf.app.adaptation import adaptation_status
from s3_hf.app.gpu import gpu
from s3_hf.app.handlers import ADAPT_NAME, MULTI_LABEL_NAME, AppHandlers
from s3_hf.app.inputs import ABSTAIN_NAME, MAX_TOP_K, VARIANTS
from s3_hf.app.settings import AppSettings, AppSettingsError
from s3_hf.engine import S3Engine
from s3_hf.errors import S3Error
from s3_hf.options import DEFAULT_DENSE_VARIANT, DEFAULT_METRIC, METRIC_NAMES

EXAMPLE_LABELS = "cat, dog, cup of coffee, astronaut, rocket, photographer"
EXAMPLE_SYNONYMS = [
    ["cat", "kitty, house cat, tabby cat, feline"],
    ["cup of coffee", "coffee, espresso, cappuccino, latte"],
    ["astronaut", "spaceman, cosmonaut, space traveler"],
]
DEFAULT_TOP_K = 5
QUEUE_SIZE = 64

logger = logging.getLogger("s3_hf.space_app")


def example_photos() -> list[str]:
    """Real photos bundled with scikit-image, written once to a temporary folder."""
    from PIL import Image
    from skimage import data

    folder = Path(tempfile.mkdtemp(prefix="s3-examples-"))
    paths = []
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(data, name)()).convert("RGB").save(path, quality=90)
        paths.append(str(path))
    return paths


@dataclass(frozen=True)
class Inputs:
    """The form's input components, shared by both requests."""

    image: gr.Image
    labels: gr.Textbox
    space: gr.Textbox
    metric: gr.Dropdown
    synonyms: gr.Dataframe

    def classes(self) -> list[Any]:
        """The inputs after the image, in the handlers' order."""
        return [self.image, self.labels, self.space, self.metric, self.synonyms]


def _inputs(settings: AppSettings) -> Inputs:
    image = gr.Image(
        label="Image", type="filepath", sources=["upload", "clipboard", "webcam"], height=300, elem_id="image-input"
    )
    labels = gr.Textbox(label="Class labels (comma-separated)", value=EXAMPLE_LABELS)
    where = "Hub repo id, org/name, or a folder this Space offers" if settings.local_spaces else "Hub repo id, org/name"
    space = gr.Textbox(label=f"…or a synonym space ({where})", value=settings.default_space)
    metric = gr.Dropdown(list(METRIC_NAMES), value=DEFAULT_METRIC, label="Point-to-space metric")
    synonyms = gr.Dataframe(
        headers=["label", "synonyms (comma-separated)"],
        value=EXAMPLE_SYNONYMS,
        label="Synonyms (edit freely; labels without a row use their label only)",
        interactive=True,
    )
    return Inputs(image, labels, space, metric, synonyms)


@dataclass(frozen=True)
class ScoreControls:
    """How classes are ranked (abstain, multi-label) and the session's adaptation (toggle, state, reset, status)."""

    abstain: gr.Number
    multi_label: gr.Checkbox
    adapt: gr.Checkbox
    session: gr.State
    reset: gr.Button
    status: gr.Markdown

    def classes(self) -> list[Any]:
        """The inputs after top k, in the handler's order."""
        return [self.abstain, self.multi_label, self.adapt, self.session]


def _score_controls(settings: AppSettings) -> ScoreControls:
    with gr.Row():
        abstain = gr.Number(
            value=None,
            minimum=0,
            maximum=1,
            label=f"{ABSTAIN_NAME} (probability; 0 or empty: never)",
            info="'none of these' comes first when no class reaches it",
            elem_id="abstain",
        )
        multi_label = gr.Checkbox(
            value=False,
            label=MULTI_LABEL_NAME,
            info="each class on its own, not against the others",
            elem_id="multi-label",
        )
    with gr.Row():
        adapt = gr.Checkbox(
            value=False,
            label=f"{ADAPT_NAME} (TS^3)",
            info="yours only; new labels, space or metric start it afresh",
            elem_id="adapt",
        )
        reset = gr.Button("Reset adaptation", size="sm", elem_id="reset-adaptation")
    status = gr.Markdown(adaptation_status(None, False), elem_id="adapt-status")
    # one state per browser session (Gradio copies the initial None per session), dropped when unused for
    # settings.session_minutes; launch_options bounds the sessions Gradio keeps (see s3_hf.app.settings)
    session = gr.State(None, time_to_live=settings.session_seconds)
    return ScoreControls(abstain, multi_label, adapt, session, reset, status)


def _classification(handlers: AppHandlers) -> Inputs:
    """The classification part: the form, S^3 next to vanilla CLIP, the projection and the per-class table."""
    with gr.Row():
        with gr.Column():
            inputs = _inputs(handlers.settings)
            top_k = gr.Slider(1, MAX_TOP_K, value=DEFAULT_TOP_K, step=1, label="Top k")
            controls = _score_controls(handlers.settings)
            button = gr.Button("Classify", variant="primary", elem_id="classify")
        with gr.Column():
            with gr.Row():
                s3_out = gr.Label(label="S^3", elem_id="s3-result")
                clip_out = gr.Label(label="Vanilla CLIP", elem_id="clip-result")
            plot = gr.Plot(label="Class spaces", elem_id="projection")
    details = gr.Dataframe(
        headers=["class", "S^3 score", "matched concept", "centre", "kept (similarity)", "pruned (similarity)"],
        label="Per class (the static space)",
        interactive=False,
    )
    _examples(handlers, [*inputs.classes(), top_k], [s3_out, clip_out, details, plot])
    button.click(
        gpu(handlers.classify),
        [*inputs.classes(), top_k, *controls.classes()],
        [s3_out, clip_out, details, plot, controls.session],
        api_name="classify",
        preprocess=False,  # the handler decodes the image itself, so an undecodable file gets a clear message
    ).then(
        handlers.adaptation,
        [controls.adapt, controls.session],
        controls.status,
        api_name="adaptation_after_classify",  # the name /adaptation is the public event's
        api_visibility="private",
    )
    _adaptation_events(handlers, controls)
    return inputs


def example_classifier(handlers: AppHandlers) -> Any:
    """What an example photo shows (S^3, vanilla CLIP, the per-class table and the projection): the classify
    request with the example's form, without abstention, multi-label or adaptation."""

    def classify_example(image: Any, labels: Any, space: Any, metric: Any, synonyms: Any, top_k: Any) -> tuple:
        return handlers.classify(image, labels, space, metric, synonyms, top_k)[:4]

    return classify_example


def _examples(handlers: AppHandlers, form: list[Any], outputs: list[Any]) -> gr.Examples:
    """The example photos, their results cached lazily: computed the first time anyone picks one, then served from
    Gradio's cache (``.gradio/cached_examples``, or ``GRADIO_EXAMPLES_CACHE``) to everyone. Lazily, so building or
    launching the app computes nothing (no model run before the first request, nothing in tests); eager caching
    would classify every photo at start-up, before the Space answers. Picking an example also sets the hidden
    columns (space, metric, synonyms table, top k) to the values its results were computed with. Gradio keys the
    cache by the examples' place in the app, not by the model: a Space starts with an empty one at every restart, but
    a local run that keeps its folder must delete it after changing ``S3_MODEL`` or ``S3_SPACE``."""
    space = handlers.settings.default_space
    labels = "" if space else EXAMPLE_LABELS  # a Space built for a synonym space shows its classes
    rows = [[p, labels, space, DEFAULT_METRIC, EXAMPLE_SYNONYMS, DEFAULT_TOP_K] for p in example_photos()]
    with contextlib.redirect_stdout(io.StringIO()) as said:  # Gradio prints where it will cache: the log says it
        examples = gr.Examples(
            rows,
            inputs=form,
            outputs=outputs,
            fn=gpu(example_classifier(handlers)),
            cache_examples=True,
            cache_mode="lazy",
            preprocess=False,  # as the classify event: the handler decodes the image and reads the table itself
            visible_columns=[0] if space else [0, 1],
            label="Example photos (results for the settings they fill in)",
        )
    if said.getvalue().strip():
        logger.info("%s", " ".join(said.getvalue().split()))
    return examples


def _adaptation_events(handlers: AppHandlers, controls: ScoreControls) -> None:
    """The status follows the toggle (``/adaptation`` for a client: its own session's status); reset drops the
    session's state."""
    controls.adapt.change(
        handlers.adaptation, [controls.adapt, controls.session], controls.status, api_name="adaptation"
    )
    controls.reset.click(
        handlers.reset_adaptation, controls.adapt, [controls.session, controls.status], api_name="reset_adaptation"
    )


def _segmentation(handlers: AppHandlers, inputs: Inputs) -> None:
    """The segmentation part, over the same form: the overlay and, per class present, its share and concept."""
    with gr.Accordion("Segmentation: every pixel against the class spaces", open=False):
        with gr.Row():
            variant = gr.Dropdown(
                VARIANTS, value=DEFAULT_DENSE_VARIANT, label="Dense variant (last block, no training)"
            )
            button = gr.Button("Segment", variant="primary", elem_id="segment")
        with gr.Row():
            seg_image = gr.Image(label="Segmentation (legend on the right)", type="pil", elem_id="seg-result")
            seg_rows = gr.Dataframe(
                headers=["class", "area", "mean score", "matched concept"], label="Per class", interactive=False
            )
    button.click(
        gpu(handlers.segment),
        [*inputs.classes(), variant],
        [seg_image, seg_rows],
        api_name="segment",
        preprocess=False,
    )


def create_app(engine: S3Engine, settings: AppSettings) -> gr.Blocks:
    """The Gradio app over ``engine`` within ``settings``: classification (S^3 next to vanilla CLIP) and
    segmentation of one image. Serve it with ``app.launch(**settings.launch_options())``.

    Args:
        engine: the engine every request scores with.
        settings: the app's bounds, allow-list and default space.
    """
    handlers = AppHandlers(engine, settings)
    with gr.Blocks(title="S^3 zero-shot classification") as app:
        gr.Markdown(
            "# S^3: Synonymous Semantic Space\nCLIP compares an image with one text per class; S^3 compares it "
            "with a *space* of synonymous concepts per class, pruned by persistence, and scores the image "
            f"against the centre of the part of the space nearest to it. Model: `{settings.model}`."
        )
        inputs = _classification(handlers)
        _segmentation(handlers, inputs)
    app.queue(default_concurrency_limit=settings.concurrency, max_size=QUEUE_SIZE)
    return app


def load_engine(settings: AppSettings) -> S3Engine:
    """The engine of ``settings.model``, loaded once at start-up (it caches spaces across requests)."""
    try:
        return S3Engine.from_pretrained(settings.model)
    except S3Error as err:
        raise AppSettingsError(
            f"{err}\nSet S3_MODEL to a Hub id you can download or to a local CLIP folder (config.json, "
            "model.safetensors, tokenizer, preprocessor_config.json or processor_config.json)."
        ) from err


def launch(engine: S3Engine | None = None, settings: AppSettings | None = None, **launch_options: Any) -> gr.Blocks:
    """Serve the app: the settings and engine the environment gives unless passed; a bad setting or a model that
    cannot be loaded stops the process with its message.

    Args:
        engine: the engine (default: ``settings.model``, loaded here).
        settings: the settings (default: :meth:`AppSettings.from_env`).
        **launch_options: passed to ``Blocks.launch`` over the settings' own (the upload bound).
    """
    try:
        settings = settings or AppSettings.from_env()
        engine = engine or load_engine(settings)
    except S3Error as err:
        raise SystemExit(str(err)) from err
    app = create_app(engine, settings)
    app.launch(**{**settings.launch_options(), **launch_options})
    return app


def main() -> None:
    """The Space's entry point: :func:`launch` with everything from the environment."""
    launch()


__all__ = [
    "DEFAULT_TOP_K",
    "EXAMPLE_LABELS",
    "EXAMPLE_SYNONYMS",
    "Inputs",
    "ScoreControls",
    "create_app",
    "example_classifier",
    "example_photos",
    "launch",
    "load_engine",
    "main",
]
