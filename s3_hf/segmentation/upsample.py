"""Per-pixel logits taken from the working resolution to an image's full size with bounded memory: a chunk of
classes at a time, with the per-pixel top class and softmax denominator accumulated in one pass."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

#: Most full-resolution logits (elements) held at once: a 12 MP photo at 150 classes would need 7 GB in float32,
#: so the classes are upsampled a chunk at a time (about 256 MB each).
MAX_UPSAMPLED = 1 << 26


class FullSize:
    """Logits ``(C, h, w)`` bilinearly upsampled to ``(height, width)``, a chunk of classes at a time (all of them
    at once when they fit in :data:`MAX_UPSAMPLED`; interpolation is per class, so the chunks change no value)."""

    def __init__(self, logits: torch.Tensor, height: int, width: int, max_elements: int | None = None) -> None:
        self.logits, self.size = logits.float(), (height, width)
        per = max(1, (max_elements or MAX_UPSAMPLED) // (height * width))
        self.ranges = [(a, min(a + per, len(logits))) for a in range(0, len(logits), per)]

    def _up(self, part: torch.Tensor) -> torch.Tensor:
        if tuple(part.shape[-2:]) == self.size:
            return part
        return F.interpolate(part[None], size=self.size, mode="bilinear", align_corners=False)[0]

    def chunks(self) -> Iterator[tuple[int, torch.Tensor]]:
        """``(first class, (c, H, W) logits)`` per chunk."""
        for a, b in self.ranges:
            yield a, self._up(self.logits[a:b])

    def one(self, c: int) -> torch.Tensor:
        """``(H, W)`` logits of class ``c`` alone."""
        return self._up(self.logits[c : c + 1])[0]

    def top(self, with_lse: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One pass over the classes: per pixel the top logit, its class (the first on ties, as ``argmax`` over all
        classes) and, ``with_lse``, the log of the softmax denominator (accumulated online, rescaled as the top
        grows)."""
        best = index = total = None
        for a, chunk in self.chunks():
            for k, v in enumerate(chunk):  # class by class: a reduction over dim 0 of a large map is slow on CPUs
                if best is None:
                    best, index = v.clone(), torch.full(v.shape, a + k, dtype=torch.long)
                    total = torch.ones_like(v) if with_lse else None
                    continue
                index.masked_fill_(v > best, a + k)  # strictly greater: the first class keeps a tie
                new = torch.maximum(best, v)
                if with_lse:
                    total = total * (best - new).exp_() + (v - new).exp_()
                best = new
        return best, index, (best + total.log()) if with_lse else None


__all__ = ["MAX_UPSAMPLED", "FullSize"]
