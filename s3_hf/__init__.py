"""S^3 (Synonymous Semantic Space) zero-shot image classification for Hugging Face transformers.

``import s3_hf`` makes the ``"s3-zero-shot-classification"`` pipeline task available to ``transformers.pipeline``.
The import is light: names below are loaded on first use, and transformers only when it is needed.
"""

from typing import TYPE_CHECKING

from s3_hf._lazy import lazy_exports
from s3_hf.errors import (
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
from s3_hf.pipelines.tasks import SEGMENTATION_TASK, TASK, install

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "IMAGENET_TEMPLATES": ".text.templates",
    "resolve_templates": ".text.templates",
    "METRICS": ".space.scoring",
    "score": ".space.scoring",
    "METRIC_NAMES": ".options",
    "SpaceParams": ".options",
    "S3Config": ".space.artifact",
    "SynonymSpace": ".space.artifact",
    "build_synonym_space": ".space.build",
    "S3Engine": ".engine.core",
    "ClassifyRequest": ".engine.core",
    "Prediction": ".engine.core",
    "S3ZeroShotImageClassificationPipeline": ".pipelines.classification",
    "LabelOnlySource": ".synonyms",
    "StaticSource": ".synonyms",
    "SynonymSource": ".synonyms",
    "SSPAdapter": ".fewshot",
    "SSPConfig": ".fewshot",
    "load_model": ".models.loading",
    "load_encoder": ".models.encoders",
    "Encoder": ".models.encoders",
    "CuratedSource": ".synonyms",
    "build_method_space": ".baselines",
    "SegmentOptions": ".segmentation.options",
    "Segmentation": ".engine.core",
    "S3OpenVocabularySegmentationPipeline": ".pipelines.segmentation",
    "TS3Config": ".tta",
    "ZeroConfig": ".tta",
    "export_onnx": ".export",
}

if TYPE_CHECKING:
    from s3_hf.baselines import build_method_space
    from s3_hf.engine.core import ClassifyRequest, Prediction, S3Engine, Segmentation
    from s3_hf.export import export_onnx
    from s3_hf.fewshot import SSPAdapter, SSPConfig
    from s3_hf.models.encoders import Encoder, load_encoder
    from s3_hf.models.loading import load_model
    from s3_hf.options import METRIC_NAMES, SpaceParams
    from s3_hf.pipelines.classification import S3ZeroShotImageClassificationPipeline
    from s3_hf.pipelines.segmentation import S3OpenVocabularySegmentationPipeline
    from s3_hf.segmentation.options import SegmentOptions
    from s3_hf.space.artifact import S3Config, SynonymSpace
    from s3_hf.space.build import build_synonym_space
    from s3_hf.space.scoring import METRICS, score
    from s3_hf.synonyms import CuratedSource, LabelOnlySource, StaticSource, SynonymSource
    from s3_hf.text.templates import IMAGENET_TEMPLATES, resolve_templates
    from s3_hf.tta import TS3Config, ZeroConfig


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


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
    "TS3Config",
    "TemplateError",
    "UnsupportedModelError",
    "WordNetMissingError",
    "ZeroConfig",
    "__version__",
    "build_method_space",
    "build_synonym_space",
    "export_onnx",
    "load_encoder",
    "load_model",
    "resolve_templates",
    "score",
]
