"""The service layer under every face: S3Engine resolves and caches spaces and adapters, and scores.

``requests`` (the typed request records), ``keys`` (cache keys), ``cache`` (the LRU), ``spaces`` and ``adapters``
(what a request builds or fits), ``results`` (what resolving and scoring give back) and ``core`` (S3Engine).
"""

from s3_hf.engine.cache import MAX_CACHED
from s3_hf.engine.core import S3Engine, check_dual_encoder
from s3_hf.engine.requests import (
    ClassifyRequest,
    CuplMethod,
    DclipMethod,
    MethodSpec,
    NamesRequest,
    S3Method,
    SpaceRequest,
    WaffleMethod,
)
from s3_hf.engine.results import (
    ClassScores,
    Prediction,
    Resolved,
    Segmentation,
    SpaceSelection,
    class_scores,
    rank,
)

__all__ = [
    "MAX_CACHED",
    "ClassScores",
    "ClassifyRequest",
    "CuplMethod",
    "DclipMethod",
    "MethodSpec",
    "NamesRequest",
    "Prediction",
    "Resolved",
    "S3Engine",
    "S3Method",
    "Segmentation",
    "SpaceRequest",
    "SpaceSelection",
    "WaffleMethod",
    "check_dual_encoder",
    "class_scores",
    "rank",
]
