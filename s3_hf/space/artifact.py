"""The synonym-space artifact: config, per-class records, tensors; save, load, validate, Hub, model card."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load as load_tensors

from s3_hf.errors import ArtifactError, ArtifactValueError, ModelMismatchError
from s3_hf.io.artifact import Artifact, Writer, json_text, sha256, tensor_bytes
from s3_hf.models.loading import LOCAL_PREFIX, is_local_model, model_identity
from s3_hf.space.files import (
    CARD_NAME,
    CONFIG_NAME,
    FORMAT_VERSION,
    REQUIRED_FILES,
    SYNONYMS_NAME,
    TENSORS_NAME,
    S3Config,
    check_records,
    missing_hint,
    read_records,
    shape_error,
    summarize,
)
from s3_hf.space.geometry import SpaceTensors
from s3_hf.space.records import ClassRecord, SpaceSummary
from s3_hf.space.remote import (
    HUB_CODE_NAME,
    MODEL_CONFIG_NAME,
    bundle_writers,
    check_foreign,
    hub_code_text,
    model_config,
)
from s3_hf.space.scoring import ScoringState, check_state_size

logger = logging.getLogger(__name__)

_FLOAT_TENSORS = ("points", "global_centres")
# The dtypes of the saved tensors (s3_hf.space.files.TENSOR_NAMES).
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


def _hub_copy_of(folder: str, repo: str) -> bool:
    """Whether the local ``folder`` is a download of the Hub ``repo``: its snapshot in the Hub cache
    (``models--org--name/snapshots/REV``), or a folder named like the repo (``hf download org/name --local-dir
    .../name``, the offline route the README shows)."""
    parts = Path(folder).parts
    cache_dir = "models--" + repo.replace("/", "--")
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].casefold() == cache_dir.casefold():
        return True
    return parts[-1:] == (repo.rsplit("/", 1)[-1],)


def same_model(a: str, b: str, revision_a: str | None = None, revision_b: str | None = None) -> bool:
    """Whether two recorded model names are the same checkpoint.

    Local folders match by their full resolved path (``runs/a/checkpoint-500`` is not ``runs/b/checkpoint-500``),
    Hub ids by id and, when both sides record one, revision. A local folder matches a Hub id only when it is a
    download of that repo (see :func:`_hub_copy_of`).

    Args:
        a: a model name (Hub id or folder), as a space or an encoder records it.
        b: the other.
        revision_a: the Hub revision (commit) recorded with ``a``, if any.
        revision_b: the Hub revision recorded with ``b``, if any.
    """
    ids = [model_identity(s.strip().rstrip("/\\")) for s in (a, b)]
    if revision_a and revision_b and revision_a != revision_b:
        return False
    local = [is_local_model(s) for s in ids]
    paths = [s.removeprefix(LOCAL_PREFIX) for s in ids]
    if all(local):
        return paths[0] == paths[1]
    if not any(local):
        return ids[0].casefold() == ids[1].casefold()
    folder, repo = (paths[0], ids[1]) if local[0] else (paths[1], ids[0])
    return _hub_copy_of(folder, repo.removeprefix("hf-hub:"))


class SynonymSpace(Artifact):
    """A set of class spaces built from synonymous concepts: the artifact shared by pipeline, CLI, eval and app.

    ``classes`` holds one :class:`~s3_hf.space.records.ClassRecord` per class: its label, its concepts with a point
    (kept or pruned), the concepts removed before embedding, each dropped one with its kind and reason, its
    radius, death times and the provenance of its synonyms. Saved (``save_pretrained``), loaded
    (``from_pretrained``) and pushed (``push_to_hub``) as every :class:`~s3_hf.io.artifact.Artifact` is: four
    files, the model card among them, plus ``config.json`` and ``s3_pipeline.py`` (:mod:`s3_hf.space.remote`), with
    which transformers runs the space alone (``pipeline(model=..., trust_remote_code=True)``).
    """

    what: ClassVar[str] = "synonym space"
    hub_what: ClassVar[str] = "an s3-hf synonym space"
    config_name: ClassVar[str] = CONFIG_NAME
    required_files: ClassVar[tuple[str, ...]] = REQUIRED_FILES
    optional_files: ClassVar[tuple[str, ...]] = (CARD_NAME,)
    missing_hint: ClassVar[str] = missing_hint()
    commit_message: ClassVar[str] = "Upload S^3 synonym space"

    def __init__(self, config: S3Config, classes: list[ClassRecord], tensors: SpaceTensors) -> None:
        self.config = config
        self.classes = classes
        self.tensors = tensors
        self._states: dict[tuple[str, torch.dtype], ScoringState] = {}
        self._bundle = False  # set while a bundling save or push writes the space
        validate(self)

    # ----------------------------------------------------------------------------------------- accessors
    @property
    def labels(self) -> list[str]:
        return list(self.config.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.config.class_names)

    def concepts(self, c: int, kept: bool | None = None) -> list[str]:
        """Texts of the concepts of class ``c`` that have a point; ``kept=True/False`` filters kept or pruned ones."""
        return self.classes[c].texts(kept)

    def scoring_state(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> ScoringState:
        """The dense scoring view on ``device``, built on first use and cached."""
        key = (str(device), dtype)
        if key not in self._states:
            self._states[key] = ScoringState.from_space(self.tensors, device=device, dtype=dtype)
        return self._states[key]

    def check_model(self, model: Any) -> None:
        """Raise :class:`ModelMismatchError` unless ``model`` (a transformers model or an
        :class:`~s3_hf.models.encoders.Encoder`) is the model this space was built with."""
        from s3_hf.models.encoders import as_encoder

        encoder = as_encoder(model)
        dim = encoder.dim
        family = encoder.family.family
        if self.config.model_family is not None and family != self.config.model_family:
            raise ModelMismatchError(
                f"This space was built with a {self.config.model_family} model ({self.config.base_model!r}) but the "
                f"model here is a {family} model: their embeddings are not comparable. Load "
                f"{self.config.base_model!r}, or rebuild the space for this model with `s3 build --model`."
            )
        name = encoder.name
        if dim != self.config.embedding_dim:
            raise ModelMismatchError(
                f"This space holds {self.config.embedding_dim}-d embeddings of {self.config.base_model!r}, but the "
                f"model {name or '(unnamed)'} produces {dim}-d embeddings. Load the pipeline with "
                f"model={self.config.base_model!r}, or rebuild the space for your model with `s3 build --model`."
            )
        if name and not same_model(name, self.config.base_model, encoder.revision, self.config.base_model_revision):
            raise ModelMismatchError(
                f"This space was built with {self.config.base_model!r} but the pipeline's model is {name!r}; "
                "text and image embeddings of different models are not comparable. Load the pipeline with "
                f"model={self.config.base_model!r}, or rebuild the space with `s3 build --model {name}`."
            )

    def summary(self) -> SpaceSummary:
        """Counts and radii per class, for ``s3 inspect``, ``s3 build`` and the model card (a
        :class:`~s3_hf.space.records.SpaceSummary`; ``.to_dict()`` for JSON)."""
        return summarize(self.config, self.classes, self.tensors.simplex_indptr.diff().tolist())

    def label_positions(self) -> dict[str, int]:
        """Each class's index by its normalised label (requests hold normalised labels), computed once per set of
        class names rather than on every request."""
        names = tuple(self.config.class_names)
        cached = getattr(self, "_positions", None)
        if cached is None or cached[0] != names:
            from s3_hf.synonyms.base import normalise

            cached = (names, {normalise(lab): i for i, lab in enumerate(names)})
            self._positions = cached
        return cached[1]

    def tensors_hash(self) -> str:
        """The SHA-256 of the space's tensor file (``tensors_sha256`` in its config): what identifies the space a
        few-shot adapter was fitted on. Computed from the tensors for a space not saved or loaded yet."""
        if self.config.tensors_sha256 is None:
            self.config.tensors_sha256 = sha256(self._tensor_bytes())
        return self.config.tensors_sha256

    def _tensor_bytes(self) -> bytes:
        return tensor_bytes(self.tensors.tensors(), metadata={"format_version": str(FORMAT_VERSION)})

    # ------------------------------------------------------------------------------------ the artifact's files
    def writers(self, target: Path, repo_id: str | None, overwrite: bool) -> tuple[dict[str, Writer], list[str]]:
        """The space's files, refusing (unless ``overwrite``) to replace a ``README.md`` or ``config.json`` that
        s3-hf did not write or to keep a few-shot adapter fitted on the space saved there before (it is dropped with
        it); with the base model's files when a bundling save or push asks."""
        from s3_hf.space.card import render_card
        from s3_hf.space.card_results import stale_eval_results

        card = target / CARD_NAME
        if not overwrite and card.is_file() and not _written_by_us(card):
            raise ArtifactError(
                f"{card} exists and was not written by s3-hf; saving the space would replace it with the model "
                "card. Pick another folder, or pass overwrite=True (`--overwrite`) to replace it."
            )
        syn = {"format_version": FORMAT_VERSION, "classes": [rec.to_dict() for rec in self.classes]}
        data = self._tensor_bytes()
        self.config.tensors_sha256 = sha256(data)
        stale = _stale_adapter(target, self.config.tensors_sha256)
        if stale and not overwrite:
            raise ArtifactError(
                f"{target} holds a few-shot adapter ({', '.join(stale)}) fitted on the space saved there before; "
                "it would not match the new space. Save elsewhere, or pass overwrite=True (`--overwrite`) to remove "
                "the adapter (then refit it with `s3 fewshot`)."
            )
        bundle = self._bundle
        drop = [*stale, *check_foreign(target, overwrite, bundle), *stale_eval_results(target)]
        card_text = render_card(self, repo_id)
        cfg = self.config
        remote = json_text(model_config(cfg.base_model, cfg.base_model_revision, bundle))
        code = hub_code_text()
        writers: dict[str, Writer] = {
            TENSORS_NAME: lambda p: p.write_bytes(data),
            SYNONYMS_NAME: lambda p: p.write_text(json_text(syn), encoding="utf-8"),
            CARD_NAME: lambda p: p.write_text(card_text, encoding="utf-8"),
            CONFIG_NAME: lambda p: p.write_text(json_text(cfg.to_dict()), encoding="utf-8"),
            MODEL_CONFIG_NAME: lambda p: p.write_text(remote, encoding="utf-8"),
            HUB_CODE_NAME: lambda p: p.write_text(code, encoding="utf-8"),
        }
        if bundle:
            writers.update(bundle_writers(cfg.base_model, cfg.base_model_revision))
        return writers, drop

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        repo_id: str | None = None,
        *,
        overwrite: bool = False,
        bundle: bool = False,
    ) -> Path:
        """Write the space's files into ``save_directory`` in one atomic step (see
        :meth:`~s3_hf.io.artifact.Artifact.save_pretrained`): ``s3_config.json``, ``synonyms.json``,
        ``s3_space.safetensors``, the model card, and ``config.json`` with ``s3_pipeline.py``, which let
        ``transformers.pipeline(model=<folder or repo>, trust_remote_code=True)`` run the space without s3-hf.

        Args:
            save_directory: the folder (created if needed); files in it the space does not own are carried over.
            repo_id: the Hub repo named in the model card.
            overwrite: replace what would otherwise be refused (a ``README.md`` or ``config.json`` s3-hf did not
                write, a few-shot adapter fitted on another space).
            bundle: copy the base model's files into ``base_model/`` (from its folder, or its Hub snapshot), so the
                space runs without fetching the base model; by default it is referenced by id and revision.
        """
        previous = self._bundle
        self._bundle = bundle or previous  # a bundling push saves through here
        try:
            return super().save_pretrained(save_directory, repo_id, overwrite=overwrite)
        finally:
            self._bundle = previous

    def push_to_hub(self, repo_id: str, *, bundle: bool = False, **options: Any) -> str:
        """Upload the space's files (those :meth:`save_pretrained` writes) to ``repo_id`` in one commit; returns the
        commit URL.

        Args:
            repo_id: ``"org/name"``.
            bundle: carry the base model's files in ``base_model/`` (see :meth:`save_pretrained`).
            options: the options of :meth:`~s3_hf.io.artifact.Artifact.push_to_hub` (``token``, ``private``,
                ``revision``, ``commit_message``, ...).
        """
        base = self.config.base_model
        if not bundle and is_local_model(base):
            logger.warning(
                "The space was built on the local folder %s, which the pushed space names: other machines do not have "
                "it, so they must pass the model themselves (model_kwargs={'base_model': ...}, or --model). Push "
                "with bundle=True (`s3 push --bundle`) to carry the model's files, or build on the model's Hub id.",
                base,
            )
        self._bundle = bundle
        try:
            return super().push_to_hub(repo_id, **options)
        finally:
            self._bundle = False

    @classmethod
    def read(cls, folder: Path) -> SynonymSpace:
        config, classes, raw = read_records(folder, load_tensors)
        space = cls(config, classes, SpaceTensors(**raw))
        check_state_size(space.tensors, str(folder))  # refused at load, before scoring allocates its dense view
        return space


def _stale_adapter(folder: Path, new_sha256: str) -> list[str]:
    """The few-shot adapter files in ``folder`` if they were fitted on a space other than the one being saved."""
    from s3_hf.fewshot.adapter import SSP_CONFIG_NAME, SSP_TENSORS_NAME

    present = [n for n in (SSP_CONFIG_NAME, SSP_TENSORS_NAME) if (folder / n).is_file()]
    if not present:
        return []
    try:  # the space the adapter records, else (adapters fitted before it was recorded) the space saved there
        old = json.loads((folder / SSP_CONFIG_NAME).read_text(encoding="utf-8"))["info"].get("space_sha256")
        old = old or json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8")).get("tensors_sha256")
    except (OSError, ValueError, AttributeError, KeyError, TypeError, RecursionError):
        old = None
    return [] if old == new_sha256 else present


def _written_by_us(card: Path) -> bool:
    """Whether a README.md is a model card s3-hf rendered (its front matter names the library)."""
    try:
        head = card.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return head.startswith("---") and "library_name: s3-hf" in head


def validate(space: SynonymSpace) -> None:
    """Check shapes, dtypes, finiteness and index consistency; raise a typed :class:`ArtifactError`."""
    cfg, t = space.config, space.tensors
    num_classes = len(cfg.class_names)

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
    kept_counts = torch.bincount(pc[t.kept], minlength=num_classes)
    if (kept_counts == 0).any():
        raise shape_error("every class needs at least one kept point")
    check_records(cfg, space.classes, t.kept.tolist(), torch.bincount(pc, minlength=num_classes).tolist())
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
    if (sizes < 1).any() or (len(sizes) and sizes.max() > cfg.space.max_dim + 1):
        raise shape_error(f"simplices must have 1 to {cfg.space.max_dim + 1} vertices")
    first = t.simplex_vertices[t.simplex_indptr[:-1]] if len(sizes) else t.simplex_vertices
    owner = torch.repeat_interleave(pc[first], sizes) if len(sizes) else first
    if not torch.equal(pc[t.simplex_vertices], owner):
        raise shape_error("a simplex spans more than one class")
    if not math.isfinite(float(cfg.space.gap_ratio)):
        raise ArtifactValueError("Invalid synonym space: gap_ratio must be finite.")


__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "REQUIRED_FILES",
    "SYNONYMS_NAME",
    "TENSORS_NAME",
    "S3Config",
    "SynonymSpace",
    "same_model",
    "validate",
]
