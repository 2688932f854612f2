"""ONNX export (``s3 export onnx``): onnxruntime's scores equal the engine's on real photos for every exportable
metric, served from the export folder alone (its image processor, its labels); SigLIP's sigmoid scores export too.
These tests need the ``onnx`` extra; CI runs them with ``S3_REQUIRE_ONNX=1`` so a missing package fails there."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

try:
    import onnx  # noqa: F401
    import onnxruntime
    import onnxscript  # noqa: F401
except ImportError as _err:  # the extra is optional; CI installs it
    if os.environ.get("S3_REQUIRE_ONNX") == "1":
        raise
    pytest.skip(
        f'the onnx extra is not installed ({_err}); pip install "s3-hf[onnx]" to run these tests',
        allow_module_level=True,
    )

import numpy as np
import torch
from helpers import SYNONYMS, make_tiny_family
from PIL import Image

from s3_hf.cli import main
from s3_hf.engine.core import S3Engine
from s3_hf.export import EXPORTABLE_FAMILIES, EXPORTABLE_METRICS, export_onnx, read_export
from s3_hf.space.artifact import SynonymSpace

TOL = 1e-4


@pytest.fixture(scope="module")
def engine(tiny_clip_dir: Path) -> S3Engine:
    return S3Engine.from_pretrained(str(tiny_clip_dir), device="cpu")


@pytest.fixture(scope="module")
def exports(engine, small_space, tmp_path_factory):
    """Each exportable metric's export of the small space, written once for the module."""
    cache = {}

    def get(metric: str):
        if metric not in cache:
            out = tmp_path_factory.mktemp(metric) / "onnx"
            cache[metric] = export_onnx(small_space, out, model=engine, metric=metric)
        return cache[metric]

    return get


def _serve(folder: Path, photos: list[Path]) -> dict[str, np.ndarray]:
    """Score ``photos`` the way a user without s3-hf would: the folder's image processor, then onnxruntime."""
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(folder)
    pictures = [Image.open(p).convert("RGB") for p in photos]
    pixels = processor(images=pictures, return_tensors="np")["pixel_values"].astype(np.float32)
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"pixel_values": pixels}), strict=True))


def _engine_scores(engine: S3Engine, space: SynonymSpace, metric: str, photos: list[Path]):
    """The engine's logits, probabilities and embeddings of ``photos`` with ``space`` and ``metric``."""
    resolved = engine.resolve(engine.request(synonym_space=space, metric=metric))
    v = engine.encode_images([str(p) for p in photos])
    logits = engine.scores(v, resolved).logits
    probs = logits.sigmoid() if engine.family.scoring == "sigmoid" else logits.softmax(-1)
    return logits.numpy(), probs.numpy(), v.numpy()


@pytest.mark.parametrize("metric", EXPORTABLE_METRICS)
def test_onnxruntime_scores_equal_the_engine(engine, small_space, photos, exports, metric):
    result = exports(metric)
    got = _serve(result.folder, photos)
    logits, probs, v = _engine_scores(engine, small_space, metric, photos)
    np.testing.assert_allclose(got["logits"], logits, atol=TOL, rtol=0)
    np.testing.assert_allclose(got["probabilities"], probs, atol=TOL, rtol=0)
    np.testing.assert_allclose(got["image_embeds"], v, atol=TOL, rtol=0)
    # the pipeline's ranked scores are the same probabilities, column by column of labels.json
    config, labels = read_export(result.folder)
    assert labels == small_space.labels and config.metric == metric and config.num_classes == len(labels)
    ranked = engine.classify([str(photos[0])], engine.request(synonym_space=small_space, metric=metric))[0]
    for prediction in ranked:
        assert abs(prediction.score - got["probabilities"][0, labels.index(prediction.label)]) < TOL


def test_the_config_says_how_to_feed_and_read_the_graph(engine, small_space, exports):
    result = exports("local_center")
    config, _ = read_export(result.folder)
    assert config.metric == small_space.config.metric == "local_center"
    assert config.input == {
        "name": "pixel_values",
        "shape": ["batch", 3, 32, 32],
        "dtype": "float32",
        "made_by": config.input["made_by"],
    }
    assert [o["name"] for o in config.outputs] == ["logits", "probabilities", "image_embeds"]
    assert config.scoring == "softmax" and config.logit_scale == pytest.approx(engine.logit_scale)
    assert set(config.files) == {p.name for p in result.folder.iterdir()}
    assert set(config.files) == {"model.onnx", "labels.json", "s3_onnx.json", "preprocessor_config.json"}
    assert max(config.check.values()) < TOL
    on_disk = json.loads((result.folder / "s3_onnx.json").read_text())
    assert on_disk["outputs"][1]["meaning"].startswith("a softmax over classes")


def test_the_export_takes_any_batch_size(engine, small_space, exports):
    result = exports("label")
    session = onnxruntime.InferenceSession(str(result.model_path), providers=["CPUExecutionProvider"])
    resolved = engine.resolve(engine.request(synonym_space=small_space, metric="label"))
    for batch in (1, 7):
        pixels = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
        logits, probs, v = session.run(None, {"pixel_values": pixels.numpy()})
        assert logits.shape == probs.shape == (batch, 3) and v.shape == (batch, 16)
        want = engine.scores(engine.encode_pixels(pixels), resolved).logits
        np.testing.assert_allclose(logits, want.numpy(), atol=TOL, rtol=0)


def test_siglip_exports_its_sigmoid_scores(tmp_path, photos):
    folder = make_tiny_family(tmp_path / "siglip", "siglip")
    engine = S3Engine.from_pretrained(str(folder), device="cpu")
    space = engine.build_space(list(SYNONYMS), SYNONYMS)
    result = export_onnx(space, tmp_path / "onnx", model=engine)
    assert result.config.scoring == "sigmoid" and result.config.logit_bias == pytest.approx(engine.logit_bias)
    got = _serve(result.folder, photos)
    logits, probs, _ = _engine_scores(engine, space, "local_center", photos)
    np.testing.assert_allclose(got["logits"], logits, atol=TOL, rtol=0)
    np.testing.assert_allclose(got["probabilities"], probs, atol=TOL, rtol=0)


def test_cli_writes_the_export(saved, photos, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert main(["export", "onnx", "--space", str(saved), "--out", str(out), "--metric", "global_center"]) == 0
    printed = capsys.readouterr().out
    assert "Wrote the ONNX export" in printed and "global_center" in printed
    config, labels = read_export(out)
    assert labels == SynonymSpace.from_pretrained(saved).labels and config.metric == "global_center"
    assert _serve(out, photos[:2])["probabilities"].shape == (2, 3)
    # an existing export is replaced only with --overwrite
    assert main(["export", "onnx", "--space", str(saved), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", "onnx", "--space", str(saved), "--out", str(out), "--overwrite"]) == 0
    assert read_export(out)[0].metric == "local_center"


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in EXPORTABLE_FAMILIES if f != "clip"])
def test_every_exportable_family_exports(family, tmp_path, photos):
    folder = make_tiny_family(tmp_path / family, family)
    engine = S3Engine.from_pretrained(str(folder), device="cpu")
    space = engine.build_space(list(SYNONYMS), SYNONYMS)
    result = export_onnx(space, tmp_path / "onnx", model=engine)
    assert result.config.model_family == family and max(result.config.check.values()) < TOL
    got = _serve(result.folder, photos[:3])
    logits, probs, _ = _engine_scores(engine, space, "local_center", photos[:3])
    np.testing.assert_allclose(got["logits"], logits, atol=TOL, rtol=0)
    np.testing.assert_allclose(got["probabilities"], probs, atol=TOL, rtol=0)
