"""Few-shot classification on top of S^3: SSP and its Tip-Adapter-style cache, training-free."""

from s3_hf.fewshot.adapter import SSP_CONFIG_NAME, SSP_TENSORS_NAME, FitInfo, SSPAdapter
from s3_hf.fewshot.config import SSPConfig
from s3_hf.fewshot.features import (
    DEFAULT_AUGMENT_VIEWS,
    encode_support_images,
    encode_support_views,
    global_and_local,
    view_keys,
)
from s3_hf.fewshot.ssp import fit_ssp
from s3_hf.fewshot.support import read_support, sample_shots
from s3_hf.fewshot.text import class_text_vectors, fit_for_space

__all__ = [
    "DEFAULT_AUGMENT_VIEWS",
    "SSP_CONFIG_NAME",
    "SSP_TENSORS_NAME",
    "FitInfo",
    "SSPAdapter",
    "SSPConfig",
    "class_text_vectors",
    "encode_support_images",
    "encode_support_views",
    "fit_for_space",
    "fit_ssp",
    "global_and_local",
    "read_support",
    "sample_shots",
    "view_keys",
]
