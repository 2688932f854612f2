"""Leftovers of the second hardening round: `s3 inspect` without torch, prerequisites of `s3 segment` checked
before any image, eval's figure written atomically, and the temporary files of killed writes removed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from s3_hf.errors import ArtifactCorruptError, ArtifactError, ArtifactShapeError
from s3_hf.space.artifact import CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME, SynonymSpace
from s3_hf.space.files import read_summary

LIGHT = (
    "import sys; from s3_hf.cli import main; rc = main(sys.argv[1:]); "
    "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; "
    "assert not heavy, heavy; sys.exit(rc)"
)


@pytest.fixture
def saved(small_space, tmp_path) -> Path:
    return small_space.save_pretrained(tmp_path / "space")


def test_importing_the_cli_imports_neither_torch_nor_transformers():
    code = "import sys, s3_hf.cli; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_inspect_runs_without_importing_torch(saved, extra):
    res = subprocess.run(
        [sys.executable, "-c", LIGHT, "inspect", str(saved), *extra], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    assert str(saved.parent) not in res.stderr
    if extra:
        assert json.loads(res.stdout)["classes"] == 3
    else:
        assert res.stdout.startswith("Synonym space for ") and "dropped (why)" in res.stdout


def test_light_summary_equals_the_loaded_spaces_summary(saved, capsys):
    import torch

    from s3_hf.cli import main

    loaded = SynonymSpace.from_pretrained(saved)
    light = read_summary(saved)
    assert light == loaded.summary()
    # and each count is what the tensors hold
    t = loaded.tensors
    sizes = t.simplex_indptr.diff()
    assert light.points == t.points.shape[0] and light.kept == int(t.kept.sum())
    assert light.simplices == {int(k): int((sizes == k).sum()) for k in torch.unique(sizes)}
    assert len(light.simplices) > 1  # a space with edges and triangles, not only single points
    assert main(["inspect", str(saved), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(loaded.summary().to_dict()))


def _truncate(folder: Path) -> None:
    data = (folder / TENSORS_NAME).read_bytes()
    (folder / TENSORS_NAME).write_bytes(data[: len(data) // 2])


def _flip_one_byte(folder: Path) -> None:
    data = bytearray((folder / TENSORS_NAME).read_bytes())
    data[-1] ^= 1
    (folder / TENSORS_NAME).write_bytes(bytes(data))


def _flip_a_kept_flag(folder: Path) -> None:
    syn = json.loads((folder / SYNONYMS_NAME).read_text())
    syn["classes"][0]["concepts"][0]["kept"] = False
    (folder / SYNONYMS_NAME).write_text(json.dumps(syn))


def _drop_a_class(folder: Path) -> None:
    syn = json.loads((folder / SYNONYMS_NAME).read_text())
    syn["classes"].pop()
    (folder / SYNONYMS_NAME).write_text(json.dumps(syn))


DAMAGE = {
    "no config": (lambda f: (f / CONFIG_NAME).unlink(), ArtifactError),
    "config not JSON": (lambda f: (f / CONFIG_NAME).write_text("{"), ArtifactCorruptError),
    "config nested too deep": (lambda f: (f / CONFIG_NAME).write_text("[" * 100_000), ArtifactCorruptError),
    "synonyms a list": (lambda f: (f / SYNONYMS_NAME).write_text("[]"), ArtifactCorruptError),
    "tensors truncated": (_truncate, ArtifactCorruptError),
    "tensors changed": (_flip_one_byte, ArtifactCorruptError),
    "kept flag edited": (_flip_a_kept_flag, ArtifactShapeError),
    "a class missing": (_drop_a_class, ArtifactShapeError),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_inspect_reports_a_damaged_space_as_loading_does(saved, case):
    damage, error = DAMAGE[case]
    damage(saved)
    with pytest.raises(error) as light:
        read_summary(saved)
    with pytest.raises(error) as full:
        SynonymSpace.from_pretrained(saved)
    assert str(light.value) == str(full.value)
    res = subprocess.run([sys.executable, "-c", LIGHT, "inspect", str(saved)], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and res.stderr.startswith("error: ")


# ------------------------------------------------------------------------------ s3 segment's background class
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
    from s3_hf.engine.core import S3Engine
    from s3_hf.errors import BackgroundMissingError
    from s3_hf.segmentation.options import SegmentOptions

    engine = S3Engine.from_pretrained(str(tiny_clip_dir))
    request = engine.request(synonym_space=str(saved))
    with pytest.raises(BackgroundMissingError, match="background class"):
        engine.segment("never-read.png", request, SegmentOptions(background_threshold=0.5))


# ------------------------------------------------------------------------------------ eval's figure, atomically
SUMMARY = {"benchmarks": {"tiny": {"methods": {"label": {"top1": 0.5}, "local_center": {"top1": 0.6}}}}}


def test_eval_gain_figure_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import matplotlib.figure

    from s3_hf.evaluation.report import gain_figure
    from s3_hf.evaluation.results import RunResult

    path = tmp_path / "gains.png"
    assert gain_figure(RunResult.from_dict(SUMMARY), path) == path
    first = path.read_bytes()
    assert first.startswith(b"\x89PNG\r\n\x1a\n")  # a PNG although matplotlib wrote it under a .tmp name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gains.png"]

    real = matplotlib.figure.Figure.savefig

    def killed_half_way(self, fname, **kwargs):
        real(self, fname, **kwargs)
        Path(fname).write_bytes(Path(fname).read_bytes()[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        other = {"benchmarks": {"tiny": {"methods": {"label": {"top1": 0.1}, "x": {"top1": 0.9}}}}}
        gain_figure(RunResult.from_dict(other), path)
    assert path.read_bytes() == first  # the old figure stays whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gains.png"]


# ----------------------------------------------------------------------- temporary files of a killed write_files
KILLED_WRITE = """
import os, signal, sys
from s3_hf.io.files import write_files

def write(path):
    path.write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)

write_files(sys.argv[1], {"results.json": write})
"""


def test_write_files_removes_the_temporary_files_of_killed_writers_only(tmp_path):
    import os
    import time

    from s3_hf.io import files as fileio

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "results.json").write_text("old")
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(folder)], capture_output=True, check=False)
    assert killed.returncode == -9
    left = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".results.json.")  # what a kill leaves

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live_tmp = folder / f".cache.json.{live.pid}-{fileio._HOST}-0123abcd.tmp"  # a write still under way
        live_tmp.write_text("in progress")
        legacy = folder / ".old.json.k3_9zq1x.tmp"  # an older s3-hf's temp name: removed by age alone
        legacy.write_text("x")
        hour_ago = time.time() - 2 * 3600
        os.utime(legacy, (hour_ago, hour_ago))
        recent_legacy = folder / ".new.json.a1b2c3d4.tmp"
        recent_legacy.write_text("x")
        dead_dir = folder / f".space.{killed_pid()}-{fileio._HOST}-0123abcd.tmp"  # not a file: left alone
        dead_dir.mkdir()
        user = [folder / "notes.tmp", folder / ".notes.tmp", folder / "notes.txt"]
        for p in user:
            p.write_text("mine")

        fileio.write_files(folder, {"results.json": lambda p: p.write_text("new")})

        remaining = {p.name for p in folder.iterdir()}
        assert left[0] not in remaining and legacy.name not in remaining
        assert {live_tmp.name, recent_legacy.name, dead_dir.name, *(p.name for p in user)} <= remaining
        assert (folder / "results.json").read_text() == "new" and live_tmp.read_text() == "in progress"
    finally:
        live.kill()
        live.wait()


def killed_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


# ------------------------------------------------------------------------------------ what held up: SIGINT
def test_sigint_during_a_command_is_one_line_and_rc_130(saved):
    code = (
        "import os, signal, sys; import s3_hf.space.files as sf; from s3_hf.cli import main\n"
        "sf.read_summary = lambda *a, **k: os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.exit(main(['inspect', sys.argv[1]]))"
    )
    res = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True, check=False)
    assert res.returncode == 130 and res.stderr == "interrupted\n" and res.stdout == ""
