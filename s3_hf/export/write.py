"""Writing an ONNX export folder: trace the encoder plus the S^3 head with torch's exporter, check the graph with
onnxruntime against torch, and write the graph, the class names, the image processor and the config in one atomic
step (see :mod:`s3_hf.export.onnx` for what the folder holds)."""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from s3_hf.errors import ArtifactError, InvalidConfigError, S3Error, UnsupportedModelError
from s3_hf.export.config import (
    CONFIG_NAME,
    EXTERNAL_DATA_BYTES,
    LABELS_NAME,
    MODEL_NAME,
    OPSET,
    PREPROCESSOR_NAME,
    TOLERANCE,
    OnnxExportConfig,
)
from s3_hf.export.head import ImageEmbedding, S3Head, S3OnnxModule
from s3_hf.io.files import write_folder

if TYPE_CHECKING:
    from s3_hf.models.encoders import Encoder
    from s3_hf.space.artifact import SynonymSpace

OUTPUT_NAMES = ("logits", "probabilities", "image_embeds")


def export_module(space: SynonymSpace, encoder: Encoder, metric: str) -> S3OnnxModule:
    """What is exported: ``encoder``'s image tower (float32, on the CPU) and the head of ``space`` for ``metric``."""
    model = encoder.model
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        model = copy.deepcopy(model).to("cpu", torch.float32)  # the caller's model stays where it is
    model.eval()
    head = S3Head(space.scoring_state("cpu"), metric, encoder.logit_scale, encoder.logit_bias, encoder.family.scoring)
    return S3OnnxModule(ImageEmbedding(model), head).eval()


def input_shape(encoder: Encoder) -> tuple[int, ...]:
    """The ``pixel_values`` shape of one image as the model's image processor makes it; refuse processors whose
    images need more inputs than ``pixel_values``."""
    from PIL import Image

    if encoder.image_processor is None:
        raise InvalidConfigError("The model has no image processor, which the export saves beside the graph.")
    inputs = encoder.image_inputs([Image.new("RGB", (64, 48), (128, 128, 128))])
    extra = sorted(set(inputs) - {"pixel_values"})
    if extra:
        raise UnsupportedModelError(
            f"{encoder.family.family} models take {', '.join(extra)} besides pixel_values; the export takes "
            "pixel_values alone."
        )
    return tuple(inputs["pixel_values"].shape[1:])


def _trace(module: S3OnnxModule, shape: tuple[int, ...], path: Path) -> None:
    example = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    weights = sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # its notes (torchvision ops it skips, ...) are not the user's to act on
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            _export(module, example, path, external_data=weights > EXTERNAL_DATA_BYTES)
    finally:
        exporter_log.setLevel(level)


def _export(module: S3OnnxModule, example: torch.Tensor, path: Path, external_data: bool) -> None:
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=["pixel_values"],
        output_names=list(OUTPUT_NAMES),
        opset_version=OPSET,
        dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        external_data=external_data,
        verbose=False,
    )


def check_graph(module: S3OnnxModule, shape: tuple[int, ...], path: Path) -> dict[str, float]:
    """The largest difference per output between onnxruntime running ``path`` and torch running ``module`` on three
    seeded inputs (another batch size than the traced one); an :class:`S3Error` above :data:`TOLERANCE`."""
    import onnxruntime

    pixels = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUT_NAMES), {"pixel_values": pixels.numpy()})
    with torch.no_grad():
        want = module(pixels)
    diffs = {name: float(np.abs(g - w.numpy()).max()) for name, g, w in zip(OUTPUT_NAMES, got, want, strict=True)}
    worst = max(("probabilities", "image_embeds"), key=diffs.__getitem__)  # logits carry the factor τ on top
    if diffs[worst] > TOLERANCE:
        raise S3Error(
            f"The exported graph's {worst} differ from torch's by {diffs[worst]:.2e} (more than {TOLERANCE}); "
            "nothing was written. This is a bug in s3-hf's export: report it with the model's name."
        )
    return diffs


def export_config(space: SynonymSpace, encoder: Encoder, metric: str, shape: tuple[int, ...]) -> OnnxExportConfig:
    """The config of an export (its files and check filled in once written)."""
    c, d = space.num_classes, int(space.tensors.points.shape[1])
    scoring = encoder.family.scoring
    rule = "a softmax over classes" if scoring == "softmax" else "a sigmoid of each class's logit"
    return OnnxExportConfig(
        base_model=space.config.base_model,
        base_model_revision=space.config.base_model_revision,
        model_family=encoder.family.family,
        metric=metric,
        scoring=scoring,
        logit_scale=encoder.logit_scale,
        logit_bias=encoder.logit_bias,
        num_classes=c,
        input={
            "name": "pixel_values",
            "shape": ["batch", *shape],
            "dtype": "float32",
            "made_by": f"the base model's image processor, saved beside the graph as {PREPROCESSOR_NAME}",
        },
        outputs=[
            _output("logits", ["batch", c], f"tau * s_c(v) + b with the {metric} metric, one column per label"),
            _output("probabilities", ["batch", c], f"{rule} of the logits: the scores s3-hf returns"),
            _output("image_embeds", ["batch", d], "the unit image embeddings v the head scores"),
        ],
        files=[],
    )


def _output(name: str, shape: list[Any], meaning: str) -> dict[str, Any]:
    return {"name": name, "shape": shape, "dtype": "float32", "meaning": meaning}


def write_export(
    space: SynonymSpace, encoder: Encoder, metric: str, out: Path, overwrite: bool = False
) -> OnnxExportConfig:
    """Trace, check and write the export of ``space`` with ``encoder`` for ``metric`` into ``out`` (atomically).

    Args:
        space: the space (checked against ``encoder`` by the caller).
        encoder: a transformers encoder of an exportable family.
        metric: an exportable metric.
        out: the folder to write.
        overwrite: replace a non-empty ``out``.
    """
    shape = input_shape(encoder)
    module = export_module(space, encoder, metric)
    config = export_config(space, encoder, metric, shape)

    def fill(tmp: Path) -> None:
        _trace(module, shape, tmp / MODEL_NAME)
        config.check = check_graph(module, shape, tmp / MODEL_NAME)
        encoder.image_processor.save_pretrained(tmp)
        (tmp / LABELS_NAME).write_text(json.dumps(space.labels, indent=2, ensure_ascii=False) + "\n", "utf-8")
        config.files = sorted([p.name for p in tmp.iterdir()] + [CONFIG_NAME])
        (tmp / CONFIG_NAME).write_text(json.dumps(config.to_dict(), indent=2) + "\n", "utf-8")

    try:
        write_folder(out, fill, overwrite=overwrite)
    except FileExistsError as err:
        raise ArtifactError(f"{err}: pass --overwrite to replace it, or choose another folder.") from err
    return config


__all__ = ["OUTPUT_NAMES", "check_graph", "export_config", "export_module", "input_shape", "write_export"]
