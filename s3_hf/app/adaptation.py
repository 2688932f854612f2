""" "Adapt over this session's images": one TS^3 state per browser session (:meth:`S3Engine.stream`).

The state lives in the session's ``gr.State`` only, never in a module global or in anything the handlers share, so
one user's images never reach another's predictions. A session keeps a :class:`SessionAdaptation`: what the state
adapts over (its key) and the state itself as a :class:`~s3_hf.tta.SavedState` (bounded tensors, whatever the number
of images). Each request makes a stream from the engine (its spaces are cached), continues from the session's state,
scores the image from the state before the image updates it, and gives the session a new record: records are never
changed in place, so two requests of one session at once cannot corrupt a state (one of their updates is kept).
A session that changes its labels, space or metric starts afresh, and the status says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from s3_hf.errors import StreamMismatchError
from s3_hf.tta import SavedState, TS3Config

if TYPE_CHECKING:
    from s3_hf.engine import ClassifyRequest, Resolved, S3Engine


@dataclass(frozen=True)
class SessionAdaptation:
    """One session's TS^3 state: ``key`` (labels, space, metric) names what it adapts over; ``restarted_from``:
    the images the session's previous state had seen when this one replaced it (0: nothing was dropped)."""

    key: tuple[object, ...]
    saved: SavedState
    restarted_from: int = 0

    @property
    def n_seen(self) -> int:
        """Images this state has adapted on."""
        return self.saved.meta.n_seen


def adaptation_key(resolved: Resolved) -> tuple[object, ...]:
    """What a state adapts over: the classes in order, the space's tensors and the metric (with its ``k``)."""
    return tuple(resolved.labels), resolved.space.tensors_hash(), resolved.metric, resolved.knn_k


def adapt(
    engine: S3Engine,
    request: ClassifyRequest,
    v: torch.Tensor,
    session: SessionAdaptation | None,
    config: TS3Config | None = None,
) -> tuple[torch.Tensor, SessionAdaptation]:
    """The adapted logits ``(B, C)`` of unit embeddings ``v`` (each scored before it updates the state), and the
    session's next record. A session whose state was made for other labels, space or metric starts afresh.

    Args:
        engine: the engine (its stream, spaces and model).
        request: the classes, space and metric of this request.
        v: the image embeddings, in the order they are absorbed.
        session: the session's record (``None``: a session that never adapted, or was reset).
        config: TS^3's options (default: their defaults).
    """
    stream = engine.stream(request, tta=config or TS3Config())
    key = adaptation_key(stream.resolved)
    restarted = 0
    if session is not None and session.key == key:
        try:
            stream.load_state_dict(session.saved)
        except StreamMismatchError:  # the same classes under other options (the model's or TS^3's)
            restarted = session.n_seen
    elif session is not None:
        restarted = session.n_seen
    adapted = stream.embeddings(v)
    return adapted.scores, SessionAdaptation(key, stream.state_dict(), restarted)


def adaptation_status(session: SessionAdaptation | None, adapting: bool) -> str:
    """The sentence the app shows under the toggle: how many images the session's state has seen, and whether it
    just started afresh.

    Args:
        session: the session's record (``None``: nothing adapted yet).
        adapting: whether the toggle is on.
    """
    seen = 0 if session is None else session.n_seen
    images = f"{seen} image{'' if seen == 1 else 's'}"
    if not adapting:
        kept = f" This session's state keeps {images}; turn adaptation on to continue it." if seen else ""
        return f"Adaptation is off: the scores are static S^3.{kept}"
    text = (
        f"Adapting over this session's images: {images} seen. Each image is scored from the state before it, then "
        "absorbed; the per-class table and the plot show the static space."
    )
    if session is not None and session.restarted_from:
        text += (
            f" The labels, space or metric changed, so adaptation started afresh (the previous state, "
            f"{session.restarted_from} images, was dropped)."
        )
    return text


__all__ = ["SessionAdaptation", "adapt", "adaptation_key", "adaptation_status"]
