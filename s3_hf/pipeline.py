"""The ``s3-zero-shot-classification`` pipeline: a superset of transformers' zero-shot-image-classification."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForZeroShotImageClassification, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY, SUPPORTED_TASKS

from .artifact import SynonymSpace, same_model
from .build import build_synonym_space, check_labels
from .encoding import DEFAULT_CONCEPT_FORMAT, encode_pixels, load_image, pixel_values
from .errors import InvalidConfigError, InvalidLabelsError, ModelMismatchError, S3Error, TemplateError
from .fewshot import SSP_CONFIG_NAME, SSPAdapter, SSPConfig, encode_support_images, fit_for_space, read_support
from .metrics import centre_members, check_metric, nearest_match, score
from .space import SpaceParams
from .synonyms import SynonymSource
from .templates import DEFAULT_TEMPLATE, resolve_templates

logger = logging.getLogger(__name__)

TASK = "s3-zero-shot-classification"
MAX_CACHED_SPACES = 16


def _freeze(value: Any) -> Any:
    """A hashable cache key for synonyms given as a mapping, a file, a source or nothing."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), tuple(v) if not isinstance(v, str) else (v,)) for k, v in value.items()))
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        return ("file", path, os.path.getmtime(path) if os.path.exists(path) else None)
    return ("source", id(value))


class S3ZeroShotImageClassificationPipeline(Pipeline):
    """Zero-shot image classification against synonym spaces (S^3).

    Accepts everything transformers' ``zero-shot-image-classification`` accepts (an image path, URL, PIL image
    or a list of them; ``candidate_labels``; ``hypothesis_template``) and returns the same output: per image a
    list of ``{"score", "label"}`` sorted by score. In addition:

    - ``synonyms``: ``{label: [synonym, ...]}``, a JSON/YAML file or a :class:`SynonymSource`;
    - ``synonym_space``: a :class:`SynonymSpace`, a local folder or a Hub repo id (``candidate_labels`` then
      optionally selects a subset of its classes);
    - ``templates``: a list of prompt templates or a named set (``"imagenet80"``);
    - ``metric``: one of :data:`s3_hf.metrics.METRICS` (default ``"local_center"``), ``knn_k`` for the kNN metric;
    - ``top_k``: keep the ``top_k`` best classes; ``return_details``: add per class the matched concept, the
      kept and dropped concepts and the concepts forming the centre used;
    - space options ``concept_format``, ``radius``, ``gap_ratio``, ``min_points``, ``max_dim``;
    - few-shot (SSP): ``support`` = a folder with one sub-folder of images per class, a ``datasets.Dataset``, a
      list of ``(image, label)`` pairs, a fitted :class:`~s3_hf.fewshot.SSPAdapter` or a folder it was saved to;
      ``fewshot`` = :class:`~s3_hf.fewshot.SSPConfig` or a dict of its options (``{"mode": "cache"}`` for the
      cache alone); ``text_vector`` = ``"global_center"`` (default) or ``"label"``. An empty support set gives
      exactly the zero-shot scores.

    Spaces built from labels are cached per (labels, synonyms, templates, options): text is encoded once. Fitted
    few-shot adapters are cached the same way: support images are encoded once.
    """

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for attr in ("get_image_features", "get_text_features", "logit_scale"):
            if not hasattr(self.model, attr):
                raise S3Error(
                    f"{type(self.model).__name__} is not a CLIP-style dual encoder (it has no {attr}). "
                    "Use a CLIPModel checkpoint such as openai/clip-vit-base-patch32."
                )
        self._spaces: OrderedDict[Any, Any] = OrderedDict()  # spaces and adapters, most recently used last

    def _cached(self, key: Any, make: Callable[[], Any]) -> Any:
        """The space (or adapter) under ``key``, made on first use; at most ``MAX_CACHED_SPACES`` are kept."""
        if key in self._spaces:
            self._spaces.move_to_end(key)
        else:
            self._spaces[key] = make()
            while len(self._spaces) > MAX_CACHED_SPACES:
                self._spaces.popitem(last=False)
        return self._spaces[key]

    def __call__(self, image: Any = None, candidate_labels: Sequence[str] | None = None, **kwargs: Any) -> Any:
        """Classify one image or a list of images. See the class docstring for the options."""
        if "images" in kwargs:
            image = kwargs.pop("images")
        if image is None:
            raise InvalidLabelsError("No image given: pass an image path, URL or PIL image (or a list of them).")
        if isinstance(image, list | tuple) and not image:
            return []
        return super().__call__(image, candidate_labels=candidate_labels, **kwargs)

    # ------------------------------------------------------------------------------------ space resolution
    def get_space(
        self,
        candidate_labels: Sequence[str] | None = None,
        synonyms: Any = None,
        synonym_space: SynonymSpace | str | os.PathLike | None = None,
        templates: str | Sequence[str] | None = None,
        hypothesis_template: str | None = None,
        concept_format: str = DEFAULT_CONCEPT_FORMAT,
        **space_options: Any,
    ) -> tuple[SynonymSpace, list[int]]:
        """The space to score against and the indices of the requested classes in it (built or loaded once)."""
        if synonym_space is not None:
            if synonyms is not None or templates is not None or hypothesis_template is not None:
                raise InvalidConfigError(
                    "synonym_space already fixes the synonyms and templates; do not pass synonyms=, templates= "
                    "or hypothesis_template= with it."
                )

            def load() -> SynonymSpace:
                space = (
                    synonym_space
                    if isinstance(synonym_space, SynonymSpace)
                    else SynonymSpace.from_pretrained(synonym_space)
                )
                space.check_model(self.model)
                return space

            # a SynonymSpace is keyed by identity: the cache holds it, so its id cannot be reused meanwhile
            name = id(synonym_space) if isinstance(synonym_space, SynonymSpace) else str(synonym_space)
            space = self._cached(("space", name), load)
            if candidate_labels is None:
                return space, list(range(space.num_classes))
            labels = check_labels(candidate_labels)
            position = {lab: i for i, lab in enumerate(space.labels)}
            missing = [lab for lab in labels if lab not in position]
            if missing:
                raise InvalidLabelsError(
                    f"Labels {missing[:10]} are not classes of the synonym space (which has {space.num_classes} "
                    f"classes, e.g. {space.labels[:5]}). Drop them, or build a new space that includes them."
                )
            return space, [position[lab] for lab in labels]

        if candidate_labels is None:
            raise InvalidLabelsError("Pass candidate_labels=[...] or synonym_space=... to say what the classes are.")
        if templates is not None and hypothesis_template is not None:
            raise TemplateError("Pass either hypothesis_template= or templates=, not both.")
        labels = check_labels(candidate_labels)
        tmpl = resolve_templates(templates if templates is not None else hypothesis_template or DEFAULT_TEMPLATE)
        params = SpaceParams(**space_options)
        key = ("build", tuple(labels), _freeze(synonyms), tuple(tmpl), concept_format, params)
        space = self._cached(
            key,
            lambda: build_synonym_space(
                self.model,
                self.tokenizer,
                labels,
                synonyms,
                templates=tmpl,
                concept_format=concept_format,
                params=params,
            ),
        )
        return space, list(range(len(labels)))

    def get_adapter(
        self,
        space: SynonymSpace,
        index: list[int],
        support: Any,
        metric: str,
        k: int = 3,
        fewshot: SSPConfig | Mapping[str, Any] | None = None,
        text_vector: str = "global_center",
    ) -> SSPAdapter:
        """The few-shot adapter for ``support`` on the classes ``index`` of ``space`` (fitted or loaded once)."""
        labels = [space.labels[c] for c in index]
        hub_id = isinstance(support, str) and not Path(support).exists() and support.count("/") == 1
        if isinstance(support, str | os.PathLike) and ((Path(support) / SSP_CONFIG_NAME).is_file() or hub_id):
            stamp = (Path(support) / SSP_CONFIG_NAME).stat().st_mtime if not hub_id else None
            support = self._cached(("adapter-file", str(support), stamp), lambda: SSPAdapter.from_pretrained(support))
        if isinstance(support, SSPAdapter):
            fitted_on = support.info.get("base_model")
            if fitted_on is not None and not same_model(fitted_on, space.config.base_model):
                raise ModelMismatchError(
                    f"The few-shot adapter was fitted with {fitted_on!r}, the space belongs to "
                    f"{space.config.base_model!r}: its support keys are another model's embeddings. Refit it."
                )
            fitted_metric = support.info.get("zero_shot_metric")
            if fitted_metric not in (None, metric):
                logger.warning(
                    "The few-shot adapter was tuned on top of the %r metric; scoring with %r. Pass metric=%r to "
                    "use it as fitted.",
                    fitted_metric,
                    metric,
                    fitted_metric,
                )
            if support.labels != labels:
                raise InvalidLabelsError(
                    f"The few-shot adapter was fitted for classes {support.labels[:5]}... ({support.num_classes}), "
                    f"not for the requested {labels[:5]}... ({len(labels)}). Fit one for these classes."
                )
            return support
        config = fewshot if isinstance(fewshot, SSPConfig) else SSPConfig.from_dict(dict(fewshot or {}))

        def fit() -> SSPAdapter:
            images, targets = read_support(support, labels)
            glob, local = encode_support_images(self.model, self.image_processor, images, progress=len(images) > 64)
            tau = float(self.model.logit_scale.detach().exp())
            return fit_for_space(space, index, glob, local, targets, metric, k, tau, config, text_vector)

        key = ("adapter", _Ref(space), tuple(index), metric, k, _freeze_support(support), config, text_vector)
        return self._cached(key, fit)

    # ------------------------------------------------------------------------------------ pipeline steps
    def _sanitize_parameters(
        self,
        candidate_labels: Sequence[str] | None = None,
        hypothesis_template: str | None = None,
        synonyms: Mapping[str, Sequence[str]] | str | os.PathLike | SynonymSource | None = None,
        synonym_space: SynonymSpace | str | os.PathLike | None = None,
        templates: str | Sequence[str] | None = None,
        metric: str | None = None,
        knn_k: int | None = None,
        top_k: int | None = None,
        return_details: bool = False,
        timeout: float | None = None,
        concept_format: str = DEFAULT_CONCEPT_FORMAT,
        tokenizer_kwargs: dict | None = None,
        support: Any = None,
        fewshot: SSPConfig | Mapping[str, Any] | None = None,
        text_vector: str = "global_center",
        **space_options: Any,
    ) -> tuple[dict, dict, dict]:
        unknown = set(space_options) - {"radius", "gap_ratio", "min_points", "max_dim"}
        if unknown:
            raise InvalidConfigError(f"Unknown options {sorted(unknown)} for {TASK}.")
        preprocess = {"timeout": timeout} if timeout is not None else {}
        if candidate_labels is None and synonym_space is None:
            return preprocess, {}, {}  # pipeline construction: nothing to resolve yet
        space, index = self.get_space(
            candidate_labels, synonyms, synonym_space, templates, hypothesis_template, concept_format, **space_options
        )
        metric = check_metric(metric or space.config.metric)
        k = knn_k or space.config.knn_k
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise InvalidConfigError(f"top_k must be a positive integer, got {top_k!r}.")
        adapter = None
        if support is not None:
            adapter = self.get_adapter(space, index, support, metric, k, fewshot, text_vector)
        elif fewshot is not None:
            raise InvalidConfigError("fewshot= options need a support= set of labelled images.")
        forward = {"space": space, "index": index, "metric": metric, "k": k, "details": return_details}
        forward["adapter"] = adapter
        post = {"space": space, "index": index, "top_k": top_k, "details": return_details}
        return preprocess, forward, post

    def preprocess(self, image: Any, timeout: float | None = None) -> dict[str, torch.Tensor]:
        pixels = pixel_values(self.image_processor, [load_image(image, timeout=timeout)])
        return {"pixel_values": pixels.to(self.dtype)}

    def _forward(
        self,
        model_inputs: dict[str, torch.Tensor],
        space: SynonymSpace | None = None,
        index: list[int] | None = None,
        metric: str = "local_center",
        k: int = 3,
        details: bool = False,
        adapter: SSPAdapter | None = None,
    ) -> dict[str, torch.Tensor]:
        if space is None or index is None:
            raise InvalidLabelsError("Pass candidate_labels=[...] or synonym_space=... to say what the classes are.")
        v = encode_pixels(self.model, model_inputs["pixel_values"])
        state = space.scoring_state(v.device)
        # all classes in order (the common case) need no column selection
        cols = None if len(index) == space.num_classes and index == list(range(len(index))) else index

        def select(x: torch.Tensor) -> torch.Tensor:
            return x if cols is None else x[:, torch.tensor(cols, device=x.device)]

        scores = select(score(v, state, metric, k))
        if adapter is not None:
            scores = adapter.logits(v, scores)
        out = {"logits": self.model.logit_scale.exp().float() * scores}
        if details:
            out["matched"] = select(nearest_match(v, state))
            out["members"] = select(centre_members(v, state, metric, k))
        return out

    def postprocess(
        self,
        model_outputs: dict[str, torch.Tensor],
        space: SynonymSpace | None = None,
        index: list[int] | None = None,
        top_k: int | None = None,
        details: bool = False,
    ) -> list[dict[str, Any]]:
        assert space is not None and index is not None
        probs = model_outputs["logits"][0].float().softmax(-1)
        order = torch.argsort(probs, descending=True, stable=True)[: top_k or len(index)].tolist()
        scores = probs.tolist()  # one conversion, not one .item() per class
        labels = space.labels
        results = []
        for j in order:
            c = index[j]
            entry: dict[str, Any] = {"score": scores[j], "label": labels[c]}
            if details:
                concepts = space.concepts(c)
                members = model_outputs["members"][0, j].tolist()
                entry["details"] = {
                    "matched_concept": concepts[int(model_outputs["matched"][0, j])],
                    "kept": space.concepts(c, kept=True),
                    "dropped": space.concepts(c, kept=False),
                    "centre": [concepts[i] for i, on in enumerate(members[: len(concepts)]) if on],
                }
            results.append(entry)
        return results


class _Ref:
    """Hashes and compares by identity and holds its object, so the id cannot be reused while cached."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ref) and other.obj is self.obj


def _freeze_support(support: Any) -> Any:
    """A cache key for a support set: a folder by path and the latest modification time of it and its class
    folders, anything else by identity."""
    if isinstance(support, str | os.PathLike):
        path = Path(support)
        if not path.is_dir():
            return ("folder", str(path), None)
        return ("folder", str(path), max(p.stat().st_mtime for p in [path, *path.iterdir()]))
    return ("object", _Ref(support))


def register() -> None:
    """Register the task with transformers (done on ``import s3_hf``)."""
    if TASK in PIPELINE_REGISTRY.supported_tasks:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=S3ZeroShotImageClassificationPipeline,
        pt_model=AutoModelForZeroShotImageClassification,
        default=SUPPORTED_TASKS["zero-shot-image-classification"]["default"],
        type="multimodal",
    )
