"""PAMR (s3_hf.segmentation.pamr) against a loop reference written from the published maths, its row blocks and
class chunks against the whole-image computation, its typed errors, and its memory on a 12 MP photo."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import textwrap

import pytest
import torch

from s3_hf.errors import InvalidConfigError, S3Error
from s3_hf.segmentation.pamr import WORKING_BYTES, PamrRefiner, naclip_guide, pamr, plan_pamr


def reference(image: list, scores: list, steps: int, dilations: tuple[int, ...]) -> list:
    """PAMR pixel by pixel in plain Python floats: for each pixel, the 8 neighbours at each dilation (positions
    outside the image take the nearest border pixel), per channel the sample std of the 3x3 dilated grids of all
    dilations (centre once per dilation), a softmax over all neighbours of the channel mean of
    -|x(p) - x(q)| / (1e-8 + 0.1 std), then ``steps`` rounds of m(p) <- sum_q w(p, q) m(q)."""
    channels, height, width = len(image), len(image[0]), len(image[0][0])

    def at(grid: list, i: int, j: int) -> float:
        return grid[min(max(i, 0), height - 1)][min(max(j, 0), width - 1)]

    square = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    moves = [(dy * d, dx * d) for d in dilations for dy, dx in square if (dy, dx) != (0, 0)]
    weights = {}
    for i in range(height):
        for j in range(width):
            logits = [0.0] * len(moves)
            for c in range(channels):
                grid = [at(image[c], i + dy * d, j + dx * d) for d in dilations for dy, dx in square]
                std = statistics.stdev(grid)
                for k, (dy, dx) in enumerate(moves):
                    logits[k] -= abs(image[c][i][j] - at(image[c], i + dy, j + dx)) / (1e-8 + 0.1 * std) / channels
            top = max(logits)
            e = [math.exp(v - top) for v in logits]
            weights[i, j] = [v / sum(e) for v in e]
    maps = [[row[:] for row in m] for m in scores]
    for _ in range(steps):
        maps = [
            [
                [
                    sum(w * at(m, i + dy, j + dx) for w, (dy, dx) in zip(weights[i, j], moves, strict=True))
                    for j in range(width)
                ]
                for i in range(height)
            ]
            for m in maps
        ]
    return maps


def test_constant_image_averages_the_eight_clamped_neighbours() -> None:
    # A flat image has no edges: every neighbour weighs 1/8. One step at dilation 1 on m = arange(20) as 4x5:
    # corner (0,0) sees (0,0) three times, (0,1) and (1,0) twice, (1,1) once: (0 + 2*1 + 2*5 + 6) / 8 = 2.25;
    # an interior pixel of a linear map keeps its value; corner (3,4) = (3*19 + 2*18 + 2*14 + 13) / 8 = 16.75.
    scores = torch.stack([torch.arange(20.0).view(4, 5), torch.ones(4, 5)])
    out = pamr(torch.full((3, 4, 5), 0.3), scores, steps=1, dilations=(1,))
    assert out[0, 0, 0].item() == pytest.approx(2.25)
    assert out[0, 1, 1].item() == pytest.approx(6.0)
    assert out[0, 2, 3].item() == pytest.approx(13.0)
    assert out[0, 3, 4].item() == pytest.approx(16.75)
    assert torch.allclose(out[1], torch.ones(4, 5))


def test_small_hand_case_matches_the_loop_reference() -> None:
    # A 4x5 image with a vertical edge between columns 1 and 2, two classes, dilation 1, one step.
    image = torch.tensor(
        [[[0.1, 0.2, 0.9, 0.8, 0.9]] * 4, [[0.0, 0.1, 0.7, 0.7, 0.6]] * 4, [[0.3, 0.3, 0.5, 0.6, 0.5]] * 4]
    )
    image[:, 2, 0] += 0.05
    scores = torch.tensor([[[1.0, 1.0, 0.0, 0.0, 0.0]] * 4, [[0.0, 0.0, 1.0, 1.0, 1.0]] * 4])
    scores[1, 0, 2] = 0.5
    expected = torch.tensor(reference(image.tolist(), scores.tolist(), 1, (1,)))
    out = pamr(image, scores, steps=1, dilations=(1,))
    assert torch.allclose(out, expected.float(), atol=1e-6)
    # Edge-aware: the left class barely leaks across the edge, unlike a plain neighbour average (1/8 per pixel).
    assert out[0, :, 2].max().item() < 0.05


def test_vectorised_matches_the_loop_reference_on_random_pixels() -> None:
    g = torch.Generator().manual_seed(3)
    image, scores = torch.rand(3, 12, 13, generator=g), torch.rand(4, 12, 13, generator=g)
    expected = torch.tensor(reference(image.tolist(), scores.tolist(), 3, (1, 2)))
    out = pamr(image, scores, steps=3, dilations=(1, 2))
    assert out.dtype == torch.float32 and out.shape == scores.shape
    assert (out.double() - expected).abs().max().item() < 1e-6
    # Batched input gives the same maps per image.
    batched = pamr(torch.stack([image, image.flip(-1)]), torch.stack([scores, scores.flip(-1)]), 3, (1, 2))
    assert torch.equal(batched[0], out)
    assert torch.allclose(batched[1], pamr(image.flip(-1), scores.flip(-1), 3, (1, 2)))


def test_row_blocks_and_class_chunks_equal_the_whole_image() -> None:
    g = torch.Generator().manual_seed(5)
    image, scores = torch.randn(3, 61, 17, generator=g), torch.randn(5, 61, 17, generator=g)
    whole = pamr(image, scores, steps=2, dilations=(1, 3))
    assert plan_pamr(61, 17, 5, 2, (1, 3)).rows == 61

    blocks = plan_pamr(61, 17, 5, 2, (1, 3), max_bytes=1)
    assert blocks.halo == 6 and blocks.rows < 61 and blocks.classes == 1  # several blocks, each with its halo
    assert torch.equal(pamr(image, scores, steps=2, dilations=(1, 3), max_bytes=1), whole)

    two = plan_pamr(61, 17, 2, 2, (1, 3)).peak_bytes  # a budget that holds the whole image with two classes
    chunks = plan_pamr(61, 17, 5, 2, (1, 3), max_bytes=two)
    assert (chunks.rows, chunks.halo, chunks.classes) == (61, 0, 2)
    assert torch.equal(pamr(image, scores, steps=2, dilations=(1, 3), max_bytes=two), whole)


def test_refiner_chunk_by_chunk_equals_pamr_on_all_classes() -> None:
    g = torch.Generator().manual_seed(7)
    image, scores = torch.randn(3, 40, 29, generator=g), torch.randn(6, 40, 29, generator=g)
    whole = pamr(image, scores, steps=3, dilations=(2, 4))
    cached = PamrRefiner(image, steps=3, dilations=(2, 4))
    assert cached.affinity is not None and cached.affinity.shape == (16, 40, 29)  # computed once for all chunks
    blocked = PamrRefiner(image, steps=3, dilations=(2, 4), max_bytes=1)
    assert blocked.affinity is None  # too big for the budget: recomputed per block
    for refiner in (cached, blocked):
        assert torch.equal(torch.cat([refiner(scores[:4]), refiner(scores[4:])]), whole)
    with pytest.raises(InvalidConfigError, match="differs from the scores'"):
        cached(scores[:, :20])
    with pytest.raises(InvalidConfigError, match="one \\(C, H, W\\) image"):
        PamrRefiner(image[None])


def test_naclip_guide_is_the_model_input_resized_bilinearly_to_the_original_size() -> None:
    pixels = torch.arange(12.0).view(1, 3, 4).expand(3, 3, 4)
    guide = naclip_guide(pixels, 6, 8)
    assert guide.shape == (3, 6, 8)
    # align_corners=False: output column j samples input column (j + 0.5) / 2 - 0.5, clamped at the borders.
    assert guide[0, 0].tolist() == pytest.approx([0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0])
    assert torch.equal(naclip_guide(pixels, 3, 4), pixels)


def test_zero_steps_is_a_copy() -> None:
    scores = torch.rand(2, 5, 6)
    out = pamr(torch.rand(3, 5, 6), scores, steps=0, dilations=(8, 16))  # dilations unused: no fit check
    assert torch.equal(out, scores) and out.data_ptr() != scores.data_ptr()


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"steps": -1}, "non-negative integer"),
        ({"steps": 2.0}, "non-negative integer"),
        ({"steps": True}, "non-negative integer"),
        ({"dilations": ()}, "non-empty sequence"),
        ({"dilations": "8"}, "non-empty sequence"),
        ({"dilations": 8}, "non-empty sequence"),
        ({"dilations": (8, 0)}, "positive integers"),
        ({"dilations": (1.5,)}, "positive integers"),
        ({"dilations": (True,)}, "positive integers"),
        ({"dilations": (2, 30)}, "smaller than the image's shorter side (30 px)"),
        ({"image": torch.rand(3, 30, 31)}, "differs from the scores'"),
        ({"image": torch.rand(1, 3, 30, 40)}, "both be (C, H, W) or both"),
        ({"image": torch.zeros(3, 30, 40, dtype=torch.uint8)}, ".float()"),
        ({"scores": torch.rand(30, 40)}, "(K, H, W)"),
        ({"scores": torch.full((2, 30, 40), float("nan"))}, "NaN"),
    ],
)
def test_bad_input_is_a_typed_error_that_says_what_to_do(kwargs: dict, says: str) -> None:
    args = {"image": torch.rand(3, 30, 40), "scores": torch.rand(2, 30, 40), "steps": 2, "dilations": (1, 2)} | kwargs
    with pytest.raises(InvalidConfigError) as err:
        pamr(**args)
    assert isinstance(err.value, S3Error) and says in str(err.value)


def test_naclip_values_on_a_small_image_are_refused_with_advice() -> None:
    with pytest.raises(InvalidConfigError, match=r"dilation 16 does not fit a 12x40 image.*turn PAMR off"):
        pamr(torch.rand(3, 12, 40), torch.rand(2, 12, 40))


def test_a_12_mp_photo_with_150_classes_is_planned_one_class_at_a_time_within_the_budget() -> None:
    plan = plan_pamr(3000, 4000, 150)
    assert plan.classes == 1 and plan.halo == 160 and 160 <= plan.rows < 3000
    assert plan.peak_bytes <= WORKING_BYTES
    # The published layout holds classes x neighbours x H x W at once: 115 GB here.
    assert plan.peak_bytes < 150 * 16 * 3000 * 4000 * 4 / 100


def test_a_12_mp_photo_is_refined_in_bounded_memory() -> None:
    # Measured in a fresh process: the high-water mark of resident memory while refining, over the inputs. One class
    # keeps it quick; the plan above is the same one class at a time for 150.
    code = textwrap.dedent(
        """
        import json, resource, torch
        from s3_hf.segmentation.pamr import pamr, plan_pamr
        image, scores = torch.rand(3, 3000, 4000), torch.rand(1, 3000, 4000)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out = pamr(image, scores)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        ok = bool(torch.isfinite(out).all()) and out.shape == scores.shape
        print(json.dumps({"grown": after - before, "peak": plan_pamr(3000, 4000, 1).peak_bytes, "ok": ok}))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["ok"]
    returned = 3000 * 4000 * 4
    assert got["grown"] <= got["peak"] + returned + (64 << 20), got
