"""The app's settings: one record, read from the environment by :meth:`AppSettings.from_env` and checked there.

Environment (read at start-up):

- ``S3_MODEL``: the CLIP checkpoint (default openai/clip-vit-base-patch32).
- ``S3_SPACE``: the default synonym space, a Hub repo id or a local folder (optional; always allowed).
- ``S3_LOCAL_SPACES``: local synonym-space folders users may pick, separated by ``os.pathsep`` (``:``); an entry
  ending in ``/*`` allows every sub-folder it has at start-up. Default: none, so users can only enter Hub repo ids
  (``org/name``). Anything else gets the same message whether or not such a path exists on the server.
- ``S3_MAX_LABELS`` (default 100), ``S3_MAX_SYNONYM_ROWS`` (rows of the synonyms table, default 200),
  ``S3_MAX_SYNONYMS`` (synonyms per label, default 20), ``S3_MAX_TEXT`` (characters of one label or synonym,
  default 100).
- ``S3_MAX_SIDE``: larger images are downscaled to this many pixels (default 2048).
- ``S3_CONCURRENCY``: requests processed at once (default 2).
- ``S3_MAX_UPLOAD_MB``: larger uploads are refused by the server (default 50); ``S3_MAX_SPACE_MB``: a Hub synonym
  space whose files add up to more is refused before it is read (default 64).
- ``S3_MAX_SESSIONS``: browser sessions whose state the server keeps (default 200; beyond it the least recently used
  session's state is dropped, so its adaptation starts afresh); ``S3_SESSION_MINUTES``: a session's adaptation state
  is dropped this long after its last update (default 60).

Memory of "adapt over this session's images" (TS^3): one bounded state per session, at most ``S3_MAX_LABELS``
classes, ``(C * (pos_size + neg_size) * (D + 2) + (C + 1) * (D + 1)) * 4`` bytes whatever the session's length (about
1.2 MB at 100 classes and D = 512 with the default caches). Gradio keeps per-session state in an LRU of
``state_session_capacity`` sessions (10,000 by default) and, without a ``time_to_live``, for as long as the tab is
open and an hour after it closes; the app passes ``S3_MAX_SESSIONS`` as that capacity and ``S3_SESSION_MINUTES`` as
the state's ``time_to_live``, so the server holds at most ``S3_MAX_SESSIONS`` states.

The library's own limits (``S3_MAX_IMAGE_PIXELS``, ``S3_MAX_IMAGE_ASPECT``, ``S3_MAX_SCORING_MB``,
``S3_MAX_SEGMENT_PIXELS``, ...; see :mod:`s3_hf.limits`) bound the app too; they are read there, and checked here
at start-up so a bad value stops the app before it serves.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from s3_hf import limits
from s3_hf.errors import InvalidConfigError
from s3_hf.io.hub import is_repo_id
from s3_hf.options import DEFAULT_MODEL

logger = logging.getLogger("s3_hf.space_app")

#: Bounds the app alone sets: field -> environment variable. The library's limits live in :mod:`s3_hf.limits`.
BOUND_ENV: dict[str, str] = {
    "max_labels": "S3_MAX_LABELS",
    "max_synonym_rows": "S3_MAX_SYNONYM_ROWS",
    "max_synonyms": "S3_MAX_SYNONYMS",
    "max_text": "S3_MAX_TEXT",
    "max_side": "S3_MAX_SIDE",
    "concurrency": "S3_CONCURRENCY",
    "max_upload_mb": "S3_MAX_UPLOAD_MB",
    "max_space_mb": "S3_MAX_SPACE_MB",
    "max_sessions": "S3_MAX_SESSIONS",
    "session_minutes": "S3_SESSION_MINUTES",
}
#: Settings of earlier versions that a library limit replaced: variable -> its replacement.
REPLACED_ENV = {"S3_MAX_MEGAPIXELS": limits.IMAGE_PIXELS.env}


class AppSettingsError(InvalidConfigError):
    """A setting of the app (an environment variable or an :class:`AppSettings` field) is invalid."""


def folder_key(path: str) -> str:
    """A lexical key (no file-system access) under which a folder is matched against the allow-list."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


def _sub_folders(entry: str) -> list[str]:
    parent = Path(folder_key(entry[:-2]))
    try:
        subs = sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        subs = []
    if not subs:
        logger.warning("S3_LOCAL_SPACES: %s has no sub-folders; it allows nothing", parent)
    return [str(p) for p in subs]


def local_spaces(value: str, default_space: str = "") -> frozenset[str]:
    """The allow-list of local synonym-space folders: the ``S3_LOCAL_SPACES`` entries (``os.pathsep``-separated;
    ``DIR/*`` stands for the sub-folders ``DIR`` has now) and ``S3_SPACE`` when it names a folder.

    Args:
        value: the ``S3_LOCAL_SPACES`` text.
        default_space: the ``S3_SPACE`` text (always allowed when it is a folder or not a repo id).
    """
    allowed: set[str] = set()
    for entry in (e.strip() for e in value.split(os.pathsep)):
        if not entry:
            continue
        if entry.endswith(("/*", os.sep + "*")):
            allowed.update(_sub_folders(entry))
        else:
            if not os.path.isdir(entry):
                logger.warning("S3_LOCAL_SPACES: %s is not a folder (yet)", entry)
            allowed.add(folder_key(entry))
    if default_space and (os.path.isdir(default_space) or not is_repo_id(default_space)):
        allowed.add(folder_key(default_space))
    return frozenset(allowed)


def _positive(name: str, raw: str, kind: type[int] | type[float], default: float) -> Any:
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise AppSettingsError(
            f"{name}={raw!r} is not a positive {kind.__name__}; unset it for the default ({default:g})."
        )
    return value


@dataclass(frozen=True)
class AppSettings:
    """What the app serves and the bounds it keeps; every default written here once.

    ``local_spaces`` is the resolved allow-list of folder keys (see :func:`local_spaces`).
    """

    model: str = DEFAULT_MODEL
    default_space: str = ""
    local_spaces: frozenset[str] = field(default_factory=frozenset)
    max_labels: int = 100
    max_synonym_rows: int = 200
    max_synonyms: int = 20
    max_text: int = 100
    max_side: int = 2048
    concurrency: int = 2
    max_upload_mb: float = 50.0
    max_space_mb: float = 64.0
    max_sessions: int = 200
    session_minutes: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise AppSettingsError(f"The app's model must be a Hub id or a folder, got {self.model!r}.")
        for f in fields(self):
            if f.name not in BOUND_ENV:
                continue
            value = getattr(self, f.name)
            kind = int if f.type in (int, "int") else float
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or (kind is int and value != int(value)) or not math.isfinite(value) or value <= 0:
                raise AppSettingsError(f"AppSettings.{f.name} must be a positive {kind.__name__}, got {value!r}.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppSettings:
        """The settings the environment gives (see the module's docstring); :class:`AppSettingsError` names the
        variable that is wrong. The library's limits in force are checked too.

        Args:
            environ: the variables (default ``os.environ``).
        """
        env = os.environ if environ is None else environ
        for old, new in REPLACED_ENV.items():
            if env.get(old, "").strip():
                logger.warning("%s is no longer read: the app's image bound is %s (see s3_hf.limits)", old, new)
        for limit in limits.LIMITS.values():
            limit.get()  # a bad S3_MAX_* stops the app at start-up, not at its first request
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = BOUND_ENV.get(f.name)
            raw = env.get(name, "").strip() if name else ""
            if raw:
                values[f.name] = _positive(name, raw, int if f.type in (int, "int") else float, f.default)
        default_space = env.get("S3_SPACE", "").strip()
        return cls(
            model=env.get("S3_MODEL", "").strip() or DEFAULT_MODEL,
            default_space=default_space,
            local_spaces=local_spaces(env.get("S3_LOCAL_SPACES", ""), default_space),
            **values,
        )

    @property
    def max_space_bytes(self) -> int:
        """The largest Hub synonym space the app downloads, in bytes."""
        return int(self.max_space_mb * 2**20)

    @property
    def session_seconds(self) -> float:
        """How long a session's adaptation state outlives its last update (``gr.State``'s ``time_to_live``)."""
        return self.session_minutes * 60.0

    def launch_options(self) -> dict[str, Any]:
        """What ``Blocks.launch`` needs to bound the process: the upload size (Gradio refuses larger files as they
        arrive) and the number of sessions whose state it keeps."""
        return {"max_file_size": int(self.max_upload_mb * 2**20), "state_session_capacity": self.max_sessions}


__all__ = ["AppSettings", "AppSettingsError", "folder_key", "local_spaces"]
