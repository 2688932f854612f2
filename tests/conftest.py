"""Shared fixtures: a tiny random CLIP checkpoint saved to disk, real photos, and offline Hub settings."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from helpers import SYNONYMS, make_tiny_clip
from PIL import Image


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "tiny-clip")


@pytest.fixture(scope="session")
def tiny_model(tiny_clip_dir: Path):
    from transformers import AutoTokenizer, CLIPModel

    return CLIPModel.from_pretrained(tiny_clip_dir).eval(), AutoTokenizer.from_pretrained(tiny_clip_dir)


@pytest.fixture(scope="session")
def s3_pipe(tiny_clip_dir: Path):
    from transformers import pipeline

    import s3_hf

    return pipeline(s3_hf.TASK, model=str(tiny_clip_dir))


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Real photos from scikit-image, written as JPEG and PNG files."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    out = []
    for name, ext in [
        ("chelsea", "jpg"),
        ("coffee", "png"),
        ("astronaut", "jpg"),
        ("rocket", "png"),
        ("camera", "png"),
    ]:
        arr = getattr(data, name)()
        path = folder / f"{name}.{ext}"
        Image.fromarray(np.asarray(arr)).save(path)
        out.append(path)
    return out


@pytest.fixture(scope="session")
def small_space(tiny_model, tiny_clip_dir):
    """A space over three classes with synonyms, built with the tiny model."""
    from s3_hf import build_synonym_space

    model, tokenizer = tiny_model
    return build_synonym_space(model, tokenizer, list(SYNONYMS), SYNONYMS, base_model=str(tiny_clip_dir))


@pytest.fixture
def saved(small_space, tmp_path: Path) -> Path:
    """The small space saved into a folder of the test's own."""
    return small_space.save_pretrained(tmp_path / "space")
