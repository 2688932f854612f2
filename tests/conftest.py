"""Shared fixtures: a tiny random CLIP checkpoint saved to disk, real photos, and offline Hub settings."""

from __future__ import annotations

import os
import string
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def char_tokenizer(model_max_length: int = 77):
    """A character-level CLIP tokenizer (lower-case letters, digits, punctuation)."""
    from transformers import CLIPTokenizer

    chars = string.ascii_lowercase + string.digits + string.punctuation
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def make_tiny_clip(path: Path, seed: int = 0, projection_dim: int = 16) -> Path:
    """Save a tiny random CLIPModel with a character-level CLIP tokenizer and a 32px image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = char_tokenizer()
    vocab = tokenizer.get_vocab()
    eos = vocab["<|endoftext|>"]
    layers = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = CLIPConfig(
        text_config={
            **layers,
            "vocab_size": len(vocab),
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": eos,
            "pad_token_id": eos,
        },
        vision_config={**layers, "image_size": 32, "patch_size": 8},
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    processor.save_pretrained(path)
    return path


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


SYNONYMS = {
    "cat": ["domestic cat", "house cat", "kitty", "tabby", "feline"],
    "dog": ["puppy", "hound", "canine", "pooch"],
    "airplane": ["aeroplane", "plane", "airliner", "jet"],
}


@pytest.fixture(scope="session")
def small_space(tiny_model, tiny_clip_dir):
    """A space over three classes with synonyms, built with the tiny model."""
    from s3_hf import build_synonym_space

    model, tokenizer = tiny_model
    return build_synonym_space(model, tokenizer, list(SYNONYMS), SYNONYMS, base_model=str(tiny_clip_dir))
