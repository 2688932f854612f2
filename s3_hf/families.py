"""What differs between the model families of transformers' zero-shot image classification: how logits become
scores (a softmax over classes, or a per-class sigmoid), the tokenizer settings the family was trained with, the
logit bias, and whether the vision tower has patch tokens in the joint space (few-shot SSP needs them).

The rules are transformers' own (``ZeroShotImageClassificationPipeline``): a model type containing ``"siglip"``
(SigLIP, SigLIP 2) is tokenised with ``padding="max_length", max_length=64, truncation=True`` and scored with a
sigmoid of ``exp(logit_scale) * s + logit_bias`` per class; every other family pads to the longest text and uses a
softmax over classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidConfigError

SCORING_RULES = ("softmax", "sigmoid")
#: Families whose vision tower exposes patch tokens that map into the joint space (few-shot SSP uses them).
PATCH_TOKEN_FAMILIES = ("clip", "metaclip_2")


@dataclass(frozen=True)
class FamilyInfo:
    """The scoring facts of a model family."""

    family: str
    scoring: str = "softmax"
    tokenizer_kwargs: dict[str, Any] = field(default_factory=lambda: {"padding": True})

    @property
    def has_patch_tokens(self) -> bool:
        return self.family in PATCH_TOKEN_FAMILIES


def family_info(model_type: str) -> FamilyInfo:
    """The rules of ``model_type`` (``model.config.model_type``)."""
    if "siglip" in model_type:
        return FamilyInfo(model_type, "sigmoid", {"padding": "max_length", "max_length": 64, "truncation": True})
    return FamilyInfo(model_type)


def model_family(model: Any) -> FamilyInfo:
    """The family rules of a transformers model (``"clip"`` when the config names no type)."""
    return family_info(str(getattr(getattr(model, "config", None), "model_type", "") or "clip"))


def embedding_dim(model: Any) -> int:
    """The size of the joint embedding space (``projection_dim``, or the text tower's output size where the
    family has no projection, as SigLIP)."""
    config = model.config
    dim = getattr(config, "projection_dim", None)
    if dim is None:
        text = getattr(config, "text_config", None)
        dim = getattr(text, "projection_size", None) or getattr(text, "hidden_size", None)
    return int(dim)


def logit_bias(model: Any) -> float:
    """The model's logit bias ``b`` (0 for families without one, such as CLIP)."""
    bias = getattr(model, "logit_bias", None)
    return 0.0 if bias is None else float(bias.detach().float().reshape(-1)[0])


def probabilities(logits: Any, scoring: str) -> Any:
    """Logits ``(..., C)`` -> scores: a softmax over classes or a per-class sigmoid."""
    if scoring == "sigmoid":
        return logits.float().sigmoid()
    if scoring == "softmax":
        return logits.float().softmax(-1)
    raise InvalidConfigError(f"Unknown scoring rule {scoring!r}; use one of {SCORING_RULES}.")


__all__ = [
    "PATCH_TOKEN_FAMILIES",
    "SCORING_RULES",
    "FamilyInfo",
    "embedding_dim",
    "family_info",
    "logit_bias",
    "model_family",
    "probabilities",
]
