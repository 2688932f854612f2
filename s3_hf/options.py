"""The named options of the method and their defaults, importable without torch or transformers.

Every face (the pipeline, the CLI, eval, the app) reads its defaults from here, so each default is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from s3_hf.errors import InvalidConfigError
from s3_hf.validation import integer, number

RadiusRule = str | float | None

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_CONCEPT_FORMAT = "{concept}, which is a {label}"
DEFAULT_METRIC = "local_center"
DEFAULT_KNN_K = 3
#: Synonyms kept per label, after the label itself.
MAX_CONCEPTS = 10
#: The point-to-space metrics, in the order tables list them (``s3_hf.space.scoring.METRICS`` implements each).
METRIC_NAMES: tuple[str, ...] = (
    "label",
    "global_center",
    "nearest_point",
    "mean_similarity",
    "nearest_simplex",
    "local_center",
    "local_center_knn",
)
#: How a concept's text carries one of its class's visual descriptors (S^3 with descriptors).
DEFAULT_DESCRIPTOR_FORMAT = "{concept}, which has {descriptor}"
#: Zero-shot methods a space can encode: S^3 itself, and the baselines of :mod:`s3_hf.baselines`.
METHODS: tuple[str, ...] = ("s3", "cupl", "dclip", "waffle")
#: Dense last-block variants of segmentation (``None``: the model's own block; see :mod:`s3_hf.models.dense`).
DENSE_VARIANTS: tuple[str | None, ...] = (None, "maskclip", "sclip", "clearclip", "naclip")
DEFAULT_DENSE_VARIANT = "naclip"
#: Segmentation's resize and sliding window under s3's own protocol: the short side images are resized to, the
#: window (0: the whole image in one pass) and its stride, in pixels.
DEFAULT_SHORT_SIDE = 336
DEFAULT_WINDOW = 224
DEFAULT_STRIDE = 112
#: Segmentation's resize kernels: PIL bicubic with antialiasing (s3-hf's default) or bilinear without antialiasing,
#: as mmseg's ``Resize`` (cv2 ``INTER_LINEAR``) does, with the result rounded to 8 bits as cv2 returns it.
RESIZE_KERNELS: tuple[str, ...] = ("pil-bicubic", "bilinear")
#: How position embeddings are interpolated to another patch grid: ``"size"`` (bicubic to the grid, as transformers
#: does) or ``"scale"`` (bicubic with ``scale_factor=(n + 0.1) / sqrt(N)``, as the references' ``clip/model.py``).
POSITION_RULES: tuple[str, ...] = ("size", "scale")
#: Images per batch of the image encoder (classification, few-shot support, the CLI's commands).
DEFAULT_BATCH_SIZE = 32
#: The seed of the order ``s3 classify --tta`` adapts over the given images in (a dedicated generator's permutation).
DEFAULT_STREAM_SEED = 1
#: Images per batch of an evaluation run.
DEFAULT_EVAL_BATCH_SIZE = 64
#: The support samples an evaluation draws per shot count.
DEFAULT_EVAL_SEEDS: tuple[int, ...] = (1, 2, 3)
#: Few-shot adapters: SSP (the method's) and the cache baseline; the first is the default.
FEWSHOT_MODES: tuple[str, ...] = ("ssp", "cache")
#: Few-shot: augmented views (random crop + flip) per support image, as GDA's and Tip-Adapter's code
#: (``augment_epoch`` in their configs; 1: none).
DEFAULT_AUGMENT_VIEWS = 10
#: The class text vectors SSP can build its language side on.
TEXT_VECTORS: tuple[str, ...] = ("global_center", "label")
DEFAULT_TEXT_VECTOR = "global_center"
#: Test-time adaptation methods an evaluation can add beside the static ones: TDA (the baseline) and TS^3.
TTA_METHODS: tuple[str, ...] = ("tda", "ts3")
#: The stream orders (seeds of a dedicated generator) an evaluation adapts over; results are their mean and std.
DEFAULT_TTA_SEEDS: tuple[int, ...] = (1, 2, 3)
#: How an evaluation streams images through test-time adaptation: one seeded stream over every gathered image (the
#: reported protocol), or one stream per process over its own shard (a simulation of deployment, named apart).
TTA_STREAMS: tuple[str, ...] = ("single-stream", "per-process")

#: The stream orders of ``s3 eval``'s test-time adaptation: seeded random, or the stress test of images sorted by
#: true class (each class's images in the seeded order), reported as ``method[class-sorted]``.
TTA_ORDERS: tuple[str, ...] = ("random", "class-sorted")
#: PAMR's dilations (NACLIP ``naclip.py``: ``pamr_stride=(8, 16)``), the default wherever PAMR runs.
DEFAULT_PAMR_DILATIONS: tuple[int, ...] = (8, 16)


@dataclass(frozen=True)
class SpaceParams:
    """How class spaces are cut out of their points (see the README, section Method).

    Args:
        radius: ``"auto"`` (the death time before the largest relative jump), a fixed non-negative radius, or
            ``None`` to keep every point.
        gap_ratio: the relative jump ``"auto"`` needs before it prunes anything (> 1).
        min_points: classes with fewer points are never pruned.
        max_dim: the largest simplex dimension of the Vietoris-Rips complex.
    """

    radius: RadiusRule = "auto"
    gap_ratio: float = 1.5
    min_points: int = 4
    max_dim: int = 2

    def __post_init__(self) -> None:
        if self.radius is not None and (isinstance(self.radius, bool) or self.radius != "auto"):
            number("radius", self.radius, low=0, optional=True, expected="'auto', a non-negative number")
        number("gap_ratio", self.gap_ratio, low=1, open_low=True)
        integer("min_points", self.min_points, 1)
        integer("max_dim", self.max_dim, 0)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.option_names()}


def check_metric(metric: str) -> str:
    """``metric`` itself, or an :class:`InvalidConfigError` listing the metrics."""
    if metric not in METRIC_NAMES:
        raise InvalidConfigError(f"Unknown metric {metric!r}. Choose one of {', '.join(METRIC_NAMES)}.")
    return metric


def check_knn_k(k: int) -> int:
    """``k`` itself, or an :class:`InvalidConfigError` unless it is a positive integer."""
    return integer("knn_k", k, 1)


__all__ = [
    "DEFAULT_AUGMENT_VIEWS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONCEPT_FORMAT",
    "DEFAULT_DENSE_VARIANT",
    "DEFAULT_DESCRIPTOR_FORMAT",
    "DEFAULT_EVAL_BATCH_SIZE",
    "DEFAULT_EVAL_SEEDS",
    "DEFAULT_KNN_K",
    "DEFAULT_METRIC",
    "DEFAULT_MODEL",
    "DEFAULT_PAMR_DILATIONS",
    "DEFAULT_SHORT_SIDE",
    "DEFAULT_STREAM_SEED",
    "DEFAULT_STRIDE",
    "DEFAULT_TEXT_VECTOR",
    "DEFAULT_TTA_SEEDS",
    "DEFAULT_WINDOW",
    "DENSE_VARIANTS",
    "FEWSHOT_MODES",
    "MAX_CONCEPTS",
    "METHODS",
    "METRIC_NAMES",
    "POSITION_RULES",
    "RESIZE_KERNELS",
    "TEXT_VECTORS",
    "TTA_METHODS",
    "TTA_ORDERS",
    "TTA_STREAMS",
    "RadiusRule",
    "SpaceParams",
    "check_knn_k",
    "check_metric",
]
