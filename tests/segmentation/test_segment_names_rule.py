"""The references' multi-name segmentation rule (SCLIP, NACLIP, ClearCLIP ``postprocess_result``) against a plain
reference written here name by name: upsample each name to full size, softmax over all names at the protocol's
scale, max over each class's names, SCLIP's area threshold, the probability threshold to the background index.
Also: class-name files read untruncated, and the background by index."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import SHARED
from PIL import Image

from s3_hf.engine.core import S3Engine
from s3_hf.errors import BackgroundMissingError, InvalidConfigError
from s3_hf.segmentation import upsample
from s3_hf.segmentation.label_maps import label_map, resolve_background
from s3_hf.segmentation.logits import image_pixels, segment_logits_many
from s3_hf.segmentation.names import NameQueries, NamesRule, names_label_map, read_class_file
from s3_hf.segmentation.options import SegmentOptions

CLASSNAMES = SHARED / "data" / "segmentation-classnames"
VOC = SHARED / "data" / "voc-sample"


def reference(
    query_cos: torch.Tensor,
    query_class: list[int],
    scale: float,
    size: tuple[int, int],
    prob_thd: float | None = None,
    area_thd: float | None = None,
    bg: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The published rule, one query (name of a class; repeats kept) at a time: returns the label map and each
    pixel's top probability after the area rule. ``size`` is ``(height, width)``."""
    ups = []
    for q in range(len(query_class)):
        one = query_cos[q][None, None]
        ups.append(F.interpolate(one, size=size, mode="bilinear", align_corners=False)[0, 0])
    probs = torch.softmax(torch.stack(ups) * scale, 0)
    num_classes = max(query_class) + 1
    per_class = []
    for c in range(num_classes):
        mine = [q for q in range(len(query_class)) if query_class[q] == c]
        per_class.append(probs[mine].max(0).values)
    per_class = torch.stack(per_class)
    if area_thd is not None:
        pred = per_class.argmax(0)
        area = torch.tensor([float((pred == c).sum()) for c in range(num_classes)])
        area[bg] = 0  # SCLIP counts the classes other than the background
        for c in range(num_classes):
            if c != bg and not area[c] > area_thd * area.sum():
                per_class[c] = 0
    pred = per_class.argmax(0)
    top = per_class.max(0).values
    if prob_thd is not None:
        pred[top < prob_thd] = bg
    return pred, top


def expand(cosines: torch.Tensor, queries: NameQueries) -> torch.Tensor:
    """Per query (repeats included) its name's map, as the references encode each line's names."""
    return torch.stack([cosines[r] for r in queries.rows])


def assert_same_map(got: torch.Tensor, want: torch.Tensor, top: torch.Tensor, prob_thd: float | None) -> None:
    """Equal on every pixel, except where the reference's top probability is within float rounding of the
    threshold (a tie); those must be rare."""
    near = (top - prob_thd).abs() < 1e-6 if prob_thd is not None else torch.zeros_like(got, dtype=torch.bool)
    assert int(near.sum()) <= max(4, got.numel() // 500)
    assert torch.equal(got[~near], want[~near]), f"{int((got != want)[~near].sum())} pixels differ"


LINES = [
    ["sky", "wall", "cat", "tree"],  # class 0: the background, not named so, with a name of class 1
    ["cat", "kitty", "house cat"],
    ["cup"],
    ["mug", "cup", "coffee cup"],  # "cup" again
    ["dog", "puppy"],
]


@pytest.mark.parametrize(
    ("scale", "prob_thd", "area_thd"),
    [(40, None, None), (40, 0.1, None), (65, 0.1, 0.1), (50, 0.3, None), (50, None, 0.25), (100, 0.5, 0.2)],
)
def test_chunked_rule_equals_the_name_by_name_reference_on_random_logits(monkeypatch, scale, prob_thd, area_thd):
    queries = NameQueries.from_classes(LINES)
    assert len(queries.rows) == 13 and len(queries.names) == 11  # "cat" and "cup" encoded once, queried twice
    torch.manual_seed(scale + int(10 * (prob_thd or 0)))
    cosines = torch.rand(len(queries.names), 9, 13) * 0.4 + 0.05
    cosines[[queries.names.index("dog"), queries.names.index("puppy")]] -= 0.08  # a small class for the area rule
    height, width = 37, 50
    monkeypatch.setattr(upsample, "MAX_UPSAMPLED", 2 * height * width)  # two names per chunk
    rule = NamesRule(scale, prob_thd, area_thd, 0 if prob_thd or area_thd else None)
    got = names_label_map(cosines, queries, rule, size=(width, height))
    want, top = reference(expand(cosines, queries), queries.classes, scale, (height, width), prob_thd, area_thd)
    assert_same_map(got, want, top, prob_thd)
    if area_thd is not None:  # the area rule acted here, so this case can tell it apart
        without, _ = reference(expand(cosines, queries), queries.classes, scale, (height, width), prob_thd)
        assert not torch.equal(want, without)


def test_the_rule_differs_from_taking_the_max_per_patch_first():
    """The order matters: max over names per patch then upsample (s3-hf before) is another rule."""
    queries = NameQueries.from_classes([["a", "b"], ["c", "d"], ["e"]])
    torch.manual_seed(3)
    cosines = torch.randn(5, 6, 6)
    got = names_label_map(cosines, queries, NamesRule(40.0), size=(41, 41))
    want, _ = reference(expand(cosines, queries), queries.classes, 40.0, (41, 41))
    assert torch.equal(got, want)
    per_class = torch.stack([cosines[[0, 1]].amax(0), cosines[[2, 3]].amax(0), cosines[4]])
    patch_first = F.interpolate(per_class[None], size=(41, 41), mode="bilinear", align_corners=False)[0].argmax(0)
    assert not torch.equal(got, patch_first)


def test_names_are_upsampled_a_chunk_at_a_time(monkeypatch):
    """Bounded memory: no more than MAX_UPSAMPLED full-size values are made at once, and the map is unchanged."""
    queries = NameQueries.from_classes([[f"n{c}-{k}" for k in range(3)] for c in range(10)])
    torch.manual_seed(1)
    cosines = torch.rand(30, 5, 7)
    whole = names_label_map(cosines, queries, NamesRule(50.0, 0.2, 0.1, 0), size=(60, 45))
    made = []
    real = F.interpolate

    def counting(x, *args, **kwargs):
        out = real(x, *args, **kwargs)
        made.append(out.numel())
        return out

    monkeypatch.setattr(upsample, "MAX_UPSAMPLED", 4 * 60 * 45)
    monkeypatch.setattr(upsample.F, "interpolate", counting)
    chunked = names_label_map(cosines, queries, NamesRule(50.0, 0.2, 0.1, 0), size=(60, 45))
    assert made and max(made) <= 4 * 60 * 45 and sum(made) >= 30 * 60 * 45
    assert torch.equal(whole, chunked)


def hand_case(b_over_a: int, b_over_bg: int, rest_bg: int) -> torch.Tensor:
    """Full-size cosines, one name per class (0 background, 1 A, 2 B), 10 x 10 pixels in row-major order:
    ``b_over_a`` pixels where B tops and A is second, ``b_over_bg`` where B tops and the background is second,
    ``rest_bg`` background pixels, A everywhere else."""
    cos = torch.zeros(3, 100)
    cos[1] = 1.0  # A
    k = 0
    for n, second in ((b_over_a, 1), (b_over_bg, 0)):
        for i in range(k, k + n):
            cos[:, i] = 0.0
            cos[2, i], cos[second, i] = 1.0, 0.9
        k += n
    cos[:, k : k + rest_bg] = torch.tensor([1.0, 0.0, 0.0])[:, None]
    return cos.reshape(3, 10, 10)


def test_area_threshold_on_a_hand_made_case():
    queries = NameQueries.from_classes([["sky", "wall"], ["cat"], ["cup"]])  # class 0 is not named background
    cos = hand_case(3, 2, 5)  # B has 5 pixels of the 95 not background: 5 <= 0.1 * 95, so B is removed
    cos = torch.cat([cos[:1], cos])  # "wall": a second name of the background, the same map as "sky"
    labels = names_label_map(cos, queries, NamesRule(10.0, None, 0.1, 0)).flatten()
    assert labels[:3].tolist() == [1, 1, 1] and labels[3:5].tolist() == [0, 0]  # B's pixels to their next class
    assert labels[5:10].tolist() == [0] * 5 and labels[10:].eq(1).all()
    # A's probability on B's old pixels: e^9 / (e^10 + e^9 + 2 e^0) = 0.269 with "sky" and "wall" both counted
    p = np.exp(9) / (np.exp(10) + np.exp(9) + 2)
    assert 0.26 < p < 0.27
    assert names_label_map(cos, queries, NamesRule(10.0, 0.2, 0.1, 0)).flatten()[:3].tolist() == [1, 1, 1]
    assert names_label_map(cos, queries, NamesRule(10.0, 0.3, 0.1, 0)).flatten()[:3].tolist() == [0, 0, 0]
    # no area rule: B keeps its pixels
    assert names_label_map(cos, queries, NamesRule(10.0, None, None, None)).flatten()[:5].eq(2).all()


@pytest.mark.parametrize(
    ("b_pixels", "bg_pixels", "kept"),
    [
        (10, 10, True),  # 10 > 0.1 * 90 (the area not background): kept, though 10 is not above 0.1 * 100
        (9, 10, False),  # 9 is not above 0.1 * 90: removed (strictly greater keeps)
        (9, 0, False),  # 9 is not above 0.1 * 100
        (11, 0, True),
    ],
)
def test_area_threshold_counts_against_the_area_not_background(b_pixels, bg_pixels, kept):
    queries = NameQueries.from_classes([["background"], ["a"], ["b"]])
    labels = names_label_map(hand_case(b_pixels, 0, bg_pixels), queries, NamesRule(10.0, None, 0.1, 0)).flatten()
    assert labels[:b_pixels].eq(2 if kept else 1).all()


def test_background_by_index_whatever_it_is_called(tmp_path):
    text = "sky, wall, tree\ncat, kitty\ncup, mug\n"
    classes = read_class_file(text)
    queries = NameQueries.from_classes(classes)
    assert queries.labels == ["sky", "cat", "cup"] and resolve_background(queries.labels) is None
    assert resolve_background(queries.labels, 0) == 0 and resolve_background(["x", "Background"]) == 1
    cos = torch.zeros(len(queries.names), 4, 4)
    cos[queries.names.index("kitty"), :, :2] = 1.0  # cat on the left; a flat tie on the right
    labels = names_label_map(cos, queries, NamesRule(40.0, 0.5, None, 0))
    assert labels[:, :2].eq(1).all() and labels[:, 2:].eq(0).all()
    with pytest.raises(BackgroundMissingError, match="background_index"):
        NamesRule(40.0, 0.5)
    with pytest.raises(BackgroundMissingError, match="background_index"):
        NamesRule(40.0, None, 0.1)
    with pytest.raises(InvalidConfigError, match="out of range"):
        names_label_map(cos, queries, NamesRule(40.0, 0.5, None, 3))
    # the per-class rule (label and S^3) takes the background by index too
    logits = torch.stack([torch.zeros(4, 4), torch.zeros(4, 4), torch.zeros(4, 4)])
    logits[1, :, :2] = 5.0
    assert label_map(logits, queries.labels, 0.5, background_index=0)[:, 2:].eq(0).all()
    with pytest.raises(BackgroundMissingError, match="background_index"):
        label_map(logits, queries.labels, 0.5)
    with pytest.raises(InvalidConfigError, match="background_index"):
        SegmentOptions(background_index=-1)


def test_class_files_are_read_untruncated():
    background = [f"thing{i}" for i in range(24)] + ["bed", "sky"]
    text = ", ".join(background) + "\nbed\nsky\n\n"
    classes = read_class_file(text)
    assert [len(c) for c in classes] == [26, 1, 1] and classes[0] == background
    queries = NameQueries.from_classes(classes)
    assert len(queries.rows) == 28 and len(queries.names) == 26  # "bed" and "sky" kept in both classes
    bed = queries.names.index("bed")
    assert [c for r, c in zip(queries.rows, queries.classes, strict=True) if r == bed] == [0, 1]
    # a tie between the background's "bed" and class 1's "bed" goes to the lower class, as argmax does
    cos = torch.zeros(26, 2, 2)
    cos[bed] = 1.0
    assert names_label_map(cos, queries, NamesRule(40.0)).eq(0).all()


@pytest.mark.parametrize(("name", "count"), [("cls_voc21.txt", 21), ("cls_coco_object.txt", 81)])
def test_the_shared_class_files_keep_every_name(name, count):
    path = CLASSNAMES / name
    if not path.is_file():
        pytest.skip(f"{path} (the shared class-name files) is absent")
    classes = read_class_file(path.read_text())
    assert len(classes) == count and len(classes[0]) == 26 and classes[0][0] == "sky"
    assert classes == [line.split(", ") for line in path.read_text().splitlines()]  # as get_cls_idx splits


def test_eval_names_baseline_reads_the_file_untruncated(tmp_path):
    from s3_hf.evaluation.segmentation import load, names_queries

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / "a.png")
    names = [f"n{i}" for i in range(25)] + ["cat"]
    (tmp_path / "classes.txt").write_text(", ".join(names) + "\ncat, kitty\n")
    data = load(str(tmp_path))
    assert data.class_names == [names, ["cat", "kitty"]]
    queries = names_queries(data)
    assert len(queries.rows) == 28 and len(queries.names) == 27 and queries.classes.count(0) == 26


# ------------------------------------------------------------------------------------- real pixels, tiny CLIP
def reference_window_cosines(engine, pixels: torch.Tensor, text: torch.Tensor, variant: str, crop: int, stride: int):
    """Per query the cosine maps at the working resolution, as the references' ``forward_slide`` computes them:
    mmseg's window grid, each window's patch cosines upsampled to the window, summed and divided by the count."""
    _, h_img, w_img = pixels.shape
    preds = torch.zeros(len(text), h_img, w_img)
    count = torch.zeros(1, h_img, w_img)
    h_grids = max(h_img - crop + stride - 1, 0) // stride + 1
    w_grids = max(w_img - crop + stride - 1, 0) // stride + 1
    for hi in range(h_grids):
        for wi in range(w_grids):
            y1, x1 = hi * stride, wi * stride
            y2, x2 = min(y1 + crop, h_img), min(x1 + crop, w_img)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            window = pixels[None, :, y1:y2, x1:x2]
            feats = engine.encoder.dense_features(window, variant)[0]
            gh, gw, d = feats.shape
            cos = (feats.reshape(-1, d) @ text.T).T.reshape(1, -1, gh, gw)
            preds[:, y1:y2, x1:x2] += F.interpolate(cos, size=(y2 - y1, x2 - x1), mode="bilinear")[0]
            count[:, y1:y2, x1:x2] += 1
    return preds / count


def test_tiny_clip_on_voc_pixels_equals_the_reference(tiny_clip_dir):
    if not VOC.is_dir():
        pytest.skip(f"{VOC} (the shared VOC sample) is absent")
    if not (CLASSNAMES / "cls_voc21.txt").is_file():
        pytest.skip(f"{CLASSNAMES / 'cls_voc21.txt'} (the shared class-name files) is absent")
    engine = S3Engine.from_pretrained(tiny_clip_dir, device="cpu")
    classes = read_class_file((CLASSNAMES / "cls_voc21.txt").read_text())
    queries = NameQueries.from_classes(classes)
    template = "a photo of a {}."
    request = engine.request(queries.names, hypothesis_template=template, metric="label")
    resolved = engine.resolve(request)
    options = SegmentOptions(variant="naclip", short_side=48, window=32, stride=16)
    mean, std = engine.encoder.pixel_stats()
    # every query encoded on its own, repeats included, as the references' query loop does
    text = engine.encoder.encode_texts([template.format(n) for c in classes for n in c])
    for path in sorted((VOC / "JPEGImages").iterdir())[:2]:
        image = Image.open(path).convert("RGB")
        cos = segment_logits_many(engine, image, [resolved], options, cosine=[True])[0]
        pixels = image_pixels(image, mean, std, 48)
        want_cos = reference_window_cosines(engine, pixels, text, "naclip", 32, 16)
        assert torch.allclose(expand(cos, queries), want_cos, atol=1e-5)
        for rule in (NamesRule(40.0), NamesRule(65.0, 0.1, 0.1, 0), NamesRule(50.0, 0.1, None, 0)):
            got = names_label_map(cos, queries, rule, size=image.size)
            want, top = reference(
                want_cos, queries.classes, rule.logit_scale, image.size[::-1], rule.prob_thd, rule.area_thd
            )
            assert_same_map(got, want, top, rule.prob_thd)


def test_segmentation_eval_records_the_names_rule(tiny_clip_dir, tmp_path):
    """The eval's ``names`` method runs the rule end to end on a folder whose class 0 is not named background."""
    from s3_hf.cli import main

    root = tmp_path / "bench"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray((rng.integers(0, 3, (40, 48))).astype(np.uint8)).save(root / "masks" / f"{i}.png")
    (root / "classes.txt").write_text("sky, wall, tree\ncat, kitty\ncup, mug, cat\n")
    out = tmp_path / "out"
    args = ["eval", "--task", "segmentation", "--benchmarks", str(root), "--model", str(tiny_clip_dir)]
    args += ["--templates", "a photo of a {}.", "--metrics", "label", "--out", str(out)]
    assert main([*args, "--short-side", "40", "--window", "32", "--stride", "16"]) == 0
    rec = json.loads((out / "segmentation.json").read_text())["benchmarks"]["bench"]
    assert set(rec["methods"]) == {"label", "names", "s3/label"}
    assert sum(map(sum, rec["methods"]["names"]["confusion"])) == 2 * 40 * 48
