"""The synonym-space artifact: config, per-class records, tensors; save, load, validate, Hub, model card."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .errors import (
    ArtifactCorruptError,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactShapeError,
    ArtifactValueError,
    FormatVersionError,
    HubError,
    ModelMismatchError,
)
from .metrics import ScoringState
from .space import SpaceParams, SpaceTensors

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_NAME = "s3_config.json"
SYNONYMS_NAME = "synonyms.json"
TENSORS_NAME = "s3_space.safetensors"
CARD_NAME = "README.md"
REQUIRED_FILES = (CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME)

_FLOAT_TENSORS = ("points", "global_centres")
# Saved tensors and their dtypes (local centres are derived from points and neighbourhoods when needed).
_DTYPES = {
    "points": torch.float32,
    "point_class": torch.int64,
    "kept": torch.bool,
    "radius": torch.float64,
    "global_centres": torch.float32,
    "neighbour_indptr": torch.int64,
    "neighbour_indices": torch.int64,
    "simplex_indptr": torch.int64,
    "simplex_vertices": torch.int64,
}


@dataclass
class S3Config:
    """Everything needed to reproduce and use a space, written to ``s3_config.json``."""

    base_model: str
    embedding_dim: int
    class_names: list[str]
    templates: list[str]
    concept_format: str
    metric: str = "local_center"
    knn_k: int = 3
    radius: str | float | None = "auto"
    gap_ratio: float = 1.5
    min_points: int = 4
    max_dim: int = 2
    base_model_revision: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    library_version: str = __version__
    format_version: int = FORMAT_VERSION

    @property
    def space_params(self) -> SpaceParams:
        return SpaceParams(self.radius, self.gap_ratio, self.min_points, self.max_dim)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> S3Config:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise FormatVersionError(
                f"{CONFIG_NAME} has format_version {version!r}; this s3-hf {__version__} reads version "
                f"{FORMAT_VERSION}. Upgrade s3-hf (pip install -U s3-hf) or rebuild the space with `s3 build`."
            )
        names = {f.name for f in fields(cls)}
        missing = [
            n for n in ("base_model", "embedding_dim", "class_names", "templates", "concept_format") if n not in data
        ]
        if missing:
            raise ArtifactCorruptError(
                f"{CONFIG_NAME} lacks required keys {missing}. Rebuild the space with `s3 build`."
            )
        return cls(**{k: v for k, v in data.items() if k in names})


def same_model(a: str, b: str) -> bool:
    """Same checkpoint name: equal ids, or a local folder named like the Hub repo (``.../clip-vit-base-patch32``)."""
    norm = [s.rstrip("/\\").replace("\\", "/") for s in (a, b)]
    return norm[0] == norm[1] or norm[0].split("/")[-1] == norm[1].split("/")[-1]


class SynonymSpace:
    """A set of class spaces built from synonymous concepts: the artifact shared by pipeline, CLI, eval and app.

    ``classes`` holds one record per class: ``label``, ``concepts`` (``text``, ``kept``, and for dropped ones
    ``reason``), ``radius``, ``deaths`` (H0 death times) and ``source`` (provenance of its synonyms).
    """

    def __init__(self, config: S3Config, classes: list[dict[str, Any]], tensors: SpaceTensors) -> None:
        self.config = config
        self.classes = classes
        self.tensors = tensors
        self._states: dict[tuple[str, torch.dtype], ScoringState] = {}
        validate(self)

    # ----------------------------------------------------------------------------------------- accessors
    @property
    def labels(self) -> list[str]:
        return list(self.config.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.config.class_names)

    def concepts(self, c: int, kept: bool | None = None) -> list[str]:
        """Concept texts of class ``c``; ``kept=True/False`` filters kept or dropped ones."""
        return [x["text"] for x in self.classes[c]["concepts"] if kept is None or x["kept"] == kept]

    def scoring_state(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> ScoringState:
        """The dense scoring view on ``device``, built on first use and cached."""
        key = (str(device), dtype)
        if key not in self._states:
            self._states[key] = ScoringState.from_space(self.tensors, device=device, dtype=dtype)
        return self._states[key]

    def check_model(self, model: Any) -> None:
        """Raise :class:`ModelMismatchError` unless ``model`` is the CLIP model this space was built with."""
        dim = int(model.config.projection_dim)
        name = str(getattr(model, "name_or_path", "") or model.config._name_or_path or "")
        if dim != self.config.embedding_dim:
            raise ModelMismatchError(
                f"This space holds {self.config.embedding_dim}-d embeddings of {self.config.base_model!r}, but the "
                f"model {name or '(unnamed)'} produces {dim}-d embeddings. Load the pipeline with "
                f"model={self.config.base_model!r}, or rebuild the space for your model with `s3 build --model`."
            )
        if name and not same_model(name, self.config.base_model):
            raise ModelMismatchError(
                f"This space was built with {self.config.base_model!r} but the pipeline's model is {name!r}; "
                "text and image embeddings of different models are not comparable. Load the pipeline with "
                f"model={self.config.base_model!r}, or rebuild the space with `s3 build --model {name}`."
            )

    def summary(self) -> dict[str, Any]:
        """Counts and radii per class, for ``s3 inspect`` and the model card."""
        rows = []
        for c, rec in enumerate(self.classes):
            rows.append(
                {
                    "label": rec["label"],
                    "concepts": len(rec["concepts"]),
                    "kept": self.concepts(c, kept=True),
                    "dropped": self.concepts(c, kept=False),
                    "radius": rec["radius"],
                }
            )
        sizes = self.tensors.simplex_indptr.diff()
        return {
            "base_model": self.config.base_model,
            "classes": self.num_classes,
            "points": int(self.tensors.points.shape[0]),
            "kept": int(self.tensors.kept.sum()),
            "dropped": int((~self.tensors.kept).sum()),
            "simplices": {int(k): int((sizes == k).sum()) for k in sizes.unique().tolist()},
            "embedding_dim": self.config.embedding_dim,
            "templates": len(self.config.templates),
            "metric": self.config.metric,
            "radius_rule": self.config.radius,
            "per_class": rows,
        }

    # -------------------------------------------------------------------------------------------- saving
    def save_pretrained(self, save_directory: str | os.PathLike, repo_id: str | None = None) -> Path:
        """Write the artifact to ``save_directory`` atomically: files are written to a temporary folder
        beside it and moved into place only once all of them are complete. ``repo_id`` names the Hub repo
        in the model card's usage example."""
        target = Path(save_directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            self._write(tmp, repo_id)
            if not target.exists():
                os.replace(tmp, target)
            else:
                for f in tmp.iterdir():
                    os.replace(f, target / f.name)
                tmp.rmdir()
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    def _write(self, folder: Path, repo_id: str | None) -> None:
        (folder / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2, ensure_ascii=False) + "\n")
        syn = {"format_version": FORMAT_VERSION, "classes": self.classes}
        (folder / SYNONYMS_NAME).write_text(json.dumps(syn, indent=2, ensure_ascii=False) + "\n")
        tensors = {k: v.contiguous() for k, v in self.tensors.tensors().items()}
        save_file(tensors, str(folder / TENSORS_NAME), metadata={"format_version": str(FORMAT_VERSION)})
        from .card import render_card

        (folder / CARD_NAME).write_text(render_card(self, repo_id))

    # ------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        force_download: bool = False,
    ) -> SynonymSpace:
        """Load a space from a local folder or a Hub repo id (``"org/name"``), validating everything.

        Only JSON and safetensors are read: nothing is ever unpickled.
        """
        path = Path(name_or_path)
        if path.is_dir():
            folder = path
        elif path.exists():
            raise ArtifactNotFoundError(f"{path} is a file; pass the folder that holds {CONFIG_NAME}.")
        else:
            folder = download(str(name_or_path), revision, cache_dir, local_files_only, token, force_download)
        return cls._read(folder)

    @classmethod
    def _read(cls, folder: Path) -> SynonymSpace:
        for name in REQUIRED_FILES:
            if not (folder / name).is_file():
                raise ArtifactNotFoundError(
                    f"{folder} has no {name}; a synonym space needs {', '.join(REQUIRED_FILES)}. "
                    "Was it written by `SynonymSpace.save_pretrained` / `s3 build`?"
                )
        config = S3Config.from_dict(_read_json(folder / CONFIG_NAME))
        syn = _read_json(folder / SYNONYMS_NAME)
        if not isinstance(syn.get("classes"), list):
            raise ArtifactCorruptError(f"{folder / SYNONYMS_NAME} has no 'classes' list. Rebuild the space.")
        try:
            raw = load_file(str(folder / TENSORS_NAME))
        except (SafetensorError, OSError, ValueError) as err:
            raise ArtifactCorruptError(
                f"{folder / TENSORS_NAME} cannot be read as safetensors ({err}); the file is truncated or "
                "corrupt. Download it again (force_download=True) or rebuild the space."
            ) from err
        expected = set(_DTYPES)
        if set(raw) != expected:
            raise ArtifactShapeError(
                f"{TENSORS_NAME} holds tensors {sorted(raw)}, expected {sorted(expected)}. Rebuild the space."
            )
        return cls(config, syn["classes"], SpaceTensors(**raw))

    # ----------------------------------------------------------------------------------------------- Hub
    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool | None = None,
        revision: str | None = None,
        commit_message: str = "Upload S^3 synonym space",
    ) -> str:
        """Create ``repo_id`` if needed and upload the artifact with its model card in one commit."""
        return upload_to_hub(
            repo_id,
            lambda tmp, repo: self.save_pretrained(tmp / "space", repo_id=repo),
            token=token,
            private=private,
            revision=revision,
            commit_message=commit_message,
        )


def upload_to_hub(
    repo_id: str,
    write: Callable[[Path, str], Path],
    *,
    token: str | None,
    private: bool | None,
    revision: str | None,
    commit_message: str,
    allow_patterns: list[str] | None = None,
) -> str:
    """Create ``repo_id`` if needed, ``write(tmp_dir, repo_id)`` the files to a temporary folder and upload that
    folder (only ``allow_patterns`` when given) in one commit; the commit URL. Typed errors for no token / network."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if token is None and get_token() is None:
        raise HubError(
            "No Hugging Face token found. Run `hf auth login`, set the HF_TOKEN environment variable, "
            "or pass token=... (a token with write access)."
        )
    api = HfApi(token=token)
    try:
        repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmp:
            folder = write(Path(tmp), repo_id)
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                revision=revision,
                commit_message=commit_message,
                allow_patterns=allow_patterns,
            )
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError) as err:
        raise HubError(
            f"Could not push to {repo_id!r}: {err}. Check your network, that HF_HUB_OFFLINE is not set, "
            "and that your token has write access to that namespace."
        ) from err
    return str(getattr(info, "commit_url", info))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactCorruptError(f"{path} is not valid JSON ({err}). Re-download or rebuild the space.") from err
    if not isinstance(data, dict):
        raise ArtifactCorruptError(f"{path} must hold a JSON object. Re-download or rebuild the space.")
    return data


def download(
    repo_id: str,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    local_files_only: bool,
    token: str | bool | None,
    force_download: bool,
    names: Sequence[str] = (*REQUIRED_FILES, CARD_NAME),
    optional: Sequence[str] = (CARD_NAME,),
    what: str = "an s3-hf synonym space",
) -> Path:
    """Download ``names`` of a Hub repo into the local cache (``optional`` ones may be missing); typed errors."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    files = []
    for name in names:
        try:
            files.append(
                hf_hub_download(
                    repo_id,
                    name,
                    revision=revision,
                    cache_dir=cache_dir,
                    local_files_only=local_files_only,
                    token=token,
                    force_download=force_download,
                )
            )
        except HFValidationError as err:
            raise ArtifactNotFoundError(
                f"{repo_id!r} is neither an existing local folder nor a valid Hub repo id ('org/name')."
            ) from err
        except (RepositoryNotFoundError, RevisionNotFoundError) as err:
            raise ArtifactNotFoundError(
                f"Hub repo {repo_id!r} (revision {revision or 'main'}) was not found or is private. Check the "
                "name, or log in with `hf auth login` for private repos."
            ) from err
        except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
            raise ArtifactNotFoundError(
                f"{repo_id!r} is not a local folder and its {name} is not in the Hub cache, and the Hub cannot "
                "be reached (offline or HF_HUB_OFFLINE=1). Download it once with network access, or pass a "
                "local folder written by `s3 build`."
            ) from err
        except EntryNotFoundError as err:  # after LocalEntryNotFoundError, its subclass
            if name in optional:
                continue
            raise ArtifactNotFoundError(f"Hub repo {repo_id!r} has no {name}: it holds no {what}.") from err
        except (HfHubHTTPError, OSError) as err:
            raise HubError(f"Downloading {name} from {repo_id!r} failed: {err}. Check your network.") from err
    return Path(files[0]).parent


def validate(space: SynonymSpace) -> None:
    """Check shapes, dtypes, finiteness and index consistency; raise a typed :class:`ArtifactError`."""
    cfg, t = space.config, space.tensors
    num_classes = len(cfg.class_names)

    def shape_error(msg: str) -> ArtifactShapeError:
        return ArtifactShapeError(f"Invalid synonym space: {msg}. The artifact is damaged; rebuild it with `s3 build`.")

    for name, dtype in _DTYPES.items():
        x = getattr(t, name)
        if not isinstance(x, torch.Tensor) or x.dtype != dtype:
            raise shape_error(f"tensor {name} must be {dtype}, got {getattr(x, 'dtype', type(x))}")
    p, d = t.points.shape if t.points.ndim == 2 else (-1, -1)
    if d != cfg.embedding_dim:
        raise shape_error(f"points must have shape (P, {cfg.embedding_dim}), got {tuple(t.points.shape)}")
    for name, shape in {
        "point_class": (p,),
        "kept": (p,),
        "radius": (num_classes,),
        "global_centres": (num_classes, d),
        "neighbour_indptr": (p + 1,),
    }.items():
        if tuple(getattr(t, name).shape) != shape:
            raise shape_error(f"{name} must have shape {shape}, got {tuple(getattr(t, name).shape)}")
    for name in (*_FLOAT_TENSORS, "radius"):
        if not torch.isfinite(getattr(t, name)).all():
            raise ArtifactValueError(
                f"Invalid synonym space: tensor {name} holds NaN or infinite values. Rebuild it with `s3 build`."
            )
    if num_classes == 0 or len(set(cfg.class_names)) != num_classes:
        raise shape_error("class_names must be non-empty and unique")
    pc = t.point_class
    if p < num_classes or (pc.diff() < 0).any() or pc.min() != 0 or pc.max() != num_classes - 1:
        raise shape_error("point_class must be sorted and give every class at least one point")
    counts = torch.bincount(pc, minlength=num_classes)
    if len(space.classes) != num_classes:
        raise shape_error(f"{SYNONYMS_NAME} lists {len(space.classes)} classes, config lists {num_classes}")
    kept_counts = torch.bincount(pc[t.kept], minlength=num_classes)
    if (kept_counts == 0).any():
        raise shape_error("every class needs at least one kept point")
    for c, rec in enumerate(space.classes):
        concepts = rec.get("concepts") if isinstance(rec, dict) else None
        if rec.get("label") != cfg.class_names[c] or not isinstance(concepts, list) or len(concepts) != counts[c]:
            raise shape_error(f"{SYNONYMS_NAME} class {c} does not match the tensors ({cfg.class_names[c]!r})")
    flags = [bool(x.get("kept")) for rec in space.classes for x in rec["concepts"]]
    if flags != t.kept.tolist():
        raise shape_error(f"kept flags in {SYNONYMS_NAME} differ from the tensors")
    norms = t.points.norm(dim=-1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
        raise ArtifactValueError("Invalid synonym space: points must be unit vectors. Rebuild it with `s3 build`.")
    for kind, ptr, idx in (
        ("neighbour", t.neighbour_indptr, t.neighbour_indices),
        ("simplex", t.simplex_indptr, t.simplex_vertices),
    ):
        if ptr.ndim != 1 or idx.ndim != 1 or ptr[0] != 0 or ptr[-1] != len(idx) or (ptr.diff() < 0).any():
            raise shape_error(f"{kind}_indptr is not a valid CSR index pointer")
        if len(idx) and (idx.min() < 0 or idx.max() >= p or not t.kept[idx].all()):
            raise shape_error(f"{kind} indices must point at kept points")
    sizes = t.simplex_indptr.diff()
    if (sizes < 1).any() or (len(sizes) and sizes.max() > cfg.max_dim + 1):
        raise shape_error(f"simplices must have 1 to {cfg.max_dim + 1} vertices")
    first = t.simplex_vertices[t.simplex_indptr[:-1]] if len(sizes) else t.simplex_vertices
    owner = torch.repeat_interleave(pc[first], sizes) if len(sizes) else first
    if not torch.equal(pc[t.simplex_vertices], owner):
        raise shape_error("a simplex spans more than one class")
    if not math.isfinite(float(cfg.gap_ratio)):
        raise ArtifactValueError("Invalid synonym space: gap_ratio must be finite.")


__all__ = ["ArtifactError", "S3Config", "SynonymSpace", "validate"]
