"""Hub benchmarks go through the project's own image decoder, as image folders do: their images are kept encoded
(``datasets.Image(decode=False)``) and decoded by :func:`s3_hf.io.images.image_from_bytes`, JPEGs at reduced size
by default and every pixel with ``--exact-decode``, which gives the embeddings a full ``datasets.Image()`` decode
gave. Uses the CLIP_benchmark-layout replica of ``test_benchmark_hub.py`` on the in-process fake Hub."""

from __future__ import annotations

import io
import json

import datasets
import numpy as np
import pytest
import torch
from helpers import fake_hub
from PIL import Image
from test_benchmark_hub import REPO, Sample, hub_home, replica  # noqa: F401 (hub_home: a fixture used below)

from s3_hf.cli import main
from s3_hf.evaluation.data import hub, registry
from s3_hf.io.images import ORIGINAL_SIZE

pytestmark = pytest.mark.usefixtures("hub_home")  # online against the fake Hub, every cache under tmp_path
SIDE = 256  # the tiny CLIP's resize target is 32: a 256-pixel JPEG decodes at 1/8 scale


def photo(name: str, ext: str) -> bytes:
    from skimage import data

    image = Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB").resize((SIDE, SIDE))
    out = io.BytesIO()
    image.save(out, format={"jpg": "JPEG", "webp": "WEBP"}[ext], quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def samples() -> dict[str, list[list[Sample]]]:
    """Test split: three JPEGs in one shard, a WebP (never drafted) and a JPEG in another."""
    items = [
        ("chelsea", "jpg", 0),
        ("coffee", "jpg", 1),
        ("astronaut", "jpg", 2),
        ("rocket", "webp", 3),
        ("cat", "jpg", 0),
    ]
    made = [Sample(f"s{i:07d}", ext, photo(name, ext), label) for i, (name, ext, label) in enumerate(items)]
    return {"test": [made[:3], made[3:]]}


@pytest.fixture
def decoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int | None, Image.Image]]:
    """Every call of the project's decoder on a Hub image: the ``min_side`` it was given and the image it made."""
    calls: list[tuple[int | None, Image.Image]] = []
    decode = hub.image_from_bytes

    def spy(data: bytes, min_side: int | None = None, name: str = "image bytes") -> Image.Image:
        image = decode(data, min_side, name)
        calls.append((min_side, image))
        return image

    monkeypatch.setattr(hub, "image_from_bytes", spy)
    return calls


def test_s3_eval_decodes_hub_jpegs_at_reduced_size_unless_exact(
    samples, tiny_clip_dir, tmp_path, monkeypatch, decoder_calls
):
    from s3_hf.engine.core import S3Engine

    min_side = S3Engine.from_pretrained(str(tiny_clip_dir), device="cpu").encoder.decode_min_side()
    assert min_side and min_side <= SIDE // 8
    monkeypatch.setitem(registry.REGISTRY, "toy-wds", registry.Benchmark("toy-wds", hub_id=REPO))
    argv = ["eval", "--benchmarks", "toy-wds", "--model", str(tiny_clip_dir), "--synonyms", "none"]
    argv += ["--batch-size", "2", "--methods", "label"]
    with fake_hub({REPO: replica(samples)}):
        assert main([*argv, "--out", str(tmp_path / "fast")]) == 0
        fast = list(decoder_calls)
        decoder_calls.clear()
        assert main([*argv, "--out", str(tmp_path / "exact"), "--exact-decode"]) == 0
    expected = [s for part in samples["test"] for s in part]
    assert len(fast) == len(expected) and {m for m, _ in fast} == {min_side}
    drafted = [image for _, image in fast if ORIGINAL_SIZE in image.info]
    assert len(drafted) == 4  # the four JPEGs, each decoded at 1/8 scale; the WebP in full
    assert all(image.size == (SIDE // 8, SIDE // 8) and image.info[ORIGINAL_SIZE] == (SIDE, SIDE) for image in drafted)
    assert sorted(image.size for _, image in fast if ORIGINAL_SIZE not in image.info) == [(SIDE, SIDE)]
    assert len(decoder_calls) == len(expected) and {m for m, _ in decoder_calls} == {None}
    assert all(image.size == (SIDE, SIDE) and ORIGINAL_SIZE not in image.info for _, image in decoder_calls)
    results = {k: json.loads((tmp_path / k / "results.json").read_text()) for k in ("fast", "exact")}
    assert all(r["benchmarks"]["toy-wds"]["samples"] == len(expected) for r in results.values())


def test_exact_decoding_gives_the_embeddings_a_full_datasets_decode_gave(samples, tiny_clip_dir, tmp_path):
    from accelerate import Accelerator

    from s3_hf.engine.core import S3Engine
    from s3_hf.evaluation.config import RunConfig
    from s3_hf.evaluation.embeddings import image_embeddings

    with fake_hub({REPO: replica(samples)}):
        data = registry.load(registry.Benchmark("toy-wds", hub_id=REPO))
    encoder = S3Engine.from_pretrained(str(tiny_clip_dir), device="cpu").encoder
    accelerator = Accelerator(cpu=True)

    def embed(fast: bool) -> torch.Tensor:
        cfg = RunConfig(str(tiny_clip_dir), [], batch_size=2, fast_decode=fast, workers=0)
        emb, cached = image_embeddings(accelerator, encoder, data, cfg, tmp_path / "cache")
        assert not cached
        return emb

    # before: datasets.Image() decoded every sample, and the encoder read those PIL images exactly
    full = datasets.Image()
    before_images = [full.decode_example({"bytes": s.image, "path": None}) for part in samples["test"] for s in part]
    batches = encoder.encode_image_batches(before_images, 2, fast=False, workers=0)
    before = torch.cat([b.features for b in batches])
    exact, fast = embed(False), embed(True)
    assert torch.equal(exact, before)
    assert exact.shape == fast.shape and not torch.allclose(exact, fast)  # the reduced decode changes pixels
