"""S^3 (Synonymous Semantic Space) zero-shot image classification for Hugging Face transformers.

``import s3_hf`` makes the ``"s3-zero-shot-classification"`` pipeline task available to ``transformers.pipeline``.
The import is light: names below are loaded on first use, and transformers only when it is needed.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ArtifactCorruptError,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactShapeError,
    ArtifactValueError,
    CLIUsageError,
    EvalError,
    FormatVersionError,
    HubError,
    ImageLoadError,
    InvalidConfigError,
    InvalidLabelsError,
    ModelLoadError,
    ModelMismatchError,
    S3Error,
    SpaceBuildError,
    SynonymsError,
    SynonymSourceError,
    TemplateError,
    UnsupportedModelError,
    WordNetMissingError,
)
from .tasks import SEGMENTATION_TASK, TASK, install

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "IMAGENET_TEMPLATES": ".templates",
    "resolve_templates": ".templates",
    "METRICS": ".metrics",
    "score": ".metrics",
    "METRIC_NAMES": ".options",
    "SpaceParams": ".options",
    "S3Config": ".artifact",
    "SynonymSpace": ".artifact",
    "build_synonym_space": ".build",
    "S3Engine": ".engine",
    "ClassifyRequest": ".engine",
    "Prediction": ".engine",
    "S3ZeroShotImageClassificationPipeline": ".pipeline",
    "LabelOnlySource": ".synonyms",
    "StaticSource": ".synonyms",
    "SynonymSource": ".synonyms",
    "SSPAdapter": ".fewshot",
    "SSPConfig": ".fewshot",
    "load_model": ".models",
    "load_encoder": ".encoders",
    "Encoder": ".encoders",
    "CuratedSource": ".synonyms",
    "build_method_space": ".baselines",
    "SegmentOptions": ".segmentation",
    "Segmentation": ".engine",
    "S3OpenVocabularySegmentationPipeline": ".segment_pipeline",
}

if TYPE_CHECKING:
    from .artifact import S3Config, SynonymSpace
    from .baselines import build_method_space
    from .build import build_synonym_space
    from .encoders import Encoder, load_encoder
    from .engine import ClassifyRequest, Prediction, S3Engine, Segmentation
    from .fewshot import SSPAdapter, SSPConfig
    from .metrics import METRICS, score
    from .models import load_model
    from .options import METRIC_NAMES, SpaceParams
    from .pipeline import S3ZeroShotImageClassificationPipeline
    from .segment_pipeline import S3OpenVocabularySegmentationPipeline
    from .segmentation import SegmentOptions
    from .synonyms import CuratedSource, LabelOnlySource, StaticSource, SynonymSource
    from .templates import IMAGENET_TEMPLATES, resolve_templates


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 's3_hf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


install()

__all__ = [
    "IMAGENET_TEMPLATES",
    "METRICS",
    "METRIC_NAMES",
    "SEGMENTATION_TASK",
    "TASK",
    "ArtifactCorruptError",
    "ArtifactError",
    "ArtifactNotFoundError",
    "ArtifactShapeError",
    "ArtifactValueError",
    "CLIUsageError",
    "ClassifyRequest",
    "CuratedSource",
    "Encoder",
    "EvalError",
    "FormatVersionError",
    "HubError",
    "ImageLoadError",
    "InvalidConfigError",
    "InvalidLabelsError",
    "LabelOnlySource",
    "ModelLoadError",
    "ModelMismatchError",
    "Prediction",
    "S3Config",
    "S3Engine",
    "S3Error",
    "S3OpenVocabularySegmentationPipeline",
    "S3ZeroShotImageClassificationPipeline",
    "SSPAdapter",
    "SSPConfig",
    "SegmentOptions",
    "Segmentation",
    "SpaceBuildError",
    "SpaceParams",
    "StaticSource",
    "SynonymSource",
    "SynonymSourceError",
    "SynonymSpace",
    "SynonymsError",
    "TemplateError",
    "UnsupportedModelError",
    "WordNetMissingError",
    "__version__",
    "build_method_space",
    "build_synonym_space",
    "load_encoder",
    "load_model",
    "resolve_templates",
    "score",
]
