"""open_clip checkpoints behind the encoder interface (the optional ``open_clip`` extra:
``pip install "s3-hf[open_clip]"``).

A checkpoint is named ``hf-hub:org/name`` (a Hub repo with ``open_clip_config.json``), ``local-dir:PATH`` or a
local folder holding ``open_clip_config.json`` (and, unless it is a shapes-only folder, the weights). Texts are
tokenised by open_clip's own tokenizer for the model, images preprocessed by its evaluation transform; scores are
``softmax(exp(logit_scale) * s)`` over classes, or a per-class ``sigmoid(exp(logit_scale) * s + logit_bias)`` for
the SigLIP models open_clip hosts (those with a logit bias).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from s3_hf.errors import InvalidConfigError, ModelLoadError
from s3_hf.io.files import load_json_text
from s3_hf.models.encoders.base import Encoder, moved
from s3_hf.models.families import FamilyInfo

logger = logging.getLogger(__name__)

FAMILY = "open_clip"
CONFIG_NAME = "open_clip_config.json"
WEIGHT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
)
HUB_PREFIX = "hf-hub:"
LOCAL_PREFIX = "local-dir:"
_FIX_CONFIG = "Pass a folder written by open_clip's push_to_hf_hub/save_for_hf."
INSTALL_HINT = 'open_clip checkpoints need the open_clip extra: pip install "s3-hf[open_clip]".'


def is_open_clip_name(name_or_path: str | os.PathLike) -> bool:
    """Whether ``name_or_path`` names an open_clip checkpoint: ``hf-hub:...``, ``local-dir:...`` or a folder that
    holds ``open_clip_config.json``."""
    name = os.fspath(name_or_path)
    if name.startswith((HUB_PREFIX, LOCAL_PREFIX)):
        return True
    return Path(name).is_dir() and (Path(name) / CONFIG_NAME).is_file()


def _import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError as err:
        raise ModelLoadError(f"{INSTALL_HINT} ({type(err).__name__}: {err})") from err
    return open_clip


class OpenClipEncoder(Encoder):
    """An open_clip model with its tokenizer and evaluation transform.

    Args:
        model: an open_clip ``CLIP`` / ``CustomTextCLIP`` model.
        tokenizer: its tokenizer (``open_clip.get_tokenizer``).
        image_processor: its evaluation transform (PIL image -> tensor).
        name: the checkpoint name recorded in spaces (``hf-hub:org/name`` or the folder).
        random_weights: whether the checkpoint held no weights.
    """

    def __init__(
        self, model: Any, tokenizer: Any, image_processor: Any, *, name: str = "", random_weights: bool = False
    ) -> None:
        for attr in ("encode_text", "encode_image", "logit_scale"):
            if not hasattr(model, attr):
                from s3_hf.errors import UnsupportedModelError

                raise UnsupportedModelError(
                    f"{type(model).__name__} is not an open_clip dual encoder (it has no {attr})."
                )
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.name = name
        self.random_weights = random_weights
        bias = getattr(model, "logit_bias", None)
        context = int(getattr(tokenizer, "context_length", None) or getattr(model, "context_length", 77))
        self._family = FamilyInfo(FAMILY, "sigmoid" if bias is not None else "softmax", {"context_length": context})
        self._dim: int | None = None

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | None = "auto",
        dtype: str | torch.dtype | None = None,
        seed: int = 0,
    ) -> OpenClipEncoder:
        """Load ``hf-hub:org/name``, ``local-dir:PATH`` or a local open_clip folder.

        Args:
            name_or_path: the checkpoint.
            device: ``"auto"`` (CUDA when available), ``"cpu"``, ...
            dtype: torch dtype or its name (float32, float16 or bfloat16).
            seed: the seed of random initialisation, for a folder without weights.

        Raises:
            ModelLoadError: open_clip is not installed, or the checkpoint cannot be found or read.
        """
        from s3_hf.models.loading import hub_offline, model_identity, resolve_device

        target = resolve_device(device)
        open_clip = _import_open_clip()
        name = os.fspath(name_or_path)
        spec = name if name.startswith((HUB_PREFIX, LOCAL_PREFIX)) else LOCAL_PREFIX + name
        random_weights = False
        if spec.startswith(LOCAL_PREFIX):
            folder, random_weights = _local_folder(spec, name)
            spec = LOCAL_PREFIX + str(folder)
        else:
            _require_reachable(spec[len(HUB_PREFIX) :], name)
        precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(
            getattr(torch, dtype) if isinstance(dtype, str) else dtype, "fp32"
        )
        if random_weights:
            logger.warning(
                "%s holds no weights: the model is initialised at random (seed %d). Timings are real, scores and "
                "accuracies are meaningless.",
                name,
                seed,
            )
            torch.manual_seed(seed)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(spec, device=target, precision=precision)
            tokenizer = open_clip.get_tokenizer(spec)
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ModelLoadError(
                f"Could not load the open_clip model {name!r}: {first} "
                + ("HF_HUB_OFFLINE is set, so nothing is downloaded. " if hub_offline() else "")
                + "Pass a local open_clip folder (open_clip_config.json and open_clip_model.safetensors) or an "
                "hf-hub:org/name id you can download."
            ) from err
        return cls(model.eval(), tokenizer, preprocess, name=model_identity(name), random_weights=random_weights)

    # ---------------------------------------------------------------------------------------------- facts
    @property
    def family(self) -> FamilyInfo:
        return self._family

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.encode_texts([""]).shape[-1])
        return self._dim

    @property
    def max_text_tokens(self) -> int:
        return int(self._family.tokenizer_kwargs["context_length"])

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().float().exp())

    @property
    def logit_bias(self) -> float:
        bias = getattr(self.model, "logit_bias", None)
        return 0.0 if bias is None else float(bias.detach().float().reshape(-1)[0])

    @property
    def has_patch_tokens(self) -> bool:
        visual = getattr(self.model, "visual", None)
        return (
            all(hasattr(visual, a) for a in ("_embeds", "transformer", "_pool", "ln_post"))
            and getattr(visual, "attn_pool", None) is None
            and getattr(visual, "pool_type", None) == "tok"
            and not getattr(visual, "final_ln_after_pool", False)
            and getattr(visual, "proj", None) is not None
        )

    @property
    def has_dense_features(self) -> bool:
        return self.has_patch_tokens

    @property
    def patch_size(self) -> int:
        if not self.has_dense_features:
            return super().patch_size
        return int(self.model.visual.patch_size[0])

    def decode_min_side(self) -> int | None:
        for t in getattr(self.image_processor, "transforms", []):
            size = getattr(t, "size", None)
            if type(t).__name__ == "Resize" and size is not None:
                return int(size) if isinstance(size, int) else int(max(size))
        return None

    def pixel_stats(self) -> tuple[list[float], list[float]]:
        for t in getattr(self.image_processor, "transforms", []):
            if hasattr(t, "mean") and hasattr(t, "std"):
                return [float(x) for x in t.mean], [float(x) for x in t.std]
        raise InvalidConfigError("The open_clip transform has no Normalize step to read the pixel statistics from.")

    @torch.inference_mode()
    def dense_features(
        self, pixels: torch.Tensor, variant: str | None = "naclip", positions: str = "size"
    ) -> torch.Tensor:
        from s3_hf.models.dense import BlockParts, interpolate_positions, last_block

        self.require_dense_features()
        visual = self.model.visual
        px = pixels.to(device=self.device, dtype=self._dtype())
        b, _, height, width = px.shape
        grid = (height // self.patch_size, width // self.patch_size)
        x = visual.conv1(px).flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(b, 1, -1)
        pos = interpolate_positions(visual.positional_embedding, grid, rule=positions)
        x = torch.cat([cls, x], 1) + pos.to(x.dtype)
        x = visual.ln_pre(visual.patch_dropout(x))
        blocks = visual.transformer.resblocks
        if not getattr(visual.transformer, "batch_first", True):
            raise InvalidConfigError(
                "This open_clip vision tower runs sequence-first; dense features need batch-first."
            )
        for block in blocks[:-1]:
            x = block(x)
        last = blocks[-1]
        parts = BlockParts(
            ln_1=last.ln_1,
            qkv=lambda y: F.linear(y, last.attn.in_proj_weight, last.attn.in_proj_bias).chunk(3, dim=-1),
            out=last.attn.out_proj,
            ln_2=last.ln_2,
            mlp=last.mlp,
            heads=last.attn.num_heads,
            own=last,
            scale_1=last.ls_1,
            scale_2=last.ls_2,
        )
        tokens = last_block(x, parts, variant, grid)
        local = visual.ln_post(tokens[:, 1:]) @ visual.proj
        return F.normalize(local.float(), dim=-1).reshape(b, grid[0], grid[1], -1)

    # ---------------------------------------------------------------------------------------------- texts
    def _text_features(self, texts: list[str], tokenizer_kwargs: dict[str, Any]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts, **tokenizer_kwargs).to(self.device))

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        inner = getattr(self.tokenizer, "tokenizer", None)
        if inner is not None:  # a transformers tokenizer inside open_clip's wrapper
            return [len(ids) for ids in inner(list(texts), truncation=False)["input_ids"]]
        return [len(self.tokenizer.encode(t)) + 2 for t in texts]  # + start and end of text

    # --------------------------------------------------------------------------------------------- images
    def image_inputs(self, images: Sequence[Any]) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.stack([self.image_processor(im) for im in images])}

    def _dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @torch.inference_mode()
    def encode_pixels(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        pixels = moved(inputs, self.device, self._dtype())["pixel_values"]
        return F.normalize(self.model.encode_image(pixels).float(), dim=-1)

    @torch.inference_mode()
    def global_and_local(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        self.require_patch_tokens()
        visual = self.model.visual
        pixels = moved(inputs, self.device, self._dtype())["pixel_values"]
        # VisionTransformer.forward, keeping the tokens: ln_post, then the projection, for the class token and
        # for every patch token alike
        pooled, tokens = visual._pool(visual.transformer(visual._embeds(pixels)))
        return F.normalize((pooled @ visual.proj).float(), dim=-1), F.normalize((tokens @ visual.proj).float(), dim=-1)


def _local_folder(spec: str, name: str) -> tuple[Path, bool]:
    """The folder of a ``local-dir:`` spec and whether it holds no weights (then its model, initialised at random,
    must fit the size bound); a folder without a readable open_clip config is refused."""
    from s3_hf.models.loading import check_model_size

    folder = Path(spec[len(LOCAL_PREFIX) :]).expanduser()
    if not (folder / CONFIG_NAME).is_file():
        raise ModelLoadError(
            f"{folder} holds no {CONFIG_NAME}: it is not an open_clip checkpoint folder. Pass a folder "
            "written by open_clip's push_to_hf_hub/save_for_hf, or hf-hub:org/name."
        )
    try:
        text = (folder / CONFIG_NAME).read_text(encoding="utf-8")
        model_cfg = load_json_text(text, ModelLoadError, str(folder / CONFIG_NAME), _FIX_CONFIG)["model_cfg"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelLoadError(f"{folder / CONFIG_NAME} is not a valid open_clip config: {err}.") from err
    random_weights = not any((folder / w).is_file() for w in WEIGHT_NAMES)
    if random_weights and isinstance(model_cfg, dict):
        check_model_size(model_cfg, name)
    return folder, random_weights


def _require_reachable(repo: str, name: str) -> None:
    """With the Hub out of reach (and not offline on purpose), refuse at once a repo the local cache lacks."""
    from s3_hf.models.loading import hub_offline, hub_reachable

    if hub_offline() or hub_reachable():
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(repo, CONFIG_NAME), str):
        raise ModelLoadError(
            f"Could not load the open_clip model {name!r}: the Hub cannot be reached from here and it is "
            "not in the local cache. Download it on a machine with network access "
            f"(`hf download {repo} --local-dir DIR`) and pass the folder."
        )


__all__ = ["CONFIG_NAME", "FAMILY", "OpenClipEncoder", "is_open_clip_name"]
