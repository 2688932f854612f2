"""Hostile and mistaken model input: a checkpoint's own code never runs whatever stdin holds, pickle weights are
refused as untrusted, absurd configs are refused before allocation, unknown devices are typed errors, a space is
matched to its model by full identity and faces default to the model a space was built with."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from s3_hf.cli import main
from s3_hf.errors import InvalidConfigError, ModelLoadError, RemoteCodeError, S3Error
from s3_hf.models.loading import estimate_params, load_chat_model, load_model, resolve_device

EVIL_CODE = """from pathlib import Path
Path({marker!r}).write_text("code from the model folder ran")
from transformers import CLIPConfig, CLIPModel


class EvilConfig(CLIPConfig):
    model_type = "evilclip"


class EvilModel(CLIPModel):
    config_class = EvilConfig
"""


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(changes)
    path.write_text(json.dumps(data))


def _code_folder(tiny_clip_dir: Path, where: Path, file: str = "config.json") -> tuple[Path, Path]:
    """A copy of the tiny CLIP whose ``file`` maps an Auto class to a module that writes a marker when imported.
    config.json also gets a model type transformers does not know, so transformers itself would ask on stdin."""
    folder = _copy(tiny_clip_dir, where / "evil-clip")
    marker = where / "MARKER"
    (folder / "evil_code.py").write_text(EVIL_CODE.format(marker=str(marker)))
    auto_map = {
        "AutoConfig": "evil_code.EvilConfig",
        "AutoModelForZeroShotImageClassification": "evil_code.EvilModel",
        "AutoTokenizer": ["evil_code.EvilTokenizer", None],
        "AutoImageProcessor": "evil_code.EvilProcessor",
    }
    if file == "config.json":
        _edit_json(folder / file, model_type="evilclip", auto_map=auto_map)
    else:
        _edit_json(folder / file, auto_map=auto_map)
    return folder, marker


def _run_s3(*argv: str, stdin: str = "y\n", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    code = "import sys; from s3_hf.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The one ``error: ...`` line on stderr (a progress bar may share the stream)."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("error: ") == 1, proc.stderr
    return proc.stderr[proc.stderr.index("error: ") :].splitlines()[0]


# ------------------------------------------------------------------------------------ no code from a folder
def test_transformers_would_run_the_folder_code_when_asked(tiny_clip_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """The attack is real: transformers left to its default asks on stdin and, told 'y', imports the folder's code.
    (The marker is what the tests below prove never appears through s3-hf.)"""
    from transformers import AutoConfig

    folder, marker = _code_folder(tiny_clip_dir, tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    AutoConfig.from_pretrained(folder)
    assert marker.is_file()


@pytest.mark.parametrize("file", ["config.json", "tokenizer_config.json", "preprocessor_config.json"])
def test_load_model_refuses_a_folder_with_its_own_code(tiny_clip_dir: Path, tmp_path: Path, monkeypatch, file) -> None:
    folder, marker = _code_folder(tiny_clip_dir, tmp_path, file)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 10))
    with pytest.raises(RemoteCodeError, match="never runs a checkpoint's own code") as info:
        load_model(folder, device="cpu")
    assert str(folder) in str(info.value) and file in str(info.value)
    assert not marker.exists()


def test_cli_classify_never_runs_folder_code_whatever_stdin_holds(
    tiny_clip_dir: Path, tmp_path: Path, photos: list[Path]
) -> None:
    folder, marker = _code_folder(tiny_clip_dir, tmp_path)
    proc = _run_s3("classify", str(photos[0]), "--labels", "cat,dog", "--model", str(folder), stdin="y\n" * 10)
    line = _one_line_error(proc)
    assert "never runs a checkpoint's own code" in line and str(folder) in line
    assert not marker.exists()


def test_cli_synonyms_transformers_never_runs_folder_code(tiny_clip_dir: Path, tmp_path: Path) -> None:
    folder, marker = _code_folder(tiny_clip_dir, tmp_path)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    out = tmp_path / "syn.yaml"
    proc = _run_s3(
        "synonyms", str(labels), "--source", "transformers", "--model", str(folder), "--out", str(out), "--no-cache"
    )
    line = _one_line_error(proc)
    assert "never runs a checkpoint's own code" in line
    assert not marker.exists() and not out.exists()


def test_load_chat_model_refuses_a_folder_with_its_own_code(tiny_clip_dir: Path, tmp_path: Path, monkeypatch) -> None:
    folder, marker = _code_folder(tiny_clip_dir, tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 10))
    with pytest.raises(RemoteCodeError):
        load_chat_model(folder)
    assert not marker.exists()


def test_hub_id_with_its_own_code_is_refused_by_transformers_as_a_typed_error(
    tiny_clip_dir: Path, tmp_path: Path
) -> None:
    """A Hub id (here served from a local Hub cache) skips the folder check: transformers' own refusal, with
    trust_remote_code=False, surfaces as RemoteCodeError and the code never runs."""
    folder, marker = _code_folder(tiny_clip_dir, tmp_path)
    repo = tmp_path / "cache" / "models--acme--evil-clip"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    code = (
        "from s3_hf.models.loading import load_model\n"
        "try:\n    load_model('acme/evil-clip', device='cpu')\n"
        "except Exception as err:\n    print(type(err).__name__, '|', err)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input="y\n" * 10,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")},
    )
    assert proc.stdout.startswith("RemoteCodeError |"), proc.stdout + proc.stderr
    assert "acme/evil-clip" in proc.stdout
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ pickle weights
class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _pickle_folder(tiny_clip_dir: Path, where: Path) -> tuple[Path, Path]:
    folder = _copy(tiny_clip_dir, where / "pickle-clip")
    (folder / "model.safetensors").unlink()
    marker = where / "PICKLE_MARKER"
    torch.save({"text_model.embeddings.token_embedding.weight": _Evil(marker)}, folder / "pytorch_model.bin")
    return folder, marker


def test_malicious_pickle_weights_are_an_untrusted_pickle_error(tiny_clip_dir: Path, tmp_path: Path) -> None:
    folder, marker = _pickle_folder(tiny_clip_dir, tmp_path)
    with pytest.raises(ModelLoadError, match="untrusted pickle") as info:
        load_model(folder, device="cpu")
    assert "safetensors" in str(info.value)
    assert not marker.exists()


def test_cli_malicious_pickle_is_one_line_not_a_bug(tiny_clip_dir: Path, tmp_path: Path, photos, capsys) -> None:
    folder, marker = _pickle_folder(tiny_clip_dir, tmp_path)
    assert main(["classify", str(photos[0]), "--labels", "cat,dog", "--model", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "untrusted pickle" in err and "bug in s3-hf" not in err
    assert len(err.splitlines()) == 1 and not marker.exists()


# ------------------------------------------------------------------------------------ config sizes bounded
def _config_only(tiny_clip_dir: Path, where: Path, text: dict | None = None, vision: dict | None = None) -> Path:
    folder = _copy(tiny_clip_dir, where / "shapes")
    (folder / "model.safetensors").unlink()
    cfg = json.loads((folder / "config.json").read_text())
    cfg["text_config"].update(text or {})
    cfg["vision_config"].update(vision or {})
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_estimate_params_is_a_fair_bound_on_real_clip_sizes() -> None:
    """CLIP ViT-B/32's default config has 151 M parameters and ViT-g/14 about 1.4 G: the estimate is of that order
    and both fit under the default limit; the tiny fixture's real count is bounded from above."""
    from transformers import CLIPConfig, CLIPModel

    b32 = estimate_params(CLIPConfig().to_dict())
    assert 1.4e8 < b32 < 2.5e8
    g14 = CLIPConfig(
        text_config={
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
        },
        vision_config={
            "hidden_size": 1408,
            "num_attention_heads": 16,
            "intermediate_size": 6144,
            "num_hidden_layers": 40,
            "patch_size": 14,
            "image_size": 224,
        },
        projection_dim=1024,
    )
    assert 1.2e9 < estimate_params(g14.to_dict()) < 3e9
    open_clip_b32 = {  # open_clip's model_cfg keys
        "embed_dim": 512,
        "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12},
    }
    assert 1.4e8 < estimate_params(open_clip_b32) < 2.5e8
    tiny = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4},
        projection_dim=16,
    )
    assert estimate_params(tiny.to_dict()) >= sum(p.numel() for p in CLIPModel(tiny).parameters())


@pytest.mark.parametrize(
    ("text", "vision"),
    [
        ({"hidden_size": 10**6}, {}),
        ({"num_hidden_layers": 10**4, "hidden_size": 1024}, {}),
        ({"vocab_size": 10**12}, {}),
        ({}, {"image_size": 10**7}),
        ({}, {"hidden_size": 10**30}),
    ],
)
def test_absurd_config_sizes_are_refused_before_allocation(tiny_clip_dir: Path, tmp_path: Path, text, vision) -> None:
    folder = _config_only(tiny_clip_dir, tmp_path, text, vision)
    with pytest.raises(ModelLoadError, match="S3_MAX_MODEL_PARAMS"):
        load_model(folder, device="cpu")


def test_model_size_limit_is_an_operator_setting(tiny_clip_dir: Path, tmp_path: Path, monkeypatch) -> None:
    folder = _config_only(tiny_clip_dir, tmp_path)
    assert load_model(folder, device="cpu").random_weights  # the tiny config fits the default
    monkeypatch.setenv("S3_MAX_MODEL_PARAMS", "1000")
    with pytest.raises(ModelLoadError, match="too many to initialise at random"):
        load_model(folder, device="cpu")


# ------------------------------------------------------------------------------------------------- devices
@pytest.mark.parametrize("device", ["potato", "cuda:99", "cuda:-1", "meta", "", "cpu:x"])
def test_unknown_or_absent_devices_are_typed(device: str) -> None:
    with pytest.raises(InvalidConfigError, match="evice"):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA, so 'cuda' is a valid device here")
def test_cuda_without_cuda_is_typed() -> None:
    with pytest.raises(InvalidConfigError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_known_devices_resolve() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(torch.device("cpu")) == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    assert resolve_device(None) in ("cpu", "cuda")


@pytest.mark.parametrize("device", ["potato", "cuda:99"])
def test_cli_bad_device_is_one_line_before_loading(tiny_clip_dir: Path, photos, capsys, device: str) -> None:
    argv = ["classify", str(photos[0]), "--labels", "cat,dog", "--model", str(tiny_clip_dir), "--device", device]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and device in err and len(err.splitlines()) == 1


def test_chat_source_bad_device_is_typed(tiny_clip_dir: Path) -> None:
    from s3_hf.synonyms import TransformersChatSource

    source = TransformersChatSource(str(tiny_clip_dir), device="potato")
    with pytest.raises(S3Error, match="potato"):
        source.synonyms(["cat"])


# ---------------------------------------------------------------------------------------- hostile table
def _unlinked(folder: Path, name: str) -> Path:
    (folder / name).unlink()
    return folder


def _tiny(d: Path, t: Path) -> Path:
    return d


#: id -> (the model input, built from the tiny CLIP folder and a temporary folder; the device; the typed error; a
#: fragment of its message)
HOSTILE_MODELS = {
    "auto_map-config": (lambda d, t: _code_folder(d, t)[0], "cpu", RemoteCodeError, "config.json has an auto_map"),
    "auto_map-tokenizer": (
        lambda d, t: _code_folder(d, t, "tokenizer_config.json")[0],
        "cpu",
        RemoteCodeError,
        "tokenizer_config.json",
    ),
    "auto_map-processor": (
        lambda d, t: _code_folder(d, t, "processor_config.json")[0],
        "cpu",
        RemoteCodeError,
        "processor_config.json",
    ),
    "pickle": (lambda d, t: _pickle_folder(d, t)[0], "cpu", ModelLoadError, "untrusted pickle"),
    "huge-hidden": (lambda d, t: _config_only(d, t, {"hidden_size": 10**6}), "cpu", ModelLoadError, "too many"),
    "huge-layers": (
        lambda d, t: _config_only(d, t, {"num_hidden_layers": 10**4, "hidden_size": 1024}),
        "cpu",
        ModelLoadError,
        "too many",
    ),
    "huge-vocab": (lambda d, t: _config_only(d, t, {"vocab_size": 10**12}), "cpu", ModelLoadError, "too many"),
    "huge-image": (lambda d, t: _config_only(d, t, {}, {"image_size": 10**7}), "cpu", ModelLoadError, "too many"),
    "heads-mismatch": (lambda d, t: _config_only(d, t, {"hidden_size": 33}), "cpu", ModelLoadError, "not a multiple"),
    "string-size": (lambda d, t: _config_only(d, t, {"hidden_size": "abc"}), "cpu", ModelLoadError, "hidden_size"),
    "null-size": (lambda d, t: _config_only(d, t, {"hidden_size": None}), "cpu", ModelLoadError, "hidden_size"),
    "inf-size": (
        lambda d, t: _config_only(d, t, {"hidden_size": float("inf")}),
        "cpu",
        ModelLoadError,
        "hidden_size",
    ),
    "missing": (lambda d, t: str(t / "no" / "such" / "folder"), "cpu", ModelLoadError, "does not exist"),
    "a-file": (lambda d, t: (t / "f.json").write_text("{}") and str(t / "f.json"), "cpu", ModelLoadError, "is a file"),
    "empty-folder": (lambda d, t: (t / "e").mkdir() or str(t / "e"), "cpu", ModelLoadError, "holds no config.json"),
    "no-processor": (
        lambda d, t: _unlinked(_copy(d, t / "noproc"), "preprocessor_config.json"),
        "cpu",
        ModelLoadError,
        "preprocessor_config.json or processor_config.json",
    ),
    "no-tokenizer": (
        lambda d, t: _unlinked(_unlinked(_copy(d, t / "notok"), "tokenizer.json"), "tokenizer_config.json"),
        "cpu",
        ModelLoadError,
        "has no vocabulary",
    ),
    "device-potato": (_tiny, "potato", InvalidConfigError, "Unknown device 'potato'"),
    "device-cuda-99": (_tiny, "cuda:99", InvalidConfigError, "cuda:99"),
    "device-meta": (_tiny, "meta", InvalidConfigError, "not available"),
}


@pytest.mark.parametrize(("make", "device", "error", "fragment"), HOSTILE_MODELS.values(), ids=HOSTILE_MODELS.keys())
def test_hostile_model_inputs(tiny_clip_dir: Path, tmp_path: Path, monkeypatch, make, device, error, fragment) -> None:
    target = make(tiny_clip_dir, tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 10))
    with pytest.raises(error, match=fragment):
        load_model(target, device=device)
    assert not (tmp_path / "MARKER").exists() and not (tmp_path / "PICKLE_MARKER").exists()


# ------------------------------------------------------------------------------------------ model identity
def test_same_model_tells_apart_folders_that_share_a_name(tmp_path: Path, monkeypatch) -> None:
    from s3_hf.space.artifact import same_model

    a, b = tmp_path / "runs" / "a" / "checkpoint-500", tmp_path / "runs" / "b" / "checkpoint-500"
    a.mkdir(parents=True), b.mkdir(parents=True)
    assert not same_model(str(a), str(b))
    assert same_model(str(a), str(a) + "/")
    monkeypatch.chdir(tmp_path)
    assert not same_model("runs/a/checkpoint-500", "runs/b/checkpoint-500")
    assert same_model("runs/a/checkpoint-500", str(a))  # relative and absolute spellings of one folder
    assert same_model("./runs/../runs/a/checkpoint-500", "local-dir:" + str(a))


def test_same_model_hub_ids_by_id_and_revision(tmp_path: Path) -> None:
    from s3_hf.space.artifact import same_model

    hub = "openai/clip-vit-base-patch32"
    assert same_model(hub, hub) and not same_model(hub, "laion/clip-vit-base-patch32")
    assert same_model(hub, hub, "abc", None) and same_model(hub, hub, "abc", "abc")
    assert not same_model(hub, hub, "abc", "def")
    # a download of the repo: --local-dir named like it, or its snapshot in the Hub cache
    assert same_model(str(tmp_path / "models" / "clip-vit-base-patch32"), hub)
    snapshot = tmp_path / "hub" / "models--openai--clip-vit-base-patch32" / "snapshots" / "abc"
    assert same_model(hub, str(snapshot))
    assert not same_model(str(tmp_path / "models" / "clip-vit-large-patch14"), hub)
    assert not same_model(str(tmp_path / "hub" / "models--laion--clip" / "snapshots" / "abc"), hub)


def test_space_built_on_one_checkpoint_is_refused_with_its_namesake(
    tiny_clip_dir: Path, tmp_path: Path, photos, capsys
) -> None:
    """runs/a/checkpoint-500 and runs/b/checkpoint-500 are different models (here: different seeds)."""
    from helpers import make_tiny_clip

    from s3_hf import S3Engine
    from s3_hf.errors import ModelMismatchError

    a = _copy(tiny_clip_dir, tmp_path / "runs" / "a" / "checkpoint-500")
    b = make_tiny_clip(tmp_path / "runs" / "b" / "checkpoint-500", seed=1)
    space = S3Engine.from_pretrained(a, device="cpu").build_space(["cat", "dog"], {"cat": ["kitty"]})
    assert space.config.base_model == str(a.resolve())  # the full path is recorded
    space.save_pretrained(tmp_path / "space")
    with pytest.raises(ModelMismatchError, match="checkpoint-500"):
        S3Engine.from_pretrained(b, device="cpu").space(synonym_space=str(tmp_path / "space"))
    argv = ["classify", str(photos[0]), "--space", str(tmp_path / "space"), "--model", str(b)]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and "Traceback" not in err
    assert err[err.index("error: ") :].startswith("error: This space was built with")
    assert main([*argv[:-1], str(a)]) == 0


# ----------------------------------------------------------------- a space's own model is the default model
def test_cli_defaults_to_the_model_the_space_was_built_with(tiny_clip_dir: Path, tmp_path: Path, photos, capsys):
    """No --model: classify, fewshot and segment load the space's recorded base model (offline, the default Hub
    model would not load at all), and a classify with only a --support adapter loads the adapter's."""
    from PIL import Image

    space = tmp_path / "space"
    build = ["build", "cat,dog", "--synonyms", str(_synonyms(tmp_path)), "--out", str(space)]
    assert main([*build, "--model", str(tiny_clip_dir)]) == 0
    assert main(["classify", str(photos[0]), "--space", str(space), "--json"]) == 0
    support = tmp_path / "support"
    for label, photo in zip(["cat", "dog", "cat", "dog"], photos, strict=False):
        (support / label).mkdir(parents=True, exist_ok=True)
        Image.open(photo).save(support / label / f"{photo.stem}.png")
    assert main(["fewshot", str(support), "--space", str(space)]) == 0
    assert (space / "ssp_config.json").is_file()
    out = tmp_path / "seg"
    seg = ["segment", str(photos[0]), "--space", str(space), "--out", str(out)]
    assert main([*seg, "--short-side", "40", "--window", "32", "--stride", "16"]) == 0
    assert (out / "segments.json").is_file()
    assert main(["classify", str(photos[0]), "--space", str(space), "--support", str(space)]) == 0
    adapter = tmp_path / "adapter"  # fitted on labels alone: the adapter records the model
    assert (
        main(["fewshot", str(support), "--labels", "cat,dog", "--out", str(adapter), "--model", str(tiny_clip_dir)])
        == 0
    )
    assert main(["classify", str(photos[0]), "--labels", "cat,dog", "--support", str(adapter)]) == 0
    capsys.readouterr()
    # without a space, the default Hub model is still the default (and cannot load offline)
    assert main(["classify", str(photos[0]), "--labels", "cat,dog"]) == 2
    assert "openai/clip-vit-base-patch32" in capsys.readouterr().err


def test_cli_space_built_on_a_folder_not_here_asks_for_model(tiny_clip_dir: Path, tmp_path: Path, photos, capsys):
    model = _copy(tiny_clip_dir, tmp_path / "gone" / "checkpoint")
    space = tmp_path / "space"
    assert main(["build", "cat,dog", "--out", str(space), "--model", str(model)]) == 0
    shutil.rmtree(model)
    capsys.readouterr()
    assert main(["classify", str(photos[0]), "--space", str(space)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: The space") and "not on this machine: pass --model" in err
    assert str(model) in err


def _synonyms(where: Path) -> Path:
    path = where / "syn.json"
    path.write_text(json.dumps({"cat": ["kitty"], "dog": ["puppy"]}))
    return path


def test_a_folder_with_processor_config_json_loads(tiny_clip_dir: Path, tmp_path: Path) -> None:
    """CLIPProcessor.save_pretrained writes processor_config.json (no preprocessor_config.json): the load error's
    advice names both because both load."""
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPProcessor

    folder = _copy(tiny_clip_dir, tmp_path / "processor-saved")
    (folder / "preprocessor_config.json").unlink()
    image_processor = AutoImageProcessor.from_pretrained(tiny_clip_dir)
    CLIPProcessor(
        image_processor=image_processor, tokenizer=AutoTokenizer.from_pretrained(tiny_clip_dir)
    ).save_pretrained(folder)
    assert (folder / "processor_config.json").is_file() and not (folder / "preprocessor_config.json").exists()
    loaded = load_model(folder, device="cpu")
    assert loaded.image_processor.size == image_processor.size


@pytest.mark.parametrize("task", ["s3-zero-shot-classification", "s3-open-vocabulary-segmentation"])
def test_pipeline_bad_device_is_typed(tiny_clip_dir: Path, task: str) -> None:
    from transformers import pipeline

    with pytest.raises(InvalidConfigError, match="Unknown device 'potato'"):
        pipeline(task, model=str(tiny_clip_dir), device="potato")
