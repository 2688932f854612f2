"""Few-shot adapters on a space: fitted from a support set (its images encoded once) or checked, when given or
loaded, against the model, the classes and the space they were fitted on."""

from __future__ import annotations

import logging
from typing import Any

from s3_hf.engine.results import SpaceSelection
from s3_hf.errors import InvalidLabelsError, ModelMismatchError
from s3_hf.fewshot import (
    SSPAdapter,
    SSPConfig,
    encode_support_images,
    encode_support_views,
    fit_for_space,
    read_support,
    view_keys,
)
from s3_hf.fewshot.support import require_every_class
from s3_hf.models.encoders import Encoder
from s3_hf.space.artifact import same_model

logger = logging.getLogger(__name__)


def fit_adapter(
    encoder: Encoder,
    selection: SpaceSelection,
    support: Any,
    metric: str,
    knn_k: int,
    logit_scale: float,
    config: SSPConfig,
    text_vector: str,
) -> SSPAdapter:
    """Fit SSP on ``support`` for the classes of ``selection``: the support images are read (every class must have
    one) and encoded, with their augmented views when ``config.augment_views`` > 1.

    Args:
        encoder: the model's encoder.
        selection: the space and the classes to fit for.
        support: labelled images (a folder, a ``datasets.Dataset`` or ``(image, label)`` pairs).
        metric: the zero-shot metric the adapter builds on.
        knn_k: its ``k``.
        logit_scale: the model's ``τ``.
        config: SSP's options.
        text_vector: the class text vector SSP builds on.
    """
    labels = selection.labels
    images, targets = read_support(support, labels)
    require_every_class(targets, labels)
    glob, local = encode_support_images(encoder, None, images, progress=len(images) > 64)
    keys = None
    if config.augment_views > 1:  # the cache keys: each image's mean over its augmented views
        views = encode_support_views(
            encoder, None, images, config.augment_views, config.seed, progress=len(images) > 64
        )
        keys = view_keys(views)
    index = list(selection.index)
    return fit_for_space(
        selection.space, index, glob, local, targets, metric, knn_k, logit_scale, config, text_vector, keys
    )


def check_adapter(adapter: SSPAdapter, selection: SpaceSelection, metric: str, warned: set[int]) -> SSPAdapter:
    """``adapter`` itself if it was fitted for the classes of ``selection`` on its space, with its model; a typed
    error otherwise. An adapter that does not record its space is used with a warning, once (``warned``: the ids
    of the adapters warned about).

    Args:
        adapter: a given or loaded few-shot adapter.
        selection: the space and the classes it is used on.
        metric: the zero-shot metric it is used with.
        warned: ids of the adapters warned about already (updated).
    """
    fitted_on = adapter.info.base_model
    base = selection.space.config.base_model
    if fitted_on is not None and not same_model(fitted_on, base):
        raise ModelMismatchError(
            f"The few-shot adapter was fitted with {fitted_on!r}, the space belongs to {base!r}: its support "
            "keys are another model's embeddings. Refit it."
        )
    fitted_metric = adapter.info.zero_shot_metric
    if fitted_metric not in (None, metric):
        logger.warning(
            "The few-shot adapter was tuned on top of the %r metric; scoring with %r. Pass metric=%r to use it "
            "as fitted.",
            fitted_metric,
            metric,
            fitted_metric,
        )
    if adapter.labels != selection.labels:
        raise InvalidLabelsError(
            f"The few-shot adapter was fitted for classes {adapter.labels[:5]}... ({adapter.num_classes}), "
            f"not for the requested {selection.labels[:5]}... ({len(selection.labels)}). Fit one for these "
            "classes."
        )
    if not adapter.check_space(selection.space) and id(adapter) not in warned:  # once per adapter, not per image
        warned.add(id(adapter))
        logger.warning(
            "The few-shot adapter does not record the space it was fitted on (saved by an older s3-hf, or fitted "
            "on raw features); it is used as is. Refit it with `s3 fewshot` so that a mismatch can be caught."
        )
    return adapter


__all__ = ["check_adapter", "fit_adapter"]
