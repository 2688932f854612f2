"""The image path: reduced-size JPEG decoding (the fast path) against full decoding (the exact path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import SHARED
from PIL import Image

from s3_hf.engine.core import S3Engine
from s3_hf.io.images import draft_jpeg, image_from_bytes, load_image

SAMPLE = SHARED / "data" / "imagenet-sample" / "images"
#: Measured on 50 ImageNet-sample photos upscaled to 12 MP (JPEG quality 90), ViT-B/32 preprocessing: the mean
#: absolute difference of the normalised pixel values was 0.050 on average and 0.200 for the worst photo.
MEAN_BOUND, WORST_BOUND = 0.06, 0.25


@pytest.fixture(scope="module")
def vit_b32():
    """The full-size ViT-B/32 preprocessing the bound was measured with (random weights: pixels only)."""
    folder = SHARED / "models" / "clip-vit-b32-shapes"
    if not folder.is_dir():
        pytest.skip(f"{folder} (the shared ViT-B/32 shapes) is absent")
    return S3Engine.from_pretrained(folder, device="cpu")


def big_jpeg(src, path, megapixels: float = 12.0) -> str:
    im = Image.open(src).convert("RGB")
    s = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
    im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.BICUBIC).save(path, quality=90)
    return str(path)


def test_exact_path_is_full_decoding(photos):
    for p in photos:
        assert np.array_equal(np.asarray(load_image(p)), np.asarray(Image.open(p).convert("RGB")))


def test_fast_path_decodes_large_jpegs_small_but_never_below_the_target(photos, tmp_path):
    path = big_jpeg(photos[0], tmp_path / "big.jpg")
    full, fast = load_image(path), load_image(path, min_side=224)
    assert min(fast.size) >= 224 and fast.size[0] < full.size[0] / 4  # 1/8 of a 12 MP photo
    assert abs(fast.size[0] / fast.size[1] - full.size[0] / full.size[1]) < 0.01
    with open(path, "rb") as f:
        data = f.read()
    assert image_from_bytes(data, 224).size == fast.size
    import base64

    assert load_image(base64.b64encode(data).decode(), min_side=224).size == fast.size


def test_small_jpegs_and_other_formats_are_unchanged(photos, tmp_path):
    small = tmp_path / "small.jpg"
    Image.open(photos[0]).convert("RGB").resize((300, 200)).save(small, quality=90)  # short side 200 < 224
    assert np.array_equal(np.asarray(load_image(small, min_side=224)), np.asarray(load_image(small)))
    png = tmp_path / "big.png"
    Image.open(photos[0]).convert("RGB").resize((1600, 1200)).save(png)
    assert np.array_equal(np.asarray(load_image(png, min_side=224)), np.asarray(load_image(png)))
    with Image.open(png) as im:
        assert draft_jpeg(im, 224) is im and im.size == (1600, 1200)


def test_pipeline_decodes_exactly_by_default(s3_pipe, photos, tmp_path):
    path = big_jpeg(photos[1], tmp_path / "big.jpg", 4.0)
    exact = s3_pipe(path, candidate_labels=["cat", "rocket"])
    again = s3_pipe(Image.open(path), candidate_labels=["cat", "rocket"])  # transformers reads every pixel
    assert exact == again
    fast = s3_pipe(path, candidate_labels=["cat", "rocket"], fast_decode=True)
    assert {r["label"] for r in fast} == {"cat", "rocket"}


@pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"{SAMPLE} (the shared imagenet-sample) is absent")
def test_fast_path_stays_within_the_measured_bound_on_real_photos(vit_b32, tmp_path):
    engine = vit_b32
    paths = sorted(SAMPLE.iterdir())[::100]  # 10 photos, upscaled to 12 MP as phones take them
    min_side = engine.encoder.decode_min_side()
    diffs = []
    for p in paths:
        big = big_jpeg(p, tmp_path / p.name)
        exact = engine.image_inputs([load_image(big)])["pixel_values"]
        fast = engine.image_inputs([load_image(big, min_side=min_side)])["pixel_values"]
        diffs.append(float((exact - fast).abs().mean()))
        assert torch.isfinite(fast).all()
    assert max(diffs) <= WORST_BOUND and float(np.mean(diffs)) <= MEAN_BOUND, diffs
    # the original sample photos (about 500 x 375) are too small to decode at reduced size: identical
    for p in paths[:3]:
        assert np.array_equal(np.asarray(load_image(p, min_side=min_side)), np.asarray(load_image(p)))


#: How far image workers may move a score: each worker encodes on its share of torch's threads, so float32 sums
#: are reduced in another order (seen: 2.4e-7). Labels and their order never change.
WORKER_TOLERANCE = 1e-5


def assert_same_up_to_rounding(a: object, b: object, where: str = "") -> None:
    """Same structure, same labels, strings and integers (so the same ranking); floats within WORKER_TOLERANCE."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=WORKER_TOLERANCE), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same_up_to_rounding(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_up_to_rounding(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_decode_workers_change_nothing_but_time(tiny_clip_dir, s3_pipe, photos, capsys):
    """The CLI encodes batches side by side in workers; the pipeline's num_workers preprocess in a data loader: both
    give the results of decoding in turn, labels identical and scores equal up to float32 rounding."""
    import json

    from s3_hf.cli import main

    outs = []
    for workers in ("0", "2"):
        args = ["classify", *map(str, photos), "--labels", "cat, rocket, coffee", "--model", str(tiny_clip_dir)]
        assert main([*args, "--json", "--batch-size", "2", "--workers", workers]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert len(outs[0]) == len(photos)
    assert_same_up_to_rounding(outs[0], outs[1])
    images = [str(p) for p in photos]
    plain = s3_pipe(images, candidate_labels=["cat", "rocket"], batch_size=2)
    assert_same_up_to_rounding(s3_pipe(images, candidate_labels=["cat", "rocket"], num_workers=2, batch_size=2), plain)


@pytest.fixture
def served(tmp_path, photos):
    """A local HTTP server over a folder holding a 12 MP JPEG, a small JPEG and a text file."""
    import functools
    import http.server
    import threading

    big_jpeg(photos[0], tmp_path / "big.jpg")
    (tmp_path / "small.jpg").write_bytes(photos[0].read_bytes())
    (tmp_path / "notes.jpg").write_text("not an image")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()
    server.server_close()


def test_urls_decode_like_files_exact_and_fast(served):
    """URLs go through the same decoding as files: every pixel on the exact path, reduced size on the fast one."""
    from s3_hf.errors import ImageLoadError

    url, folder = served
    for name in ("big.jpg", "small.jpg"):
        path = str(folder / name)
        assert np.array_equal(np.asarray(load_image(f"{url}/{name}")), np.asarray(load_image(path)))
        fast = load_image(f"{url}/{name}", min_side=224, timeout=10)
        assert np.array_equal(np.asarray(fast), np.asarray(load_image(path, min_side=224)))
    big = load_image(f"{url}/big.jpg", min_side=224)
    assert min(big.size) >= 224 and big.size[0] < Image.open(folder / "big.jpg").size[0] // 4
    with pytest.raises(ImageLoadError, match="HTTP 404"):
        load_image(f"{url}/missing.jpg", min_side=224)
    with pytest.raises(ImageLoadError, match=r"notes\.jpg is not an image file"):
        load_image(f"{url}/notes.jpg")
