"""Typed per-class records of a synonym space, as stored in ``synonyms.json``: each class's concepts, what was
dropped from it and why, its radius, death times and the provenance of its synonyms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from s3_hf.errors import ArtifactCorruptError

# Why a concept was dropped, in the order the build drops them. All but "pruned" happen before embedding, so
# those concepts have no point in the tensors and sit in ``ClassRecord.removed``; pruned ones keep their point.
DROP_KINDS = ("duplicate", "other_label", "too_long", "limit", "truncated", "pruned")
REMOVED_KINDS = DROP_KINDS[:-1]


def _corrupt(where: str, msg: str) -> ArtifactCorruptError:
    return ArtifactCorruptError(f"{where}: {msg}. The file was edited by hand or damaged; rebuild it with `s3 build`.")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _mapping(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise _corrupt(where, f"expected a JSON object, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class ConceptRecord:
    """One concept of a class. ``kept`` is ``False`` for a dropped one, which then has a machine-readable
    ``kind`` (one of :data:`DROP_KINDS`) and a human ``reason``."""

    text: str
    kept: bool
    reason: str | None = None
    kind: str | None = None

    @classmethod
    def dropped(cls, text: str, kind: str, reason: str) -> ConceptRecord:
        return cls(text=text, kept=False, reason=reason, kind=kind)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "kept": self.kept}
        if self.kind is not None:
            out["kind"] = self.kind
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "concept", kinds: tuple[str, ...] = DROP_KINDS) -> ConceptRecord:
        """Validate and convert a ``synonyms.json`` concept entry; ``kinds`` are the drop kinds allowed there."""
        data = _mapping(data, where)
        text, kept, reason, kind = (data.get(k) for k in ("text", "kept", "reason", "kind"))
        if not isinstance(text, str):
            raise _corrupt(where, f"'text' must be a string, got {text!r}")
        if not isinstance(kept, bool):
            raise _corrupt(where, f"'kept' of {text!r} must be true or false, got {kept!r}")
        if reason is not None and not isinstance(reason, str):
            raise _corrupt(where, f"'reason' of {text!r} must be a string, got {reason!r}")
        if kept and kind is not None:
            raise _corrupt(where, f"{text!r} is kept but has a drop kind {kind!r}")
        if kind is not None and kind not in kinds:
            raise _corrupt(where, f"'kind' of {text!r} is {kind!r}; expected one of {list(kinds)}")
        return cls(text=text, kept=kept, reason=reason, kind=kind)


@dataclass(frozen=True)
class ClassRecord:
    """One class of a space. ``concepts`` has one entry per point of the class in the tensors (kept or pruned),
    label first; ``removed`` lists the concepts dropped before embedding (no point), each with kind and reason.
    ``deaths`` are the class's H0 death times, ``source`` the provenance of its synonyms; ``descriptors`` the
    visual descriptors its concepts' texts carry (empty when the space was built without them)."""

    label: str
    concepts: list[ConceptRecord]
    radius: float
    deaths: list[float]
    source: dict[str, Any]
    removed: list[ConceptRecord] = field(default_factory=list)
    descriptors: list[str] = field(default_factory=list)

    def texts(self, kept: bool | None = None) -> list[str]:
        """Texts of the concepts with a point; ``kept=True/False`` filters kept or pruned ones."""
        return [x.text for x in self.concepts if kept is None or x.kept == kept]

    @property
    def dropped(self) -> list[ConceptRecord]:
        """Every dropped concept, in the order the build dropped them: removed before embedding, then pruned."""
        return [*self.removed, *(x for x in self.concepts if not x.kept)]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "label": self.label,
            "concepts": [x.to_dict() for x in self.concepts],
            "removed": [x.to_dict() for x in self.removed],
            "radius": self.radius,
            "deaths": list(self.deaths),
            "source": self.source,
        }
        if self.descriptors:
            out["descriptors"] = list(self.descriptors)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "class") -> ClassRecord:
        """Validate and convert a ``synonyms.json`` class entry. Files written before drops were recorded lack
        ``removed`` and the ``kind`` of pruned concepts; both are filled in."""
        data = _mapping(data, where)
        label = data.get("label")
        if not isinstance(label, str):
            raise _corrupt(where, f"'label' must be a string, got {label!r}")
        where = f"{where} ({label!r})"
        concepts, removed = data.get("concepts"), data.get("removed", [])
        for key, value in (("concepts", concepts), ("removed", removed)):
            if not isinstance(value, list):
                raise _corrupt(where, f"'{key}' must be a list, got {type(value).__name__}")
        points = []
        for i, x in enumerate(concepts):
            rec = ConceptRecord.from_dict(x, f"{where} concept {i}", kinds=("pruned",))
            if not rec.kept and rec.kind is None:
                rec = ConceptRecord.dropped(rec.text, "pruned", rec.reason or "outside the compact component")
            points.append(rec)
        dropped = [ConceptRecord.from_dict(x, f"{where} removed {i}", REMOVED_KINDS) for i, x in enumerate(removed)]
        for rec in dropped:
            if rec.kept or rec.kind is None:
                raise _corrupt(where, f"removed concept {rec.text!r} needs kept: false and a 'kind'")
        radius, deaths, source = data.get("radius"), data.get("deaths"), data.get("source", {})
        if not _is_number(radius):
            raise _corrupt(where, f"'radius' must be a number, got {radius!r}")
        if not isinstance(deaths, list) or not all(_is_number(d) for d in deaths):
            raise _corrupt(where, f"'deaths' must be a list of numbers, got {deaths!r}")
        if not isinstance(source, dict):
            raise _corrupt(where, f"'source' must be an object, got {type(source).__name__}")
        descriptors = data.get("descriptors", [])
        if not isinstance(descriptors, list) or not all(isinstance(d, str) for d in descriptors):
            raise _corrupt(where, f"'descriptors' must be a list of strings, got {descriptors!r}")
        return cls(
            label=label,
            concepts=points,
            radius=float(radius),
            deaths=[float(d) for d in deaths],
            source=source,
            removed=dropped,
            descriptors=list(descriptors),
        )


@dataclass(frozen=True)
class DropSummary:
    """A concept dropped from a class (removed before embedding, or pruned) and why."""

    text: str
    kind: str
    reason: str


@dataclass(frozen=True)
class ClassSummary:
    """One class of a :class:`SpaceSummary`: its number of points, kept and pruned concept texts, radius, and every
    dropped concept with its kind and reason."""

    label: str
    concepts: int
    kept: list[str]
    dropped: list[str]
    radius: float
    drops: list[DropSummary]


@dataclass(frozen=True)
class SpaceSummary:
    """What ``s3 inspect``, ``s3 build`` and the model card say about a space: counts, the complex's simplices by
    number of vertices, and per class a :class:`ClassSummary`. ``dropped`` counts pruned points, ``removed`` the
    concepts dropped before embedding."""

    base_model: str
    classes: int
    points: int
    kept: int
    dropped: int
    removed: int
    simplices: dict[int, int]
    embedding_dim: int
    templates: int
    metric: str
    radius_rule: str | float
    per_class: list[ClassSummary]

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (``s3 inspect --json``)."""
        return asdict(self)


__all__ = [
    "DROP_KINDS",
    "REMOVED_KINDS",
    "ClassRecord",
    "ClassSummary",
    "ConceptRecord",
    "DropSummary",
    "SpaceSummary",
]
