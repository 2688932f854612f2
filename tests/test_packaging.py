"""Packaging: eval/ is the s3_hf.evaluation package (no path hacks, no bare top-level modules), the wheel holds it and
the Space files once, the PEP 561 marker, one version, and optional dependencies that say how to install them."""

from __future__ import annotations

import email.parser
import importlib.metadata
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import s3_hf

ROOT = Path(__file__).resolve().parents[1]


def test_eval_imports_as_a_package_without_bare_modules(tmp_path):
    code = (
        "import sys, s3_hf, s3_hf.cli\n"
        "from s3_hf.evaluation import bench, report, runner\n"
        "from s3_hf.evaluation.data import registry\n"
        "from s3_hf.cli import load_eval_module\n"
        "assert load_eval_module('runner') is runner and runner.registry is registry\n"
        "bare = {'registry', 'report', 'bench', 'runner'} & set(sys.modules)\n"
        "print(sorted(bare), registry.__name__, runner.METRIC_DIR.is_dir())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["[]", "s3_hf.evaluation.data.registry", "True"]


def test_no_path_hacks():
    for path in [*(ROOT / "s3_hf" / "evaluation").rglob("*.py"), *(ROOT / "s3_hf" / "cli").glob("*.py")]:
        text = path.read_text()
        for hack in ("sys.path.insert", "sys.path.append", "spec_from_file_location", "/shared"):
            assert hack not in text, f"{path.name}: {hack}"
        assert not re.search(r"^\s*(import|from) (registry|report|bench|runner)\b", text, re.M), path.name


def test_one_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert importlib.metadata.version("s3-hf") == s3_hf.__version__


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(ROOT)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    (path,) = out.glob("s3_hf-*.whl")
    return path


def test_wheel_is_the_package_folder_as_it_is(wheel):
    assert wheel.name.startswith(f"s3_hf-{s3_hf.__version__}-py3-none-any")
    names = zipfile.ZipFile(wheel).namelist()
    assert len(names) == len(set(names))
    packaged = sorted(n for n in names if n.startswith("s3_hf/"))
    source = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "s3_hf").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )
    assert packaged == source  # evaluation, the card template, the Space template and data files included
    for name in ("s3_hf/evaluation/runner.py", "s3_hf/app/space_template/app.py", "s3_hf/space/card_template.md"):
        assert name in names
    # PEP 561: type checkers read the package's inline annotations only when the marker ships at its top
    assert "s3_hf/py.typed" in names and (ROOT / "s3_hf" / "py.typed").is_file()
    top = {n.split("/")[0] for n in names}
    assert top == {"s3_hf", f"s3_hf-{s3_hf.__version__}.dist-info"}


def test_wheel_metadata_extras(wheel):
    with zipfile.ZipFile(wheel) as zf:
        meta = email.parser.Parser().parsestr(zf.read(f"s3_hf-{s3_hf.__version__}.dist-info/METADATA").decode())
    requires = meta.get_all("Requires-Dist")
    core = [r for r in requires if "extra ==" not in r]
    assert not any(r.startswith("nltk") for r in core)
    assert "nltk>=3.8; extra == 'wordnet'" in requires
    assert any(re.fullmatch(r"huggingface-hub>=2\.0", r) for r in core)
    assert any(r.startswith("torch>=2.4") for r in core)
    test_extra = {r.split(";")[0].split(">")[0] for r in requires if "extra == 'test'" in r}
    for extra in ("eval", "app", "wordnet", "demo"):
        assert {r.split(";")[0].split(">")[0] for r in requires if f"extra == '{extra}'" in r} <= test_extra, extra


def test_wordnet_without_nltk_says_which_extra_to_install(monkeypatch):
    from s3_hf.errors import WordNetMissingError
    from s3_hf.synonyms import WordNetSource
    from s3_hf.synonyms.wordnet import load_wordnet

    monkeypatch.setitem(sys.modules, "nltk", None)  # import nltk -> ImportError
    load_wordnet.cache_clear()
    try:
        with pytest.raises(WordNetMissingError, match=re.escape("pip install 's3-hf[wordnet]'")):
            WordNetSource()
    finally:
        load_wordnet.cache_clear()
