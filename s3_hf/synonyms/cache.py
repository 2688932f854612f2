"""On-disk cache of synonym-source answers, one small JSON file per (source, settings, prompt, label)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from s3_hf.io.files import write_json


def default_cache_dir() -> Path:
    """``$S3_HF_CACHE`` or ``$XDG_CACHE_HOME/s3_hf`` (``~/.cache/s3_hf``), plus ``/synonyms``."""
    root = os.environ.get("S3_HF_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "s3_hf"
    return Path(root) / "synonyms"


class SynonymCache:
    """Answers keyed by a hash of everything that determines them. Writes are atomic."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    @staticmethod
    def key(**parts: Any) -> str:
        blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry stored under ``key``; ``None`` if there is none or it is unreadable or not a JSON object
        (the caller asks again and overwrites it)."""
        try:
            value = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # ValueError: not UTF-8, not JSON
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        write_json(self._path(key), value, indent=None)


__all__ = [
    "SynonymCache",
    "default_cache_dir",
]
