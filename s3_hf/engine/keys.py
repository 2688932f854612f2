"""Cache keys that cannot go stale: objects are held by the key (so their id cannot be reused), user files are
keyed by their content and folders by the size, modification time and inode of their files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from s3_hf.errors import InvalidConfigError, InvalidLabelsError, SynonymsError
from s3_hf.fewshot import SSP_CONFIG_NAME, SSP_TENSORS_NAME, SSPAdapter
from s3_hf.space.artifact import REQUIRED_FILES, SynonymSpace
from s3_hf.synonyms import SynonymSource


class Ref:
    """Hashes and compares by identity and holds its object, so the id cannot be reused while it is a key."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.obj is self.obj

    def __repr__(self) -> str:
        return f"<{type(self.obj).__name__} at {id(self.obj):#x}>"


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_stamp(folder: Path, names: Sequence[str]) -> tuple:
    """Size, modification time and inode of ``names`` in ``folder``: changes whenever a file is rewritten."""
    stamp = []
    for name in names:
        try:
            st = (folder / name).stat()
        except OSError:
            stamp.append((name, None))
            continue
        stamp.append((name, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(stamp)


def synonyms_key(synonyms: Any) -> Hashable:
    """A cache key for synonyms given as a mapping, a file, a source or nothing; a typed error for anything else."""
    if synonyms is None:
        return None
    if isinstance(synonyms, SynonymSource):
        return ("source", Ref(synonyms))
    if isinstance(synonyms, Mapping):
        items = []
        for label, values in synonyms.items():
            if isinstance(values, str):
                values = [values]
            if not isinstance(label, str) or not isinstance(values, Sequence) or isinstance(values, bytes):
                raise SynonymsError(
                    f"Synonyms must map each label (a string) to a list of strings; got {label!r}: {values!r}. "
                    'Example: {"cat": ["kitty", "house cat"]}.'
                )
            if not all(isinstance(v, str) for v in values):
                raise SynonymsError(f"The synonyms of {label!r} must all be strings, got {list(values)!r}.")
            items.append((label, tuple(values)))
        return ("mapping", tuple(sorted(items)))
    if isinstance(synonyms, str) and synonyms.startswith("curated:"):
        from s3_hf.synonyms.curated import read_curated

        read_curated(synonyms.removeprefix("curated:"))  # a typed error now if there is no such list
        return ("curated", synonyms)
    if isinstance(synonyms, str | os.PathLike):
        return file_key(
            synonyms,
            f"Synonyms file {os.fspath(synonyms)} does not exist. Pass a JSON/YAML file, a mapping "
            "{label: [synonym, ...]}, curated:<benchmark> or a synonym source.",
        )
    raise SynonymsError(
        f"synonyms must be a mapping {{label: [synonym, ...]}}, a JSON/YAML file or a SynonymSource, got "
        f"{type(synonyms).__name__}."
    )


def file_key(value: str | os.PathLike, missing: str) -> Hashable:
    """A cache key for a user's file, by its content; :class:`SynonymsError` with ``missing`` if there is none."""
    path = Path(value)
    if not path.is_file():
        raise SynonymsError(missing)
    return ("file", str(path.resolve()), _file_digest(path))


def texts_key(value: Any, what: str) -> Hashable:
    """A cache key for per-class texts (descriptors or prompts): ``True`` (from the synonym source), a mapping or a
    JSON file; a typed error for anything else."""
    if value is None or value is True:
        return value
    if isinstance(value, Mapping):
        try:
            return ("mapping", tuple(sorted((str(k), tuple(v)) for k, v in value.items())))
        except TypeError as err:
            raise SynonymsError(f"{what} must map each class to a list of strings.") from err
    if isinstance(value, str | os.PathLike):
        return file_key(value, f"{what} file {os.fspath(value)} does not exist. Pass a JSON file {{class: [...]}}.")
    raise SynonymsError(f"{what} must be a mapping {{class: [text, ...]}} or a JSON file, got {type(value).__name__}.")


def space_key(synonym_space: Any) -> Hashable:
    if isinstance(synonym_space, SynonymSpace):
        return ("object", Ref(synonym_space))
    if isinstance(synonym_space, str | os.PathLike):
        return ("path", os.fspath(synonym_space))
    raise InvalidConfigError(
        f"synonym_space must be a SynonymSpace, a folder or a Hub repo id, got {type(synonym_space).__name__}."
    )


def saved_space_key(synonym_space: SynonymSpace | str | os.PathLike) -> Hashable:
    """A cache key for a saved space: the object itself, a folder by its files' stamps, or a Hub repo id."""
    if isinstance(synonym_space, SynonymSpace):
        return ("object", Ref(synonym_space))
    path = Path(synonym_space)
    if path.is_dir():
        return ("folder", str(path.resolve()), folder_stamp(path, REQUIRED_FILES))
    return ("hub", os.fspath(synonym_space))


def is_adapter_location(support: Any) -> bool:
    if not isinstance(support, str | os.PathLike):
        return False
    path = Path(support)
    if (path / SSP_CONFIG_NAME).is_file():
        return True
    return isinstance(support, str) and not path.exists() and support.count("/") == 1  # a Hub repo id


def support_key(support: Any) -> Hashable:
    """A cache key for a support set or a fitted adapter's location (folders by their files' stamps)."""
    if support is None:
        return None
    if isinstance(support, SSPAdapter):
        return ("adapter", Ref(support))
    if isinstance(support, str | os.PathLike):
        path = Path(support)
        if (path / SSP_CONFIG_NAME).is_file():
            return ("adapter-folder", str(path.resolve()))
        if is_adapter_location(support):
            return ("adapter-hub", str(support))
        if not path.is_dir():
            raise InvalidLabelsError(
                f"Support folder {os.fspath(support)} does not exist. Pass a folder with one sub-folder of images "
                "per class, a fitted adapter's folder or Hub id, a datasets.Dataset or a list of (image, label)."
            )
        return ("folder", str(path.resolve()))
    return ("object", Ref(support))


def support_stamp(key: Hashable) -> Hashable:
    """The on-disk state behind a support key, read at resolve time so that edits are noticed."""
    if not isinstance(key, tuple) or key[0] not in ("adapter-folder", "folder"):
        return None
    path = Path(key[1])
    if key[0] == "adapter-folder":
        return folder_stamp(path, (SSP_CONFIG_NAME, SSP_TENSORS_NAME))
    try:
        dirs = [path, *(d for d in path.iterdir() if d.is_dir())]
        return tuple((str(d), d.stat().st_mtime_ns) for d in dirs)
    except OSError:
        return None


__all__ = [
    "Ref",
    "file_key",
    "folder_stamp",
    "is_adapter_location",
    "saved_space_key",
    "space_key",
    "support_key",
    "support_stamp",
    "synonyms_key",
    "texts_key",
]
