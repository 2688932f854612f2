"""`s3 space build` / `s3 space push`: a deployable Gradio Space folder (its README's front matter: preloaded models,
short description, ZeroGPU; its app.py's defaults), uploaded through the fake Hub, and (slow) installed into a fresh
venv from its own requirements.txt, serving one request."""

from __future__ import annotations

import json
import os
import runpy
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import fake_hub, folder_files

from s3_hf.app.deploy import build_space, space_app_dir
from s3_hf.cli import main
from s3_hf.errors import SpaceBuildError
from s3_hf.options import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[2]
TORCH = "torch==2.13.0"  # pinned: an open torch spec pulls the CUDA build and several GB of CUDA packages


@pytest.fixture(scope="module")
def space_dir(tmp_path_factory) -> Path:
    """A Space folder built from this checkout."""
    return build_space(tmp_path_factory.mktemp("spaces") / "s3-space")


def test_build_writes_app_readme_requirements_and_the_package(space_dir):
    import s3_hf

    assert sorted(p.name for p in space_dir.iterdir()) == ["README.md", "app.py", "requirements.txt", "s3_hf"]
    app = space_app_dir()
    assert (space_dir / "app.py").read_bytes() == (app / "app.py").read_bytes()
    readme = (space_dir / "README.md").read_text()
    assert readme.startswith("---\n") and "sdk: gradio" in readme and "app_file: app.py" in readme
    lines = [x for x in (space_dir / "requirements.txt").read_text().splitlines() if not x.startswith("#")]
    names = {x.split(">")[0].split("=")[0].split("[")[0].strip().lower() for x in lines}
    assert {"torch", "transformers", "gudhi", "huggingface_hub", "gradio", "matplotlib"} <= names
    assert "s3-hf" not in names and "nltk" not in names and "pytest" not in names  # no test or wordnet extras
    package = Path(s3_hf.__file__).resolve().parent
    for rel in ("__init__.py", "engine/core.py", "cli/__init__.py", "fewshot/ssp.py", "space/card_template.md"):
        assert (space_dir / "s3_hf" / rel).is_file(), rel
    assert (space_dir / "s3_hf" / "engine" / "core.py").read_bytes() == (package / "engine" / "core.py").read_bytes()
    shipped = {p.relative_to(space_dir / "s3_hf").parts[0] for p in (space_dir / "s3_hf").rglob("*")}
    assert not shipped & {"evaluation", "__pycache__"}  # the app never imports the evaluation


def front_matter(folder: Path) -> dict:
    """The README's YAML front matter, parsed as the Hub parses it (between the first two ``---`` lines)."""
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front, sep, body = text[4:].partition("\n---\n")
    assert sep and body.lstrip().startswith("# S^3")
    data = yaml.safe_load(front)
    assert isinstance(data, dict)
    return data


def requirement_names(folder: Path) -> set[str]:
    lines = [x for x in (folder / "requirements.txt").read_text().splitlines() if x and not x.startswith("#")]
    return {x.split(">")[0].split("=")[0].split("[")[0].strip().lower() for x in lines}


def test_front_matter_preloads_the_default_model_and_describes_the_space(space_dir):
    data = front_matter(space_dir)
    assert data["sdk"] == "gradio" and data["app_file"] == "app.py" and data["license"] == "apache-2.0"
    assert data["preload_from_hub"] == [DEFAULT_MODEL] and data["models"] == [DEFAULT_MODEL]
    assert isinstance(data["short_description"], str) and 0 < len(data["short_description"]) <= 60
    assert "suggested_hardware" not in data
    assert "spaces" not in requirement_names(space_dir)  # ZeroGPU builds only (--zero-gpu)
    app = (space_dir / "app.py").read_text()
    assert "DEFAULTS: dict[str, str] = {}" in app and "import spaces" in app


def run_app_file(folder: Path, monkeypatch, **env: str) -> dict[str, str | None]:
    """Run the Space's app.py as the Spaces runtime imports it (not as __main__), with a stand-in for the app and
    no ``spaces`` package; the settings it leaves in the environment."""
    import types

    ui = types.ModuleType("s3_hf.app.ui")
    ui.main = lambda: pytest.fail("app.py started the app when imported")
    monkeypatch.setitem(sys.modules, "s3_hf.app.ui", ui)
    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError: the app must not need it
    for name in ("S3_MODEL", "S3_SPACE"):
        monkeypatch.setenv(name, "restored after the test")
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runpy.run_path(str(folder / "app.py"), run_name="space_app")
    return {name: os.environ.get(name) for name in ("S3_MODEL", "S3_SPACE")}


def test_a_space_for_a_hub_synonym_space_serves_its_model_and_preloads_both(small_space, tmp_path, monkeypatch):
    files = folder_files(small_space.save_pretrained(tmp_path / "pets"))
    config = json.loads(files["s3_config.json"])
    config["base_model"] = "org/tiny-clip"  # as if built from the Hub model
    files["s3_config.json"] = json.dumps(config).encode()
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "space"
    with fake_hub({"org/pets-s3": files}):
        assert main(["space", "build", str(out), "--space", "org/pets-s3", "--zero-gpu"]) == 0
    data = front_matter(out)
    assert data["preload_from_hub"] == ["org/tiny-clip", "org/pets-s3"] == data["models"]
    assert data["suggested_hardware"] == "zero-a10g" and "spaces" in requirement_names(out)
    assert run_app_file(out, monkeypatch) == {"S3_MODEL": "org/tiny-clip", "S3_SPACE": "org/pets-s3"}
    # a Space variable still wins over what the Space was built with
    assert run_app_file(out, monkeypatch, S3_MODEL="org/other")["S3_MODEL"] == "org/other"


def test_an_explicit_model_needs_no_hub_and_the_default_build_sets_nothing(space_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "space"
    with fake_hub({}) as hub:
        args = ["space", "build", str(out), "--model", "hf-hub:org/open-clip", "--space", "org/pets-s3"]
        assert main(args) == 0
    assert hub.requests == []  # the model was given: the synonym space's config is not read
    assert "hf-hub:org/open-clip" in capsys.readouterr().out
    assert front_matter(out)["preload_from_hub"] == ["org/open-clip", "org/pets-s3"]  # open_clip's id names a repo
    assert run_app_file(out, monkeypatch) == {"S3_MODEL": "hf-hub:org/open-clip", "S3_SPACE": "org/pets-s3"}
    assert run_app_file(space_dir, monkeypatch) == {"S3_MODEL": None, "S3_SPACE": None}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/models/clip"], "not a Hub repo id"),
        (["--space", "./my-space"], "not a Hub repo id"),
        (["--space", "org/missing"], "--model"),
    ],
)
def test_space_build_refuses_what_the_space_could_not_load(tmp_path, args, message, capsys):
    with fake_hub({}):
        assert main(["space", "build", str(tmp_path / "space"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and not (tmp_path / "space").exists()


def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["space", "build", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and err.count("\n") == 1 and (out / "notes.txt").is_file()
    assert main(["space", "build", str(out), "--overwrite"]) == 0
    assert not (out / "notes.txt").exists() and (out / "app.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no temporary folders left behind
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["space", "build", str(empty)]) == 0  # an empty folder is fine
    assert (empty / "requirements.txt").is_file()


def test_a_failed_build_leaves_nothing(tmp_path, monkeypatch):
    import s3_hf.app.deploy as deploy

    def broken(dest):
        raise SpaceBuildError("no package today")

    monkeypatch.setattr(deploy, "_copy_package", broken)
    with pytest.raises(SpaceBuildError, match="no package today"):
        build_space(tmp_path / "space")
    assert list(tmp_path.iterdir()) == []


def test_push_uploads_the_folder_to_a_gradio_space(space_dir, capsys):
    with fake_hub({}) as hub:
        assert main(["space", "push", str(space_dir), "org/s3-demo", "--token", "hf_fake"]) == 0
    (created,) = hub.created
    assert created["type"] == "space" and created["sdk"] == "gradio" and created["name"] == "s3-demo"
    (commit,) = hub.commits
    assert commit["repo_type"] == "space" and commit["repo_id"] == "org/s3-demo"
    files = {str(p.relative_to(space_dir)): p.read_bytes() for p in space_dir.rglob("*") if p.is_file()}
    assert commit["files"] == files and "s3_hf/engine/core.py" in files
    assert "spaces/org/s3-demo/commit/" in capsys.readouterr().out


def test_push_refuses_a_folder_that_is_not_a_space(tmp_path, capsys):
    (tmp_path / "app.py").write_text("print('hi')\n")
    with fake_hub({}) as hub:
        assert main(["space", "push", str(tmp_path), "org/s3-demo", "--token", "hf_fake"]) == 2
    assert "s3 space build" in capsys.readouterr().err and hub.requests == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pip(venv: Path, *args: str, cwd: Path) -> None:
    res = subprocess.run([str(venv / "bin" / "pip"), *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.slow
def test_space_installs_in_a_fresh_venv_and_answers(space_dir, tiny_clip_dir, photos, tmp_path):
    """What the Space's builder does: a clean environment, `pip install -r requirements.txt` (nothing else of the
    folder is needed for that), then `python app.py` in the folder; one request through gradio_client."""
    from gradio_client import Client, handle_file

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip(venv, "install", "-q", "--no-compile", TORCH, cwd=tmp_path)
    alone = tmp_path / "build"  # the Spaces builder installs the requirements with no other file of the repo
    alone.mkdir()
    (alone / "requirements.txt").write_bytes((space_dir / "requirements.txt").read_bytes())
    pip(venv, "install", "-q", "--no-compile", "-r", "requirements.txt", cwd=alone)
    python = venv / "bin" / "python"
    check = "import s3_hf, s3_hf.engine.core; print(s3_hf.__file__)"
    out = subprocess.run([str(python), "-c", check], cwd=space_dir, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == str(space_dir / "s3_hf" / "__init__.py"), out.stderr[-2000:]

    port = free_port()
    env = {
        **os.environ,
        "S3_MODEL": str(tiny_clip_dir),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    log = tmp_path / "app.log"
    with log.open("w") as sink:
        app = subprocess.Popen([str(python), "app.py"], cwd=space_dir, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert app.poll() is None, log.read_text()[-3000:]
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(1)
        table = {"headers": ["label", "synonyms (comma-separated)"], "data": [["cat", "kitty, house cat"]]}
        s3, clip, details, _ = client.predict(
            handle_file(str(photos[0])), "cat, dog, airplane", "", "local_center", table, 3, api_name="/classify"
        )
        assert (
            {c["label"] for c in s3["confidences"]}
            == {c["label"] for c in clip["confidences"]}
            == {"cat", "dog", "airplane"}
        )
        assert len(details["data"]) == 3
    finally:
        app.terminate()
        app.wait(timeout=30)

    # the app ran on the package copy beside it, not on any installed s3-hf
    assert "s3_hf" not in subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, timeout=300
    ).stdout.replace("s3_hf/", "")
