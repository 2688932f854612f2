"""The paper's comparison methods on the same embeddings as S^3: DCLIP, CuPL and WaffleCLIP (zero-shot, as spaces
scored by the one metric implementation) and the texts and files they are made of."""

from .spaces import BASELINE_METRICS, BASELINES, build_method_space
from .texts import (
    DEFAULT_WAFFLE_COUNT,
    MatchReport,
    dclip_texts,
    descriptor_sentence,
    match_class_texts,
    read_class_texts,
    waffle_descriptors,
    waffle_texts,
)

__all__ = [
    "BASELINES",
    "BASELINE_METRICS",
    "DEFAULT_WAFFLE_COUNT",
    "MatchReport",
    "build_method_space",
    "dclip_texts",
    "descriptor_sentence",
    "match_class_texts",
    "read_class_texts",
    "waffle_descriptors",
    "waffle_texts",
]
