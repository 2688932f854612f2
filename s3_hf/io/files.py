"""Atomic writes: the one mechanism behind every file s3-hf saves (spaces, adapters, caches, synonym files,
evaluation results); and reading users' text files with typed errors.

Single files (:func:`write_files`) are written under a temporary name in their folder and renamed into place once
every file of the set is complete. A whole artifact (:func:`write_artifact`, :func:`write_folder`) is written into a
temporary folder beside its target and swapped in with one atomic step (``renameat2(RENAME_EXCHANGE)`` on Linux;
elsewhere two renames under a lock, undone by the next write or load if a kill falls between them), so a crash, a
kill or a concurrent writer leaves the old artifact or the new one, never a mix. Temporary folders and files carry
their writer's process id; the next write beside them removes those of writers that are gone. Files get the
permissions the user's umask gives new files (a temporary file alone would be private to its owner).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows: writers are then not serialised, each swap is still whole
    fcntl = None  # type: ignore[assignment]

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
    if not created:
        _sweep(target)
    mode = 0o666 & ~_umask()
    written: list[tuple[Path, Path]] = []
    try:
        for name, write in writers.items():
            tmp = target / f".{name}.{_tag()}.tmp"  # the writer's pid in the name: the next write can tell it is gone
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            written.append((tmp, target / name))
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
    takes its place in one step (an existing ``folder`` is replaced only with ``overwrite``; it must be empty
    otherwise). Nothing of the old folder is kept.

    Args:
        folder: the destination folder.
        fill: writes the folder's content into the path it is given.
        overwrite: replace a non-empty ``folder``.

    Raises:
        FileExistsError: ``folder`` is a file, or is not empty and ``overwrite`` is not set.
    """
    target = target_folder(folder)

    def check() -> None:
        if target.is_dir() and any(target.iterdir()) and not overwrite:
            raise FileExistsError(f"{target} is not empty")

    check()
    return _replace(target, fill, carry=None, check=check)


def write_artifact(
    folder: str | os.PathLike, writers: Mapping[str, Callable[[Path], None]], *, drop: Collection[str] = ()
) -> Path:
    """Replace an artifact's files in ``folder`` (created if needed) as one atomic step.

    The files are written into a temporary folder beside ``folder`` together with every other entry ``folder``
    already holds (hard links where the file system allows, else copies; so a user's notes, a model card they
    edited or a few-shot adapter saved beside a space are kept), and that folder is swapped in. A concurrent writer
    or a kill leaves the old folder or the new one, never a mix of both.

    Args:
        folder: the artifact folder. It cannot be the current working folder or hold it (the swap would leave the
            shell that works there in a removed folder).
        writers: file name -> a function that writes the file's content to the path it is given.
        drop: names of entries of the old folder not to carry over (e.g. a few-shot adapter that no longer fits).

    Raises:
        NotADirectoryError: ``folder`` is a file.
        IsADirectoryError: ``folder`` is the current working folder or one of its parents.
    """
    target = target_folder(folder)
    mode = 0o666 & ~_umask()
    leftovers = re.compile("|".join(rf"\.{re.escape(name)}\..+\.tmp" for name in writers))

    def fill(tmp: Path) -> None:
        for name, write in writers.items():
            write(tmp / name)
            os.chmod(tmp / name, mode)

    def carry(name: str) -> bool:  # per-file temp names of the artifact's own files, left by an older s3-hf, go
        return name not in writers and name not in drop and not leftovers.fullmatch(name)

    return _replace(target, fill, carry=carry)


def recover_folder(folder: str | os.PathLike) -> bool:
    """Put back an artifact folder that a writer killed between its two renames left missing; remove the
    temporary folders of writers that are gone. Returns whether ``folder`` exists afterwards.

    Args:
        folder: the artifact folder (a path that does not name a local folder's place is left alone).
    """
    target = Path(folder).absolute()
    if not target.parent.is_dir():
        return False
    with _locked(target.parent):
        _clean(target)
    return target.is_dir()


# ------------------------------------------------------------------------------------- whole-folder swaps
_RENAME_NOREPLACE, _RENAME_EXCHANGE, _AT_FDCWD = 1, 2, -100
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
# ".<name>." + "<pid>-<host>-<random>.tmp" (a folder being written) or "old.<pid>-<host>-<random>" (the old folder
# between two renames); the forms without pid are those of older s3-hf versions (mkdtemp's random part).
_TEMP = re.compile(r"(?P<old>old\.)?(?:(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-[0-9a-f]+|[a-z0-9_]{8})(?P<tmp>\.tmp)?")


def _load_renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc before 2.28, musl: use the locked two-rename path
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _load_renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders atomically; False where the system or the file system cannot."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _stale_after() -> float:
    from s3_hf.limits import STALE_TEMP_MINUTES

    return STALE_TEMP_MINUTES.get() * 60


def _tag() -> str:
    return f"{os.getpid()}-{_HOST}-{secrets.token_hex(4)}"


def target_folder(folder: str | os.PathLike) -> Path:
    """The folder a whole-folder write would replace, made absolute (a link to a folder resolved to that folder);
    :class:`NotADirectoryError` if it is a file, :class:`IsADirectoryError` if it is the current working folder or
    holds it. Faces call it to refuse a bad ``--out`` before any work."""
    target = Path(os.path.abspath(folder))
    if target.is_symlink() and target.is_dir():  # swap the folder the link points to, keep the link
        target = target.resolve()
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} is a file")
    cwd = Path.cwd()
    if target == cwd or target in cwd.parents:
        raise IsADirectoryError(f"{target} is the current working folder or holds it; write into a subfolder")
    return target


@contextlib.contextmanager
def _locked(parent: Path) -> Iterator[None]:
    """Serialise s3-hf's writers (and recovery) of the artifacts in ``parent`` across processes and threads."""
    try:
        fd = os.open(parent, os.O_RDONLY)
    except OSError:
        fd = -1
    try:
        if fd >= 0 and fcntl is not None:
            with contextlib.suppress(OSError):  # a file system without locks: swaps stay whole, only unserialised
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd >= 0:
            os.close(fd)


def _stale(path: Path, match: re.Match[str]) -> bool:
    """A temporary entry whose writer is gone: its process is dead (same host), or it is older than the limit."""
    try:
        age = time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    if age > _stale_after():
        return True
    if match["pid"] is None or match["host"] != _HOST:
        return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


# A file being written by write_files: ".<name>.<pid>-<host>-<random>.tmp" (".<name>.<mkstemp's random>.tmp" from
# older s3-hf versions).
_FILE_TEMP = re.compile(r"\..+\.(?:(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-[0-9a-f]+|[a-z0-9_]{8})\.tmp")
_swept: set[str] = set()
_swept_lock = threading.Lock()


def _sweep(folder: Path) -> None:
    """Remove the temporary files that killed writers left in ``folder`` (once per folder and process: a folder
    written file by file, such as segmentation output, is not scanned again for every file)."""
    key = os.path.abspath(folder)
    with _swept_lock:
        if key in _swept:
            return
        _swept.add(key)
    with os.scandir(folder) as entries:
        for entry in entries:
            match = _FILE_TEMP.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False) and _stale(Path(entry.path), match):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def _clean(target: Path) -> None:
    """Under the lock: restore ``target`` from the newest stale ``old`` folder if it is missing, remove the rest."""
    prefix = f".{target.name}."
    stale: list[tuple[Path, re.Match[str]]] = []
    for entry in target.parent.iterdir():
        if entry.name.startswith(prefix):
            match = _TEMP.fullmatch(entry.name[len(prefix) :])
            if match and bool(match["old"]) != bool(match["tmp"]) and _stale(entry, match):
                stale.append((entry, match))
    olds = sorted((p for p, m in stale if m["old"]), key=lambda p: p.lstat().st_mtime, reverse=True)
    if olds and not target.exists():
        old = olds[0]
        legacy = old / target.name  # older s3-hf moved the folder into a mkdtemp folder
        os.replace(legacy if legacy.is_dir() and len(os.listdir(old)) == 1 else old, target)
    for path, _ in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _carry_over(entry: os.DirEntry[str], dst: Path) -> None:
    if entry.is_symlink():
        os.symlink(os.readlink(entry.path), dst)
    elif entry.is_dir():
        shutil.copytree(entry.path, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(entry.path, str(dst))


def _replace(
    target: Path,
    fill: Callable[[Path], None],
    *,
    carry: Callable[[str], bool] | None,
    check: Callable[[], None] | None = None,
) -> Path:
    """Write ``target`` anew in a temporary folder beside it (``fill``, then the old entries ``carry`` accepts) and
    swap it in."""
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _locked(parent):
        _clean(target)
    tmp = parent / f".{target.name}.{_tag()}.tmp"
    tmp.mkdir(0o777)  # the umask applies
    try:
        fill(tmp)
        with _locked(parent):  # outside it, another writer's two renames may have the target moved away
            if check is not None:
                check()  # nothing appeared there meanwhile
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                raise NotADirectoryError(f"{target} is a file")
            if target.is_dir():
                os.chmod(tmp, target.stat().st_mode & 0o7777)
            if carry is not None and target.is_dir():
                with os.scandir(target) as entries:
                    for entry in entries:
                        if carry(entry.name) and not (tmp / entry.name).exists():
                            _carry_over(entry, tmp / entry.name)
            if not target.exists():
                os.replace(tmp, target)
            elif not _exchange(tmp, target):
                old = parent / f".{target.name}.old.{_tag()}"
                os.replace(target, old)
                try:
                    os.replace(tmp, target)
                except BaseException:
                    os.replace(old, target)
                    raise
                shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after an exchange it holds the old folder
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


def save_figure(path: str | os.PathLike, figure: Any, **kwargs: Any) -> Path:
    """Save a matplotlib figure to ``path`` atomically, in the format its suffix names (PNG without one).

    Args:
        path: the image file.
        figure: the ``matplotlib.figure.Figure``.
        **kwargs: passed on to ``Figure.savefig`` (``dpi=120``).
    """
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"  # the temporary name ends in .tmp: matplotlib must be told the format
    write_files(path.parent, {path.name: lambda p: figure.savefig(p, format=fmt, **kwargs)})
    return path


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
    "recover_folder",
    "save_figure",
    "save_tensors",
    "target_folder",
    "write_artifact",
    "write_files",
    "write_folder",
    "write_json",
    "write_text",
]
