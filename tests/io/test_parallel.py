"""Image workers (:mod:`s3_hf.io.parallel`): batches in flight at once, results in input order, equal to one at a
time up to float32 rounding (a worker sums on its share of torch's threads)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from s3_hf.errors import ImageLoadError, InvalidConfigError
from s3_hf.io.parallel import batched, default_image_workers, map_batches, threads_per_worker


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_map_batches_keeps_input_order(workers):
    def slow_square(x: int) -> int:
        time.sleep(0.002 * (5 - x % 5))  # later batches finish first
        return x * x

    assert list(map_batches(range(12), slow_square, workers)) == [x * x for x in range(12)]


def test_map_batches_reads_lazily_and_runs_on_worker_threads():
    read = []

    def source():
        for k in range(10):
            read.append(k)
            yield k

    names = set()

    def fn(x: int) -> int:
        names.add(threading.current_thread().name)
        return x

    it = map_batches(source(), fn, workers=2)
    assert next(it) == 0
    assert len(read) <= 3  # at most workers + 1 batches ahead of the caller
    assert list(it) == list(range(1, 10))
    assert names and all(n.startswith("s3-images") for n in names)
    assert (
        list(map_batches(range(3), lambda x: threading.current_thread().name, 0))
        == [threading.current_thread().name] * 3
    )


def test_torch_threads_are_set_per_worker_and_the_caller_keeps_its_own():
    before = torch.get_num_threads()
    seen = list(map_batches(range(4), lambda _: torch.get_num_threads(), workers=2, torch_threads=1))
    assert seen == [1, 1, 1, 1]
    assert torch.get_num_threads() == before


def test_a_failing_batch_raises_in_the_caller():
    def fn(x: int) -> int:
        if x == 2:
            raise ImageLoadError("bad image 2")
        return x

    it = map_batches(range(6), fn, workers=2)
    assert next(it) == 0 and next(it) == 1
    with pytest.raises(ImageLoadError, match="bad image 2"):
        next(it)
    with pytest.raises(InvalidConfigError, match="workers"):
        list(map_batches(range(2), fn, workers=-1))


def test_defaults_per_device(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert default_image_workers("cpu") == 2 and threads_per_worker(2) == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert default_image_workers("cpu") == 0 and threads_per_worker(2) == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)
    assert threads_per_worker(2) == 8
    monkeypatch.setattr("s3_hf.io.parallel.cpu_cores", lambda: 32)
    assert default_image_workers("cuda") == 8
    monkeypatch.setattr("s3_hf.io.parallel.cpu_cores", lambda: 4)
    assert default_image_workers(torch.device("cuda", 1)) == 4


def test_batched():
    assert batched(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    assert batched([], 3) == []
    with pytest.raises(InvalidConfigError, match="batch_size"):
        batched([1], 0)


@pytest.fixture(scope="module")
def tiny_encoder(tiny_clip_dir):
    from s3_hf.models.encoders import load_encoder

    return load_encoder(tiny_clip_dir, device="cpu")


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_encoder_batches_equal_one_at_a_time(tiny_encoder, photos, workers):
    """Workers change the time, never the result: the same embeddings, in input order."""
    images = [str(p) for p in photos] * 2
    plain = tiny_encoder.encode_images(images, batch_size=2, workers=0)
    assert plain.shape[0] == len(images)
    torch.testing.assert_close(tiny_encoder.encode_images(images, batch_size=2, workers=workers), plain)
    batches = list(tiny_encoder.encode_image_batches(images, 3, workers=workers))
    assert [b.indices for b in batches] == [list(range(i, min(i + 3, len(images)))) for i in range(0, len(images), 3)]


def test_a_single_batch_runs_in_the_caller_with_all_threads(tiny_encoder, photos, monkeypatch):
    """One batch has nothing to overlap: it is encoded in the calling thread, which keeps all of torch's threads."""
    seen = []
    encode = tiny_encoder.encode_pixels
    monkeypatch.setattr(tiny_encoder, "encode_pixels", lambda x: seen.append(threading.current_thread()) or encode(x))
    tiny_encoder.encode_images([str(p) for p in photos], batch_size=len(photos), workers=2)
    assert seen == [threading.current_thread()]
    tiny_encoder.encode_images([str(p) for p in photos], batch_size=1, workers=2)
    assert all(t.name.startswith("s3-images") for t in seen[1:]) and len(seen) == 1 + len(photos)


def test_encoder_batches_report_or_raise_unreadable_images(tiny_encoder, photos, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    images = [str(photos[0]), str(bad), str(photos[1]), str(tmp_path / "missing.jpg")]
    batches = list(tiny_encoder.encode_image_batches(images, 2, workers=2, skip_errors=True))
    assert [b.indices for b in batches] == [[0], [2]]
    assert [[i for i, _ in b.errors] for b in batches] == [[1], [3]]
    assert all(isinstance(e, ImageLoadError) for b in batches for _, e in b.errors)
    expected = tiny_encoder.encode_images([images[0], images[2]], batch_size=1, workers=0)
    torch.testing.assert_close(torch.cat([b.features for b in batches]), expected)
    with pytest.raises(ImageLoadError, match=r"broken\.jpg"):
        list(tiny_encoder.encode_image_batches(images, 2, workers=2))
    only_bad = list(tiny_encoder.encode_image_batches([str(bad)], 2, workers=0, skip_errors=True))
    assert only_bad[0].features is None and only_bad[0].indices == []


def test_encoder_batches_compute_any_features(tiny_encoder, photos):
    """Few-shot support goes through the same path with the global and local features."""
    images = [str(p) for p in photos]
    (batch,) = tiny_encoder.encode_image_batches(images, len(images), workers=2, features=tiny_encoder.global_and_local)
    glob, local = batch.features
    torch.testing.assert_close(glob, tiny_encoder.encode_images(images, workers=0))
    assert local.shape[:2] == (len(images), local.shape[1]) and local.dim() == 3
