"""The service layer under every face: one model and its processors, resolved and cached spaces and few-shot
adapters, and scoring.

The transformers pipeline, the CLI, the evaluation and the Gradio app all go through :class:`S3Engine`. A
request (:class:`ClassifyRequest`) is validated when it is made, which is cheap; the work (building or loading a
space, fitting an adapter) happens on :meth:`S3Engine.resolve`, once per distinct request, and is cached under
keys that cannot go stale: objects are held by the cache they key, files are keyed by their content, and folders
by the size and modification time of their files, so a space rebuilt on disk is reloaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from s3_hf.errors import (
    AdapterMismatchError,
    InvalidConfigError,
    InvalidLabelsError,
    ModelMismatchError,
    SynonymsError,
    TemplateError,
)
from s3_hf.fewshot import (
    SSP_CONFIG_NAME,
    SSP_TENSORS_NAME,
    SSPAdapter,
    SSPConfig,
    encode_support_images,
    encode_support_views,
    fit_for_space,
    read_support,
    view_keys,
)
from s3_hf.fewshot.support import require_every_class
from s3_hf.models.encoders import Encoder, as_encoder
from s3_hf.models.families import FamilyInfo, check_canonicalization, check_supported, probabilities
from s3_hf.options import (
    DEFAULT_CONCEPT_FORMAT,
    DEFAULT_TEXT_VECTOR,
    TEXT_VECTORS,
    SpaceParams,
    check_knn_k,
    check_metric,
)
from s3_hf.space.artifact import REQUIRED_FILES, SynonymSpace, same_model
from s3_hf.space.build import build_synonym_space, check_concept_format, check_labels
from s3_hf.space.scoring import centre_members, nearest_match, score
from s3_hf.synonyms import SynonymSource
from s3_hf.text.templates import DEFAULT_TEMPLATE, resolve_templates

logger = logging.getLogger(__name__)

MAX_CACHED = 16


# ------------------------------------------------------------------------------------------------ records
class _Ref:
    """Hashes and compares by identity and holds its object, so the id cannot be reused while it is a key."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ref) and other.obj is self.obj

    def __repr__(self) -> str:
        return f"<{type(self.obj).__name__} at {id(self.obj):#x}>"


@dataclass(frozen=True)
class SpaceRequest:
    """Which space to score against: labels (with synonyms and templates) to build one, or a saved space."""

    labels: tuple[str, ...] | None
    templates: tuple[str, ...] | None = None
    concept_format: str = DEFAULT_CONCEPT_FORMAT
    params: SpaceParams = field(default_factory=SpaceParams)
    tokenizer_kwargs: tuple[tuple[str, Any], ...] = ()
    canonicalization: str | None = None
    synonyms_key: Hashable = None
    space_key: Hashable = None
    method: str = "s3"
    descriptors_key: Hashable = None
    prompts_key: Hashable = None
    waffle: tuple[tuple[str, Any], ...] = ()
    synonyms: Any = field(default=None, compare=False, repr=False)
    synonym_space: Any = field(default=None, compare=False, repr=False)
    descriptors: Any = field(default=None, compare=False, repr=False)
    prompts: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ClassifyRequest:
    """A validated classification request: the space, the metric and, for few-shot, the support set."""

    space: SpaceRequest
    metric: str | None = None  # None: the space's own metric
    knn_k: int | None = None  # None: the space's own
    fewshot: SSPConfig | None = None
    text_vector: str = DEFAULT_TEXT_VECTOR
    support_key: Hashable = None
    support: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SpaceSelection:
    """A space and the classes of it a request asks for (indices into ``space.labels``, in request order)."""

    space: SynonymSpace
    index: tuple[int, ...]

    @property
    def labels(self) -> list[str]:
        names = self.space.labels
        return [names[c] for c in self.index]

    @property
    def all_classes(self) -> bool:
        return self.index == tuple(range(self.space.num_classes))


@dataclass(frozen=True)
class Resolved:
    """What a request resolved to: the space and classes, the metric, its ``k`` and the few-shot adapter."""

    selection: SpaceSelection
    metric: str
    knn_k: int
    adapter: SSPAdapter | None = None

    @property
    def space(self) -> SynonymSpace:
        return self.selection.space

    @property
    def labels(self) -> list[str]:
        return self.selection.labels


@dataclass
class ClassScores:
    """Per-image results for the requested classes: logits ``(B, n)``, the family's rule that turns them into
    scores (``"softmax"`` or ``"sigmoid"``) and, when asked, which concept each image matched ``(B, n)`` and which
    concepts formed the centre it was scored against ``(B, n, M)``."""

    logits: torch.Tensor
    matched: torch.Tensor | None = None
    members: torch.Tensor | None = None
    scoring: str = "softmax"


@dataclass(frozen=True)
class Prediction:
    """One class of one image's ranking. ``details`` (with ``return_details``): the matched concept, the kept and
    dropped concepts, and the concepts that formed the centre the image was scored against."""

    label: str
    score: float
    details: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score": self.score, "label": self.label}
        if self.details is not None:
            out["details"] = self.details
        return out


# -------------------------------------------------------------------------------------------------- keys
def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _folder_stamp(folder: Path, names: Sequence[str]) -> tuple:
    """Size, modification time and inode of ``names`` in ``folder``: changes whenever a file is rewritten."""
    stamp = []
    for name in names:
        try:
            st = (folder / name).stat()
        except OSError:
            stamp.append((name, None))
            continue
        stamp.append((name, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(stamp)


def synonyms_key(synonyms: Any) -> Hashable:
    """A cache key for synonyms given as a mapping, a file, a source or nothing; a typed error for anything else."""
    if synonyms is None:
        return None
    if isinstance(synonyms, SynonymSource):
        return ("source", _Ref(synonyms))
    if isinstance(synonyms, Mapping):
        items = []
        for label, values in synonyms.items():
            if isinstance(values, str):
                values = [values]
            if not isinstance(label, str) or not isinstance(values, Sequence) or isinstance(values, bytes):
                raise SynonymsError(
                    f"Synonyms must map each label (a string) to a list of strings; got {label!r}: {values!r}. "
                    'Example: {"cat": ["kitty", "house cat"]}.'
                )
            if not all(isinstance(v, str) for v in values):
                raise SynonymsError(f"The synonyms of {label!r} must all be strings, got {list(values)!r}.")
            items.append((label, tuple(values)))
        return ("mapping", tuple(sorted(items)))
    if isinstance(synonyms, str) and synonyms.startswith("curated:"):
        from s3_hf.synonyms.curated import read_curated

        read_curated(synonyms.removeprefix("curated:"))  # a typed error now if there is no such list
        return ("curated", synonyms)
    if isinstance(synonyms, str | os.PathLike):
        return _file_key(
            synonyms,
            f"Synonyms file {os.fspath(synonyms)} does not exist. Pass a JSON/YAML file, a mapping "
            "{label: [synonym, ...]}, curated:<benchmark> or a synonym source.",
        )
    raise SynonymsError(
        f"synonyms must be a mapping {{label: [synonym, ...]}}, a JSON/YAML file or a SynonymSource, got "
        f"{type(synonyms).__name__}."
    )


def _file_key(value: str | os.PathLike, missing: str) -> Hashable:
    """A cache key for a user's file, by its content; :class:`SynonymsError` with ``missing`` if there is none."""
    path = Path(value)
    if not path.is_file():
        raise SynonymsError(missing)
    return ("file", str(path.resolve()), _file_digest(path))


def _texts_key(value: Any, what: str) -> Hashable:
    """A cache key for per-class texts (descriptors or prompts): ``True`` (from the synonym source), a mapping or a
    JSON file; a typed error for anything else."""
    if value is None or value is True:
        return value
    if isinstance(value, Mapping):
        try:
            return ("mapping", tuple(sorted((str(k), tuple(v)) for k, v in value.items())))
        except TypeError as err:
            raise SynonymsError(f"{what} must map each class to a list of strings.") from err
    if isinstance(value, str | os.PathLike):
        return _file_key(value, f"{what} file {os.fspath(value)} does not exist. Pass a JSON file {{class: [...]}}.")
    raise SynonymsError(f"{what} must be a mapping {{class: [text, ...]}} or a JSON file, got {type(value).__name__}.")


def _method_fields(method: str, descriptors: Any, prompts: Any, waffle: Any, synonyms: Any) -> dict[str, Any]:
    """The method fields of a :class:`SpaceRequest`, validated."""
    from s3_hf.options import METHODS

    if method not in METHODS:
        raise InvalidConfigError(f"Unknown method {method!r}; use one of {METHODS}.")
    if method == "cupl" and prompts is None:
        raise InvalidConfigError("method='cupl' needs prompts= (a JSON file or {label: [prompt, ...]}).")
    if method == "dclip" and descriptors is None:
        raise InvalidConfigError("method='dclip' needs descriptors= (a JSON file, {label: [...]} or True).")
    if prompts is not None and method != "cupl":
        raise InvalidConfigError("prompts= are CuPL's; pass method='cupl' with them.")
    if waffle is not None and method != "waffle":
        raise InvalidConfigError("waffle= options are WaffleCLIP's; pass method='waffle' with them.")
    if method in ("cupl", "waffle") and synonyms is not None:
        raise InvalidConfigError(f"method={method!r} uses no synonyms; drop synonyms=.")
    if method in ("cupl", "waffle") and descriptors is not None:
        raise InvalidConfigError(f"method={method!r} uses no descriptors; drop descriptors=.")
    options: tuple[tuple[str, Any], ...] = ()
    if waffle is not None:
        if not isinstance(waffle, Mapping) or set(waffle) - {"count", "seed", "concept"}:
            raise InvalidConfigError(f"waffle= takes {{'count', 'seed', 'concept'}}, got {waffle!r}.")
        names = {"count": "waffle_count", "seed": "seed", "concept": "concept"}
        options = tuple(sorted((names[k], v) for k, v in waffle.items()))
    return {
        "method": method,
        "descriptors_key": _texts_key(descriptors, "Descriptors"),
        "descriptors": descriptors,
        "prompts_key": _texts_key(prompts, "CuPL prompts"),
        "prompts": prompts,
        "waffle": options,
    }


def _space_key(synonym_space: Any) -> Hashable:
    if isinstance(synonym_space, SynonymSpace):
        return ("object", _Ref(synonym_space))
    if isinstance(synonym_space, str | os.PathLike):
        return ("path", os.fspath(synonym_space))
    raise InvalidConfigError(
        f"synonym_space must be a SynonymSpace, a folder or a Hub repo id, got {type(synonym_space).__name__}."
    )


def _is_adapter_location(support: Any) -> bool:
    if not isinstance(support, str | os.PathLike):
        return False
    path = Path(support)
    if (path / SSP_CONFIG_NAME).is_file():
        return True
    return isinstance(support, str) and not path.exists() and support.count("/") == 1  # a Hub repo id


def support_key(support: Any) -> Hashable:
    """A cache key for a support set or a fitted adapter's location (folders by their files' stamps)."""
    if support is None:
        return None
    if isinstance(support, SSPAdapter):
        return ("adapter", _Ref(support))
    if isinstance(support, str | os.PathLike):
        path = Path(support)
        if (path / SSP_CONFIG_NAME).is_file():
            return ("adapter-folder", str(path.resolve()))
        if _is_adapter_location(support):
            return ("adapter-hub", str(support))
        if not path.is_dir():
            raise InvalidLabelsError(
                f"Support folder {os.fspath(support)} does not exist. Pass a folder with one sub-folder of images "
                "per class, a fitted adapter's folder or Hub id, a datasets.Dataset or a list of (image, label)."
            )
        return ("folder", str(path.resolve()))
    return ("object", _Ref(support))


def _support_stamp(key: Hashable) -> Hashable:
    """The on-disk state behind a support key, read at resolve time so that edits are noticed."""
    if not isinstance(key, tuple) or key[0] not in ("adapter-folder", "folder"):
        return None
    path = Path(key[1])
    if key[0] == "adapter-folder":
        return _folder_stamp(path, (SSP_CONFIG_NAME, SSP_TENSORS_NAME))
    try:
        dirs = [path, *(d for d in path.iterdir() if d.is_dir())]
        return tuple((str(d), d.stat().st_mtime_ns) for d in dirs)
    except OSError:
        return None


class _LRU:
    """A small thread-safe least-recently-used cache; values are made outside the lock."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = make()
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


# ------------------------------------------------------------------------------------------------ engine
def check_dual_encoder(model: Any) -> None:
    """Raise :class:`~s3_hf.errors.UnsupportedModelError` unless ``model`` is a dual encoder the engine can
    score with: an :class:`~s3_hf.models.encoders.Encoder`, or a transformers family S^3 serves, with text and image
    features and a logit scale (or temperature)."""
    if not isinstance(model, Encoder):
        check_supported(model)


class S3Engine:
    """A dual encoder with its processors, the spaces and adapters resolved for it, and scoring.

    Args:
        model: a transformers dual encoder of a supported family (see :mod:`s3_hf.models.families`), or an
            :class:`~s3_hf.models.encoders.Encoder` (such as an open_clip checkpoint).
        tokenizer: the transformers model's tokenizer (``None`` with an ``Encoder``).
        image_processor: the transformers model's image processor (``None`` with an ``Encoder``).
        name: the checkpoint name recorded in spaces built here (default: the model's ``name_or_path``).
        max_cached: spaces and adapters kept, each (least recently used dropped first).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        image_processor: Any = None,
        *,
        name: str | None = None,
        max_cached: int = MAX_CACHED,
    ) -> None:
        self.encoder: Encoder = as_encoder(model, tokenizer, image_processor)
        if name:
            self.encoder.name = name
        self._spaces = _LRU(max_cached)
        self._adapters = _LRU(max_cached)
        self._last: OrderedDict[ClassifyRequest, Resolved] = OrderedDict()
        self._last_lock = threading.Lock()
        self._warned_adapters: set[int] = set()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | None = "auto",
        dtype: str | torch.dtype | None = None,
        revision: str | None = None,
    ) -> S3Engine:
        """Load a checkpoint with :func:`s3_hf.models.encoders.load_encoder`: a transformers Hub id or folder, or an
        open_clip ``hf-hub:org/name`` id or folder.

        Args:
            name_or_path: a Hub repo id or a local checkpoint folder.
            device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``, ...
            dtype: torch dtype or its name; default float32.
            revision: the Hub revision.
        """
        from s3_hf.models.encoders import load_encoder

        return cls(load_encoder(name_or_path, device=device, dtype=dtype, revision=revision))

    # ------------------------------------------------------------------------------------------ model facts
    @property
    def model(self) -> Any:
        return self.encoder.model

    @property
    def tokenizer(self) -> Any:
        return self.encoder.tokenizer

    @property
    def image_processor(self) -> Any:
        return self.encoder.image_processor

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def family(self) -> FamilyInfo:
        return self.encoder.family

    @property
    def random_weights(self) -> bool:
        return self.encoder.random_weights

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    @property
    def logit_scale(self) -> float:
        """``τ``: ``exp(logit_scale)``, or ``1 / temperature`` for ALIGN and TIPSv2."""
        return self.encoder.logit_scale

    @property
    def logit_bias(self) -> float:
        """``b``, the model's logit bias (0 for families without one)."""
        return self.encoder.logit_bias

    # ------------------------------------------------------------------------------------------- requests
    def request(
        self,
        candidate_labels: Sequence[str] | None = None,
        *,
        synonyms: Any = None,
        synonym_space: SynonymSpace | str | os.PathLike | None = None,
        templates: str | Sequence[str] | None = None,
        hypothesis_template: str | None = None,
        concept_format: str = DEFAULT_CONCEPT_FORMAT,
        metric: str | None = None,
        knn_k: int | None = None,
        support: Any = None,
        fewshot: SSPConfig | Mapping[str, Any] | None = None,
        text_vector: str = DEFAULT_TEXT_VECTOR,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
        canonicalization: str | None = None,
        method: str = "s3",
        descriptors: Any = None,
        prompts: Any = None,
        waffle: Mapping[str, Any] | None = None,
        **space_options: Any,
    ) -> ClassifyRequest:
        """Validate the options of a classification and return them as a request (cheap: nothing is built).

        Args:
            candidate_labels: the classes; with ``synonym_space`` an optional subset of its classes.
            synonyms: ``{label: [synonym, ...]}``, a JSON/YAML file or a :class:`~s3_hf.synonyms.SynonymSource`.
            synonym_space: a :class:`SynonymSpace`, a folder or a Hub repo id (fixes synonyms and templates).
            templates: prompt templates or a named set (``"imagenet80"``). Default ``"This is a photo of {}."``;
                for ``"dclip"`` none (its released code's) and for ``"waffle"`` ``"A photo of a {}."`` (its own).
            hypothesis_template: one template, as in transformers' pipeline.
            concept_format: the structured template of synonyms, ``"{concept}, which is a {label}"``.
            metric: a point-to-space metric (default: the space's own, ``local_center``).
            knn_k: ``k`` of ``local_center_knn`` (default: the space's own).
            support: few-shot support: an image folder, a ``datasets.Dataset``, ``(image, label)`` pairs, a fitted
                :class:`~s3_hf.fewshot.SSPAdapter` or its folder / Hub id.
            fewshot: :class:`~s3_hf.fewshot.SSPConfig` or a dict of its options.
            text_vector: the class text vector SSP builds on, ``"global_center"`` or ``"label"``.
            tokenizer_kwargs: extra tokenizer arguments used when texts are encoded (part of the cache key).
            canonicalization: rewrite every prompt before tokenising (``"lower_no_punct"``), or ``None``.
            method: ``"s3"`` (default) or a baseline of :mod:`s3_hf.baselines`: ``"cupl"``, ``"dclip"``,
                ``"waffle"``.
            descriptors: visual descriptors per class: ``{label: [...]}``, a JSON file (DCLIP's format) or
                ``True`` (from the synonym source). With ``"s3"``, S^3 with descriptors; ``"dclip"`` needs them.
            prompts: CuPL's prompts per class, ``{label: [...]}`` or its JSON file (``"cupl"``).
            waffle: WaffleCLIP's options ``{"count": 15, "seed": 0, "concept": None}`` (``"waffle"``).
            canonicalization: rewrite prompts before tokenising: ``None`` (as written, transformers' behaviour) or
                ``"lower_no_punct"`` (as SigLIP 2's authors recommend).
            **space_options: ``radius``, ``gap_ratio``, ``min_points``, ``max_dim`` (see :class:`SpaceParams`).
        """
        unknown = set(space_options) - set(SpaceParams.option_names())
        if unknown:
            raise InvalidConfigError(
                f"Unknown options {sorted(unknown)}; space options are {list(SpaceParams.option_names())}."
            )
        if metric is not None:
            check_metric(metric)
        if knn_k is not None:
            check_knn_k(knn_k)
        if text_vector not in TEXT_VECTORS:
            raise InvalidConfigError(f"Unknown text_vector {text_vector!r} for few-shot; use one of {TEXT_VECTORS}.")
        if fewshot is not None and support is None:
            raise InvalidConfigError("fewshot= options need a support= set of labelled images.")
        if fewshot is not None and not isinstance(fewshot, SSPConfig):
            if not isinstance(fewshot, Mapping):
                raise InvalidConfigError(f"fewshot must be an SSPConfig or a dict of its options, got {fewshot!r}.")
            fewshot = SSPConfig.from_dict(dict(fewshot))
        tok = _tokenizer_kwargs(tokenizer_kwargs)
        check_canonicalization(canonicalization)
        method_fields = _method_fields(method, descriptors, prompts, waffle, synonyms)
        labels = tuple(check_labels(candidate_labels)) if candidate_labels is not None else None
        if synonym_space is not None:
            if synonyms is not None or templates is not None or hypothesis_template is not None:
                raise InvalidConfigError(
                    "synonym_space already fixes the synonyms and templates; do not pass synonyms=, templates= "
                    "or hypothesis_template= with it."
                )
            if method != "s3" or descriptors is not None or prompts is not None or waffle is not None:
                raise InvalidConfigError(
                    "synonym_space was built already; method=, descriptors=, prompts= and waffle= only apply when "
                    "a space is built from candidate_labels."
                )
            if space_options or concept_format != DEFAULT_CONCEPT_FORMAT or tok or canonicalization:
                raise InvalidConfigError(
                    f"synonym_space was built already; options {sorted([*space_options, 'concept_format'])} only "
                    "apply when a space is built from candidate_labels."
                )
            space = SpaceRequest(labels, space_key=_space_key(synonym_space), synonym_space=synonym_space)
        else:
            if labels is None:
                raise InvalidLabelsError(
                    "Pass candidate_labels=[...] or synonym_space=... to say what the classes are."
                )
            if templates is not None and hypothesis_template is not None:
                raise TemplateError("Pass either hypothesis_template= or templates=, not both.")
            default = DEFAULT_TEMPLATE
            if method != "s3":  # DCLIP's and WaffleCLIP's texts come in their authors' templates by default
                from s3_hf.baselines.texts import METHOD_TEMPLATES

                default = METHOD_TEMPLATES.get(method, DEFAULT_TEMPLATE)
            tmpl = resolve_templates(templates if templates is not None else hypothesis_template or default)
            space = SpaceRequest(
                labels,
                templates=tuple(tmpl),
                concept_format=check_concept_format(concept_format),
                params=SpaceParams(**space_options),
                tokenizer_kwargs=tok,
                canonicalization=canonicalization,
                synonyms_key=synonyms_key(synonyms),
                synonyms=synonyms,
                **method_fields,
            )
        return ClassifyRequest(
            space,
            metric=metric,
            knn_k=knn_k,
            fewshot=fewshot,
            text_vector=text_vector,
            support_key=support_key(support),
            support=support,
        )

    # ---------------------------------------------------------------------------------------------- spaces
    def space(self, request: SpaceRequest | ClassifyRequest | None = None, /, **options: Any) -> SpaceSelection:
        """The space (built or loaded once) and the requested classes in it.

        Pass a request, or the options of :meth:`request` (``candidate_labels=``, ``synonyms=``,
        ``synonym_space=``, ``templates=``, ...).
        """
        if request is None:
            request = self.request(**options).space
        elif options:
            raise InvalidConfigError("Pass either a request or options, not both.")
        if isinstance(request, ClassifyRequest):
            request = request.space
        if request.synonym_space is None:
            space = self._spaces.get(("build", request), lambda: self._build(request))
            return SpaceSelection(space, tuple(range(space.num_classes)))
        space = self._load_space(request.synonym_space)
        if request.labels is None:
            return SpaceSelection(space, tuple(range(space.num_classes)))
        position = space.label_positions()
        missing = [lab for lab in request.labels if lab not in position]
        if missing:
            raise InvalidLabelsError(
                f"Labels {missing[:10]} are not classes of the synonym space (which has {space.num_classes} "
                f"classes, e.g. {space.labels[:5]}). Drop them, or build a new space that includes them."
            )
        return SpaceSelection(space, tuple(position[lab] for lab in request.labels))

    def build_space(
        self,
        labels: Sequence[str],
        synonyms: Any = None,
        *,
        templates: str | Sequence[str] | None = None,
        progress: bool = False,
        **options: Any,
    ) -> SynonymSpace:
        """Build a space with this engine's model (uncached; see :func:`s3_hf.space.build.build_synonym_space`)."""
        return build_synonym_space(
            self.encoder,
            None,
            labels,
            synonyms,
            templates=templates,
            base_model=options.pop("base_model", None) or self.name or None,
            progress=progress,
            **options,
        )

    def _build(self, request: SpaceRequest) -> SynonymSpace:
        labels = list(request.labels or ())
        descriptors = request.descriptors
        if isinstance(descriptors, str | os.PathLike | Mapping):
            from s3_hf.baselines import match_class_texts, read_class_texts

            descriptors = match_class_texts(read_class_texts(descriptors, "Descriptors"), labels)[0]
        if request.method != "s3":
            from s3_hf.baselines import build_method_space
            from s3_hf.synonyms import resolve_source, source_descriptors

            if descriptors is True:
                descriptors = source_descriptors(resolve_source(request.synonyms), labels)
            return build_method_space(
                self.encoder,
                None,
                labels,
                request.method,
                descriptors=descriptors,
                prompts=request.prompts,
                templates=list(request.templates or ()),
                base_model=self.name or None,
                canonicalization=request.canonicalization,
                **dict(request.waffle),
            )
        return build_synonym_space(
            self.encoder,
            None,
            list(request.labels or ()),
            request.synonyms,
            templates=list(request.templates or ()),
            concept_format=request.concept_format,
            params=request.params,
            base_model=self.name or None,
            tokenizer_kwargs=dict(request.tokenizer_kwargs),
            canonicalization=request.canonicalization,
            descriptors=descriptors,
        )

    def _load_space(self, synonym_space: SynonymSpace | str | os.PathLike) -> SynonymSpace:
        if isinstance(synonym_space, SynonymSpace):
            key: Hashable = ("object", _Ref(synonym_space))
        else:
            path = Path(synonym_space)
            if path.is_dir():
                key = ("folder", str(path.resolve()), _folder_stamp(path, REQUIRED_FILES))
            else:
                key = ("hub", os.fspath(synonym_space))

        def load() -> SynonymSpace:
            space = (
                synonym_space
                if isinstance(synonym_space, SynonymSpace)
                else SynonymSpace.from_pretrained(synonym_space)
            )
            space.check_model(self.encoder)
            return space

        return self._spaces.get(key, load)

    # -------------------------------------------------------------------------------------------- adapters
    def adapter(
        self,
        selection: SpaceSelection,
        support: Any,
        metric: str,
        knn_k: int,
        fewshot: SSPConfig | None = None,
        text_vector: str = DEFAULT_TEXT_VECTOR,
    ) -> SSPAdapter:
        """The few-shot adapter for ``support`` on ``selection`` (fitted, or loaded from its files, once)."""
        skey = support_key(support)
        if isinstance(support, str | os.PathLike) and _is_adapter_location(support):
            support = self._adapters.get((skey, _support_stamp(skey)), lambda: SSPAdapter.from_pretrained(support))
        if isinstance(support, SSPAdapter):
            return self._check_adapter(support, selection, metric)
        self.encoder.require_patch_tokens()
        config = fewshot or SSPConfig()
        labels = selection.labels

        def fit() -> SSPAdapter:
            images, targets = read_support(support, labels)
            require_every_class(targets, labels)
            glob, local = encode_support_images(self.encoder, None, images, progress=len(images) > 64)
            keys = None
            if config.augment_views > 1:  # the cache keys: each image's mean over its augmented views
                views = encode_support_views(
                    self.encoder, None, images, config.augment_views, config.seed, progress=len(images) > 64
                )
                keys = view_keys(views)
            return fit_for_space(
                selection.space,
                list(selection.index),
                glob,
                local,
                targets,
                metric,
                knn_k,
                self.logit_scale,
                config,
                text_vector,
                keys,
            )

        key = (
            "fit",
            _Ref(selection.space),
            selection.index,
            metric,
            knn_k,
            skey,
            _support_stamp(skey),
            config,
            text_vector,
        )
        return self._adapters.get(key, fit)

    def _check_adapter(self, adapter: SSPAdapter, selection: SpaceSelection, metric: str) -> SSPAdapter:
        fitted_on = adapter.info.base_model
        base = selection.space.config.base_model
        if fitted_on is not None and not same_model(fitted_on, base):
            raise ModelMismatchError(
                f"The few-shot adapter was fitted with {fitted_on!r}, the space belongs to {base!r}: its support "
                "keys are another model's embeddings. Refit it."
            )
        fitted_metric = adapter.info.zero_shot_metric
        if fitted_metric not in (None, metric):
            logger.warning(
                "The few-shot adapter was tuned on top of the %r metric; scoring with %r. Pass metric=%r to use it "
                "as fitted.",
                fitted_metric,
                metric,
                fitted_metric,
            )
        if adapter.labels != selection.labels:
            raise InvalidLabelsError(
                f"The few-shot adapter was fitted for classes {adapter.labels[:5]}... ({adapter.num_classes}), "
                f"not for the requested {selection.labels[:5]}... ({len(selection.labels)}). Fit one for these "
                "classes."
            )
        fitted_space = adapter.info.space_sha256
        if fitted_space is None:
            if id(adapter) in self._warned_adapters:  # once per adapter, not on every image
                return adapter
            self._warned_adapters.add(id(adapter))
            logger.warning(
                "The few-shot adapter does not record the space it was fitted on (saved by an older s3-hf); it is "
                "used as is. Refit it with `s3 fewshot` so that a mismatch can be caught."
            )
        elif fitted_space != selection.space.tensors_hash():
            raise AdapterMismatchError(
                f"The few-shot adapter was fitted on another synonym space (tensor hash {fitted_space[:12]}..., this "
                f"space's is {selection.space.tensors_hash()[:12]}...), even if the classes are the same: its text "
                "vectors and tuned weights belong to that space. Refit it on this space with `s3 fewshot`."
            )
        return adapter

    # ---------------------------------------------------------------------------------------------- resolve
    def resolve(self, request: ClassifyRequest) -> Resolved:
        """Build or load what ``request`` needs (each cached) and return it. A folder changed on disk is reloaded."""
        resolved = self._resolve(request)
        with self._last_lock:
            self._last[request] = resolved
            self._last.move_to_end(request)
            while len(self._last) > 4 * MAX_CACHED:
                self._last.popitem(last=False)
        return resolved

    def last_resolved(self, request: ClassifyRequest) -> Resolved:
        """What ``request`` resolved to most recently (no reload): keeps a call's scores and labels together even
        if a folder changes in between."""
        with self._last_lock:
            resolved = self._last.get(request)
        return resolved if resolved is not None else self.resolve(request)

    def _resolve(self, request: ClassifyRequest) -> Resolved:
        selection = self.space(request.space)
        config = selection.space.config
        metric = check_metric(request.metric or config.metric)
        k = request.knn_k or config.knn_k
        adapter = None
        if request.support is not None:
            adapter = self.adapter(selection, request.support, metric, k, request.fewshot, request.text_vector)
        return Resolved(selection, metric, k, adapter)

    def clear_cache(self) -> None:
        """Forget every cached space, adapter and resolved request."""
        for cache in (self._spaces, self._adapters):
            cache.clear()
        with self._last_lock:
            self._last.clear()

    # ---------------------------------------------------------------------------------------------- scoring
    def load_image(self, image: Any, fast: bool = True, timeout: float | None = None) -> Any:
        """Read an image (path, URL, base64, bytes-backed or PIL) as an upright RGB PIL image. ``fast``: JPEG data
        decoded at the smallest DCT scale that still covers the model's resize target (not pixel-identical to a
        full decode; see the README, section Images); ``False``: every pixel, exactly as transformers reads it."""
        from s3_hf.io.images import load_image

        return load_image(image, timeout=timeout, min_side=self.encoder.decode_min_side() if fast else None)

    def image_inputs(self, images: Sequence[Any]) -> dict[str, torch.Tensor]:
        """RGB PIL images -> the model's preprocessed image inputs."""
        return self.encoder.image_inputs(images)

    def encode_pixels(self, pixel_values: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Preprocessed images (``pixel_values`` or all image inputs) -> ``(B, D)`` unit image embeddings."""
        return self.encoder.encode_pixels(pixel_values)

    def encode_images(
        self,
        images: Sequence[Any],
        batch_size: int = 32,
        progress: bool = False,
        *,
        fast: bool = False,
        workers: int | None = None,
    ) -> torch.Tensor:
        """Images (paths, URLs or PIL) -> ``(N, D)`` unit image embeddings. ``fast``: reduced-size JPEG decoding
        (:meth:`load_image`); ``workers``: image worker threads (``None``: the device's default, see
        :mod:`s3_hf.io.parallel`; they change the time, never the result)."""
        return self.encoder.encode_images(images, batch_size=batch_size, progress=progress, fast=fast, workers=workers)

    def scores(self, v: torch.Tensor, resolved: Resolved, details: bool = False) -> ClassScores:
        """Logits ``τ · s_c(v) + b`` (plus the few-shot terms) of unit image vectors ``v`` for the requested
        classes, with the family's scoring rule."""
        return class_scores(v, resolved, self.logit_scale, details, self.logit_bias, self.family.scoring)

    def classify(
        self,
        images: Sequence[Any],
        request: ClassifyRequest,
        *,
        top_k: int | None = None,
        details: bool = False,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[list[Prediction]]:
        """Classify images: per image the classes ranked by probability (the pipeline's output, typed)."""
        resolved = self.resolve(request)
        v = self.encode_images(images, batch_size=batch_size, progress=progress)
        out = self.scores(v, resolved, details)
        return [rank(out, b, resolved, top_k, details) for b in range(len(v))]

    def segment(self, image: Any, request: ClassifyRequest, options: Any = None) -> Segmentation:
        """Open-vocabulary segmentation of one image (a path, URL or PIL image) against the classes of ``request``
        (see :mod:`s3_hf.segmentation.core`); ``options`` a :class:`~s3_hf.segmentation.core.SegmentOptions`."""
        from s3_hf.io.images import load_image, original_size
        from s3_hf.segmentation.core import SegmentOptions, label_map, require_background, segment_logits

        options = options or SegmentOptions()
        resolved = self.resolve(request)
        if resolved.adapter is not None:
            raise InvalidConfigError("Few-shot support applies to classification only; drop support= to segment.")
        self.encoder.require_dense_features()
        require_background(resolved.labels, options.background_threshold, options.background_index)
        min_side = options.short_side if options.fast_decode else None
        picture = load_image(image, min_side=min_side)
        logits = segment_logits(self, picture, resolved, options)
        size = original_size(picture)  # a JPEG decoded at reduced size is labelled at its full size
        labels = label_map(logits, resolved.labels, options.background_threshold, size, options.background_index)
        return Segmentation(resolved.labels, logits, labels)


@dataclass(frozen=True)
class Segmentation:
    """One image's segmentation: the class ``labels``, ``logits`` ``(C, h, w)`` at the working resolution (short side
    ``SegmentOptions.short_side``; :func:`~s3_hf.segmentation.core.class_masks` takes them to full size) and the
    ``label_map`` ``(H, W)`` of class indices at the image's full size."""

    labels: list[str]
    logits: torch.Tensor
    label_map: torch.Tensor


def _tokenizer_kwargs(value: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    if not value:
        return ()
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidConfigError(f"tokenizer_kwargs must be a dict of keyword arguments, got {value!r}.")
    try:
        items = tuple(sorted(value.items()))
        hash(items)
    except TypeError as err:
        raise InvalidConfigError(f"tokenizer_kwargs values must be plain values (str, int, bool): {value!r}.") from err
    return items


def class_scores(
    v: torch.Tensor,
    resolved: Resolved,
    logit_scale: float,
    details: bool = False,
    logit_bias: float = 0.0,
    scoring: str = "softmax",
) -> ClassScores:
    """Logits of ``v`` for the classes ``resolved`` selects: ``τ·s_c(v) + b``, or SSP's logits with an adapter."""
    state = resolved.space.scoring_state(v.device)
    cols = None if resolved.selection.all_classes else torch.tensor(resolved.selection.index, device=v.device)

    def select(x: torch.Tensor) -> torch.Tensor:
        return x if cols is None else x.index_select(1, cols)

    s = select(score(v, state, resolved.metric, resolved.knn_k))
    if resolved.adapter is not None:
        s = resolved.adapter.logits(v, s)
    out = ClassScores(logits=logit_scale * s.float() + logit_bias, scoring=scoring)
    if details:
        out.matched = select(nearest_match(v, state))
        out.members = select(centre_members(v, state, resolved.metric, resolved.knn_k))
    return out


def rank(
    out: ClassScores, b: int, resolved: Resolved, top_k: int | None = None, details: bool = False
) -> list[Prediction]:
    """Image ``b``'s classes sorted by score (softmax over classes or per-class sigmoid, as the family scores),
    the top ``top_k``, with details when asked."""
    probs = probabilities(out.logits[b], out.scoring)
    order = torch.argsort(probs, descending=True, stable=True)[: top_k or probs.shape[-1]].tolist()
    scores = probs.tolist()  # one conversion, not one .item() per class
    space, index = resolved.space, resolved.selection.index
    labels = space.labels
    results = []
    for j in order:
        c = index[j]
        info = None
        if details:
            assert out.matched is not None and out.members is not None
            concepts = space.concepts(c)
            members = out.members[b, j].tolist()
            info = {
                "matched_concept": concepts[int(out.matched[b, j])],
                "kept": space.concepts(c, kept=True),
                "dropped": space.concepts(c, kept=False),
                "centre": [concepts[i] for i, on in enumerate(members[: len(concepts)]) if on],
            }
        results.append(Prediction(labels[c], scores[j], info))
    return results


__all__ = [
    "ClassScores",
    "ClassifyRequest",
    "Prediction",
    "Resolved",
    "S3Engine",
    "SpaceRequest",
    "SpaceSelection",
    "check_dual_encoder",
    "class_scores",
    "rank",
]
