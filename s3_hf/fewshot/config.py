"""The options of SSP few-shot fitting (:class:`SSPConfig`) and the grids its weights are tuned on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from s3_hf.fewshot.features import check_augment_views
from s3_hf.options import DEFAULT_AUGMENT_VIEWS, FEWSHOT_MODES
from s3_hf.validation import integer, known_fields, number, numbers, one_of

DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA = 0.02, 5.5, 0.5
ALPHA_GRID = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
BETA_GRID = (1.0, 3.0, 5.5, 8.0, 12.0)
GAMMA_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)
MODES = FEWSHOT_MODES


@dataclass(frozen=True)
class SSPConfig:
    """Options of :func:`fit_ssp`. ``mode="cache"`` is the Tip-Adapter-style baseline: the cache term alone, on
    unprojected features, no language term. ``alpha``/``beta``/``gamma`` left as ``None`` are tuned on a
    validation split (``val_fraction`` of each class's support images, at least one, for classes with two or
    more); with no validation images they fall back to the defaults. ``augment_views``: augmented views per
    support image whose mean is its cache key (1: the image as it is), see :mod:`.features`."""

    mode: str = "ssp"
    top_s: int = 8
    lam: float = 1.0
    vision_rank: int | None = None  # None: the whole span of the class means
    language_rank: int | None = 8
    alpha: float | None = None
    beta: float | None = None
    gamma: float | None = None
    alpha_grid: tuple[float, ...] = ALPHA_GRID
    beta_grid: tuple[float, ...] = BETA_GRID
    gamma_grid: tuple[float, ...] = GAMMA_GRID
    val_fraction: float = 0.25
    seed: int = 0
    augment_views: int = DEFAULT_AUGMENT_VIEWS

    def __post_init__(self) -> None:
        check_augment_views(self.augment_views)
        one_of("mode", self.mode, MODES)
        integer("top_s", self.top_s, 1)
        number("lam", self.lam, low=0, finite=True)
        integer("vision_rank", self.vision_rank, 1, optional=True)
        integer("language_rank", self.language_rank, 1, optional=True)
        number("val_fraction", self.val_fraction, low=0, high=1, open_low=True, open_high=True)
        integer("seed", self.seed, None)
        for name in ("alpha", "beta", "gamma"):
            number(name, getattr(self, name), low=0, finite=True, optional=True)
            object.__setattr__(self, f"{name}_grid", numbers(f"{name}_grid", getattr(self, f"{name}_grid"), low=0))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SSPConfig:
        # __post_init__ validates and turns grids (JSON lists) into tuples
        return cls(**known_fields(cls, data, "few-shot"))


__all__ = [
    "ALPHA_GRID",
    "BETA_GRID",
    "DEFAULT_ALPHA",
    "DEFAULT_BETA",
    "DEFAULT_GAMMA",
    "GAMMA_GRID",
    "MODES",
    "SSPConfig",
]
