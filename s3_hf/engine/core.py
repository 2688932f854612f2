"""The service layer under every face: one model and its processors, resolved and cached spaces and adapters, scoring.

The transformers pipeline, the CLI, the evaluation and the Gradio app all go through :class:`S3Engine`. A
request (:class:`~s3_hf.engine.requests.ClassifyRequest`) is validated when it is made, which is cheap; the work
(building or loading a space, fitting an adapter) happens on :meth:`S3Engine.resolve`, once per distinct request,
and is cached under keys that cannot go stale (:mod:`s3_hf.engine.keys`): objects are held by the cache they key,
files are keyed by their content, and folders by the size and modification time of their files, so a space rebuilt
on disk is reloaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import torch

from s3_hf.engine.adapters import check_adapter, fit_adapter
from s3_hf.engine.cache import LRU, MAX_CACHED
from s3_hf.engine.keys import Ref, is_adapter_location, saved_space_key, support_key, support_stamp
from s3_hf.engine.label_free import LabelFreeBaseline
from s3_hf.engine.requests import (
    ClassifyRequest,
    NamesRequest,
    SpaceRequest,
    classify_request,
    method_spec,
    names_request,
    space_request,
)
from s3_hf.engine.results import ClassScores, Prediction, Resolved, Segmentation, SpaceSelection, class_scores, rank
from s3_hf.engine.spaces import build_requested_space
from s3_hf.errors import InvalidConfigError, InvalidLabelsError
from s3_hf.fewshot import SSPAdapter, SSPConfig
from s3_hf.models.encoders import Encoder, as_encoder
from s3_hf.models.families import FamilyInfo, check_supported
from s3_hf.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCEPT_FORMAT,
    DEFAULT_PAMR_DILATIONS,
    DEFAULT_TEXT_VECTOR,
    check_metric,
)
from s3_hf.space.artifact import SynonymSpace
from s3_hf.space.build import build_synonym_space

if TYPE_CHECKING:
    from s3_hf.engine.stream import TS3Stream
    from s3_hf.segmentation.names import NameQueries
    from s3_hf.segmentation.options import SegmentOptions


def check_dual_encoder(model: Any) -> None:
    """Raise :class:`~s3_hf.errors.UnsupportedModelError` unless ``model`` is a dual encoder the engine can
    score with: an :class:`~s3_hf.models.encoders.Encoder`, or a transformers family S^3 serves, with text and image
    features and a logit scale (or temperature)."""
    if not isinstance(model, Encoder):
        check_supported(model)


class S3Engine:
    """A dual encoder with its processors, the spaces and adapters resolved for it, and scoring.

    Args:
        model: a transformers dual encoder of a supported family (see :mod:`s3_hf.models.families`), or an
            :class:`~s3_hf.models.encoders.Encoder` (such as an open_clip checkpoint).
        tokenizer: the transformers model's tokenizer (``None`` with an ``Encoder``).
        image_processor: the transformers model's image processor (``None`` with an ``Encoder``).
        name: the checkpoint name recorded in spaces built here (default: the model's ``name_or_path``).
        max_cached: spaces and adapters kept, each (least recently used dropped first).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        image_processor: Any = None,
        *,
        name: str | None = None,
        max_cached: int = MAX_CACHED,
    ) -> None:
        self.encoder: Encoder = as_encoder(model, tokenizer, image_processor)
        if name:
            self.encoder.name = name
        self._spaces = LRU(max_cached)
        self._adapters = LRU(max_cached)
        self._warned_adapters: set[int] = set()
        #: The label-free caption ``multi_label`` compares a softmax family's classes with (encoded on first use).
        self.label_free = LabelFreeBaseline(self.encoder)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | None = "auto",
        dtype: str | torch.dtype | None = None,
        revision: str | None = None,
    ) -> S3Engine:
        """Load a checkpoint with :func:`s3_hf.models.encoders.load_encoder`: a transformers Hub id or folder, or an
        open_clip ``hf-hub:org/name`` id or folder.

        Args:
            name_or_path: a Hub repo id or a local checkpoint folder.
            device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``, ...
            dtype: torch dtype or its name; default float32.
            revision: the Hub revision.
        """
        from s3_hf.models.encoders import load_encoder

        return cls(load_encoder(name_or_path, device=device, dtype=dtype, revision=revision))

    # ------------------------------------------------------------------------------------------ model facts
    @property
    def model(self) -> Any:
        return self.encoder.model

    @property
    def tokenizer(self) -> Any:
        return self.encoder.tokenizer

    @property
    def image_processor(self) -> Any:
        return self.encoder.image_processor

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def family(self) -> FamilyInfo:
        return self.encoder.family

    @property
    def random_weights(self) -> bool:
        return self.encoder.random_weights

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    @property
    def logit_scale(self) -> float:
        """``τ``: ``exp(logit_scale)``, or ``1 / temperature`` for ALIGN and TIPSv2."""
        return self.encoder.logit_scale

    @property
    def logit_bias(self) -> float:
        """``b``, the model's logit bias (0 for families without one)."""
        return self.encoder.logit_bias

    # ------------------------------------------------------------------------------------------- requests
    def request(
        self,
        candidate_labels: Sequence[str] | None = None,
        *,
        synonyms: Any = None,
        synonym_space: SynonymSpace | str | os.PathLike | None = None,
        templates: str | Sequence[str] | None = None,
        hypothesis_template: str | None = None,
        concept_format: str = DEFAULT_CONCEPT_FORMAT,
        metric: str | None = None,
        knn_k: int | None = None,
        support: Any = None,
        fewshot: SSPConfig | Mapping[str, Any] | None = None,
        text_vector: str = DEFAULT_TEXT_VECTOR,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
        canonicalization: str | None = None,
        method: str = "s3",
        descriptors: Any = None,
        prompts: Any = None,
        waffle: Mapping[str, Any] | None = None,
        **space_options: Any,
    ) -> ClassifyRequest:
        """Validate the options of a classification and return them as a request (cheap: nothing is built).

        Args:
            candidate_labels: the classes; with ``synonym_space`` an optional subset of its classes.
            synonyms: ``{label: [synonym, ...]}``, a JSON/YAML file or a :class:`~s3_hf.synonyms.SynonymSource`.
            synonym_space: a :class:`SynonymSpace`, a folder or a Hub repo id (fixes synonyms and templates).
            templates: prompt templates or a named set (``"imagenet80"``); default: the method's own.
            hypothesis_template: one template, as in transformers' pipeline.
            concept_format: the structured template of synonyms, ``"{concept}, which is a {label}"``.
            metric: a point-to-space metric (default: the space's own, ``local_center``).
            knn_k: ``k`` of ``local_center_knn`` (default: the space's own).
            support: few-shot support: an image folder, a dataset, ``(image, label)`` pairs or an adapter (or its id).
            fewshot: :class:`~s3_hf.fewshot.SSPConfig` or a dict of its options.
            text_vector: the class text vector SSP builds on, ``"global_center"`` or ``"label"``.
            tokenizer_kwargs: extra tokenizer arguments used when texts are encoded (part of the cache key).
            canonicalization: rewrite prompts before tokenising: ``None`` (as written) or ``"lower_no_punct"``.
            method: ``"s3"`` (default) or a baseline of :mod:`s3_hf.baselines`: ``"cupl"``, ``"dclip"``, ``"waffle"``.
            descriptors: visual descriptors per class, ``{label: [...]}``, a JSON file or ``True`` (from the source).
            prompts: CuPL's prompts per class, ``{label: [...]}`` or its JSON file (``"cupl"``).
            waffle: WaffleCLIP's options ``{"count": 15, "seed": 0, "concept": None}`` (``"waffle"``).
            **space_options: ``radius``, ``gap_ratio``, ``min_points``, ``max_dim`` (see :class:`SpaceParams`).
        """
        spec = method_spec(method, descriptors=descriptors, prompts=prompts, waffle=waffle, synonyms=synonyms)
        space = space_request(
            candidate_labels,
            synonym_space,
            synonyms=synonyms,
            templates=templates,
            hypothesis_template=hypothesis_template,
            concept_format=concept_format,
            tokenizer_kwargs=tokenizer_kwargs,
            canonicalization=canonicalization,
            method=spec,
            space_options=space_options,
        )
        return classify_request(
            space, metric=metric, knn_k=knn_k, support=support, fewshot=fewshot, text_vector=text_vector
        )

    def names_request(
        self,
        queries: NameQueries,
        *,
        templates: str | Sequence[str] | None = None,
        hypothesis_template: str | None = None,
        pamr_steps: int = 0,
        pamr_dilations: Sequence[int] = DEFAULT_PAMR_DILATIONS,
    ) -> NamesRequest:
        """Validate a segmentation by the references' multi-name rule and return it as a request (cheap).

        Args:
            queries: the class names as the references query them (:class:`~s3_hf.segmentation.names.NameQueries`).
            templates: prompt templates of the names (default ``"This is a photo of {}."``).
            hypothesis_template: one template, as in transformers' pipeline.
            pamr_steps: PAMR's refinement steps on the name cosines (0: none).
            pamr_dilations: PAMR's dilations.
        """
        return names_request(
            queries,
            templates=templates,
            hypothesis_template=hypothesis_template,
            pamr_steps=pamr_steps,
            pamr_dilations=pamr_dilations,
        )

    # ---------------------------------------------------------------------------------------------- spaces
    def space(self, request: SpaceRequest | ClassifyRequest | None = None, /, **options: Any) -> SpaceSelection:
        """The space (built or loaded once) and the requested classes in it.

        Pass a request, or the options of :meth:`request` (``candidate_labels=``, ``synonyms=``,
        ``synonym_space=``, ``templates=``, ...).
        """
        if request is None:
            request = self.request(**options).space
        elif options:
            raise InvalidConfigError("Pass either a request or options, not both.")
        if isinstance(request, ClassifyRequest):
            request = request.space
        if request.synonym_space is None:
            build = partial(build_requested_space, self.encoder, request, self.name or None)
            space = self._spaces.get(("build", request), build)
            return SpaceSelection(space, tuple(range(space.num_classes)))
        space = self._load_space(request.synonym_space)
        if request.labels is None:
            return SpaceSelection(space, tuple(range(space.num_classes)))
        position = space.label_positions()
        missing = [lab for lab in request.labels if lab not in position]
        if missing:
            raise InvalidLabelsError(
                f"Labels {missing[:10]} are not classes of the synonym space (which has {space.num_classes} "
                f"classes, e.g. {space.labels[:5]}). Drop them, or build a new space that includes them."
            )
        return SpaceSelection(space, tuple(position[lab] for lab in request.labels))

    def build_space(
        self,
        labels: Sequence[str],
        synonyms: Any = None,
        *,
        templates: str | Sequence[str] | None = None,
        progress: bool = False,
        **options: Any,
    ) -> SynonymSpace:
        """Build a space with this engine's model (uncached; see :func:`s3_hf.space.build.build_synonym_space`)."""
        return build_synonym_space(
            self.encoder,
            None,
            labels,
            synonyms,
            templates=templates,
            base_model=options.pop("base_model", None) or self.name or None,
            progress=progress,
            **options,
        )

    def _load_space(self, synonym_space: SynonymSpace | str | os.PathLike) -> SynonymSpace:
        def load() -> SynonymSpace:
            space = (
                synonym_space
                if isinstance(synonym_space, SynonymSpace)
                else SynonymSpace.from_pretrained(synonym_space)
            )
            space.check_model(self.encoder)
            return space

        return self._spaces.get(saved_space_key(synonym_space), load)

    # -------------------------------------------------------------------------------------------- adapters
    def adapter(
        self,
        selection: SpaceSelection,
        support: Any,
        metric: str,
        knn_k: int,
        fewshot: SSPConfig | None = None,
        text_vector: str = DEFAULT_TEXT_VECTOR,
    ) -> SSPAdapter:
        """The few-shot adapter for ``support`` on ``selection`` (fitted, or loaded from its files, once)."""
        skey = support_key(support)
        if isinstance(support, str | os.PathLike) and is_adapter_location(support):
            support = self._adapters.get((skey, support_stamp(skey)), lambda: SSPAdapter.from_pretrained(support))
        if isinstance(support, SSPAdapter):
            return check_adapter(support, selection, metric, self._warned_adapters)
        self.encoder.require_patch_tokens()
        config = fewshot or SSPConfig()
        stamp = support_stamp(skey)
        key = ("fit", Ref(selection.space), selection.index, metric, knn_k, skey, stamp, config, text_vector)
        scale = self.logit_scale
        return self._adapters.get(
            key, partial(fit_adapter, self.encoder, selection, support, metric, knn_k, scale, config, text_vector)
        )

    # ---------------------------------------------------------------------------------------------- resolve
    def resolve(self, request: ClassifyRequest) -> Resolved:
        """Build or load what ``request`` needs (each cached) and return it. A folder changed on disk is reloaded."""
        selection = self.space(request.space)
        config = selection.space.config
        metric = check_metric(request.metric or config.metric)
        k = request.knn_k or config.knn_k
        adapter = None
        if request.support is not None:
            adapter = self.adapter(selection, request.support, metric, k, request.fewshot, request.text_vector)
        return Resolved(selection, metric, k, adapter)

    def clear_cache(self) -> None:
        """Forget every cached space and adapter."""
        for cache in (self._spaces, self._adapters):
            cache.clear()

    # ---------------------------------------------------------------------------------------------- scoring
    def load_image(self, image: Any, fast: bool = True, timeout: float | None = None) -> Any:
        """Read an image (path, URL, base64, bytes-backed or PIL) as an upright RGB PIL image. ``fast``: JPEG data
        decoded at the smallest DCT scale that still covers the model's resize target (not pixel-identical to a
        full decode; see the README, section Images); ``False``: every pixel, exactly as transformers reads it."""
        from s3_hf.io.images import load_image

        return load_image(image, timeout=timeout, min_side=self.encoder.decode_min_side() if fast else None)

    def image_inputs(self, images: Sequence[Any]) -> dict[str, torch.Tensor]:
        """RGB PIL images -> the model's preprocessed image inputs."""
        return self.encoder.image_inputs(images)

    def encode_pixels(self, pixel_values: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Preprocessed images (``pixel_values`` or all image inputs) -> ``(B, D)`` unit image embeddings."""
        return self.encoder.encode_pixels(pixel_values)

    def encode_images(
        self,
        images: Sequence[Any],
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool = False,
        *,
        fast: bool = False,
        workers: int | None = None,
    ) -> torch.Tensor:
        """Images (paths, URLs or PIL) -> ``(N, D)`` unit image embeddings. ``fast``: reduced-size JPEG decoding
        (:meth:`load_image`); ``workers``: image worker threads (``None``: the device's default, see
        :mod:`s3_hf.io.parallel`; they change the time, never the result)."""
        return self.encoder.encode_images(images, batch_size=batch_size, progress=progress, fast=fast, workers=workers)

    def scores(
        self, v: torch.Tensor, resolved: Resolved, details: bool = False, multi_label: bool = False
    ) -> ClassScores:
        """Logits ``τ · s_c(v) + b`` (plus the few-shot terms) of unit image vectors ``v`` for the requested
        classes, with the family's scoring rule; with ``multi_label``, a softmax family's label-free ``baseline``."""
        out = class_scores(v, resolved, self.logit_scale, details, self.logit_bias, self.family.scoring)
        if multi_label and out.scoring == "softmax":
            out.baseline = self.label_free.logits(v, resolved.space, self.logit_scale, self.logit_bias)
        return out

    def classify(
        self,
        images: Sequence[Any],
        request: ClassifyRequest,
        *,
        top_k: int | None = None,
        details: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool = False,
        tta: Any = None,
        abstain_threshold: float | None = None,
        multi_label: bool = False,
    ) -> list[list[Prediction]]:
        """Classify images: per image the classes ranked by probability (the pipeline's output, typed).

        Args:
            images: paths, URLs or PIL images.
            request: what to score against (:meth:`request`).
            top_k, details: keep the ``top_k`` best classes; add per-concept details.
            tta: ``"zero"`` or a :class:`~s3_hf.tta.ZeroConfig`: ZERO-S^3's vote over augmented views (stateless,
                about ``views`` times the encoder's compute); TS^3 is a stream (:meth:`stream`).
            abstain_threshold, multi_label: as the pipeline's (see :func:`~s3_hf.engine.results.rank`).
        """
        from s3_hf.engine.classify import classify_images

        resolved = self.resolve(request)
        options = {"tta": tta, "abstain_threshold": abstain_threshold, "multi_label": multi_label}
        return classify_images(
            self, images, resolved, top_k=top_k, details=details, batch_size=batch_size, progress=progress, **options
        )

    def stream(
        self,
        candidate_labels: Sequence[str] | SynonymSpace | ClassifyRequest | None = None,
        *,
        tta: Any = None,
        **options: Any,
    ) -> TS3Stream:
        """An explicit test-time adaptation stream (TS^3) over these classes: call it on images in order.

        Args:
            candidate_labels: the classes, a :class:`SynonymSpace`, or a request from :meth:`request`.
            tta: a :class:`~s3_hf.tta.TS3Config` (default: its defaults).
            options: :meth:`request` options (``synonyms=``, ``synonym_space=``, ``metric=``, ...).
        """
        from s3_hf.engine.stream import TS3Stream
        from s3_hf.tta import TS3Config

        if isinstance(candidate_labels, SynonymSpace):
            candidate_labels, options = None, {**options, "synonym_space": candidate_labels}
        if not isinstance(candidate_labels, ClassifyRequest):
            candidate_labels = self.request(candidate_labels, **options)
        return TS3Stream(self, candidate_labels, TS3Config() if tta is None else tta)

    def segment(self, image: Any, request: ClassifyRequest, options: Any = None) -> Segmentation:
        """Open-vocabulary segmentation of one image (a path, URL or PIL image) against the classes of ``request``
        (see :mod:`s3_hf.segmentation.logits`); ``options`` a :class:`~s3_hf.segmentation.options.SegmentOptions`."""
        from s3_hf.io.images import load_image, original_size
        from s3_hf.segmentation.label_maps import label_map, require_background
        from s3_hf.segmentation.logits import segment_logits
        from s3_hf.segmentation.options import SegmentOptions

        options = options or SegmentOptions()
        resolved = self.resolve(request)
        if resolved.adapter is not None:
            raise InvalidConfigError("Few-shot support applies to classification only; drop support= to segment.")
        self.encoder.require_dense_features()
        require_background(resolved.labels, options.background_threshold, options.background_index)
        min_side = options.short_side if options.fast_decode else None
        picture = load_image(image, min_side=min_side)
        logits = segment_logits(self, picture, resolved, options)
        size = original_size(picture)  # a JPEG decoded at reduced size is labelled at its full size
        labels = label_map(logits, resolved.labels, options.background_threshold, size, options.background_index)
        return Segmentation(resolved.labels, logits, labels)

    def segment_names(self, image: Any, request: NamesRequest, options: SegmentOptions | None = None) -> Segmentation:
        """Segmentation of one image (a path, URL or PIL image) by the references' multi-name rule: every name of
        ``request.queries`` scored by its cosine over the windows, then :func:`~s3_hf.segmentation.names.names_segment`
        (softmax over all names, max over each class's, the options' thresholds and background, PAMR when the request
        asks). The result has no logits: the rule gives a label map, not a probability per class.

        Args:
            image: a path, URL or PIL image.
            request: from :meth:`names_request`.
            options: the dense options and the rule's values (:class:`~s3_hf.segmentation.options.SegmentOptions`).
        """
        from s3_hf.io.images import load_image, original_size
        from s3_hf.segmentation.names import names_segment
        from s3_hf.segmentation.options import SegmentOptions

        options = options or SegmentOptions()
        resolved = self.resolve(request.names)  # the names' texts are encoded once, then cached
        self.encoder.require_dense_features()
        picture = load_image(image, min_side=options.short_side if options.fast_decode else None)
        size = original_size(picture)  # a JPEG decoded at reduced size is labelled at its full size
        steps, dilations = request.pamr_steps, request.pamr_dilations
        label_ids = names_segment(self, picture, request.queries, resolved, options, size, steps, dilations)
        return Segmentation(request.queries.labels, None, label_ids)


__all__ = [
    "MAX_CACHED",
    "ClassScores",
    "ClassifyRequest",
    "Prediction",
    "Resolved",
    "S3Engine",
    "Segmentation",
    "SpaceRequest",
    "SpaceSelection",
    "check_dual_encoder",
    "class_scores",
    "rank",
]
