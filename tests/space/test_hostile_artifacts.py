"""Hostile and careless use of artifacts: concurrent saves, kills mid-save, leftovers, damaged or mixed files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import folder_files

from s3_hf.errors import (
    ArtifactCorruptError,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactShapeError,
    FormatVersionError,
)
from s3_hf.io import files as fileio
from s3_hf.space.artifact import CARD_NAME, CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME, SynonymSpace
from s3_hf.space.remote import HUB_CODE_NAME, MODEL_CONFIG_NAME

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = (CARD_NAME, CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME, MODEL_CONFIG_NAME, HUB_CODE_NAME)
ROUNDS = 40
DEAD_PID = 2**22 + 1  # above Linux's largest pid_max: no process has it

# Two writers save their space into the same folder each round, started together by a file barrier.
WRITER = """
import sys, time
from pathlib import Path
from s3_hf.io import files as fileio
from s3_hf.space.artifact import SynonymSpace
src, root, me, rounds, mode = sys.argv[1:]
if mode == "two renames":
    fileio._RENAMEAT2 = None
space, root, other = SynonymSpace.from_pretrained(src), Path(root), 1 - int(me)
for r in range(int(rounds)):
    (root / f"ready.{r}.{me}").touch()
    while not (root / f"ready.{r}.{other}").exists():
        time.sleep(0.0005)
    space.save_pretrained(root / f"r{r}", overwrite=True)
"""

# Saves a space over ``target`` and dies (os._exit, like kill -9: no cleanup runs) at ``point``.
KILLED = """
import os, sys
from s3_hf.io import files as fileio
from s3_hf.space.artifact import SynonymSpace
src, target, point = sys.argv[1:]
space = SynonymSpace.from_pretrained(src)
if point == "between renames":
    fileio._RENAMEAT2 = None
    real = os.replace
    fileio.os.replace = lambda a, b: os._exit(9) if str(a).endswith(".tmp") else real(a, b)
else:  # before the swap, with the new folder complete beside the old one
    fileio._exchange = lambda a, b: os._exit(9)
space.save_pretrained(target, overwrite=True)
"""


def run(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def two_spaces(small_space, tiny_model, tiny_clip_dir, tmp_path_factory):
    """Two different spaces saved once each: (folder, artifact bytes) per space."""
    from s3_hf import build_synonym_space

    other = build_synonym_space(*tiny_model, ["cat", "dog"], {"cat": ["kitty"]}, base_model=str(tiny_clip_dir))
    root = tmp_path_factory.mktemp("two")
    out = []
    for name, space in (("a", small_space), ("b", other)):
        folder = space.save_pretrained(root / name)
        out.append((folder, {k: v for k, v in folder_files(folder).items() if k in ARTIFACT}))
    assert out[0][1] != out[1][1]
    return out


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


# ------------------------------------------------------------------------------------ whole-artifact swaps
@pytest.mark.parametrize("mode", ["exchange", "two renames"])
def test_concurrent_saves_always_leave_one_whole_artifact(two_spaces, tmp_path, mode):
    if mode == "exchange" and fileio._RENAMEAT2 is None:
        pytest.skip("this system has no renameat2; the two-rename path is tested on its own")
    (a, a_files), (b, b_files) = two_spaces
    for r in range(1, ROUNDS, 2):  # odd rounds replace an existing artifact that keeps a user's note
        folder = SynonymSpace.from_pretrained(a).save_pretrained(tmp_path / f"r{r}")
        (folder / "notes.txt").write_text("mine")
    writers = [run(WRITER, src, tmp_path, me, ROUNDS, mode) for me, src in enumerate((a, b))]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    for r in range(ROUNDS):
        folder = tmp_path / f"r{r}"
        files = {k: v for k, v in folder_files(folder).items() if k in ARTIFACT}
        assert files in (a_files, b_files), f"round {r} left a mix of both artifacts"
        SynonymSpace.from_pretrained(folder)
        assert sorted(os.listdir(folder)) == sorted([*ARTIFACT, *(["notes.txt"] if r % 2 else [])])
        assert r % 2 == 0 or (folder / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("point", ["between renames", "before the swap"])
def test_a_kill_mid_save_keeps_the_old_artifact_and_the_next_write_cleans_up(two_spaces, tmp_path, point):
    (a, a_files), (b, b_files) = two_spaces
    target = SynonymSpace.from_pretrained(a).save_pretrained(tmp_path / "space")
    assert run(KILLED, b, target, point).wait(timeout=60) == 9
    assert leftovers(tmp_path, "space")  # the killed writer's folders are there
    assert target.is_dir() == (point == "before the swap")  # two renames: killed with the target moved away
    loaded = SynonymSpace.from_pretrained(target)  # a load puts the old artifact back
    assert {k: v for k, v in folder_files(target).items() if k in ARTIFACT} == a_files
    assert loaded.labels == SynonymSpace.from_pretrained(a).labels

    assert run(KILLED, b, target, point).wait(timeout=60) == 9  # again, now the next write finds the leftovers
    SynonymSpace.from_pretrained(b).save_pretrained(target, overwrite=True)
    assert {k: v for k, v in folder_files(target).items() if k in ARTIFACT} == b_files
    assert leftovers(tmp_path, "space") == []


def test_a_live_writers_temp_folder_is_never_removed(two_spaces, tmp_path, monkeypatch):
    (a, _), _ = two_spaces
    space = SynonymSpace.from_pretrained(a)
    target = space.save_pretrained(tmp_path / "space")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = tmp_path / f".space.{os.getpid()}-{fileio._HOST}-0a0a.tmp"
    other_host = tmp_path / f".space.{dead.pid}-{'f' * 8 if fileio._HOST != 'f' * 8 else 'e' * 8}-0b0b.tmp"
    gone = tmp_path / f".space.{dead.pid}-{fileio._HOST}-0c0c.tmp"
    legacy = tmp_path / ".space.abcd1234.tmp"  # an older s3-hf's name: only age tells
    unrelated = tmp_path / ".spaces.123-abcdef12-00.tmp"  # another folder's name
    for p in (live, other_host, gone, legacy, unrelated):
        p.mkdir()
    space.save_pretrained(target)
    assert leftovers(tmp_path, "space") == sorted([live.name, other_host.name, legacy.name])
    assert unrelated.exists()
    old = os.stat(live).st_mtime - 3 * 3600
    for p in (other_host, legacy):
        os.utime(p, (old, old))
    space.save_pretrained(target)
    assert leftovers(tmp_path, "space") == [live.name]  # older than the limit: removed; the live one stays
    monkeypatch.setenv("S3_STALE_TEMP_MINUTES", "0.0001")
    os.utime(live, (old, old))
    space.save_pretrained(target)
    assert leftovers(tmp_path, "space") == []  # past the limit, even a live pid's folder is presumed stale


def test_users_files_and_a_fitting_adapter_survive_a_save(small_space, tmp_path):
    from s3_hf.fewshot import SSP_CONFIG_NAME, SSP_TENSORS_NAME, fit_for_space

    folder = small_space.save_pretrained(tmp_path / "space")
    (folder / "notes.txt").write_text("mine")
    (folder / "extra").mkdir()
    (folder / "extra" / "a.txt").write_text("deep")
    (folder / "link").symlink_to("notes.txt")
    torch.manual_seed(0)
    glob = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    local = torch.nn.functional.normalize(torch.randn(6, 4, 16), dim=-1)
    fit_for_space(small_space, [0, 1, 2], glob, local, [0, 1, 2, 0, 1, 2], "local_center").save_pretrained(folder)
    small_space.save_pretrained(folder)
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "extra" / "a.txt").read_text() == "deep"
    assert os.readlink(folder / "link") == "notes.txt"
    assert (folder / SSP_CONFIG_NAME).is_file() and (folder / SSP_TENSORS_NAME).is_file()
    assert SynonymSpace.from_pretrained(folder).labels == small_space.labels
    assert leftovers(tmp_path, "space") == []


def test_saving_through_a_symlink_keeps_the_link(small_space, tmp_path):
    real = small_space.save_pretrained(tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    small_space.save_pretrained(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and SynonymSpace.from_pretrained(tmp_path / "link")


@pytest.mark.parametrize("where", [".", "", "..", "/"])
def test_the_current_folder_is_refused(small_space, tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArtifactError):
        small_space.save_pretrained(where)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------- hostile table
def _edit_config(**changes):
    def damage(folder: Path, a: Path, b: Path) -> None:
        config = json.loads((folder / CONFIG_NAME).read_text())
        (folder / CONFIG_NAME).write_text(json.dumps({**config, **changes}))

    return damage


def _copy_from(other: str, *names: str):
    def damage(folder: Path, a: Path, b: Path) -> None:
        src = {"a": a, "b": b}[other]
        for name in names:
            (folder / name).write_bytes((src / name).read_bytes())

    return damage


def _stale_old_folder(folder: Path, a: Path, b: Path) -> None:
    """What an older s3-hf left when killed between its renames: the artifact inside ``.space.old.XXXXXXXX/``."""
    old = folder.parent / ".space.old.abcd1234"
    old.mkdir()
    folder.rename(old / "space")
    past = old.stat().st_mtime - 3 * 3600
    os.utime(old, (past, past))


def _write(name: str, data: bytes):
    return lambda folder, a, b: (folder / name).write_bytes(data)


def _classes_not_objects(folder: Path, a: Path, b: Path) -> None:
    data = json.loads((folder / SYNONYMS_NAME).read_text())
    data["classes"] = ["cat", "dog", "airplane"]
    (folder / SYNONYMS_NAME).write_text(json.dumps(data))


def _flip_a_tensor_byte(folder: Path, a: Path, b: Path) -> None:
    data = bytearray((folder / TENSORS_NAME).read_bytes())
    data[-5] ^= 0x10
    (folder / TENSORS_NAME).write_bytes(bytes(data))


HOSTILE = {
    "truncated tensors": (
        lambda f, a, b: (f / TENSORS_NAME).write_bytes((f / TENSORS_NAME).read_bytes()[:200]),
        ArtifactCorruptError,
    ),
    "empty tensors": (_write(TENSORS_NAME, b""), ArtifactCorruptError),
    "tensors file is a folder": (
        lambda f, a, b: ((f / TENSORS_NAME).unlink(), (f / TENSORS_NAME).mkdir()),
        ArtifactNotFoundError,
    ),
    "config not JSON": (_write(CONFIG_NAME, b'{"format_version": 1,'), ArtifactCorruptError),
    "config a list": (_write(CONFIG_NAME, b"[1, 2]"), ArtifactCorruptError),
    "config deeply nested": (_write(CONFIG_NAME, b"[" * 100_000 + b"]" * 100_000), ArtifactCorruptError),
    "config value of the wrong type": (_edit_config(max_dim="2"), ArtifactCorruptError),
    "class_names a string": (_edit_config(class_names="cat"), ArtifactCorruptError),
    "embedding_dim a string": (_edit_config(embedding_dim="16"), ArtifactCorruptError),
    "embedding_dim true": (_edit_config(embedding_dim=True), ArtifactCorruptError),
    "metric a number": (_edit_config(metric=3), ArtifactCorruptError),
    "format from the future": (_edit_config(format_version=99), FormatVersionError),
    "a flipped tensor byte": (_flip_a_tensor_byte, ArtifactCorruptError),
    "synonyms missing": (lambda f, a, b: (f / SYNONYMS_NAME).unlink(), ArtifactNotFoundError),
    "synonyms not utf-8": (_write(SYNONYMS_NAME, b"\xff\xfe{"), ArtifactCorruptError),
    "classes not objects": (_classes_not_objects, ArtifactCorruptError),
    "tensors of another artifact": (_copy_from("b", TENSORS_NAME), ArtifactCorruptError),
    "config and tensors of another artifact": (_copy_from("b", TENSORS_NAME, CONFIG_NAME), ArtifactShapeError),
    "synonyms of another artifact": (_copy_from("b", SYNONYMS_NAME), ArtifactShapeError),
    "per-file temp leftovers inside": (_write(f".{CONFIG_NAME}.k2j3h4.tmp", b"{half"), None),
    "a killed writer's folder beside": (
        lambda f, a, b: (f.parent / f".space.{DEAD_PID}-{fileio._HOST}-ab.tmp").mkdir(),
        None,
    ),
    "an older s3-hf's killed rename": (_stale_old_folder, None),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_artifacts(two_spaces, tmp_path, case):
    (a, a_files), (b, _) = two_spaces
    damage, expected = HOSTILE[case]
    folder = SynonymSpace.from_pretrained(a).save_pretrained(tmp_path / "space")
    damage(folder, a, b)
    if expected is not None:
        with pytest.raises(expected):
            SynonymSpace.from_pretrained(folder)
        return
    assert SynonymSpace.from_pretrained(folder).labels == SynonymSpace.from_pretrained(a).labels
    SynonymSpace.from_pretrained(a).save_pretrained(folder)  # the next write leaves exactly the artifact
    assert folder_files(folder) == a_files and os.listdir(tmp_path) == ["space"]


@pytest.mark.parametrize(
    "where, error",
    [("", ArtifactError), ("a-file", ArtifactError), ("a-file/below", (ArtifactError, OSError))],
)
def test_saving_somewhere_impossible_is_a_typed_error(small_space, tmp_path, monkeypatch, where, error):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(error):
        small_space.save_pretrained(where)
    assert os.listdir(tmp_path) == ["a-file"]


def test_artifact_paths(small_space, tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    with pytest.raises(ArtifactNotFoundError, match="is a file"):
        SynonymSpace.from_pretrained(afile)
    with pytest.raises(ArtifactError, match="is a file"):
        small_space.save_pretrained(afile)
    with pytest.raises(OSError):  # a folder cannot be created under a file: the OS says so, nothing is written
        small_space.save_pretrained(afile / "sub")
    assert afile.read_text() == "x"


# ------------------------------------------------------------------------------------------ adapter pairing
@pytest.fixture(scope="module")
def fitted(small_space):
    from s3_hf.fewshot import fit_for_space

    torch.manual_seed(0)
    glob = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    local = torch.nn.functional.normalize(torch.randn(6, 4, 16), dim=-1)
    return fit_for_space(small_space, [0, 1, 2], glob, local, [0, 1, 2, 0, 1, 2], "local_center")


def test_damaged_adapter(small_space, tmp_path):
    from s3_hf.errors import S3Error
    from s3_hf.fewshot import SSPAdapter, fit_for_space

    torch.manual_seed(0)
    glob = torch.nn.functional.normalize(torch.randn(3, 16), dim=-1)
    local = torch.nn.functional.normalize(torch.randn(3, 4, 16), dim=-1)
    folder = fit_for_space(small_space, [0, 1, 2], glob, local, [0, 1, 2], "local_center").save_pretrained(tmp_path)
    (folder / "ssp_config.json").write_text('{"format_version": 1, "labels": 3}')
    with pytest.raises(S3Error):
        SSPAdapter.from_pretrained(folder)


def test_an_adapter_is_refused_on_another_space_with_the_same_labels(
    small_space, fitted, tiny_model, tiny_clip_dir, s3_pipe, photos, tmp_path
):
    from s3_hf import build_synonym_space
    from s3_hf.errors import AdapterMismatchError, ModelMismatchError
    from s3_hf.fewshot import SSPAdapter

    other = build_synonym_space(*tiny_model, small_space.labels, None, base_model=str(tiny_clip_dir))
    assert other.labels == small_space.labels and other.tensors_hash() != small_space.tensors_hash()
    assert fitted.info.space_sha256 == small_space.tensors_hash()
    image = str(photos[0])
    assert s3_pipe(image, synonym_space=small_space, support=fitted, metric="local_center")
    with pytest.raises(AdapterMismatchError, match="another synonym space") as err:
        s3_pipe(image, synonym_space=other, support=fitted, metric="local_center")
    assert isinstance(err.value, ModelMismatchError)

    a = small_space.save_pretrained(tmp_path / "a")  # the same pairing through files: the hash survives saving
    fitted.save_pretrained(a)
    b = other.save_pretrained(tmp_path / "b")
    assert SSPAdapter.from_pretrained(a).info.space_sha256 == SynonymSpace.from_pretrained(a).tensors_hash()
    assert s3_pipe(image, synonym_space=str(a), support=str(a), metric="local_center")
    with pytest.raises(AdapterMismatchError):
        s3_pipe(image, synonym_space=str(b), support=str(a), metric="local_center")


def test_an_adapter_without_the_space_hash_loads_with_a_warning(small_space, fitted, s3_pipe, photos, tmp_path, caplog):
    from s3_hf.fewshot import SSP_CONFIG_NAME

    folder = fitted.save_pretrained(tmp_path / "old")
    meta = json.loads((folder / SSP_CONFIG_NAME).read_text())
    del meta["info"]["space_sha256"]  # as an older s3-hf wrote it
    (folder / SSP_CONFIG_NAME).write_text(json.dumps(meta))
    with caplog.at_level("WARNING", logger="s3_hf.engine.adapters"):
        assert s3_pipe(str(photos[0]), synonym_space=small_space, support=str(folder), metric="local_center")
    assert "does not record the space" in caplog.text


@pytest.mark.parametrize("value", [3, ["x"], True])
def test_an_adapter_space_hash_of_the_wrong_type_is_a_typed_error(fitted, tmp_path, value):
    from s3_hf.fewshot import SSP_CONFIG_NAME, SSPAdapter

    folder = fitted.save_pretrained(tmp_path / "bad")
    meta = json.loads((folder / SSP_CONFIG_NAME).read_text())
    meta["info"]["space_sha256"] = value
    (folder / SSP_CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(ArtifactCorruptError, match="space_sha256"):
        SSPAdapter.from_pretrained(folder)


# ------------------------------------------------------------------------------------------------ model card
def _cells(row: str) -> list[str]:
    """A Markdown table row's cells, split at the pipes that are not escaped."""
    import re

    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_labels_and_concepts_with_line_breaks_or_pipes_keep_the_card_table_whole(small_space, tmp_path):
    from s3_hf.space.card import render_card

    folder = small_space.save_pretrained(tmp_path / "space")
    hostile = ["cat|wild\nthing", "dog\r\nnew line", "air\u2028plane \\ back"]
    config = json.loads((folder / CONFIG_NAME).read_text())
    syn = json.loads((folder / SYNONYMS_NAME).read_text())
    config["class_names"] = hostile  # as a hand-edited or older artifact may hold them (build normalises labels)
    for rec, label in zip(syn["classes"], hostile, strict=True):
        rec["label"] = label
        rec["concepts"][0]["text"] = f"a {label} | b\n"
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    (folder / SYNONYMS_NAME).write_text(json.dumps(syn))
    card = render_card(SynonymSpace.from_pretrained(folder))
    lines = card.splitlines()
    head = lines.index("| class | kept concepts | dropped (why) | radius |")
    rows = lines[head + 2 : head + 2 + len(hostile)]
    assert [len(_cells(r)) for r in rows] == [4, 4, 4]
    assert [_cells(r)[0] for r in rows] == ["cat\\|wild thing", "dog new line", "air plane \\\\ back"]
    assert all(_cells(r)[1].startswith("a ") and "\\| b" in _cells(r)[1] for r in rows)
    assert not any(x.startswith("|") for x in lines[head + 2 + len(hostile) :])  # nothing spilled into more rows


# ----------------------------------------------------------------------------------------------- s3 build
@pytest.mark.parametrize("out", ["", " ", ".", ".."])
def test_build_into_the_current_folder_is_a_one_line_error(tiny_clip_dir, tmp_path, monkeypatch, capsys, out):
    from s3_hf.cli import main

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["build", "cat,dog", "--out", out, "--model", str(tiny_clip_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.lower().startswith("error: --out") and "\n" not in err
    assert os.listdir(tmp_path) == ["work"] and os.listdir(work) == []


def test_build_reads_labels_from_stdin_with_a_dash(tiny_clip_dir, tmp_path, monkeypatch):
    import io

    from s3_hf.cli import main

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"cat\n# a comment\ndog\n")))
    assert main(["build", "-", "--out", str(tmp_path / "s"), "--model", str(tiny_clip_dir)]) == 0
    assert SynonymSpace.from_pretrained(tmp_path / "s").labels == ["cat", "dog"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xff\xfe")))
    assert main(["build", "-", "--out", str(tmp_path / "t"), "--model", str(tiny_clip_dir)]) == 2


def test_build_reads_labels_from_dev_stdin(tiny_clip_dir, tmp_path):
    if not Path("/dev/stdin").exists():
        pytest.skip("this system has no /dev/stdin")
    script = "import sys; from s3_hf.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["build", "/dev/stdin", "--out", str(tmp_path / "s"), "--model", str(tiny_clip_dir)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, *args], input=b"cat\ndog\n", env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert SynonymSpace.from_pretrained(tmp_path / "s").labels == ["cat", "dog"]
