"""Atomic file writes: the one mechanism behind every file s3-hf saves (spaces, adapters, caches, synonym files,
evaluation results); and reading users' text files with typed errors.

Each file is written under a temporary name in its destination folder and renamed into place only once every
file of the set is complete, so a crash or an error never leaves a half-written file, and readers see either the
old files or the new ones. Files get the permissions the user's umask gives new files (``mkstemp`` alone would
make them private to their owner).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_umask_lock = threading.Lock()


def _umask() -> int:
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def write_files(folder: str | os.PathLike, writers: Mapping[str, Callable[[Path], None]]) -> Path:
    """Write several files into ``folder`` (created if needed) all-or-nothing.

    Args:
        folder: the destination folder.
        writers: file name -> a function that writes the file's content to the path it is given.

    Returns:
        The folder. On any error no destination file is changed and the temporary files are removed.
    """
    target = Path(folder)
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    mode = 0o666 & ~_umask()
    written: list[tuple[Path, Path]] = []
    try:
        for name, write in writers.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=target)
            os.close(fd)
            written.append((Path(tmp), target / name))
            write(Path(tmp))
            os.chmod(tmp, mode)
        for tmp, final in written:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def write_folder(folder: str | os.PathLike, fill: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Write a whole folder atomically: ``fill(tmp)`` writes it in a temporary folder beside ``folder``, which then
    takes its place (an existing ``folder`` is replaced only with ``overwrite``; it must be empty otherwise).

    Args:
        folder: the destination folder.
        fill: writes the folder's content into the path it is given.
        overwrite: replace a non-empty ``folder``.

    Raises:
        FileExistsError: ``folder`` is a file, or is not empty and ``overwrite`` is not set.
    """
    target = Path(folder).absolute()

    def check() -> None:
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"{target} is a file")
        if target.is_dir() and any(target.iterdir()) and not overwrite:
            raise FileExistsError(f"{target} is not empty")

    check()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        tmp.chmod(0o777 & ~_umask())
        fill(tmp)
        check()  # nothing appeared there meanwhile
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_user_text(path: str | os.PathLike, error: type[Exception], what: str) -> str:
    """A user's UTF-8 text file (labels, synonyms, templates, results); ``error`` names the problem otherwise.

    Args:
        path: the file.
        error: the typed error to raise (an :class:`~s3_hf.errors.S3Error` subclass).
        what: what the file should hold, for the message (``"labels file"``).
    """
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise error(f"{what} {path} is not UTF-8 text ({err.reason} at byte {err.start}): save it as UTF-8.") from err
    except IsADirectoryError as err:
        raise error(f"{what} {path} is a folder: pass the file.") from err
    except FileNotFoundError as err:
        raise error(f"{what} {path} does not exist.") from err
    except OSError as err:
        raise error(f"Cannot read {what} {path}: {err.strerror or err}.") from err


def load_json_text(text: str | bytes, error: type[Exception], what: str, fix: str = "Fix it.") -> Any:
    """Parse JSON from a user, a file or a server; ``error`` when it is not JSON or nests too deeply to parse.

    Args:
        text: the JSON text.
        error: the typed error to raise (an :class:`~s3_hf.errors.S3Error` subclass).
        what: what the text is, for the message (``"labels file labels.json"``).
        fix: what to do about it, the message's last sentence.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"Cannot parse {what}: it nests lists or objects too deeply. {fix}") from None
    except ValueError as err:
        raise error(f"Cannot parse {what}: not valid JSON ({err}). {fix}") from err


def load_yaml_text(text: str, error: type[Exception], what: str, loader: type | None = None) -> Any:
    """Parse YAML safely (``yaml.SafeLoader`` or a subclass of it as ``loader``); ``error`` when it is not YAML or
    nests too deeply to parse.

    Args:
        text: the YAML text.
        error: the typed error to raise (an :class:`~s3_hf.errors.S3Error` subclass).
        what: what the text is, for the message.
        loader: a safe loader class; ``yaml.SafeLoader`` by default.
    """
    import yaml

    loader = loader or yaml.SafeLoader
    if not issubclass(loader, yaml.SafeLoader):
        raise TypeError("load_yaml_text takes only safe loaders")
    try:
        return yaml.load(text, Loader=loader)
    except RecursionError:
        raise error(f"Cannot parse {what}: it nests lists or mappings too deeply; flatten it.") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        raise error(f"Cannot parse {what}: not valid YAML{where} ({problem}). Fix it.") from err


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    path = Path(path)
    write_files(path.parent, {path.name: lambda p: p.write_text(text, encoding="utf-8")})
    return path


def write_json(path: str | os.PathLike, data: Any, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON to ``path`` atomically."""
    return write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, Any], metadata: dict[str, str] | None = None) -> Path:
    """Write tensors as safetensors to ``path`` atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    contiguous = {k: v.contiguous() for k, v in tensors.items()}
    write_files(path.parent, {path.name: lambda p: save_file(contiguous, str(p), metadata=metadata)})
    return path


__all__ = [
    "load_json_text",
    "load_yaml_text",
    "read_user_text",
    "save_tensors",
    "write_files",
    "write_folder",
    "write_json",
    "write_text",
]
