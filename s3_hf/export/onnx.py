"""``s3 export onnx``: a space's image encoder plus its S^3 head as one ONNX graph, for serving without Python's s3-hf.

The export folder holds ``model.onnx`` (``pixel_values`` in; ``logits``, ``probabilities`` and ``image_embeds`` out),
``labels.json`` (the class names, in the order of the outputs' columns), ``preprocessor_config.json`` (the base
model's image processor, which makes ``pixel_values``) and ``s3_onnx.json`` (:class:`OnnxExportConfig`: the input,
the outputs, the metric and what the export was checked against).

Importing this module loads neither torch nor onnx: the exporter (torch's, with ``onnx`` and ``onnxscript``) and
``onnxruntime`` are imported when an export runs (``pip install "s3-hf[onnx]"``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3_hf.errors import ArtifactError, InvalidConfigError, S3Error, UnsupportedModelError
from s3_hf.export.config import (
    CONFIG_NAME,
    EXPORTABLE_FAMILIES,
    EXPORTABLE_METRICS,
    INSTALL_HINT,
    LABELS_NAME,
    MIN_TORCH,
    MODEL_NAME,
    OnnxExportConfig,
    read_export,
)

if TYPE_CHECKING:
    from s3_hf.engine.core import S3Engine
    from s3_hf.models.encoders import Encoder
    from s3_hf.space.artifact import SynonymSpace


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote: the folder, the graph's path, the class names and the config."""

    folder: Path
    labels: list[str]
    config: OnnxExportConfig

    @property
    def model_path(self) -> Path:
        return self.folder / MODEL_NAME


def check_export_metric(metric: str) -> str:
    """``metric`` itself if its head exports, else an :class:`InvalidConfigError` naming the metrics that do."""
    if metric not in EXPORTABLE_METRICS:
        raise InvalidConfigError(
            f"The {metric!r} metric does not export to ONNX; the metrics that do are {', '.join(EXPORTABLE_METRICS)}. "
            "Pass one of them with --metric."
        )
    return metric


def check_exportable(encoder: Encoder) -> None:
    """Raise :class:`UnsupportedModelError` (saying what exports) unless ``encoder``'s image tower exports."""
    from s3_hf.models.encoders import TransformersEncoder

    family = encoder.family.family
    supported = ", ".join(EXPORTABLE_FAMILIES)
    if not isinstance(encoder, TransformersEncoder):
        raise UnsupportedModelError(
            f"{family} checkpoints ({encoder.name}) do not export to ONNX here: their vision towers are not "
            f"transformers models. Export a space built on a transformers checkpoint of: {supported}."
        )
    if family not in EXPORTABLE_FAMILIES:
        raise UnsupportedModelError(
            f"{family} models ({encoder.name}) do not export to ONNX here (the export takes images as pixel_values "
            f"alone and is tested on: {supported}). Build the space on one of those families to export it."
        )


def require_exporter() -> None:
    """Import what exporting needs (onnx, onnxscript, onnxruntime, and a torch whose exporter takes ``dynamo=True``),
    or raise an :class:`S3Error` saying what to install."""
    import importlib

    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise S3Error(f"{name} is not installed ({err}). {INSTALL_HINT}") from err
    import torch

    if tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) < MIN_TORCH:
        raise S3Error(
            f"ONNX export needs torch {'.'.join(map(str, MIN_TORCH))} or later (its torch.export-based exporter); this "
            f"is torch {torch.__version__}: pip install -U torch."
        )


def _engine(space: SynonymSpace, model: S3Engine | Encoder | Any | None) -> Encoder:
    """The encoder to export: ``model`` (an engine, an encoder, a transformers model or a checkpoint name), else
    the space's base model, on the CPU in float32."""
    from s3_hf.engine.core import S3Engine
    from s3_hf.models.encoders import Encoder, as_encoder

    revision = None
    if model is None:
        config = space.config
        if not config.base_model or config.base_model == "unknown":
            raise InvalidConfigError("The space does not record the model it was built with: pass model=.")
        model, revision = config.base_model, config.base_model_revision
    if isinstance(model, str | os.PathLike):
        return S3Engine.from_pretrained(model, device="cpu", revision=revision).encoder
    if isinstance(model, S3Engine):
        return model.encoder
    return model if isinstance(model, Encoder) else as_encoder(model)


def export_onnx(
    space: SynonymSpace | str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: S3Engine | Encoder | Any | None = None,
    metric: str | None = None,
    revision: str | None = None,
    overwrite: bool = False,
) -> OnnxExport:
    """Export ``space``'s image encoder plus its S^3 head as ONNX into the folder ``out``, with the class names, the
    image processor and a config beside it; the graph is checked against torch with onnxruntime before the folder
    is written.

    Args:
        space: a :class:`SynonymSpace`, its folder or its Hub id.
        out: the folder to write (absent or empty, unless ``overwrite``); written in one atomic step.
        model: the base model (an :class:`S3Engine`, an encoder, a transformers model or a checkpoint name);
            default: the one the space records, loaded on the CPU.
        metric: the head's metric (default: the space's own); one of :data:`EXPORTABLE_METRICS`.
        revision: the Hub revision of ``space``.
        overwrite: replace a non-empty ``out``.

    Raises:
        InvalidConfigError: the metric does not export.
        UnsupportedModelError: the model's family does not export.
        ArtifactError: ``out`` is a file, or not empty without ``overwrite``.
        S3Error: onnx, onnxscript or onnxruntime is missing (``pip install "s3-hf[onnx]"``).
    """
    from s3_hf.space.artifact import SynonymSpace

    if not isinstance(space, SynonymSpace):
        space = SynonymSpace.from_pretrained(space, revision=revision)
    metric = check_export_metric(metric or space.config.metric)
    target = check_out(Path(out), overwrite)
    require_exporter()
    encoder = _engine(space, model)
    check_exportable(encoder)
    space.check_model(encoder)
    from s3_hf.export.write import write_export

    config = write_export(space, encoder, metric, target, overwrite)
    return OnnxExport(target, list(space.labels), config)


def check_out(out: Path, overwrite: bool) -> Path:
    """The absolute folder to write; refuse before any work an ``out`` that is a file, the working folder (or holds
    it), or a non-empty folder without ``overwrite``."""
    from s3_hf.io.files import target_folder

    try:
        target = target_folder(out)
    except (NotADirectoryError, IsADirectoryError) as err:
        raise ArtifactError(f"Cannot write the ONNX export there: {err}.") from err
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise ArtifactError(f"{out} is not empty: pass --overwrite to replace it, or choose another folder.")
    return target


__all__ = [
    "CONFIG_NAME",
    "EXPORTABLE_FAMILIES",
    "EXPORTABLE_METRICS",
    "INSTALL_HINT",
    "LABELS_NAME",
    "MODEL_NAME",
    "OnnxExport",
    "OnnxExportConfig",
    "check_export_metric",
    "check_exportable",
    "export_onnx",
    "read_export",
    "require_exporter",
]
