"""A deployable Gradio Space, built from this installation of s3-hf.

``s3 space build DIR`` writes the Space's ``app.py``, its ``README.md`` (whose front matter configures the
Space), the s3-hf wheel, and a ``requirements.txt`` that installs s3-hf with the app's extras from that wheel, so
the Space needs no unpublished package from an index. ``s3 space push DIR REPO_ID`` uploads the folder to a
Gradio Space repository.

The Space files come from the repository's ``space_app/`` folder (shipped in the wheel as ``s3_hf/space_app``);
they are read as files, never imported.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import io
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

from .errors import SpaceBuildError

DIST_NAME = "s3-hf"
WHEEL_PREFIX = "s3_hf-"
EXTRAS = "app"
SPACE_FILES = ("app.py", "README.md", "requirements.txt")
REQUIREMENTS_HEADER = "# s3-hf and the app's dependencies, from the wheel beside this file (`s3 space build`).\n"
_NOT_COPIED = {"README.md", "requirements.txt"}  # written by build_space, not copied from space_app/


def space_app_dir() -> Path:
    """The ``space_app`` folder: inside the installed package (a wheel), else beside it (a checkout)."""
    here = Path(__file__).resolve().parent
    for folder in (here / "space_app", here.parent / "space_app"):
        if (folder / "app.py").is_file() and (folder / "README.md").is_file():
            return folder
    raise SpaceBuildError(
        "The Space files (space_app/app.py and README.md) are missing from this installation of s3-hf: "
        "reinstall it from its wheel or run from a checkout of the repository."
    )


def source_tree() -> Path | None:
    """The project folder this package is imported from (a checkout or an editable install), if any."""
    root = Path(__file__).resolve().parent.parent
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return root if project.get("name") == DIST_NAME else None


def build_wheel(source: Path, dest: Path) -> Path:
    """``pip wheel --no-deps`` of the project folder ``source`` into ``dest``; the wheel's path."""
    before = set(dest.glob(f"{WHEEL_PREFIX}*.whl"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dest), str(source)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    built = sorted(set(dest.glob(f"{WHEEL_PREFIX}*.whl")) - before)
    if res.returncode != 0 or len(built) != 1:
        reason = " ".join((res.stderr or res.stdout).strip().splitlines()[-2:]) or f"exit code {res.returncode}"
        raise SpaceBuildError(
            f"Could not build the s3-hf wheel from {source} ({reason}). Build it where pip can fetch the build "
            f"backend (`pip wheel --no-deps -w dist {source}`) and pass it with --wheel."
        )
    return built[0]


def _b64_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack_installed(dest: Path) -> Path:
    """Rebuild the wheel of an installed (not editable) s3-hf from its installed files, each checked against the
    hash its wheel recorded in ``RECORD``; the wheel's path in ``dest``."""
    advice = "pass the wheel to ship with --wheel, or run from a checkout of the repository"
    try:
        dist = importlib.metadata.distribution(DIST_NAME)
    except importlib.metadata.PackageNotFoundError as err:
        raise SpaceBuildError(f"s3-hf is not installed as a package here: {advice}.") from err
    record, wheel_info = dist.read_text("RECORD"), dist.read_text("WHEEL")
    if not record or not wheel_info:
        raise SpaceBuildError(f"The installed s3-hf has no RECORD or WHEEL file to rebuild its wheel from: {advice}.")
    rows = [row for row in csv.reader(io.StringIO(record)) if row]
    info_dir = next(p.split("/")[0] for p, *_ in rows if p.split("/")[0].endswith(".dist-info"))
    installer_files = {f"{info_dir}/{n}" for n in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}
    root = Path(str(dist.locate_file("")))
    files: dict[str, bytes] = {}
    modified = []
    for path, digest, *_ in rows:
        # scripts outside site-packages are regenerated from entry_points.txt; byte code is the installer's
        if path in installer_files or not digest or path.startswith(("../", "/")) or "__pycache__" in path:
            continue
        data = (root / path).read_bytes()
        if digest != f"sha256={_b64_sha256(data)}":
            modified.append(path)
        files[path] = data
    if "s3_hf/__init__.py" not in files:
        raise SpaceBuildError(f"The installed s3-hf is an editable install whose source folder is gone: {advice}.")
    if modified:
        raise SpaceBuildError(
            f"{len(modified)} installed s3-hf file(s) differ from the wheel they came from "
            f"({', '.join(modified[:3])}): {advice}."
        )
    tag = next(line.split(":", 1)[1].strip() for line in wheel_info.splitlines() if line.startswith("Tag:"))
    out = dest / f"{WHEEL_PREFIX}{dist.version}-{tag}.whl"
    listing = io.StringIO()
    writer = csv.writer(listing, lineterminator="\n")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(files, key=lambda p: (p.startswith(info_dir), p)):  # metadata last, as wheels have it
            zf.writestr(path, files[path])
            writer.writerow([path, f"sha256={_b64_sha256(files[path])}", len(files[path])])
        writer.writerow([f"{info_dir}/RECORD", "", ""])
        zf.writestr(f"{info_dir}/RECORD", listing.getvalue())
    return out


def ship_wheel(dest: Path, wheel: str | os.PathLike | None = None) -> Path:
    """Put the s3-hf wheel into ``dest``: ``wheel`` when given, else built from the source tree (a checkout or an
    editable install), else rebuilt from the installed files."""
    if wheel is not None:
        path = Path(wheel)
        if not path.is_file() or not path.name.startswith(WHEEL_PREFIX) or path.suffix != ".whl":
            raise SpaceBuildError(f"--wheel {path} is not an s3-hf wheel file ({WHEEL_PREFIX}<version>-....whl).")
        return Path(shutil.copy2(path, dest / path.name))
    source = source_tree()
    return build_wheel(source, dest) if source is not None else repack_installed(dest)


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SpaceBuildError(f"{out} is a file: choose a folder for the Space.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SpaceBuildError(f"{out} is not empty: pass --overwrite to replace it, or choose another folder.")


def build_space(out: str | os.PathLike, *, wheel: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Write a deployable Gradio Space folder.

    The folder is assembled in a temporary folder beside ``out`` and moved into place at the end, so ``out`` is
    never left half written.

    Args:
        out: the folder to write; it must not exist, be empty, or ``overwrite`` must be set.
        wheel: an s3-hf wheel to ship; default: built from the source tree, or rebuilt from the installed package.
        overwrite: replace a non-empty ``out``.
    """
    out = Path(out).absolute()
    _check_target(out, overwrite)
    app = space_app_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp.chmod(0o755)
        for f in sorted(app.iterdir()):
            if f.is_file() and f.suffix == ".py" and f.name not in _NOT_COPIED:
                shutil.copy2(f, tmp / f.name)
        shutil.copy2(app / "README.md", tmp / "README.md")
        shipped = ship_wheel(tmp, wheel)
        (tmp / "requirements.txt").write_text(f"{REQUIREMENTS_HEADER}./{shipped.name}[{EXTRAS}]\n", encoding="utf-8")
        _check_target(out, overwrite)  # nothing appeared there meanwhile
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.replace(old / out.name)
            tmp.replace(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def check_space(folder: str | os.PathLike) -> list[str]:
    """The files of a Space folder written by :func:`build_space`; :class:`SpaceBuildError` if it is not one."""
    folder = Path(folder)
    missing = [name for name in SPACE_FILES if not (folder / name).is_file()]
    if not folder.is_dir() or missing:
        raise SpaceBuildError(
            f"{folder} is not a Space folder (missing {', '.join(missing) or 'the folder'}): write one with "
            "`s3 space build DIR`."
        )
    wheels = [line.split("[")[0].removeprefix("./") for line in (folder / "requirements.txt").read_text().splitlines()]
    absent = [w for w in wheels if w.endswith(".whl") and not (folder / w).is_file()]
    if absent:
        raise SpaceBuildError(f"{folder}/requirements.txt installs {absent[0]}, which is missing: rebuild the folder.")
    return sorted(p.name for p in folder.iterdir() if p.is_file())


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
    from .hub import upload

    folder = Path(folder)
    names = check_space(folder)

    def write(tmp: Path, _repo: str) -> Path:
        for name in names:
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
