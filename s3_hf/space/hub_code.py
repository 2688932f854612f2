"""Run an S^3 synonym space with plain transformers: no s3-hf, no gudhi.

s3-hf writes this file, unchanged, into every synonym space it saves or pushes (as ``s3_pipeline.py``, named by the
space's ``config.json``), so that

    from transformers import pipeline
    clf = pipeline(model="user/space", trust_remote_code=True)  # or a folder the space was saved to
    clf("photo.jpg")  # [{"score": ..., "label": ...}, ...], best first

gives the scores of s3-hf's own ``s3-zero-shot-classification`` pipeline. ``trust_remote_code=True`` runs this file
and nothing else: it reads the space's ``s3_config.json`` and ``s3_space.safetensors`` (checked against the hash the
config records), loads the dual encoder the space was built with (by the id and revision the space records, or from
its ``base_model/`` folder when the space was saved as a bundle) and scores image embeddings against the saved class
spaces. Only torch, transformers, safetensors, Pillow and the standard library are imported; texts are never encoded.

Call options: ``top_k``, ``metric`` (one of :data:`METRICS`; default: the space's), ``knn_k`` (the kNN metric's
``k``), ``candidate_labels`` (a subset of the space's classes) and ``timeout`` (image URLs). Load options, through
``model_kwargs``: ``base_model`` (another id or folder of the same checkpoint) and ``base_model_revision``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from safetensors.torch import load as load_tensors
from transformers import AutoImageProcessor, AutoModelForZeroShotImageClassification, Pipeline, PretrainedConfig
from transformers import PreTrainedModel as _PreTrainedModel
from transformers.utils import cached_file

SPACE_CONFIG = "s3_config.json"
SPACE_TENSORS = "s3_space.safetensors"
#: Where a bundled space keeps the files of its base model.
BUNDLE_FOLDER = "base_model"
FORMAT_VERSION = 1
METRICS = tuple(
    "label global_center nearest_point mean_similarity nearest_simplex local_center local_center_knn".split()
)
#: Families whose logits are cosine similarities divided by a learnt temperature, not times exp(logit_scale).
TEMPERATURE_FAMILIES = ("align", "tipsv2")
_NEG = float("-inf")


class SpaceLoadError(LookupError):
    """The space or the base model it was built with cannot be loaded (a ``LookupError``, so that transformers'
    pipeline shows this message rather than folding it into the tracebacks of each model class it tried)."""


class S3SpaceConfig(PretrainedConfig):
    """The space's ``config.json``: where its base model is. Everything else is in ``s3_config.json``."""

    model_type = "s3_space"

    base_model: str | None = None
    base_model_revision: str | None = None
    bundled: bool = False


# ------------------------------------------------------------------------------------------------ scoring
@dataclass
class DenseSpace:
    """A dense (classes x largest class) view of the space's tensors on one device."""

    points: torch.Tensor  # (C*M, D); padded slots are zero
    mask: torch.Tensor  # (C, M) kept points
    labels: torch.Tensor  # (C, D) label points
    global_centres: torch.Tensor  # (C, D)
    kept_means: torch.Tensor  # (C, D)
    gram: torch.Tensor  # (C, M, M)
    adjacency: torch.Tensor  # (C, M, M) bool
    centre_norms: torch.Tensor  # (C, M)
    simplices: list[tuple[torch.Tensor, ...]] = field(default_factory=list)  # (slots, cls, solve, offset, gram)

    @property
    def num_classes(self) -> int:
        return int(self.mask.shape[0])

    @property
    def max_points(self) -> int:
        return int(self.mask.shape[1])


def dense_space(t: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype = torch.float32) -> DenseSpace:
    """The dense view of the tensors ``t`` (computed in float64, kept in ``dtype`` on ``device``)."""
    pc, num_classes = t["point_class"], len(t["radius"])
    counts = torch.bincount(pc, minlength=num_classes)
    m, d = int(counts.max()), t["points"].shape[1]
    starts = torch.cumsum(counts, 0) - counts
    slot = pc * m + (torch.arange(len(pc)) - starts[pc])
    pts = torch.zeros(num_classes * m, d, dtype=torch.float64)
    pts[slot] = t["points"].double()
    mask = torch.zeros(num_classes * m, dtype=torch.bool)
    mask[slot] = t["kept"]
    mask = mask.view(num_classes, m)
    kept_pts = pts.view(num_classes, m, d) * mask[..., None]
    gram = kept_pts @ kept_pts.transpose(1, 2)
    adjacency = torch.zeros(num_classes * m, m, dtype=torch.bool)
    owners = torch.repeat_interleave(torch.arange(len(pc)), t["neighbour_indptr"].diff())
    adjacency[slot[owners], slot[t["neighbour_indices"]] % m] = True
    adjacency = adjacency.view(num_classes, m, m)
    adj = adjacency.double()
    centre_norms = torch.einsum("cum,cmn,cun->cu", adj, gram, adj).clamp(min=0).sqrt()
    return DenseSpace(
        points=pts.to(device, dtype),
        mask=mask.to(device),
        labels=t["points"][starts].to(device, dtype),
        global_centres=t["global_centres"].to(device, dtype),
        kept_means=(kept_pts.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)).to(device, dtype),
        gram=gram.to(device, dtype),
        adjacency=adjacency.to(device),
        centre_norms=centre_norms.to(device, dtype),
        simplices=_simplex_groups(t, slot, device, dtype),
    )


def _simplex_groups(t: dict[str, torch.Tensor], slot: torch.Tensor, device: torch.device, dtype: torch.dtype) -> list:
    """Per simplex size: vertex slots, class, and the KKT solve of the projection onto the simplex's affine hull."""
    groups = []
    sizes, starts = t["simplex_indptr"].diff(), t["simplex_indptr"][:-1]
    for k in sorted(set(sizes.tolist())):
        sel = torch.nonzero(sizes == k).flatten()
        v = t["simplex_vertices"][starts[sel][:, None] + torch.arange(k)[None, :]]
        x = t["points"][v].double()
        g = x @ x.transpose(1, 2)
        border = torch.zeros(len(sel), k + 1, k + 1, dtype=torch.float64)
        border[:, :k, :k] = g
        border[:, :k, k] = 1.0
        border[:, k, :k] = 1.0
        inv = torch.linalg.pinv(border)  # min ||v - λx||² subject to Σλ = 1
        groups.append(
            (
                slot[v].to(device),
                t["point_class"][v[:, 0]].to(device),
                inv[:, :k, :k].to(device, dtype),
                inv[:, :k, k].to(device, dtype),
                g.to(device, dtype),
            )
        )
    return groups


def _similarities(v: torch.Tensor, s: DenseSpace) -> torch.Tensor:
    sims = (v @ s.points.T).view(len(v), s.num_classes, s.max_points)
    return sims.masked_fill(~s.mask, _NEG)


def _local_center(v: torch.Tensor, s: DenseSpace) -> torch.Tensor:
    sims = _similarities(v, s)
    u = sims.argmax(-1, keepdim=True)
    cls = torch.arange(s.num_classes, device=v.device)[None, :, None]
    neighbours = s.adjacency[cls, u].squeeze(2)
    total = sims.masked_fill(~neighbours, 0.0).sum(-1)
    return total / s.centre_norms.gather(1, u.squeeze(-1).T).T.clamp(min=1e-12)


def _local_center_knn(v: torch.Tensor, s: DenseSpace, k: int) -> torch.Tensor:
    sims, idx = _similarities(v, s).topk(min(k, s.max_points), dim=-1)
    valid = torch.isfinite(sims)
    num = sims.masked_fill(~valid, 0.0).sum(-1)
    cls = torch.arange(s.num_classes, device=v.device)[None, :, None, None]
    g = s.gram[cls, idx[..., :, None], idx[..., None, :]]
    pair = (valid[..., :, None] & valid[..., None, :]).to(g.dtype)
    return num / (g * pair).sum((-1, -2)).clamp(min=1e-12).sqrt()


def _nearest_simplex(v: torch.Tensor, s: DenseSpace, tol: float = 1e-6) -> torch.Tensor:
    best = torch.full((len(v), s.num_classes), float("inf"), dtype=v.dtype, device=v.device)
    flat = v @ s.points.T
    for slots, cls, solve, offset, gram in s.simplices:
        sv = flat[:, slots]
        lam = torch.einsum("bsk,sjk->bsj", sv, solve) + offset
        quad = torch.einsum("bsj,sjk,bsk->bs", lam, gram, lam)
        d2 = (1.0 - 2.0 * (lam * sv).sum(-1) + quad).clamp(min=0.0)
        d2 = d2.masked_fill((lam < -tol).any(-1), float("inf"))  # outside: a face of the simplex covers it
        best = best.scatter_reduce(1, cls.expand(len(v), -1), d2, reduce="amin")
    return 1.0 - 0.5 * best


def space_scores(v: torch.Tensor, s: DenseSpace, metric: str, k: int = 3) -> torch.Tensor:
    """Point-to-space scores ``(B, C)`` of unit image vectors ``v`` (higher is closer)."""
    v = v.to(s.points.dtype)
    if metric == "label":
        return v @ s.labels.T
    if metric == "global_center":
        return v @ s.global_centres.T
    if metric == "mean_similarity":
        return v @ s.kept_means.T
    if metric == "nearest_point":
        return _similarities(v, s).amax(-1)
    if metric == "local_center":
        return _local_center(v, s)
    if metric == "local_center_knn":
        return _local_center_knn(v, s, k)
    if metric == "nearest_simplex":
        return _nearest_simplex(v, s)
    raise ValueError(f"Unknown metric {metric!r}; use one of {', '.join(METRICS)}.")


# -------------------------------------------------------------------------------------------------- model
def _hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    names = ("cache_dir", "force_download", "local_files_only", "token", "revision", "proxies")
    return {k: kwargs[k] for k in names if kwargs.get(k) is not None}


def _read_space(source: str, hub: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The space's config and tensors, the tensor file checked against the hash the config records."""
    with open(cached_file(source, SPACE_CONFIG, **hub), encoding="utf-8") as f:
        config = json.load(f)
    if config.get("format_version") != FORMAT_VERSION:
        raise SpaceLoadError(
            f"{source}: {SPACE_CONFIG} has format_version {config.get('format_version')!r}; this s3_pipeline.py reads "
            f"version {FORMAT_VERSION}. Save or push the space again with a current s3-hf."
        )
    with open(cached_file(source, SPACE_TENSORS, **hub), "rb") as f:
        data = f.read()
    expected = config.get("tensors_sha256")
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise SpaceLoadError(f"{source}: {SPACE_TENSORS} does not match the hash in {SPACE_CONFIG}; download it again.")
    return config, load_tensors(data)


def _base_location(source: str, config: S3SpaceConfig, space: dict, kwargs: dict) -> tuple[str, dict[str, Any]]:
    """Where to load the base model from, and how: the caller's ``base_model`` (``model_kwargs``), the bundle inside
    the space, or the id and revision the space records."""
    hub = _hub_kwargs(kwargs)
    override = kwargs.get("base_model")
    if override is None and config.bundled:
        return source, {**hub, "subfolder": BUNDLE_FOLDER}
    base = override or config.base_model or space.get("base_model")
    revision = kwargs.get("base_model_revision")
    if override is None and revision is None:
        revision = config.base_model_revision or space.get("base_model_revision")
    if not base or base == "unknown":
        raise SpaceLoadError(
            f"The synonym space {source} records no base model. Pass model_kwargs={{'base_model': '<Hub id or "
            "folder>'}} to name the checkpoint it was built with."
        )
    hub.pop("revision", None)
    hub.pop("force_download", None)
    return base, {**hub, "revision": revision}


def _load_base(base: str, where: dict[str, Any], dtype: Any, source: str, family: str | None) -> tuple[Any, Any]:
    """The base dual encoder (float32 unless a dtype is asked for) and its image processor, or a clear error."""
    if family == "open_clip":
        raise SpaceLoadError(
            f"The synonym space {source} was built with the open_clip model {base!r}, which transformers cannot load; "
            "use it with s3-hf (pip install s3-hf[openclip])."
        )
    dtype = torch.float32 if dtype in (None, "auto") else dtype
    try:
        model = AutoModelForZeroShotImageClassification.from_pretrained(
            base, dtype=dtype, trust_remote_code=False, **where
        )
        processor = AutoImageProcessor.from_pretrained(base, trust_remote_code=False, **where)
    except (OSError, ValueError) as err:
        revision = where.get("revision")
        at = f" at revision {revision}" if revision else ""
        raise SpaceLoadError(
            f"The synonym space {source} was built with the model {base!r}{at}, which cannot be loaded here "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). Download it (or run online), "
            "or pass model_kwargs={'base_model': '<Hub id or folder of that checkpoint>'}."
        ) from err
    return model.eval(), processor


class S3SpaceModel(_PreTrainedModel):
    """A synonym space on its base dual encoder: image inputs -> logits per class (``forward``).

    Loaded with ``from_pretrained`` (what ``AutoModel`` and ``pipeline`` call), which reads the space's files and
    loads the base model; there are no weights of its own.
    """

    config_class = S3SpaceConfig
    base_model_prefix = "dual_encoder"
    main_input_name = "pixel_values"

    def __init__(self, config: S3SpaceConfig) -> None:
        super().__init__(config)
        self.post_init()
        self.space_config: dict[str, Any] = {}
        self.space_tensors: dict[str, torch.Tensor] = {}
        self.image_processor: Any = None
        self._dense: dict[str, DenseSpace] = {}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:
        """The space at ``pretrained_model_name_or_path`` (a Hub id or folder) on its base model.

        Args:
            pretrained_model_name_or_path: the space's Hub id or folder.
            args: unused (the signature of ``PreTrainedModel.from_pretrained``).
            kwargs: ``config``, the Hub options (``revision``, ``cache_dir``, ``token``, ``local_files_only``),
                ``dtype``, and ``base_model`` / ``base_model_revision`` to load the base model from elsewhere.
        """
        source = str(pretrained_model_name_or_path)
        hub = _hub_kwargs(kwargs)
        config = kwargs.get("config")
        if not isinstance(config, S3SpaceConfig):
            config = S3SpaceConfig.from_pretrained(source, **hub)
        space, tensors = _read_space(source, hub)
        base, where = _base_location(source, config, space, kwargs)
        encoder, processor = _load_base(base, where, kwargs.get("dtype"), source, space.get("model_family"))
        dim = int(tensors["points"].shape[1])
        probe = getattr(encoder.config, "projection_dim", None)
        if probe is not None and int(probe) != dim:
            raise SpaceLoadError(
                f"The synonym space {source} holds {dim}-d embeddings but {base!r} produces {probe}-d ones: it was "
                "built with another model. Pass the right base_model in model_kwargs."
            )
        model = cls(config)
        model.dual_encoder = encoder
        model.image_processor = processor
        model.space_config = space
        model.space_tensors = tensors
        return model.eval()

    @property
    def labels(self) -> list[str]:
        return list(self.space_config["class_names"])

    @property
    def family(self) -> str:
        return str(getattr(self.dual_encoder.config, "model_type", "") or "clip")

    @property
    def scoring(self) -> str:
        """How logits become scores: a per-class sigmoid (SigLIP families) or a softmax over classes."""
        return "sigmoid" if "siglip" in self.family else "softmax"

    def logit_scale_and_bias(self) -> tuple[float, float]:
        """``τ`` (``exp(logit_scale)``, or ``1 / temperature``) and the logit bias ``b`` of the base model."""
        enc = self.dual_encoder
        if self.family in TEMPERATURE_FAMILIES:
            scale = float(1.0 / enc.temperature.detach().float())
        else:
            scale = float(enc.logit_scale.detach().float().exp())
        bias = getattr(enc, "logit_bias", None)
        return scale, 0.0 if bias is None else float(bias.detach().float().reshape(-1)[0])

    def dense(self, device: torch.device) -> DenseSpace:
        """The dense scoring view on ``device``, built once."""
        key = str(device)
        if key not in self._dense:
            self._dense[key] = dense_space(self.space_tensors, device)
        return self._dense[key]

    @torch.inference_mode()
    def image_embeddings(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Preprocessed image inputs -> ``(B, D)`` unit image embeddings."""
        enc = self.dual_encoder
        args = {
            k: v.to(device=enc.device, dtype=enc.dtype) if v.is_floating_point() else v.to(enc.device)
            for k, v in inputs.items()
        }
        out = enc.get_image_features(**args)
        return F.normalize((out if isinstance(out, torch.Tensor) else out.pooler_output).float(), dim=-1)

    def forward(
        self,
        metric: str | None = None,
        knn_k: int | None = None,
        classes: list[int] | None = None,
        **inputs: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Logits ``τ·s_c(v) + b`` ``(B, C)`` of the images ``inputs`` for ``classes`` (default: all)."""
        v = self.image_embeddings(inputs)
        metric = metric or self.space_config.get("metric", "local_center")
        k = knn_k or int(self.space_config.get("knn_k", 3))
        s = space_scores(v, self.dense(v.device), metric, k)
        if classes is not None:
            s = s.index_select(1, torch.tensor(classes, device=v.device))
        scale, bias = self.logit_scale_and_bias()
        return {"logits": scale * s.float() + bias}


# ----------------------------------------------------------------------------------------------- pipeline
def _normalise(text: str) -> str:
    """A label as s3-hf compares labels: NFC, invisible formatting characters dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFC", str(text))
    if not text.isascii():
        text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return re.sub(r"\s+", " ", text).strip()


def to_rgb(image: Image.Image) -> Image.Image:
    """Upright 8-bit RGB as s3-hf reads images: EXIF orientation applied, 16/32-bit greyscale rescaled,
    transparency composited on white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = torch.tensor(list(image.getdata()), dtype=torch.float64)
        top = 65535.0 if image.mode.startswith("I;16") or float(arr.max()) > 255 else 255.0
        arr = (arr / top * 255.0 + 0.5).clamp(0, 255).to(torch.uint8)
        image = Image.frombytes("L", image.size, bytes(arr.tolist()))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("RGB")


def read_image(image: Any, timeout: float | None = None) -> Image.Image:
    """A path, URL, base64 string or PIL image as an upright RGB PIL image."""
    if isinstance(image, Image.Image):
        image.load()
        return to_rgb(image)
    if isinstance(image, str | os.PathLike) and os.path.isfile(image):
        with Image.open(image) as im:
            im.load()
            return to_rgb(im)
    from transformers.image_utils import load_image

    return to_rgb(load_image(image, timeout=timeout))


class S3SpacePipeline(Pipeline):
    """Zero-shot image classification with a saved S^3 synonym space: per image, ``{"score", "label"}`` for each
    class of the space, best first (as s3-hf's ``s3-zero-shot-classification`` and transformers'
    ``zero-shot-image-classification`` return)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(
        self,
        top_k: int | None = None,
        metric: str | None = None,
        knn_k: int | None = None,
        candidate_labels: list[str] | None = None,
        timeout: float | None = None,
        **unsupported: Any,
    ) -> tuple[dict, dict, dict]:
        if unsupported:
            raise ValueError(
                f"This space's pipeline does not take {', '.join(sorted(unsupported))}: it takes top_k, metric, "
                "knn_k, candidate_labels and timeout. Synonyms, templates and few-shot support need s3-hf."
            )
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}.")
        if metric is not None and metric not in METRICS:
            raise ValueError(f"Unknown metric {metric!r}; use one of {', '.join(METRICS)}.")
        if knn_k is not None and (isinstance(knn_k, bool) or not isinstance(knn_k, int) or knn_k < 1):
            raise ValueError(f"knn_k must be a positive integer, got {knn_k!r}.")
        classes = None if candidate_labels is None else self._classes(candidate_labels)
        preprocess = {} if timeout is None else {"timeout": timeout}
        return preprocess, {"metric": metric, "knn_k": knn_k, "classes": classes}, {"top_k": top_k, "classes": classes}

    def _classes(self, candidate_labels: Any) -> list[int]:
        if isinstance(candidate_labels, str):
            candidate_labels = [candidate_labels]
        position = {_normalise(lab): i for i, lab in enumerate(self.model.labels)}
        wanted = [_normalise(lab) for lab in candidate_labels]
        missing = [lab for lab in wanted if lab not in position]
        if missing or not wanted:
            raise ValueError(
                f"Labels {missing[:10]} are not classes of the synonym space (e.g. {self.model.labels[:5]}). "
                "Drop them, or build a space that includes them with s3-hf."
            )
        return [position[lab] for lab in wanted]

    def preprocess(self, image: Any, timeout: float | None = None) -> dict[str, torch.Tensor]:
        picture = read_image(image, timeout)
        out = self.model.image_processor(images=[picture], return_tensors="pt", input_data_format="channels_last")
        return {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in out.items() if torch.is_tensor(v)}

    def _forward(
        self,
        model_inputs: dict[str, torch.Tensor],
        metric: str | None = None,
        knn_k: int | None = None,
        classes: list[int] | None = None,
    ) -> dict[str, torch.Tensor]:
        return self.model(metric=metric, knn_k=knn_k, classes=classes, **model_inputs)

    def postprocess(
        self, model_outputs: dict[str, torch.Tensor], top_k: int | None = None, classes: list[int] | None = None
    ) -> list[dict[str, Any]]:
        logits = model_outputs["logits"][0].float()
        probs = logits.sigmoid() if self.model.scoring == "sigmoid" else logits.softmax(-1)
        order = torch.argsort(probs, descending=True, stable=True)[: top_k or probs.shape[-1]].tolist()
        scores, labels = probs.tolist(), self.model.labels
        index = classes if classes is not None else list(range(len(labels)))
        return [{"score": scores[j], "label": labels[index[j]]} for j in order]
