"""What an ONNX export folder holds and how it is described, importable without torch or onnx: the file names, the
metrics and families that export, and :class:`OnnxExportConfig` (``s3_onnx.json``)."""

from __future__ import annotations

import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from s3_hf import __version__
from s3_hf.errors import ArtifactCorruptError, ArtifactError
from s3_hf.io.files import load_json_text

INSTALL_HINT = 'ONNX export needs the onnx extra: pip install "s3-hf[onnx]".'
#: The metrics whose head exports: each a fixed function of the unit image embedding (matrix products, a mask, an
#: argmax and a gather, sums). ``local_center_knn`` (a top-k and a Gram gather) and ``nearest_simplex`` (a projection
#: onto every simplex) are not exported.
EXPORTABLE_METRICS: tuple[str, ...] = ("label", "global_center", "nearest_point", "mean_similarity", "local_center")
#: transformers families whose image tower exports (checked against torch on each) and whose images are
#: ``pixel_values`` alone. Not exported: SigLIP 2 (it also takes a patch mask and the patch grid's shape, which vary
#: per image) and open_clip checkpoints (their vision towers are open_clip's own modules).
EXPORTABLE_FAMILIES: tuple[str, ...] = (
    "clip",
    "metaclip_2",
    "siglip",
    "clipseg",
    "align",
    "altclip",
    "blip",
    "chinese_clip",
    "tipsv2",
)
MODEL_NAME = "model.onnx"
LABELS_NAME = "labels.json"
CONFIG_NAME = "s3_onnx.json"
PREPROCESSOR_NAME = "preprocessor_config.json"
#: ONNX opset of the graph: runs on onnxruntime 1.14 and later.
OPSET = 18
#: The largest difference allowed between onnxruntime's outputs and torch's on the export's own check.
TOLERANCE = 1e-4
#: Above this size the weights go to ``model.onnx.data`` beside the graph (protobuf files are limited to 2 GB).
EXTERNAL_DATA_BYTES = 1_800_000_000
FORMAT_VERSION = 1
#: The first torch whose ONNX exporter takes ``dynamo=True`` with ``dynamic_shapes`` and ``external_data``.
MIN_TORCH = (2, 6)


@dataclass
class OnnxExportConfig:
    """What ``s3_onnx.json`` records: how to feed the graph and read its outputs.

    Attributes:
        base_model: the checkpoint the encoder comes from (its image processor is saved beside the graph).
        base_model_revision: its Hub revision, where known.
        model_family: the transformers model type (``"clip"``, ``"siglip"``, ...).
        metric: the point-to-space metric of the head.
        scoring: how ``probabilities`` come from ``logits``: ``"softmax"`` over classes or a per-class ``"sigmoid"``.
        logit_scale: ``τ`` in ``logits = τ · s_c(v) + b``.
        logit_bias: ``b``.
        num_classes: the columns of ``logits`` and ``probabilities`` (the names are in ``labels.json``).
        input: name, shape (``"batch"`` the free axis), dtype and what makes it.
        outputs: each output's name, shape, dtype and meaning.
        files: the export's files.
        check: the largest difference between onnxruntime and torch on the export's own inputs, per output.
    """

    base_model: str
    base_model_revision: str | None
    model_family: str
    metric: str
    scoring: str
    logit_scale: float
    logit_bias: float
    num_classes: int
    input: dict[str, Any]
    outputs: list[dict[str, Any]]
    files: list[str]
    check: dict[str, float] = field(default_factory=dict)
    opset: int = OPSET
    library_version: str = __version__
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnnxExportConfig:
        """The config of an ``s3_onnx.json`` object; :class:`ArtifactCorruptError` if it lacks a field."""
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in missing if name not in data]
        if missing:
            raise ArtifactCorruptError(f"{CONFIG_NAME} lacks {missing}: write the export again with `s3 export onnx`.")
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def read_export(folder: str | os.PathLike) -> tuple[OnnxExportConfig, list[str]]:
    """The config and class names of an export folder (no onnx needed).

    Args:
        folder: a folder :func:`export_onnx` wrote.
    """
    folder = Path(folder)
    for name in (CONFIG_NAME, LABELS_NAME, MODEL_NAME):
        if not (folder / name).is_file():
            raise ArtifactError(f"{folder} is not an ONNX export (no {name}): write one with `s3 export onnx`.")
    fix = "Write the export again with `s3 export onnx`."
    data = load_json_text((folder / CONFIG_NAME).read_bytes(), ArtifactCorruptError, str(folder / CONFIG_NAME), fix)
    labels = load_json_text((folder / LABELS_NAME).read_bytes(), ArtifactCorruptError, str(folder / LABELS_NAME), fix)
    if not isinstance(data, dict) or not isinstance(labels, list):
        raise ArtifactCorruptError(f"{folder} holds a damaged ONNX export. {fix}")
    return OnnxExportConfig.from_dict(data), labels


__all__ = [
    "CONFIG_NAME",
    "EXPORTABLE_FAMILIES",
    "EXPORTABLE_METRICS",
    "EXTERNAL_DATA_BYTES",
    "FORMAT_VERSION",
    "INSTALL_HINT",
    "LABELS_NAME",
    "MIN_TORCH",
    "MODEL_NAME",
    "OPSET",
    "PREPROCESSOR_NAME",
    "TOLERANCE",
    "OnnxExportConfig",
    "read_export",
]
