"""Segmentation protocols: the reference presets (values, overrides, typed errors), and the two mechanisms they need,
each against a hand-written reference: mmseg's keep-ratio rescale rule with cv2-style bilinear resizing, and the
references' ``scale_factor=(n + 0.1) / sqrt(N)`` position-interpolation rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import planted_seg_folder
from PIL import Image

from s3_hf.errors import InvalidConfigError, ProtocolBenchmarkError, UnknownProtocolError
from s3_hf.models.dense import interpolate_positions, rescale_size, resize_bilinear, sliding_logits
from s3_hf.segmentation import protocols
from s3_hf.segmentation.logits import image_pixels
from s3_hf.segmentation.options import SegmentOptions

# ---------------------------------------------------------------------------------------------- presets


def test_reference_values_per_benchmark():
    naclip = protocols.resolve("naclip", "voc21")
    assert (naclip.window, naclip.short_side, naclip.long_side) == (0, 336, 2048)  # whole image, as slide_crop=0
    assert (naclip.logit_scale, naclip.prob_threshold, naclip.background_index) == (40.0, 0.1, 0)
    assert (naclip.pamr_steps, naclip.pamr_dilations) == (10, (8, 16))
    assert protocols.resolve("naclip", "ade20k").window == 224
    assert protocols.resolve("naclip", "cityscapes").short_side == 560
    sclip = protocols.resolve("sclip", "voc21")
    assert (sclip.logit_scale, sclip.prob_threshold, sclip.area_threshold, sclip.pamr_steps) == (65.0, 0.1, 0.1, 0)
    assert protocols.resolve("sclip", "coco-stuff").short_side == 448
    assert protocols.resolve("sclip", "context60").logit_scale == 50.0
    clear = protocols.resolve("clearclip", "cityscapes")
    assert (clear.short_side, clear.window, clear.stride, clear.logit_scale) == (448, 224, 224, 50.0)
    assert protocols.resolve("clearclip", "coco-object").prob_threshold == 0.4
    for name in ("sclip", "naclip", "clearclip"):
        for values in protocols.table(name).values():
            assert (values.resize, values.positions, values.fast_decode) == ("bilinear", "scale", False)
            # no threshold means no background index is needed; a threshold always sends pixels to index 0
            assert (values.prob_threshold is None) == (values.background_index is None)
    s3 = protocols.resolve("s3", "voc21")
    assert (s3.resize, s3.positions, s3.window, s3.short_side, s3.long_side) == ("pil-bicubic", "size", 224, 336, None)
    assert s3.logit_scale is None and s3.prob_threshold is None


def test_every_value_is_overridable_and_recorded_with_its_source():
    values = protocols.resolve("naclip", "voc21", short_side=448, pamr_steps=0, window=None)
    assert (values.short_side, values.pamr_steps, values.window) == (448, 0, 0)  # None keeps the preset's value
    record = values.to_dict()
    assert set(protocols.ProtocolValues.value_names()) <= set(record)
    assert record["sources"]["short_side"] == "override"
    assert record["sources"]["prob_threshold"] == "NACLIP configs/cfg_voc21.py"
    assert record["sources"]["logit_scale"] == "NACLIP naclip.py"
    for name in protocols.ProtocolValues.value_names():  # every value can be replaced
        assert name in record["sources"]
    with pytest.raises(InvalidConfigError, match="Unknown protocol value"):
        protocols.resolve("naclip", "voc21", shortside=448)
    with pytest.raises(InvalidConfigError, match="resize"):
        protocols.resolve("s3", resize="lanczos")


def test_unknown_protocol_and_unpublished_benchmark_are_typed_errors():
    with pytest.raises(UnknownProtocolError, match="s3, sclip, naclip, clearclip"):
        protocols.resolve("maskclip", "voc21")
    with pytest.raises(ProtocolBenchmarkError, match="--benchmark NAME"):
        protocols.resolve("naclip", None)
    with pytest.raises(ProtocolBenchmarkError, match="coco-stuff10k"):
        protocols.resolve("sclip", "coco-stuff10k")
    assert protocols.resolve("s3", "my-folder").benchmark == "my-folder"  # s3 takes any benchmark


def test_protocols_module_needs_no_torch():
    import subprocess
    import sys

    code = "import sys, s3_hf.segmentation.protocols; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---------------------------------------------------------------------------------------------- resize


def mmcv_rescale(h: int, w: int, short: int, long: int) -> tuple[int, int]:
    """mmcv's rescale_size for scale=(long, short), written out: the factor that fits both edges, rounded half up."""
    factor = min(long / max(h, w), short / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


@pytest.mark.parametrize(
    "h, w, short, long, want",
    [
        (375, 500, 336, 2048, (336, 448)),  # a VOC image: the short side rules
        (500, 375, 336, 2048, (448, 336)),
        (1024, 2048, 560, 2048, (560, 1120)),  # Cityscapes at 560
        (100, 1000, 336, 2048, (205, 2048)),  # elongated: the 2048 cap rules (factor 2.048)
        (333, 500, 336, 2048, (336, 505)),  # 504.5045 rounds half up to 505
        (7, 7, 448, 2048, (448, 448)),
    ],
)
def test_rescale_size_follows_mmcvs_keep_ratio_rule(h, w, short, long, want):
    assert rescale_size(h, w, short, long) == want == mmcv_rescale(h, w, short, long)


def cv2_bilinear_loop(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """cv2 INTER_LINEAR written out: half-pixel centres, the left neighbour clamped to [0, n-1] with weight 0 past
    the edges, no antialiasing, rounded to uint8 (in floating point: cv2's fixed point may differ by one level)."""

    def taps(n_in: int, n_out: int) -> list[tuple[int, int, float]]:
        scale = n_in / n_out
        out = []
        for d in range(n_out):
            f = (d + 0.5) * scale - 0.5
            s = math.floor(f)
            f -= s
            if s < 0:
                s, f = 0, 0.0
            if s >= n_in - 1:
                s, f = n_in - 1, 0.0
            out.append((s, min(s + 1, n_in - 1), f))
        return out

    ys, xs = taps(src.shape[0], out_h), taps(src.shape[1], out_w)
    out = np.zeros((out_h, out_w, src.shape[2]), dtype=np.uint8)
    for i, (y0, y1, fy) in enumerate(ys):
        for j, (x0, x1, fx) in enumerate(xs):
            top = src[y0, x0] * (1 - fx) + src[y0, x1] * fx
            bottom = src[y1, x0] * (1 - fx) + src[y1, x1] * fx
            out[i, j] = np.clip(np.floor(top * (1 - fy) + bottom * fy + 0.5), 0, 255)
    return out


@pytest.mark.parametrize("size", [(7, 5), (23, 31), (3, 2), (12, 18)])  # down, up and mixed
def test_bilinear_resize_is_cv2s_inter_linear_without_antialias(size):
    src = np.random.default_rng(0).integers(0, 256, (12, 18, 3)).astype(np.float64)
    got = resize_bilinear(torch.from_numpy(src.astype(np.uint8)), size).numpy()
    want = cv2_bilinear_loop(src, *size)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float rounding at exact .5 only
    assert (got == want).mean() > 0.97


def test_bilinear_downscale_skips_pixels_where_antialiasing_would_average():
    # a one-pixel checkerboard halved: without antialiasing each output pixel interpolates half-way between two
    # source pixels (127.5 -> 128); PIL bicubic with antialiasing averages the same way but over a wider support
    board = (np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, -1)
    got = resize_bilinear(torch.from_numpy(board), (4, 4)).numpy()
    assert (got == 128).all()
    quarter = resize_bilinear(torch.from_numpy(board), (2, 2)).numpy()  # 4x down: taps at 1.5 and 5.5 only
    assert (quarter == 128).all()
    stripes = np.zeros((8, 8, 3), dtype=np.uint8)
    stripes[:, 2::4] = 255  # columns 2 and 6: never sampled by a 4x bilinear downscale (taps 1-2 and 5-6 at 0.5)
    assert (resize_bilinear(torch.from_numpy(stripes), (8, 2)).numpy() == 128).all()
    stripes[:, 2::4] = 0
    stripes[:, 0::4] = 255  # columns 0 and 4: outside the taps, dropped without antialiasing
    assert (resize_bilinear(torch.from_numpy(stripes), (8, 2)).numpy() == 0).all()


def test_image_pixels_with_the_mmseg_resize():
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (50, 80, 3)).astype(np.uint8))
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    got = image_pixels(image, mean, std, 32, 2048, "bilinear")
    assert got.shape == (3, 32, 51)  # 80 * 0.64 = 51.2
    want = cv2_bilinear_loop(np.asarray(image).astype(np.float64), 32, 51).astype(np.float32) / 255
    want = (torch.from_numpy(want).permute(2, 0, 1) - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[
        :, None, None
    ]
    assert (got - want).abs().max() <= 1 / 255 / min(std) + 1e-6
    assert not torch.allclose(got, image_pixels(image, mean, std, 32))  # PIL bicubic differs


def test_segment_options_take_the_protocol_mechanisms():
    options = SegmentOptions(window=0, resize="bilinear", long_side=2048, positions="scale")
    assert options.window == 0
    with pytest.raises(InvalidConfigError, match="resize"):
        SegmentOptions(resize="area")
    with pytest.raises(InvalidConfigError, match="position"):
        SegmentOptions(positions="nearest")
    with pytest.raises(InvalidConfigError, match="window"):
        SegmentOptions(window=-1)


def test_window_zero_is_one_pass_over_the_whole_image():
    pixels = torch.randn(3, 40, 90)
    calls = []

    def fn(crop: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(crop.shape[-2:]))
        return crop[0, :1] * 2

    out = sliding_logits(pixels, fn, window=0, stride=112)
    assert calls == [(40, 90)]
    assert torch.equal(out, pixels[:1] * 2)


# ---------------------------------------------------------------------------------------------- positions


def bicubic_scale_loop(grid: torch.Tensor, out_h: int, out_w: int, scale_h: float, scale_w: float) -> torch.Tensor:
    """PyTorch's bicubic (A = -0.75, half-pixel, border-clamped taps) with the sampling step 1/scale, written out."""

    def weights(t: float) -> list[float]:
        a = -0.75

        def near(x: float) -> float:
            return ((a + 2) * x - (a + 3)) * x * x + 1

        def far(x: float) -> float:
            return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

        return [far(t + 1), near(t), near(1 - t), far(2 - t)]

    c, h, w = grid.shape
    out = torch.zeros(c, out_h, out_w, dtype=torch.float64)
    g = grid.double()
    for i in range(out_h):
        fy = (i + 0.5) / scale_h - 0.5
        y0 = math.floor(fy)
        wy = weights(fy - y0)
        for j in range(out_w):
            fx = (j + 0.5) / scale_w - 0.5
            x0 = math.floor(fx)
            wx = weights(fx - x0)
            acc = torch.zeros(c, dtype=torch.float64)
            for a in range(4):
                yy = min(max(y0 - 1 + a, 0), h - 1)
                for b in range(4):
                    xx = min(max(x0 - 1 + b, 0), w - 1)
                    acc += wy[a] * wx[b] * g[:, yy, xx]
            out[:, i, j] = acc
    return out


@pytest.mark.parametrize("grid", [(14, 21), (21, 14), (28, 28), (3, 5)])
def test_scale_rule_samples_at_n_plus_a_tenth_over_sqrt_n(grid):
    side, dim = 7, 4
    pos = torch.randn(1 + side * side, dim)
    got = interpolate_positions(pos, grid, rule="scale")
    assert torch.equal(got[0], pos[0])  # the class token's position is kept
    patch = pos[1:].reshape(side, side, dim).permute(2, 0, 1)
    want = bicubic_scale_loop(patch, *grid, (grid[0] + 0.1) / side, (grid[1] + 0.1) / side)
    assert torch.allclose(got[1:].T.reshape(dim, *grid).double(), want, atol=1e-5)
    size_rule = bicubic_scale_loop(patch, *grid, grid[0] / side, grid[1] / side)
    assert torch.allclose(
        interpolate_positions(pos, grid, rule="size")[1:].T.reshape(dim, *grid).double(), size_rule, atol=1e-5
    )
    assert not torch.allclose(got, interpolate_positions(pos, grid, rule="size"))  # the two rules differ


def test_scale_rule_keeps_the_pretraining_grid():
    pos = torch.randn(1 + 49, 4)
    assert interpolate_positions(pos, (7, 7), rule="scale") is pos
    with pytest.raises(InvalidConfigError, match="position interpolation"):
        interpolate_positions(pos, (9, 9), rule="nearest")


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    from s3_hf.engine.core import S3Engine

    return S3Engine.from_pretrained(tiny_clip_dir, device="cpu")


def test_transformers_encoder_builds_the_embeddings_under_the_scale_rule(engine):
    native = engine.encoder.model.config.vision_config.image_size
    torch.manual_seed(0)
    px = torch.randn(1, 3, native, native)
    for variant in ("naclip", "sclip"):  # at the pretraining grid both rules keep the positions: same tokens
        assert torch.equal(
            engine.encoder.dense_features(px, variant, positions="scale"), engine.encoder.dense_features(px, variant)
        )
    px = torch.randn(1, 3, 48, 80)
    scale, size = engine.encoder.dense_features(px, "naclip", "scale"), engine.encoder.dense_features(px, "naclip")
    assert scale.shape == size.shape and not torch.allclose(scale, size)


# ---------------------------------------------------------------------------------------------- wiring

VOC_NAMES = ["sky, wall, tree", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair"]
VOC_NAMES += ["cow", "table", "dog", "horse", "motorbike", "person, people", "plant", "sheep", "sofa", "train", "tv"]


@pytest.fixture(scope="module")
def voc21_folder(tmp_path_factory, photos):
    """Two real photos at 48x40 with planted masks, and a 21-line class file whose class 0 is not called
    'background' (as the references' cls_voc21.txt)."""
    return planted_seg_folder(tmp_path_factory.mktemp("voc21"), photos, VOC_NAMES)


def test_eval_runs_the_naclip_preset_and_records_every_value(voc21_folder, tiny_clip_dir, tmp_path, monkeypatch):
    import json

    import s3_hf.segmentation.pamr
    from s3_hf.cli import main
    from s3_hf.models.encoders.hf import TransformersEncoder

    calls, refined = [], []
    dense, refiner = TransformersEncoder.dense_features, s3_hf.segmentation.pamr.PamrRefiner

    def spy_dense(self, pixels, variant="naclip", positions="size"):
        calls.append((tuple(pixels.shape[-2:]), variant, positions))
        return dense(self, pixels, variant, positions)

    def spy_refiner(image, steps, dilations, **kw):
        refined.append((tuple(image.shape), steps, tuple(dilations)))
        return refiner(image, steps, dilations, **kw)

    monkeypatch.setattr(TransformersEncoder, "dense_features", spy_dense)
    monkeypatch.setattr(s3_hf.segmentation.pamr, "PamrRefiner", spy_refiner)
    args = ["eval", "--task", "segmentation", "--protocol", "naclip", "--benchmarks", f"voc21={voc21_folder}"]
    args += ["--model", str(tiny_clip_dir), "--metrics", "label", "--out", str(tmp_path), "--short-side", "64"]
    assert main(args) == 0
    # NACLIP's VOC21: the whole image in one pass (48x40 fitted to (2048, 64): 77x64), the scale position rule,
    # PAMR with 10 steps at dilations 8 and 16 on the full-size image
    assert set(calls) == {((64, 77), "naclip", "scale")} and len(calls) == 2
    assert refined and set(refined) == {((3, 40, 48), 10, (8, 16))}
    summary = json.loads((tmp_path / "segmentation.json").read_text())
    record = summary["benchmarks"]["voc21"]["protocol"]
    want = protocols.resolve("naclip", "voc21", short_side=64).to_dict()
    assert record == json.loads(json.dumps(want))  # every value, with its source
    assert record["sources"]["short_side"] == "override" and record["window"] == 0
    assert summary["options"]["protocol"] == "naclip"
    assert "Protocol naclip" in (tmp_path / "segmentation.md").read_text()


def test_a_reference_protocol_needs_a_named_benchmark(voc21_folder, tiny_clip_dir, tmp_path, capsys):
    from s3_hf.cli import main

    args = ["eval", "--task", "segmentation", "--protocol", "sclip", "--benchmarks", str(voc21_folder)]
    assert main([*args, "--model", str(tiny_clip_dir), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "unnamed benchmark" in err and "NAME=FOLDER" in err
    assert not (tmp_path / "segmentation.json").exists()
    # an unknown protocol: one typed line listing the known ones
    assert main(["eval", "--task", "segmentation", "--protocol", "nope", "--benchmarks", str(voc21_folder)]) == 2
    assert "use one of s3, sclip, naclip, clearclip" in capsys.readouterr().err


def test_segment_takes_a_protocol_for_a_benchmark(tiny_clip_dir, photos, tmp_path, capsys):
    import json

    from s3_hf.cli import main

    base = ["segment", str(photos[0]), "--labels", "sky,cat,dog", "--model", str(tiny_clip_dir)]
    assert main([*base, "--out", str(tmp_path / "a"), "--protocol", "clearclip"]) == 2
    assert "--benchmark NAME" in capsys.readouterr().err
    args = [*base, "--out", str(tmp_path / "b"), "--protocol", "clearclip", "--benchmark", "voc21"]
    assert main([*args, "--short-side", "32", "--window", "32", "--stride", "16"]) == 0
    record = json.loads((tmp_path / "b" / "segments.json").read_text())["protocol"]
    assert (record["protocol"], record["prob_threshold"], record["background_index"]) == ("clearclip", 0.5, 0)
    assert (record["resize"], record["positions"], record["window"]) == ("bilinear", "scale", 32)
    saved = json.loads((tmp_path / "b" / "segments.json").read_text())
    assert saved["rule"].startswith("names") and saved["labels"] == ["sky", "cat", "dog"]
    space = ["segment", str(photos[0]), "--space", str(tmp_path), "--model", str(tiny_clip_dir), "--out", str(tmp_path)]
    assert main([*space, "--protocol", "naclip", "--benchmark", "voc21"]) == 2  # spaces score by their own rule
    assert "--class-names or --labels" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- head-by-head

CLASS_LINES = [["sky", "wall", "tree"], ["cat", "kitty"], ["dog", "puppy", "kitty"], ["cup"], ["grass", "field"]]


def reference_label_map(
    engine, image: Image.Image, values: protocols.ProtocolValues, lines: list[list[str]] = CLASS_LINES
) -> torch.Tensor:
    """The references' segmentation of one image written out from their code (mmseg's keep-ratio rescale with cv2
    bilinear, the normalised input, ``forward_slide`` or the whole image, per-name logits upsampled per window and
    to the original size, PAMR on the full-size logits, softmax over all names at the logit scale, max over each
    class's names, SCLIP's area threshold, the probability threshold to index 0), on s3-hf's dense features."""
    import torch.nn.functional as F

    from s3_hf.segmentation.pamr import pamr
    from s3_hf.text.templates import IMAGENET_TEMPLATES

    mean, std = (torch.tensor(x)[:, None, None] for x in engine.encoder.pixel_stats())
    height, width = image.height, image.width
    h, w = mmcv_rescale(height, width, values.short_side, values.long_side)
    rgb = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)[None].float()
    img = F.interpolate(rgb, size=(h, w), mode="bilinear", align_corners=False).add(0.5).floor().clamp(0, 255)
    img = (img / 255 - mean) / std
    names = [n for line in lines for n in line]
    owner = [c for c, line in enumerate(lines) for _ in line]
    text = []
    for n in names:
        t = engine.encoder.encode_texts([tpl.format(n) for tpl in IMAGENET_TEMPLATES]).mean(0)
        text.append(t / t.norm())
    text = torch.stack(text)

    def forward_feature(crop: torch.Tensor) -> torch.Tensor:
        f = engine.encoder.dense_features(crop, values.variant, positions=values.positions)
        logits = (f @ text.T).permute(0, 3, 1, 2)
        return F.interpolate(logits, size=crop.shape[-2:], mode="bilinear", align_corners=False)

    if values.window == 0:
        logits = forward_feature(img)
    else:
        crop, stride = values.window, values.stride
        preds = torch.zeros(1, len(names), h, w)
        count = torch.zeros(1, 1, h, w)
        for hi in range(max(h - crop + stride - 1, 0) // stride + 1):
            for wi in range(max(w - crop + stride - 1, 0) // stride + 1):
                y1, x1 = hi * stride, wi * stride
                y2, x2 = min(y1 + crop, h), min(x1 + crop, w)
                y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
                preds += F.pad(forward_feature(img[:, :, y1:y2, x1:x2]), (x1, w - x2, y1, h - y2))
                count[:, :, y1:y2, x1:x2] += 1
        logits = preds / count
    logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)[0]
    if values.pamr_steps:
        guide = F.interpolate(img, size=(height, width), mode="bilinear", align_corners=False)[0]
        logits = pamr(guide, logits, values.pamr_steps, values.pamr_dilations)
    probs = (logits * values.logit_scale).softmax(0)
    probs = torch.stack([probs[[q for q, c in enumerate(owner) if c == k]].max(0).values for k in range(len(lines))])
    if values.area_threshold is not None:
        area = torch.stack([(probs.argmax(0) == k).sum() for k in range(1, len(lines))]).float()
        probs[1:] *= (area > values.area_threshold * area.sum()).float()[:, None, None]
    pred = probs.argmax(0)
    if values.prob_threshold is not None:
        pred[probs.max(0).values < values.prob_threshold] = 0
    return pred


def spread_texts(self, texts, kwargs):
    """Text features for the tiny random model, whose texts are near-identical: one seeded vector per text."""
    import zlib

    rows = [torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(t.encode()))) for t in texts]
    return torch.stack(rows)


@pytest.mark.parametrize(
    ("protocol", "benchmark", "overrides"),
    [
        ("naclip", "voc21", {"short_side": 64}),  # whole image, PAMR, threshold to index 0
        ("sclip", "voc21", {"short_side": 64, "window": 32, "stride": 16}),  # area threshold, logit scale 65
        ("clearclip", "context60", {"short_side": 48, "window": 32, "stride": 16}),
        ("naclip", "ade20k", {"short_side": 48, "window": 32, "stride": 16, "pamr_dilations": (4, 8)}),
    ],
)
def test_segment_under_a_preset_equals_the_references_computation(
    protocol, benchmark, overrides, engine, tiny_clip_dir, photos, tmp_path, monkeypatch
):
    from s3_hf.cli import main
    from s3_hf.models.encoders.hf import TransformersEncoder

    monkeypatch.setattr(TransformersEncoder, "_text_features", spread_texts)

    image = Image.open(photos[1]).convert("RGB").resize((60, 45))
    image.save(tmp_path / "photo.png")
    (tmp_path / "classes.txt").write_text("\n".join(", ".join(line) for line in CLASS_LINES) + "\n")
    values = protocols.resolve(protocol, benchmark, **overrides)
    args = ["segment", str(tmp_path / "photo.png"), "--class-names", str(tmp_path / "classes.txt")]
    args += ["--protocol", protocol, "--benchmark", benchmark, "--out", str(tmp_path / "out")]
    args += ["--model", str(tiny_clip_dir), "--pamr-dilations", ",".join(map(str, values.pamr_dilations))]
    for name, flag in (("short_side", "--short-side"), ("window", "--window"), ("stride", "--stride")):
        if name in overrides:
            args += [flag, str(overrides[name])]
    assert main(args) == 0
    got = torch.from_numpy(np.asarray(Image.open(tmp_path / "out" / "photo.png")).astype(np.int64))
    want = reference_label_map(engine, image, values)
    assert got.shape == want.shape == (45, 60)
    assert (got == want).float().mean() >= 0.999, (got != want).sum()
    assert len(torch.unique(want)) > 1  # not trivially one class


@pytest.mark.parametrize("protocol", ["sclip", "naclip", "clearclip"])
@pytest.mark.parametrize(("benchmark", "folder"), [("voc21", "voc-sample"), ("ade20k", "ade20k-sample")])
def test_eval_names_method_equals_the_reference_on_the_samples(
    protocol, benchmark, folder, engine, tiny_clip_dir, tmp_path, monkeypatch
):
    """Each preset's own values (no override) on two images of the shared samples, shrunk to a third so PAMR's
    reference stays small, with the references' class files: the eval's ``names`` confusion matrix (truth x
    prediction counts) equals the reference's predictions' one."""
    import json

    from helpers import SHARED

    from s3_hf.cli import main
    from s3_hf.models.encoders.hf import TransformersEncoder

    data = SHARED / "data" / folder
    names_file = SHARED / "data" / "segmentation-classnames" / f"cls_{benchmark}.txt"
    if not data.is_dir() or not names_file.is_file():
        pytest.skip(f"{data} or {names_file} (the shared samples) is absent")
    monkeypatch.setattr(TransformersEncoder, "_text_features", spread_texts)
    lines = [[n.strip() for n in line.split(",")] for line in names_file.read_text().splitlines() if line.strip()]
    sample = tmp_path / "sample"
    (sample / "images").mkdir(parents=True)
    (sample / "masks").mkdir()
    masks = data / ("SegmentationClass" if benchmark == "voc21" else "annotations")
    images = sorted(p for p in (data / ("JPEGImages" if benchmark == "voc21" else "images")).iterdir())[:2]
    for p in images:
        image = Image.open(p).convert("RGB")
        size = (image.width // 3, image.height // 3)
        image.resize(size, Image.Resampling.BICUBIC).save(sample / "images" / f"{p.stem}.png")
        Image.open(masks / f"{p.stem}.png").resize(size, Image.Resampling.NEAREST).save(
            sample / "masks" / f"{p.stem}.png"
        )
    args = ["eval", "--task", "segmentation", "--protocol", protocol, "--benchmarks", f"{benchmark}={sample}"]
    args += ["--class-names", str(names_file), "--model", str(tiny_clip_dir), "--metrics", "label"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "segmentation.json").read_text())["benchmarks"][benchmark]
    values = protocols.resolve(protocol, benchmark)
    assert record["protocol"] == json.loads(json.dumps(values.to_dict()))
    k = len(lines)
    confusion = np.zeros((k, k), dtype=np.int64)
    for p in images:
        image = Image.open(sample / "images" / f"{p.stem}.png")
        want = reference_label_map(engine, image, values, lines).numpy()
        truth = np.asarray(Image.open(sample / "masks" / f"{p.stem}.png")).astype(np.int64)
        if benchmark == "ade20k":  # reduce_zero_label: 0 is not scored, classes are 1-based
            truth = truth - 1
            truth[truth < 0] = 255
        keep = truth != 255
        np.add.at(confusion, (truth[keep], want[keep]), 1)
    assert record["methods"]["names"]["confusion"] == confusion.tolist()


def test_protocol_values_of_an_eval_config():
    from types import SimpleNamespace

    from s3_hf.evaluation.config import EvalConfig
    from s3_hf.evaluation.segmentation import protocol_values

    data = SimpleNamespace(benchmark="voc21", name="voc21")
    own = dict(variant=None, short_side=448, window=0, stride=64, background_threshold=0.3, fast_decode=False)
    s3 = protocol_values(EvalConfig.from_flags(model="m", benchmarks=[], protocol="s3", **own), data)
    assert (s3.variant, s3.short_side, s3.window, s3.stride, s3.prob_threshold, s3.fast_decode) == (
        None,
        448,
        0,
        64,
        0.3,
        False,
    )
    # a reference protocol takes its own values; only protocol_values override them
    cfg = EvalConfig.from_flags(model="m", benchmarks=[], protocol="clearclip", protocol_values={"stride": 100}, **own)
    clear = protocol_values(cfg, data)
    assert (clear.variant, clear.short_side, clear.window, clear.stride, clear.prob_threshold) == (
        "clearclip",
        448,
        448,
        100,
        0.5,
    )
    with pytest.raises(UnknownProtocolError):
        protocol_values(EvalConfig.from_flags(model="m", benchmarks=[], protocol="nope", **own), data)


def test_pamr_dilations_that_do_not_fit_the_image_are_a_typed_error(tiny_clip_dir, tmp_path, capsys):
    from s3_hf.cli import main

    Image.new("RGB", (60, 45), "white").save(tmp_path / "small.png")
    args = ["segment", str(tmp_path / "small.png"), "--labels", "cat,dog", "--model", str(tiny_clip_dir)]
    args += ["--protocol", "naclip", "--benchmark", "voc21", "--short-side", "64", "--out", str(tmp_path / "out")]
    assert main([*args, "--pamr-dilations", "8,64"]) == 2
    assert "PAMR dilation 64 does not fit a 45x60 image" in capsys.readouterr().err
    assert main([*args, "--pamr-dilations", "8,x"]) == 2
    assert "--pamr-dilations takes comma-separated integers" in capsys.readouterr().err
