"""The fitted few-shot adapter (:class:`SSPAdapter`) and what fitting it recorded (:class:`FitInfo`): the artifact
``ssp_config.json`` + ``ssp_state.safetensors``, saved beside a synonym space's files or on its own."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

import torch

from s3_hf.errors import AdapterMismatchError, ArtifactCorruptError, ArtifactShapeError, InvalidConfigError
from s3_hf.fewshot.config import SSPConfig
from s3_hf.fewshot.subspaces import Terms
from s3_hf.io.artifact import Artifact, Writer, check_format_version, json_text, read_tensors, sha256, tensor_bytes
from s3_hf.io.files import load_json_text

SSP_FORMAT_VERSION = 1
SSP_CONFIG_NAME = "ssp_config.json"
SSP_TENSORS_NAME = "ssp_state.safetensors"
CARD_NAME = "README.md"  # the model card of the space the adapter is saved beside
PROVENANCE_KEYS = ("base_model", "zero_shot_metric", "text_vector", "space_sha256")

logger = logging.getLogger(__name__)


class SpaceLike(Protocol):
    """What an adapter checks of the space it is used or pushed with (a :class:`~s3_hf.space.artifact.SynonymSpace`)."""

    def tensors_hash(self) -> str: ...


def _refit(where: str, msg: str) -> ArtifactCorruptError:
    return ArtifactCorruptError(f"{where}: {msg}. Refit the adapter (`s3 fewshot`) to write it again.")


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


@dataclass(frozen=True)
class FitInfo:
    """What fitting an adapter chose and saw, saved as ``info`` in ``ssp_config.json``.

    ``alpha``/``beta``/``gamma`` are the weights in use; ``tuned`` says whether they were chosen on a validation
    split of ``validation_images`` support images (then ``validation_accuracy`` is the adapter's accuracy on it
    and ``validation_zero_shot_accuracy`` the zero-shot one). ``shots`` counts support images per class, ``ranks``
    holds the ``vision`` and per-class ``language`` subspace ranks. ``base_model``, ``zero_shot_metric`` and
    ``text_vector`` say what the adapter was fitted on top of, ``space_sha256`` the space (the hash of its tensors,
    see :meth:`~s3_hf.space.artifact.SynonymSpace.tensors_hash`); ``None`` when unknown, e.g. fitted on raw features
    with :func:`fit_ssp`. Fields that are ``None`` are left out of the saved file.
    """

    embedding_dim: int
    shots: list[int]
    alpha: float
    beta: float
    gamma: float
    tuned: bool
    validation_images: int | None = None
    validation_accuracy: float | None = None
    validation_zero_shot_accuracy: float | None = None
    ranks: dict[str, Any] | None = None
    base_model: str | None = None
    zero_shot_metric: str | None = None
    text_vector: str | None = None
    space_sha256: str | None = None  # of the tensors of the space it was fitted on (None: not recorded)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any, where: str = "few-shot adapter info") -> FitInfo:
        """Validate and convert the ``info`` of an ``ssp_config.json``; unknown keys are ignored."""
        if not isinstance(data, Mapping):
            raise _refit(where, f"expected a JSON object, got {type(data).__name__}")
        missing = [k for k in ("embedding_dim", "shots", "alpha", "beta", "gamma", "tuned") if k not in data]
        if missing:
            raise _refit(where, f"lacks the keys {missing}")
        dim, shots = data["embedding_dim"], data["shots"]
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise _refit(where, f"'embedding_dim' must be a positive integer, got {dim!r}")
        if not isinstance(shots, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in shots):
            raise _refit(where, f"'shots' must be a list of integers, got {shots!r}")
        for key in ("alpha", "beta", "gamma"):
            if not _number(data[key]):
                raise _refit(where, f"{key!r} must be a number, got {data[key]!r}")
        if not isinstance(data["tuned"], bool):
            raise _refit(where, f"'tuned' must be true or false, got {data['tuned']!r}")
        optional: dict[str, tuple[Callable[[Any], bool], str]] = {
            "validation_images": (lambda x: isinstance(x, int) and not isinstance(x, bool), "an integer"),
            "validation_accuracy": (_number, "a number"),
            "validation_zero_shot_accuracy": (_number, "a number"),
            "ranks": (lambda x: isinstance(x, dict), "an object"),
            **{k: ((lambda x: isinstance(x, str)), "a string") for k in PROVENANCE_KEYS},
        }
        for key, (ok, what) in optional.items():
            value = data.get(key)
            if value is not None and not ok(value):
                raise _refit(where, f"{key!r} must be {what} or null, got {value!r}")
        floats = ("alpha", "beta", "gamma", "validation_accuracy", "validation_zero_shot_accuracy")
        values = {f.name: data.get(f.name) for f in fields(cls)}
        values.update({k: float(values[k]) for k in floats if values[k] is not None})
        return cls(**values)


class SSPAdapter(Artifact):
    """A fitted SSP (or cache-only) adapter for a fixed list of classes; add its logits to zero-shot scores.

    ``logits(v, zero_shot_scores)`` returns ``zero_shot_scores + α·cache + γ·language`` (cosine scale, multiply by
    CLIP's ``τ``); with no support images it returns ``zero_shot_scores`` itself. Saved (``save_pretrained``, e.g.
    beside the synonym space it was fitted on), loaded (``from_pretrained``) and pushed (``push_to_hub``, its two
    files only) as every :class:`~s3_hf.io.artifact.Artifact` is.
    """

    what: ClassVar[str] = "few-shot adapter"
    config_name: ClassVar[str] = SSP_CONFIG_NAME
    required_files: ClassVar[tuple[str, ...]] = (SSP_CONFIG_NAME, SSP_TENSORS_NAME)
    missing_hint: ClassVar[str] = "it holds no few-shot (SSP) adapter."
    commit_message: ClassVar[str] = "Upload SSP few-shot adapter"
    upload_patterns: ClassVar[list[str] | None] = [SSP_CONFIG_NAME, SSP_TENSORS_NAME]
    replaces_on_push: ClassVar[tuple[str, ...] | None] = ("few-shot adapter",)  # never the space beside it

    def __init__(
        self, labels: Sequence[str], config: SSPConfig, info: FitInfo | Mapping[str, Any], terms: Terms | None
    ) -> None:
        self.labels = list(labels)
        self.config = config
        self.info = info if isinstance(info, FitInfo) else FitInfo.from_dict(info)
        self._terms = terms
        self._keys: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def is_empty(self) -> bool:
        return self._terms is None

    @property
    def alpha(self) -> float:
        return float(self.info.alpha)

    @property
    def beta(self) -> float:
        return float(self.info.beta)

    @property
    def gamma(self) -> float:
        return float(self.info.gamma)

    @property
    def vision_basis(self) -> torch.Tensor | None:
        return None if self._terms is None else self._terms.vision_basis

    @property
    def language_text(self) -> torch.Tensor | None:
        return None if self._terms is None else self._terms.language_text

    def logits(self, v: torch.Tensor, zero_shot_scores: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` unit image embeddings and their ``(B, C)`` zero-shot scores -> ``(B, C)`` SSP scores."""
        if self._terms is None:
            return zero_shot_scores
        if zero_shot_scores.shape != (v.shape[0], self.num_classes):
            raise InvalidConfigError(
                f"Zero-shot scores have shape {tuple(zero_shot_scores.shape)}, expected ({v.shape[0]}, "
                f"{self.num_classes}) for this adapter's classes."
            )
        if self._keys is None:
            self._keys = self._terms.projected_keys()
        v = v.float()
        out = zero_shot_scores.float() + self.alpha * self._terms.cache(v, self.beta, self._keys)
        if self.gamma:
            out = out + self.gamma * self._terms.language(v)
        return out

    def check_space(self, space: SpaceLike) -> bool:
        """Whether this adapter records the synonym space it was fitted on and ``space`` is that space (its
        :meth:`~s3_hf.space.artifact.SynonymSpace.tensors_hash`): ``True``; ``False`` when it records none (saved
        before the hash was recorded, or fitted on raw features: nothing can be checked, the caller warns).

        Raises:
            AdapterMismatchError: it was fitted on another space, even one with the same classes; its message says
                how to refit it (``s3 fewshot``).
        """
        fitted_on = self.info.space_sha256
        if fitted_on is None:
            return False
        current = space.tensors_hash()
        if fitted_on != current:
            raise AdapterMismatchError(
                f"The few-shot adapter was fitted on another synonym space (tensor hash {fitted_on[:12]}..., this "
                f"space's is {current[:12]}...), even if the classes are the same: its text vectors and tuned "
                "weights belong to that space. Refit it on this space: `s3 fewshot SUPPORT_FOLDER --space SPACE "
                "--out FOLDER` (or pass support=SUPPORT_FOLDER to fit it afresh)."
            )
        return True

    def check_beside(self, primary: Artifact) -> None:
        """Refuse (:class:`~s3_hf.errors.AdapterMismatchError`) to be pushed beside a synonym space other than the
        one it was fitted on; an adapter that records no space is pushed with a warning."""
        if hasattr(primary, "tensors_hash") and not self.check_space(cast("SpaceLike", primary)):
            logger.warning(
                "The few-shot adapter does not record the space it was fitted on (saved by an older s3-hf, or "
                "fitted on raw features); it is pushed as is. Refit it with `s3 fewshot` so that a mismatch can be "
                "caught."
            )

    # ------------------------------------------------------------------------------------ the artifact's files
    def writers(self, target: Path, repo_id: str | None, overwrite: bool) -> tuple[dict[str, Writer], list[str]]:
        """``ssp_config.json`` and ``ssp_state.safetensors`` (the config records the tensor file's hash); every
        other file of ``target`` (a synonym space's) is carried over."""
        t = self._terms
        dim = self.info.embedding_dim
        tensors = {
            "vision_basis": torch.zeros(dim, 0) if t is None or t.vision_basis is None else t.vision_basis,
            "keys": torch.zeros(0, dim) if t is None else t.keys,
            "key_labels": torch.zeros(0, dtype=torch.int64) if t is None else t.key_labels,
            "language_text": torch.zeros(0, dim) if t is None or t.language_text is None else t.language_text,
        }
        data = tensor_bytes(tensors)
        meta = {
            "format_version": SSP_FORMAT_VERSION,
            "labels": self.labels,
            "config": asdict(self.config),
            "info": self.info.to_dict(),
            "vision_projection": t is not None and t.vision_basis is not None,
            "language_term": t is not None and t.language_text is not None,
            "tensors_sha256": sha256(data),
        }
        writers: dict[str, Writer] = {
            SSP_TENSORS_NAME: lambda p: p.write_bytes(data),
            SSP_CONFIG_NAME: lambda p: p.write_text(json_text(meta), encoding="utf-8"),
        }
        card = self._card_beside(target, repo_id)
        if card is not None:
            writers[CARD_NAME] = lambda p: p.write_text(card, encoding="utf-8")
        return writers, []

    def _card_beside(self, target: Path, repo_id: str | None) -> str | None:
        """The model card of the space saved in ``target`` with a section on this adapter (and SSP's paper), or
        ``None`` when ``target`` holds no card s3-hf wrote (a user's own card is never changed)."""
        from s3_hf.space.card import is_s3_card, with_adapter

        try:
            text = (target / CARD_NAME).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        if not is_s3_card(text):
            return None
        return with_adapter(text, self.config.mode, self.info.shots, self.info.space_sha256, repo_id)

    @classmethod
    def read(cls, folder: Path) -> SSPAdapter:
        """The adapter in ``folder``, its config and tensor shapes validated (never unpickles)."""
        from safetensors.torch import load

        labels, config, info, meta = _read_meta(folder / SSP_CONFIG_NAME)
        fix = "Refit the adapter (`s3 fewshot`) or download it again."
        raw = read_tensors(folder / SSP_TENSORS_NAME, load, meta.get("tensors_sha256"), fix)
        _check_tensors(raw, folder / SSP_TENSORS_NAME, info.embedding_dim, len(labels), meta["language_term"])
        if raw["keys"].shape[0] == 0:
            return cls(labels, config, info, None)
        terms = Terms(
            raw["vision_basis"] if meta["vision_projection"] else None,
            raw["keys"],
            raw["key_labels"],
            raw["language_text"] if meta["language_term"] else None,
            len(labels),
            info.ranks or {},
        )
        return cls(labels, config, info, terms)


def _read_meta(path: Path) -> tuple[list[str], SSPConfig, FitInfo, dict[str, Any]]:
    """The labels, options and fit record of an ``ssp_config.json``, and the whole object."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as err:
        raise ArtifactCorruptError(f"{path}: the few-shot adapter cannot be read ({err}). Refit it.") from err
    meta = load_json_text(text, ArtifactCorruptError, f"{path.parent}'s few-shot adapter config", "Refit it.")
    where = str(path)
    if not isinstance(meta, dict):
        raise _refit(where, "expected a JSON object")
    check_format_version(meta.get("format_version"), SSP_FORMAT_VERSION, where, "Upgrade s3-hf or refit the adapter.")
    labels, info = meta.get("labels"), FitInfo.from_dict(meta.get("info"), f"{where} info")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise _refit(where, f"'labels' must be a non-empty list of strings, got {labels!r}")
    if not isinstance(meta.get("config"), dict):
        raise _refit(where, "'config' must be an object of SSPConfig options")
    for key in ("vision_projection", "language_term"):
        if not isinstance(meta.get(key), bool):
            raise _refit(where, f"{key!r} must be true or false, got {meta.get(key)!r}")
    digest = meta.get("tensors_sha256")
    if digest is not None and not isinstance(digest, str):
        raise _refit(where, f"'tensors_sha256' must be a string or null, got {digest!r}")
    return labels, SSPConfig.from_dict(meta["config"]), info, meta


def _check_tensors(raw: Mapping[str, Any], path: Path, dim: int, num_classes: int, language_term: bool) -> None:
    """The adapter's tensors have the shapes its config implies and its keys' labels name its classes."""
    n = raw["keys"].shape[0] if "keys" in raw else 0
    expected = {
        "vision_basis": (dim, raw["vision_basis"].shape[1] if "vision_basis" in raw else -1),
        "keys": (n, dim),
        "key_labels": (n,),
        "language_text": (num_classes, dim) if language_term else (0, dim),
    }
    for name, shape in expected.items():
        if name not in raw or tuple(raw[name].shape) != shape:
            got = tuple(raw[name].shape) if name in raw else "missing"
            raise ArtifactShapeError(f"{path}: {name} has shape {got}, expected {shape}.")
    if n and (raw["key_labels"].min() < 0 or raw["key_labels"].max() >= num_classes):
        raise ArtifactShapeError(f"{path}: key_labels outside 0..{num_classes - 1}.")


__all__ = ["PROVENANCE_KEYS", "SSP_CONFIG_NAME", "SSP_FORMAT_VERSION", "SSP_TENSORS_NAME", "FitInfo", "SSPAdapter"]
