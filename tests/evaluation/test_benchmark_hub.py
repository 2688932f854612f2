"""Hub benchmarks in CLIP_benchmark's layout, loaded through huggingface_hub and datasets from an in-process fake Hub.

The replica is a dataset repo like ``clip-benchmark/wds_*``: webdataset shards ``test/0.tar``, ``test/1.tar`` and
``train/0.tar`` whose members are ``<key>.<webp|jpg|png>`` + ``<key>.cls``, and ``classnames.txt`` and
``zeroshot_classification_templates.txt`` at the root.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import COMMIT, fake_hub
from PIL import Image

from s3_hf.cli import main
from s3_hf.errors import EvalError, ImageLoadError
from s3_hf.evaluation.data import registry

REPO = "acme/wds_toy"
CLASSES = ["cat", "coffee", "astronaut", "rocket"]
TEMPLATES = ["a photo of a {c}.", "a blurry photo of the {c}.", "itap of a {c}."]
# (extension, [(scikit-image photo, label), ...]) per shard, in shard order
TEST_SHARDS = [("webp", [("chelsea", 0), ("coffee", 1), ("astronaut", 2)]), ("jpg", [("rocket", 3), ("cat", 0)])]
TRAIN_SHARDS = [("png", [("chelsea", 0), ("coffee", 1), ("astronaut", 2), ("rocket", 3)])]
SAVE = {
    "webp": {"format": "WEBP", "lossless": True},
    "jpg": {"format": "JPEG", "quality": 90},
    "png": {"format": "PNG"},
}
PIL_FORMAT = {"webp": "WEBP", "jpg": "JPEG", "png": "PNG"}


@dataclass(frozen=True)
class Sample:
    key: str
    ext: str
    image: bytes
    label: int


def photo_bytes(name: str, ext: str) -> bytes:
    from skimage import data

    image = Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB").resize((40, 40))
    out = io.BytesIO()
    image.save(out, **SAVE[ext])
    return out.getvalue()


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(payload), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()


def member_offsets(data: bytes) -> list[int]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.offset for m in tar.getmembers()]


def tarfile_members(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def split_samples(shards: list[tuple[str, list[tuple[str, int]]]]) -> list[list[Sample]]:
    """Samples per shard, keyed ``s0000000``, ``s0000001``, ... across the split as CLIP_benchmark numbers them."""
    out, n = [], 0
    for ext, items in shards:
        out.append(
            [Sample(f"s{n + i:07d}", ext, photo_bytes(photo, ext), label) for i, (photo, label) in enumerate(items)]
        )
        n += len(items)
    return out


def shard(samples: list[Sample]) -> bytes:
    members = []
    for s in samples:
        members += [(f"{s.key}.{s.ext}", s.image), (f"{s.key}.cls", str(s.label).encode())]
    return tar_bytes(members)


@pytest.fixture(scope="module")
def samples() -> dict[str, list[list[Sample]]]:
    return {"test": split_samples(TEST_SHARDS), "train": split_samples(TRAIN_SHARDS)}


def replica(samples: dict[str, list[list[Sample]]], classnames: str | None = None) -> dict[str, bytes]:
    files = {f"{split}/{i}.tar": shard(s) for split, shards in samples.items() for i, s in enumerate(shards)}
    files["classnames.txt"] = (classnames if classnames is not None else "\n".join(CLASSES) + "\n").encode()
    files["zeroshot_classification_templates.txt"] = ("\n".join(TEMPLATES) + "\n").encode()
    return files


@pytest.fixture
def hub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Online (HF_HUB_OFFLINE unset), every cache under ``tmp_path``, no token, and no socket can leave the
    process: the fake Hub answers every request in-process."""
    import datasets
    from huggingface_hub import constants

    home = tmp_path / "hf"
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    paths = {"HF_HOME": home, "HF_HUB_CACHE": home / "hub", "HF_DATASETS_CACHE": home / "datasets"}
    for name, path in paths.items():
        monkeypatch.setenv(name, str(path))
    # both libraries read these variables when imported: move the values they hold too
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(paths["HF_HUB_CACHE"]))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", paths["HF_DATASETS_CACHE"])
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", home / "modules")
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", paths["HF_DATASETS_CACHE"] / "downloads")
    monkeypatch.setattr(
        datasets.config, "EXTRACTED_DATASETS_PATH", paths["HF_DATASETS_CACHE"] / "downloads" / "extracted"
    )

    def no_network(*args, **kwargs):
        raise AssertionError(f"a test tried to reach the network: {args}")

    connect = socket.socket.connect

    def local_only(sock: socket.socket, address) -> None:
        if sock.family != socket.AF_UNIX:
            no_network(address)
        connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", local_only)
    return home


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def decoded(image_bytes: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(image_bytes)) as im:
        return np.asarray(im.convert("RGB"))


def check_split(data: registry.BenchmarkData, shards: list[list[Sample]]) -> None:
    expected = [s for samples in shards for s in samples]
    assert data.labels == [s.label for s in expected]  # shard order, then order inside each shard
    assert len(data.images) == len(expected)
    for image, sample in zip(data.images, expected, strict=True):
        assert image.format == PIL_FORMAT[sample.ext]
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), decoded(sample.image))


def test_replica_loads_through_the_hub_and_then_offline(samples, hub_home, monkeypatch):
    bench = registry.Benchmark("toy-wds", hub_id=REPO)
    with monkeypatch.context() as offline:
        go_offline(offline)
        with pytest.raises(registry.BenchmarkUnavailable, match=f"cannot load {REPO}: .*Run once with network"):
            registry.load(bench)

    with fake_hub({REPO: replica(samples)}) as hub:
        data = registry.load(bench)
        n_test = len(hub.requests)
        train = registry.load_train(bench, data)
    check_split(data, samples["test"])
    assert data.class_names == CLASSES
    assert data.templates == ["a photo of a {}.", "a blurry photo of the {}.", "itap of a {}."]
    check_split(train, samples["train"])
    assert train.class_names == CLASSES and train.fingerprint != data.fingerprint

    # on the wire: the two text files, one listing of the split's folder, then its shards (the train split's
    # only when asked for); huggingface_hub and datasets add a telemetry call or two that touch no repo
    resolve = f"/datasets/{REPO}/resolve"
    texts = ["classnames.txt", "zeroshot_classification_templates.txt"]
    expected = [(m, f"{resolve}/main/{f}") for f in texts for m in ("HEAD", "GET")]
    expected.append(("GET", f"/api/datasets/{REPO}/tree/{COMMIT}/test"))
    expected += [(m, f"{resolve}/{COMMIT}/test/{i}.tar") for i in (0, 1) for m in ("HEAD", "GET")]
    assert [r for r in hub.requests[:n_test] if REPO in r[1]] == expected
    train_requests = [r for r in hub.requests[n_test:] if REPO in r[1]]
    assert ("GET", f"/api/datasets/{REPO}/tree/{COMMIT}/train") in train_requests
    assert ("GET", f"{resolve}/{COMMIT}/train/0.tar") in train_requests
    assert not any("/train/" in p for _, p in hub.requests[:n_test])
    assert (hub_home / "hub" / "datasets--acme--wds_toy" / "snapshots" / COMMIT / "test" / "1.tar").is_file()
    assert list((hub_home / "datasets").rglob("*.arrow"))

    # offline afterwards: everything from the caches, the same data
    go_offline(monkeypatch)
    again = registry.load(bench)
    assert again.labels == data.labels and again.fingerprint == data.fingerprint
    check_split(again, samples["test"])


def relabelled(samples: list[Sample], index: int, label: int) -> list[Sample]:
    return [Sample(s.key, s.ext, s.image, label) if i == index else s for i, s in enumerate(samples)]


BROKEN = {  # what is wrong with the replica -> what the error must say
    "cut-off shard": r"test/1\.tar \(700 bytes, not whole 512-byte tar blocks\) is not a complete tar archive",
    "shard cut between samples": r"test/1\.tar \(no end-of-archive blocks\) is not a complete tar archive: a cut-off",
    "not a tar": r"test/1\.tar \((bad checksum|invalid header)\) is not a complete tar .*Delete the cached copy",
    "fewer class names": r"labels run from 0 to 3 but classnames\.txt names 3 classes \(0 to 2\); samples s0000003",
    "label out of range": r"labels run from 0 to 9 .*samples s0000001 have no class name.*fix classnames\.txt",
    "negative label": r"labels run from -1 to 3 .*samples s0000000 have no class name",
    "blank class name": r"one class name per line \(line i naming class i\), but line 2 is blank",
    "sample without label": r"samples s0000004 have no \.cls label file",
    "sample without image": r"samples s0000002 have no image \(\.webp, \.jpg, \.png, \.jpeg\)",
    "no test split": r"has no test/\*\.tar webdataset shards",
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_replicas_are_reported_as_unavailable(samples, hub_home, case):
    test = samples["test"]
    files = replica(samples)
    if case == "cut-off shard":
        files["test/1.tar"] = files["test/1.tar"][:700]
    elif case == "shard cut between samples":  # tarfile reads this without error, one sample short
        files["test/1.tar"] = files["test/1.tar"][: member_offsets(files["test/1.tar"])[2]]
    elif case == "not a tar":  # ends like a tar, so only reading it tells
        files["test/1.tar"] = b"<html>502 Bad Gateway</html>".ljust(2048, b"\0")
    elif case == "fewer class names":
        files["classnames.txt"] = "\n".join(CLASSES[:3]).encode()
    elif case == "label out of range":
        files["test/0.tar"] = shard(relabelled(test[0], 1, 9))
    elif case == "negative label":
        files["test/0.tar"] = shard(relabelled(test[0], 0, -1))
    elif case == "blank class name":
        files["classnames.txt"] = b"cat\n\ncoffee\nastronaut\nrocket\n"
    elif case == "sample without label":
        s = test[1][1]
        files["test/1.tar"] = tar_bytes([*tarfile_members(files["test/1.tar"])[:2], (f"{s.key}.{s.ext}", s.image)])
    elif case == "sample without image":
        files["test/0.tar"] = tar_bytes([m for m in tarfile_members(files["test/0.tar"]) if m[0] != "s0000002.webp"])
    elif case == "no test split":
        files = {k: v for k, v in files.items() if not k.startswith("test/")}
    with fake_hub({REPO: files}), pytest.raises(registry.BenchmarkUnavailable, match=BROKEN[case]) as err:
        registry.load(registry.Benchmark("toy-wds", hub_id=REPO))
    assert isinstance(err.value, EvalError) and str(err.value).startswith(f"toy-wds: {REPO}")
    if "tar" in case:
        assert f"({hub_home / 'hub' / 'datasets--acme--wds_toy'})" in str(err.value)


def test_repeated_class_names_are_made_distinct_and_bad_images_are_typed(samples, hub_home):
    files = replica(samples, classnames="cat\ncoffee\nastronaut\nCat\n")
    bad = Sample("s0000000", "webp", b"RIFF\x00\x00\x00\x00WEBPnot an image", 0)
    files["test/0.tar"] = shard([bad, *samples["test"][0][1:]])
    with fake_hub({REPO: files}):
        data = registry.load(registry.Benchmark("toy-wds", hub_id=REPO))
    assert data.class_names == ["cat", "coffee", "astronaut", "Cat (class 3)"]
    assert data.images[1].format == "WEBP"
    with pytest.raises(ImageLoadError, match=r"toy-wds \(acme/wds_toy, test\): sample s0000000's image cannot be"):
        data.images[0]
    with pytest.raises(IndexError):
        data.images[len(data.images)]


def test_s3_eval_end_to_end_on_the_replica(samples, hub_home, tiny_clip_dir, tmp_path, monkeypatch):
    """`s3 eval` with few-shot runs on the replica, beside a broken copy that is reported and skipped."""
    broken = replica(samples)
    broken["test/1.tar"] = broken["test/1.tar"][:700]
    monkeypatch.setitem(registry.REGISTRY, "toy-wds", registry.Benchmark("toy-wds", hub_id=REPO))
    monkeypatch.setitem(registry.REGISTRY, "toy-broken", registry.Benchmark("toy-broken", hub_id="acme/wds_broken"))
    synonyms = tmp_path / "synonyms.json"
    synonyms.write_text(json.dumps({"cat": ["kitty", "feline"], "coffee": ["espresso"], "astronaut": ["spaceman"]}))
    out = tmp_path / "out"
    argv = ["eval", "--benchmarks", "toy-wds,toy-broken", "--model", str(tiny_clip_dir), "--out", str(out)]
    argv += ["--synonyms", str(synonyms), "--metrics", "local_center", "--batch-size", "2"]
    with fake_hub({REPO: replica(samples), "acme/wds_broken": broken}):
        assert main([*argv, "--shots", "1", "--seeds", "1"]) == 0
    summary = json.loads((out / "results.json").read_text())
    rec = summary["benchmarks"]["toy-wds"]
    assert rec["samples"] == 5 and rec["classes"] == 4 and rec["random_weights"] is False
    assert rec["dataset_id"] == REPO and rec["dataset_revision"] == COMMIT  # the commit resolved, not "main"
    assert {"label", "ensemble"} < set(rec["methods"]) and any(m.endswith("/local_center") for m in rec["methods"])
    assert "error" not in rec["fewshot"] and set(rec["fewshot"]["summary"]) == {"1"}
    assert len(json.loads((out / rec["files"]["predictions"]).read_text())["labels"]) == 5
    assert (
        "test/1.tar (700 bytes, not whole 512-byte tar blocks) is not a" in summary["benchmarks"]["toy-broken"]["error"]
    )


def test_train_shards_are_streamed_only_until_every_class_has_enough(hub_home):
    """Few-shot support from a Hub train split: shards are downloaded one at a time, in a seeded order, until every
    class has the samples asked for; the rest of the split is never fetched."""
    one_each = [(name, label) for name, label in (("chelsea", 0), ("coffee", 1), ("astronaut", 2), ("rocket", 3))]
    train = split_samples([("png", one_each)] * 4)  # 4 shards, each with one sample of every class
    samples = {"test": split_samples(TEST_SHARDS), "train": train}
    bench = registry.Benchmark("toy-wds", hub_id=REPO)
    with fake_hub({REPO: replica(samples)}) as hub:
        test = registry.load(bench)
        before = len(hub.requests)
        two = registry.load_train(bench, test, per_class=2, seed=5)
        fetched = [p for _, p in hub.requests[before:] if "/train/" in p and p.endswith(".tar")]
    assert len(set(fetched)) == 2 and len(two.labels) == 8 and sorted(set(two.labels)) == [0, 1, 2, 3]
    with fake_hub({REPO: replica(samples)}):
        again = registry.load_train(bench, test, per_class=2, seed=5)
        whole = registry.load_train(bench, test)
    assert again.fingerprint == two.fingerprint and again.labels == two.labels  # the same on every process
    assert len(whole.labels) == 16


def test_tar_members_named_outside_the_cache_are_never_written_there(hub_home, tmp_path):
    image = photo_bytes("chelsea", "png")
    escape = tmp_path / "escaped"
    members = []
    for i, key in enumerate(["../../../../escaped/s0", str(escape / "s1"), "ok/../../s2", "s3"]):
        members += [(f"{key}.png", image), (f"{key}.cls", str(i % 2).encode())]
    files = replica({"test": []}, classnames="cat\ndog\n")
    files["test/0.tar"] = tar_bytes(members)
    with fake_hub({REPO: files}):
        try:
            data = registry.load(registry.Benchmark("toy-wds", hub_id=REPO))
        except EvalError:
            data = None  # refusing the shard is fine too; writing outside the cache is not
    assert not escape.exists()
    assert not any((d / "escaped").exists() for d in [Path.cwd(), *Path.cwd().parents, *tmp_path.parents])
    written = {p.resolve() for p in tmp_path.rglob("*")}
    assert all(p.is_relative_to(tmp_path.resolve()) for p in written)
    assert not any(p.name.startswith(("s0.", "s1.", "s2.")) for p in written)
    if data is not None:
        assert len(data.images) == len(data.labels) <= 4
