"""Hostile inputs that would exhaust a process: oversized spaces and images, each refused with a typed error before
anything large is allocated (see s3_hf.limits), while ordinary inputs keep their results; and image inputs that
cannot be read at all, each a typed ImageLoadError."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import crafted_space, png
from PIL import Image

from s3_hf import SynonymSpace
from s3_hf.errors import ImageLoadError, ImageTooLargeError, InvalidConfigError, SpaceTooLargeError
from s3_hf.segmentation.options import SegmentOptions
from s3_hf.segmentation.render import index_image
from s3_hf.space.scoring import ScoringState, score, state_bytes


# ------------------------------------------------------------------------------------------------- space size
def test_a_space_padded_to_one_huge_class_is_refused_before_allocating():
    # 400 classes, one with 1,200 points: the dense view would pad all 400 to 1,200 (about 21 GB)
    space = crafted_space([1200] + [1] * 399)
    assert state_bytes(space.tensors) > 16 * 2**30
    with pytest.raises(SpaceTooLargeError, match=r"400 classes.*largest class with 1200 points.*S3_MAX_SCORING_MB"):
        space.scoring_state()


def test_the_space_size_is_checked_when_a_saved_space_is_loaded(tmp_path, monkeypatch):
    folder = crafted_space([30] + [1] * 9, dim=64).save_pretrained(tmp_path / "space")
    assert SynonymSpace.from_pretrained(folder).num_classes == 10  # fits the default limit
    need_mb = state_bytes(SynonymSpace.from_pretrained(folder).tensors) / 2**20
    monkeypatch.setenv("S3_MAX_SCORING_MB", str(need_mb / 2))
    with pytest.raises(SpaceTooLargeError, match=f"{folder.name}.*S3_MAX_SCORING_MB"):
        SynonymSpace.from_pretrained(folder)
    monkeypatch.setenv("S3_MAX_SCORING_MB", "lots")
    with pytest.raises(InvalidConfigError, match="S3_MAX_SCORING_MB"):
        SynonymSpace.from_pretrained(folder)


def test_the_size_estimate_bounds_what_the_dense_view_holds():
    space = crafted_space([12, 3, 7], dim=32)
    state = ScoringState.from_space(space.tensors, dtype=torch.float64)
    held = sum(x.numel() * x.element_size() for x in (state.points, state.gram, state.adjacency, state.centre_norms))
    assert held <= state_bytes(space.tensors) <= 4 * held
    v = torch.nn.functional.normalize(torch.randn(2, 32, dtype=torch.float64), dim=-1)
    assert score(v, state, "nearest_point").shape == (2, 3)


# ------------------------------------------------------------------------------------------------------ images
def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, followed by a few bytes of image data only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def truncated() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((64, 64), 40).convert("RGB").save(out, "PNG")
    return out.getvalue()[:600]


#: name -> (the file's bytes or a PIL image, what classification gives, what segmentation gives): an error type, or
#: None for a right result. Segmentation works at a short side of 336 px, so a 1:15 strip is 336 x 5,040 px there.
HOSTILE = {
    "normal 40x30": (lambda: png(40, 30), None, None),
    "elongated 10x150": (lambda: png(10, 150), None, ImageTooLargeError),
    "strip 1x200": (lambda: png(1, 200), ImageTooLargeError, ImageTooLargeError),
    "strip 1x100000": (lambda: png(100000, 1), ImageTooLargeError, ImageTooLargeError),
    "strip 8x800": (lambda: png(8, 800), ImageTooLargeError, ImageTooLargeError),
    "empty 0x0 PIL image": (lambda: Image.new("RGB", (0, 0)), ImageLoadError, ImageLoadError),
    "header declares 0x0": (lambda: png_declaring(0, 0), ImageLoadError, ImageLoadError),
    "header declares 10000x10000": (lambda: png_declaring(10000, 10000), ImageTooLargeError, ImageTooLargeError),
    "header declares 100000x100000": (lambda: png_declaring(100000, 100000), ImageTooLargeError, ImageTooLargeError),
    "truncated PNG": (truncated, ImageLoadError, ImageLoadError),
    "not an image": (lambda: b"GIF89a but not really", ImageLoadError, ImageLoadError),
}


def as_input(made: bytes | Image.Image, tmp_path: Path) -> str | Image.Image:
    if isinstance(made, Image.Image):
        return made
    path = tmp_path / "input.png"
    path.write_bytes(made)
    return str(path)


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    from s3_hf.engine.core import S3Engine

    return S3Engine.from_pretrained(tiny_clip_dir, device="cpu")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL warns above 89 MP; we refuse at 50
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_image_in_classification(case, s3_pipe, tmp_path):
    make, expected, _ = HOSTILE[case]
    image = as_input(make(), tmp_path)
    if expected is None:
        out = s3_pipe(image, candidate_labels=["cat", "dog"])
        assert sorted(r["label"] for r in out) == ["cat", "dog"]
        return
    with pytest.raises(expected) as info:
        s3_pipe(image, candidate_labels=["cat", "dog"])
    if expected is ImageTooLargeError:
        assert "S3_MAX_IMAGE_" in str(info.value) or "too large to decode" in str(info.value)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_image_in_segmentation(case, engine, tmp_path):
    make, _, expected = HOSTILE[case]
    image = as_input(make(), tmp_path)
    request = engine.request(["cat", "dog"], metric="label")
    if expected is None:
        seg = engine.segment(image, request)
        assert tuple(seg.label_map.shape) == (30, 40)
        return
    with pytest.raises(expected):
        engine.segment(image, request)


def test_the_image_limits_are_operator_settings(s3_pipe, engine, tmp_path, monkeypatch):
    strip = as_input(png(10, 150), tmp_path)
    monkeypatch.setenv("S3_MAX_IMAGE_ASPECT", "10")
    with pytest.raises(ImageTooLargeError, match=r"aspect ratio of 15:1.*S3_MAX_IMAGE_ASPECT"):
        s3_pipe(strip, candidate_labels=["cat", "dog"])
    monkeypatch.setenv("S3_MAX_IMAGE_ASPECT", "20")
    monkeypatch.setenv("S3_MAX_SEGMENT_PIXELS", "2e6")
    seg = engine.segment(strip, engine.request(["cat", "dog"], metric="label"))
    assert tuple(seg.label_map.shape) == (150, 10)
    monkeypatch.setenv("S3_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ImageTooLargeError, match=r"1,500 pixels.*S3_MAX_IMAGE_PIXELS"):
        engine.segment(strip, engine.request(["cat", "dog"], metric="label"))


# -------------------------------------------------------------------------------------------- unreadable images
def unreadable(kind: str, tmp_path: Path, photos: list[Path]) -> str | bytes:
    if kind == "missing":
        return str(tmp_path / "missing.jpg")
    if kind == "folder":
        return str(tmp_path)
    if kind == "url":
        return "http://127.0.0.1:9/photo.jpg"  # nothing listens on the discard port
    if kind == "text":
        path = tmp_path / "notes.jpg"
        path.write_text("not an image")
        return str(path)
    if kind == "truncated":
        path = tmp_path / "cut.jpg"
        path.write_bytes(photos[0].read_bytes()[:1500])
        return str(path)
    if kind == "empty":
        path = tmp_path / "empty.png"
        path.write_bytes(b"")
        return str(path)
    if kind == "base64":
        return base64.b64encode(b"definitely not an image").decode()
    if kind == "bytes":
        return b"\x89PNG"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("missing", "no such file"),
        ("folder", "is a folder"),
        ("url", "Could not download"),
        ("text", "not an image file"),
        ("truncated", "truncated"),
        ("empty", "not an image file"),
        ("base64", "image"),
        ("bytes", "Cannot read an image from an object of type bytes"),
    ],
)
def test_unreadable_image_in_classification(s3_pipe, tmp_path, photos, kind, fragment):
    with pytest.raises(ImageLoadError, match=fragment):
        s3_pipe(unreadable(kind, tmp_path, photos), candidate_labels=["cat", "dog", "airplane"], timeout=2)


def test_decompression_bomb_is_refused(s3_pipe, tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (400, 300)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # PIL refuses more than twice the limit
    with pytest.raises(ImageLoadError, match="too large to decode safely") as err:
        s3_pipe(str(path), candidate_labels=["cat", "dog", "airplane"])
    assert "MAX_IMAGE_PIXELS" in str(err.value)


# ------------------------------------------------------------------------------------------- segmentation options
@pytest.mark.parametrize("option", ["window", "short_side"])
def test_a_window_or_short_side_below_the_patch_size_is_refused(option, engine, photos):
    options = SegmentOptions(**{option: 4, "stride": 4})  # the tiny model's patches are 8 px
    with pytest.raises(InvalidConfigError, match=f"{option} 4 is smaller than the model's 8-pixel patches"):
        engine.segment(str(photos[0]), engine.request(["cat", "dog"], metric="label"), options)


def test_cli_segment_with_a_window_below_the_patch_size_is_one_line(tiny_clip_dir, photos, tmp_path, capsys):
    from s3_hf.cli import main

    args = ["segment", str(photos[0]), "--labels", "cat,dog", "--model", str(tiny_clip_dir), "--window", "4"]
    assert main([*args, "--stride", "4", "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "window 4 is smaller than the model's 8-pixel patches" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("value", ["no", "false", 0, 1, None])
def test_fast_decode_takes_only_a_real_bool(value, s3_pipe, tiny_clip_dir, photos):
    with pytest.raises(InvalidConfigError, match="fast_decode must be True or False"):
        s3_pipe(str(photos[0]), candidate_labels=["cat", "dog"], fast_decode=value)
    with pytest.raises(InvalidConfigError, match="fast_decode must be True or False"):
        SegmentOptions(fast_decode=value)


def test_index_image_keeps_class_ids_above_65535():
    ids = torch.tensor([[0, 255, 256], [65535, 65536, 69999]])
    for n in (300, 70000):
        img = index_image(ids.clamp(max=n - 1), n)
        assert np.asarray(img).astype(np.int64).tolist() == ids.clamp(max=n - 1).tolist()
    assert index_image(ids.clamp(max=255), 256).mode == "L"
