"""The ``s3-zero-shot-classification`` pipeline: a superset of transformers' zero-shot-image-classification.

A thin face over :class:`~s3_hf.engine.core.S3Engine`: parameters are validated and routed in
``_sanitize_parameters``, images are read in ``preprocess``, the space is resolved (built or loaded once, then
cached by the engine) and scored in ``_forward``, and ``postprocess`` ranks the classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from s3_hf.engine.requests import ClassifyRequest
from s3_hf.engine.results import (
    NONE_OF_THESE,
    ClassScores,
    Resolved,
    check_abstain_labels,
    check_abstain_threshold,
    check_multi_label,
    rank,
)
from s3_hf.engine.zero import check_tta, refuse_with_zero, view_inputs, zero_scores
from s3_hf.errors import InvalidConfigError, InvalidLabelsError
from s3_hf.options import DEFAULT_BATCH_SIZE, DEFAULT_CONCEPT_FORMAT, DEFAULT_TEXT_VECTOR
from s3_hf.pipelines.base import S3Pipeline
from s3_hf.pipelines.stream import ClassificationStream, StreamCallOptions
from s3_hf.pipelines.tasks import TASK, register
from s3_hf.tta.config import ZeroConfig


class S3ZeroShotImageClassificationPipeline(S3Pipeline):
    """Zero-shot image classification against synonym spaces (S^3).

    Accepts everything transformers' ``zero-shot-image-classification`` accepts (an image path, URL, PIL image
    or a list of them; ``candidate_labels``; ``hypothesis_template``; ``tokenizer_kwargs``) and returns the same
    output: per image a list of ``{"score", "label"}`` sorted by score. In addition:

    - ``synonyms``: ``{label: [synonym, ...]}``, a JSON/YAML file or a :class:`SynonymSource`;
    - ``synonym_space``: a :class:`SynonymSpace`, a local folder or a Hub repo id (``candidate_labels`` then
      optionally selects a subset of its classes); a folder rebuilt on disk is reloaded on the next call;
    - ``templates``: a list of prompt templates or a named set (``"imagenet80"``);
    - ``metric``: one of :data:`s3_hf.options.METRIC_NAMES` (default ``"local_center"``), ``knn_k`` for the kNN
      metric;
    - ``fast_decode=True``: decode JPEGs at the smallest DCT scale that still covers the model's resize target
      (several times faster on large photos; scores move slightly, see the README). Off by default, so that scores
      equal transformers' own pipeline;
    - ``top_k``: keep the ``top_k`` best classes; ``return_details``: add per class the matched concept, the
      kept and dropped concepts and the concepts forming the centre used;
    - ``abstain_threshold``: a probability in ``(0, 1]``; when an image's top probability is below it, its list
      starts with ``{"score": abstain_threshold, "label": "none of these"}`` (:data:`NONE_OF_THESE`) followed by the
      ranked classes as always, so ``result[0]["label"]`` is the answer to act on and the list stays sorted by
      score. Without it (the default) the output is exactly transformers';
    - ``multi_label=True``: each class scored on its own, not against the others: SigLIP families by their own
      per-class sigmoid (as always), softmax families (CLIP, ...) by CLIP's softmax over two captions, the class's
      and one naming no class (``sigmoid(z_c - z_0)``, see :mod:`s3_hf.engine.label_free`); scores then need not
      sum to 1, and each keeps its value whatever the other candidate labels;
    - ``tta="zero"`` (or a :class:`~s3_hf.tta.ZeroConfig`): ZERO-S^3, stateless test-time augmentation: S^3 scores
      of 64 views of each image (itself and 63 seeded random crops), the 19 most confident vote; scores are the
      vote fractions (not calibrated probabilities), at about 64 times the encoder's compute per image;
    - space options ``concept_format``, ``radius``, ``gap_ratio``, ``min_points``, ``max_dim``, and
      ``canonicalization="lower_no_punct"`` (lower-cased prompts without punctuation, as SigLIP 2's authors
      recommend; the default leaves them as written, as transformers does);
    - few-shot (SSP): ``support`` = a folder with one sub-folder of images per class, a ``datasets.Dataset``, a
      list of ``(image, label)`` pairs, a fitted :class:`~s3_hf.fewshot.SSPAdapter` or a folder it was saved to;
      ``fewshot`` = :class:`~s3_hf.fewshot.SSPConfig` or a dict of its options (``{"mode": "cache"}`` for the
      cache alone); ``text_vector`` = ``"global_center"`` (default) or ``"label"``. An empty support set gives
      exactly the zero-shot scores.

    Spaces built from labels are cached per (labels, synonyms, templates, options): text is encoded once. Fitted
    few-shot adapters are cached the same way: support images are encoded once. The engine behind the pipeline
    is ``pipe.engine``. Test-time adaptation (TS^3) is never hidden in a call: ``pipe.stream(...)`` returns an
    explicit handle that holds the state (see :meth:`stream`).
    """

    def _sanitize_parameters(
        self,
        candidate_labels: Sequence[str] | None = None,
        hypothesis_template: str | None = None,
        synonyms: Any = None,
        synonym_space: Any = None,
        templates: str | Sequence[str] | None = None,
        metric: str | None = None,
        knn_k: int | None = None,
        top_k: int | None = None,
        return_details: bool = False,
        timeout: float | None = None,
        fast_decode: bool = False,
        concept_format: str = DEFAULT_CONCEPT_FORMAT,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
        canonicalization: str | None = None,
        support: Any = None,
        fewshot: Any = None,
        text_vector: str = DEFAULT_TEXT_VECTOR,
        method: str = "s3",
        descriptors: Any = None,
        prompts: Any = None,
        waffle: Any = None,
        abstain_threshold: float | None = None,
        multi_label: bool = False,
        tta: Any = None,
        **space_options: Any,
    ) -> tuple[dict, dict, dict]:
        preprocess = _preprocess_options(timeout, fast_decode)
        if candidate_labels is None and synonym_space is None:
            return preprocess, {}, {}  # pipeline construction: nothing to route yet
        post = _rank_options(candidate_labels, top_k, return_details, abstain_threshold, multi_label)
        zero = check_tta(tta)
        if zero is not None:
            refuse_with_zero(post["details"], "multi_label" in post)
            preprocess["zero"] = zero
        request = self.engine.request(
            candidate_labels,
            synonyms=synonyms,
            synonym_space=synonym_space,
            templates=templates,
            hypothesis_template=hypothesis_template,
            concept_format=concept_format,
            metric=metric,
            knn_k=knn_k,
            support=support,
            fewshot=fewshot,
            text_vector=text_vector,
            tokenizer_kwargs=tokenizer_kwargs,
            canonicalization=canonicalization,
            method=method,
            descriptors=descriptors,
            prompts=prompts,
            waffle=waffle,
            **space_options,
        )
        abstain, multi_label = "abstain_threshold" in post, "multi_label" in post
        forward = {"request": request, "details": post["details"], "abstain": abstain, "multi_label": multi_label}
        return preprocess, {**forward, "zero": zero} if zero is not None else forward, post

    def preprocess(
        self, image: Any, timeout: float | None = None, fast_decode: bool = False, zero: ZeroConfig | None = None
    ) -> dict[str, torch.Tensor]:
        picture = self.engine.load_image(image, fast=fast_decode, timeout=timeout)
        inputs = self.engine.image_inputs([picture]) if zero is None else view_inputs(self.engine, picture, zero)
        return {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in inputs.items()}

    def _forward(
        self,
        model_inputs: dict[str, torch.Tensor],
        request: ClassifyRequest | None = None,
        details: bool = False,
        abstain: bool = False,
        multi_label: bool = False,
        zero: ZeroConfig | None = None,
    ) -> dict[str, Any]:
        if request is None:
            raise InvalidLabelsError("Pass candidate_labels=[...] or synonym_space=... to say what the classes are.")
        resolved = self.engine.resolve(request)  # built or loaded on first use, then cached
        if abstain:
            check_abstain_labels(resolved.labels, 1.0)  # a saved space's classes are known only now
        if zero is not None:
            voted = zero_scores(self.engine, model_inputs, resolved, zero)
            return {"logits": voted.logits, "votes": voted.votes, "resolved": ScoredAgainst(resolved)}
        v = self.engine.encode_pixels(model_inputs)
        out = self.engine.scores(v, resolved, details, multi_label)
        outputs: dict[str, Any] = {"logits": out.logits, "resolved": ScoredAgainst(resolved)}
        if details:
            outputs.update(matched=out.matched, members=out.members)
        if out.baseline is not None:
            outputs["baseline"] = out.baseline
        return outputs

    def stream(
        self, candidate_labels: Sequence[str] | None = None, *, tta: Any = None, **kwargs: Any
    ) -> ClassificationStream:
        """A test-time adaptation (TS^3) stream over these classes: the pipeline itself stays stateless.

        ``stream(images)`` returns what a call of the pipeline returns, from the adapted logits; ``stream.scores``
        and ``stream.rank(..., static=True)`` give the static S^3 results of the same images (see
        :class:`~s3_hf.pipelines.stream.ClassificationStream`). Few-shot ``support`` and ``return_details`` are
        refused: a stream adapts a zero-shot space, and details describe the static one.

        Args:
            candidate_labels: the classes (or a subset of ``synonym_space``'s), as in a call.
            tta: a :class:`~s3_hf.tta.TS3Config` (default: its defaults).
            kwargs: the keyword arguments of a call (``synonyms``, ``synonym_space``, ``metric``, ``top_k``,
                ``abstain_threshold``, ``multi_label``, ``fast_decode``, ``timeout``, ...); ``batch_size`` is the
                default batch size of the stream's calls.
        """
        batch_size = kwargs.pop("batch_size", DEFAULT_BATCH_SIZE)
        kwargs.pop("num_workers", None)  # the stream reads images in the caller's thread, in order
        if kwargs.get("return_details"):
            raise InvalidConfigError("return_details describes the static space: call the pipeline for details.")
        preprocess, forward, post = self._sanitize_parameters(candidate_labels=candidate_labels, **kwargs)
        if not forward:
            raise InvalidLabelsError("Pass candidate_labels=[...] or synonym_space=... to say what the classes are.")
        stream = self.engine.stream(forward["request"], tta=tta)
        return ClassificationStream(self, stream, StreamCallOptions(preprocess, post, batch_size))

    def postprocess(
        self,
        model_outputs: dict[str, Any],
        top_k: int | None = None,
        details: bool = False,
        abstain_threshold: float | None = None,
        multi_label: bool = False,
    ) -> list[dict[str, Any]]:
        scored: ScoredAgainst = model_outputs["resolved"]
        out = ClassScores(
            model_outputs["logits"],
            model_outputs.get("matched"),
            model_outputs.get("members"),
            scoring=self.engine.family.scoring,
            baseline=model_outputs.get("baseline"),
            votes=model_outputs.get("votes"),
        )
        ranked = rank(
            out, 0, scored.resolved, top_k, details, abstain_threshold=abstain_threshold, multi_label=multi_label
        )
        return [p.to_dict() for p in ranked]


def _preprocess_options(timeout: float | None, fast_decode: Any) -> dict[str, Any]:
    """The checked options of ``preprocess`` (left out when default)."""
    preprocess: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
    if not isinstance(fast_decode, bool):
        raise InvalidConfigError(f"fast_decode must be True or False, got {fast_decode!r}.")
    if fast_decode:
        preprocess["fast_decode"] = True
    return preprocess


def _rank_options(
    labels: Sequence[str] | None, top_k: Any, details: Any, abstain_threshold: Any, multi_label: Any
) -> dict[str, Any]:
    """The checked options of ``postprocess``: ``top_k``, ``details`` and, when asked, ``abstain_threshold`` and
    ``multi_label`` (left out otherwise, so that a default call routes what it always did)."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidConfigError(f"top_k must be a positive integer, got {top_k!r}.")
    abstain_threshold = check_abstain_threshold(abstain_threshold)
    check_abstain_labels(labels, abstain_threshold)
    post: dict[str, Any] = {"top_k": top_k, "details": bool(details)}
    if abstain_threshold is not None:
        post["abstain_threshold"] = abstain_threshold
    if check_multi_label(multi_label):
        post["multi_label"] = True
    return post


@dataclass(frozen=True)
class ScoredAgainst:
    """What a call's images were scored against, carried from ``_forward`` to ``postprocess`` with the logits, so
    that the ranking names the classes of the space that scored them (even if its folder changes in between)."""

    resolved: Resolved

    def __getitem__(self, index: int) -> ScoredAgainst:
        # transformers splits a batch's outputs by indexing each of them: every image shares its call's space
        return self


register()  # now that the class exists

__all__ = ["NONE_OF_THESE", "TASK", "S3ZeroShotImageClassificationPipeline", "ScoredAgainst"]
