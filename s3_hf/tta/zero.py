"""ZERO-S^3, the stateless alternative to a stream: augmented views of one image, the confident ones vote.

ZERO (Farina et al., NeurIPS 2024; ``FarinaMatteo/zero``, ``ttas/zero.py``) scores 64 views of each image (the image
itself and 63 random resized crops, each flipped with probability 1/2), keeps the 30% of views whose softmax has the
lowest entropy, and lets each vote for its argmax (softmax at zero temperature). Ties between the most voted classes
go to the first of the remaining views, in entropy order, whose argmax is among them, and the winner gets one more
vote. Here the views are scored by S^3 instead of CLIP's label texts, and the result is the vote fractions.

Two choices of this project (README, "How each method compares with its authors' code"): the crops come from a
generator seeded by the image's own pixels and a seed (torchvision's global generator made ZERO's views depend on
everything run before), and when no remaining view's argmax is a tied class the tie goes to the tied class the first
remaining view scores highest (what ZERO's fallback means to do; its code indexes with ``~ties``, the bitwise
complement of the class indices).
"""

from __future__ import annotations

import hashlib

import torch
from PIL import Image

from s3_hf.io.crops import crop_box
from s3_hf.tta.config import ZeroConfig


def view_seed(seed: int, image: Image.Image) -> int:
    """The seed of an image's views: sha256 of ``seed`` and the image's mode, size and pixels (63 bits)."""
    h = hashlib.sha256(f"{seed}:{image.mode}:{image.size}".encode())
    h.update(image.tobytes())
    return int.from_bytes(h.digest()[:8], "big") & (2**63 - 1)


def augmented_views(image: Image.Image, config: ZeroConfig, size: int) -> list[Image.Image]:
    """The image itself, then ``config.views - 1`` random resized crops to ``size`` x ``size`` (bilinear, as
    torchvision's default), each flipped left-right with probability 1/2; the same views for the same image and
    seed, whatever else ran before."""
    gen = torch.Generator().manual_seed(view_seed(config.seed, image))
    views = [image]
    for _ in range(config.views - 1):
        left, top, w, h = crop_box(image.width, image.height, gen, config.scale, config.ratio)
        view = image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
        if float(torch.rand(1, generator=gen)) < 0.5:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        views.append(view)
    return views


def vote(logits: torch.Tensor, keep: int) -> tuple[torch.Tensor, int]:
    """ZERO's vote over one image's views: ``logits`` ``(V, C)`` -> (vote fractions ``(C,)``, the winning class).

    The ``keep`` views of lowest softmax entropy (stable order: the earlier view first on equal entropy) vote for
    their argmax (the lowest index on equal logits). A tie between the most voted classes goes to the first remaining
    view, in entropy order, whose argmax is tied; else to the tied class the first remaining view scores highest;
    else (no view remains) to the lowest tied index. The winner of a tie gets one more vote, as in ZERO.
    """
    if logits.ndim != 2 or not 1 <= keep <= logits.shape[0]:
        raise ValueError(f"vote needs (views, classes) logits and 1 <= keep <= views: {tuple(logits.shape)}, {keep}")
    x = logits.double()
    p = x.softmax(-1)
    entropy = -torch.special.xlogy(p, p).sum(-1)
    order = torch.argsort(entropy, stable=True)
    votes = torch.bincount(x[order[:keep]].argmax(-1), minlength=x.shape[1]).double()
    tied = (votes == votes.max()).nonzero().flatten().tolist()
    winner = tied[0]
    if len(tied) > 1:
        rest = x[order[keep:]]
        picks = [a for a in rest.argmax(-1).tolist() if a in tied]
        if picks:
            winner = picks[0]
        elif len(rest):
            winner = tied[int(rest[0, tied].argmax())]
        votes[winner] += 1
    return (votes / votes.sum()).to(logits.dtype if logits.is_floating_point() else torch.float32), winner


__all__ = ["augmented_views", "view_seed", "vote"]
