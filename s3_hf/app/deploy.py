"""A deployable Gradio Space, built from this installation of s3-hf.

``s3 space build DIR`` writes the Space's ``app.py``, its ``README.md`` (whose front matter configures the
Space), a copy of the ``s3_hf`` package beside the app (importable from the Space's working folder) and a
``requirements.txt`` listing s3-hf's own dependencies and the app's. The Space then needs no unpublished package
from an index, and no file but ``requirements.txt`` while its environment is installed (the Spaces builder
installs the requirements before it copies the rest of the repository). ``s3 space push DIR REPO_ID`` uploads the
folder to a Gradio Space repository.

The Space's ``app.py`` and ``README.md`` come from the template folder beside this module (``space_template/``);
they are read as files, never imported, and filled in for what the Space is built for (:mod:`s3_hf.app.space_config`:
the model and synonym space preloaded at build time and opened at start-up, ZeroGPU).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import tomllib
from pathlib import Path

from s3_hf.app.space_config import SPACES_PACKAGE, SpaceTarget, app_text, readme_text, resolve_target
from s3_hf.errors import SpaceBuildError
from s3_hf.io.files import write_folder

DIST_NAME = "s3-hf"
PACKAGE = "s3_hf"
EXTRA = "app"
SPACE_FILES = ("app.py", "README.md", "requirements.txt")
REQUIREMENTS_HEADER = (
    "# The dependencies of s3-hf and of the app (`s3 space build`); s3-hf itself is the s3_hf/ folder beside app.py.\n"
)
# Not shipped inside the Space's copy of the package: the evaluation and the Space's own source files.
_SKIPPED = {"evaluation", "__pycache__"}


def package_dir() -> Path:
    """The folder of the ``s3_hf`` package this code runs from."""
    return Path(__file__).resolve().parent.parent


def space_app_dir() -> Path:
    """The Space template folder (``app.py`` and ``README.md``), inside the package."""
    folder = Path(__file__).resolve().parent / "space_template"
    if (folder / "app.py").is_file() and (folder / "README.md").is_file():
        return folder
    raise SpaceBuildError(
        "The Space template (s3_hf/app/space_template/app.py and README.md) is missing from this installation of "
        "s3-hf: reinstall it."
    )


def _requirement_lines() -> list[str]:
    """The requirements of s3-hf and its ``app`` extra, from the project file of a checkout or else from the
    installed package's metadata."""
    pyproject = package_dir().parent / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        project = {}
    if project.get("name") == DIST_NAME:
        extras = project.get("optional-dependencies", {})
        lines = [*project.get("dependencies", []), *extras.get(EXTRA, [])]
    else:
        try:
            requires = importlib.metadata.requires(DIST_NAME) or []
        except importlib.metadata.PackageNotFoundError as err:
            raise SpaceBuildError(
                "s3-hf's dependencies are unknown here (no installed metadata, no pyproject.toml): install s3-hf "
                "or run from a checkout of the repository."
            ) from err
        lines = []
        for req in requires:
            spec, _, marker = req.partition(";")
            extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
            if not marker.strip() or (extra and extra.group(1) == EXTRA and marker.count("extra") == 1):
                lines.append(spec.strip())
    out: list[str] = []
    for line in lines:
        name = re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0].lower().replace("_", "-")
        if name != DIST_NAME and line not in out:
            out.append(line)
    return out


def _copy_package(dest: Path) -> None:
    """Copy the package's Python files and model-card templates into ``dest/s3_hf``."""

    src = package_dir()

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in _SKIPPED or n.endswith((".pyc", ".pyo"))}
        return skipped if Path(folder).resolve() == src else {n for n in names if n == "__pycache__" or n in skipped}

    shutil.copytree(src, dest / PACKAGE, ignore=ignore, symlinks=False)


def build_space(out: str | os.PathLike, *, overwrite: bool = False, target: SpaceTarget | None = None) -> Path:
    """Write a deployable Gradio Space folder.

    The folder is assembled in a temporary folder beside ``out`` and moved into place at the end, so ``out`` is
    never left half written.

    Args:
        out: the folder to write; it must not exist, be empty, or ``overwrite`` must be set.
        overwrite: replace a non-empty ``out``.
        target: the model and synonym space the Space serves and whether it runs on ZeroGPU (default: the app's
            default model, no space, any hardware); see :func:`~s3_hf.app.space_config.resolve_target`.
    """
    target = target or SpaceTarget()
    app = space_app_dir()
    requirements = _requirement_lines()
    if target.zero_gpu and SPACES_PACKAGE not in requirements:
        requirements.append(SPACES_PACKAGE)

    def fill(tmp: Path) -> None:
        for f in sorted(app.iterdir()):
            if f.is_file() and f.suffix == ".py":
                text = f.read_text(encoding="utf-8")
                (tmp / f.name).write_text(app_text(text, target) if f.name == "app.py" else text, encoding="utf-8")
        readme = readme_text((app / "README.md").read_text(encoding="utf-8"), target)
        (tmp / "README.md").write_text(readme, encoding="utf-8")
        _copy_package(tmp)
        (tmp / "requirements.txt").write_text(REQUIREMENTS_HEADER + "\n".join(requirements) + "\n", encoding="utf-8")

    try:
        return write_folder(out, fill, overwrite=overwrite)
    except FileExistsError as err:
        raise SpaceBuildError(
            f"{err}: pass --overwrite to replace it, or choose another folder for the Space."
        ) from err


def check_space(folder: str | os.PathLike) -> list[str]:
    """The files of a Space folder written by :func:`build_space` (relative paths); :class:`SpaceBuildError` if it
    is not one."""
    folder = Path(folder)
    missing = [name for name in (*SPACE_FILES, f"{PACKAGE}/__init__.py") if not (folder / name).is_file()]
    if not folder.is_dir() or missing:
        raise SpaceBuildError(
            f"{folder} is not a Space folder (missing {', '.join(missing) or 'the folder'}): write one with "
            "`s3 space build DIR`."
        )
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def push_space(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str = "Upload the S^3 Gradio Space (s3 space push)",
) -> str:
    """Upload a Space folder written by :func:`build_space` to the Gradio Space ``repo_id``, creating it if needed;
    returns the commit URL.

    Args:
        folder: the folder ``s3 space build`` wrote.
        repo_id: ``"org/name"`` of the Space.
        token: a token with write access (default: ``HF_TOKEN`` or ``hf auth login``).
        private: create the Space private.
        commit_message: the commit message.
    """
    from s3_hf.io.hub import upload

    folder = Path(folder)
    names = check_space(folder)

    def write(tmp: Path, _repo: str) -> Path:
        for name in names:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / name, tmp / name)
        return tmp

    return upload(
        repo_id,
        write,
        token=token,
        private=private,
        commit_message=commit_message,
        repo_type="space",
        space_sdk="gradio",
    )


__all__ = [
    "SpaceTarget",
    "build_space",
    "check_space",
    "package_dir",
    "push_space",
    "resolve_target",
    "space_app_dir",
]
