"""S^3 (Synonymous Semantic Space) zero-shot image classification for Hugging Face transformers.

``import s3_hf`` registers the ``"s3-zero-shot-classification"`` pipeline task.
"""

__version__ = "0.1.0"

from .artifact import S3Config, SynonymSpace
from .build import build_synonym_space
from .errors import *  # noqa: F403
from .errors import S3Error
from .metrics import METRICS, score
from .pipeline import TASK, S3ZeroShotImageClassificationPipeline, register
from .space import SpaceParams
from .synonyms import LabelOnlySource, StaticSource, SynonymSource
from .templates import IMAGENET_TEMPLATES, resolve_templates

register()

__all__ = [
    "IMAGENET_TEMPLATES",
    "METRICS",
    "TASK",
    "LabelOnlySource",
    "S3Config",
    "S3Error",
    "S3ZeroShotImageClassificationPipeline",
    "SpaceParams",
    "StaticSource",
    "SynonymSource",
    "SynonymSpace",
    "build_synonym_space",
    "resolve_templates",
    "score",
]
