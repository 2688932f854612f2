"""What differs between the model families of transformers' zero-shot image classification: how logits become
scores (a softmax over classes, or a per-class sigmoid), the tokenizer settings the family was trained with, how
cosine similarity becomes a logit (times ``exp(logit_scale)``, or divided by a ``temperature``), the logit bias, the
text encoder's context length, whether the vision tower has patch tokens in the joint space (few-shot SSP needs
them), and which families S^3 cannot serve at all.

The rules are transformers' own (``ZeroShotImageClassificationPipeline``): a model type containing ``"siglip"``
(SigLIP, SigLIP 2) is tokenised with ``padding="max_length", max_length=64, truncation=True`` and scored with a
sigmoid of ``exp(logit_scale) * s + logit_bias`` per class; every other family pads to the longest text and uses a
softmax over classes.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from s3_hf.errors import InvalidConfigError, UnsupportedModelError

SCORING_RULES = ("softmax", "sigmoid")
#: Text canonicalisations: ``None`` (the text as written, transformers' behaviour) or ``"lower_no_punct"``
#: (lower-cased, punctuation replaced by spaces, whitespace collapsed), as SigLIP 2's authors recommend.
TEXT_CANONICALIZATIONS = (None, "lower_no_punct")
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
#: Families whose logits are cosine similarities divided by a learnt ``temperature`` (not times ``exp(logit_scale)``).
TEMPERATURE_FAMILIES = ("align", "tipsv2")
#: Families whose text positions start after the padding index (RoBERTa-style), so fewer tokens fit than there are
#: position embeddings.
OFFSET_POSITION_FAMILIES = ("altclip",)
#: Families transformers maps to zero-shot image classification that S^3 cannot serve, and why.
UNSUPPORTED_FAMILIES = {
    "blip-2": (
        "blip-2 has no single image embedding: it scores a text against each of an image's query-token embeddings "
        "and keeps the best match (or scores the image-text pair jointly with its matching head), while S^3 needs "
        "one text and one image embedding in a shared space"
    ),
    "videoprism": (
        "videoprism encodes videos (pixel_values_videos), not images, and has no image features; S^3 classifies "
        "images with separate text and image embeddings"
    ),
}


@dataclass(frozen=True)
class FamilyInfo:
    """The scoring facts of a model family."""

    family: str
    scoring: str = "softmax"
    tokenizer_kwargs: dict[str, Any] = field(default_factory=lambda: {"padding": True})

    @property
    def scale_parameter(self) -> str:
        """The model attribute that turns similarities into logits: ``"temperature"`` or ``"logit_scale"``."""
        return "temperature" if self.family in TEMPERATURE_FAMILIES else "logit_scale"


def family_info(model_type: str) -> FamilyInfo:
    """The rules of ``model_type`` (``model.config.model_type``)."""
    if "siglip" in model_type:
        return FamilyInfo(model_type, "sigmoid", {"padding": "max_length", "max_length": 64, "truncation": True})
    return FamilyInfo(model_type)


def model_family(model: Any) -> FamilyInfo:
    """The family rules of a transformers model (``"clip"`` when the config names no type)."""
    return family_info(str(getattr(getattr(model, "config", None), "model_type", "") or "clip"))


def check_supported(model: Any) -> FamilyInfo:
    """The family of ``model``, or :class:`UnsupportedModelError` if S^3 cannot serve it (see
    :data:`UNSUPPORTED_FAMILIES`) or it lacks the dual-encoder interface (text and image features, a logit scale)."""
    info = model_family(model)
    name = type(model).__name__
    reason = UNSUPPORTED_FAMILIES.get(info.family)
    if reason is not None:
        raise UnsupportedModelError(
            f"{name} cannot be used with S^3: {reason}. Use a dual encoder such as CLIP, SigLIP, SigLIP 2, "
            "MetaCLIP 2, ALIGN, AltCLIP, BLIP (BlipModel), Chinese-CLIP, CLIPSeg or TIPSv2."
        )
    for attr in ("get_image_features", "get_text_features", info.scale_parameter):
        if not hasattr(model, attr):
            raise UnsupportedModelError(
                f"{name} is not a CLIP-style dual encoder (it has no {attr}). "
                "Use a CLIPModel checkpoint such as openai/clip-vit-base-patch32."
            )
    return info


def embedding_dim(model: Any) -> int:
    """The size of the joint embedding space (``projection_dim``, or the text tower's output size where the
    family has no projection, as SigLIP and TIPSv2)."""
    config = model.config
    dim = getattr(config, "projection_dim", None)
    if dim is None:
        text = getattr(config, "text_config", None)
        dim = getattr(text, "projection_size", None) or getattr(text, "hidden_size", None)
    return int(dim)


def max_text_tokens(model: Any) -> int:
    """The text encoder's context length in tokens, special tokens included (77 for CLIP, 64 for SigLIP, 512 for
    the RoBERTa tower of AltCLIP, whose 514 positions start after the padding index)."""
    text = model.config.text_config
    n = int(text.max_position_embeddings)
    if model_family(model).family in OFFSET_POSITION_FAMILIES:
        n -= int(text.pad_token_id) + 1
    return n


def logit_scale(model: Any) -> float:
    """``τ``, the factor from cosine similarity to logit: ``exp(logit_scale)``, or ``1 / temperature`` for the
    families that divide by a temperature (ALIGN, TIPSv2)."""
    info = model_family(model)
    value = getattr(model, info.scale_parameter).detach().float()
    return float(1.0 / value) if info.scale_parameter == "temperature" else float(value.exp())


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


def check_canonicalization(rule: str | None) -> str | None:
    """``rule`` itself, or an :class:`InvalidConfigError` listing :data:`TEXT_CANONICALIZATIONS`."""
    if rule not in TEXT_CANONICALIZATIONS:
        raise InvalidConfigError(f"Unknown text canonicalization {rule!r}; use one of {TEXT_CANONICALIZATIONS}.")
    return rule


def canonicalize(text: str, rule: str | None) -> str:
    """``text`` as the canonicalisation ``rule`` (one of :data:`TEXT_CANONICALIZATIONS`) writes it."""
    if check_canonicalization(rule) is None:
        return text
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


__all__ = [
    "OFFSET_POSITION_FAMILIES",
    "SCORING_RULES",
    "TEMPERATURE_FAMILIES",
    "TEXT_CANONICALIZATIONS",
    "UNSUPPORTED_FAMILIES",
    "FamilyInfo",
    "UnsupportedModelError",
    "canonicalize",
    "check_canonicalization",
    "check_supported",
    "embedding_dim",
    "family_info",
    "logit_bias",
    "logit_scale",
    "max_text_tokens",
    "model_family",
    "probabilities",
]
