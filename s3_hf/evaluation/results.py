"""Typed results of ``s3 eval``: per method, per benchmark and per run, for classification (``results.json``, one
JSON per benchmark) and segmentation (``segmentation.json``). ``to_dict`` writes the JSON those files have always
held; ``from_dict`` reads it back leniently (a figure a file lacks is ``None``), so that a reader such as
``s3 card`` judges what a file says rather than failing on what it omits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The few-shot methods of every (shots, seed) run, in table order.
FEWSHOT_METHODS = ("zero-shot", "cache", "ssp", "gda")
_FIGURES = ("top1", "top5", "mean_per_class")


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass
class Reliability:
    """A reliability diagram's bins: equal-width bins of the top probability, per bin the number of samples, their
    top-1 accuracy and their mean top probability (``None`` for an empty bin)."""

    counts: list[int]
    accuracy: list[float | None]
    confidence: list[float | None]

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "accuracy": self.accuracy, "confidence": self.confidence}

    @classmethod
    def from_dict(cls, data: Any) -> Reliability | None:
        if not isinstance(data, dict) or not isinstance(data.get("counts"), list):
            return None
        counts = [int(c) for c in data["counts"]]
        accuracy = [_number(a) for a in data.get("accuracy") or [None] * len(counts)]
        confidence = [_number(c) for c in data.get("confidence") or [None] * len(counts)]
        if not len(counts) == len(accuracy) == len(confidence):
            return None
        return cls(counts, accuracy, confidence)


@dataclass
class StreamInfo:
    """How a test-time adaptation method saw the images: its ``protocol`` (``single-stream``, or ``per-process``
    over ``processes`` shards), the static method it adapts (``base``), its options and their hash, and per stream
    seed the sha256 of the order (the permutation's int64 bytes); ``order``: ``random``, or the ``class-sorted``
    stress test."""

    protocol: str
    base: str
    config_hash: str
    config: dict[str, Any]
    seeds: list[int]
    permutation_sha256: list[str]
    processes: int = 1
    order: str = "random"

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "base": self.base,
            "config_hash": self.config_hash,
            "config": self.config,
            "seeds": self.seeds,
            "permutation_sha256": self.permutation_sha256,
            "processes": self.processes,
            "order": self.order,
        }

    @classmethod
    def from_dict(cls, data: Any) -> StreamInfo | None:
        if not isinstance(data, dict) or "protocol" not in data:
            return None
        return cls(
            str(data["protocol"]),
            str(data.get("base", "")),
            str(data.get("config_hash", "")),
            _dict(data.get("config")),
            [int(x) for x in data.get("seeds") or []],
            [str(x) for x in data.get("permutation_sha256") or []],
            int(data.get("processes", 1)),
            str(data.get("order", "random")),
        )


@dataclass
class MethodScores:
    """One zero-shot method on one benchmark: top-1, top-5, mean per-class accuracy and its per-class wins and
    losses against ``label``. A method of several random draws (WaffleCLIP) holds their mean, the population standard
    deviations (``*_std``) and every draw's figures (``draws``: ``seeds``, ``top1``, ``top5``, ``mean_per_class``).

    Calibration of the engine's probabilities (the family's own scoring, the model's own temperature): ``ece``, the
    expected calibration error over 15 equal-width bins of the top probability, ``nll``, the mean negative
    log-likelihood of the true class, and the ``reliability`` bins (of the first draw, for a method of several);
    ``None`` in files written before they were recorded. A test-time adaptation method (TDA, TS^3) records how it
    saw the images in ``stream``."""

    top1: float | None
    top5: float | None = None
    mean_per_class: float | None = None
    wins_vs_label: int = 0
    losses_vs_label: int = 0
    std: dict[str, float] | None = None
    draws: dict[str, list[Any]] | None = None
    ece: float | None = None
    nll: float | None = None
    reliability: Reliability | None = None
    stream: StreamInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"top1": self.top1, "top5": self.top5, "mean_per_class": self.mean_per_class}
        if self.std is not None:
            out.update({f"{f}_std": v for f, v in self.std.items()})
        if self.draws is not None:
            out["draws"] = self.draws
        out.update(wins_vs_label=self.wins_vs_label, losses_vs_label=self.losses_vs_label)
        if self.ece is not None or self.nll is not None:
            out.update(ece=self.ece, nll=self.nll)
        if self.reliability is not None:
            out["reliability"] = self.reliability.to_dict()
        if self.stream is not None:
            out["stream"] = self.stream.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MethodScores:
        figures = (*_FIGURES, "ece", "nll")
        std = {f: float(data[f"{f}_std"]) for f in figures if f"{f}_std" in data} if "top1_std" in data else None
        return cls(
            _number(data.get("top1")),
            _number(data.get("top5")),
            _number(data.get("mean_per_class")),
            int(data.get("wins_vs_label", 0)),
            int(data.get("losses_vs_label", 0)),
            std,
            data.get("draws"),
            _number(data.get("ece")),
            _number(data.get("nll")),
            Reliability.from_dict(data.get("reliability")),
            StreamInfo.from_dict(data.get("stream")),
        )


@dataclass
class FewShotRun:
    """One (shots, seed) run: per few-shot method top-1 and mean per-class accuracy (and ``ece``, ``nll`` for the
    methods scored with the engine's probabilities: zero-shot, cache, SSP), and each fit's parameters."""

    shots: int
    seed: int
    support_images: int
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> {"top1", "mean_per_class", ...}
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # "cache", "ssp", "gda" -> fitted values

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shots": self.shots, "seed": self.seed, "support_images": self.support_images}
        out.update({f"{m}_params": p for m, p in self.params.items()})
        out.update(self.scores)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FewShotRun:
        params = {k.removesuffix("_params"): v for k, v in data.items() if k.endswith("_params")}
        scores = {m: data[m] for m in FEWSHOT_METHODS if m in data}
        return cls(int(data["shots"]), int(data["seed"]), int(data["support_images"]), scores, params)


@dataclass
class FewShotResult:
    """A benchmark's few-shot runs, and per shot count and method the mean and standard deviation of top-1 over
    seeds (``summary[shots][method] = {"top1_mean", "top1_std"}``, plus ``"ece_mean"`` for the methods scored with
    the engine's probabilities); or why there are none (``error``)."""

    runs: list[FewShotRun] = field(default_factory=list)
    summary: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    base: str | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        out: dict[str, Any] = {"runs": [r.to_dict() for r in self.runs], "summary": self.summary}
        if self.base is not None:
            out.update(base=self.base, timings_s=self.timings_s)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FewShotResult:
        if "error" in data:
            return cls(error=data["error"])
        runs = [FewShotRun.from_dict(r) for r in data.get("runs", [])]
        return cls(runs, _dict(data.get("summary")), data.get("base"), _dict(data.get("timings_s")))


@dataclass
class BenchmarkResult:
    """One benchmark of a classification run (its own ``<name>-<hash>.json``), or why it was not evaluated
    (``error``: nothing else is recorded). A benchmark read from the Hub records its dataset repo id
    (``dataset_id``) and the revision its data was read at (``dataset_revision``: the commit resolved, else the
    revision asked for); both ``None`` for a local folder and in files written before they were recorded."""

    name: str
    error: str | None = None
    identity: dict[str, str] | None = None
    config_key: str | None = None
    model: str | None = None
    samples: int = 0
    classes: int = 0
    class_names: list[str] | None = None
    methods: dict[str, MethodScores] = field(default_factory=dict)
    synonyms: dict[str, Any] = field(default_factory=dict)  # S^3 method -> its synonym source's provenance
    embeddings_cached: bool = False
    timings_s: dict[str, float] = field(default_factory=dict)
    random_weights: Any = False  # as recorded: a reader trusts only ``False``
    files: dict[str, str] = field(default_factory=dict)
    fewshot: FewShotResult | None = None
    dataset_id: str | None = None
    dataset_revision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"name": self.name, "error": self.error}
        out = {
            "name": self.name,
            "identity": self.identity,
            "dataset_id": self.dataset_id,
            "dataset_revision": self.dataset_revision,
            "config_key": self.config_key,
            "model": self.model,
            "samples": self.samples,
            "classes": self.classes,
            "class_names": self.class_names,
            "methods": {m: s.to_dict() for m, s in self.methods.items()},
            "synonyms": self.synonyms,
            "embeddings_cached": self.embeddings_cached,
            "timings_s": self.timings_s,
            "random_weights": self.random_weights,
            "files": self.files,
        }
        if self.fewshot is not None:
            out["fewshot"] = self.fewshot.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str | None = None) -> BenchmarkResult:
        name = name if name is not None else str(data.get("name", ""))
        if "methods" not in data:
            return cls(name, error=str(data.get("error", "no results")))
        fewshot = data.get("fewshot")
        return cls(
            name,
            identity=data.get("identity"),
            config_key=data.get("config_key"),
            model=data.get("model"),
            samples=int(data.get("samples", 0)),
            classes=int(data.get("classes", 0)),
            class_names=data.get("class_names"),
            methods={m: MethodScores.from_dict(s) for m, s in _dict(data["methods"]).items()},
            synonyms=_dict(data.get("synonyms")),
            embeddings_cached=bool(data.get("embeddings_cached", False)),
            timings_s=_dict(data.get("timings_s")),
            random_weights=data.get("random_weights", False),
            files=_dict(data.get("files")),
            fewshot=FewShotResult.from_dict(fewshot) if isinstance(fewshot, dict) else None,
            dataset_id=_text(data.get("dataset_id")),
            dataset_revision=_text(data.get("dataset_revision")),
        )


@dataclass
class RunResult:
    """A classification run (``results.json``): the model, the configuration and every benchmark's result."""

    model: str | None
    revision: str | None = None
    random_weights: Any = None  # as recorded: ``None`` when a file does not say
    family: str | None = None
    scoring: str | None = None
    canonicalizations: list[str | None] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    processes: int = 1
    benchmarks: dict[str, BenchmarkResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "revision": self.revision,
            "random_weights": self.random_weights,
            "family": self.family,
            "scoring": self.scoring,
            "canonicalizations": list(self.canonicalizations),
            "config": self.config,
            "versions": self.versions,
            "processes": self.processes,
            "benchmarks": {n: b.to_dict() for n, b in self.benchmarks.items()},
        }

    def all_failed(self) -> bool:
        """Whether there were benchmarks and none of them could be evaluated."""
        return bool(self.benchmarks) and all(b.error is not None for b in self.benchmarks.values())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Results as a file holds them; ``TypeError`` when they are not a results object."""
        if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), dict):
            raise TypeError("These are not results written by `s3 eval` (no 'benchmarks' object).")
        benchmarks = {n: BenchmarkResult.from_dict(b, n) for n, b in data["benchmarks"].items() if isinstance(b, dict)}
        return cls(
            data.get("model"),
            data.get("revision"),
            data.get("random_weights"),
            data.get("family"),
            data.get("scoring"),
            list(data.get("canonicalizations") or []),
            _dict(data.get("config")),
            _dict(data.get("versions")),
            int(data.get("processes", 1)),
            benchmarks,
        )


@dataclass
class SegBenchmarkResult:
    """One segmentation benchmark: per method ``mean_iou``, ``pixel_accuracy``, ``mean_accuracy``,
    ``per_class_iou`` (class -> IoU) and the summed ``confusion`` matrix, and the protocol's values."""

    name: str
    images: int
    classes: int
    reduce_zero_label: bool
    methods: dict[str, dict[str, Any]]
    seconds_per_image: float
    protocol: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "images": self.images,
            "classes": self.classes,
            "reduce_zero_label": self.reduce_zero_label,
            "methods": self.methods,
            "seconds_per_image": self.seconds_per_image,
            "protocol": self.protocol,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegBenchmarkResult:
        return cls(
            data["name"],
            int(data["images"]),
            int(data["classes"]),
            bool(data["reduce_zero_label"]),
            _dict(data["methods"]),
            float(data["seconds_per_image"]),
            _dict(data.get("protocol")),
        )


@dataclass
class SegRunResult:
    """A segmentation run (``segmentation.json``)."""

    model: str
    revision: str | None
    random_weights: Any
    family: str
    options: dict[str, Any]
    processes: int
    versions: dict[str, str]
    benchmarks: dict[str, SegBenchmarkResult]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": "segmentation",
            "model": self.model,
            "revision": self.revision,
            "random_weights": self.random_weights,
            "family": self.family,
            "options": self.options,
            "processes": self.processes,
            "versions": self.versions,
            "benchmarks": {n: b.to_dict() for n, b in self.benchmarks.items()},
        }

    def all_failed(self) -> bool:
        """Never: a segmentation benchmark that cannot be evaluated stops the run."""
        return False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegRunResult:
        return cls(
            data["model"],
            data.get("revision"),
            data.get("random_weights"),
            data.get("family", ""),
            _dict(data.get("options")),
            int(data.get("processes", 1)),
            _dict(data.get("versions")),
            {n: SegBenchmarkResult.from_dict(b) for n, b in _dict(data.get("benchmarks")).items()},
        )


__all__ = [
    "FEWSHOT_METHODS",
    "BenchmarkResult",
    "FewShotResult",
    "FewShotRun",
    "MethodScores",
    "Reliability",
    "RunResult",
    "SegBenchmarkResult",
    "SegRunResult",
    "StreamInfo",
]
