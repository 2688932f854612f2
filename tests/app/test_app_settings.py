"""The app's settings, read from the environment in one place and checked there; importing the app does no work."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from s3_hf.app.settings import AppSettings, AppSettingsError, local_spaces
from s3_hf.errors import InvalidConfigError


def test_defaults_and_every_variable_read():
    assert AppSettings.from_env({}) == AppSettings()
    env = {
        "S3_MODEL": "org/clip",
        "S3_SPACE": "org/space",
        "S3_MAX_LABELS": "5",
        "S3_MAX_SYNONYM_ROWS": "7",
        "S3_MAX_SYNONYMS": "3",
        "S3_MAX_TEXT": "40",
        "S3_MAX_SIDE": "512",
        "S3_CONCURRENCY": "4",
        "S3_MAX_UPLOAD_MB": "1.5",
        "S3_MAX_SPACE_MB": "2",
        "S3_MAX_SESSIONS": "9",
        "S3_SESSION_MINUTES": "0.5",
    }
    settings = AppSettings.from_env(env)
    assert (settings.model, settings.default_space, settings.local_spaces) == ("org/clip", "org/space", frozenset())
    assert (settings.max_labels, settings.max_synonym_rows, settings.max_synonyms, settings.max_text) == (5, 7, 3, 40)
    assert (settings.max_side, settings.concurrency, settings.max_space_bytes) == (512, 4, 2 * 2**20)
    assert (settings.max_sessions, settings.session_seconds) == (9, 30.0)
    assert settings.launch_options() == {"max_file_size": int(1.5 * 2**20), "state_session_capacity": 9}


@pytest.mark.parametrize(
    ("name", "raw"),
    [("S3_MAX_LABELS", "many"), ("S3_MAX_LABELS", "2.5"), ("S3_CONCURRENCY", "0"), ("S3_MAX_UPLOAD_MB", "nan")],
)
def test_a_bad_variable_is_named(name, raw):
    with pytest.raises(AppSettingsError, match=f"{name}={raw!r} is not a positive"):
        AppSettings.from_env({name: raw})


def test_the_librarys_limits_are_checked_at_start_up_and_replace_the_apps_own(monkeypatch, caplog):
    monkeypatch.setenv("S3_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(InvalidConfigError, match="S3_MAX_IMAGE_PIXELS"):
        AppSettings.from_env({})
    monkeypatch.delenv("S3_MAX_IMAGE_PIXELS")
    with caplog.at_level(logging.WARNING, logger="s3_hf.space_app"):
        AppSettings.from_env({"S3_MAX_MEGAPIXELS": "64"})
    assert "S3_MAX_IMAGE_PIXELS" in caplog.text


def test_fields_are_validated_when_built_directly():
    for bad in ({"max_labels": 0}, {"max_text": 2.5}, {"concurrency": True}, {"max_space_mb": float("inf")}):
        with pytest.raises(AppSettingsError, match=next(iter(bad))):
            AppSettings(**bad)
    with pytest.raises(AppSettingsError, match="model"):
        AppSettings(model=" ")


def test_the_allow_list_is_read_from_s3_local_spaces(tmp_path):
    (tmp_path / "shelf" / "a").mkdir(parents=True)
    (tmp_path / "shelf" / ".hidden").mkdir()
    entries = os.pathsep.join([str(tmp_path / "pets"), f"{tmp_path / 'shelf'}/*"])
    settings = AppSettings.from_env({"S3_LOCAL_SPACES": entries, "S3_SPACE": str(tmp_path / "default")})
    expected = {str(tmp_path / "pets"), str(tmp_path / "shelf" / "a"), str(tmp_path / "default")}
    assert settings.local_spaces == local_spaces(entries, str(tmp_path / "default")) == expected


def test_importing_the_app_reads_nothing_loads_no_model_and_builds_no_ui():
    """Broken settings and a model that does not exist: importing every app module still works, and pulls in
    neither the evaluation nor the CLI."""
    code = (
        "import sys\n"
        "import s3_hf.app.ui, s3_hf.app.handlers, s3_hf.app.inputs, s3_hf.app.spaces, s3_hf.app.figures\n"
        "faces = [m for m in sys.modules if m.startswith(('s3_hf.evaluation', 's3_hf.cli'))]\n"
        "assert not faces, faces\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "print('ok')\n"
    )
    env = {**os.environ, "S3_MODEL": "/no/such/model", "S3_MAX_LABELS": "bad", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_launcher_stops_with_the_settings_message(monkeypatch):
    from s3_hf.app.ui import launch

    monkeypatch.setenv("S3_MAX_TEXT", "-1")
    with pytest.raises(SystemExit, match="S3_MAX_TEXT='-1' is not a positive int"):
        launch()
    monkeypatch.delenv("S3_MAX_TEXT")
    monkeypatch.setenv("S3_MODEL", "/no/such/model")
    with pytest.raises(SystemExit, match="Set S3_MODEL"):
        launch()
