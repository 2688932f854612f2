"""The paper's comparison methods on the same embeddings as S^3: DCLIP, CuPL and WaffleCLIP (zero-shot, as spaces
scored by the one metric implementation) and the texts and files they are made of."""

from s3_hf.baselines.spaces import BASELINE_METRICS, BASELINES, build_method_space
from s3_hf.baselines.texts import (
    DCLIP_TEMPLATES,
    DEFAULT_WAFFLE_COUNT,
    WAFFLE_SEEDS,
    WAFFLE_TEMPLATE,
    MatchReport,
    WaffleShape,
    dclip_template,
    dclip_texts,
    descriptor_sentence,
    match_class_texts,
    read_class_texts,
    waffle_descriptors,
    waffle_shape,
    waffle_texts,
)

__all__ = [
    "BASELINES",
    "BASELINE_METRICS",
    "DCLIP_TEMPLATES",
    "DEFAULT_WAFFLE_COUNT",
    "WAFFLE_SEEDS",
    "WAFFLE_TEMPLATE",
    "MatchReport",
    "WaffleShape",
    "build_method_space",
    "dclip_template",
    "dclip_texts",
    "descriptor_sentence",
    "match_class_texts",
    "read_class_texts",
    "waffle_descriptors",
    "waffle_shape",
    "waffle_texts",
]
