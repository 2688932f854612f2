"""The app's requests, classify and segment (and the session's adaptation: its status and reset): the form read by
:mod:`s3_hf.app.inputs`, everything scored and ranked by the engine (and :mod:`s3_hf.space.scoring`), the session's
TS^3 state kept by :mod:`s3_hf.app.adaptation`, failures turned into messages by :mod:`s3_hf.app.spaces`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import gradio as gr
import torch
from PIL import Image

from s3_hf.app.adaptation import SessionAdaptation, adapt, adaptation_status
from s3_hf.app.figures import detail_rows, projection_figure
from s3_hf.app.inputs import (
    SpaceChoice,
    parse_abstain,
    parse_checkbox,
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
from s3_hf.engine import ClassScores, Prediction, Resolved, S3Engine, rank
from s3_hf.engine.results import NONE_OF_THESE, check_abstain_labels
from s3_hf.errors import InvalidConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Classes drawn in the projection plot (the top-ranked ones).
PLOT_CLASSES = 4
ADAPT_NAME = "Adapt over this session's images"
MULTI_LABEL_NAME = "Multi-label"


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


@dataclass(frozen=True)
class Ranking:
    """How the form asks the classes to be ranked (the engine's :func:`~s3_hf.engine.rank` options)."""

    abstain_threshold: float | None = None
    multi_label: bool = False


def shown(ranked: list[Prediction], k: int) -> dict[str, float]:
    """The top ``k`` classes of a ranking, after the abstention entry when there is one (as the pipeline's
    ``top_k`` keeps it)."""
    extra = 1 if ranked and ranked[0].label == NONE_OF_THESE else 0
    return {r.label: r.score for r in ranked[: k + extra]}


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
        self,
        image: Any,
        labels_text: Any,
        space_id: Any,
        metric: Any,
        synonyms_table: Any,
        top_k: Any,
        abstain: Any = None,
        multi_label: Any = False,
        adapting: Any = False,
        session: SessionAdaptation | None = None,
    ) -> tuple[dict[str, float], dict[str, float], list[list[Any]], Figure, SessionAdaptation | None]:
        """S^3 (adapted over the session's images when ``adapting``) and vanilla CLIP side by side, per-class
        details and the projection plot of the static space, and the session's next adaptation state."""
        engine = self.engine
        picture = prepare_image(image, engine.encoder.decode_min_side(), self.settings.max_side)
        form = self.read_form(labels_text, space_id, metric, synonyms_table)
        k = parse_top_k(top_k)
        ranking = Ranking(parse_abstain(abstain), parse_checkbox(multi_label, MULTI_LABEL_NAME))
        adapting = parse_checkbox(adapting, ADAPT_NAME)
        with user_errors(form.choice, "classification"):
            options = self._options(form)
            s3_req = engine.request(metric=form.metric, **options)
            s3_res = engine.resolve(s3_req)
            clip_res = engine.resolve(engine.request(metric="label", **options))
            check_abstain_labels(s3_res.labels, ranking.abstain_threshold)
            vs = engine.encode_pixels(engine.image_inputs([picture]))
            static = engine.scores(vs, s3_res, details=True)
            s3_out = static
            if adapting:
                self._check_adaptable(s3_res)
                logits, session = adapt(engine, s3_req, vs, session)
                s3_out = ClassScores(logits, scoring=static.scoring)
            s3 = self._rank(s3_out, vs, s3_res, ranking)
            clip = self._rank(engine.scores(vs, clip_res), vs, clip_res, ranking)
            table = self._rank(static, vs, s3_res, Ranking(multi_label=ranking.multi_label), details=True)
        space, v = s3_res.space, vs[0].float()
        top_classes = [space.labels.index(r.label) for r in table[:PLOT_CLASSES]]
        return (
            shown(s3, k),
            shown(clip, k),
            detail_rows(space, table[:k], v),
            projection_figure(space, top_classes, v),
            session,
        )

    def _rank(
        self, out: ClassScores, vs: torch.Tensor, resolved: Resolved, ranking: Ranking, details: bool = False
    ) -> list[Prediction]:
        """The engine's ranking of the (only) image, with the label-free baseline ``multi_label`` needs for a
        softmax family."""
        engine = self.engine
        if ranking.multi_label and out.scoring == "softmax":
            baseline = engine.label_free.logits(vs, resolved.space, engine.logit_scale, engine.logit_bias)
            out = replace(out, baseline=baseline)
        return rank(
            out,
            0,
            resolved,
            details=details,
            abstain_threshold=ranking.abstain_threshold,
            multi_label=ranking.multi_label,
        )

    def _check_adaptable(self, resolved: Resolved) -> None:
        """A space with more classes than the Space's label bound would make a session's state larger than the
        app's memory bound (see :mod:`s3_hf.app.settings`)."""
        n, bound = len(resolved.labels), self.settings.max_labels
        if n > bound:
            raise InvalidConfigError(
                f"Adaptation keeps a state per class for each session; this Space adapts over at most {bound} "
                f"classes, and these are {n}. Turn adaptation off, or pick fewer classes (type them as labels)."
            )

    def adaptation(self, adapting: Any = True, session: SessionAdaptation | None = None) -> str:
        """The session's adaptation status: on or off, the images seen, and whether it just started afresh."""
        return adaptation_status(session, parse_checkbox(adapting, ADAPT_NAME))

    def reset_adaptation(self, adapting: Any = True) -> tuple[None, str]:
        """Forget the session's images: its next one is scored as the first of a fresh stream."""
        return None, f"Reset: this session's adaptation state was dropped. {self.adaptation(adapting, None)}"

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


__all__ = ["ADAPT_NAME", "MULTI_LABEL_NAME", "PLOT_CLASSES", "AppHandlers", "Form", "Ranking", "class_options", "shown"]
