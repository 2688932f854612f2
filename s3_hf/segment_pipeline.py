"""The ``s3-open-vocabulary-segmentation`` pipeline: per-pixel classification against synonym spaces, with the
output of transformers' ``image-segmentation`` pipeline.

A thin face over :meth:`S3Engine.segment`: the classes come as in classification (``candidate_labels`` with
``synonyms``, or a ``synonym_space``: one space serves both tasks); dense options route to
:class:`~s3_hf.segmentation.SegmentOptions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .encoding import load_image
from .engine import ClassifyRequest, Segmentation
from .errors import InvalidLabelsError
from .options import DEFAULT_CONCEPT_FORMAT
from .pipeline import S3Pipeline, register
from .segmentation import SegmentOptions, class_masks, index_image

_DENSE = ("variant", "short_side", "window", "stride", "background_threshold", "fast_decode")


class S3OpenVocabularySegmentationPipeline(S3Pipeline):
    """Open-vocabulary semantic segmentation against synonym spaces (S^3).

    Returns, per image, transformers' ``image-segmentation`` output: a list of ``{"score", "label", "mask"}``, one
    per class present, ``mask`` a PIL image (255 inside the class), ``score`` the mean probability over its pixels.
    With ``return_label_map=True`` it returns ``{"segments": [...], "label_map": PIL image of class indices}``.

    Classes: ``candidate_labels`` (with ``synonyms``, ``templates``/``hypothesis_template``, ``concept_format`` and
    the space options, as in classification) or ``synonym_space``; ``metric`` and ``knn_k`` as in classification.
    Dense options: ``variant`` (``"naclip"`` by default; ``"sclip"``, ``"clearclip"``, ``"maskclip"`` or ``None``
    for the model's own last block), ``short_side`` (336), ``window`` (224), ``stride`` (112) and
    ``background_threshold`` (``None``; a probability below which a pixel goes to the class named
    ``background``). The engine behind the pipeline is ``pipe.engine``.
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
        concept_format: str = DEFAULT_CONCEPT_FORMAT,
        return_label_map: bool = False,
        timeout: float | None = None,
        **options: Any,
    ) -> tuple[dict, dict, dict]:
        preprocess: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        if candidate_labels is None and synonym_space is None:
            return preprocess, {}, {}  # pipeline construction: nothing to route yet
        dense = SegmentOptions(**{k: options.pop(k) for k in _DENSE if k in options})
        if dense.fast_decode:  # the image is read here: decode JPEGs no smaller than the short side it is resized to
            preprocess["min_side"] = dense.short_side
        request = self.engine.request(
            candidate_labels,
            synonyms=synonyms,
            synonym_space=synonym_space,
            templates=templates,
            hypothesis_template=hypothesis_template,
            concept_format=concept_format,
            metric=metric,
            knn_k=knn_k,
            **options,
        )
        return preprocess, {"request": request, "options": dense}, {"label_map": bool(return_label_map)}

    def preprocess(self, image: Any, timeout: float | None = None, min_side: int | None = None) -> dict[str, Any]:
        return {"image": load_image(image, timeout=timeout, min_side=min_side)}

    def _forward(
        self, model_inputs: dict[str, Any], request: ClassifyRequest | None = None, options: Any = None
    ) -> dict[str, Any]:
        if request is None:
            raise InvalidLabelsError("Pass candidate_labels=[...] or synonym_space=... to say what the classes are.")
        return {"segmentation": self.engine.segment(model_inputs["image"], request, options)}

    def postprocess(self, model_outputs: dict[str, Any], label_map: bool = False) -> Any:
        seg: Segmentation = model_outputs["segmentation"]
        segments = class_masks(seg.logits, seg.labels, seg.label_map)
        if not label_map:
            return segments
        return {"segments": segments, "label_map": index_image(seg.label_map, len(seg.labels))}


register()  # the segmentation task, now that its class exists (see s3_hf.pipeline.register)

__all__ = ["S3OpenVocabularySegmentationPipeline"]
