"""One bounded per-class cache of TS^3 and TDA: at most ``size`` items per class, the lowest-entropy ones kept.

Each class's items stay sorted by (entropy, arrival index). A newcomer joins while its class has room; when full,
it replaces the last item (the largest entropy, the latest arrival among equals) only if its entropy is strictly
smaller: TDA's rule, with ties broken by arrival so the result never depends on anything but the stream.
"""

from __future__ import annotations

import bisect

import torch

from s3_hf.errors import StreamStateError


class BoundedCache:
    """Keys ``(C, S, D)``, entropies ``(C, S)`` (``inf`` when empty), arrival indices ``(C, S)`` (``-1`` when
    empty) and, for a negative cache, class masks ``(C, S, C)``. Filled slots come first in each class's row."""

    def __init__(self, num_classes: int, size: int, dim: int, with_masks: bool = False) -> None:
        self.num_classes, self.size, self.dim = num_classes, size, dim
        self.keys = torch.zeros(num_classes, size, dim)
        self.entropy = torch.full((num_classes, size), float("inf"))
        self.arrival = torch.full((num_classes, size), -1, dtype=torch.int64)
        self.masks = torch.zeros(num_classes, size, num_classes, dtype=torch.bool) if with_masks else None
        self.valid = torch.zeros(num_classes * size)
        self.order: list[list[tuple[float, int]]] = [[] for _ in range(num_classes)]
        self.items = 0

    def insert(self, c: int, key: torch.Tensor, h: float, i: int, mask: torch.Tensor | None = None) -> bool:
        """Offer item ``(key, h, i)`` (and its class ``mask``) to class ``c``; whether it was kept."""
        order = self.order[c]
        if self.size == 0:
            return False
        if len(order) == self.size:
            if not h < order[-1][0]:
                return False
            order.pop()
            self.items -= 1
        n = len(order)
        pos = bisect.bisect_right(order, (h, i))
        rows = [self.keys, self.entropy, self.arrival] + ([self.masks] if self.masks is not None else [])
        if pos < n:
            for t in rows:
                t[c, pos + 1 : n + 1] = t[c, pos:n].clone()
        self.keys[c, pos] = key
        self.entropy[c, pos] = h
        self.arrival[c, pos] = i
        if self.masks is not None and mask is not None:
            self.masks[c, pos] = mask
        order.insert(pos, (h, i))
        self.valid[c * self.size + n] = 1.0
        self.items += 1
        return True

    def kernel(self, v: torch.Tensor, beta: float) -> torch.Tensor:
        """``exp(-beta (1 - v·k))`` for every slot, ``(C * S,)``, zero where a slot is empty."""
        affinity = self.keys.view(-1, self.dim) @ v
        return torch.exp(-beta * (1.0 - affinity)) * self.valid

    def class_term(self, v: torch.Tensor, beta: float) -> torch.Tensor:
        """Positive term: per class, the sum of the kernel over its own items, ``(C,)``."""
        return self.kernel(v, beta).view(self.num_classes, self.size).sum(1)

    def mask_term(self, v: torch.Tensor, beta: float) -> torch.Tensor:
        """Negative term: per class ``c``, the sum of the kernel over the items whose mask marks ``c``, ``(C,)``."""
        assert self.masks is not None
        filled = torch.nonzero(self.valid).flatten()
        weights = self.kernel(v, beta)[filled]
        return weights @ self.masks.view(-1, self.num_classes)[filled].to(weights.dtype)

    def sizes(self) -> list[int]:
        """Items held per class."""
        return [len(o) for o in self.order]

    @classmethod
    def from_tensors(
        cls,
        keys: torch.Tensor,
        entropy: torch.Tensor,
        arrival: torch.Tensor,
        masks: torch.Tensor | None,
        n_seen: int,
        name: str,
    ) -> BoundedCache:
        """A cache rebuilt from saved tensors, after checking they describe one this module could have built; a
        :class:`~s3_hf.errors.StreamStateError` otherwise."""
        num_classes, size, dim = keys.shape
        out = cls(num_classes, size, dim, with_masks=masks is not None)
        filled = arrival >= 0
        if not torch.isfinite(keys).all() or torch.isnan(entropy).any():
            raise StreamStateError(f"The saved {name} cache holds non-finite values.")
        if (filled[:, 1:] & ~filled[:, :-1]).any() or (arrival >= n_seen).any():
            raise StreamStateError(f"The saved {name} cache has gaps or arrival indices past the stream's length.")
        if not (torch.isfinite(entropy) == filled).all():
            raise StreamStateError(f"The saved {name} cache's entropies and arrival indices disagree.")
        for c in range(num_classes):
            n = int(filled[c].sum())
            order = list(zip(entropy[c, :n].tolist(), arrival[c, :n].tolist(), strict=True))
            if order != sorted(order) or len({i for _, i in order}) != n:
                raise StreamStateError(f"The saved {name} cache of class {c} is not sorted by (entropy, arrival).")
            out.order[c] = order
            out.valid[c * size : c * size + n] = 1.0
            out.items += n
        out.keys.copy_(keys)
        out.entropy.copy_(entropy)
        out.arrival.copy_(arrival)
        if masks is not None and out.masks is not None:
            out.masks.copy_(masks & filled[..., None])
        return out


__all__ = ["BoundedCache"]
