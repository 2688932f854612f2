"""The app's two requests, classify and segment: the form read by :mod:`s3_hf.app.inputs`, everything scored by
the engine (and :mod:`s3_hf.space.scoring`), failures turned into messages by :mod:`s3_hf.app.spaces`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr
import torch
from PIL import Image

from s3_hf.app.figures import detail_rows, projection_figure
from s3_hf.app.inputs import (
    SpaceChoice,
    parse_labels,
    parse_metric,
    parse_space,
    parse_synonyms,
    parse_top_k,
    parse_variant,
    prepare_image,
)
from s3_hf.app.settings import AppSettings
from s3_hf.app.spaces import HubSpaces, user_errors
from s3_hf.engine import S3Engine, rank

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Classes drawn in the projection plot (the top-ranked ones).
PLOT_CLASSES = 4


@dataclass(frozen=True)
class Form:
    """The classes part of the form, read: the space chosen (or None) and the engine's class options."""

    choice: SpaceChoice | None
    metric: str
    options: dict[str, Any]


def class_options(labels: list[str], choice: SpaceChoice | None, table: dict[str, list[str]] | None) -> dict[str, Any]:
    """The engine's class options from the form: typed labels with the synonyms table's rows for them, or a space.
    Raises ``gr.Error`` when there are no classes."""
    if not labels and choice is None:
        raise gr.Error("No classes: type some labels (comma-separated) or enter a synonym space's Hub repo id.")
    kwargs: dict[str, Any] = {"candidate_labels": labels or None}
    if choice is None:
        # rows for labels that are not among the classes are ignored: the table often outlives a label edit
        syn = {k2: v for k2, v in (table or {}).items() if k2 in labels}
        kwargs["synonyms"] = syn or None
        kwargs["templates"] = "imagenet7"
    return kwargs


class AppHandlers:
    """The app's event handlers over one engine and its settings.

    Args:
        engine: the engine every request scores with (it caches spaces across requests).
        settings: the app's bounds and allow-list.
        hub_spaces: where Hub spaces are downloaded (default: within ``settings.max_space_mb``).
    """

    def __init__(self, engine: S3Engine, settings: AppSettings, hub_spaces: HubSpaces | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.hub_spaces = hub_spaces or HubSpaces(settings.max_space_bytes)

    def read_form(self, labels_text: Any, space_id: Any, metric: Any, synonyms_table: Any) -> Form:
        """The classes, space and metric of a request, checked."""
        labels = parse_labels(labels_text, self.settings)
        choice = parse_space(space_id, self.settings)
        metric = parse_metric(metric)
        return Form(choice, metric, class_options(labels, choice, parse_synonyms(synonyms_table, self.settings)))

    def _options(self, form: Form) -> dict[str, Any]:
        """The form's class options with its space located (downloaded when it is a Hub repo)."""
        if form.choice is None:
            return form.options
        choice = form.choice
        location = self.hub_spaces.folder(choice.location) if choice.hub else choice.location
        return {**form.options, "synonym_space": location}

    def classify(
        self, image: Any, labels_text: Any, space_id: Any, metric: Any, synonyms_table: Any, top_k: Any
    ) -> tuple[dict[str, float], dict[str, float], list[list[Any]], Figure]:
        """S^3 and vanilla CLIP side by side, per-class details, and the projection plot."""
        engine = self.engine
        picture = prepare_image(image, engine.encoder.decode_min_side(), self.settings.max_side)
        form = self.read_form(labels_text, space_id, metric, synonyms_table)
        k = parse_top_k(top_k)
        with user_errors(form.choice, "classification"):
            options = self._options(form)
            s3_req = engine.resolve(engine.request(metric=form.metric, **options))
            clip_req = engine.resolve(engine.request(metric="label", **options))
            vs = engine.encode_pixels(engine.image_inputs([picture]))
            s3 = rank(engine.scores(vs, s3_req, details=True), 0, s3_req, details=True)
            clip = rank(engine.scores(vs, clip_req), 0, clip_req)
        space = s3_req.space
        v = vs[0].float()
        top_classes = [space.labels.index(r.label) for r in s3[:PLOT_CLASSES]]
        return (
            {r.label: r.score for r in s3[:k]},
            {r.label: r.score for r in clip[:k]},
            detail_rows(space, s3[:k], v),
            projection_figure(space, top_classes, v),
        )

    def matched_concepts(self, image: Image.Image, ids: torch.Tensor, resolved: Any, variant: str) -> dict[int, str]:
        """Per class present in the label map ``ids``, the concept of its space nearest to the class's pooled dense
        features (one pass over the image at the model's window size), as the engine scores it."""
        import torch.nn.functional as F

        from s3_hf.segmentation.logits import image_pixels

        encoder = self.engine.encoder
        mean, std = encoder.pixel_stats()
        pixels = image_pixels(image, mean, std, 224)
        p = encoder.patch_size
        pixels = pixels[:, : pixels.shape[1] // p * p, : pixels.shape[2] // p * p]
        feats = encoder.dense_features(pixels[None], variant)[0]  # (gh, gw, D)
        small = F.interpolate(ids[None, None].float(), size=feats.shape[:2], mode="nearest")[0, 0].long()
        pooled, classes = [], []
        for c in (int(c) for c in torch.unique(ids)):
            inside = feats[small.to(feats.device) == c]
            if len(inside):
                pooled.append(F.normalize(inside.mean(0), dim=-1))
                classes.append(c)
        if not pooled:
            return {}
        out = self.engine.scores(torch.stack(pooled), resolved, details=True)
        found = {}
        for row, c in enumerate(classes):
            ranked = rank(out, row, resolved, details=True)
            found[c] = next(r.details["matched_concept"] for r in ranked if r.label == resolved.labels[c])
        return found

    def segment(
        self, image: Any, labels_text: Any, space_id: Any, metric: Any, synonyms_table: Any, variant: Any
    ) -> tuple[Image.Image, list[list[Any]]]:
        """Open-vocabulary segmentation: the overlay with a legend and, per class present, its area, mean score and
        the concept of its space that matched."""
        from s3_hf.segmentation.label_maps import class_masks
        from s3_hf.segmentation.options import SegmentOptions
        from s3_hf.segmentation.render import overlay

        picture = prepare_image(image, SegmentOptions().short_side, self.settings.max_side)
        form = self.read_form(labels_text, space_id, metric, synonyms_table)
        variant = parse_variant(variant)
        engine = self.engine
        with user_errors(form.choice, "segmentation"):
            request = engine.request(metric=form.metric, **self._options(form))
            seg = engine.segment(picture, request, SegmentOptions(variant=variant))
            concepts = self.matched_concepts(picture, seg.label_map, engine.resolve(request), variant)
        area = seg.label_map.numel()
        rows = []
        for r in class_masks(seg.logits, seg.labels, seg.label_map):
            c = seg.labels.index(r["label"])
            share = float((seg.label_map == c).sum()) / area
            rows.append([r["label"], f"{share:.1%}", round(r["score"], 4), concepts.get(c, "–")])
        return overlay(picture, seg.label_map, seg.labels), rows


__all__ = ["PLOT_CLASSES", "AppHandlers", "Form", "class_options"]
