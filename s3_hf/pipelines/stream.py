"""The classification pipeline's test-time adaptation handle (``pipe.stream(...)``): the pipeline's own output,
computed from the adapted logits of an engine stream (:class:`~s3_hf.engine.stream.TS3Stream`).

The pipeline stays stateless: the state lives in the handle ``pipe.stream`` returns, and only there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from s3_hf.engine.results import ClassScores, check_abstain_labels, rank
from s3_hf.engine.stream import StreamScores
from s3_hf.errors import InvalidConfigError
from s3_hf.options import DEFAULT_BATCH_SIZE
from s3_hf.tta import SavedState

if TYPE_CHECKING:
    from s3_hf.engine.stream import TS3Stream
    from s3_hf.pipelines.base import S3Pipeline


@dataclass
class PipelineStreamScores(StreamScores):
    """A stream call's logits in input order (adapted ``scores``, static S^3 ``static_scores``) and, for
    ``multi_label`` with a softmax family, the label-free logit each class is compared with (``baseline``)."""

    baseline: torch.Tensor | None = None


@dataclass(frozen=True)
class StreamCallOptions:
    """What a stream handle applies to every call, checked once when it was made: how images are read
    (``preprocess``), how results are ranked (``post``), and the default encoder batch size."""

    preprocess: dict[str, Any]
    post: dict[str, Any]
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)


class ClassificationStream:
    """A TS^3 stream with the classification pipeline's input and output (made by ``pipe.stream``).

    ``stream(images)`` returns what ``pipe(images, ...)`` returns (per image a ranked list of ``{"score", "label"}``,
    probabilities by the family's rule), from the adapted logits; each image is scored from the state before it,
    then absorbed, in call order then input order. The static S^3 results of the same images:
    ``out = stream.scores(images)`` adapts and returns both logits (``out.scores``, ``out.static_scores``), then
    ``stream.rank(out)`` and ``stream.rank(out, static=True)`` rank them as the pipeline does.

    Args:
        pipe: the pipeline whose image reading, engine and ranking are used.
        stream: the engine's stream (its labels, space, options and state).
        options: the call options checked by the pipeline.
    """

    def __init__(self, pipe: S3Pipeline, stream: TS3Stream, options: StreamCallOptions) -> None:
        self.pipe, self.stream, self.options = pipe, stream, options
        if "abstain_threshold" in options.post:
            check_abstain_labels(stream.labels, 1.0)

    @property
    def labels(self) -> list[str]:
        """The stream's classes, in score order."""
        return self.stream.labels

    @property
    def n_seen(self) -> int:
        """Images this stream has adapted on."""
        return self.stream.n_seen

    def reset(self) -> None:
        """Forget every image seen."""
        self.stream.reset()

    def state_dict(self) -> SavedState:
        """The state (see :meth:`TS3Stream.state_dict <s3_hf.engine.stream.TS3Stream.state_dict>`)."""
        return self.stream.state_dict()

    def load_state_dict(self, saved: SavedState) -> None:
        """Continue from a state saved by a stream of the same labels, model, space and options.

        Args:
            saved: from :meth:`state_dict` or :meth:`SavedState.load <s3_hf.tta.SavedState.load>`.
        """
        self.stream.load_state_dict(saved)

    def __call__(
        self, images: Any, *, batch_size: int | None = None, candidate_labels: Sequence[str] | None = None
    ) -> Any:
        """The pipeline's output for ``images`` from the adapted logits (adapting on each image in turn).

        Args:
            images: an image (path, URL or PIL image), or a list of them scored in this order.
            batch_size: images per encoder batch (default: the one given to ``pipe.stream``); the order of
                adaptation never depends on it, the scores only to float rounding (as a call's ``batch_size``).
            candidate_labels: if given, they must be the stream's labels (a guard against reusing a stream).
        """
        single = not isinstance(images, list | tuple)
        ranked = self.rank(
            self.scores([images] if single else images, batch_size=batch_size, candidate_labels=candidate_labels)
        )
        return ranked[0] if single else ranked

    def scores(
        self, images: Sequence[Any], *, batch_size: int | None = None, candidate_labels: Sequence[str] | None = None
    ) -> PipelineStreamScores:
        """Adapt on ``images`` in order and return their adapted and static logits.

        Args:
            images: paths, URLs or PIL images, scored in this order.
            batch_size: images per encoder batch (default: the one given to ``pipe.stream``).
            candidate_labels: if given, they must be the stream's labels.
        """
        batch_size = self.options.batch_size if batch_size is None else check_batch_size(batch_size)
        if candidate_labels is not None:
            self.stream.state.check_labels(candidate_labels)
        images, parts = list(images), []
        for i in range(0, len(images), batch_size):  # scored batch by batch too, as the pipeline scores its batches
            parts.append(self._batch(images[i : i + batch_size]))
        if not parts:
            empty = torch.zeros(0, len(self.labels))
            return PipelineStreamScores(empty, empty.clone(), self.labels)
        baseline = None if parts[0].baseline is None else torch.cat([p.baseline for p in parts])
        return PipelineStreamScores(
            torch.cat([p.scores for p in parts]), torch.cat([p.static_scores for p in parts]), self.labels, baseline
        )

    def rank(self, out: PipelineStreamScores, *, static: bool = False) -> list[list[dict[str, Any]]]:
        """Each image's ranking, as the pipeline gives it, from ``out``'s adapted logits (or its static ones).

        Args:
            out: from :meth:`scores`.
            static: rank the static S^3 logits instead of the adapted ones.
        """
        logits = out.static_scores if static else out.scores
        scored = ClassScores(logits, scoring=self.pipe.engine.family.scoring, baseline=out.baseline)
        post = {k: v for k, v in self.options.post.items() if k != "details"}
        return [[p.to_dict() for p in rank(scored, b, self.stream.resolved, **post)] for b in range(len(logits))]

    def _batch(self, images: list[Any]) -> PipelineStreamScores:
        """One encoder batch: each image read as the pipeline reads it, encoded together, then adapted in order."""
        engine = self.pipe.engine
        inputs = [self.pipe.preprocess(image, **self.options.preprocess) for image in images]
        v = engine.encode_pixels({k: torch.cat([x[k] for x in inputs]) for k in inputs[0]})
        out = self.stream.embeddings(v)
        baseline = None
        if self.options.post.get("multi_label") and engine.family.scoring == "softmax":
            space = self.stream.resolved.space
            baseline = engine.label_free.logits(v, space, engine.logit_scale, engine.logit_bias)
        return PipelineStreamScores(out.scores, out.static_scores, out.labels, baseline)


def check_batch_size(value: Any) -> int:
    """``batch_size``: an integer >= 1 (a typed error otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfigError(f"batch_size must be an integer >= 1, got {value!r}.")
    return value


__all__ = ["ClassificationStream", "PipelineStreamScores", "StreamCallOptions"]
