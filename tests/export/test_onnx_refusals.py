"""What ``s3 export onnx`` refuses, with one-line typed errors and before any heavy work: metrics whose head does not
export, families that do not export, a bad ``--out`` or ``--space``, and a missing onnx extra. None of these tests
needs onnx installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from s3_hf.cli import main
from s3_hf.errors import ArtifactError, InvalidConfigError, S3Error, UnsupportedModelError
from s3_hf.export import EXPORTABLE_METRICS, export_onnx
from s3_hf.export.onnx import check_exportable, require_exporter
from s3_hf.models.families import FamilyInfo
from s3_hf.options import METRIC_NAMES

REFUSED = [m for m in METRIC_NAMES if m not in EXPORTABLE_METRICS]


def test_the_required_metrics_export():
    assert {"label", "global_center", "local_center"} <= set(EXPORTABLE_METRICS)
    assert REFUSED == ["nearest_simplex", "local_center_knn"]


@pytest.mark.parametrize("metric", REFUSED)
def test_other_metrics_are_refused_naming_those_that_export(small_space, tmp_path, metric):
    with pytest.raises(InvalidConfigError) as err:
        export_onnx(small_space, tmp_path / "onnx", metric=metric)
    assert metric in str(err.value) and all(m in str(err.value) for m in EXPORTABLE_METRICS)
    assert not (tmp_path / "onnx").exists()


def test_families_that_do_not_export_are_refused(tmp_path):
    from helpers import make_tiny_family

    from s3_hf.engine.core import S3Engine
    from s3_hf.export.write import input_shape

    open_clip_like = SimpleNamespace(family=FamilyInfo("open_clip"), name="hf-hub:org/model")
    with pytest.raises(UnsupportedModelError, match="vision towers are not transformers models"):
        check_exportable(open_clip_like)
    siglip2 = S3Engine.from_pretrained(str(make_tiny_family(tmp_path / "s2", "siglip2")), device="cpu").encoder
    with pytest.raises(UnsupportedModelError, match=r"siglip2 models .* do not export") as err:
        check_exportable(siglip2)
    assert "clip" in str(err.value) and "siglip," in str(err.value)
    with pytest.raises(UnsupportedModelError, match="pixel_attention_mask"):
        input_shape(siglip2)  # why: its images need more than pixel_values


def test_a_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript now raises ImportError
    with pytest.raises(S3Error, match=r'pip install "s3-hf\[onnx\]"'):
        require_exporter()


def test_a_torch_without_the_new_exporter_is_refused(monkeypatch):
    import types

    import torch

    for name in ("onnx", "onnxscript", "onnxruntime"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")
    with pytest.raises(S3Error, match=r"needs torch 2\.6 or later .* pip install -U torch"):
        require_exporter()


def test_out_must_be_an_empty_folder(small_space, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not empty: pass --overwrite"):
        export_onnx(small_space, tmp_path / "full")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="is a file"):
        export_onnx(small_space, tmp_path / "file")
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--space", "no/such-space-here"], "no/such-space-here"),
        (["--metric", "nearest_simplex"], "local_center"),
        (["--metric", "local_center_knn"], "does not export to ONNX"),
    ],
)
def test_cli_errors_are_one_line(saved, tmp_path, capsys, args, expected):
    argv = ["export", "onnx", "--space", str(saved), "--out", str(tmp_path / "onnx"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err and expected in err
    assert not (tmp_path / "onnx").exists()


def test_cli_refuses_an_existing_out_before_loading_anything(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    argv = ["export", "onnx", "--space", "no/such-space", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "not empty: pass --overwrite" in err and "\n" not in err


def test_importing_the_export_loads_neither_torch_nor_onnx():
    code = (
        "import sys, s3_hf.export, s3_hf.cli.export; "
        "bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'onnxscript') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)


def test_a_damaged_export_folder_is_reported(tmp_path):
    from s3_hf.errors import ArtifactCorruptError
    from s3_hf.export import read_export

    with pytest.raises(ArtifactError, match="not an ONNX export"):
        read_export(tmp_path)
    for name, text in (("model.onnx", ""), ("labels.json", '["cat"]'), ("s3_onnx.json", '{"metric": "label"}')):
        (tmp_path / name).write_text(text)
    with pytest.raises(ArtifactCorruptError, match="lacks"):
        read_export(tmp_path)
    (tmp_path / "s3_onnx.json").write_text("{not json")
    with pytest.raises(ArtifactCorruptError):
        read_export(tmp_path)
