"""Synonyms the user already has: none at all (label only), a mapping, or a JSON/YAML file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from s3_hf.errors import SynonymsError
from s3_hf.io.files import load_json_text, load_yaml_text, read_user_text, write_text
from s3_hf.synonyms.base import normalise


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
    out: dict[str, list[str]] = {}
    for label, concepts in data.items():
        if isinstance(concepts, str):
            concepts = [concepts]
        if not isinstance(concepts, Sequence) or not all(isinstance(c, str) for c in concepts):
            raise SynonymsError(f"{origin}: synonyms of {label!r} must be a list of strings, got {concepts!r}.")
        key = normalise(str(label))  # as labels are compared (check_labels)
        if key in out:
            raise SynonymsError(
                f"{origin} lists the label {key!r} twice (equal up to spacing and invisible characters): merge them."
            )
        out[key] = list(concepts)
    return out


_FILE_KEYS = {"classes", "provenance", "fallback", "descriptors"}


class _StringLoader(yaml.SafeLoader):
    """Safe YAML where every plain scalar is a string: labels such as ``no``, ``on``, ``1.0`` or ``null`` stay
    labels instead of turning into booleans, numbers or None."""


_StringLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag == "tag:yaml.org,2002:merge"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _parse(text: str, path: Path) -> Any:
    what = f"synonyms file {path}"
    if path.suffix.lower() == ".json":
        return load_json_text(text, SynonymsError, what)
    return load_yaml_text(text, SynonymsError, what, loader=_StringLoader)


def read_synonyms_file(path: str | os.PathLike) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Read a synonyms file (``.json``, ``.yaml`` or ``.yml``): ``(mapping, provenance)``.

    The file is either a plain mapping ``{label: [synonym, ...]}`` or, as ``s3 synonyms`` writes it,
    ``{"provenance": {...}, "classes": {label: [...]}, "fallback": [labels that got no synonyms]}``, optionally
    with ``"descriptors": {label: [descriptor, ...]}`` (read by :func:`read_descriptors_file`).
    """
    path = Path(path)
    if not path.is_file():
        raise SynonymsError(f"Synonyms file {path} does not exist.")
    text = read_user_text(path, SynonymsError, "Synonyms file")
    data = _parse(text, path)
    if isinstance(data, Mapping) and "classes" in data and set(data) <= _FILE_KEYS:
        prov = data.get("provenance") or {}
        return _check_mapping(data["classes"], str(path)), dict(prov) if isinstance(prov, Mapping) else {}
    return _check_mapping(data, str(path)), {}


def read_descriptors_file(path: str | os.PathLike) -> dict[str, list[str]]:
    """The ``"descriptors"`` mapping of a synonyms file (empty when it has none)."""
    path = Path(path)
    text = read_user_text(path, SynonymsError, "Synonyms file")
    data = _parse(text, path)
    if isinstance(data, Mapping) and "classes" in data and set(data) <= _FILE_KEYS:
        return _check_mapping(data.get("descriptors") or {}, f"{path} (descriptors)")
    return {}


def write_synonyms_file(
    path: str | os.PathLike,
    synonyms: Mapping[str, Sequence[str]],
    provenance: Mapping[str, Any] | None = None,
    fallback: Sequence[str] = (),
    descriptors: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Write a human-editable synonyms file (YAML, or JSON for a ``.json`` suffix) atomically; ``descriptors``
    (short visual descriptors per label) are kept under their own key."""
    path = Path(path)
    data = {"provenance": dict(provenance or {}), "classes": {k: list(v) for k, v in synonyms.items()}}
    if fallback:
        data["fallback"] = list(fallback)
    if descriptors and any(descriptors.values()):
        data["descriptors"] = {k: list(v) for k, v in descriptors.items() if v}
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        text = (
            "# Synonyms per class label, for `s3 build --synonyms`. Edit freely: the label itself is always\n"
            "# concept 0 and needs no entry; an empty list means label only.\n"
            + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)
        )
    return write_text(path, text)


class StaticSource:
    """Synonyms from a mapping ``{label: [synonym, ...]}`` or a JSON/YAML file holding one.

    Labels missing from the mapping get no synonyms (label only).
    """

    name = "static"

    def __init__(
        self,
        synonyms: Mapping[str, Sequence[str]] | str | os.PathLike,
        descriptors: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.generated_by: dict[str, Any] = {}
        if isinstance(synonyms, str | os.PathLike):
            self.path: str | None = str(synonyms)
            self.mapping, self.generated_by = read_synonyms_file(synonyms)
            self.descriptor_map = read_descriptors_file(synonyms)
        else:
            self.path = None
            self.mapping = _check_mapping(synonyms, "synonyms")
            self.descriptor_map = {}
        if descriptors is not None:
            self.descriptor_map = _check_mapping(descriptors, "descriptors")
        self.created = datetime.now(UTC).isoformat(timespec="seconds")

    def synonyms(self, labels: Sequence[str]) -> dict[str, list[str]]:
        return {label: list(self.mapping.get(label, [])) for label in labels}

    def descriptors(self, labels: Sequence[str]) -> dict[str, list[str]]:
        return {label: list(self.descriptor_map.get(label, [])) for label in labels}

    def provenance(self) -> dict[str, Any]:
        prov: dict[str, Any] = {"name": self.name, "date": self.created}
        if self.path:
            prov["file"] = os.path.basename(self.path)
        if self.generated_by:
            prov["generated_by"] = self.generated_by
        return prov


__all__ = [
    "LabelOnlySource",
    "StaticSource",
    "read_descriptors_file",
    "read_synonyms_file",
    "write_synonyms_file",
]
