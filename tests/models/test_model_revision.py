"""The Hub commit a model was read at is recorded (transformers 5 no longer keeps it on the config), so a space built
on a Hub model names the revision it was built with, and loading it elsewhere (with or without s3-hf) gets that
model, not whatever ``main`` holds then."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import COMMIT, SYNONYMS, fake_hub, folder_files

REPO = "acme/tiny-clip"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hub cache of this test's own (never the user's)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_a_hub_model_records_its_commit_and_spaces_built_on_it_too(tiny_clip_dir, hub_cache):
    from transformers import pipeline

    import s3_hf
    from s3_hf.engine.core import S3Engine

    with fake_hub({REPO: folder_files(tiny_clip_dir)}):
        engine = S3Engine.from_pretrained(REPO, device="cpu")
        piped = pipeline(s3_hf.TASK, model=REPO)  # transformers loads the model; the engine reads the cache
    assert engine.encoder.revision == COMMIT and piped.engine.encoder.revision == COMMIT
    space = engine.build_space(list(SYNONYMS), synonyms=SYNONYMS)
    assert (space.config.base_model, space.config.base_model_revision) == (REPO, COMMIT)


def test_a_local_folder_has_no_revision(tiny_clip_dir):
    from s3_hf.engine.core import S3Engine
    from s3_hf.models.loading import resolved_commit

    assert S3Engine.from_pretrained(tiny_clip_dir, device="cpu").encoder.revision is None
    assert resolved_commit(str(tiny_clip_dir)) is None and resolved_commit("not a repo id") is None


def test_a_hub_cache_snapshot_folder_is_recorded_as_its_repo_and_commit(tiny_clip_dir, hub_cache):
    """Offline users load the cache's folder: a space built on it names the repo and the commit, so it runs from the
    Hub elsewhere, and the folder still matches the space it built."""
    from huggingface_hub import snapshot_download
    from transformers import pipeline

    import s3_hf
    from s3_hf.engine.core import S3Engine
    from s3_hf.models.loading import hub_snapshot

    with fake_hub({REPO: folder_files(tiny_clip_dir)}):
        folder = snapshot_download(REPO)
    assert hub_snapshot(Path(folder)) == (REPO, COMMIT)
    engine = S3Engine.from_pretrained(folder, device="cpu")
    piped = pipeline(s3_hf.TASK, model=folder)
    assert (engine.encoder.name, engine.encoder.revision) == (REPO, COMMIT)
    assert (piped.engine.encoder.name, piped.engine.encoder.revision) == (REPO, COMMIT)
    space = engine.build_space(list(SYNONYMS), synonyms=SYNONYMS)
    assert (space.config.base_model, space.config.base_model_revision) == (REPO, COMMIT)
    space.check_model(engine.encoder)  # the folder is still the model the space was built with
    assert piped((next(iter(Path(folder).glob("*.json"))).parent.as_posix() and None) or _image(), synonym_space=space)
    assert hub_snapshot(tiny_clip_dir) is None and hub_snapshot(Path(folder).parent) is None


def _image():
    from PIL import Image

    return Image.new("RGB", (40, 30), (200, 30, 30))
