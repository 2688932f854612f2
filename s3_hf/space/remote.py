"""The files that let transformers run a saved synonym space without s3-hf: ``config.json`` (an ``auto_map`` and a
``custom_pipelines`` entry naming the space's own pipeline module), that module (:mod:`s3_hf.space.hub_code`,
written verbatim as ``s3_pipeline.py``) and, for a bundle, the base model's files in ``base_model/``.

``pipeline(model="user/space", trust_remote_code=True)`` reads ``config.json``, imports ``s3_pipeline.py`` and
builds its pipeline on the model class there, which loads the base model by the id and revision the space records
(or from ``base_model/``) and scores images against the space's tensors; see the module's own docstring.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s3_hf.errors import ArtifactError, ModelLoadError

MODEL_CONFIG_NAME = "config.json"
HUB_CODE_NAME = "s3_pipeline.py"
#: Where a bundle holds the base model's files (``BUNDLE_FOLDER`` of the pipeline module).
BUNDLE_FOLDER = "base_model"
#: The model type ``config.json`` names (``S3SpaceConfig.model_type`` of the pipeline module).
MODEL_TYPE = "s3_space"
#: The task name under which ``config.json`` declares the space's pipeline.
REMOTE_TASK = "s3-zero-shot-classification"
_MODULE = HUB_CODE_NAME.removesuffix(".py")
#: Weight formats a bundle leaves out: pickles (never loaded) and other frameworks' weights.
_SKIPPED = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".h5", ".msgpack", ".ot", ".onnx")


def hub_code_text() -> str:
    """The source of the pipeline module written into every space (the package's own ``hub_code.py``)."""
    return (Path(__file__).with_name("hub_code.py")).read_text(encoding="utf-8")


def model_config(base_model: str, base_model_revision: str | None, bundled: bool) -> dict[str, Any]:
    """The ``config.json`` of a space built on ``base_model`` (at ``base_model_revision``): what transformers reads
    to find the space's model class and pipeline."""
    return {
        "model_type": MODEL_TYPE,
        "architectures": ["S3SpaceModel"],
        "auto_map": {"AutoConfig": f"{_MODULE}.S3SpaceConfig", "AutoModel": f"{_MODULE}.S3SpaceModel"},
        "custom_pipelines": {
            REMOTE_TASK: {"impl": f"{_MODULE}.S3SpacePipeline", "pt": ["AutoModel"], "type": "multimodal"}
        },
        "base_model": base_model,
        "base_model_revision": base_model_revision,
        "bundled": bundled,
    }


def is_space_model_config(path: Path) -> bool:
    """Whether ``path`` is a ``config.json`` s3-hf wrote for a space (its model type is :data:`MODEL_TYPE`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("model_type") == MODEL_TYPE


def check_foreign(target: Path, overwrite: bool, bundle: bool) -> list[str]:
    """Raise :class:`ArtifactError` (unless ``overwrite``) when saving a space into ``target`` would replace a
    ``config.json`` s3-hf did not write (a model's) or, for a bundle, a ``base_model`` entry it did not write; return
    the entries not to carry over (an earlier bundle's ``base_model/``)."""
    config, folder = target / MODEL_CONFIG_NAME, target / BUNDLE_FOLDER
    ours = is_space_model_config(config)
    if not overwrite and config.exists() and not ours:
        raise ArtifactError(
            f"{config} exists and was not written by s3-hf (it is a model's config?); saving the space would replace "
            "it. Pick another folder, or pass overwrite=True (`--overwrite`) to replace it."
        )
    if folder.exists() and bundle and not ours and not overwrite:
        raise ArtifactError(
            f"{folder} exists and was not written by s3-hf; a bundle would replace it with the base model's files. "
            "Pick another folder, or pass overwrite=True (`--overwrite`)."
        )
    return [BUNDLE_FOLDER] if folder.exists() and (ours or bundle) else []


def base_model_folder(base_model: str, revision: str | None) -> Path:
    """The local folder of the base model's files: ``base_model`` itself when it is a folder, else its snapshot in
    the Hub cache, filled by loading the model the way s3-hf always does (downloaded, or from the cache offline);
    :class:`~s3_hf.errors.ModelLoadError` when it cannot be had."""
    from s3_hf.models.loading import LOCAL_PREFIX, load_model

    path = Path(base_model.removeprefix(LOCAL_PREFIX))
    if path.is_dir():
        return path
    from huggingface_hub import try_to_load_from_cache

    load_model(base_model, device="cpu", revision=revision)  # fetches and checks every file transformers reads
    found = try_to_load_from_cache(base_model, MODEL_CONFIG_NAME, revision=revision)
    if not isinstance(found, str):
        raise ModelLoadError(
            f"Cannot bundle the base model {base_model!r}: its files are not in the Hub cache. Download it first "
            f"(hf download {base_model}), or save the space without bundle."
        )
    return Path(found).parent


def bundle_writers(base_model: str, revision: str | None) -> dict[str, Callable[[Path], None]]:
    """Writers of the base model's files under :data:`BUNDLE_FOLDER` (top-level files; pickled and other
    frameworks' weights left out). Refused when the checkpoint has no safetensors weights."""
    folder = base_model_folder(base_model, revision)
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix not in _SKIPPED
    )
    if not any(p.suffix == ".safetensors" for p in files):
        raise ArtifactError(
            f"Cannot bundle {base_model!r}: {folder} holds no .safetensors weights (a bundle never carries pickles). "
            "Convert the checkpoint to safetensors, or save the space without bundle."
        )

    def copier(source: Path) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, path)

        return write

    return {f"{BUNDLE_FOLDER}/{p.name}": copier(p) for p in files}


__all__ = [
    "BUNDLE_FOLDER",
    "HUB_CODE_NAME",
    "MODEL_CONFIG_NAME",
    "MODEL_TYPE",
    "REMOTE_TASK",
    "base_model_folder",
    "bundle_writers",
    "check_foreign",
    "hub_code_text",
    "is_space_model_config",
    "model_config",
]
