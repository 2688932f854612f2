"""What the app shows of a classification: the per-class table and the class spaces projected in 2-D."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from s3_hf.space.scoring import centre_members, nearest_match

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from s3_hf.engine import Prediction
    from s3_hf.space.artifact import SynonymSpace


def _new_figure(width: float, height: float) -> Figure:
    """A figure outside pyplot's registry: nothing holds it once the response is sent (pyplot's figures stay open
    until closed, one more per request)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def detail_rows(space: SynonymSpace, ranked: list[Prediction], v: torch.Tensor) -> list[list[Any]]:
    """Per ranked class (with details): its score, the concept the image matched, the centre it was scored against,
    and its kept and pruned concepts, each with its similarity to the image ``v`` (``(D,)``)."""
    state = space.scoring_state(v.device)
    sims = state.concept_similarities(v[None].to(state.points.dtype))[0]  # (C, M), kept and pruned points

    def with_sims(c: int, texts: list[str]) -> str:
        concepts = space.concepts(c)
        return ", ".join(f"{x} ({float(sims[c, concepts.index(x)]):.2f})" for x in texts) or "–"

    rows = []
    for r in ranked:
        c = space.labels.index(r.label)
        d = r.details or {}
        centre = ", ".join(d["centre"])
        rows.append(
            [
                r.label,
                round(r.score, 4),
                d["matched_concept"],
                centre,
                with_sims(c, d["kept"]),
                with_sims(c, d["dropped"]),
            ]
        )
    return rows


def _draw_class(ax: Axes, space: SynonymSpace, c: int, xy: Any, where: dict[int, int], colour: Any) -> list[int]:
    """One class's concepts (``where``: each of its points -> its row of ``xy``), kept (dots) and pruned (crosses),
    with the edges of its complex; returns its points."""
    t = space.tensors
    own = list(where)
    start = own[0]
    for p in own:  # 1-skeleton edges
        for q in t.neighbour_indices[t.neighbour_indptr[p] : t.neighbour_indptr[p + 1]].tolist():
            if q > p:
                ax.plot(*xy[[where[p], where[q]]].T, color=colour, lw=0.8, alpha=0.6)
    kept = [where[p] for p in own if bool(t.kept[p])]
    dropped = [where[p] for p in own if not bool(t.kept[p])]
    ax.scatter(*xy[kept].T, color=colour, s=30, label=space.labels[c])
    if dropped:
        ax.scatter(*xy[dropped].T, color=colour, marker="x", s=40)
    for p in own:
        ax.annotate(space.concepts(c)[p - start], xy[where[p]], fontsize=7, alpha=0.8)
    return own


def projection_figure(space: SynonymSpace, classes: list[int], v: torch.Tensor) -> Figure:
    """The class spaces projected on their first two principal axes, with the image and the centre it matched."""
    t = space.tensors
    state = space.scoring_state(v.device)
    members = centre_members(v[None], state, space.config.metric)[0]
    matched = nearest_match(v[None], state)[0]
    idx = torch.cat([torch.nonzero(t.point_class == c).flatten() for c in classes])
    pts = torch.cat([t.points[idx], v[None].cpu()])
    mean = pts.mean(0, keepdim=True)
    _, _, basis = torch.linalg.svd(pts - mean, full_matrices=False)
    xy = ((pts - mean) @ basis[:2].T).numpy()
    where = {int(p): i for i, p in enumerate(idx)}
    import matplotlib

    fig = _new_figure(6.5, 5)
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["tab10"]
    for k, c in enumerate(classes):
        own = _draw_class(ax, space, c, xy, {p: where[p] for p in where if int(t.point_class[p]) == c}, colours(k % 10))
        centre_pts = [own[0] + j for j in torch.nonzero(members[c]).flatten().tolist()]
        if centre_pts and k == 0:
            cxy = xy[[where[p] for p in centre_pts]].mean(0)
            ax.scatter(
                *cxy, marker="D", s=70, color=colours(k % 10), edgecolor="black", zorder=5, label="centre matched"
            )
            ax.plot(*xy[[where[own[0] + int(matched[c])], -1]].T, ls=":", color="black", lw=1)
    ax.scatter(*xy[-1], marker="*", s=220, color="gold", edgecolor="black", zorder=6, label="image")
    ax.set_title("Class spaces in 2-D: x = pruned, lines = edges of the complex", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


__all__ = ["detail_rows", "projection_figure"]
