"""Loading a dual encoder (model, tokenizer, image processor) from a Hub id or a local folder: the one loader
every face uses."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelLoadError, UnsupportedModelError
from .families import UNSUPPORTED_FAMILIES

logger = logging.getLogger(__name__)

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


@dataclass
class LoadedModel:
    """A model with its processors. ``random_weights`` is True for a folder that holds a configuration but no
    weights (such as a shapes-only checkpoint): right for timing and memory, meaningless for accuracy."""

    model: Any
    tokenizer: Any
    image_processor: Any
    name: str
    random_weights: bool = False


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"``/``None`` -> ``"cuda"`` when available, else ``"cpu"``; anything else unchanged."""
    if device not in (None, "auto"):
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def has_weights(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Hub id (weights come from the Hub) or a local folder holding weight files."""
    p = Path(path)
    return not p.is_dir() or any(any(p.glob(pattern)) for pattern in WEIGHT_PATTERNS)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() not in ("", "0", "false", "no", "off")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens within ``timeout`` seconds (assumed yes behind a proxy,
    which a direct probe cannot judge). Lets loading fail in seconds instead of after minutes of retries."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return True
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def load_model(
    name_or_path: str | os.PathLike,
    *,
    device: str | None = "auto",
    dtype: str | Any | None = None,
    revision: str | None = None,
    seed: int = 0,
) -> LoadedModel:
    """Load a zero-shot image-classification model with its tokenizer and image processor.

    Args:
        name_or_path: a Hub repo id (``"openai/clip-vit-base-patch32"``) or a local folder.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``, ...
        dtype: a torch dtype or its name (``"float16"``); default float32.
        revision: the Hub revision.
        seed: the seed of random initialisation, for a folder without weights.

    Raises:
        ModelLoadError: the checkpoint cannot be found or read; the message says what to pass instead.
        UnsupportedModelError: the checkpoint's family cannot serve S^3 (it says why).
    """
    import torch
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModelForZeroShotImageClassification,
        AutoTokenizer,
    )

    name = os.fspath(name_or_path)
    path = Path(name)
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_local and not path.exists():
        raise ModelLoadError(
            f"Model folder {name} does not exist. Pass an existing checkpoint folder or a Hub repo id "
            "such as openai/clip-vit-base-patch32."
        )
    if path.exists() and not path.is_dir():
        raise ModelLoadError(f"{name} is a file; pass the folder that holds config.json (or a Hub repo id).")
    if path.is_dir() and not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{name} holds no config.json: it is not a model folder. Pass a folder written by "
            "save_pretrained (config.json, weights, tokenizer and preprocessor files) or a Hub repo id."
        )
    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    random_weights = not has_weights(name)
    # A Hub id with the Hub out of reach: use the local cache only, so a missing model fails at once
    cached_only = not path.is_dir() and not hub_offline() and not hub_reachable()
    try:
        config = AutoConfig.from_pretrained(name, revision=revision, local_files_only=cached_only)
    except (OSError, ValueError):
        config = None  # reported below, by the model's own loading
    reason = UNSUPPORTED_FAMILIES.get(str(getattr(config, "model_type", "")))
    if reason is not None:  # before the weights and processors: their loading errors would hide the reason
        raise UnsupportedModelError(f"{name} cannot be used with S^3: {reason}.")
    try:
        if random_weights:
            logger.warning(
                "%s holds no weights: the model is initialised at random (seed %d). Timings are real, scores and "
                "accuracies are meaningless.",
                name,
                seed,
            )
            torch.manual_seed(seed)
            model = AutoModelForZeroShotImageClassification.from_config(config or AutoConfig.from_pretrained(name))
            model.name_or_path = name
        else:
            model = AutoModelForZeroShotImageClassification.from_pretrained(
                name, revision=revision, local_files_only=cached_only
            )
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision, local_files_only=cached_only)
        image_processor = AutoImageProcessor.from_pretrained(name, revision=revision, local_files_only=cached_only)
    except (OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelLoadError(
            f"Could not load the model {name!r}: {first} "
            + ("HF_HUB_OFFLINE is set, so nothing is downloaded. " if hub_offline() else "")
            + ("The Hub cannot be reached from here and the model is not in the local cache. " if cached_only else "")
            + "Without network access, point --model at a local CLIP checkpoint (model= in Python): a folder holding "
            "config.json, model.safetensors, the tokenizer files and preprocessor_config.json (one written by "
            "save_pretrained, or "
            f"`hf download {name} --local-dir DIR` on a machine with network access)."
        ) from err
    model = model.to(device=resolve_device(device), dtype=torch_dtype or torch.float32).eval()
    return LoadedModel(model, tokenizer, image_processor, name, random_weights)


def load_chat_model(name_or_path: str | os.PathLike, *, revision: str | None = None, dtype: Any = None) -> tuple:
    """A causal language model and its tokenizer (a synonym source's LLM), or a typed error.

    Args:
        name_or_path: a Hub repo id or a local folder.
        revision: the Hub revision.
        dtype: the torch dtype (or its name) to load the weights in.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = os.fspath(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(name, revision=revision, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
    except (OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelLoadError(
            f"Could not load the language model {name!r}: {first}. Pass a local folder or a Hub id you can download."
        ) from err
    return model, tokenizer


__all__ = ["LoadedModel", "has_weights", "load_chat_model", "load_model", "resolve_device"]
