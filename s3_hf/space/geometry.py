"""Points -> synonym-space geometry (see the README, section Method). Pure tensors and gudhi, no model.

For every class: H0 persistence of the Vietoris-Rips filtration of its points, the radius rule, the kept
(compact) component, the Vietoris-Rips complex on it, vertex neighbourhoods and centres. Results are
flat tensors over all points of all classes, with CSR indices for neighbourhoods and simplices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gudhi
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from s3_hf.options import SpaceParams


@dataclass
class ClassGeometry:
    """One class's space, in indices local to the class (0 is the label)."""

    radius: float
    deaths: list[float]
    kept: np.ndarray  # (n,) bool
    simplices: list[tuple[int, ...]]  # over kept vertices, every face included, sorted


@dataclass
class SpaceTensors:
    """All classes' spaces as flat tensors. ``point_class`` is sorted; each class starts with its label."""

    points: torch.Tensor  # (P, D) float32, unit
    point_class: torch.Tensor  # (P,) int64
    kept: torch.Tensor  # (P,) bool
    radius: torch.Tensor  # (C,) float64
    global_centres: torch.Tensor  # (C, D) float32, unit
    neighbour_indptr: torch.Tensor  # (P + 1,) int64
    neighbour_indices: torch.Tensor  # (nnz,) int64, global point indices
    simplex_indptr: torch.Tensor  # (S + 1,) int64
    simplex_vertices: torch.Tensor  # (sum of simplex sizes,) int64, global point indices

    @property
    def num_classes(self) -> int:
        return int(self.radius.shape[0])

    @property
    def local_centres(self) -> torch.Tensor:
        """``(P, D)`` local centre ``n(mean of N[u])`` of each point (zero for dropped ones), computed on demand:
        scoring uses the equivalent similarity form and never needs these vectors."""
        return local_centres(self.points, self.neighbour_indptr, self.neighbour_indices)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def chordal_distances(points: np.ndarray) -> np.ndarray:
    """Pairwise ``||u - w||`` in float64, exactly symmetric with a zero diagonal."""
    p = np.asarray(points, dtype=np.float64)
    sq = (p * p).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (p @ p.T), 0.0)
    d = np.sqrt(d2)
    d = np.minimum(d, d.T)
    np.fill_diagonal(d, 0.0)
    return d


def death_times(dist: np.ndarray) -> list[float]:
    """Finite H0 death times of the Vietoris-Rips filtration (single-linkage merge heights), ascending."""
    if len(dist) < 2:
        return []
    st = gudhi.RipsComplex(distance_matrix=dist).create_simplex_tree(max_dimension=1)
    st.compute_persistence()
    deaths = st.persistence_intervals_in_dimension(0)[:, 1]
    return sorted(float(x) for x in deaths if math.isfinite(x))


def choose_radius(deaths: list[float], n: int, params: SpaceParams) -> float:
    """The class radius ``ε_c`` for the rule in ``params`` (see the README, section Method)."""
    full = deaths[-1] if deaths else 0.0
    fixed = params.radius not in (None, "auto")
    if params.radius is None or n < params.min_points:
        # Too few points to call any of them an outlier: keep all, connected.
        return max(full, float(params.radius)) if fixed else full
    if fixed:
        return float(params.radius)
    d = np.asarray(deaths)
    if len(d) < 2:
        return full
    # Zero death times (coincident points) carry no scale information: a jump from 0 is not a gap.
    ratios = np.where(d[:-1] > 1e-12, d[1:] / np.maximum(d[:-1], 1e-300), 0.0)
    k = int(np.argmax(ratios))
    return float(d[k]) if ratios[k] > params.gap_ratio else full


def kept_component(dist: np.ndarray, radius: float, anchor: int = 0) -> np.ndarray:
    """Mask of the largest connected component at ``radius``; ties go to ``anchor``'s, then the lowest index."""
    n = len(dist)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(dist <= radius, k=1)), strict=True):
        ri, rj = find(int(i)), find(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(n)])
    sizes = np.bincount(roots, minlength=n)
    best = sizes.max()
    candidates = [r for r in range(n) if sizes[r] == best]
    root = roots[anchor] if roots[anchor] in candidates else min(candidates)
    return roots == root


def vr_simplices(dist: np.ndarray, radius: float, max_dim: int) -> list[tuple[int, ...]]:
    """All simplices of ``VR_radius`` up to dimension ``max_dim``, sorted by (size, vertices)."""
    if len(dist) == 0:
        return []
    st = gudhi.RipsComplex(distance_matrix=dist, max_edge_length=radius).create_simplex_tree(max_dimension=max_dim)
    return sorted((tuple(s) for s, _ in st.get_simplices()), key=lambda s: (len(s), s))


def class_geometry(points: np.ndarray, params: SpaceParams) -> ClassGeometry:
    """Geometry of one class from its ``(n, D)`` unit points; row 0 is the label."""
    dist = chordal_distances(points)
    deaths = death_times(dist)
    radius = choose_radius(deaths, len(points), params)
    kept = kept_component(dist, radius)
    idx = np.flatnonzero(kept)
    local = vr_simplices(dist[np.ix_(idx, idx)], radius, params.max_dim)
    simplices = [tuple(int(idx[v]) for v in s) for s in local]
    return ClassGeometry(radius=radius, deaths=deaths, kept=kept, simplices=simplices)


def local_centres(points: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``n(mean of N[u])`` for every point ``u`` (zero where ``N[u]`` is empty, i.e. dropped points)."""
    owners = torch.repeat_interleave(torch.arange(len(points)), indptr.diff())
    sums = torch.zeros_like(points).index_add_(0, owners, points[indices])
    return F.normalize(sums, dim=-1)


def _csr(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    indptr = torch.tensor([0, *np.cumsum([len(r) for r in rows]).tolist()], dtype=torch.int64)
    flat = [v for r in rows for v in r]
    return indptr, torch.tensor(flat, dtype=torch.int64)


def build_space(
    points: torch.Tensor, point_class: torch.Tensor, params: SpaceParams | None = None, progress: bool = False
) -> tuple[SpaceTensors, list[ClassGeometry]]:
    """Build every class's space from unit ``points`` grouped by the sorted ``point_class``."""
    params = params or SpaceParams()
    points = points.detach().float().cpu()
    point_class = point_class.to(torch.int64).cpu()
    num_classes = int(point_class.max()) + 1 if len(point_class) else 0
    counts = torch.bincount(point_class, minlength=num_classes)
    offsets = [0, *torch.cumsum(counts, 0).tolist()]
    geoms = [
        class_geometry(points[offsets[c] : offsets[c + 1]].double().numpy(), params)
        for c in tqdm(range(num_classes), desc="Building class spaces", disable=not progress)
    ]

    kept = torch.zeros(len(points), dtype=torch.bool)
    neighbours: list[list[int]] = [[] for _ in range(len(points))]
    simplices: list[list[int]] = []
    for c, g in enumerate(geoms):
        off = offsets[c]
        kept[off : off + len(g.kept)] = torch.from_numpy(g.kept)
        for s in g.simplices:
            simplices.append([off + v for v in s])
        for u in np.flatnonzero(g.kept):
            neighbours[off + int(u)].append(off + int(u))
        for s in g.simplices:
            if len(s) == 2:
                neighbours[off + s[0]].append(off + s[1])
                neighbours[off + s[1]].append(off + s[0])
    neighbours = [sorted(n) for n in neighbours]

    mask = kept.float()[:, None]
    sums = torch.zeros(num_classes, points.shape[1]).index_add_(0, point_class, points * mask)
    n_ptr, n_idx = _csr(neighbours)
    s_ptr, s_idx = _csr(simplices)
    tensors = SpaceTensors(
        points=points.contiguous(),
        point_class=point_class.contiguous(),
        kept=kept,
        radius=torch.tensor([g.radius for g in geoms], dtype=torch.float64),
        global_centres=F.normalize(sums, dim=-1),
        neighbour_indptr=n_ptr,
        neighbour_indices=n_idx,
        simplex_indptr=s_ptr,
        simplex_vertices=s_idx,
    )
    return tensors, geoms


__all__ = [
    "ClassGeometry",
    "SpaceTensors",
    "build_space",
    "choose_radius",
    "chordal_distances",
    "class_geometry",
    "death_times",
    "kept_component",
    "local_centres",
    "vr_simplices",
]
