"""Model cards for synonym-space artifacts, rendered from the Jinja template beside this module
(``card_template.md``)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import ModelCard, ModelCardData

from s3_hf.io.hub import is_repo_id

if TYPE_CHECKING:
    from s3_hf.space.artifact import SynonymSpace

CARD_ROWS = 50


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


def render_card(space: SynonymSpace, repo_id: str | None = None) -> str:
    """The README.md of a synonym-space artifact."""
    cfg = space.config
    summary = space.summary()
    base = cfg.base_model
    hub_id = hub_model_id(base)
    card_data = ModelCardData(
        library_name="s3-hf",
        pipeline_tag="zero-shot-image-classification",
        base_model=hub_id,
        tags=["s3-hf", "synonym-space", "zero-shot-image-classification", cfg.model_family or "clip"],
    )
    rows = [
        {
            "label": _md(r.label),
            "kept": _cell(r.kept),
            "dropped": _cell([f"{d.text} ({d.reason})" for d in r.drops], "; "),
            "radius": f"{r.radius:.4f}",
        }
        for r in summary.per_class[:CARD_ROWS]
    ]
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
        rows=rows,
        truncated=summary.classes > CARD_ROWS,
    )
    return str(card)


__all__ = [
    "CARD_ROWS",
    "hub_model_id",
    "render_card",
    "template_path",
]
