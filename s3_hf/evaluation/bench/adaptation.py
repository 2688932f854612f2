"""The tta part: TS^3's extra cost per image at 1,000 classes, against decoding and encoding the same images, and the
memory of its state after N and 10N images against the design's bound (it must not grow with the stream); then the
stateless ZERO-S^3's cost per image against static S^3 on a few of the same images.

The state adapts over a synthetic stream: class vectors are random unit vectors (no text to encode) and each image
leans towards one class by a random amount, so that confident and uncertain images both occur and both caches fill
as they would. Static scores are cosines with the class vectors at a trained CLIP's scale (``tau = 100``), so the
timing does not depend on the model's random weights. Only decode + encode runs the bench's model and images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch

from s3_hf.evaluation.bench.config import BenchConfig, require
from s3_hf.evaluation.bench.rows import TTA_TARGET, TTAMemory, TTAResult, ZeroCost
from s3_hf.evaluation.bench.timing import alternate, sync_for
from s3_hf.evaluation.bench.workload import image_paths, load_engine
from s3_hf.io.images import list_images, load_image
from s3_hf.tta import TS3Config, TS3State, ZeroConfig

TAU = 100.0  # a trained CLIP's logit scale: the synthetic stream's entropies are those of a real one
CHUNK = 1000  # synthetic images generated at a time
ZERO_IMAGES = 4  # images ZERO-S^3 is timed on (each costs its views' encodes)
ZERO_CLASSES = 10  # label-only classes of the ZERO-S^3 timing (its cost is the views' encodes)


def formula_bytes(classes: int, dim: int, pos_size: int, neg_size: int) -> int:
    """The design's bound on a TS^3 state's bytes: ``C(S+ + S-)(D+2)·4 + C²S-/8 + (C+1)(D+1)·4`` (cache items with
    their entropy and arrival index, the negative masks at one bit per class, the running sums with their counts).

    Args:
        classes: C.
        dim: the embedding size D.
        pos_size: positive cache items per class S+.
        neg_size: negative cache items per class S-.
    """
    items = classes * (pos_size + neg_size) * (dim + 2) * 4
    return items + math.ceil(classes * classes * neg_size / 8) + (classes + 1) * (dim + 1) * 4


def class_vectors(classes: int, dim: int, seed: int = 0) -> torch.Tensor:
    """``classes`` random unit vectors ``(C, D)`` standing for the classes' text embeddings."""
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(classes, dim, generator=g), dim=1)


def synthetic_images(vectors: torch.Tensor, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` unit embeddings, each leaning towards a random class by a random amount, and their static scores
    (cosines with ``vectors``), ``(n, D)`` and ``(n, C)``."""
    c, d = vectors.shape
    y = torch.randint(c, (n,), generator=generator)
    lean = 0.4 * torch.rand(n, 1, generator=generator)
    v = torch.nn.functional.normalize(lean * vectors[y] + torch.randn(n, d, generator=generator) / d**0.5, dim=1)
    return v, v @ vectors.T


def _chunks(vectors: torch.Tensor, n: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, n, CHUNK):
        yield synthetic_images(vectors, min(CHUNK, n - start), generator)


def stream_memory(state: TS3State, vectors: torch.Tensor, images: int, seed: int = 0) -> TTAMemory:
    """Adapt ``state`` over ``images`` synthetic images, then over nine times as many more: its saved bytes after N
    and after 10N images, with the design's bound (:func:`formula_bytes`).

    Args:
        state: a TS^3 state over ``len(vectors)`` classes (it is left after 10N images).
        vectors: the class vectors ``(C, D)``.
        images: N.
        seed: the stream's seed.
    """
    g = torch.Generator().manual_seed(seed)
    for v, s in _chunks(vectors, images, g):
        state(v, s)
    bytes_n = state.state_dict().nbytes()
    for v, s in _chunks(vectors, 9 * images, g):
        state(v, s)
    cfg = state.config
    bound = formula_bytes(state.num_classes, state.dim, cfg.pos_size, cfg.neg_size)
    return TTAMemory(
        state.num_classes, state.dim, cfg.pos_size, cfg.neg_size, images, bytes_n, state.state_dict().nbytes(), bound
    )


def _decode_and_encode(engine: Any, paths: list[str], bs: int) -> None:
    for i in range(0, len(paths), bs):
        engine.encode_pixels(engine.image_inputs([load_image(p) for p in paths[i : i + bs]]))


def zero_cost(engine: Any, paths: list[str], batch_size: int, repeats: int, sync: Callable[[], None]) -> ZeroCost:
    """ZERO-S^3 (default options) against static S^3 on ``paths``, alternating: per-image medians and their ratio.

    Args:
        engine: the bench's engine.
        paths: the images (each is read, cropped into its views and encoded by both calls).
        batch_size: encoder batch size of both.
        repeats: timed rounds.
        sync: waits for the device.
    """
    request = engine.request([f"class {i}" for i in range(ZERO_CLASSES)])
    zero = ZeroConfig()
    calls = {
        "static": partial(engine.classify, paths, request, batch_size=batch_size),
        "zero": partial(engine.classify, paths, request, batch_size=batch_size, tta=zero),
    }
    t = alternate(calls, repeats, sync)
    n = len(paths)
    ratio = t.ratio("static", "zero")  # median of zero's time / static's, round by round
    return ZeroCost(n, zero.views, 1000 * t.median("zero") / n, 1000 * t.median("static") / n, ratio)


def bench_tta(cfg: BenchConfig, log: Callable[[str], None]) -> TTAResult:
    """TS^3 at ``cfg.tta_classes`` classes with the default options: the state's bytes after ``cfg.tta_stream`` and
    10x as many images; then, from that steady state, the adaptation step per image (update + adapted scoring on
    precomputed embeddings and static scores) alternating with decode + encode of ``cfg.num_images`` of the bench's
    images (batches of the largest ``cfg.batch_sizes``), and the median ratio of the two; and ZERO-S^3 against static
    S^3 on the first few of those images (:func:`zero_cost`).

    Args:
        cfg: the bench settings (``model``, ``images``, ``tta_classes``, ``tta_stream``, ``num_images``).
        log: where progress lines go.
    """
    require(cfg.model, "it needs a model to time decode + encode (pass --model or set S3_BENCH_MODEL)")
    folder = Path(cfg.images) if cfg.images else None
    require(folder and folder.is_dir(), "it needs a folder of images to time decode + encode (pass --images DIR)")
    root = folder / "images" if (folder / "images").is_dir() else folder  # type: ignore[operator]
    require(list_images(root), f"it needs images to time decode + encode, and {root} holds none")
    require(cfg.tta_classes > 0 and cfg.tta_stream > 0, "it needs --tta-classes and --tta-stream above 0")
    engine = load_engine(cfg.model, cfg.device)
    dim, config = engine.encoder.dim, TS3Config()
    vectors = class_vectors(cfg.tta_classes, dim)
    state = TS3State(config, [f"class {i}" for i in range(cfg.tta_classes)], dim, TAU)
    memory = stream_memory(state, vectors, cfg.tta_stream)
    log(
        f"[tta C={memory.classes} D={dim}] state {memory.bytes_n / 1e6:.2f} MB after {memory.images} images, "
        f"{memory.bytes_10n / 1e6:.2f} MB after {10 * memory.images} (bound {memory.formula_bytes / 1e6:.2f} MB"
        f"{'' if memory.bounded else ': EXCEEDED or growing'})"
    )
    paths = image_paths(cfg.images, cfg.num_images)
    bs = max(cfg.batch_sizes) if cfg.batch_sizes else len(paths)
    feats, scores = synthetic_images(vectors, len(paths), torch.Generator().manual_seed(1))
    calls = {"b": partial(_decode_and_encode, engine, paths, bs), "tta": partial(state, feats, scores)}
    t = alternate(calls, cfg.repeats, sync_for(cfg.device))
    n = len(paths)
    result = TTAResult(
        cfg.tta_classes, n, bs, 1000 * t.median("tta") / n, 1000 * t.median("b") / n, t.ratio("b", "tta"), memory
    )
    log(
        f"[tta C={result.classes}] adaptation {result.adapt_ms:.2f} ms/image, decode + encode "
        f"{result.encode_ms:.1f} ms/image (batch {bs}): {result.overhead:.2%} extra "
        f"({'within' if result.within_target else 'above'} the {TTA_TARGET:.0%} target)"
    )
    result.zero = zero_cost(engine, paths[:ZERO_IMAGES], bs, cfg.repeats, sync_for(cfg.device))
    z = result.zero
    log(
        f"[tta zero] ZERO-S^3 {z.zero_ms:.0f} ms/image ({z.views} views), static S^3 {z.static_ms:.1f} ms/image: "
        f"{z.ratio:.1f}x"
    )
    return result
