"""What ``s3 eval`` runs: a common run configuration and one configuration per task, each holding the library's own
option records (:class:`~s3_hf.fewshot.SSPConfig`, :class:`~s3_hf.segmentation.core.SegmentOptions`).

:meth:`EvalConfig.from_flags` builds one from the flat options of ``s3 eval`` (the CLI's one call);
:meth:`EvalConfig.to_dict` gives them back flat, as results record them (``config``) and as the configuration key
hashes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from s3_hf.baselines.texts import WAFFLE_SEEDS
from s3_hf.errors import InvalidConfigError
from s3_hf.fewshot import SSPConfig
from s3_hf.options import (
    DEFAULT_DENSE_VARIANT,
    DEFAULT_EVAL_BATCH_SIZE,
    DEFAULT_EVAL_SEEDS,
    DEFAULT_TTA_SEEDS,
    METRIC_NAMES,
    TTA_METHODS,
    TTA_ORDERS,
    TTA_STREAMS,
)
from s3_hf.segmentation.options import SegmentOptions
from s3_hf.segmentation.protocols import DEFAULT_PROTOCOL

#: The S^3 metrics (every point-to-space metric but the ``label`` baseline's).
S3_METRICS = [m for m in METRIC_NAMES if m != "label"]
TASKS = ("classification", "segmentation")
#: The static method families ``methods`` picks from (a method's family is its name before any ``/`` or ``@``).
STATIC_METHODS = ("label", "ensemble", "dclip", "cupl", "waffle", "s3")


@dataclass
class RunConfig:
    """What every task shares.

    Args:
        model: a Hub id or a local checkpoint folder (a folder without weights is initialised at random and its
            results are marked ``random_weights``).
        benchmarks: registered names (``s3 eval --list``) or image folders (one sub-folder per class); for
            segmentation ``NAME=FOLDER`` or folders.
        out: the results folder.
        metrics: the S^3 metrics to score (every one by default).
        templates: the prompts of ``ensemble`` and S^3: ``"benchmark"`` (its own) or a named set.
        batch_size: images per forward pass.
        cache_dir: where image embeddings and built spaces are cached (default ``out/cache``).
        dtype: the model's dtype.
        imagenet_sample: the imagenet-sample folder (default ``$S3_IMAGENET_SAMPLE``).
        fast_decode: decode JPEGs at the smallest DCT scale that still covers the model's resize target.
        workers: image workers (``None``: :func:`s3_hf.io.parallel.default_image_workers` for the device).
        extra: free-form notes recorded with the results.
        overwrite: replace files in ``out`` that s3 eval did not write.
    """

    model: str
    benchmarks: Sequence[str]
    out: str = "eval_results"
    metrics: Sequence[str] = tuple(S3_METRICS)
    templates: str = "benchmark"
    batch_size: int = DEFAULT_EVAL_BATCH_SIZE
    cache_dir: str | None = None
    dtype: str = "float32"
    imagenet_sample: str | None = None
    fast_decode: bool = True
    workers: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False

    def resolved_workers(self) -> int:
        """Image workers: as given, else the device's default (2 threads on a CPU, up to 8 loaders on a GPU)."""
        if self.workers is not None:
            return self.workers
        import torch

        from s3_hf.io.parallel import default_image_workers

        return default_image_workers("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class ClassificationConfig:
    """The zero-shot methods of a classification run.

    Args:
        synonyms: synonym sources to build S^3 spaces from: ``"wordnet"``, ``"curated"`` or synonyms files.
        label_template: the single template of the ``label`` baseline.
        dclip: DCLIP's descriptors (a JSON file or ``"curated"``); ``None`` leaves DCLIP out.
        cupl: CuPL's prompts, a JSON file; ``None`` leaves CuPL out.
        waffle: WaffleCLIP's number of random descriptor pairs (0 leaves it out).
        dclip_template: the template around DCLIP's texts (``"dclip"``, ``"waffle"`` or one with ``{}``).
        waffle_seeds: WaffleCLIP's draws (results are their mean, with the standard deviation).
        descriptors: also score S^3 with descriptors for every synonym source that has them.
        canonicalizations: the text canonicalisations to score every method with (``None`` and/or
            ``"lower_no_punct"``; the latter's methods are named ``method@rule``).
    """

    synonyms: Sequence[str] = ("wordnet",)
    label_template: str = "a photo of a {}."
    dclip: str | None = None
    cupl: str | None = None
    waffle: int = 0
    dclip_template: str = "dclip"
    waffle_seeds: Sequence[int] = WAFFLE_SEEDS
    descriptors: bool = False
    canonicalizations: Sequence[str | None] = (None,)


def method_family(method: str) -> str:
    """``s3`` for ``s3/wordnet/local_center@lower_no_punct``, ``label`` for ``label``."""
    return method.split("@")[0].split("/")[0]


@dataclass
class MethodsConfig:
    """Which methods a classification run reports, and how its test-time adaptation streams the images.

    Args:
        methods: static method families (``label``, ``ensemble``, ``dclip``, ``cupl``, ``waffle``, ``s3``) and
            test-time adaptation methods (``tda``, ``ts3``) to report; empty: every configured static method and
            no adaptive one. ``label`` is always reported (every method is compared with it).
        tta_seeds: the stream orders the adaptive methods run over (reported as mean and std).
        tta_stream: ``"single-stream"`` (one seeded stream over every image) or ``"per-process"`` (one stream per
            process over its own shard: a simulation of deployment, reported under other method names).
        tta_order: ``"random"`` (each seed's permutation) or ``"class-sorted"`` (a stress test: the images sorted by
            true class, each class's in the seed's order; reported as ``method[class-sorted]``).
    """

    methods: Sequence[str] = ()
    tta_seeds: Sequence[int] = DEFAULT_TTA_SEEDS
    tta_stream: str = "single-stream"
    tta_order: str = "random"

    def __post_init__(self) -> None:
        known = (*STATIC_METHODS, *TTA_METHODS)
        unknown = [m for m in self.methods if m not in known]
        if unknown:
            raise InvalidConfigError(f"Unknown methods {unknown}: choose from {', '.join(known)}.")
        seeds = list(self.tta_seeds)
        if (
            not seeds
            or any(isinstance(x, bool) or not isinstance(x, int) for x in seeds)
            or len(set(seeds)) < len(seeds)
        ):
            raise InvalidConfigError(f"--tta-seeds must be distinct integers (the stream orders), got {seeds!r}.")
        if self.tta_stream not in TTA_STREAMS:
            raise InvalidConfigError(f"--tta-stream must be one of {', '.join(TTA_STREAMS)}, got {self.tta_stream!r}.")
        if self.tta_order not in TTA_ORDERS:
            raise InvalidConfigError(f"--tta-order must be one of {', '.join(TTA_ORDERS)}, got {self.tta_order!r}.")

    @property
    def adaptive(self) -> list[str]:
        """The test-time adaptation methods asked for, in the order given."""
        return [m for m in self.methods if m in TTA_METHODS]

    def reports(self, method: str) -> bool:
        """Whether the static ``method`` is reported."""
        family = method_family(method)
        static = [m for m in self.methods if m in STATIC_METHODS]
        return family == "label" or not static or family in static

    def to_flags(self) -> dict[str, Any]:
        """The flat options, only when methods were picked (a run without keeps its configuration key)."""
        if not self.methods:
            return {}
        flags = {"methods": list(self.methods), "tta_seeds": list(self.tta_seeds), "tta_stream": self.tta_stream}
        return flags if self.tta_order == TTA_ORDERS[0] else {**flags, "tta_order": self.tta_order}


@dataclass
class FewShotConfig:
    """Few-shot runs on top of one zero-shot method.

    Args:
        shots: support images per class, sampled from the train split (none: no few-shot run).
        seeds: support samples per shot count.
        base: the zero-shot method few-shot adds to (``""``: the first S^3 ``local_center`` method).
        options: SSP's options (``mode`` and ``seed`` are set per run).
    """

    shots: Sequence[int] = ()
    seeds: Sequence[int] = DEFAULT_EVAL_SEEDS
    base: str = ""
    options: SSPConfig = field(default_factory=SSPConfig)

    def given_options(self) -> dict[str, Any]:
        """The options that differ from SSP's defaults, as JSON values."""
        default = asdict(SSPConfig())
        return {k: v for k, v in json.loads(json.dumps(asdict(self.options))).items() if v != _jsonable(default[k])}


@dataclass
class SegmentationConfig:
    """A segmentation run.

    Args:
        options: the dense inference options under protocol ``"s3"`` (variant, resize, window, background rule).
        class_names: a class-name file used instead of each folder's ``classes.txt``.
        protocol: ``"s3"`` (``options``) or a reference preset (``"sclip"``, ``"naclip"``, ``"clearclip"``).
        protocol_values: values replacing the protocol's.
    """

    options: SegmentOptions = field(default_factory=SegmentOptions)
    class_names: str | None = None
    protocol: str = DEFAULT_PROTOCOL
    protocol_values: dict[str, Any] = field(default_factory=dict)


#: The flat option names of each part (the names ``s3 eval``'s results have always recorded).
_SEGMENT_FLAGS = ("variant", "short_side", "window", "stride", "background_threshold")
_FEWSHOT_FLAGS = {"shots": "shots", "seeds": "seeds", "fewshot_base": "base"}
#: Flat options the configuration key leaves out: where results go and how fast they are made, not what they are.
_UNKEYED = ("out", "cache_dir", "benchmarks", "batch_size", "imagenet_sample", "extra", "workers", "overwrite")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass
class EvalConfig:
    """What ``s3 eval`` runs: the common :class:`RunConfig` and the task's configuration."""

    run: RunConfig
    task: str = "classification"
    classification: ClassificationConfig = field(default_factory=ClassificationConfig)
    fewshot: FewShotConfig = field(default_factory=FewShotConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    methods: MethodsConfig = field(default_factory=MethodsConfig)

    @classmethod
    def from_flags(cls, **flags: Any) -> EvalConfig:
        """A configuration from the flat options of ``s3 eval`` (the names :meth:`to_dict` gives back):
        :class:`RunConfig`'s and :class:`ClassificationConfig`'s fields, ``shots``, ``seeds``, ``fewshot_base``,
        ``fewshot`` (a dict of SSP options), ``task``, ``class_names``, ``variant``, ``short_side``, ``window``,
        ``stride``, ``background_threshold``, ``protocol``, ``protocol_values`` and :class:`MethodsConfig`'s fields.

        Args:
            **flags: the options; unknown names raise ``TypeError``.
        """
        pick = {f.name for f in fields(RunConfig)}
        run = RunConfig(**{k: flags.pop(k) for k in list(flags) if k in pick})
        pick = {f.name for f in fields(ClassificationConfig)}
        classification = ClassificationConfig(**{k: flags.pop(k) for k in list(flags) if k in pick})
        fewshot = FewShotConfig(
            **{_FEWSHOT_FLAGS[k]: flags.pop(k) for k in list(flags) if k in _FEWSHOT_FLAGS},
            options=SSPConfig.from_dict(dict(flags.pop("fewshot", None) or {})),
        )
        seg = {k: flags.pop(k) for k in list(flags) if k in _SEGMENT_FLAGS}
        segmentation = SegmentationConfig(
            SegmentOptions(
                **{"variant": DEFAULT_DENSE_VARIANT, **seg},
                fast_decode=run.fast_decode,  # type: ignore[arg-type]
            ),
            class_names=flags.pop("class_names", None),
            protocol=flags.pop("protocol", DEFAULT_PROTOCOL),
            protocol_values=dict(flags.pop("protocol_values", None) or {}),
        )
        pick = {f.name for f in fields(MethodsConfig)}
        methods = MethodsConfig(**{k: flags.pop(k) for k in list(flags) if k in pick})
        task = flags.pop("task", "classification")
        if flags:
            raise TypeError(f"Unknown s3 eval options: {sorted(flags)}.")
        return cls(run, task, classification, fewshot, segmentation, methods)

    def to_dict(self) -> dict[str, Any]:
        """Every option, flat, under the names :meth:`from_flags` takes."""
        seg = self.segmentation
        flat: dict[str, Any] = {**asdict(self.run), **asdict(self.classification)}
        flat.update(
            shots=list(self.fewshot.shots),
            seeds=list(self.fewshot.seeds),
            fewshot_base=self.fewshot.base,
            fewshot=self.fewshot.given_options(),
            task=self.task,
            class_names=seg.class_names,
            **{k: getattr(seg.options, k) for k in _SEGMENT_FLAGS},
            protocol=seg.protocol,
            protocol_values=dict(seg.protocol_values),
            **self.methods.to_flags(),
        )
        return flat

    def key(self) -> str:
        """A hash of what the results depend on (not where they go, nor how fast they are made)."""
        flat = {k: v for k, v in self.to_dict().items() if k not in _UNKEYED}
        return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()[:16]


__all__ = [
    "S3_METRICS",
    "STATIC_METHODS",
    "TASKS",
    "ClassificationConfig",
    "EvalConfig",
    "FewShotConfig",
    "MethodsConfig",
    "RunConfig",
    "SegmentationConfig",
    "method_family",
]
