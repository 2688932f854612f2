"""transformers' torchvision image-processor backend (the ``fast_images`` extra): used by every face where it is
installed, equal to transformers' own pipeline with it, and within a measured bound of the PIL backend. These tests
need torchvision; CI runs them in the environment that has it (with ``S3_REQUIRE_TORCHVISION=1``)."""

from __future__ import annotations

import os

import pytest

try:
    import torchvision  # noqa: F401
except ImportError as _err:  # the extra is optional
    if os.environ.get("S3_REQUIRE_TORCHVISION") == "1":
        raise
    pytest.skip(
        f'torchvision is not installed ({_err}); pip install "s3-hf[fast_images]" to run these tests',
        allow_module_level=True,
    )

import torch
from transformers import AutoImageProcessor, pipeline

from s3_hf.engine.core import S3Engine
from s3_hf.io.images import load_image
from s3_hf.models.embedding import image_inputs

LABELS = ["cat", "dog", "airplane", "cup of coffee", "rocket"]
#: Measured on the scikit-image photos (and on ImageNet-sample photos upscaled to 12 MP, fast-decoded): the largest
#: difference of a normalised pixel value between the backends was 0.015, the mean 2e-5 (both resize with
#: antialiased bicubic interpolation; they round differently).
MAX_BOUND, MEAN_BOUND = 0.03, 1e-3


def test_the_torchvision_backend_is_used_where_installed(tiny_clip_dir, s3_pipe):
    engine = S3Engine.from_pretrained(tiny_clip_dir, device="cpu")
    for processor in (engine.encoder.image_processor, s3_pipe.engine.encoder.image_processor):
        assert not type(processor).__name__.endswith("Pil"), type(processor)


def test_label_only_equals_transformers_pipeline_with_torchvision(s3_pipe, tiny_clip_dir, photos):
    hf = pipeline("zero-shot-image-classification", model=str(tiny_clip_dir))
    assert type(hf.image_processor) is type(s3_pipe.engine.encoder.image_processor)
    images = [str(p) for p in photos]
    ours, theirs = s3_pipe(images, candidate_labels=LABELS), hf(images, candidate_labels=LABELS)
    for a, b in zip(ours, theirs, strict=True):
        assert [r["label"] for r in a] == [r["label"] for r in b]
        for x, y in zip(a, b, strict=True):
            assert x["score"] == pytest.approx(y["score"], abs=1e-5)


def test_backends_agree_within_the_measured_bound(tiny_clip_dir, photos):
    pil = AutoImageProcessor.from_pretrained(tiny_clip_dir, backend="pil")
    tv = AutoImageProcessor.from_pretrained(tiny_clip_dir, backend="torchvision")
    assert type(pil).__name__.endswith("Pil") and not type(tv).__name__.endswith("Pil")
    for p in photos:
        for min_side in (None, 224):
            im = load_image(p, min_side=min_side)
            a, b = image_inputs(pil, [im])["pixel_values"], image_inputs(tv, [im])["pixel_values"]
            assert a.shape == b.shape
            diff = (a - b).abs()
            assert diff.max() <= MAX_BOUND and diff.mean() <= MEAN_BOUND, (p, float(diff.max()), float(diff.mean()))
            assert torch.isfinite(b).all()
