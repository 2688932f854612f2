"""Loading a dual encoder (model, tokenizer, image processor) from a Hub id or a local folder: the one loader
every face uses."""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3_hf import limits
from s3_hf.errors import InvalidConfigError, ModelLoadError, RemoteCodeError, UnsupportedModelError
from s3_hf.models.families import UNSUPPORTED_FAMILIES

logger = logging.getLogger(__name__)

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
LOCAL_PREFIX = "local-dir:"  # open_clip's spelling of a local folder
#: The files in which a checkpoint can name its own Python code (an ``auto_map``).
CODE_MAP_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json")


@dataclass
class LoadedModel:
    """A model with its processors. ``random_weights`` is True for a folder that holds a configuration but no
    weights (such as a shapes-only checkpoint): right for timing and memory, meaningless for accuracy.
    ``revision``: the Hub commit the files were read at (``None`` for a local folder)."""

    model: Any
    tokenizer: Any
    image_processor: Any
    name: str
    random_weights: bool = False
    revision: str | None = None


def resolve_device(device: Any = "auto") -> str:
    """The device to run on: ``"auto"``/``None`` -> ``"cuda"`` when available, else ``"cpu"``; any other device is
    checked against this machine. Every face resolves its ``--device``/``device=`` here.

    Args:
        device: ``"auto"``, ``None``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ... or a ``torch.device``.

    Raises:
        InvalidConfigError: torch does not know the device, or this machine does not have it.
    """
    import torch

    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise InvalidConfigError(f"Unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps.") from err
    if dev.type == "cpu":
        return "cpu"
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidConfigError(
                f"Device {device!r} needs CUDA, but no CUDA GPU is available here; use cpu or auto."
            )
        if dev.index is not None and dev.index >= count:
            raise InvalidConfigError(
                f"Device {device!r} does not exist: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}."
            )
        return str(dev)
    backend = torch.backends.mps if dev.type == "mps" else getattr(torch, dev.type, None)
    available = getattr(backend, "is_available", None)
    if not (callable(available) and available()):
        raise InvalidConfigError(f"Device {device!r} is not available on this machine; use cpu or auto.")
    return str(dev)


def looks_local(name: str) -> bool:
    """Whether a model name is spelled as a local path (absolute, explicitly relative, nested, Windows) rather than
    as a Hub id ``org/name``."""
    return name.startswith(("/", ".", "~", LOCAL_PREFIX)) or "\\" in name or ":" in name[1:3] or name.count("/") > 1


def is_local_model(name: str) -> bool:
    """Whether a model name is a local folder: spelled as a path, or an existing folder (which transformers loads
    before looking at the Hub)."""
    return bool(name.strip()) and (looks_local(name) or Path(name).is_dir())


def model_identity(name: str | os.PathLike) -> str:
    """A model's identity, as spaces record it: the resolved absolute path of a local folder (two folders that share
    a name are told apart), else the Hub id (open_clip's ``hf-hub:`` ids included) unchanged.

    Args:
        name: a Hub id or a local folder (open_clip's ``local-dir:PATH`` keeps its prefix).
    """
    name = os.fspath(name)
    if not is_local_model(name):
        return name
    prefix = LOCAL_PREFIX if name.startswith(LOCAL_PREFIX) else ""
    return prefix + str(Path(name[len(prefix) :]).expanduser().resolve())


def has_weights(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Hub id (weights come from the Hub) or a local folder holding weight files."""
    p = Path(path)
    return not p.is_dir() or any(any(p.glob(pattern)) for pattern in WEIGHT_PATTERNS)


def refuse_remote_code(name: str) -> None:
    """Raise :class:`RemoteCodeError` when the local folder ``name`` names its own Python code (an ``auto_map`` in
    its config, tokenizer or processor files): s3-hf never imports code from a checkpoint."""
    folder = Path(name)
    if not folder.is_dir():
        return
    for file in CODE_MAP_FILES:
        try:
            data = json.loads((folder / file).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue  # absent or unreadable: the loader reports it
        nested = [v for v in data.values() if isinstance(v, Mapping)] if isinstance(data, Mapping) else []
        if any(isinstance(d, Mapping) and d.get("auto_map") for d in [data, *nested]):
            raise RemoteCodeError(_remote_code_message(name, f"its {file} has an auto_map"))


def _remote_code_message(name: str, why: str) -> str:
    return (
        f"Refusing the model {name!r}: {why}, which asks to run the checkpoint's own Python code, and s3-hf never "
        "runs a checkpoint's own code. Use a checkpoint of a family transformers supports natively (no auto_map; "
        "for a folder whose model_type transformers knows, deleting the auto_map entry is enough)."
    )


def _raise_if_remote_code(err: BaseException, name: str) -> None:
    """Turn transformers' refusal of a checkpoint's own code (``trust_remote_code=False``) into the typed error."""
    if "trust_remote_code" in str(err):
        raise RemoteCodeError(_remote_code_message(name, "it contains custom code")) from err


def _load_errors() -> tuple[type[BaseException], ...]:
    """What loading raises for a bad checkpoint (as opposed to a bug)."""
    try:  # transformers 5 configs are strict dataclasses: a wrong type or size raises this, not a ValueError
        from huggingface_hub.errors import StrictDataclassError
    except ImportError:
        return (OSError, ValueError)
    return (OSError, ValueError, StrictDataclassError)


def _size(value: Any) -> int:
    """A config number as a non-negative int (0 for anything that is not a finite number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(int(value), 0) if math.isfinite(value) else 0


def _first(cfg: Mapping, keys: tuple[str, ...], default: int = 0) -> int:
    return next((_size(cfg[k]) for k in keys if k in cfg and _size(cfg[k])), default)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return _size(value[0]), _size(value[1])
    return _size(value), _size(value)


def estimate_params(config: Mapping, _depth: int = 0) -> int:
    """A rough upper bound on the parameters a config asks for, summed over its towers (``text_config``,
    ``vision_config``, open_clip's ``text_cfg``/``vision_cfg``): per layer 4 h^2 + 2 h i, plus the token, position and
    patch embeddings. Python integers, so absurd sizes give a big number, never an overflow."""
    total = 0
    width = _first(config, ("hidden_size", "width", "d_model"))
    if width:
        inner = _first(config, ("intermediate_size", "mlp_dim"), 4 * width)
        layers = _first(config, ("num_hidden_layers", "layers", "num_layers"))
        image, patch = _pair(config.get("image_size")), _pair(config.get("patch_size"))
        patches = (image[0] // max(patch[0], 1)) * (image[1] // max(patch[1], 1)) + _first(config, ("num_patches",))
        tokens = _first(config, ("vocab_size",)) + _first(config, ("max_position_embeddings", "context_length"))
        channels = _first(config, ("num_channels",), 3)
        total += layers * (4 * width * width + 2 * width * inner) + (tokens + patches) * width
        total += channels * patch[0] * patch[1] * width + _first(config, ("projection_dim", "embed_dim")) * width
    if _depth < 4:
        total += sum(estimate_params(v, _depth + 1) for v in config.values() if isinstance(v, Mapping))
    return total


def check_model_size(config: Mapping, name: str) -> None:
    """Refuse, before any allocation, a config whose random initialisation would exceed the ``model_params`` limit.

    Raises:
        ModelLoadError: the config asks for more parameters than the limit allows.
    """
    params = estimate_params(config)
    bound = limits.MODEL_PARAMS.get()
    if params > bound:
        raise ModelLoadError(
            f"The config of {name!r} asks for about {params:.3g} parameters (from its hidden sizes, layers, "
            f"vocabulary and image size), too many to initialise at random. Check the config's sizes. "
            + limits.MODEL_PARAMS.hint()
        )


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
        ModelLoadError: the checkpoint cannot be found or read (or its config is too big to initialise at random, or
            its weights are a pickle torch refuses); the message says what to pass instead.
        RemoteCodeError: the checkpoint asks to run its own code (an ``auto_map``); s3-hf never does.
        UnsupportedModelError: the checkpoint's family cannot serve S^3 (it says why).
        InvalidConfigError: the device is unknown or not on this machine.
    """
    import torch
    from transformers import AutoImageProcessor, AutoModelForZeroShotImageClassification, AutoTokenizer

    name = os.fspath(name_or_path)
    path = Path(name)
    _check_model_folder(name, path)
    refuse_remote_code(name)
    target = resolve_device(device)
    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    random_weights = not has_weights(name)
    # A Hub id with the Hub out of reach: use the local cache only, so a missing model fails at once
    cached_only = not path.is_dir() and not hub_offline() and not hub_reachable()
    # Never a checkpoint's own code, whatever stdin holds (transformers would otherwise ask there)
    load = {"revision": revision, "local_files_only": cached_only, "trust_remote_code": False}
    config = _supported_config(name, load)
    try:
        if random_weights:
            model = _model(name, load, config, seed)
        else:
            model = AutoModelForZeroShotImageClassification.from_pretrained(name, **load)
        tokenizer = AutoTokenizer.from_pretrained(name, **load)
        _check_vocabulary(tokenizer, name)
        image_processor = AutoImageProcessor.from_pretrained(name, **load)
    except pickle.UnpicklingError as err:
        raise ModelLoadError(_pickle_message(name)) from err
    except _load_errors() as err:
        _raise_if_remote_code(err, name)
        raise _load_failure(name, err, cached_only) from err
    model = model.to(device=target, dtype=torch_dtype or torch.float32).eval()
    snapshot = hub_snapshot(path) if path.is_dir() else None
    if snapshot is not None:  # a folder of the Hub cache is its repo at that commit: spaces name it so
        return LoadedModel(model, tokenizer, image_processor, snapshot[0], random_weights, snapshot[1])
    commit = None if path.is_dir() else resolved_commit(name, revision)
    return LoadedModel(model, tokenizer, image_processor, model_identity(name), random_weights, commit)


def hub_snapshot(folder: Path) -> tuple[str, str] | None:
    """``(repo id, commit)`` when ``folder`` is a model's snapshot in a Hub cache
    (``.../models--org--name/snapshots/<commit>``), else ``None``. Repo ids never hold ``--``, so the cache's folder
    name reads back unambiguously."""
    parts = folder.expanduser().resolve().parts
    if len(parts) < 3 or parts[-2] != "snapshots" or not parts[-3].startswith("models--"):
        return None
    owner, sep, repo = parts[-3].removeprefix("models--").partition("--")
    commit = parts[-1]
    if not sep or not re.fullmatch(r"[0-9a-f]{40}", commit):
        return None
    return f"{owner}/{repo}", commit


def resolved_commit(repo_id: str, revision: str | None = None) -> str | None:
    """The commit a Hub model's files were read at: the snapshot folder its cached ``config.json`` lives in
    (transformers 5 no longer records it on the config). ``None`` when the cache does not say."""
    from huggingface_hub import try_to_load_from_cache

    from s3_hf.io.hub import is_repo_id

    if not is_repo_id(repo_id):
        return None
    found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if not isinstance(found, str):
        return None
    parts = Path(found).parts
    return parts[-2] if len(parts) >= 3 and parts[-3] == "snapshots" else None


def _supported_config(name: str, load: dict[str, Any]) -> Any:
    """The checkpoint's config (``None`` when it cannot be read: the model's own loading reports why), refusing a
    family S^3 cannot use before the weights and processors load (their loading errors would hide the reason)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name, **load)
    except _load_errors() as err:
        _raise_if_remote_code(err, name)
        return None
    reason = UNSUPPORTED_FAMILIES.get(str(getattr(config, "model_type", "")))
    if reason is not None:
        raise UnsupportedModelError(f"{name} cannot be used with S^3: {reason}.")
    return config


def _check_model_folder(name: str, path: Path) -> None:
    """Refuse a local name that is no model folder (missing, a file, or without ``config.json``)."""
    if looks_local(name) and not path.exists():
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


def _model(name: str, load: dict[str, Any], config: Any, seed: int) -> Any:
    """The model of a folder without weights, initialised at random (``seed``) from its config, within the size
    bound."""
    import torch
    from transformers import AutoConfig, AutoModelForZeroShotImageClassification

    logger.warning(
        "%s holds no weights: the model is initialised at random (seed %d). Timings are real, scores and "
        "accuracies are meaningless.",
        name,
        seed,
    )
    config = config or AutoConfig.from_pretrained(name, **load)
    check_model_size(config.to_dict(), name)
    torch.manual_seed(seed)
    model = AutoModelForZeroShotImageClassification.from_config(config, trust_remote_code=False)
    model.name_or_path = name
    return model


def _load_failure(name: str, err: BaseException, cached_only: bool) -> ModelLoadError:
    """What a failed load says: the loader's own first line, why nothing was downloaded, and what to pass."""
    lines = str(err).strip().splitlines() or [type(err).__name__]
    # a config validation error names the field on its first line and the fault on the next ones
    first = lines[0] if isinstance(err, OSError | ValueError) else " ".join(x.strip() for x in lines)
    return ModelLoadError(
        f"Could not load the model {name!r}: {first} "
        + ("HF_HUB_OFFLINE is set, so nothing is downloaded. " if hub_offline() else "")
        + ("The Hub cannot be reached from here and the model is not in the local cache. " if cached_only else "")
        + "Without network access, point --model at a local CLIP checkpoint (model= in Python): a folder holding "
        "config.json, model.safetensors, the tokenizer files and preprocessor_config.json or "
        "processor_config.json (one written by save_pretrained, or "
        f"`hf download {name} --local-dir DIR` on a machine with network access)."
    )


def _check_vocabulary(tokenizer: Any, name: str) -> None:
    """Refuse a tokenizer with nothing but special tokens: what transformers builds for a folder without tokenizer
    files, which would turn every label into the same unknown tokens (every class scored alike, silently)."""
    try:
        words = set(tokenizer.get_vocab()) - set(tokenizer.all_special_tokens)
    except (AttributeError, NotImplementedError, TypeError):
        return  # a tokenizer that cannot list its vocabulary: nothing to judge by
    if not words:
        raise ModelLoadError(
            f"The tokenizer of {name!r} has no vocabulary: the folder holds no tokenizer files (tokenizer.json, "
            "vocab.json, ...), so every text would become the same unknown tokens. Save the tokenizer into the folder "
            "(tokenizer.save_pretrained) or pass a complete checkpoint."
        )


def _pickle_message(name: str) -> str:
    return (
        f"The weights of {name!r} are an untrusted pickle (a .bin file) that torch refuses to load because reading it "
        "would run code. s3-hf loads only safe weights: use a checkpoint with model.safetensors (or convert the file "
        "to safetensors on a machine where you trust it)."
    )


def load_chat_model(name_or_path: str | os.PathLike, *, revision: str | None = None, dtype: Any = None) -> tuple:
    """A causal language model and its tokenizer (a synonym source's LLM), or a typed error.

    Args:
        name_or_path: a Hub repo id or a local folder.
        revision: the Hub revision.
        dtype: the torch dtype (or its name) to load the weights in.

    Raises:
        ModelLoadError: the model cannot be loaded (or its weights are a pickle torch refuses).
        RemoteCodeError: the checkpoint asks to run its own code (an ``auto_map``); s3-hf never does.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = os.fspath(name_or_path)
    refuse_remote_code(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(name, revision=revision, dtype=dtype, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=False)
        _check_vocabulary(tokenizer, name)
    except pickle.UnpicklingError as err:
        raise ModelLoadError(_pickle_message(name)) from err
    except _load_errors() as err:
        _raise_if_remote_code(err, name)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelLoadError(
            f"Could not load the language model {name!r}: {first}. Pass a local folder or a Hub id you can download."
        ) from err
    return model, tokenizer


__all__ = [
    "LoadedModel",
    "check_model_size",
    "estimate_params",
    "has_weights",
    "is_local_model",
    "load_chat_model",
    "load_model",
    "looks_local",
    "model_identity",
    "refuse_remote_code",
    "resolve_device",
]
