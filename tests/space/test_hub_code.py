"""A saved or pushed synonym space runs with plain transformers (``pipeline(model=..., trust_remote_code=True)``), with
the scores of s3-hf's own pipeline, without s3-hf and without gudhi."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import COMMIT, SYNONYMS, fake_hub, folder_files

from s3_hf import SynonymSpace
from s3_hf.errors import ArtifactError
from s3_hf.options import METRIC_NAMES
from s3_hf.space import remote

ALLOWED_IMPORTS = {"torch", "transformers", "huggingface_hub", "safetensors", "PIL"}
BASE_REPO, SPACE_REPO = "acme/tiny-clip", "acme/tiny-space"


@pytest.fixture
def modules_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """transformers copies remote code into a folder of the test's own, not the user's cache."""
    import transformers.dynamic_module_utils as dmu

    folder = tmp_path / "modules"
    monkeypatch.setattr(dmu, "HF_MODULES_CACHE", str(folder))
    return folder


def remote_pipeline(name: str | Path, **kwargs):
    from transformers import pipeline

    return pipeline(model=str(name), trust_remote_code=True, **kwargs)


def assert_same(ours: list, theirs: list, where: str) -> None:
    assert [p["label"] for p in ours] == [p["label"] for p in theirs], where
    for a, b in zip(ours, theirs, strict=True):
        assert a.keys() == b.keys() == {"score", "label"}, where
        assert abs(a["score"] - b["score"]) <= 1e-5, (where, a, b)


# ------------------------------------------------------------------------------------------------ the files
def test_pipeline_module_imports_only_torch_transformers_and_the_standard_library():
    tree = ast.parse(remote.hub_code_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "the module is one file: no relative imports"
            names.add(node.module.split(".")[0])
    assert "s3_hf" not in names
    assert names - ALLOWED_IMPORTS <= set(sys.stdlib_module_names), names - ALLOWED_IMPORTS


def test_pipeline_module_names_what_s3_hf_writes():
    from s3_hf.space import hub_code

    assert hub_code.METRICS == METRIC_NAMES
    assert (hub_code.BUNDLE_FOLDER, hub_code.S3SpaceConfig.model_type) == (remote.BUNDLE_FOLDER, remote.MODEL_TYPE)
    assert (hub_code.SPACE_CONFIG, hub_code.SPACE_TENSORS) == ("s3_config.json", "s3_space.safetensors")


def test_saved_space_holds_the_pipeline_module_verbatim_and_its_config(saved: Path):
    assert (saved / remote.HUB_CODE_NAME).read_text(encoding="utf-8") == remote.hub_code_text()
    config = json.loads((saved / remote.MODEL_CONFIG_NAME).read_text(encoding="utf-8"))
    space = json.loads((saved / "s3_config.json").read_text(encoding="utf-8"))
    assert config["custom_pipelines"][remote.REMOTE_TASK]["impl"] == "s3_pipeline.S3SpacePipeline"
    assert config["auto_map"]["AutoModel"] == "s3_pipeline.S3SpaceModel"
    assert (config["base_model"], config["base_model_revision"]) == (space["base_model"], space["base_model_revision"])
    assert config["bundled"] is False and not (saved / remote.BUNDLE_FOLDER).exists()
    again = SynonymSpace.from_pretrained(saved)  # s3-hf's loader is not disturbed by the new files
    assert again.labels == json.loads((saved / "s3_config.json").read_text())["class_names"]
    again.save_pretrained(saved)  # its own config.json is replaced without --overwrite


def test_a_models_config_json_is_not_replaced_without_overwrite(small_space, tmp_path: Path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "clip"}', encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"config\.json exists and was not written by s3-hf"):
        small_space.save_pretrained(folder)
    small_space.save_pretrained(folder, overwrite=True)
    assert remote.is_space_model_config(folder / "config.json")


# ------------------------------------------------------------------------------------------- in-process
@pytest.fixture
def remote_pipe(saved: Path, modules_cache: Path):
    return remote_pipeline(saved)


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_remote_pipeline_equals_s3_pipeline(remote_pipe, s3_pipe, saved: Path, photos: list[Path], metric: str):
    for photo in photos[:3]:
        ours = remote_pipe(str(photo), metric=metric)
        theirs = s3_pipe(str(photo), synonym_space=str(saved), metric=metric)
        assert_same(ours, theirs, f"{metric} {photo.name}")


@pytest.mark.parametrize("family", ["siglip2", "align"])
def test_remote_pipeline_equals_s3_pipeline_for_sigmoid_and_temperature_families(
    family, tmp_path, photos, modules_cache
):
    """SigLIP 2 scores with a per-class sigmoid and a logit bias, ALIGN divides by a temperature."""
    from helpers import make_tiny_family
    from transformers import pipeline

    import s3_hf

    theirs = pipeline(s3_hf.TASK, model=str(make_tiny_family(tmp_path / family, family)))
    folder = theirs.engine.build_space(list(SYNONYMS), SYNONYMS).save_pretrained(tmp_path / "space")
    ours = remote_pipeline(folder)
    assert ours.model.scoring == ("sigmoid" if family == "siglip2" else "softmax")
    for metric in ("label", "local_center"):
        for photo in photos[:3]:
            expected = theirs(str(photo), synonym_space=str(folder), metric=metric)
            assert_same(ours(str(photo), metric=metric), expected, f"{family} {metric} {photo.name}")


def test_remote_pipeline_default_metric_top_k_subset_and_batches(remote_pipe, s3_pipe, saved, photos):
    paths = [str(p) for p in photos[:3]]
    ours = remote_pipe(paths, top_k=2)
    theirs = s3_pipe(paths, synonym_space=str(saved), top_k=2)
    assert len(ours) == 3 and all(len(x) == 2 for x in ours)
    for a, b, p in zip(ours, theirs, paths, strict=True):
        assert_same(a, b, p)
    subset = ["dog", "cat"]
    assert_same(
        remote_pipe(paths[0], candidate_labels=subset),
        s3_pipe(paths[0], synonym_space=str(saved), candidate_labels=subset),
        "subset",
    )
    with pytest.raises(ValueError, match="not classes of the synonym space"):
        remote_pipe(paths[0], candidate_labels=["zebra"])
    with pytest.raises(ValueError, match="does not take synonyms"):
        remote_pipe(paths[0], synonyms={"cat": ["kitty"]})
    with pytest.raises(ValueError, match="Unknown metric"):
        remote_pipe(paths[0], metric="cosine")


def test_bundled_space_runs_from_its_own_folder(small_space, s3_pipe, tmp_path, photos, modules_cache):
    folder = small_space.save_pretrained(tmp_path / "bundle", bundle=True)
    assert (folder / remote.BUNDLE_FOLDER / "model.safetensors").is_file()
    assert json.loads((folder / "config.json").read_text())["bundled"] is True
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "base_model": "acme/elsewhere"}))  # never looked up
    pipe = remote_pipeline(folder)
    assert_same(pipe(str(photos[0])), s3_pipe(str(photos[0]), synonym_space=str(folder)), "bundle")
    small_space.save_pretrained(folder)  # saved again without bundle: the old bundle goes
    assert not (folder / remote.BUNDLE_FOLDER).exists()


def test_a_bundle_pushed_to_the_hub_runs_without_its_base_models_repo(
    tiny_clip_dir, tiny_model, s3_pipe, saved, photos, tmp_path, monkeypatch, modules_cache
):
    import s3_hf

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    model, tokenizer = tiny_model
    space = s3_hf.build_synonym_space(model, tokenizer, list(SYNONYMS), SYNONYMS, base_model=BASE_REPO)
    with fake_hub({BASE_REPO: folder_files(tiny_clip_dir)}) as hub:
        space.push_to_hub(SPACE_REPO, token="hf_fake", bundle=True)  # the base model's files come from the Hub
        pushed = hub.repos[SPACE_REPO]
    assert {f"{remote.BUNDLE_FOLDER}/{name}" for name in folder_files(tiny_clip_dir)} <= set(pushed)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "another-cache"))
    with fake_hub({SPACE_REPO: pushed}) as hub:  # the base model's repo is gone
        pipe = remote_pipeline(SPACE_REPO)
    assert not any(BASE_REPO in path for _, path in hub.requests)
    assert_same(pipe(str(photos[0])), s3_pipe(str(photos[0]), synonym_space=str(saved)), "bundle from the Hub")


def test_s3_build_bundle_writes_the_base_model_beside_the_space(tmp_path, tiny_clip_dir, modules_cache, photos):
    from s3_hf.cli import main

    out = tmp_path / "space"
    assert main(["build", "cat,dog", "--out", str(out), "--model", str(tiny_clip_dir), "--bundle"]) == 0
    assert sorted(p.name for p in (out / remote.BUNDLE_FOLDER).iterdir()) == sorted(
        p.name for p in tiny_clip_dir.iterdir() if p.is_file()
    )
    assert [p["label"] for p in remote_pipeline(out)(str(photos[0]))] != []


def test_s3_push_bundle_carries_the_base_model(tmp_path, tiny_clip_dir, modules_cache, caplog):
    from s3_hf.cli import main

    out = tmp_path / "space"
    assert main(["build", "cat,dog", "--out", str(out), "--model", str(tiny_clip_dir)]) == 0
    with fake_hub({}) as hub:
        assert main(["push", str(out), SPACE_REPO, "--token", "hf_fake", "--bundle"]) == 0
        bundled = set(hub.repos[SPACE_REPO])
        assert "local folder" not in caplog.text
        assert main(["push", str(out), SPACE_REPO, "--token", "hf_fake"]) == 0  # without: the bundle is deleted
        plain = set(hub.repos[SPACE_REPO])
    # a space on a local folder names a path other machines lack: the push says so, and how to carry the model
    assert f"built on the local folder {tiny_clip_dir.resolve()}" in caplog.text and "--bundle" in caplog.text
    carried = {f"{remote.BUNDLE_FOLDER}/{p.name}" for p in tiny_clip_dir.iterdir() if p.is_file()}
    assert carried <= bundled and not carried & plain and {"config.json", "s3_pipeline.py"} <= plain


def test_a_space_whose_base_model_cannot_be_found_says_so(saved: Path, modules_cache: Path, tiny_clip_dir, photos):
    config = json.loads((saved / "config.json").read_text())
    config["base_model"] = "acme/no-such-model"
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(LookupError, match=r"built with the model 'acme/no-such-model'.*model_kwargs"):
        remote_pipeline(saved)
    pipe = remote_pipeline(saved, model_kwargs={"base_model": str(tiny_clip_dir)})  # the way out the message names
    assert pipe(str(photos[0]))


def test_a_damaged_tensor_file_is_refused(saved: Path, modules_cache: Path):
    data = bytearray((saved / "s3_space.safetensors").read_bytes())
    data[-1] ^= 1
    (saved / "s3_space.safetensors").write_bytes(bytes(data))
    with pytest.raises(LookupError, match="does not match the hash"):
        remote_pipeline(saved)


# ------------------------------------------------------------------------ from the Hub, without s3-hf
_RUNNER = """
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("s3_hf", "gudhi"):
            raise ImportError(f"{name} is not installed here")

sys.meta_path.insert(0, Block())
for name in ("s3_hf", "gudhi"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} is importable")

from transformers import pipeline

pipe = pipeline(model=sys.argv[1], trust_remote_code=True)
out = {photo: pipe(photo) for photo in sys.argv[2:]}
assert not any(m.split(".")[0] in ("s3_hf", "gudhi") for m in sys.modules)
print(json.dumps({"scores": out, "module": type(pipe).__module__}))
"""


def fresh_venv(root: Path) -> Path:
    """A virtual environment without s3-hf: this one's site-packages on its path through a ``.pth`` file (whose own
    ``.pth`` files, s3-hf's editable install among them, are not processed)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "main_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return python


def test_pushed_space_runs_from_the_hub_without_s3_hf(tiny_clip_dir, photos, tmp_path):
    """The acceptance test of issue #25: push a space (its base model in another repo), download both into a cache,
    and run ``pipeline(model=<repo id>, trust_remote_code=True)`` offline in a fresh environment without s3-hf."""
    from huggingface_hub import snapshot_download
    from transformers import AutoTokenizer, CLIPModel, pipeline

    import s3_hf

    cache = tmp_path / "hub"
    with fake_hub({BASE_REPO: folder_files(tiny_clip_dir)}) as hub:
        base = Path(snapshot_download(BASE_REPO, cache_dir=cache))
        model, tokenizer = CLIPModel.from_pretrained(base).eval(), AutoTokenizer.from_pretrained(base)
        space = s3_hf.build_synonym_space(model, tokenizer, list(SYNONYMS), SYNONYMS, base_model=BASE_REPO)
        assert space.config.base_model == BASE_REPO
        space.config.base_model_revision = COMMIT  # the base model is then loaded by id and revision
        space.push_to_hub(SPACE_REPO, token="hf_fake")
        assert {"config.json", "s3_pipeline.py"} <= set(hub.repos[SPACE_REPO])
        snapshot = Path(snapshot_download(SPACE_REPO, cache_dir=cache))

    images = [str(p) for p in photos[:3]]
    theirs = pipeline(s3_hf.TASK, model=str(base))
    expected = {p: theirs(p, synonym_space=str(snapshot)) for p in images}

    python = fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHON", "TRANSFORMERS"))}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(cache),
        HF_HOME=str(tmp_path / "hf-home"),
        HF_MODULES_CACHE=str(tmp_path / "modules"),
    )
    run = subprocess.run(
        [python, "-c", _RUNNER, SPACE_REPO, *images],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    module = result["module"]  # the space's own file, as transformers imports remote code
    assert module.startswith("transformers_modules.acme.") and module.endswith(f".{COMMIT}.s3_pipeline"), module
    for p in images:
        assert_same(result["scores"][p], expected[p], p)
