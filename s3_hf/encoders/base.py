"""The encoder interface: everything S^3 needs from a vision-language dual encoder, and nothing more.

Spaces, metrics, artifacts, few-shot SSP, eval, the bench and the app talk to an :class:`Encoder` only, so they
are the same for every model family. Two implementations exist: :class:`~s3_hf.encoders.hf.TransformersEncoder`
(every family of transformers' zero-shot image classification that S^3 can serve) and
:class:`~s3_hf.encoders.openclip.OpenClipEncoder` (open_clip checkpoints, an optional extra).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import InvalidConfigError
from ..families import FamilyInfo


class Encoder(abc.ABC):
    """A dual encoder: texts and images to unit vectors in one joint space, and the facts that turn their cosine
    similarities into scores.

    Attributes:
        model: the underlying model (a transformers model or an open_clip model).
        tokenizer: its tokenizer.
        image_processor: its image preprocessing (a transformers image processor or an open_clip transform).
        name: the checkpoint name recorded in spaces built with it.
        random_weights: True when the checkpoint held no weights (timings only, never accuracy).
    """

    model: Any
    tokenizer: Any
    image_processor: Any
    name: str
    random_weights: bool = False

    # ---------------------------------------------------------------------------------------------- facts
    @property
    @abc.abstractmethod
    def family(self) -> FamilyInfo:
        """The family, its scoring rule (softmax or sigmoid) and its tokenizer settings."""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """The size of the joint embedding space."""

    @property
    @abc.abstractmethod
    def max_text_tokens(self) -> int:
        """The text encoder's context length in tokens, special tokens included."""

    @property
    @abc.abstractmethod
    def logit_scale(self) -> float:
        """``τ``, the factor from cosine similarity to logit."""

    @property
    @abc.abstractmethod
    def logit_bias(self) -> float:
        """``b``, added to every logit (0 where the family has none)."""

    @property
    def revision(self) -> str | None:
        """The checkpoint's revision (commit hash) where known."""
        return None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def has_patch_tokens(self) -> bool:
        """Whether :meth:`global_and_local` is available (few-shot SSP needs it)."""
        return False

    # ---------------------------------------------------------------------------------------------- texts
    @torch.inference_mode()
    def encode_texts(
        self,
        texts: Sequence[str],
        batch_size: int = 256,
        progress: bool = False,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
    ) -> torch.Tensor:
        """Texts -> ``(N, D)`` unit vectors (float32, on the model's device), tokenised as the family needs;
        ``tokenizer_kwargs`` override the family's settings."""
        kwargs = {**self.family.tokenizer_kwargs, **(tokenizer_kwargs or {})}
        chunks = []
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="Encoding texts", disable=not progress):
            batch = list(texts[start : start + batch_size])
            chunks.append(F.normalize(self._text_features(batch, kwargs).float(), dim=-1))
        return torch.cat(chunks) if chunks else torch.empty(0, self.dim)

    @abc.abstractmethod
    def _text_features(self, texts: list[str], tokenizer_kwargs: dict[str, Any]) -> torch.Tensor:
        """One batch of texts -> ``(n, D)`` text embeddings in the joint space (not yet normalised)."""

    @abc.abstractmethod
    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text, special tokens included, without truncation."""

    # --------------------------------------------------------------------------------------------- images
    @abc.abstractmethod
    def image_inputs(self, images: Sequence[Any]) -> dict[str, torch.Tensor]:
        """RGB PIL images -> the model's preprocessed image inputs (``pixel_values`` and any companions)."""

    @abc.abstractmethod
    def encode_pixels(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Preprocessed images (``pixel_values`` or all of :meth:`image_inputs`) -> ``(B, D)`` unit vectors."""

    def require_patch_tokens(self) -> None:
        """Raise :class:`~s3_hf.errors.InvalidConfigError` (saying what to use instead) unless the family has patch
        tokens in the joint space (:meth:`global_and_local`)."""
        if not self.has_patch_tokens:
            raise InvalidConfigError(
                f"{self.family.family} models ({self.name or type(self.model).__name__}) have no patch tokens in the "
                "joint space, which few-shot SSP needs. Classify zero-shot, or use a ViT of CLIP, MetaCLIP 2, "
                "SigLIP, SigLIP 2 or open_clip."
            )

    def global_and_local(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, D)`` unit global embeddings (exactly :meth:`encode_pixels`) and ``(B, P, D)`` unit patch tokens in
        the joint space. Families without patch tokens raise :class:`~s3_hf.errors.InvalidConfigError`."""
        self.require_patch_tokens()
        raise NotImplementedError  # a family with patch tokens implements this

    @property
    def has_dense_features(self) -> bool:
        """Whether :meth:`dense_features` is available (open-vocabulary segmentation needs it)."""
        return False

    def require_dense_features(self) -> None:
        """Raise :class:`~s3_hf.errors.InvalidConfigError` (saying what to use instead) unless
        :meth:`dense_features` is available."""
        if not self.has_dense_features:
            raise InvalidConfigError(
                f"{self.family.family} models ({self.name or type(self.model).__name__}) give no dense patch "
                "features here; open-vocabulary segmentation needs a ViT of CLIP, MetaCLIP 2 or open_clip."
            )

    def dense_features(self, pixels: torch.Tensor, variant: str | None = "naclip") -> torch.Tensor:
        """``(B, h, w, D)`` unit patch features in the joint space of normalised pixels ``(B, 3, H, W)`` of any size
        (a multiple of the patch size), with the last block replaced by ``variant`` (see :mod:`s3_hf.dense`)."""
        self.require_dense_features()
        raise NotImplementedError  # a family with dense features implements this

    def decode_min_side(self) -> int | None:
        """The smallest short side a decoded image needs for this model's preprocessing (its resize target, which
        covers its crop), or ``None`` where the preprocessing has no fixed target (SigLIP 2's patch budget). The
        fast decoding path (:func:`s3_hf.encoding.draft_jpeg`) never decodes below it."""
        size = getattr(self.image_processor, "size", None)
        get = (lambda k: size.get(k)) if isinstance(size, dict) else (lambda k: getattr(size, k, None))
        if get("shortest_edge"):
            crop = getattr(self.image_processor, "crop_size", None)
            crop_sides = [v for v in (getattr(crop, "height", None), getattr(crop, "width", None)) if v]
            if isinstance(crop, dict):
                crop_sides = [v for v in (crop.get("height"), crop.get("width")) if v]
            return int(max([get("shortest_edge"), *crop_sides]))
        if get("height") and get("width"):
            return int(max(get("height"), get("width")))
        return None

    def pixel_stats(self) -> tuple[list[float], list[float]]:
        """The mean and standard deviation the image preprocessing normalises with, per channel."""
        processor = self.image_processor
        return list(processor.image_mean), list(processor.image_std)

    @property
    def patch_size(self) -> int:
        """The vision tower's patch size in pixels."""
        raise InvalidConfigError(f"{self.family.family} models have no patch grid here.")

    def encode_images(self, images: Sequence[Any], batch_size: int = 32, progress: bool = False) -> torch.Tensor:
        """Images (paths, URLs or PIL) -> ``(N, D)`` unit vectors."""
        from ..encoding import load_image

        chunks = []
        starts = range(0, len(images), batch_size)
        for start in tqdm(starts, desc="Encoding images", disable=not progress):
            batch = [load_image(im) for im in images[start : start + batch_size]]
            chunks.append(self.encode_pixels(self.image_inputs(batch)))
        return torch.cat(chunks) if chunks else torch.empty(0, self.dim)


def moved(inputs: torch.Tensor | Mapping[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> dict:
    """Image inputs as a dict on ``device``; floating tensors cast to ``dtype``."""
    inputs = {"pixel_values": inputs} if isinstance(inputs, torch.Tensor) else dict(inputs)
    return {k: v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device) for k, v in inputs.items()}


def as_encoder(model: Any, tokenizer: Any = None, image_processor: Any = None) -> Encoder:
    """``model`` itself if it is an :class:`Encoder`, else a transformers model wrapped with its processors."""
    if isinstance(model, Encoder):
        return model
    from .hf import TransformersEncoder

    return TransformersEncoder(model, tokenizer, image_processor)


__all__ = ["Encoder", "as_encoder", "moved"]
