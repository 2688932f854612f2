"""``tta="zero"``: ZERO-S^3 through the engine: each image's views encoded in batches, scored by S^3, voted on
(:mod:`s3_hf.tta.zero`). Stateless: the same image gets the same result in any call, order or batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from s3_hf.engine.results import ClassScores, Resolved
from s3_hf.errors import InvalidConfigError
from s3_hf.tta.config import TS3Config, ZeroConfig

if TYPE_CHECKING:
    from s3_hf.engine.core import S3Engine

#: The input size of the views when the model's preprocessing has no fixed one (SigLIP 2's patch budget).
FALLBACK_VIEW_SIZE = 224


def check_tta(value: Any) -> ZeroConfig | None:
    """A call's ``tta=``: ``None`` (no adaptation), ``"zero"`` or a :class:`ZeroConfig`; TS^3 is refused (it is a
    stream, never hidden in a call)."""
    if value is None or isinstance(value, ZeroConfig):
        return value
    if value == "zero":
        return ZeroConfig()
    if value in ("ts3", "tda") or isinstance(value, TS3Config):
        raise InvalidConfigError(
            "TS^3 and TDA adapt over a stream of images and keep a state: open one with engine.stream(...) or "
            "pipe.stream(...); a call takes only the stateless tta='zero'."
        )
    raise InvalidConfigError(f"tta must be None, 'zero' or a ZeroConfig, got {value!r}.")


def refuse_with_zero(details: bool, multi_label: bool) -> None:
    """``tta="zero"`` ranks by votes: it has no per-concept details and no per-class (multi-label) form."""
    if details:
        raise InvalidConfigError("return_details describes one image's S^3 scores: drop it with tta='zero'.")
    if multi_label:
        raise InvalidConfigError("tta='zero' votes for one class per view: it has no multi_label form.")


def view_size(engine: S3Engine) -> int:
    """The side of the square crops: the model's resize target (so its preprocessing leaves them as they are)."""
    return engine.encoder.decode_min_side() or FALLBACK_VIEW_SIZE


def view_inputs(engine: S3Engine, image: Any, config: ZeroConfig) -> dict[str, torch.Tensor]:
    """One RGB PIL image -> the preprocessed inputs of its views, each ``(1, views, ...)`` (one pipeline item)."""
    from s3_hf.tta.zero import augmented_views

    inputs = engine.image_inputs(augmented_views(image, config, view_size(engine)))
    return {k: v.unsqueeze(0) for k, v in inputs.items()}


def zero_scores(
    engine: S3Engine,
    inputs: Mapping[str, torch.Tensor],
    resolved: Resolved,
    config: ZeroConfig,
    batch_size: int | None = None,
) -> ClassScores:
    """Inputs ``(B, views, ...)`` -> :class:`ClassScores` with ZERO's vote fractions (``votes``) and the S^3
    logits of each image itself (``logits``). Views are encoded ``batch_size`` at a time (default: all at once)."""
    from s3_hf.tta.zero import vote

    b, n = next(iter(inputs.values())).shape[:2]
    flat = {k: v.flatten(0, 1) for k, v in inputs.items()}
    step = batch_size or b * n
    v = torch.cat([engine.encode_pixels({k: x[i : i + step] for k, x in flat.items()}) for i in range(0, b * n, step)])
    logits = engine.scores(v, resolved).logits.reshape(b, n, -1)
    votes = torch.stack([vote(logits[i], config.voters)[0] for i in range(b)])
    return ClassScores(logits[:, 0], scoring=engine.family.scoring, votes=votes)


def classify_zero(
    engine: S3Engine, images: Sequence[Any], resolved: Resolved, config: ZeroConfig, batch_size: int, progress: bool
) -> ClassScores:
    """Images (paths, URLs or PIL) -> their ZERO-S^3 :class:`ClassScores`, one image's views at a time."""
    from tqdm.auto import tqdm

    outs = []
    for image in tqdm(images, desc="ZERO-S^3 views", unit="image", disable=not progress):
        inputs = view_inputs(engine, engine.load_image(image, fast=False), config)
        outs.append(zero_scores(engine, inputs, resolved, config, batch_size))
    if not outs:
        return ClassScores(torch.empty(0, len(resolved.labels)), scoring=engine.family.scoring)
    return ClassScores(
        torch.cat([o.logits for o in outs]),
        scoring=engine.family.scoring,
        votes=torch.cat([o.votes for o in outs if o.votes is not None]),
    )


__all__ = ["FALLBACK_VIEW_SIZE", "check_tta", "classify_zero", "refuse_with_zero", "view_inputs", "zero_scores"]
