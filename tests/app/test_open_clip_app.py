"""The Gradio app over an open_clip checkpoint (``S3_MODEL`` set to an open_clip folder). Needs the ``open_clip``
extra (which needs torchvision)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

try:
    import open_clip  # noqa: F401
except ImportError as _err:  # the extra is optional; CI runs this file in an environment that has it
    if os.environ.get("S3_REQUIRE_OPEN_CLIP") == "1":
        raise
    pytest.skip(
        f'open_clip is not installed ({_err}); pip install "s3-hf[open_clip]" to run these tests',
        allow_module_level=True,
    )

from helpers import make_tiny_open_clip

from s3_hf.app.handlers import AppHandlers
from s3_hf.app.settings import AppSettings
from s3_hf.app.ui import create_app, load_engine


def test_app_serves_an_open_clip_model(tmp_path, photos):
    """S^3 and the label-only scores, side by side, from an engine the app's own launcher loads."""
    from gradio.utils import get_upload_folder

    oc_dir = make_tiny_open_clip(tmp_path / "tiny")
    settings = AppSettings.from_env({"S3_MODEL": str(oc_dir)})
    engine = load_engine(settings)
    assert engine.family.family == "open_clip"
    create_app(engine, settings).close()
    upload = Path(get_upload_folder()) / "open-clip-test"  # the app reads uploaded files only
    upload.mkdir(parents=True, exist_ok=True)
    image = str(shutil.copy(photos[0], upload / photos[0].name))
    handlers = AppHandlers(engine, settings)
    s3, clip, rows, _figure, session = handlers.classify(
        image, "cat, dog, airplane", "", "local_center", [["cat", "kitty"]], 3
    )
    assert session is None  # no adaptation asked for: no session state
    assert set(s3) == set(clip) == {"cat", "dog", "airplane"} and rows
