"""The sliding window aggregates patch grids once per image (``Σ_windows B_h L B_wᵀ``): the same logits, up to
float rounding, as the references' order (each window's logits upsampled bilinearly to the window, added in place,
divided by the number of windows over each pixel), written out plainly here."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from s3_hf.engine.core import S3Engine
from s3_hf.models.dense import interpolation_matrix, sliding_logits, sliding_logits_many, window_starts
from s3_hf.segmentation.label_maps import label_map
from s3_hf.segmentation.logits import image_pixels, segment_logits_many, window_logits
from s3_hf.segmentation.options import SegmentOptions

RTOL = 1e-6  # of the largest logit: float rounding of a different summation order (measured about 1.3e-7)


def reference_sliding(pixels: torch.Tensor, fn, window: int, stride: int) -> torch.Tensor:
    """The references' order: every window's map upsampled to the window, summed in place, divided by the count."""
    _, height, width = pixels.shape
    window = window or max(height, width)
    total = count = None
    for y in window_starts(height, window, stride):
        for x in window_starts(width, window, stride):
            crop = pixels[:, y : y + window, x : x + window]
            h, w = crop.shape[1:]
            grid = fn(crop[None])
            up = F.interpolate(grid[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            if total is None:
                total, count = torch.zeros(len(grid), height, width), torch.zeros(height, width)
            for i in range(h):
                for j in range(w):
                    total[:, y + i, x + j] += up[:, i, j]
                    count[y + i, x + j] += 1
    return total / count


def assert_near(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.shape == want.shape
    assert (got - want).abs().max() <= RTOL * want.abs().max()


@pytest.mark.parametrize(("size_in", "size_out"), [(7, 224), (10, 336), (7, 230), (3, 5), (5, 5), (1, 9), (9, 4)])
def test_interpolation_matrix_is_bilinear_upsampling(size_in, size_out):
    torch.manual_seed(size_in * 100 + size_out)
    logits = torch.randn(6, size_in, size_in + 2) * 20
    a_h, a_w = interpolation_matrix(size_in, size_out), interpolation_matrix(size_in + 2, size_out + 3)
    want = F.interpolate(logits[None], size=(size_out, size_out + 3), mode="bilinear", align_corners=False)[0]
    assert_near(a_h @ logits @ a_w.T, want)
    assert torch.allclose(a_h.sum(1), torch.ones(size_out))  # each output a convex combination of inputs
    if size_in == size_out:
        assert torch.equal(a_h, torch.eye(size_in))


@pytest.mark.parametrize(
    ("height", "width", "window", "stride", "patch"),
    [
        (336, 448, 224, 112, 32),  # the defaults with ViT-B/32
        (336, 500, 224, 112, 16),  # a last window flush with the edge, off the stride
        (40, 57, 32, 16, 8),
        (30, 30, 32, 16, 8),  # one window smaller than the window size
        (45, 61, 0, 16, 8),  # the whole image, sides not multiples of the patch size (remainder rows dropped)
        (50, 70, 24, 20, 5),  # windows overlapping unevenly
    ],
)
def test_patch_grids_aggregated_once_equal_the_references_order(height, width, window, stride, patch):
    torch.manual_seed(height * width + window)
    pixels = torch.randn(3, height, width)
    weights = torch.randn(150, 3) * 10  # 150 classes from the mean colour of each patch: varies per window

    def fn(crop: torch.Tensor) -> torch.Tensor:
        gh, gw = crop.shape[-2] // patch, crop.shape[-1] // patch
        pooled = F.adaptive_avg_pool2d(crop[0, :, : gh * patch, : gw * patch], (gh, gw))
        return torch.einsum("cd,dhw->chw", weights, pooled) + crop[0, 0, 0, 0]

    got = sliding_logits(pixels, fn, window, stride)
    assert_near(got, reference_sliding(pixels, fn, window, stride))
    several = sliding_logits_many(pixels, lambda crop: [fn(crop), 2 * fn(crop)[:3]], window, stride)
    assert torch.equal(several[0], got) and torch.allclose(several[1], 2 * got[:3], rtol=0, atol=1e-5)


def test_maps_at_the_window_size_are_added_as_before():
    torch.manual_seed(0)
    pixels = torch.randn(3, 50, 70)

    def fn(crop: torch.Tensor) -> torch.Tensor:
        return crop[0, :2] * 3.0 + crop[0, 2:].sum()

    got = sliding_logits(pixels, fn, 32, 16)
    _, height, width = pixels.shape
    total, count = torch.zeros(2, height, width), torch.zeros(1, height, width)
    for y in window_starts(height, 32, 16):
        for x in window_starts(width, 32, 16):
            crop = pixels[:, y : y + 32, x : x + 32]
            total[:, y : y + 32, x : x + 32] += fn(crop[None])
            count[:, y : y + 32, x : x + 32] += 1
    assert torch.equal(got, total / count)  # no upsampling involved: bit for bit


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    return S3Engine.from_pretrained(tiny_clip_dir, device="cpu")


@pytest.mark.parametrize("variant", ["naclip", "sclip", None])
def test_segment_logits_equal_per_window_upsampling_on_a_tiny_clip(engine, photos, variant):
    labels = ["cat", "cup", "rocket", "grass", "sky", "person", "road"]
    resolveds = [
        engine.resolve(engine.request(labels, hypothesis_template="a photo of a {}.", metric="label")),
        engine.resolve(engine.request(labels[:3], hypothesis_template="{}.", metric="label")),
    ]
    image = Image.open(photos[1]).convert("RGB")
    options = SegmentOptions(variant=variant, short_side=40, window=32, stride=16)
    got = segment_logits_many(engine, image, resolveds, options)
    mean, std = engine.encoder.pixel_stats()
    pixels = image_pixels(image, mean, std, 40)
    _, height, width = pixels.shape
    for k, resolved in enumerate(resolveds):
        # the references' order: each window's logits upsampled to the window (window_logits), added, averaged
        total, count = torch.zeros(len(got[k]), height, width), torch.zeros(1, height, width)
        for y in window_starts(height, 32, 16):
            for x in window_starts(width, 32, 16):
                up = window_logits(engine, resolved, pixels[None, :, y : y + 32, x : x + 32], variant)
                total[:, y : y + up.shape[1], x : x + up.shape[2]] += up
                count[:, y : y + up.shape[1], x : x + up.shape[2]] += 1
        want = total / count
        assert_near(got[k], want)
        names = labels[: len(want)]
        assert torch.equal(label_map(got[k], names, None, image.size), label_map(want, names, None, image.size))
