"""(image vectors, space tensors) -> class scores. One function per metric, vectorised over images and classes.

All metrics read a :class:`ScoringState`, a dense (classes x max-points) view of a space derived once per
space and device. Scores are "higher is closer"; logits are ``exp(logit_scale) * score`` (see the README,
section Method).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import torch

from s3_hf import limits
from s3_hf.errors import SpaceTooLargeError
from s3_hf.options import DEFAULT_METRIC, METRIC_NAMES, check_knn_k, check_metric
from s3_hf.space.geometry import SpaceTensors

_NEG = float("-inf")


@dataclass
class SimplexGroup:
    """All simplices with ``k`` vertices, with what projecting onto their convex hulls needs."""

    slots: torch.Tensor  # (S, k) dense slot (class * max_points + j) of each vertex
    cls: torch.Tensor  # (S,) class of each simplex
    solve: torch.Tensor  # (S, k, k) maps vertex similarities to barycentric weights ...
    offset: torch.Tensor  # (S, k) ... plus this offset (affine-hull projection)
    gram: torch.Tensor  # (S, k, k) vertex Gram matrix


@dataclass
class ScoringState:
    """Dense, device-resident view of a :class:`SpaceTensors`, built once and reused for every image."""

    points: torch.Tensor  # (C*M, D); padded slots are zero
    mask: torch.Tensor  # (C, M) kept points
    labels: torch.Tensor  # (C, D) label points t_c0
    global_centres: torch.Tensor  # (C, D)
    kept_means: torch.Tensor  # (C, D) unnormalised mean of kept points
    gram: torch.Tensor  # (C, M, M)
    adjacency: torch.Tensor  # (C, M, M) bool, N[u] of each kept point (itself included)
    centre_norms: torch.Tensor  # (C, M) ||sum of t_w over N[u]||, so v·n(that sum) = (sum of v·t_w) / norm
    space: SpaceTensors = field(repr=False)
    slot: torch.Tensor = field(repr=False)  # (P,) dense slot of each flat point (CPU)

    @property
    def num_classes(self) -> int:
        return int(self.mask.shape[0])

    @property
    def max_points(self) -> int:
        return int(self.mask.shape[1])

    @classmethod
    def from_space(
        cls, space: SpaceTensors, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> ScoringState:
        check_state_size(space)
        pc = space.point_class
        num_classes = space.num_classes
        counts = torch.bincount(pc, minlength=num_classes)
        m = int(counts.max())
        starts = torch.cumsum(counts, 0) - counts
        slot = pc * m + (torch.arange(len(pc)) - starts[pc])
        d = space.points.shape[1]

        def dense(x: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(num_classes * m, d, dtype=torch.float64)
            out[slot] = x.double()
            return out

        pts = dense(space.points)
        mask = torch.zeros(num_classes * m, dtype=torch.bool)
        mask[slot] = space.kept
        mask = mask.view(num_classes, m)
        kept_pts = pts.view(num_classes, m, d) * mask[..., None]
        kept_means = kept_pts.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        gram = kept_pts @ kept_pts.transpose(1, 2)

        adjacency = torch.zeros(num_classes * m, m, dtype=torch.bool)
        owners = torch.repeat_interleave(torch.arange(len(pc)), space.neighbour_indptr.diff())
        adjacency[slot[owners], (slot[space.neighbour_indices] % m)] = True
        adjacency = adjacency.view(num_classes, m, m)
        adj = adjacency.double()
        centre_norms = torch.einsum("cum,cmn,cun->cu", adj, gram, adj).clamp(min=0).sqrt()

        return cls(
            points=pts.to(device, dtype),
            mask=mask.to(device),
            labels=space.points[starts].to(device, dtype),
            global_centres=space.global_centres.to(device, dtype),
            kept_means=kept_means.to(device, dtype),
            gram=gram.to(device, dtype),
            adjacency=adjacency.to(device),
            centre_norms=centre_norms.to(device, dtype),
            space=space,
            slot=slot,
        )

    @cached_property
    def simplex_groups(self) -> list[SimplexGroup]:
        """Per simplex size, what the exact projection needs; built on first use of ``nearest_simplex``."""
        space, slot = self.space, self.slot
        device, dtype = self.points.device, self.points.dtype
        groups = []
        sizes = space.simplex_indptr.diff()
        starts = space.simplex_indptr[:-1]
        for k in sorted(set(sizes.tolist())):
            sel = torch.nonzero(sizes == k).flatten()
            v = space.simplex_vertices[starts[sel][:, None] + torch.arange(k)[None, :]]  # (S, k) point indices
            x = space.points[v].double()  # (S, k, D)
            g = x @ x.transpose(1, 2)
            border = torch.zeros(len(sel), k + 1, k + 1, dtype=torch.float64)
            border[:, :k, :k] = g
            border[:, :k, k] = 1.0
            border[:, k, :k] = 1.0
            inv = torch.linalg.pinv(border)  # KKT system of min ||v - λx||² s.t. Σλ = 1
            groups.append(
                SimplexGroup(
                    slots=slot[v].to(device),
                    cls=space.point_class[v[:, 0]].to(device),
                    solve=inv[:, :k, :k].to(device, dtype),
                    offset=inv[:, :k, k].to(device, dtype),
                    gram=g.to(device, dtype),
                )
            )
        return groups

    def similarities(self, v: torch.Tensor) -> torch.Tensor:
        """``v · t_u`` for every slot, ``(B, C, M)``, with ``-inf`` where the slot holds no kept point."""
        sims = (v @ self.points.T).view(len(v), self.num_classes, self.max_points)
        return sims.masked_fill(~self.mask, _NEG)

    def concept_similarities(self, v: torch.Tensor) -> torch.Tensor:
        """``v · t_u`` for every point, kept or pruned, ``(B, C, M)``: slot ``m`` of class ``c`` is the class's
        ``m``-th concept with a point (as :meth:`~s3_hf.space.artifact.SynonymSpace.concepts` lists them); slots past
        a class's last point hold 0. What a face shows next to each concept; scoring uses :meth:`similarities`."""
        return (v @ self.points.T).view(len(v), self.num_classes, self.max_points)


def state_bytes(space: SpaceTensors) -> int:
    """Peak bytes :meth:`ScoringState.from_space` allocates for ``space``: its dense view pads every class to the
    largest one, so this grows as classes x largest class x (embedding size + largest class), not with the points."""
    counts = torch.bincount(space.point_class, minlength=space.num_classes)
    m = int(counts.max()) if len(counts) else 0
    cells = space.num_classes * m
    # float64 points and kept points, float32 copies; float64 Gram, adjacency as bool and float64, an einsum temp
    return cells * (20 * int(space.points.shape[1]) + 29 * m)


def check_state_size(space: SpaceTensors, name: str = "this space") -> None:
    """Raise :class:`SpaceTooLargeError` unless scoring with ``space`` fits the ``S3_MAX_SCORING_MB`` limit; checked
    before anything is allocated.

    Args:
        space: the space's tensors.
        name: how messages name the space (its folder or Hub id).
    """
    need = state_bytes(space)
    if need > limits.SCORING_STATE_MB.get() * 2**20:
        counts = torch.bincount(space.point_class, minlength=space.num_classes)
        raise SpaceTooLargeError(
            f"Scoring with {name} would take {need / 2**20:,.0f} MB: {space.num_classes} classes, "
            f"{len(space.point_class)} points, the largest class with {int(counts.max())} points (every class is "
            f"padded to the largest). {limits.SCORING_STATE_MB.hint()} Or rebuild the space with fewer concepts "
            "per class."
        )


def label(v: torch.Tensor, state: ScoringState, **_: object) -> torch.Tensor:
    """Vanilla CLIP: ``v · t_c0``."""
    return v @ state.labels.T


def global_center(v: torch.Tensor, state: ScoringState, **_: object) -> torch.Tensor:
    """``v · n(mean of the kept points)``."""
    return v @ state.global_centres.T


def nearest_point(v: torch.Tensor, state: ScoringState, **_: object) -> torch.Tensor:
    """``max over kept points u of v · t_u``."""
    return state.similarities(v).amax(-1)


def mean_similarity(v: torch.Tensor, state: ScoringState, **_: object) -> torch.Tensor:
    """``mean over kept points u of v · t_u`` (= ``v`` dotted with the unnormalised kept mean)."""
    return v @ state.kept_means.T


def nearest_match(v: torch.Tensor, state: ScoringState) -> torch.Tensor:
    """Index (within its class) of the kept point nearest to each image, ``(B, C)``."""
    return state.similarities(v).argmax(-1)


def local_center(v: torch.Tensor, state: ScoringState, **_: object) -> torch.Tensor:
    """Point-to-local-centre: ``v · n(mean of N[u*])`` with ``u*`` the nearest kept point.

    Computed from the similarities already at hand, ``(sum over N[u*] of v·t_w) / ||sum of t_w||``: no second
    pass over the points, which matters when few images are scored against many classes.
    """
    sims = state.similarities(v)
    u = sims.argmax(-1, keepdim=True)  # (B, C, 1)
    cls = torch.arange(state.num_classes, device=v.device)[None, :, None]
    neighbours = state.adjacency[cls, u].squeeze(2)  # (B, C, M) N[u*]
    total = sims.masked_fill(~neighbours, 0.0).sum(-1)
    return total / state.centre_norms.gather(1, u.squeeze(-1).T).T.clamp(min=1e-12)


def knn_members(v: torch.Tensor, state: ScoringState, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """The up-to-``k`` kept points nearest to each image: (similarities, indices), each ``(B, C, k')``."""
    check_knn_k(k)
    return state.similarities(v).topk(min(k, state.max_points), dim=-1)


def local_center_knn(v: torch.Tensor, state: ScoringState, k: int = 3, **_: object) -> torch.Tensor:
    """``v · n(mean of the k kept points nearest to v)``; a class with fewer kept points uses them all."""
    sims, idx = knn_members(v, state, k)
    valid = torch.isfinite(sims)
    num = sims.masked_fill(~valid, 0.0).sum(-1)
    cls = torch.arange(state.num_classes, device=v.device)[None, :, None, None]
    g = state.gram[cls, idx[..., :, None], idx[..., None, :]]  # (B, C, k', k')
    pair = (valid[..., :, None] & valid[..., None, :]).to(g.dtype)
    return num / (g * pair).sum((-1, -2)).clamp(min=1e-12).sqrt()


def simplex_distances(v: torch.Tensor, state: ScoringState, group: SimplexGroup, tol: float = 1e-6) -> torch.Tensor:
    """Squared distance from each image to each simplex's convex hull via its affine hull, ``(B, S)``.

    ``inf`` where the affine projection falls outside the simplex; that case is always covered by a face,
    which is itself a simplex of the complex, so the minimum over all simplices is the exact distance.
    """
    flat = v @ state.points.T  # (B, C*M)
    s = flat[:, group.slots]  # (B, S, k)
    lam = torch.einsum("bsk,sjk->bsj", s, group.solve) + group.offset
    quad = torch.einsum("bsj,sjk,bsk->bs", lam, group.gram, lam)
    d2 = (1.0 - 2.0 * (lam * s).sum(-1) + quad).clamp(min=0.0)
    return d2.masked_fill((lam < -tol).any(-1), float("inf"))


def nearest_simplex(v: torch.Tensor, state: ScoringState, **_: object) -> torch.Tensor:
    """``1 - ½ min over simplices σ of ||v - proj_σ(v)||²``, the exact distance to the realised complex."""
    best = torch.full((len(v), state.num_classes), float("inf"), dtype=v.dtype, device=v.device)
    for group in state.simplex_groups:
        d2 = simplex_distances(v, state, group)
        best = best.scatter_reduce(1, group.cls.expand(len(v), -1), d2, reduce="amin")
    return 1.0 - 0.5 * best


def _nearest_simplex_members(v: torch.Tensor, state: ScoringState) -> torch.Tensor:
    best = 1.0 - nearest_simplex(v, state)  # ½ min d² per class
    members = torch.zeros(len(v), state.num_classes * state.max_points, dtype=torch.bool, device=v.device)
    done = torch.zeros(len(v), state.num_classes, dtype=torch.bool, device=v.device)
    for group in state.simplex_groups:
        d2 = 0.5 * simplex_distances(v, state, group)
        for b in range(len(v)):  # explanation only: not on the scoring path
            hits = torch.nonzero((d2[b] <= best[b, group.cls] + 1e-12) & ~done[b, group.cls]).flatten()
            for s_idx in hits.tolist():
                c = int(group.cls[s_idx])
                if not done[b, c]:
                    members[b, group.slots[s_idx]] = True
                    done[b, c] = True
    return members.view(len(v), state.num_classes, state.max_points)


def centre_members(v: torch.Tensor, state: ScoringState, metric: str = DEFAULT_METRIC, k: int = 3) -> torch.Tensor:
    """Which concepts make up the centre (or nearest part of the space) each image was scored against.

    Boolean ``(B, C, M)`` over the class's concepts: the label for ``label``, all kept points for
    ``global_center``/``mean_similarity``, the nearest point, its neighbourhood ``N[u*]`` for
    ``local_center``, the k nearest for ``local_center_knn`` and the nearest simplex for ``nearest_simplex``.
    """
    check_metric(metric)
    v = v.to(state.points.dtype)
    b, c, m = len(v), state.num_classes, state.max_points
    out = torch.zeros(b, c, m, dtype=torch.bool, device=v.device)
    if metric == "label":
        out[..., 0] = True
    elif metric in ("global_center", "mean_similarity"):
        out[:] = state.mask
    elif metric == "nearest_point":
        out.scatter_(-1, nearest_match(v, state)[..., None], True)
    elif metric == "local_center":
        u = nearest_match(v, state)
        out = state.adjacency[torch.arange(c, device=v.device)[None, :], u]
    elif metric == "local_center_knn":
        sims, idx = knn_members(v, state, k)
        out.scatter_(-1, idx, torch.isfinite(sims))
    else:
        out = _nearest_simplex_members(v, state)
    return out


METRICS: dict[str, Callable[..., torch.Tensor]] = {
    "label": label,
    "global_center": global_center,
    "nearest_point": nearest_point,
    "mean_similarity": mean_similarity,
    "nearest_simplex": nearest_simplex,
    "local_center": local_center,
    "local_center_knn": local_center_knn,
}


assert tuple(METRICS) == METRIC_NAMES, "options.METRIC_NAMES must list the metrics in METRICS"


def score(v: torch.Tensor, state: ScoringState, metric: str = DEFAULT_METRIC, k: int = 3) -> torch.Tensor:
    """Scores ``(B, C)`` of unit image vectors ``v`` (``(B, D)``) against every class space."""
    return METRICS[check_metric(metric)](v.to(state.points.dtype), state, k=k)


__all__ = [
    "METRICS",
    "ScoringState",
    "SimplexGroup",
    "centre_members",
    "check_state_size",
    "global_center",
    "knn_members",
    "label",
    "local_center",
    "local_center_knn",
    "mean_similarity",
    "nearest_match",
    "nearest_point",
    "nearest_simplex",
    "score",
    "simplex_distances",
    "state_bytes",
]
