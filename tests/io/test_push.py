"""Pushes to the (fake) Hub: a space and its few-shot adapter in one commit, which also deletes the files earlier
pushes wrote and this one replaces (a stale adapter, renamed files), never a user's own; a mismatched adapter is
refused before anything is pushed, and when it is loaded from the Hub with another space."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from helpers import SYNONYMS, fake_hub

from s3_hf.errors import AdapterMismatchError, ArtifactNotFoundError, ModelMismatchError
from s3_hf.fewshot import SSP_CONFIG_NAME, SSP_TENSORS_NAME, SSPAdapter
from s3_hf.io.hub import MANIFEST_NAME, manifest_text, read_manifest
from s3_hf.space.artifact import CARD_NAME, CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME, SynonymSpace

SPACE_FILES = {CARD_NAME, CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME}
ADAPTER_FILES = {SSP_CONFIG_NAME, SSP_TENSORS_NAME}
TOKEN = "hf_fake"


def _fit(space: SynonymSpace, seed: int = 0) -> SSPAdapter:
    from s3_hf.fewshot import fit_for_space

    torch.manual_seed(seed)
    dim = space.config.embedding_dim
    glob = torch.nn.functional.normalize(torch.randn(6, dim), dim=-1)
    local = torch.nn.functional.normalize(torch.randn(6, 4, dim), dim=-1)
    return fit_for_space(space, [0, 1, 2], glob, local, [0, 1, 2, 0, 1, 2], "local_center")


@pytest.fixture(scope="module")
def adapter(small_space):
    return _fit(small_space)


@pytest.fixture(scope="module")
def rebuilt(tiny_model, tiny_clip_dir, small_space):
    """The small space rebuilt with fewer synonyms: the same classes and model, other tensors."""
    from s3_hf import build_synonym_space

    fewer = {label: words[:2] for label, words in SYNONYMS.items()}
    space = build_synonym_space(*tiny_model, list(SYNONYMS), fewer, base_model=str(tiny_clip_dir))
    assert space.labels == small_space.labels and space.tensors_hash() != small_space.tensors_hash()
    return space


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _manifest(repo: dict[str, bytes]) -> dict[str, str]:
    files = read_manifest(repo[MANIFEST_NAME].decode())
    assert files is not None
    return files


def test_a_space_and_its_adapter_are_pushed_in_one_commit(small_space, adapter):
    with fake_hub({}) as hub:
        url = small_space.push_to_hub("org/pets", token=TOKEN, adapter=adapter)
    (commit,) = hub.commits
    assert "/commit/" in url
    assert set(commit["files"]) >= SPACE_FILES | ADAPTER_FILES | {MANIFEST_NAME} and commit["deleted"] == []
    assert commit["summary"] == "Upload S^3 synonym space and its few-shot adapter"
    manifest = _manifest(hub.repos["org/pets"])
    assert set(manifest) == set(commit["files"]) - {MANIFEST_NAME}
    assert {manifest[n] for n in ADAPTER_FILES} == {"few-shot adapter"}
    assert {manifest[n] for n in SPACE_FILES} == {"synonym space"}


def test_re_pushing_a_rebuilt_space_deletes_the_stale_adapter_in_its_one_commit(
    small_space, adapter, rebuilt, hub_cache
):
    with fake_hub({"org/pets": {"notes.md": b"my own notes"}}) as hub:
        small_space.push_to_hub("org/pets", token=TOKEN, adapter=adapter)
        assert ADAPTER_FILES <= set(hub.repos["org/pets"])
        rebuilt.push_to_hub("org/pets", token=TOKEN)
        repo = hub.repos["org/pets"]
        with pytest.raises(ArtifactNotFoundError, match="few-shot adapter"):  # gone from the Hub
            SSPAdapter.from_pretrained("org/pets", cache_dir=hub_cache)
        loaded = SynonymSpace.from_pretrained("org/pets", cache_dir=hub_cache)
    _, second = hub.commits
    assert sorted(second["deleted"]) == sorted(ADAPTER_FILES) and not ADAPTER_FILES & set(repo)
    assert repo["notes.md"] == b"my own notes" and "notes.md" not in _manifest(repo)  # a user's file stays
    assert set(_manifest(repo)) == set(second["files"]) - {MANIFEST_NAME}
    assert loaded.tensors_hash() == rebuilt.tensors_hash()


def test_files_an_earlier_push_wrote_under_another_name_are_deleted(small_space):
    earlier = {"s3_old_name.json": "synonym space", "README.md": "synonym space"}
    repo = {
        MANIFEST_NAME: manifest_text(earlier).encode(),
        "s3_old_name.json": b"{}",
        "README.md": b"old card",
        "data/mine.csv": b"a,b\n",  # never recorded: the user's
    }
    with fake_hub({"org/pets": repo}) as hub:
        small_space.push_to_hub("org/pets", token=TOKEN)
    (commit,) = hub.commits
    assert commit["deleted"] == ["s3_old_name.json"]
    assert "s3_old_name.json" not in repo and repo["data/mine.csv"] == b"a,b\n" and repo["README.md"] != b"old card"


def test_a_repo_pushed_before_manifests_loses_its_stale_adapter_and_keeps_the_rest(small_space, adapter, tmp_path):
    old = small_space.save_pretrained(tmp_path / "old")
    adapter.save_pretrained(old)
    repo = {p.name: p.read_bytes() for p in old.iterdir() if p.is_file()}
    repo["LICENSE"] = b"mine"
    with fake_hub({"org/pets": repo}) as hub:
        small_space.push_to_hub("org/pets", token=TOKEN)
    (commit,) = hub.commits
    assert sorted(commit["deleted"]) == sorted(ADAPTER_FILES)
    assert repo["LICENSE"] == b"mine" and MANIFEST_NAME in repo


def test_an_unreadable_manifest_falls_back_to_the_files_earlier_releases_wrote(small_space, caplog):
    repo = {MANIFEST_NAME: b"not json", SSP_CONFIG_NAME: b"{}", SSP_TENSORS_NAME: b"", "other.bin": b"x"}
    with fake_hub({"org/pets": repo}) as hub, caplog.at_level(logging.WARNING, logger="s3_hf.io.hub"):
        small_space.push_to_hub("org/pets", token=TOKEN)
    assert sorted(hub.commits[0]["deleted"]) == sorted(ADAPTER_FILES) and repo["other.bin"] == b"x"
    assert "not a manifest" in caplog.text


def test_an_adapter_pushed_alone_replaces_only_the_adapter(small_space, adapter):
    with fake_hub({}) as hub:
        small_space.push_to_hub("org/pets", token=TOKEN)
        adapter.push_to_hub("org/pets", token=TOKEN)
    _, second = hub.commits
    repo = hub.repos["org/pets"]
    assert set(second["files"]) == ADAPTER_FILES | {MANIFEST_NAME} and second["deleted"] == []
    assert SPACE_FILES | ADAPTER_FILES <= set(repo) and SPACE_FILES | ADAPTER_FILES <= set(_manifest(repo))


def test_a_mismatched_adapter_is_refused_before_anything_is_pushed(rebuilt, adapter):
    with fake_hub({}) as hub:
        with pytest.raises(AdapterMismatchError, match="s3 fewshot") as err:
            rebuilt.push_to_hub("org/pets", token=TOKEN, adapter=adapter)
    assert isinstance(err.value, ModelMismatchError) and hub.requests == []


def test_an_adapter_without_its_space_hash_is_pushed_with_a_warning(small_space, adapter, tmp_path, caplog):
    folder = adapter.save_pretrained(tmp_path / "old")
    meta = json.loads((folder / SSP_CONFIG_NAME).read_text())
    del meta["info"]["space_sha256"]  # as an older s3-hf wrote it
    (folder / SSP_CONFIG_NAME).write_text(json.dumps(meta))
    old = SSPAdapter.from_pretrained(folder)
    with fake_hub({}) as hub, caplog.at_level(logging.WARNING, logger="s3_hf.fewshot.adapter"):
        small_space.push_to_hub("org/pets", token=TOKEN, adapter=old)
    assert ADAPTER_FILES <= set(hub.commits[0]["files"]) and "does not record the space" in caplog.text


def test_an_adapter_from_the_hub_is_refused_on_another_space(small_space, adapter, rebuilt, s3_pipe, photos, hub_cache):
    image = str(photos[0])
    with fake_hub({}):
        small_space.push_to_hub("org/pets", token=TOKEN, adapter=adapter)
        rebuilt.push_to_hub("org/pets-rebuilt", token=TOKEN)
        kwargs = {"support": "org/pets", "metric": "local_center"}
        assert s3_pipe(image, synonym_space="org/pets", **kwargs)  # the pair as pushed works from the Hub
        with pytest.raises(AdapterMismatchError, match="Refit it on this space"):
            s3_pipe(image, synonym_space="org/pets-rebuilt", **kwargs)
        with pytest.raises(AdapterMismatchError):
            s3_pipe(image, synonym_space=rebuilt, **kwargs)


def test_s3_push_sends_the_folder_and_its_adapter_in_one_commit(small_space, adapter, rebuilt, tmp_path, capsys):
    from s3_hf.cli import main

    folder = small_space.save_pretrained(tmp_path / "space")
    adapter.save_pretrained(folder)
    with fake_hub({}) as hub:
        assert main(["push", str(folder), "org/pets", "--token", TOKEN]) == 0
        assert "and its few-shot adapter" in capsys.readouterr().out
        rebuilt.save_pretrained(folder, overwrite=True)  # rebuilt in place: the adapter there is removed with it
        assert main(["push", str(folder), "org/pets", "--token", TOKEN]) == 0
    first, second = hub.commits
    assert ADAPTER_FILES <= set(first["files"]) and sorted(second["deleted"]) == sorted(ADAPTER_FILES)
    assert not ADAPTER_FILES & set(hub.repos["org/pets"])
