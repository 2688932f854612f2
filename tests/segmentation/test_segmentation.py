"""Open-vocabulary segmentation: dense features without training (each last-block variant against a hand-written
reference), the sliding window, scoring through the classification engine, and the mIoU module."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from s3_hf.engine.core import S3Engine
from s3_hf.errors import InvalidConfigError
from s3_hf.models.dense import VARIANTS, gaussian_window, sliding_logits, window_starts
from s3_hf.segmentation.label_maps import label_map
from s3_hf.segmentation.names import read_class_names
from s3_hf.segmentation.options import SegmentOptions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    return S3Engine.from_pretrained(tiny_clip_dir, device="cpu")


@pytest.fixture(scope="module")
def miou():
    spec = importlib.util.spec_from_file_location(
        "mean_iou_module", ROOT / "s3_hf" / "evaluation" / "metrics" / "mean_iou" / "mean_iou.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------- features
def reference_block(layer, x: torch.Tensor, variant: str, grid: tuple[int, int]) -> torch.Tensor:
    """The variants written out head by head, token by token, from their definitions."""
    attn = layer.self_attn
    heads, width = attn.num_heads, x.shape[-1]
    hd = width // heads
    y = layer.layer_norm1(x)[0]  # one image: (N, W)
    q, k, v = attn.q_proj(y), attn.k_proj(y), attn.v_proj(y)
    n = y.shape[0]
    out = torch.zeros(n, width)
    bias = gaussian_window(grid, 5.0, 1).float()
    for h in range(heads):
        sl = slice(h * hd, (h + 1) * hd)
        qh, kh, vh = q[:, sl], k[:, sl], v[:, sl]
        for i in range(n):
            if variant == "maskclip":
                out[i, sl] = vh[i]
                continue
            qq = torch.stack([qh[i] @ qh[j] for j in range(n)]) / hd**0.5
            kk = torch.stack([kh[i] @ kh[j] for j in range(n)]) / hd**0.5
            if variant == "sclip":
                w = torch.softmax(qq, 0) + torch.softmax(kk, 0)
            elif variant == "clearclip":
                w = torch.softmax(qq, 0)
            else:
                w = torch.softmax(kk + bias[i], 0)
            out[i, sl] = (w[:, None] * vh).sum(0)
    o = attn.out_proj(out)[None]
    if variant == "sclip":
        x = x + o
        return x + layer.mlp(layer.layer_norm2(x))
    return o


def tokens_before_last(model, pixels: torch.Tensor) -> torch.Tensor:
    vision = model.vision_model
    h = vision.pre_layrnorm(vision.embeddings(pixels))
    for layer in vision.encoder.layers[:-1]:
        h = layer(h, None)
    return h


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v is not None])
def test_each_variant_matches_its_hand_written_block(engine, variant):
    model = engine.model
    pixels = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = tokens_before_last(model, pixels)
        ref = reference_block(model.vision_model.encoder.layers[-1], x, variant, (4, 4))
        want = F.normalize(model.visual_projection(model.vision_model.post_layernorm(ref[:, 1:])), dim=-1)
    got = engine.encoder.dense_features(pixels, variant)
    assert got.shape == (1, 4, 4, 16)
    assert torch.allclose(got.reshape(1, 16, 16), want, atol=1e-5)


def test_without_a_variant_the_tokens_are_the_models_own(engine, photos):
    inputs = engine.image_inputs([Image.open(photos[0]).convert("RGB")])
    model = engine.model
    with torch.no_grad():
        out = model.get_image_features(**inputs)
        own = model.visual_projection(model.vision_model.post_layernorm(out.last_hidden_state[:, 1:]))
    dense = engine.encoder.dense_features(inputs["pixel_values"], None)
    assert torch.allclose(dense.reshape(1, 16, -1), F.normalize(own, dim=-1), atol=1e-5)
    _glob, local = engine.encoder.global_and_local(inputs)  # SSP's patch tokens are the same
    assert torch.allclose(local, dense.reshape(1, 16, -1), atol=1e-5)


def test_dense_inference_changes_no_weight_and_not_the_classification_path(engine, photos):
    inputs = engine.image_inputs([Image.open(photos[1]).convert("RGB")])
    before = {k: v.clone() for k, v in engine.model.state_dict().items()}
    v0 = engine.encode_pixels(inputs)
    for variant in VARIANTS:
        engine.encoder.dense_features(torch.randn(1, 3, 48, 64), variant)  # other sizes: positions interpolated
    assert all(torch.equal(before[k], v) for k, v in engine.model.state_dict().items())
    assert torch.equal(engine.encode_pixels(inputs), v0)


def test_larger_inputs_interpolate_the_positions(engine):
    out = engine.encoder.dense_features(torch.randn(2, 3, 48, 64), "naclip")
    assert out.shape == (2, 6, 8, 16) and torch.allclose(out.norm(dim=-1), torch.ones(2, 6, 8), atol=1e-5)


def test_families_without_dense_features_are_refused(tmp_path, photos):
    from helpers import make_tiny_family

    engine = S3Engine.from_pretrained(make_tiny_family(tmp_path / "siglip", "siglip"), device="cpu")
    request = engine.request(["cat", "dog"])
    with pytest.raises(InvalidConfigError, match="dense patch features"):
        engine.segment(str(photos[0]), request)


# ------------------------------------------------------------------------------------------ sliding window
def test_window_starts_cover_the_side():
    assert window_starts(336, 224, 112) == [0, 112]
    assert window_starts(500, 224, 112) == [0, 112, 224, 276]
    assert window_starts(200, 224, 112) == [0]


def test_a_window_covering_the_image_is_a_single_pass():
    image = torch.randn(3, 40, 56)
    fn = lambda crop: crop[0, :2] * 3.0  # noqa: E731 - a planted per-window "model"
    assert torch.allclose(sliding_logits(image, fn, window=64, stride=32), image[:2] * 3.0)


def test_overlapping_windows_average_exactly():
    planted = torch.randn(2, 50, 70, dtype=torch.float64)
    calls = []

    def fn(crop: torch.Tensor) -> torch.Tensor:
        y, x = int(crop[0, 0, 0, 0]), int(crop[0, 1, 0, 0])  # the window's position, written into its pixels
        calls.append((y, x))
        # each window returns the planted map plus an offset that cancels on average over its overlaps
        return planted[:, y : y + crop.shape[2], x : x + crop.shape[3]] + (len(calls) % 2) - 0.5

    rows, cols = torch.meshgrid(torch.arange(50.0), torch.arange(70.0), indexing="ij")
    image = torch.stack([rows, cols, torch.zeros(50, 70)])
    out = sliding_logits(image, fn, window=30, stride=20)
    assert len(calls) == len(window_starts(50, 30, 20)) * len(window_starts(70, 30, 20))
    # by hand: the mean over the windows covering each pixel of (planted + offset of that window)
    total, count = torch.zeros(2, 50, 70, dtype=torch.float64), torch.zeros(50, 70, dtype=torch.float64)
    for n, (y, x) in enumerate(calls, start=1):
        total[:, y : y + 30, x : x + 30] += planted[:, y : y + 30, x : x + 30] + (n % 2) - 0.5
        count[y : y + 30, x : x + 30] += 1
    assert torch.allclose(out.double(), total / count, atol=1e-6)


# ------------------------------------------------------------------------------------------------ scoring
def test_one_name_per_class_with_label_is_the_base_segmenters_scoring(engine, photos):
    labels = ["cat", "coffee", "sky"]
    image = Image.open(photos[0]).convert("RGB")
    options = SegmentOptions(variant="sclip", short_side=40, window=32, stride=16)
    seg = engine.segment(image, engine.request(labels, hypothesis_template="a photo of a {}.", metric="label"), options)
    text = engine.encoder.encode_texts([f"a photo of a {lab}." for lab in labels])

    def base(crop: torch.Tensor) -> torch.Tensor:  # the base segmenter: tau * cosine to each class text
        f = engine.encoder.dense_features(crop, "sclip")[0]
        logits = engine.logit_scale * f.reshape(-1, f.shape[-1]) @ text.T
        grid = logits.T.reshape(1, len(labels), *f.shape[:2])
        return F.interpolate(grid, size=crop.shape[-2:], mode="bilinear", align_corners=False)[0]

    from s3_hf.segmentation.logits import image_pixels

    mean, std = engine.encoder.pixel_stats()
    want = sliding_logits(image_pixels(image, mean, std, 40), base, 32, 16)
    assert torch.allclose(seg.logits, want, atol=1e-4)  # at the working resolution
    full = F.interpolate(seg.logits[None], size=(image.height, image.width), mode="bilinear", align_corners=False)[0]
    assert torch.equal(seg.label_map, full.argmax(0))  # labelled at the image's full size


def test_several_names_with_nearest_point_is_the_max_over_names(engine, photos):
    text = "background, sky, wall\ncat, kitty, house cat\ncup, coffee cup, mug"
    labels, names = read_class_names(text)
    assert labels == ["background", "cat", "cup"] and names["cat"] == ["kitty", "house cat"]
    image = Image.open(photos[1]).convert("RGB")
    options = SegmentOptions(variant="naclip", short_side=40, window=32, stride=16)
    request = engine.request(
        labels,
        synonyms=names,
        concept_format="{concept}",
        hypothesis_template="{}",
        metric="nearest_point",
        radius=None,
    )
    seg = engine.segment(image, request, options)
    all_names = [[lab, *names[lab]] for lab in labels]
    emb = [engine.encoder.encode_texts(n) for n in all_names]

    def max_over_names(crop: torch.Tensor) -> torch.Tensor:
        f = engine.encoder.dense_features(crop, "naclip")[0]
        flat = f.reshape(-1, f.shape[-1])
        logits = torch.stack([(flat @ e.T).amax(-1) for e in emb], -1) * engine.logit_scale
        grid = logits.T.reshape(1, len(labels), *f.shape[:2])
        return F.interpolate(grid, size=crop.shape[-2:], mode="bilinear", align_corners=False)[0]

    from s3_hf.segmentation.logits import image_pixels

    mean, std = engine.encoder.pixel_stats()
    want = sliding_logits(image_pixels(image, mean, std, 40), max_over_names, 32, 16)
    want = F.interpolate(want[None], size=(image.height, image.width), mode="bilinear", align_corners=False)[0]
    assert torch.equal(seg.label_map, want.argmax(0))


def test_planted_features_give_the_known_label_map_and_miou(engine, monkeypatch, miou):
    """Dense features forced onto the class spaces in known regions: the known label map, and a hand-computed mIoU."""
    labels = ["cat", "dog", "sky"]
    space = engine.space(candidate_labels=labels, hypothesis_template="a photo of a {}.").space
    points = space.tensors.points  # one label point per class

    def planted(pixels: torch.Tensor, variant: str | None = None) -> torch.Tensor:
        _, _, h, w = pixels.shape
        gh, gw = h // 8, w // 8
        out = torch.empty(1, gh, gw, points.shape[1])
        out[0, :, : gw // 2] = points[0]  # left half: cat
        out[0, :, gw // 2 :] = points[2]  # right half: sky
        out[0, : gh // 2, gw // 2 :] = points[1]  # top right: dog
        return out

    monkeypatch.setattr(engine.encoder, "dense_features", planted)
    image = Image.new("RGB", (64, 64))
    options = SegmentOptions(short_side=64, window=64, stride=64)
    seg = engine.segment(image, engine.request(labels, hypothesis_template="a photo of a {}.", metric="label"), options)
    lm = seg.label_map.numpy()
    assert (lm[:, :24] == 0).all() and (lm[:24, 40:] == 1).all() and (lm[40:, 40:] == 2).all()
    truth = np.zeros((64, 64), dtype=np.int64)
    truth[:, 32:] = 2
    truth[:32, 32:] = 1
    truth[0, 0] = 255  # ignored
    conf = miou.confusion_matrix(lm, truth, 3)
    tp = np.diag(conf)
    by_hand = np.mean([tp[c] / (conf[c].sum() + conf[:, c].sum() - tp[c]) for c in range(3)])
    assert miou.scores(conf)["mean_iou"] == pytest.approx(by_hand)
    assert conf.sum() == 64 * 64 - 1


def test_full_size_is_reached_a_chunk_of_classes_at_a_time(monkeypatch):
    """Label maps, background and class masks of a large image are computed a chunk of classes at a time; the
    chunks change nothing but memory."""
    from s3_hf.segmentation import upsample
    from s3_hf.segmentation.label_maps import class_masks

    torch.manual_seed(0)
    logits = torch.randn(7, 12, 16) * 3
    logits[2, :3, :3] = logits[5, :3, :3] = 50.0  # ties: the first class wins, as with argmax over all classes
    labels = ["background", *"abcdef"]
    size = (61, 47)  # (width, height)
    whole = label_map(logits, labels, 0.4, size)
    masks = class_masks(logits, labels, whole)
    full = F.interpolate(logits[None], size=size[::-1], mode="bilinear", align_corners=False)[0]
    assert torch.equal(label_map(logits, labels, None, size), full.argmax(0))
    background = full.softmax(0).amax(0) < 0.4
    assert torch.equal(whole, torch.where(background, torch.tensor(0), full.argmax(0)))
    for r in masks:  # mean probability of the class over its pixels
        c = labels.index(r["label"])
        inside = torch.from_numpy(np.asarray(r["mask"]) > 0)
        assert r["score"] == pytest.approx(float(full.softmax(0)[c][inside].mean()), abs=1e-5)
    monkeypatch.setattr(upsample, "MAX_UPSAMPLED", 2 * 61 * 47)  # two classes per chunk
    assert [len(range(a, b)) for a, b in upsample.FullSize(logits, 47, 61).ranges] == [2, 2, 2, 1]
    chunked = label_map(logits, labels, 0.4, size)
    assert torch.equal(chunked, whole)
    again = class_masks(logits, labels, chunked)
    assert [r["label"] for r in again] == [r["label"] for r in masks]
    for a, b in zip(again, masks, strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
        assert np.array_equal(np.asarray(a["mask"]), np.asarray(b["mask"]))


def test_background_threshold_needs_a_background_class():
    logits = torch.tensor([[[2.0, 0.1]], [[1.9, 0.0]], [[0.0, 0.05]]])  # 3 classes, 1x2 pixels
    assert label_map(logits, ["background", "cat", "dog"]).tolist() == [[0, 0]]
    # pixel 0: top probability 0.49 (kept at 0.45); pixel 1: 0.35 (below: background)
    assert label_map(logits, ["cat", "background", "dog"], 0.45).tolist() == [[0, 1]]
    with pytest.raises(InvalidConfigError, match="background"):
        label_map(logits, ["cat", "dog", "cow"], 0.5)
    with pytest.raises(InvalidConfigError, match="dense variant"):
        SegmentOptions(variant="maskclip2")


@pytest.fixture
def no_image_read(monkeypatch):
    """Fails the test if any image is read (the check must come before)."""
    import s3_hf.io.images

    def refuse(*args, **kwargs):
        raise AssertionError("an image was read before the background class was checked")

    monkeypatch.setattr(s3_hf.io.images, "load_image", refuse)


def test_segment_with_a_space_checks_its_background_class_before_any_image(
    saved, photos, tmp_path, capsys, no_image_read
):
    from s3_hf.cli import main

    out = tmp_path / "out"
    argv = ["segment", str(photos[0]), str(photos[1]), "--space", str(saved), "--out", str(out)]
    assert main([*argv, "--background-threshold", "0.5"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the model's loading progress
    assert err.startswith("error: --background-threshold needs a background class")
    assert "--background-index" in err and "no class named 'background'" in err
    assert not out.exists()
    # an index out of range is refused before any image too
    assert main([*argv, "--background-threshold", "0.5", "--background-index", "7"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_engine_segment_checks_the_background_class_before_reading_the_image(saved, tiny_clip_dir, no_image_read):
    from s3_hf.errors import BackgroundMissingError

    engine = S3Engine.from_pretrained(str(tiny_clip_dir))
    request = engine.request(synonym_space=str(saved))
    with pytest.raises(BackgroundMissingError, match="background class"):
        engine.segment("never-read.png", request, SegmentOptions(background_threshold=0.5))


# --------------------------------------------------------------------------------------------------- mIoU
def test_miou_matches_a_hand_computation(miou):
    pred = np.array([[0, 0, 1, 1], [0, 2, 2, 1], [3, 3, 3, 3]])
    ref = np.array([[0, 0, 1, 255], [0, 0, 2, 1], [255, 255, 255, 255]])
    out = miou.scores(miou.confusion_matrix(pred, ref, num_labels=5))
    # 7 pixels are scored (255 is ignored). class 0: TP 3, FN 1 -> 3/4; class 1: TP 2 (its prediction at (0, 3)
    # sits on an ignored pixel) -> 1; class 2: TP 1, FP 1 -> 1/2; classes 3 and 4: absent from both (the 3s sit on
    # ignored pixels) -> no IoU; 6 of the 7 pixels are right
    assert out["per_class_iou"][:3] == pytest.approx([0.75, 1.0, 0.5])
    assert np.isnan(out["per_class_iou"][3]) and np.isnan(out["per_class_iou"][4])
    assert out["mean_iou"] == pytest.approx(np.mean([0.75, 1.0, 0.5]))
    assert out["pixel_accuracy"] == pytest.approx(6 / 7)
    metric = miou.MeanIoU()
    via_evaluate = metric.compute(predictions=[pred], references=[ref], num_labels=5)
    assert via_evaluate["mean_iou"] == pytest.approx(out["mean_iou"])
    ade = miou.confusion_matrix(np.array([[0, 1]]), np.array([[0, 2]]), num_labels=2, reduce_zero_label=True)
    assert ade.tolist() == [[0, 0], [0, 1]]  # reference 0 ignored, 2 -> class 1


# --------------------------------------------------------------------------------------------------- faces
def test_segmentation_pipeline_reads_jpegs_at_reduced_size_unless_told(tiny_clip_dir, photos, monkeypatch):
    """The pipeline reads the image (transformers' preprocess step): fast decoding by default, as SegmentOptions
    says, never below the short side; masks stay at the photo's full size."""
    from transformers import pipeline

    import s3_hf

    seg = pipeline(s3_hf.SEGMENTATION_TASK, model=str(tiny_clip_dir))
    seen = []
    segment = seg.engine.segment
    monkeypatch.setattr(seg.engine, "segment", lambda image, *a: seen.append(image.size) or segment(image, *a))
    options = {"short_side": 40, "window": 32, "stride": 16}
    full = Image.open(photos[0]).size  # chelsea.jpg, 451 x 300
    out = seg(str(photos[0]), candidate_labels=["cat", "sky"], **options)
    assert seen[-1] != full and min(seen[-1]) >= 40
    assert all(np.asarray(r["mask"]).shape == full[::-1] for r in out)
    seg(str(photos[0]), candidate_labels=["cat", "sky"], fast_decode=False, **options)
    assert seen[-1] == full


def test_pipeline_output_follows_image_segmentation(tiny_clip_dir, photos, tmp_path):
    from transformers import pipeline

    import s3_hf

    seg = pipeline(s3_hf.SEGMENTATION_TASK, model=str(tiny_clip_dir))
    options = {"short_side": 40, "window": 32, "stride": 16}
    out = seg(str(photos[0]), candidate_labels=["cat", "coffee", "sky"], **options)
    assert out and all(set(r) == {"score", "label", "mask"} for r in out)
    image = Image.open(photos[0])
    masks = [np.asarray(r["mask"]) for r in out]
    assert all(m.shape == (image.height, image.width) and set(np.unique(m)) <= {0, 255} for m in masks)
    assert (sum(m // 255 for m in masks) == 1).all()  # the masks partition the image
    # one space serves both tasks
    space = seg.engine.build_space(["cat", "coffee", "sky"], {"cat": ["kitty"]})
    folder = space.save_pretrained(tmp_path / "space")
    both = seg(str(photos[0]), synonym_space=str(folder), return_label_map=True, variant="sclip", **options)
    assert set(both) == {"segments", "label_map"} and both["label_map"].size == image.size
    many = seg([str(photos[0]), str(photos[1])], candidate_labels=["cat", "sky"], **options)
    assert len(many) == 2
    with pytest.raises(InvalidConfigError, match="dense variant"):
        seg(str(photos[0]), candidate_labels=["cat"], variant="bogus")
    with pytest.raises(InvalidConfigError, match="batch_size"):  # the call's checks are the classification pipeline's
        seg([str(photos[0])], candidate_labels=["cat"], batch_size=0)


def test_cli_segment_writes_index_maps_and_overlays(tiny_clip_dir, photos, tmp_path, capsys):
    from s3_hf.cli import main

    names = tmp_path / "cls.txt"
    names.write_text("background, sky, wall\ncat, kitty\ncup, mug\n")
    out = tmp_path / "out"
    args = ["segment", str(photos[0]), str(photos[1]), "--class-names", str(names), "--out", str(out)]
    args += ["--model", str(tiny_clip_dir), "--short-side", "40", "--window", "32", "--stride", "16"]
    assert main([*args, "--metric", "nearest_point", "--background-threshold", "0.2"]) == 0
    for p in photos[:2]:
        index = np.asarray(Image.open(out / f"{p.stem}.png"))
        assert index.shape == Image.open(p).size[::-1] and index.max() <= 2
        assert Image.open(out / f"{p.stem}_overlay.png").width > Image.open(p).width  # the legend
    summary = json.loads((out / "segments.json").read_text())
    assert summary["labels"] == ["background", "cat", "cup"] and len(summary["images"]) == 2
    assert main(["segment", str(photos[0]), "--out", str(out), "--model", str(tiny_clip_dir)]) == 2
    assert "--space" in capsys.readouterr().err
    # no file is written over unless asked: an earlier run's outputs, or an input PNG in the output folder
    before = (out / "segments.json").read_bytes()
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "segments.json").read_bytes() == before
    assert main([*args, "--overwrite"]) == 0


# ---------------------------------------------------------------------------------------------------- eval
@pytest.fixture(scope="module")
def seg_folder(tmp_path_factory, photos):
    """Three real photos with planted masks (uneven for two processes), classes.txt with several names a line."""
    root = tmp_path_factory.mktemp("segbench")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i, p in enumerate(photos[:3]):
        image = Image.open(p).convert("RGB").resize((48, 40))
        image.save(root / "images" / f"{i}.jpg")
        mask = np.zeros((40, 48), dtype=np.uint8)
        mask[:, 24:] = 1 + i % 2
        mask[0, :] = 255
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    (root / "classes.txt").write_text("background, sky, wall\ncat, kitty\ncup, mug\n")
    return root


@pytest.mark.slow
def test_segmentation_eval_two_processes_equal_one(seg_folder, tiny_clip_dir, tmp_path):
    from helpers import run_eval

    args = ["--task", "segmentation", "--benchmarks", str(seg_folder)]
    args += ["--model", str(tiny_clip_dir), "--templates", "a photo of a {}.", "--metrics", "local_center,label"]
    args += ["--short-side", "40", "--window", "32", "--stride", "16"]
    run_eval([*args, "--out", str(tmp_path / "one")], 1, tmp_path)
    run_eval([*args, "--out", str(tmp_path / "two")], 2, tmp_path)
    one = json.loads((tmp_path / "one" / "segmentation.json").read_text())
    two = json.loads((tmp_path / "two" / "segmentation.json").read_text())
    rec1, rec2 = one["benchmarks"][seg_folder.name], two["benchmarks"][seg_folder.name]
    assert set(rec1["methods"]) == {"label", "names", "s3/local_center", "s3/label"}
    for m in rec1["methods"]:
        assert rec1["methods"][m]["confusion"] == rec2["methods"][m]["confusion"]
        assert sum(map(sum, rec1["methods"][m]["confusion"])) == 3 * (40 * 48 - 48)  # 255 pixels not scored
    assert (
        two["processes"] == 2
        and "| " + seg_folder.name + " | 3 |" in (tmp_path / "two" / "segmentation.md").read_text()
    )


@pytest.mark.slow
@pytest.mark.parametrize(("name", "folder"), [("voc21", "voc-sample"), ("ade20k", "ade20k-sample")])
def test_the_voc_and_ade_samples_run_end_to_end(name, folder, tiny_clip_dir, tmp_path):
    from helpers import SHARED

    from s3_hf.cli import main

    data = SHARED / "data" / folder
    if not data.is_dir():
        pytest.skip(f"{data} (the shared {folder}) is absent")
    args = ["eval", "--task", "segmentation", "--benchmarks", f"{name}={data}", "--model", str(tiny_clip_dir)]
    args += ["--templates", "a photo of a {}.", "--metrics", "local_center", "--out", str(tmp_path)]
    assert main([*args, "--short-side", "64", "--window", "32", "--stride", "32"]) == 0
    rec = json.loads((tmp_path / "segmentation.json").read_text())["benchmarks"][name]
    assert rec["images"] == (30 if name == "voc21" else 15) and rec["reduce_zero_label"] is (name == "ade20k")
    assert set(rec["methods"]) == {"label", "names", "s3/local_center"} and rec["classes"] == (
        21 if name == "voc21" else 150
    )
