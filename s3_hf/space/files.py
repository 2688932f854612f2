"""The synonym-space artifact's files, read without torch: where a space is, its config, its per-class records, its
tensor file's bytes (parsed and checked against the hash the config records) and the summary ``s3 inspect`` prints.

:class:`~s3_hf.space.artifact.SynonymSpace` loads through the same functions, so a missing or damaged file gets the
same typed error whether a space is loaded for scoring or only summarised.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from s3_hf import __version__
from s3_hf.errors import ArtifactCorruptError, ArtifactShapeError, InvalidConfigError
from s3_hf.io.artifact import check_format_version, read_tensors, require_files
from s3_hf.io.artifact import locate as locate_artifact
from s3_hf.io.files import load_json_text
from s3_hf.models.families import SCORING_RULES, TEXT_CANONICALIZATIONS
from s3_hf.options import DEFAULT_KNN_K, DEFAULT_METRIC, METHODS, METRIC_NAMES, SpaceParams
from s3_hf.space.records import ClassRecord, ClassSummary, ConceptRecord, DropSummary, SpaceSummary

FORMAT_VERSION = 1
CONFIG_NAME = "s3_config.json"
SYNONYMS_NAME = "synonyms.json"
TENSORS_NAME = "s3_space.safetensors"
CARD_NAME = "README.md"
REQUIRED_FILES = (CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME)
#: The tensors a space's tensor file holds (local centres are derived from points and neighbourhoods when needed).
TENSOR_NAMES = (
    "points",
    "point_class",
    "kept",
    "radius",
    "global_centres",
    "neighbour_indptr",
    "neighbour_indices",
    "simplex_indptr",
    "simplex_vertices",
)


@dataclass
class S3Config:
    """Everything needed to reproduce and use a space, written to ``s3_config.json``.

    ``space`` holds the options that cut the class spaces out of their points; on disk its fields sit at the top
    level of the JSON object (``radius``, ``gap_ratio``, ``min_points``, ``max_dim``).
    """

    base_model: str
    embedding_dim: int
    class_names: list[str]
    templates: list[str]
    concept_format: str
    metric: str = DEFAULT_METRIC
    knn_k: int = DEFAULT_KNN_K
    space: SpaceParams = field(default_factory=SpaceParams)
    base_model_revision: str | None = None
    model_family: str | None = None  # the model's type, e.g. "clip" or "siglip2" (None: written before it was kept)
    scoring: str = "softmax"  # how logits become scores: "softmax" over classes or a per-class "sigmoid"
    tokenizer_kwargs: dict[str, Any] = field(default_factory=dict)  # how the concepts' prompts were tokenised
    text_canonicalization: str | None = None  # how the prompts were rewritten before tokenising (None: as written)
    descriptor_format: str | None = None  # how a concept carries its class's descriptors (None: built without them)
    method: str = "s3"  # "s3", or the baseline the space encodes ("cupl", "dclip", "waffle"; see s3_hf.baselines)
    tensors_sha256: str | None = None  # of s3_space.safetensors, set when saved and checked when loaded
    provenance: dict[str, Any] = field(default_factory=dict)
    library_version: str = __version__
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "space":
                out.update(value.to_dict())
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> S3Config:
        """The config of a ``s3_config.json`` object; a typed error naming the key for anything malformed."""
        check_format_version(
            data.get("format_version"),
            FORMAT_VERSION,
            CONFIG_NAME,
            "Upgrade s3-hf (pip install -U s3-hf) or rebuild the space with `s3 build`.",
        )
        missing = [
            n for n in ("base_model", "embedding_dim", "class_names", "templates", "concept_format") if n not in data
        ]
        if missing:
            raise ArtifactCorruptError(
                f"{CONFIG_NAME} lacks required keys {missing}. Rebuild the space with `s3 build`."
            )
        _check_config_types(data)
        names = {f.name for f in fields(cls)} - {"space"}
        space_keys = set(SpaceParams.option_names())
        try:
            space = SpaceParams(**{k: v for k, v in data.items() if k in space_keys})
        except InvalidConfigError as err:
            raise ArtifactCorruptError(f"{CONFIG_NAME}: {err} Fix the value or rebuild the space.") from err
        return cls(**{k: v for k, v in data.items() if k in names}, space=space)


def _check_config_types(data: dict[str, Any]) -> None:
    def bad(key: str, expected: str) -> ArtifactCorruptError:
        return ArtifactCorruptError(
            f"{CONFIG_NAME}: {key} must be {expected}, got {data[key]!r}. Fix the value or rebuild the space with "
            "`s3 build`."
        )

    for key in ("base_model", "concept_format", "metric"):
        if key in data and not isinstance(data[key], str):
            raise bad(key, "a string")
    for key in ("embedding_dim", "knn_k", "format_version"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int) or data[key] < 1):
            raise bad(key, "a positive integer")
    for key in ("class_names", "templates"):
        if not isinstance(data[key], list) or not data[key] or not all(isinstance(x, str) for x in data[key]):
            raise bad(key, "a non-empty list of strings")
    if "metric" in data and data["metric"] not in METRIC_NAMES:
        raise bad("metric", f"one of {', '.join(METRIC_NAMES)}")
    if "scoring" in data and data["scoring"] not in SCORING_RULES:
        raise bad("scoring", f"one of {', '.join(SCORING_RULES)}")
    if data.get("text_canonicalization") not in TEXT_CANONICALIZATIONS:
        raise bad("text_canonicalization", f"one of {TEXT_CANONICALIZATIONS}")
    if "tokenizer_kwargs" in data and not isinstance(data["tokenizer_kwargs"], dict):
        raise bad("tokenizer_kwargs", "an object")
    if "method" in data and data["method"] not in METHODS:
        raise bad("method", f"one of {', '.join(METHODS)}")
    for key in ("base_model_revision", "library_version", "tensors_sha256", "model_family", "descriptor_format"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise bad(key, "a string or null")
    if "provenance" in data and not isinstance(data["provenance"], dict):
        raise bad("provenance", "an object")


def read_json(path: Path) -> dict[str, Any]:
    """One of the artifact's JSON files as an object; a typed :class:`ArtifactCorruptError` otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ArtifactCorruptError(f"{path} is not UTF-8 text ({err}). Re-download or rebuild the space.") from err
    data = load_json_text(text, ArtifactCorruptError, str(path), "Re-download or rebuild the space.")
    if not isinstance(data, dict):
        raise ArtifactCorruptError(f"{path} must hold a JSON object. Re-download or rebuild the space.")
    return data


def shape_error(msg: str) -> ArtifactShapeError:
    return ArtifactShapeError(f"Invalid synonym space: {msg}. The artifact is damaged; rebuild it with `s3 build`.")


def locate(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
) -> Path:
    """The local folder of a space: ``name_or_path`` itself when it is a folder, else its Hub download.

    Args:
        name_or_path: a local folder or a Hub repo id (``"org/name"``).
        revision: the Hub revision.
        cache_dir: the Hub cache folder.
        local_files_only: use only the Hub cache.
        token: the Hub token.
        force_download: download again even when cached.
    """
    return locate_artifact(
        name_or_path,
        CONFIG_NAME,
        (*REQUIRED_FILES, CARD_NAME),
        optional=(CARD_NAME,),
        what="an s3-hf synonym space",
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        force_download=force_download,
    )


def missing_hint() -> str:
    """What follows "FOLDER has no FILE;" when a space's file is missing."""
    return (
        f"a synonym space needs {', '.join(REQUIRED_FILES)}. Was it written by `SynonymSpace.save_pretrained` / "
        "`s3 build`?"
    )


def read_config(folder: Path) -> S3Config:
    """The config of the space in ``folder`` alone (no torch, no tensors read), after the checks loading makes first:
    every required file is there."""
    require_files(folder, REQUIRED_FILES, missing_hint())
    return S3Config.from_dict(read_json(folder / CONFIG_NAME))


def read_records(
    folder: Path, load: Callable[[bytes], dict[str, Any]]
) -> tuple[S3Config, list[ClassRecord], dict[str, Any]]:
    """The config, the class records and the tensors of the space in ``folder``: the tensor file parsed by ``load``
    (safetensors' torch or numpy ``load``) and checked against the content hash the config records."""
    config = read_config(folder)
    syn = read_json(folder / SYNONYMS_NAME)
    if not isinstance(syn.get("classes"), list):
        raise ArtifactCorruptError(f"{folder / SYNONYMS_NAME} has no 'classes' list. Rebuild the space.")
    classes = [ClassRecord.from_dict(x, f"{folder / SYNONYMS_NAME} class {i}") for i, x in enumerate(syn["classes"])]
    fix = "Download it again (force_download=True) or rebuild the space with `s3 build`."
    raw = read_tensors(folder / TENSORS_NAME, load, config.tensors_sha256, fix)
    if set(raw) != set(TENSOR_NAMES):
        raise ArtifactShapeError(
            f"{TENSORS_NAME} holds tensors {sorted(raw)}, expected {sorted(TENSOR_NAMES)}. Rebuild the space."
        )
    return config, classes, raw


def check_records(
    config: S3Config, classes: Sequence[Any], kept: list[bool], counts: Sequence[int] | None = None
) -> None:
    """The class records agree with the config (one per class, same labels) and with the tensors: ``kept`` is the
    tensors' kept flag per point, ``counts`` (when given) the number of points per class."""
    names = config.class_names
    if len(classes) != len(names):
        raise shape_error(f"{SYNONYMS_NAME} lists {len(classes)} classes, config lists {len(names)}")
    for c, rec in enumerate(classes):
        if not isinstance(rec, ClassRecord) or not all(isinstance(x, ConceptRecord) for x in rec.concepts):
            raise shape_error(f"class {c} must be a ClassRecord of ConceptRecords, got {type(rec).__name__}")
        if rec.label != names[c] or (counts is not None and len(rec.concepts) != counts[c]):
            raise shape_error(f"{SYNONYMS_NAME} class {c} does not match the tensors ({names[c]!r})")
    if [x.kept for rec in classes for x in rec.concepts] != kept:
        raise shape_error(f"kept flags in {SYNONYMS_NAME} differ from the tensors")


def summarize(config: S3Config, classes: Sequence[ClassRecord], simplex_sizes: Iterable[int]) -> SpaceSummary:
    """Counts and radii per class (see :meth:`~s3_hf.space.artifact.SynonymSpace.summary`); ``simplex_sizes`` are the
    vertex counts of the space's simplices."""
    rows = [
        ClassSummary(
            label=rec.label,
            concepts=len(rec.concepts),
            kept=rec.texts(kept=True),
            dropped=rec.texts(kept=False),
            radius=rec.radius,
            drops=[DropSummary(x.text, x.kind, x.reason) for x in rec.dropped],
        )
        for rec in classes
    ]
    flags = [x.kept for rec in classes for x in rec.concepts]
    sizes = Counter(int(k) for k in simplex_sizes)
    return SpaceSummary(
        base_model=config.base_model,
        classes=len(config.class_names),
        points=len(flags),
        kept=sum(flags),
        dropped=len(flags) - sum(flags),
        removed=sum(len(rec.removed) for rec in classes),
        simplices={k: sizes[k] for k in sorted(sizes)},
        embedding_dim=config.embedding_dim,
        templates=len(config.templates),
        metric=config.metric,
        radius_rule=config.space.radius,
        per_class=rows,
    )


def read_summary(name_or_path: str | os.PathLike, *, revision: str | None = None) -> SpaceSummary:
    """The summary of a saved space (what :meth:`~s3_hf.space.artifact.SynonymSpace.summary` gives), read without torch.

    The files get the checks and typed errors of loading; the records are checked against the tensors the summary
    counts (kept flags, simplices). The geometry (unit points, neighbourhoods) is checked when the space is loaded
    for scoring.

    Args:
        name_or_path: a local folder or a Hub repo id.
        revision: the Hub revision.
    """
    import numpy as np
    from safetensors.numpy import load

    config, classes, raw = read_records(locate(name_or_path, revision=revision), load)
    kept, ptr = raw["kept"], raw["simplex_indptr"]
    if kept.dtype != np.bool_ or kept.ndim != 1:
        raise shape_error(f"tensor kept must be a 1-d bool tensor, got {kept.dtype} of shape {kept.shape}")
    if ptr.ndim != 1 or len(ptr) == 0:
        raise shape_error("simplex_indptr is not a valid CSR index pointer")
    check_records(config, classes, kept.tolist())
    return summarize(config, classes, np.diff(ptr).tolist())


__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "REQUIRED_FILES",
    "SYNONYMS_NAME",
    "TENSORS_NAME",
    "TENSOR_NAMES",
    "S3Config",
    "check_records",
    "locate",
    "missing_hint",
    "read_config",
    "read_json",
    "read_records",
    "read_summary",
    "summarize",
]
