"""Segmentation protocols: the per-benchmark configuration of each reference method's released code, as named
presets, importable without torch.

``protocol="s3"`` is s3-hf's own default (one setting for every benchmark); ``"sclip"``, ``"naclip"`` and
``"clearclip"`` hold, per benchmark, the values of the authors' released configurations (wangf3014/SCLIP,
sinahmr/NACLIP, mc-lan/ClearCLIP: ``configs/cfg_<benchmark>.py`` and the segmentor's constructor defaults). Every
value stays individually overridable (:func:`resolve`), and :meth:`ProtocolValues.to_dict` lists the values used, so
results record them. The README's "Segmentation protocols" table lists every value with its source file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from s3_hf.errors import InvalidConfigError, ProtocolBenchmarkError, UnknownProtocolError
from s3_hf.options import (
    DEFAULT_PAMR_DILATIONS,
    DEFAULT_SHORT_SIDE,
    DEFAULT_STRIDE,
    DEFAULT_WINDOW,
    DENSE_VARIANTS,
    POSITION_RULES,
    RESIZE_KERNELS,
)
from s3_hf.validation import flag, integer, integers, number, one_of, probability

PRECISIONS: tuple[str, ...] = ("float32", "float16")
DEFAULT_PROTOCOL = "s3"
#: The benchmarks the references publish a configuration for (the names of ``s3_hf.evaluation.segmentation``).
BENCHMARKS: tuple[str, ...] = (
    "voc21",
    "voc20",
    "context60",
    "context59",
    "coco-object",
    "coco-stuff",
    "cityscapes",
    "ade20k",
)


@dataclass(frozen=True)
class ProtocolValues:
    """Every value a segmentation protocol fixes for one benchmark.

    Args:
        protocol: the protocol's name.
        benchmark: the benchmark the values are for (``None``: the same for every benchmark).
        variant: the dense last-block variant (see :mod:`s3_hf.models.dense`).
        short_side: images are resized so that their short side is this (at most; see ``long_side``).
        long_side: the long-side cap (mmseg's ``Resize(scale=(long_side, short_side), keep_ratio=True)``: the image
            is scaled by ``min(long_side / long, short_side / short)``); ``None``: no cap.
        window: the sliding window in pixels; 0 runs the whole image in one pass (the references' ``slide_crop=0``).
        stride: the window stride in pixels.
        resize: the resize kernel, one of :data:`RESIZE_KERNELS`.
        positions: the position-embedding interpolation rule, one of :data:`POSITION_RULES`.
        fast_decode: JPEGs decoded at reduced size (never below the short side); the references decode every pixel.
        logit_scale: the fixed scale of the softmax over all names; ``None``: the model's own.
        prob_threshold: below this top probability a pixel goes to ``background_index``; ``None``: no threshold.
        background_index: the class a thresholded pixel goes to (the references: index 0, whatever it is called);
            ``None``: the class named ``background``.
        area_threshold: a class (other than ``background_index``) predicted on less than this fraction of the
            predicted non-background area is removed (SCLIP's ``area_thd``); ``None``: off.
        pamr_steps: PAMR refinement iterations (0: off).
        pamr_dilations: PAMR's affinity dilations.
        precision: the precision the reference computes in (recorded; s3-hf computes in the model's ``--dtype``).
        templates: the prompt templates of the class names (``imagenet80``: the 80 ImageNet templates, the
            references' ``openai_imagenet_template``).
        class_names: the reference's class-name file for the benchmark (recorded; pass the file to use).
        sources: ``(value name, source file)`` pairs: where each value comes from.
    """

    protocol: str
    benchmark: str | None = None
    variant: str | None = "naclip"
    short_side: int = DEFAULT_SHORT_SIDE
    long_side: int | None = None
    window: int = DEFAULT_WINDOW
    stride: int = DEFAULT_STRIDE
    resize: str = "pil-bicubic"
    positions: str = "size"
    fast_decode: bool = True
    logit_scale: float | None = None
    prob_threshold: float | None = None
    background_index: int | None = None
    area_threshold: float | None = None
    pamr_steps: int = 0
    pamr_dilations: tuple[int, ...] = DEFAULT_PAMR_DILATIONS
    precision: str = "float32"
    templates: str = "imagenet80"
    class_names: str = "classes.txt"
    sources: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        one_of("variant", self.variant, DENSE_VARIANTS)
        integer("short_side", self.short_side, 1)
        integer("window", self.window, 0)
        integer("stride", self.stride, 1)
        integer("pamr_steps", self.pamr_steps, 0)
        integer("long_side", self.long_side, 1, optional=True)
        one_of("resize", self.resize, RESIZE_KERNELS)
        one_of("positions", self.positions, POSITION_RULES)
        one_of("precision", self.precision, PRECISIONS)
        flag("fast_decode", self.fast_decode)
        number("logit_scale", self.logit_scale, low=0, open_low=True, optional=True)
        probability("prob_threshold", self.prob_threshold, optional=True)
        probability("area_threshold", self.area_threshold, optional=True)
        integer("background_index", self.background_index, 0, optional=True)
        if not isinstance(self.pamr_dilations, tuple):
            raise InvalidConfigError(f"pamr_dilations must be a tuple, got {self.pamr_dilations!r}.")
        integers("pamr_dilations", self.pamr_dilations, low=1)

    def segment_options(self) -> Any:
        """The :class:`~s3_hf.segmentation.options.SegmentOptions` of these values (PAMR, the templates and the
        precision are applied or recorded by the caller)."""
        from s3_hf.segmentation.options import SegmentOptions

        return SegmentOptions(
            variant=self.variant,
            short_side=self.short_side,
            window=self.window,
            stride=self.stride,
            background_threshold=self.prob_threshold,
            fast_decode=self.fast_decode,
            background_index=self.background_index,
            area_threshold=self.area_threshold,
            logit_scale=self.logit_scale,
            resize=self.resize,
            long_side=self.long_side,
            positions=self.positions,
        )

    @classmethod
    def value_names(cls) -> tuple[str, ...]:
        """The names :func:`resolve` accepts as overrides (every value but the names and sources)."""
        return tuple(f.name for f in fields(cls) if f.name not in ("protocol", "benchmark", "sources"))

    def to_dict(self) -> dict[str, Any]:
        """Every value, JSON-ready, and ``sources``: value name -> where it comes from (``"override"`` for a value
        given to :func:`resolve`)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sources"}
        out["pamr_dilations"] = list(self.pamr_dilations)
        out["sources"] = dict(self.sources)
        return out


def _s3() -> ProtocolValues:
    return ProtocolValues("s3", sources=tuple((name, "s3-hf default") for name in ProtocolValues.value_names()))


# What the three references share: mmseg's Resize(scale=(2048, short), keep_ratio=True) with cv2 bilinear, their
# clip/model.py (or open_clip/transformer.py) interpolate_pos_encoding (scale_factor rule), full decoding, the 80
# ImageNet templates (prompts/imagenet_template.py), index 0 for thresholded pixels (their postprocess_result) and
# float16 (clip.load on a GPU / create_model(precision='fp16')).
_SHARED = dict(long_side=2048, resize="bilinear", positions="scale", fast_decode=False, precision="float16")

# Per reference: its segmentor file, the segmentor's constructor defaults, and per benchmark (config file, values the
# config sets). The class-name file is the config's name_path.
_REFERENCES: dict[str, tuple[str, dict[str, Any], dict[str, tuple[str, str, dict[str, Any]]]]] = {
    "sclip": (
        "SCLIP clip_segmentor.py",
        dict(variant="sclip", window=224, stride=112, logit_scale=40.0, pamr_steps=0),
        {
            "voc21": (
                "cfg_voc21.py",
                "cls_voc21.txt",
                dict(short_side=336, logit_scale=65.0, prob_threshold=0.1, area_threshold=0.1),
            ),
            "voc20": ("cfg_voc20.py", "cls_voc20.txt", dict(short_side=336)),
            "context60": (
                "cfg_context60.py",
                "cls_context60.txt",
                dict(short_side=336, logit_scale=50.0, prob_threshold=0.1),
            ),
            "context59": ("cfg_context59.py", "cls_context59.txt", dict(short_side=336)),
            "coco-object": (
                "cfg_coco_object.py",
                "cls_coco_object.txt",
                dict(short_side=336, logit_scale=50.0, prob_threshold=0.1),
            ),
            "coco-stuff": ("cfg_coco_stuff164k.py", "cls_coco_stuff.txt", dict(short_side=448)),
            "cityscapes": ("cfg_city_scapes.py", "cls_city_scapes.txt", dict(short_side=560)),
            "ade20k": ("cfg_ade20k.py", "cls_ade20k.txt", dict(short_side=336)),
        },
    ),
    "naclip": (
        "NACLIP naclip.py",
        dict(variant="naclip", window=224, stride=112, logit_scale=40.0, pamr_steps=10, pamr_dilations=(8, 16)),
        {
            "voc21": ("cfg_voc21.py", "cls_voc21.txt", dict(short_side=336, prob_threshold=0.1, window=0)),
            "voc20": ("cfg_voc20.py", "cls_voc20.txt", dict(short_side=336, window=0)),
            "context60": ("cfg_context60.py", "cls_context60.txt", dict(short_side=336, prob_threshold=0.1)),
            "context59": ("cfg_context59.py", "cls_context59.txt", dict(short_side=336)),
            "coco-object": ("cfg_coco_object.py", "cls_coco_object.txt", dict(short_side=336, prob_threshold=0.1)),
            "coco-stuff": ("cfg_coco_stuff164k.py", "cls_coco_stuff.txt", dict(short_side=336)),
            "cityscapes": ("cfg_city_scapes.py", "cls_city_scapes.txt", dict(short_side=560)),
            "ade20k": ("cfg_ade20k.py", "cls_ade20k.txt", dict(short_side=336)),
        },
    ),
    "clearclip": (
        "ClearCLIP clearclip_segmentor.py",
        dict(variant="clearclip", window=448, stride=224, logit_scale=50.0, pamr_steps=0),
        {
            "voc21": ("cfg_voc21.py", "cls_voc21.txt", dict(short_side=448, prob_threshold=0.5)),
            "voc20": ("cfg_voc20.py", "cls_voc20.txt", dict(short_side=448)),
            "context60": ("cfg_context60.py", "cls_context60.txt", dict(short_side=448, prob_threshold=0.15)),
            "context59": ("cfg_context59.py", "cls_context59.txt", dict(short_side=448)),
            "coco-object": ("cfg_coco_object.py", "cls_coco_object.txt", dict(short_side=448, prob_threshold=0.4)),
            "coco-stuff": ("cfg_coco_stuff164k.py", "cls_coco_stuff.txt", dict(short_side=448)),
            "cityscapes": ("cfg_city_scapes.py", "cls_city_scapes.txt", dict(short_side=448, window=224)),
            "ade20k": ("cfg_ade20k.py", "cls_ade20k.txt", dict(short_side=448)),
        },
    ),
}

#: The protocol names: ``"s3"`` (s3-hf's defaults) and one per reference.
PROTOCOLS: tuple[str, ...] = (DEFAULT_PROTOCOL, *_REFERENCES)


def _reference(protocol: str, benchmark: str) -> ProtocolValues:
    segmentor, defaults, table = _REFERENCES[protocol]
    repo = segmentor.split()[0]
    config, class_file, values = table[benchmark]
    merged = {**_SHARED, **defaults, **values}
    if merged.get("prob_threshold"):
        merged["background_index"] = 0  # postprocess_result: seg_pred[max prob < prob_thd] = 0
    else:
        merged.pop("prob_threshold", None)  # prob_thd 0 is no threshold
    from_config = {"short_side", "long_side", "class_names", *values}
    special = {
        "resize": f"{repo} configs/{config} (mmseg Resize, cv2 bilinear)",
        "positions": f"{repo} interpolate_pos_encoding",
        "fast_decode": f"{repo} configs/{config} (mmseg LoadImageFromFile)",
        "templates": f"{repo} prompts/imagenet_template.py",
        "precision": segmentor,
    }
    sources = tuple(
        (name, special.get(name) or (f"{repo} configs/{config}" if name in from_config else segmentor))
        for name in ProtocolValues.value_names()
    )
    return ProtocolValues(protocol, benchmark, class_names=class_file, sources=sources, **merged)


def check_protocol(protocol: str) -> str:
    """``protocol`` itself, or an :class:`UnknownProtocolError` listing :data:`PROTOCOLS`."""
    if protocol not in PROTOCOLS:
        raise UnknownProtocolError(f"Unknown segmentation protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}.")
    return protocol


def resolve(protocol: str = DEFAULT_PROTOCOL, benchmark: str | None = None, **overrides: Any) -> ProtocolValues:
    """The values of ``protocol`` for ``benchmark``, with ``overrides`` (any of
    :meth:`ProtocolValues.value_names`; ``None`` values are ignored, so unset CLI options keep the preset's).

    Args:
        protocol: one of :data:`PROTOCOLS`.
        benchmark: one of :data:`BENCHMARKS`; a reference protocol needs one (``"s3"`` takes any or none).
        overrides: values replacing the preset's (``variant="none"``: the model's own last block).

    Raises:
        UnknownProtocolError: ``protocol`` is not one of :data:`PROTOCOLS`.
        ProtocolBenchmarkError: a reference protocol and a benchmark it publishes no values for.
        InvalidConfigError: an unknown or invalid override.
    """
    check_protocol(protocol)
    if protocol == DEFAULT_PROTOCOL:
        values = _s3()
        if benchmark is not None:
            values = replace(values, benchmark=benchmark)
    else:
        table = _REFERENCES[protocol][2]
        if benchmark not in table:
            given = f"benchmark {benchmark!r}" if benchmark else "an unnamed benchmark (a bare folder)"
            raise ProtocolBenchmarkError(
                f"Protocol {protocol!r} has published values for {', '.join(table)}, not for {given}. Name the "
                f"benchmark (s3 eval: NAME=FOLDER; s3 segment: --benchmark NAME), or use protocol {DEFAULT_PROTOCOL!r} "
                "and set the values yourself."
            )
        values = _reference(protocol, benchmark)
    unknown = sorted(set(overrides) - set(ProtocolValues.value_names()))
    if unknown:
        raise InvalidConfigError(
            f"Unknown protocol value(s) {', '.join(unknown)}; the values are {', '.join(ProtocolValues.value_names())}."
        )
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("variant") == "none":  # the model's own last block, as the command line spells it
        given["variant"] = None
    if "pamr_dilations" in given:
        given["pamr_dilations"] = tuple(given["pamr_dilations"])
    if not given:
        return values
    sources = tuple((name, "override" if name in given else src) for name, src in values.sources)
    return replace(values, **given, sources=sources)


def table(protocol: str) -> dict[str, ProtocolValues]:
    """benchmark -> values of a reference ``protocol`` (``"s3"``: one entry, ``"*"``)."""
    check_protocol(protocol)
    if protocol == DEFAULT_PROTOCOL:
        return {"*": _s3()}
    return {b: _reference(protocol, b) for b in _REFERENCES[protocol][2]}


__all__ = [
    "BENCHMARKS",
    "DEFAULT_PROTOCOL",
    "POSITION_RULES",
    "PRECISIONS",
    "PROTOCOLS",
    "RESIZE_KERNELS",
    "ProtocolBenchmarkError",
    "ProtocolValues",
    "UnknownProtocolError",
    "check_protocol",
    "resolve",
    "table",
]
