"""The transformers families behind the encoder interface: any model of ``AutoModelForZeroShotImageClassification``
that S^3 can serve (see :mod:`s3_hf.models.families` for the rules that differ between them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from s3_hf.models.encoders.base import Encoder, moved
from s3_hf.models.families import FamilyInfo, check_supported, embedding_dim, logit_bias, logit_scale, max_text_tokens

if TYPE_CHECKING:
    from PIL import Image

#: Families whose patch tokens map into the joint space through the vision tower's own head: ``projection`` (the
#: last layer's tokens through the post-layernorm and the visual projection, as the class token is) or ``map``
#: (SigLIP's attention-pooling head applied to each token on its own: pooling one token returns its value path).
PATCH_TOKEN_HEADS = {"clip": "projection", "metaclip_2": "projection", "siglip": "map", "siglip2": "map"}


def _features(out: Any) -> torch.Tensor:
    """The projected embeddings of a ``get_*_features`` call (a model output with ``pooler_output``, or a tensor)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class TransformersEncoder(Encoder):
    """A transformers dual encoder with its tokenizer and image processor.

    Args:
        model: a model of a family S^3 serves (text and image features, a logit scale or temperature).
        tokenizer: its tokenizer.
        image_processor: its image processor.
        name: the checkpoint name (default: the model's ``name_or_path``).
        random_weights: whether the checkpoint held no weights.

    Raises:
        UnsupportedModelError: the model's family cannot serve S^3 (the message says why).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        image_processor: Any = None,
        *,
        name: str | None = None,
        random_weights: bool = False,
        revision: str | None = None,
    ) -> None:
        self._family = check_supported(model)
        self._revision = revision
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        config = getattr(model, "config", None)
        self.name = name or str(getattr(model, "name_or_path", "") or getattr(config, "_name_or_path", "") or "")
        self.random_weights = random_weights
        if not name and self.name and Path(self.name).is_dir():  # a model transformers read from a Hub cache folder
            from s3_hf.models.loading import hub_snapshot

            self.name, self._revision = hub_snapshot(Path(self.name)) or (self.name, self._revision)

    @property
    def family(self) -> FamilyInfo:
        return self._family

    @property
    def dim(self) -> int:
        return embedding_dim(self.model)

    @property
    def max_text_tokens(self) -> int:
        return max_text_tokens(self.model)

    @property
    def logit_scale(self) -> float:
        return logit_scale(self.model)

    @property
    def logit_bias(self) -> float:
        return logit_bias(self.model)

    @property
    def revision(self) -> str | None:
        """The Hub commit the model was read at: from the loader, else what an older transformers kept on the
        config, else (a model transformers loaded, as a pipeline's) the Hub cache's snapshot of its id; ``None`` for
        a local folder or a model built in memory."""
        if self._revision is None:
            self._revision = getattr(self.model.config, "_commit_hash", None)
        if self._revision is None and self.name and not Path(self.name).is_dir():
            from s3_hf.models.loading import resolved_commit

            self._revision = resolved_commit(self.name)
        return self._revision

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def has_patch_tokens(self) -> bool:
        return self._patch_head() is not None

    def _patch_head(self) -> str | None:
        head = PATCH_TOKEN_HEADS.get(self._family.family)
        vision = getattr(self.model, "vision_model", None)
        if head == "projection" and hasattr(vision, "post_layernorm") and hasattr(self.model, "visual_projection"):
            return head
        if head == "map" and getattr(vision, "head", None) is not None:
            return head
        return None

    @property
    def has_dense_features(self) -> bool:
        return self._patch_head() == "projection"

    @property
    def patch_size(self) -> int:
        if not self.has_dense_features:
            return super().patch_size
        return int(self.model.config.vision_config.patch_size)

    @torch.inference_mode()
    def dense_features(
        self, pixels: torch.Tensor, variant: str | None = "naclip", positions: str = "size"
    ) -> torch.Tensor:
        from s3_hf.models.dense import BlockParts, check_position_rule, interpolate_positions, last_block

        self.require_dense_features()
        vision = self.model.vision_model
        px = pixels.to(device=self.model.device, dtype=self.model.dtype)
        b, _, height, width = px.shape
        grid = (height // self.patch_size, width // self.patch_size)
        if check_position_rule(positions) == "size":  # transformers' own rule
            hidden = vision.pre_layrnorm(vision.embeddings(px, interpolate_pos_encoding=True))
        else:  # the embeddings as transformers builds them, with the position rule of s3_hf.models.dense
            emb = vision.embeddings
            patches = emb.patch_embedding(px.to(emb.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
            tokens = torch.cat([emb.class_embedding.expand(b, 1, -1), patches], dim=1)
            pos = interpolate_positions(emb.position_embedding.weight, grid, rule=positions)
            hidden = vision.pre_layrnorm(tokens + pos.to(tokens.dtype)[None])
        layers = vision.encoder.layers
        for layer in layers[:-1]:
            hidden = layer(hidden, None)
        last = layers[-1]
        attn = last.self_attn
        parts = BlockParts(
            ln_1=last.layer_norm1,
            qkv=lambda y: (attn.q_proj(y), attn.k_proj(y), attn.v_proj(y)),
            out=attn.out_proj,
            ln_2=last.layer_norm2,
            mlp=last.mlp,
            heads=attn.num_heads,
            own=lambda t: last(t, None),
        )
        tokens = last_block(hidden, parts, variant, grid)
        local = self.model.visual_projection(vision.post_layernorm(tokens[:, 1:]))
        return F.normalize(local.float(), dim=-1).reshape(b, grid[0], grid[1], -1)

    # ---------------------------------------------------------------------------------------------- texts
    def _text_features(self, texts: list[str], tokenizer_kwargs: dict[str, Any]) -> torch.Tensor:
        tokens = self.tokenizer(texts, return_tensors="pt", **tokenizer_kwargs).to(self.model.device)
        return _features(
            self.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens.get("attention_mask"))
        )

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), truncation=False)["input_ids"]]

    # --------------------------------------------------------------------------------------------- images
    def image_inputs(self, images: Sequence[Any]) -> dict[str, torch.Tensor]:
        return image_inputs(self.image_processor, images)

    @torch.inference_mode()
    def encode_pixels(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        out = self.model.get_image_features(**moved(inputs, self.model.device, self.model.dtype))
        return F.normalize(_features(out).float(), dim=-1)

    @torch.inference_mode()
    def global_and_local(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        self.require_patch_tokens()
        head = self._patch_head()
        args = moved(inputs, self.model.device, self.model.dtype)
        out = self.model.get_image_features(**args)
        vision = self.model.vision_model
        if head == "projection":
            patches = out.last_hidden_state[:, 1:]  # drop the class token
            local = self.model.visual_projection(vision.post_layernorm(patches))
        else:
            tokens = out.last_hidden_state  # already through the post-layernorm; SigLIP has no class token
            b, p, d = tokens.shape
            local = vision.head(tokens.reshape(b * p, 1, d)).reshape(b, p, -1)
            mask = args.get("pixel_attention_mask")
            if mask is not None:  # SigLIP 2 pads to a fixed number of patches: padding gets no feature
                local = local * mask[..., None].to(local.dtype)
        return F.normalize(_features(out).float(), dim=-1), F.normalize(local.float(), dim=-1)


def image_inputs(image_processor: Callable[..., Any], images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
    """Preprocess RGB PIL images into the model's image inputs (``pixel_values``, and for families such as SigLIP 2
    the patch mask and shapes). Channels-last is stated explicitly so 1x1 and 3-pixel-wide images work."""
    out = image_processor(images=list(images), return_tensors="pt", input_data_format="channels_last")
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


__all__ = ["PATCH_TOKEN_HEADS", "TransformersEncoder", "image_inputs"]
