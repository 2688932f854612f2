"""Synonyms the user already has: none at all (label only), a mapping, or a JSON/YAML file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ..errors import SynonymsError


class LabelOnlySource:
    """No synonyms: every class space is its label alone (vanilla CLIP)."""

    name = "label-only"

    def synonyms(self, labels: Sequence[str]) -> dict[str, list[str]]:
        return {label: [] for label in labels}

    def provenance(self) -> dict[str, Any]:
        return {"name": self.name}


def _check_mapping(data: Any, origin: str) -> dict[str, list[str]]:
    if not isinstance(data, Mapping):
        raise SynonymsError(f"{origin} must map each label to a list of synonyms, got {type(data).__name__}.")
    out = {}
    for label, concepts in data.items():
        if isinstance(concepts, str):
            concepts = [concepts]
        if not isinstance(concepts, Sequence) or not all(isinstance(c, str) for c in concepts):
            raise SynonymsError(f"{origin}: synonyms of {label!r} must be a list of strings, got {concepts!r}.")
        out[str(label)] = list(concepts)
    return out


def read_synonyms_file(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read ``{label: [synonym, ...]}`` from a ``.json``, ``.yaml`` or ``.yml`` file."""
    path = Path(path)
    if not path.is_file():
        raise SynonymsError(f"Synonyms file {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise SynonymsError(f"Cannot parse synonyms file {path}: {err}") from err
    return _check_mapping(data, str(path))


class StaticSource:
    """Synonyms from a mapping ``{label: [synonym, ...]}`` or a JSON/YAML file holding one.

    Labels missing from the mapping get no synonyms (label only).
    """

    name = "static"

    def __init__(self, synonyms: Mapping[str, Sequence[str]] | str | os.PathLike) -> None:
        if isinstance(synonyms, str | os.PathLike):
            self.path: str | None = str(synonyms)
            self.mapping = read_synonyms_file(synonyms)
        else:
            self.path = None
            self.mapping = _check_mapping(synonyms, "synonyms")
        self.created = datetime.now(UTC).isoformat(timespec="seconds")

    def synonyms(self, labels: Sequence[str]) -> dict[str, list[str]]:
        return {label: list(self.mapping.get(label, [])) for label in labels}

    def provenance(self) -> dict[str, Any]:
        prov: dict[str, Any] = {"name": self.name, "date": self.created}
        if self.path:
            prov["file"] = os.path.basename(self.path)
        return prov
