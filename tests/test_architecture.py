"""The seams: import costs and directions, lazy task registration, one home for each shared mechanism."""

from __future__ import annotations

import json
import pkgutil
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import s3_hf

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(s3_hf.__file__).resolve().parent


def library_modules() -> list[str]:
    """Every module of the installed package except the evaluation (a face, shipped inside it)."""
    names = ["s3_hf"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="s3_hf."):
        if not info.name.startswith(("s3_hf.evaluation", "s3_hf.space_app", "s3_hf.hub_cards")):
            names.append(info.name)
    return sorted(names)


def imported_by(module: str) -> set[str]:
    code = f"import importlib, json, sys; importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_library_modules_never_import_eval_or_the_app_and_the_core_stays_light():
    modules = library_modules()
    assert {
        "s3_hf.engine.core",
        "s3_hf.pipelines.classification",
        "s3_hf.space.geometry",
        "s3_hf.space.scoring",
        "s3_hf.cli.commands",
    } <= set(modules)
    with ThreadPoolExecutor(max_workers=2) as pool:
        loaded = dict(zip(modules, pool.map(imported_by, modules), strict=True))
    for module, names in loaded.items():
        faces = sorted(n for n in names if n.startswith(("s3_hf.evaluation", "space_app", "registry", "report", "app")))
        assert not faces, f"{module} imports {faces}"
    for light in (
        "s3_hf",
        "s3_hf.space.geometry",
        "s3_hf.space.scoring",
        "s3_hf.options",
        "s3_hf.errors",
        "s3_hf.cli.commands",
    ):
        assert "transformers" not in loaded[light], f"{light} imports transformers"
    for lightest in ("s3_hf", "s3_hf.options", "s3_hf.cli.commands"):
        assert "torch" not in loaded[lightest], f"{lightest} imports torch"


def test_s3_help_does_not_import_transformers():
    code = "import sys; from s3_hf.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    code += "print('transformers' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False False"


@pytest.mark.parametrize("order", ["s3_hf first", "transformers first"])
def test_task_is_registered_lazily_in_either_import_order(tiny_clip_dir, photos, order):
    first, second = ("import s3_hf", "import transformers.pipelines")
    if order != "s3_hf first":
        first, second = second, first
    code = (
        f"{first}\n{second}\nfrom transformers import pipeline\nimport s3_hf\n"
        f"pipe = pipeline(s3_hf.TASK, model={str(tiny_clip_dir)!r})\n"
        f"print(type(pipe).__name__, pipe({str(photos[0])!r}, candidate_labels=['cat', 'dog'])[0]['label'] in "
        "('cat', 'dog'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "S3ZeroShotImageClassificationPipeline True"


def test_public_names_resolve_and_are_listed():
    for name in s3_hf.__all__:
        assert getattr(s3_hf, name) is not None, name
    assert "annotations" not in s3_hf.__all__ and not hasattr(s3_hf, "annotations")
    with pytest.raises(AttributeError):
        _ = s3_hf.no_such_name


def _sources() -> dict[str, str]:
    folders = [PACKAGE, ROOT / "eval", ROOT / "space_app"]
    out = {}
    for folder in folders:
        for path in folder.rglob("*.py"):
            if "metrics" in path.parts and path.parent.parent.name == "metrics":
                continue  # the evaluate modules, loaded by path
            rel = str(path.relative_to(ROOT if ROOT in path.parents else PACKAGE.parent))
            out.setdefault(rel.replace("s3_hf/eval/", "eval/"), path.read_text(encoding="utf-8"))
    return out


@pytest.mark.parametrize(
    ("what", "pattern", "home"),
    [
        ("atomic writes", r"mkstemp|os\.replace\(|\.rename\(|tmp\.replace\(|\.tmp\b", {"s3_hf/fileio.py"}),
        ("figure files", r"\.savefig\(", {"s3_hf/fileio.py"}),
        ("Hub downloads", r"hf_hub_download\(|snapshot_download\(", {"s3_hf/hub.py"}),
        ("Hub uploads", r"\.upload_folder\(|\.create_repo\(", {"s3_hf/hub.py"}),
        ("image suffix sets", r"\"\.jpe?g\"\s*,", {"s3_hf/encoding.py"}),
        ("model loading", r"Model\w*\.from_pretrained\(|Model\w*\.from_config\(|Model\(\w*Config", {"s3_hf/models.py"}),
    ],
)
def test_one_implementation_of_each_mechanism(what, pattern, home):
    found = {name for name, text in _sources().items() if re.search(pattern, text)}
    assert found <= home, f"{what} are implemented outside {sorted(home)}: {sorted(found - home)}"
