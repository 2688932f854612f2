"""Model cards for synonym-space artifacts, rendered from the Jinja template beside this module
(``card_template.md``)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import ModelCard, ModelCardData

from s3_hf.io.hub import is_repo_id

if TYPE_CHECKING:
    from s3_hf.space.artifact import SynonymSpace
    from s3_hf.space.records import SpaceSummary

CARD_ROWS = 50
#: The license of what s3-hf writes (the project's own, Apache-2.0, as a Hub license id) unless the user names one.
DEFAULT_LICENSE = "apache-2.0"
#: How a space relates to its base model on the Hub (``base_model_relation``). Of the Hub's values (adapter, merge,
#: quantized, finetune) only "adapter" fits: the repo holds no copy of the model's weights, changed or not, only
#: small tensors that are used on top of the model's own embeddings, and it needs the model to run.
BASE_MODEL_RELATION = "adapter"


@dataclass(frozen=True)
class Paper:
    """A paper a card links to (its arXiv id, which the Hub's paper pages list repos by) and cites (BibTeX)."""

    arxiv: str
    title: str
    bibtex: str

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"

    @property
    def tag(self) -> str:
        return f"arxiv:{self.arxiv}"


S3_PAPER = Paper(
    "2412.04925",
    "S^3: Synonymous Semantic Space for Improving Zero-Shot Generalization of Vision-Language Models",
    """@article{yin2024s3,
  title   = {{$S^3$}: Synonymous Semantic Space for Improving Zero-Shot Generalization of Vision-Language Models},
  author  = {Yin, Xiaojie and Wang, Qilong and Cao, Bing and Hu, Qinghua},
  journal = {arXiv preprint arXiv:2412.04925},
  year    = {2024}
}""",
)
SSP_PAPER = Paper(
    "2407.16977",
    "Selective Vision-Language Subspace Projection for Few-shot CLIP",
    """@inproceedings{zhu2024ssp,
  title     = {Selective Vision-Language Subspace Projection for Few-shot {CLIP}},
  author    = {Zhu, Xingyu and Zhu, Beier and Tan, Yi and Wang, Shuo and Hao, Yanbin and Zhang, Hanwang},
  booktitle = {Proceedings of the 32nd ACM International Conference on Multimedia},
  pages     = {3848--3857},
  year      = {2024}
}""",
)


def template_path(name: str = "card_template.md") -> Path:
    """A card template: the files beside this module."""
    path = Path(__file__).resolve().parent / name
    if not path.is_file():
        raise FileNotFoundError(f"Model-card template {name} is missing from the s3-hf installation.")
    return path


_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")


def _md(text: str, code: bool = False) -> str:
    """``text`` as one Markdown table cell: line breaks become spaces, ``|`` is escaped, and ``\\`` too outside a
    code span (``code``), where Markdown shows it as written."""
    text = _LINE_BREAKS.sub(" ", text)
    return (text if code else text.replace("\\", "\\\\")).replace("|", "\\|")


def _cell(items: list[str], sep: str = ", ") -> str:
    return _md(sep.join(items)) or "–"


def hub_model_id(base: str) -> str | None:
    """``base`` as a Hub model id (``org/name``, open_clip's ``hf-hub:org/name`` too), or ``None`` for a local folder
    or anything else a Hub URL cannot be made of."""
    hub_id = base.removeprefix("hf-hub:")  # open_clip names its Hub checkpoints hf-hub:org/name
    if not is_repo_id(hub_id) or Path(hub_id).exists() or Path(base).exists():
        return None
    return hub_id


def _rows(summary: SpaceSummary) -> list[dict[str, str]]:
    """The card's class table: its first :data:`CARD_ROWS` classes, as Markdown cells."""
    return [
        {
            "label": _md(r.label),
            "kept": _cell(r.kept),
            "dropped": _cell([f"{d.text} ({d.reason})" for d in r.drops], "; "),
            "radius": f"{r.radius:.4f}",
        }
        for r in summary.per_class[:CARD_ROWS]
    ]


def render_card(space: SynonymSpace, repo_id: str | None = None, *, license: str | None = None) -> str:
    """The README.md of a synonym-space artifact: metadata (library, task, license, base model and its relation,
    the S^3 paper's arXiv id), how to use it with and without s3-hf, the space's figures and its classes, and how to
    cite the method.

    Args:
        space: the space.
        repo_id: the Hub repo the card is pushed to (named in the usage block).
        license: the license of the repo's files, a Hub license id (default :data:`DEFAULT_LICENSE`).
    """
    cfg = space.config
    summary = space.summary()
    base = cfg.base_model
    hub_id = hub_model_id(base)
    card_data = ModelCardData(
        library_name="s3-hf",
        pipeline_tag="zero-shot-image-classification",
        license=license or DEFAULT_LICENSE,
        base_model=hub_id,
        tags=["s3-hf", "synonym-space", "zero-shot-image-classification", cfg.model_family or "clip", S3_PAPER.tag],
    )
    if hub_id:  # the Hub relates the repo to its base model only when it names one
        card_data.base_model_relation = BASE_MODEL_RELATION
    removed = Counter(x.kind for rec in space.classes for x in rec.removed)
    sources = sorted({str(rec.source.get("name", "unknown")) for rec in space.classes})
    card = ModelCard.from_template(
        card_data,
        template_str=template_path().read_text(encoding="utf-8"),
        base_model=base,
        base_model_url=f"https://huggingface.co/{hub_id}" if hub_id else None,
        repo_id=repo_id or "path/to/this/space",
        num_classes=summary.classes,
        metric=cfg.metric,
        library_version=cfg.library_version,
        points=summary.points,
        kept=summary.kept,
        dropped=summary.dropped,
        removed=summary.removed,
        removed_kinds=", ".join(f"{n} {kind}" for kind, n in sorted(removed.items())),
        num_templates=len(cfg.templates),
        concept_format=_md(cfg.concept_format, code=True),
        radius_rule=cfg.space.radius,
        gap_ratio=cfg.space.gap_ratio,
        min_points=cfg.space.min_points,
        max_dim=cfg.space.max_dim,
        sources=_md(", ".join(sources)),
        rows=_rows(summary),
        truncated=summary.classes > CARD_ROWS,
        paper=S3_PAPER,
        relation=BASE_MODEL_RELATION if hub_id else None,
    )
    return str(card)


ADAPTER_BEGIN = "<!-- s3-hf: few-shot adapter -->"
ADAPTER_END = "<!-- s3-hf: end of few-shot adapter -->"
_CITATION = "\n## Citation\n"


def is_s3_card(text: str) -> bool:
    """Whether ``text`` is a model card s3-hf rendered (its front matter names the library)."""
    head = text[:4096]
    return head.startswith("---") and "library_name: s3-hf" in head


def with_adapter(
    card_text: str, mode: str, shots: Sequence[int], space_sha256: str | None, repo_id: str | None = None
) -> str:
    """``card_text`` (a space's card) with a section on the few-shot adapter saved beside the space, replacing the
    one an earlier save added; an SSP adapter (``mode`` ``"ssp"``) adds SSP's paper to the metadata and citations.

    Args:
        card_text: the space's model card.
        mode: the adapter's mode (``"ssp"`` or ``"cache"``).
        shots: its support images per class.
        space_sha256: the tensor hash of the space it was fitted on (``None``: not recorded).
        repo_id: the Hub repo the card is pushed to.
    """
    card = ModelCard(without_adapter(card_text))
    ssp = mode == "ssp"
    tags = list(card.data.tags or [])
    if ssp and SSP_PAPER.tag not in tags:
        card.data.tags = [*tags, SSP_PAPER.tag]
    where = repo_id or "path/to/this/space"
    what = (
        f"SSP (Selective Vision-Language Subspace Projection, [arXiv:{SSP_PAPER.arxiv}]({SSP_PAPER.url}))"
        if ssp
        else "the support-image cache (Tip-Adapter style, no subspace projection)"
    )
    lines = [
        ADAPTER_BEGIN,
        "## Few-shot adapter",
        "",
        f"This repo also holds a few-shot adapter (`ssp_config.json`, `ssp_state.safetensors`): {what}, fitted "
        f"without training on {sum(shots)} support images ({min(shots, default=0)}-{max(shots, default=0)} per "
        "class) and added to the zero-shot scores. "
        + (
            f"It records the space it was fitted on (tensor hash `{space_sha256[:12]}…`) and is refused with any "
            "other: refit it with `s3 fewshot` after rebuilding the space."
            if space_sha256
            else "It does not record the space it was fitted on: refit it with `s3 fewshot` so that it does."
        ),
        "",
        "```python",
        f'clf("photo.jpg", synonym_space="{where}", support="{where}")  # with s3-hf, as above',
        "```",
    ]
    if ssp:
        lines += ["", "Please cite SSP too:", "", "```bibtex", SSP_PAPER.bibtex, "```"]
    section = "\n".join([*lines, ADAPTER_END, ""])
    text = card.text
    at = text.find(_CITATION)
    card.text = text + "\n" + section if at < 0 else text[: at + 1] + section + text[at:]
    return str(card)


def without_adapter(card_text: str) -> str:
    """``card_text`` without the few-shot adapter section :func:`with_adapter` added (and SSP's tag)."""
    start, end = card_text.find(ADAPTER_BEGIN), card_text.find(ADAPTER_END)
    if start < 0 or end < start:
        return card_text
    text = card_text[:start] + card_text[end + len(ADAPTER_END) :].removeprefix("\n")
    card = ModelCard(text)
    if card.data.tags and SSP_PAPER.tag in card.data.tags:
        card.data.tags = [t for t in card.data.tags if t != SSP_PAPER.tag]
    return str(card)


__all__ = [
    "ADAPTER_BEGIN",
    "ADAPTER_END",
    "BASE_MODEL_RELATION",
    "CARD_ROWS",
    "DEFAULT_LICENSE",
    "S3_PAPER",
    "SSP_PAPER",
    "Paper",
    "hub_model_id",
    "is_s3_card",
    "render_card",
    "template_path",
    "with_adapter",
    "without_adapter",
]
