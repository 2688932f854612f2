"""An explicit test-time adaptation stream over an engine (``S3Engine.stream``): never hidden state in a stateless
call. Images are encoded in batches, then scored and absorbed one after another in call order, then input order, so
results never depend on the batch size. The state is TS^3's (:mod:`s3_hf.tta`), made for one set of labels, one
model and one space: calls with other labels, or saved states of another stream, are refused.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from s3_hf.engine.requests import ClassifyRequest
from s3_hf.engine.results import space_scores
from s3_hf.errors import InvalidConfigError, StreamMismatchError
from s3_hf.options import DEFAULT_BATCH_SIZE
from s3_hf.tta import SavedState, TS3Config, TS3State

if TYPE_CHECKING:
    from s3_hf.engine.core import S3Engine


@dataclass
class StreamScores:
    """One call's results, in input order: the adapted logits and the static S^3 ones (``τ·s + b``) for audit."""

    scores: torch.Tensor  # (B, C) adapted
    static_scores: torch.Tensor  # (B, C) static S^3
    labels: list[str]

    def predictions(self) -> list[str]:
        """The adapted top-1 label of each image."""
        return [self.labels[int(i)] for i in self.scores.argmax(1)]

    def to_dict(self) -> dict[str, Any]:
        return {"scores": self.scores.tolist(), "static_scores": self.static_scores.tolist(), "labels": self.labels}


class TS3Stream:
    """A TS^3 stream over ``engine`` for the classes of ``request`` (see :meth:`S3Engine.stream`).

    Args:
        engine: the engine that encodes and scores.
        request: the classes, their space and metric (a zero-shot request: no few-shot support).
        config: TS^3's options.
    """

    def __init__(self, engine: S3Engine, request: ClassifyRequest, config: TS3Config) -> None:
        if not isinstance(config, TS3Config):
            raise InvalidConfigError(f"tta must be a TS3Config, got {type(config).__name__}.")
        if request.support is not None:
            raise InvalidConfigError("A TS^3 stream adapts a zero-shot space: drop support= (few-shot adapters).")
        self.engine, self.request = engine, request
        self.resolved = engine.resolve(request)
        space = self.resolved.space
        self.state = TS3State(
            config,
            self.resolved.labels,
            space.config.embedding_dim,
            engine.logit_scale,
            model=engine.name,
            space_hash=space.tensors_hash(),
        )
        self._lock = threading.Lock()

    @property
    def labels(self) -> list[str]:
        return list(self.state.labels)

    @property
    def n_seen(self) -> int:
        """Images this stream has adapted on."""
        return self.state.n_seen

    def __call__(
        self,
        images: Sequence[Any],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        candidate_labels: Sequence[str] | None = None,
    ) -> StreamScores:
        """Score ``images`` (paths, URLs or PIL images) in order, adapting after each one.

        Args:
            images: the images, scored in this order.
            batch_size: images per encoder batch (it changes the time, never the scores' order of adaptation).
            candidate_labels: if given, they must be the stream's labels (a guard against reusing a stream).
        """
        if candidate_labels is not None:
            self.state.check_labels(candidate_labels)
        return self.embeddings(self.engine.encode_images(list(images), batch_size=batch_size))

    def embeddings(self, v: torch.Tensor) -> StreamScores:
        """Like calling the stream, from unit image embeddings ``(B, D)`` of the stream's model (cached features).

        Args:
            v: the embeddings, in stream order.
        """
        v = torch.atleast_2d(v)
        if v.shape[-1] != self.state.dim:
            raise StreamMismatchError(
                f"This stream's model gives {self.state.dim}-dimensional embeddings, these are {v.shape[-1]}-"
                f"dimensional: they come from another model. Encode the images with {self.engine.name!r}."
            )
        s = space_scores(v, self.resolved)
        bias = self.engine.logit_bias
        with self._lock:
            adapted = self.state(v, s)
        static = self.state.tau * s.detach().to("cpu", torch.float32)
        return StreamScores(adapted + bias, static + bias, self.labels)

    def reset(self) -> None:
        """Forget every image seen."""
        with self._lock:
            self.state.reset()

    def state_dict(self) -> SavedState:
        """The stream's state (bounded tensors and the metadata naming its labels, model, space and options)."""
        with self._lock:
            return self.state.state_dict()

    def load_state_dict(self, saved: SavedState) -> None:
        """Continue from a saved state of a stream with the same labels, model, space and options.

        Args:
            saved: from :meth:`state_dict` or :meth:`SavedState.load <s3_hf.tta.SavedState.load>`.
        """
        with self._lock:
            self.state.load_state_dict(saved)


__all__ = ["StreamScores", "TS3Stream"]
