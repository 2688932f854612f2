"""SSP (Selective Vision-Language Subspace Projection): a training-free few-shot adapter on zero-shot scores.

With ``k`` labelled support images per class (global features ``g``, local features ``l`` from
:mod:`.features`) and one text vector ``t_c`` per class (an S^3 centre or the label):

1. **Selection.** Per support image keep the ``s`` local features most similar to its global feature (vision
   side) and the ``s`` most similar to its class's text vector (language side), each weighted by that similarity.
2. **Vision subspace.** Per class the mean of the selected vision-side features plus ``λ`` times the mean global
   feature; the span of the top ``r_v`` right singular vectors of these stacked class means. Support keys and
   test features are projected onto it for the cache.
3. **Language subspaces.** Per class the span of the top ``r_l`` right singular vectors of its selected
   language-side features, each plus ``λ t_c``. The text vector is projected into its own class subspace,
   ``t'_c = P_c t_c``, and an image is scored by its projection ``<P_c v, P_c t_c> / ||P_c t_c|| = v . n(t'_c)``.
4. **Logits** (before CLIP's temperature ``τ``): ``s_c(v) + α · cache_c(v) + γ · lang_c(v)`` with the zero-shot
   (S^3) score ``s_c``, the Tip-Adapter-style cache ``cache_c(v) = mean over class-c keys k of
   exp(-β (1 - n(P v) . n(P k)))`` and the language score above. ``α, β, γ`` are chosen on a validation split of
   the support set, never on test data.

Ranks are capped at the numerical rank of what spans the subspace (a larger rank would silently make a
projection the identity on that span). Scoring holds ``(B, N)`` and ``(B, C)`` tensors only, never ``B x C x D``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from s3_hf.errors import (
    ArtifactCorruptError,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactShapeError,
    FormatVersionError,
    InvalidConfigError,
    InvalidLabelsError,
)
from s3_hf.fewshot.features import DEFAULT_AUGMENT_VIEWS, check_augment_views
from s3_hf.io.files import load_json_text, recover_folder, write_artifact
from s3_hf.io.hub import download, upload
from s3_hf.validation import integer, number, numbers, one_of

SSP_FORMAT_VERSION = 1
SSP_CONFIG_NAME = "ssp_config.json"
SSP_TENSORS_NAME = "ssp_state.safetensors"
RANK_RTOL = 1e-5  # singular values below this fraction of the largest do not count towards the span

DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA = 0.02, 5.5, 0.5
ALPHA_GRID = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
BETA_GRID = (1.0, 3.0, 5.5, 8.0, 12.0)
GAMMA_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)
MODES = ("ssp", "cache")


@dataclass(frozen=True)
class SSPConfig:
    """Options of :func:`fit_ssp`. ``mode="cache"`` is the Tip-Adapter-style baseline: the cache term alone, on
    unprojected features, no language term. ``alpha``/``beta``/``gamma`` left as ``None`` are tuned on a
    validation split (``val_fraction`` of each class's support images, at least one, for classes with two or
    more); with no validation images they fall back to the defaults. ``augment_views``: augmented views per
    support image whose mean is its cache key (1: the image as it is), see :mod:`.features`."""

    mode: str = "ssp"
    top_s: int = 8
    lam: float = 1.0
    vision_rank: int | None = None  # None: the whole span of the class means
    language_rank: int | None = 8
    alpha: float | None = None
    beta: float | None = None
    gamma: float | None = None
    alpha_grid: tuple[float, ...] = ALPHA_GRID
    beta_grid: tuple[float, ...] = BETA_GRID
    gamma_grid: tuple[float, ...] = GAMMA_GRID
    val_fraction: float = 0.25
    seed: int = 0
    augment_views: int = DEFAULT_AUGMENT_VIEWS

    def __post_init__(self) -> None:
        check_augment_views(self.augment_views)
        one_of("mode", self.mode, MODES)
        integer("top_s", self.top_s, 1)
        number("lam", self.lam, low=0, finite=True)
        integer("vision_rank", self.vision_rank, 1, optional=True)
        integer("language_rank", self.language_rank, 1, optional=True)
        number("val_fraction", self.val_fraction, low=0, high=1, open_low=True, open_high=True)
        integer("seed", self.seed, None)
        for name in ("alpha", "beta", "gamma"):
            number(name, getattr(self, name), low=0, finite=True, optional=True)
            object.__setattr__(self, f"{name}_grid", numbers(f"{name}_grid", getattr(self, f"{name}_grid"), low=0))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SSPConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidConfigError(f"Unknown few-shot options {sorted(unknown)}; known: {sorted(known)}.")
        return cls(**data)  # __post_init__ validates and turns grids (JSON lists) into tuples


PROVENANCE_KEYS = ("base_model", "zero_shot_metric", "text_vector", "space_sha256")


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


# ---------------------------------------------------------------------------------------------- geometry
def orthonormal_basis(rows: torch.Tensor, rank: int | None = None) -> torch.Tensor:
    """``(D, r)`` orthonormal basis of the span of the top-``r`` right singular vectors of ``rows`` ``(n, D)``;
    ``r`` is capped at the numerical rank of ``rows`` (0 for no rows or all zeros)."""
    dim = rows.shape[-1]
    if rows.shape[0] == 0:
        return torch.zeros(dim, 0)
    _, sv, vh = torch.linalg.svd(rows.double(), full_matrices=False)
    span = int((sv > sv[0] * RANK_RTOL).sum()) if sv[0] > 0 else 0
    r = span if rank is None else min(rank, span)
    return vh[:r].T.float().contiguous()


def project(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Orthogonal projection of the rows of ``x`` onto the span of ``basis`` (columns orthonormal)."""
    return (x @ basis) @ basis.T


def select_local(local: torch.Tensor, anchors: torch.Tensor, top_s: int) -> torch.Tensor:
    """Per image the ``top_s`` local features most similar to its anchor, each times that similarity:
    ``(N, P, D), (N, D) -> (N, s, D)``."""
    sim = torch.einsum("npd,nd->np", local, anchors)
    top = sim.topk(min(top_s, local.shape[1]), dim=1)
    chosen = torch.gather(local, 1, top.indices[..., None].expand(-1, -1, local.shape[-1]))
    return chosen * top.values[..., None]


def _counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(labels, minlength=num_classes)


@dataclass
class _Terms:
    """What scoring needs besides the zero-shot scores (fitted on some support images)."""

    vision_basis: torch.Tensor | None  # (D, r_v), None: no projection
    keys: torch.Tensor  # (N, D) unit support global features
    key_labels: torch.Tensor  # (N,) int64
    language_text: torch.Tensor | None  # (C, D) unit projected text vectors, None: no language term
    num_classes: int
    ranks: dict[str, Any] = field(default_factory=dict)

    def projected_keys(self) -> torch.Tensor:
        keys = self.keys if self.vision_basis is None else project(self.keys, self.vision_basis)
        return F.normalize(keys, dim=-1)

    def cache(self, v: torch.Tensor, beta: float, keys: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C)`` mean over each class's keys of ``exp(-β (1 - affinity))``."""
        keys = self.projected_keys() if keys is None else keys
        q = v if self.vision_basis is None else project(v, self.vision_basis.to(v.device))
        affinity = F.normalize(q, dim=-1) @ keys.to(v.device).T
        counts = _counts(self.key_labels, self.num_classes).clamp(min=1).to(v.device, v.dtype)
        per_key = torch.exp(-beta * (1.0 - affinity))  # (B, N)
        out = torch.zeros(v.shape[0], self.num_classes, device=v.device, dtype=per_key.dtype)
        return out.index_add_(1, self.key_labels.to(v.device), per_key) / counts

    def language(self, v: torch.Tensor) -> torch.Tensor:
        if self.language_text is None:
            return torch.zeros(v.shape[0], self.num_classes, device=v.device, dtype=v.dtype)
        return v @ self.language_text.to(v.device, v.dtype).T


def _fit_terms(
    glob: torch.Tensor,
    local: torch.Tensor,
    labels: torch.Tensor,
    text: torch.Tensor,
    cfg: SSPConfig,
    keys: torch.Tensor | None = None,
) -> _Terms:
    num_classes, dim = text.shape
    keys = F.normalize(glob if keys is None else keys, dim=-1)
    if cfg.mode == "cache":
        return _Terms(None, keys, labels, None, num_classes, {"vision": dim, "language": None})
    counts = _counts(labels, num_classes).clamp(min=1)[:, None].float()
    onehot = F.one_hot(labels, num_classes).float()  # (N, C)
    vision_sel = select_local(local, glob, cfg.top_s).mean(dim=1)  # (N, D)
    means = onehot.T @ (vision_sel + cfg.lam * glob) / counts  # (C, D) class means
    present = _counts(labels, num_classes) > 0
    vision_basis = orthonormal_basis(means[present], cfg.vision_rank)
    language_sel = select_local(local, text[labels], cfg.top_s)  # (N, s, D)
    projected, lranks = torch.zeros_like(text), []
    for c in range(num_classes):
        rows = (language_sel[labels == c] + cfg.lam * text[c]).reshape(-1, dim)
        basis = orthonormal_basis(rows, cfg.language_rank)
        lranks.append(basis.shape[1])
        # no support for c: its text vector stays as it is
        projected[c] = project(text[c : c + 1], basis)[0] if basis.shape[1] else text[c]
    ranks = {"vision": vision_basis.shape[1], "language": lranks}
    return _Terms(vision_basis, keys, labels, F.normalize(projected, dim=-1), num_classes, ranks)


def validation_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (fit, val): per class ``max(1, floor(k * fraction))`` images go to validation when the class has
    ``k >= 2`` support images, none otherwise. Deterministic for a given seed."""
    gen = torch.Generator().manual_seed(seed)
    fit, val = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = max(1, int(len(idx) * fraction)) if len(idx) >= 2 else 0
        val.append(idx[:n_val])
        fit.append(idx[n_val:])
    return torch.cat(fit).sort().values, torch.cat(val).sort().values


def _tune(
    glob: torch.Tensor,
    local: torch.Tensor,
    labels: torch.Tensor,
    text: torch.Tensor,
    zero_shot: Callable[[torch.Tensor], torch.Tensor],
    cfg: SSPConfig,
    tau: float,
    keys: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Grid search of the unset α, β, γ on a validation split: best accuracy, ties to the lower cross-entropy
    (at temperature ``tau``), then to the earlier grid point (the grids start closest to zero-shot)."""
    fit_idx, val_idx = validation_split(labels, cfg.val_fraction, cfg.seed)
    fixed = {"alpha": cfg.alpha, "beta": cfg.beta, "gamma": cfg.gamma}
    if cfg.mode == "cache":
        fixed["gamma"] = 0.0
    if len(val_idx) == 0 or all(v is not None for v in fixed.values()):
        chosen = {k: (v if v is not None else d) for (k, v), d in zip(fixed.items(), _DEFAULTS, strict=True)}
        return {**chosen, "tuned": False, "validation_images": len(val_idx)}
    terms = _fit_terms(
        glob[fit_idx], local[fit_idx], labels[fit_idx], text, cfg, None if keys is None else keys[fit_idx]
    )
    v, y = glob[val_idx], labels[val_idx]
    zs, lang, keys = zero_shot(v).float(), terms.language(v), terms.projected_keys()
    grid = {k: (fixed[k],) if fixed[k] is not None else getattr(cfg, f"{k}_grid") for k in fixed}
    best: tuple[float, float] | None = None
    chosen = {}
    for beta in grid["beta"]:
        cache = terms.cache(v, beta, keys)
        for alpha in grid["alpha"]:
            for gamma in grid["gamma"]:
                logits = tau * (zs + alpha * cache + gamma * lang)
                acc = (logits.argmax(-1) == y).float().mean().item()
                loss = F.cross_entropy(logits, y).item()
                if best is None or acc > best[0] or (acc == best[0] and loss < best[1]):
                    best, chosen = (acc, loss), {"alpha": alpha, "beta": beta, "gamma": gamma}
    assert best is not None
    zs_acc = (zs.argmax(-1) == y).float().mean().item()
    return {
        **chosen,
        "tuned": True,
        "validation_images": len(val_idx),
        "validation_accuracy": best[0],
        "validation_zero_shot_accuracy": zs_acc,
    }


_DEFAULTS = (DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA)


# ---------------------------------------------------------------------------------------------- adapter
class SSPAdapter:
    """A fitted SSP (or cache-only) adapter for a fixed list of classes; add its logits to zero-shot scores.

    ``logits(v, zero_shot_scores)`` returns ``zero_shot_scores + α·cache + γ·language`` (cosine scale, multiply by
    CLIP's ``τ``); with no support images it returns ``zero_shot_scores`` itself.
    """

    def __init__(
        self, labels: Sequence[str], config: SSPConfig, info: FitInfo | Mapping[str, Any], terms: _Terms | None
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

    # ----------------------------------------------------------------------------------------- saving
    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``ssp_config.json`` and ``ssp_state.safetensors`` into ``save_directory`` (e.g. beside a synonym
        space's files). The folder is replaced in one atomic step with the adapter's files and every other file it
        held (see :func:`~s3_hf.io.files.write_artifact`).

        Args:
            save_directory: the folder (created if needed); not the current working folder or a parent of it.
        """
        t = self._terms
        dim = self.info.embedding_dim
        tensors = {
            "vision_basis": torch.zeros(dim, 0) if t is None or t.vision_basis is None else t.vision_basis,
            "keys": torch.zeros(0, dim) if t is None else t.keys,
            "key_labels": torch.zeros(0, dtype=torch.int64) if t is None else t.key_labels,
            "language_text": torch.zeros(0, dim) if t is None or t.language_text is None else t.language_text,
        }
        meta = {
            "format_version": SSP_FORMAT_VERSION,
            "labels": self.labels,
            "config": asdict(self.config),
            "info": self.info.to_dict(),
            "vision_projection": t is not None and t.vision_basis is not None,
            "language_term": t is not None and t.language_text is not None,
        }
        contiguous = {k: v.contiguous() for k, v in tensors.items()}
        if not str(save_directory).strip():
            raise ArtifactError("The folder to save the few-shot adapter in is empty (''): name a folder.")
        writers = {
            SSP_TENSORS_NAME: lambda p: save_file(contiguous, str(p)),
            SSP_CONFIG_NAME: lambda p: p.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8"),
        }
        try:
            return write_artifact(save_directory, writers)
        except (IsADirectoryError, NotADirectoryError) as err:
            raise ArtifactError(f"Cannot save the few-shot adapter there: {err}.") from err

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool | None = None,
        revision: str | None = None,
        commit_message: str = "Upload SSP few-shot adapter",
    ) -> str:
        """Upload the adapter's two files to ``repo_id`` (typically the repo of the synonym space it was fitted on,
        where they sit beside the space's files) in one commit."""
        return upload(
            repo_id,
            lambda tmp, _: self.save_pretrained(tmp),
            token=token,
            private=private,
            revision=revision,
            commit_message=commit_message,
            allow_patterns=[SSP_CONFIG_NAME, SSP_TENSORS_NAME],
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
    ) -> SSPAdapter:
        """Load an adapter written by :meth:`save_pretrained` from a folder or a Hub repo id, validating shapes
        (never unpickles)."""
        folder = Path(name_or_path)
        if not folder.is_dir() and not (str(name_or_path).strip() and recover_folder(folder)):
            folder = download(
                str(name_or_path),
                (SSP_CONFIG_NAME, SSP_TENSORS_NAME),
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                what="few-shot adapter",
            )
        for name in (SSP_CONFIG_NAME, SSP_TENSORS_NAME):
            if not (folder / name).is_file():
                raise ArtifactNotFoundError(f"{folder} has no {name}: it holds no few-shot (SSP) adapter.")
        try:
            text = (folder / SSP_CONFIG_NAME).read_text(encoding="utf-8")
            raw = load_file(str(folder / SSP_TENSORS_NAME))
        except (UnicodeDecodeError, SafetensorError, OSError, ValueError) as err:
            raise ArtifactCorruptError(f"{folder}: the few-shot adapter cannot be read ({err}). Refit it.") from err
        meta = load_json_text(text, ArtifactCorruptError, f"{folder}'s few-shot adapter config", "Refit it.")
        if meta.get("format_version") != SSP_FORMAT_VERSION:
            raise FormatVersionError(
                f"{folder / SSP_CONFIG_NAME} has format version {meta.get('format_version')!r}; this s3-hf reads "
                f"version {SSP_FORMAT_VERSION}. Upgrade s3-hf or refit the adapter."
            )
        where = str(folder / SSP_CONFIG_NAME)
        if not isinstance(meta, dict):
            raise _refit(where, "expected a JSON object")
        labels, info = meta.get("labels"), FitInfo.from_dict(meta.get("info"), f"{where} info")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise _refit(where, f"'labels' must be a non-empty list of strings, got {labels!r}")
        if not isinstance(meta.get("config"), dict):
            raise _refit(where, "'config' must be an object of SSPConfig options")
        for key in ("vision_projection", "language_term"):
            if not isinstance(meta.get(key), bool):
                raise _refit(where, f"{key!r} must be true or false, got {meta.get(key)!r}")
        config = SSPConfig.from_dict(meta["config"])
        dim, num_classes, n = info.embedding_dim, len(labels), raw["keys"].shape[0]
        expected = {
            "vision_basis": (dim, raw["vision_basis"].shape[1]),
            "keys": (n, dim),
            "key_labels": (n,),
            "language_text": (num_classes, dim) if meta["language_term"] else (0, dim),
        }
        for name, shape in expected.items():
            if name not in raw or tuple(raw[name].shape) != shape:
                got = tuple(raw[name].shape) if name in raw else "missing"
                raise ArtifactShapeError(f"{folder / SSP_TENSORS_NAME}: {name} has shape {got}, expected {shape}.")
        if n and (raw["key_labels"].min() < 0 or raw["key_labels"].max() >= num_classes):
            raise ArtifactShapeError(f"{folder / SSP_TENSORS_NAME}: key_labels outside 0..{num_classes - 1}.")
        if n == 0:
            return cls(labels, config, info, None)
        terms = _Terms(
            raw["vision_basis"] if meta["vision_projection"] else None,
            raw["keys"],
            raw["key_labels"],
            raw["language_text"] if meta["language_term"] else None,
            num_classes,
            info.ranks or {},
        )
        return cls(labels, config, info, terms)


def fit_ssp(
    glob: torch.Tensor,
    local: torch.Tensor,
    labels: torch.Tensor | Sequence[int],
    text: torch.Tensor,
    zero_shot: Callable[[torch.Tensor], torch.Tensor],
    class_names: Sequence[str],
    config: SSPConfig | None = None,
    tau: float = 100.0,
    extra_info: Mapping[str, str | None] | None = None,
    keys: torch.Tensor | None = None,
) -> SSPAdapter:
    """Fit SSP (or the cache alone) on the features of a labelled support set; see the module docstring and the
    README, section Few-shot (SSP), for the method.

    Args:
        glob: ``(N, D)`` unit global features (CLIP image embeddings) of the support images.
        local: ``(N, P, D)`` unit local (patch) features of the same images.
        labels: ``(N,)`` class index of each support image, into ``class_names``. Every class needs at least one
            image, or the whole support set must be empty.
        text: ``(C, D)`` one text vector per class (normalised here), e.g. its S^3 global centre.
        zero_shot: maps ``(B, D)`` image embeddings to their ``(B, C)`` zero-shot scores (cosine scale); used to
            tune α, β, γ on the validation split.
        class_names: the ``C`` class labels, in the order of ``text``'s rows.
        config: the SSP options; ``None`` for the defaults.
        tau: CLIP's logit scale, the temperature of the tuning loss.
        extra_info: what the adapter is fitted on top of, recorded in its :class:`FitInfo`: any of
            ``base_model``, ``zero_shot_metric``, ``text_vector`` and ``space_sha256``.
        keys: ``(N, D)`` the support images' cache keys (default ``glob``), e.g. the mean of their augmented
            views (:func:`~s3_hf.fewshot.features.view_keys`); ``glob`` stays the images as they are.

    Returns:
        The fitted :class:`SSPAdapter`; with an empty support set, one that returns the zero-shot scores
        unchanged.

    Raises:
        InvalidConfigError: shapes disagree, or ``extra_info`` has other keys.
        InvalidLabelsError: a label is out of range, or a class has no support image.
    """
    cfg = config or SSPConfig()
    labels = torch.as_tensor(labels, dtype=torch.int64)
    num_classes = len(class_names)
    if text.shape[0] != num_classes:
        raise InvalidConfigError(f"{text.shape[0]} text vectors for {num_classes} classes.")
    provenance = dict(extra_info or {})
    unknown = sorted(set(provenance) - set(PROVENANCE_KEYS))
    if unknown:
        raise InvalidConfigError(f"Unknown extra_info keys {unknown}; fit_ssp records only {list(PROVENANCE_KEYS)}.")
    dim = int(text.shape[1])
    if labels.numel() == 0:
        empty = FitInfo(dim, [0] * num_classes, 0.0, 0.0, 0.0, False, **provenance)
        return SSPAdapter(class_names, cfg, empty, None)
    if glob.shape[0] != labels.shape[0] or local.shape[0] != labels.shape[0]:
        raise InvalidConfigError(f"{glob.shape[0]} global / {local.shape[0]} local features for {len(labels)} labels.")
    if keys is not None and tuple(keys.shape) != tuple(glob.shape):
        raise InvalidConfigError(f"{tuple(keys.shape)} cache keys for {tuple(glob.shape)} global features.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise InvalidLabelsError(f"Support labels must be class indices in 0..{num_classes - 1}.")
    shots = _counts(labels, num_classes)
    missing = [class_names[c] for c in torch.nonzero(shots == 0).flatten().tolist()]
    if missing:
        raise InvalidLabelsError(
            f"The support set has no image of {len(missing)} classes ({missing[:10]}). Give every class at least "
            "one image, or none at all (zero-shot)."
        )
    glob, local, text = glob.float(), local.float(), F.normalize(text.float(), dim=-1)
    keys = None if keys is None else keys.float()
    chosen = _tune(glob, local, labels, text, zero_shot, cfg, tau, keys)
    chosen.update({k: float(chosen[k]) for k in ("alpha", "beta", "gamma")})
    terms = _fit_terms(glob, local, labels, text, cfg, keys)
    info = FitInfo(embedding_dim=dim, shots=shots.tolist(), ranks=terms.ranks, **chosen, **provenance)
    return SSPAdapter(class_names, cfg, info, terms)


__all__ = [
    "ALPHA_GRID",
    "BETA_GRID",
    "GAMMA_GRID",
    "MODES",
    "SSP_CONFIG_NAME",
    "SSP_FORMAT_VERSION",
    "SSP_TENSORS_NAME",
    "FitInfo",
    "SSPAdapter",
    "SSPConfig",
    "fit_ssp",
]
