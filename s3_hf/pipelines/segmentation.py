"""The ``s3-open-vocabulary-segmentation`` pipeline: per-pixel classification against synonym spaces, with the
output of transformers' ``image-segmentation`` pipeline.

A thin face over :meth:`S3Engine.segment`: the classes come as in classification (``candidate_labels`` with
``synonyms``, or a ``synonym_space``: one space serves both tasks); dense options route to
:class:`~s3_hf.segmentation.options.SegmentOptions`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from s3_hf.engine.requests import ClassifyRequest, NamesRequest
from s3_hf.engine.results import Segmentation
from s3_hf.errors import InvalidConfigError, InvalidLabelsError
from s3_hf.io.images import load_image
from s3_hf.options import DEFAULT_CONCEPT_FORMAT
from s3_hf.pipelines.base import S3Pipeline
from s3_hf.pipelines.tasks import register
from s3_hf.segmentation import protocols
from s3_hf.segmentation.label_maps import class_masks
from s3_hf.segmentation.names import NameQueries
from s3_hf.segmentation.options import SegmentOptions
from s3_hf.segmentation.render import index_image

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

    Protocols (as ``s3 segment --protocol``): ``protocol`` (``"s3"``, ``"sclip"``, ``"naclip"``, ``"clearclip"``;
    :mod:`s3_hf.segmentation.protocols`) with ``benchmark`` (a reference protocol needs one) takes that benchmark's
    values; the dense options above and any other protocol value (``long_side``, ``resize``, ``positions``,
    ``logit_scale``, ``background_index``, ``area_threshold``, ``pamr_steps``, ``pamr_dilations``) override them. Under
    a reference protocol the classes are ``candidate_labels`` with ``synonyms`` as ``{label: [names]}`` (a class file's
    lines) and the label map is the references' names rule (:meth:`~s3_hf.engine.core.S3Engine.segment_names`); each
    segment's ``score`` is then ``None`` (the rule gives a label map, not a probability per class, as transformers'
    semantic segmentation). With ``protocol`` the output is ``{"segments": [...], "protocol": every value and its
    source}`` (and ``"label_map"`` when asked).
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
        protocol: str | None = None,
        benchmark: str | None = None,
        **options: Any,
    ) -> tuple[dict, dict, dict]:
        preprocess: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        if candidate_labels is None and synonym_space is None:
            if protocol is not None:  # checked now, so a wrong name fails before any image is read
                protocols.check_protocol(protocol)
            return preprocess, {}, {}  # pipeline construction: nothing to route yet
        values = None
        if protocol is None and benchmark is None:
            dense = SegmentOptions(**{k: options.pop(k) for k in _DENSE if k in options})
        else:
            values = _protocol_values(protocol, benchmark, options)
            dense = values.segment_options()
        post = {"label_map": bool(return_label_map), "protocol": values.to_dict() if values else None}
        if dense.fast_decode:  # the image is read here: decode JPEGs no smaller than the short side it is resized to
            preprocess["min_side"] = dense.short_side
        if values is not None and values.protocol != protocols.DEFAULT_PROTOCOL:
            _check_names_rule(values.protocol, synonym_space, synonyms, metric, knn_k, options)
            queries = NameQueries.from_classes(_class_lines(list(candidate_labels or []), synonyms or {}))
            request: ClassifyRequest | NamesRequest = self.engine.names_request(
                queries,
                templates=templates or values.templates,
                hypothesis_template=hypothesis_template,
                pamr_steps=values.pamr_steps,
                pamr_dilations=values.pamr_dilations,
            )
            return preprocess, {"request": request, "options": dense}, post
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
        return preprocess, {"request": request, "options": dense}, post

    def preprocess(self, image: Any, timeout: float | None = None, min_side: int | None = None) -> dict[str, Any]:
        return {"image": load_image(image, timeout=timeout, min_side=min_side)}

    def _forward(
        self,
        model_inputs: dict[str, Any],
        request: ClassifyRequest | NamesRequest | None = None,
        options: SegmentOptions | None = None,
    ) -> dict[str, Segmentation]:
        if request is None:
            raise InvalidLabelsError("Pass candidate_labels=[...] or synonym_space=... to say what the classes are.")
        image = model_inputs["image"]
        if isinstance(request, NamesRequest):
            return {"segmentation": self.engine.segment_names(image, request, options)}
        return {"segmentation": self.engine.segment(image, request, options)}

    def postprocess(
        self, model_outputs: dict[str, Segmentation], label_map: bool = False, protocol: dict[str, Any] | None = None
    ) -> Any:
        seg = model_outputs["segmentation"]
        segments = class_masks(seg.logits, seg.labels, seg.label_map)
        if not label_map and protocol is None:
            return segments
        out: dict[str, Any] = {"segments": segments}
        if label_map:
            out["label_map"] = index_image(seg.label_map, len(seg.labels))
        if protocol is not None:
            out["protocol"] = protocol
        return out


def _check_names_rule(
    protocol: str, synonym_space: Any, synonyms: Any, metric: str | None, knn_k: int | None, options: dict[str, Any]
) -> None:
    """A reference protocol's names rule takes class names and scores every name by its cosine: refuse a space,
    synonyms that are not ``{label: [names]}``, and the options of S^3's scoring."""
    if synonym_space is not None or (synonyms is not None and not isinstance(synonyms, Mapping)):
        raise InvalidLabelsError(
            f"protocol {protocol!r} segments with the references' rule over class names: pass "
            "candidate_labels, with synonyms as {label: [names]} for several names a class, or use "
            "protocol='s3' with a space."
        )
    ignored = [*sorted(options), *(["metric"] if metric not in (None, "label") else [])]
    ignored += ["knn_k"] if knn_k is not None else []
    if ignored:
        raise InvalidConfigError(
            f"protocol {protocol!r} scores every name by its cosine (the references' rule); "
            f"{', '.join(ignored)} do not apply: drop them or use protocol='s3'."
        )


def _protocol_values(protocol: str | None, benchmark: str | None, options: dict[str, Any]) -> protocols.ProtocolValues:
    """The protocol's values for ``benchmark``, the dense options and protocol values in ``options`` (taken out of
    it) as overrides, as ``s3 segment --protocol`` reads its command line."""
    given = {k: options.pop(k) for k in (*_DENSE, *protocols.ProtocolValues.value_names()) if k in options}
    if "background_threshold" in given:
        given["prob_threshold"] = given.pop("background_threshold")
    if "variant" in given and given["variant"] is None:
        given["variant"] = "none"  # the model's own last block (None would keep the preset's)
    return protocols.resolve(protocol or protocols.DEFAULT_PROTOCOL, benchmark, **given)


def _class_lines(labels: list[str], synonyms: Mapping[str, Any]) -> list[list[str]]:
    """A class file's lines from ``candidate_labels`` and ``{label: [names]}``: each label, then its names."""
    unknown = [k for k in synonyms if k not in labels]
    if unknown:
        raise InvalidLabelsError(f"synonyms name {unknown[0]!r}, which is not one of candidate_labels.")
    lines = []
    for label in labels:
        extra = synonyms.get(label, [])
        if isinstance(extra, str) or not isinstance(extra, Sequence):
            raise InvalidLabelsError(f"synonyms[{label!r}] must be a list of names, got {extra!r}.")
        lines.append([label, *extra])
    return lines


register()  # now that the class exists

__all__ = ["S3OpenVocabularySegmentationPipeline"]
