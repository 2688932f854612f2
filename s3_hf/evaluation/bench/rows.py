"""The bench's typed rows: one dataclass per table row or part, each with ``to_dict`` (the ``bench.json`` shape) and
``from_dict`` (reading it back)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from s3_hf.space.scoring import METRICS

R = TypeVar("R", bound="FlatRow")


class FlatRow:
    """A row whose fields are its JSON keys, in order."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})  # type: ignore[arg-type]


@dataclass
class MetricTiming(FlatRow):
    """One S^3 metric in an inference row: images/s, the median paired ratio to (b), its own work alone."""

    img_s: float
    ratio: float
    own_ms: float
    own_share: float


@dataclass
class InferenceRow:
    """One (dtype, batch size, class count) of the inference part; JSON keys ``s3_<metric>_<kind>`` per metric."""

    dtype: str
    batch_size: int
    classes: int
    concepts: int
    bare_img_s: float
    decode_img_s: float
    bare_over_decode: float
    metrics: dict[str, MetricTiming] = field(default_factory=dict)
    transformers_img_s: float | None = None  # None: the model is not a transformers one

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "classes": self.classes,
            "concepts": self.concepts,
            "bare_img_s": self.bare_img_s,
            "decode_img_s": self.decode_img_s,
            "bare_over_decode": self.bare_over_decode,
        }
        for metric, timing in self.metrics.items():
            out.update({f"s3_{metric}_{kind}": value for kind, value in timing.to_dict().items()})
        out["transformers_img_s"] = self.transformers_img_s
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InferenceRow:
        kinds = [f.name for f in fields(MetricTiming)]
        metrics = {
            m: MetricTiming(**{k: data[f"s3_{m}_{k}"] for k in kinds}) for m in METRICS if f"s3_{m}_img_s" in data
        }
        plain = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        return cls(**plain, metrics=metrics)


@dataclass
class BuildRow(FlatRow):
    """Building one space: text encoding and geometry seconds."""

    classes: int
    concepts: int
    prompts: int
    text_s: float
    geometry_s: float
    geometry_share: float


@dataclass
class ArtifactInfo(FlatRow):
    """A saved space's size on disk, per file."""

    classes: int
    concepts: int
    bytes: int
    files: dict[str, int]


@dataclass
class FitRow(FlatRow):
    shots: int
    support_images: int
    fit_s: float


@dataclass
class FewshotRow(FlatRow):
    batch_size: int
    shots: int
    ssp_img_s: float
    ssp_over_b: float
    ssp_over_s3: float


@dataclass
class FewshotResult:
    """SSP's cost: support encoding, fitting per shot count, and pipeline throughput with the adapter."""

    classes: int
    support_img_s: float
    patches: int
    fit: list[FitRow] = field(default_factory=list)
    inference: list[FewshotRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "support_img_s": self.support_img_s,
            "patches": self.patches,
            "fit": [r.to_dict() for r in self.fit],
            "inference": [r.to_dict() for r in self.inference],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FewshotResult:
        return cls(
            data["classes"],
            data["support_img_s"],
            data["patches"],
            [FitRow.from_dict(r) for r in data["fit"]],
            [FewshotRow.from_dict(r) for r in data["inference"]],
        )


@dataclass
class ImageRow(FlatRow):
    """One photo set and decoding mode of the image part; the ``transformers`` columns only where it can run."""

    set: str
    decode: str
    images: int
    workers: int
    device: str
    processor: str
    bare_img_s: float
    bare_workers_img_s: float
    decode_img_s: float
    s3_img_s: float
    s3_workers_img_s: float
    eval_img_s: float
    eval_workers_img_s: float
    transformers_img_s: float | None
    s3_over_bare: float
    s3_workers_over_bare: float
    s3_workers_over_bare_workers: float
    eval_workers_over_eval: float
    s3_over_transformers: float | None = None

    def to_dict(self) -> dict[str, Any]:
        optional = ("transformers_img_s", "s3_over_transformers")
        return {k: v for k, v in super().to_dict().items() if v is not None or k not in optional}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRow:
        return cls(**{"transformers_img_s": None, **{f.name: data[f.name] for f in fields(cls) if f.name in data}})


@dataclass
class DecodeAgreement(FlatRow):
    images: int
    top1_agreement: float
    mean_abs_prob_diff: float
    max_abs_prob_diff: float
    random_weights: bool


@dataclass
class BackendTimes:
    """Preprocessing images/s per image-processor backend (``pil``, ``torchvision``) and the processor classes."""

    img_s: dict[str, float]
    processors: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {**{f"{b}_preprocess_img_s": v for b, v in self.img_s.items()}, "processors": self.processors}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackendTimes:
        suffix = "_preprocess_img_s"
        return cls({k[: -len(suffix)]: v for k, v in data.items() if k.endswith(suffix)}, data["processors"])


@dataclass
class ImagesResult:
    rows: list[ImageRow]
    backends: BackendTimes | None = None
    decode_agreement: DecodeAgreement | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [r.to_dict() for r in self.rows],
            "backends": self.backends.to_dict() if self.backends else None,
            "decode_agreement": self.decode_agreement.to_dict() if self.decode_agreement else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImagesResult:
        backends, agreement = data.get("backends"), data.get("decode_agreement")
        return cls(
            [ImageRow.from_dict(r) for r in data["rows"]],
            BackendTimes.from_dict(backends) if backends else None,
            DecodeAgreement.from_dict(agreement) if agreement else None,
        )


@dataclass
class MemoryProbe(FlatRow):
    """What one fresh process measured: its peak and its resident memory at the end, in bytes."""

    peak_bytes: int
    resident_bytes: int


@dataclass
class MemoryResult:
    """Bare CLIP against the S^3 pipeline, each classifying the same images in a fresh process."""

    bare: MemoryProbe
    s3: MemoryProbe

    @property
    def ratio(self) -> float:
        return self.s3.peak_bytes / self.bare.peak_bytes

    @property
    def resident_ratio(self) -> float:
        return self.s3.resident_bytes / self.bare.resident_bytes

    def to_dict(self) -> dict[str, Any]:
        out = {
            f"{name}_{k}": v
            for name, probe in (("bare", self.bare), ("s3", self.s3))
            for k, v in probe.to_dict().items()
        }
        return {**out, "ratio": self.ratio, "resident_ratio": self.resident_ratio}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryResult:
        probe = lambda name: MemoryProbe(data[f"{name}_peak_bytes"], data[f"{name}_resident_bytes"])  # noqa: E731
        return cls(probe("bare"), probe("s3"))


@dataclass
class SegmentationRow(FlatRow):
    short_side: int
    variant: str
    img_s: float
    dense_img_s: float
    dense_ratio: float  # end to end speed as a share of the dense forward's
    plain_img_s: float
    scoring_ms: float
    scoring_share: float
    patches_per_image: int


@dataclass
class SegmentationResult:
    classes: int
    concepts: int
    images: int
    rows: list[SegmentationRow]
    memory: MemoryProbe | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "classes": self.classes,
            "concepts": self.concepts,
            "images": self.images,
            "rows": [r.to_dict() for r in self.rows],
        }
        if self.memory is not None:
            out["memory"] = self.memory.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentationResult:
        memory = MemoryProbe.from_dict(data["memory"]) if data.get("memory") else None
        rows = [SegmentationRow.from_dict(r) for r in data["rows"]]
        return cls(data["classes"], data["concepts"], data["images"], rows, memory)


#: The issue's target for TS^3's extra cost per image: at most this share of decode + encode.
TTA_TARGET = 0.05


@dataclass
class TTAMemory(FlatRow):
    """A TS^3 state's saved bytes after ``images`` and after ten times as many, against the design's bound
    ``C(S+ + S-)(D+2)·4 + C²S-/8 + (C+1)(D+1)·4``."""

    classes: int
    dim: int
    pos_size: int
    neg_size: int
    images: int
    bytes_n: int
    bytes_10n: int
    formula_bytes: int

    @property
    def bounded(self) -> bool:
        """The state did not grow from N to 10N images and stays within the formula."""
        return self.bytes_n == self.bytes_10n <= self.formula_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "bounded": self.bounded}


@dataclass
class ZeroCost(FlatRow):
    """ZERO-S^3's cost per image (``views`` views encoded and scored, then a vote) against static S^3 on the same
    images, alternating: medians over rounds, and the median paired ratio."""

    images: int
    views: int
    zero_ms: float
    static_ms: float
    ratio: float  # median over rounds of ZERO-S^3 time / static time


@dataclass
class TTAResult:
    """TS^3's extra cost per image: the adaptation step (state update + adapted scoring, on precomputed embeddings
    and static scores) against decode + encode of the same images, alternating; and the state's memory."""

    classes: int
    images: int  # per timed round
    batch_size: int  # images per encoder batch of decode + encode
    adapt_ms: float  # per image, median over rounds
    encode_ms: float  # decode + encode per image, median over rounds
    overhead: float  # median over rounds of adaptation time / decode + encode time
    memory: TTAMemory
    zero: ZeroCost | None = None

    @property
    def within_target(self) -> bool:
        return self.overhead <= TTA_TARGET

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("memory", "zero")}
        out = {**out, "within_target": self.within_target, "memory": self.memory.to_dict()}
        return out if self.zero is None else {**out, "zero": self.zero.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TTAResult:
        plain = {f.name: data[f.name] for f in fields(cls) if f.name not in ("memory", "zero")}
        zero = ZeroCost.from_dict(data["zero"]) if data.get("zero") else None
        return cls(**plain, memory=TTAMemory.from_dict(data["memory"]), zero=zero)


@dataclass
class Environment(FlatRow):
    model: str
    random_weights: bool
    device: str
    device_name: str
    torch: str
    transformers: str
    python: str
    num_images: int
    concepts: int
    repeats: int
    date: str


@dataclass
class BenchResults:
    """Everything one ``s3 bench`` measured; parts that did not run are empty or ``None`` (``skipped`` says why,
    for the parts that were asked for)."""

    environment: Environment
    inference: list[InferenceRow] = field(default_factory=list)
    build: list[BuildRow] = field(default_factory=list)
    fewshot: FewshotResult | None = None
    segmentation: SegmentationResult | None = None
    images: ImagesResult | None = None
    tta: TTAResult | None = None
    artifact: ArtifactInfo | None = None
    memory: MemoryResult | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "environment": self.environment.to_dict(),
            "inference": [r.to_dict() for r in self.inference],
            "build": [r.to_dict() for r in self.build],
        }
        for name in ("fewshot", "segmentation", "images", "tta", "artifact", "memory"):
            part = getattr(self, name)
            if part is not None:
                out[name] = part.to_dict()
        if self.skipped:
            out["skipped"] = dict(self.skipped)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResults:
        parts = {"fewshot": FewshotResult, "segmentation": SegmentationResult, "images": ImagesResult, "tta": TTAResult}
        parts |= {"artifact": ArtifactInfo, "memory": MemoryResult}
        return cls(
            Environment.from_dict(data["environment"]),
            [InferenceRow.from_dict(r) for r in data.get("inference", [])],
            [BuildRow.from_dict(r) for r in data.get("build", [])],
            **{name: kind.from_dict(data[name]) for name, kind in parts.items() if data.get(name)},  # type: ignore[attr-defined]
            skipped=dict(data.get("skipped", {})),
        )
