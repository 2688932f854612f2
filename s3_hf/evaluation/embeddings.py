"""Image embeddings for eval: computed once per benchmark (sharded across processes with accelerate and gathered
back in input order) and cached on disk by (model, revision, data, preprocessing, dtype); few-shot support features
(global, local and augmented views) likewise."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from s3_hf.evaluation.config import RunConfig
from s3_hf.evaluation.data.records import BenchmarkData, EncodedImages
from s3_hf.fewshot import global_and_local
from s3_hf.fewshot.features import AugmentedViews, view_side
from s3_hf.io.files import save_tensors
from s3_hf.io.images import load_image
from s3_hf.models.encoders import Encoder


class _Indices(torch.utils.data.Dataset):
    """Positions only: on a CPU the images are read by :func:`~s3_hf.io.parallel.map_batches` workers."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class _Images(torch.utils.data.Dataset):
    """One image's inputs (``pixel_values`` and, for SigLIP 2, its patch mask and shapes) and its index."""

    def __init__(self, images: Sequence[Any], encoder: Encoder, fast_decode: bool = True) -> None:
        self.images, self.encoder = images, encoder
        self.min_side = encoder.decode_min_side() if fast_decode else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], int]:
        inputs = self.encoder.image_inputs([load_image(self.images[i], min_side=self.min_side)])
        return {k: v[0] for k, v in inputs.items()}, i


def _preprocessing(encoder: Encoder) -> str:
    processor = encoder.image_processor
    if hasattr(processor, "to_dict"):  # the class names the backend (PIL or torchvision); the dict does not
        return type(processor).__name__ + json.dumps(processor.to_dict(), sort_keys=True, default=str)
    return repr(processor)  # an open_clip transform


def readable(images: Sequence[Any], encoder: Encoder, fast_decode: bool) -> Sequence[Any]:
    """``images`` as the encoder reads them: images held encoded (a Hub split) decoded as files are, at reduced size
    with ``fast_decode`` (:meth:`~s3_hf.evaluation.data.records.EncodedImages.decoded`); anything else as it is."""
    if isinstance(images, EncodedImages):
        return images.decoded(encoder.decode_min_side() if fast_decode else None)
    return images


def embedding_key(cfg: RunConfig, encoder: Encoder, data: BenchmarkData) -> str:
    prep = _preprocessing(encoder)
    parts = [cfg.model, str(encoder.revision), data.fingerprint, prep, cfg.dtype]
    if cfg.fast_decode:
        parts.append(f"fast-decode:{encoder.decode_min_side()}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def encode_sharded(
    accelerator: Any,
    encoder: Encoder,
    images: Sequence[Any],
    batch_size: int,
    encode: Callable[[Encoder, dict[str, torch.Tensor]], tuple[torch.Tensor, ...]],
    desc: str,
    fast_decode: bool = True,
    workers: int = 0,
    progress: bool = True,
) -> list[torch.Tensor]:
    """``encode(encoder, inputs)`` over ``images``, sharded across processes and gathered back in input order.
    ``workers``: on a CPU, threads that each read and encode a batch (:mod:`s3_hf.io.parallel`); on a GPU, data-loader
    processes that read ahead of the encoder."""
    on_cpu = encoder.device.type == "cpu"
    dataset = _Indices(len(images)) if on_cpu else _Images(images, encoder, fast_decode)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=0 if on_cpu else workers,
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=2 if workers and not on_cpu else None,
    )
    loader = accelerator.prepare(loader)
    if on_cpu:  # this process's shard of positions, read and encoded by the encoder's image workers
        positions = [i for idx in loader for i in idx.tolist()]
        read = encoder.encode_image_batches(
            _Take(images, positions),  # lazily: augmented views are drawn as they are encoded
            batch_size,
            fast=fast_decode,
            workers=workers,
            features=partial(encode, encoder),
        )
        batches: Iterable[Any] = ((b.features, torch.tensor([positions[j] for j in b.indices])) for b in read)
    else:
        batches = ((encode(encoder, inputs), idx) for inputs, idx in loader)
    chunks: list[list[torch.Tensor]] = []
    order = []
    bar = tqdm(total=len(images), desc=desc, unit="img", disable=not (progress and accelerator.is_main_process))
    for outs, idx in batches:
        # plain gather, not gather_for_metrics: its trimming of the last batch reads the loader's state, which is
        # ahead of this loop when workers read ahead; the duplicates padding the last batch are dropped by index
        gathered = accelerator.gather((*(o.contiguous() for o in outs), idx.to(outs[0].device)))
        chunks.append([g.cpu() for g in gathered[:-1]])
        order.append(gathered[-1].cpu())
        bar.update(min(len(order[-1]), bar.total - bar.n))  # all processes' images; padding is not counted
    bar.close()
    idx = torch.cat(order)
    if torch.unique(idx).numel() != len(images):
        raise RuntimeError(f"gathered {torch.unique(idx).numel()} of {len(images)} images")  # cannot happen
    results = []
    for parts in zip(*chunks, strict=True):
        flat = torch.cat(parts)
        out = flat.new_empty((len(images), *flat.shape[1:]))
        out[idx] = flat  # padded duplicates write the same image's features twice
        results.append(out)
    return results


def image_embeddings(
    accelerator: Any, encoder: Encoder, data: BenchmarkData, cfg: RunConfig, cache: Path
) -> tuple[torch.Tensor, bool]:
    """``(N, D)`` unit image embeddings in dataset order, from the cache or computed across processes."""
    path = cache / f"{embedding_key(cfg, encoder, data)}.safetensors"
    if path.is_file():
        cached = load_file(path)
        if torch.equal(cached["labels"], torch.tensor(data.labels)):
            return cached["embeddings"], True
    (out,) = encode_sharded(
        accelerator,
        encoder,
        readable(data.images, encoder, cfg.fast_decode),
        cfg.batch_size,
        lambda e, px: (e.encode_pixels(px),),
        f"Encoding {data.name}",
        cfg.fast_decode,
        cfg.resolved_workers(),
    )
    if accelerator.is_main_process:
        save_tensors(path, {"embeddings": out, "labels": torch.tensor(data.labels)})
    accelerator.wait_for_everyone()
    return out, False


class _Take(Sequence[Any]):
    """``items[positions[j]]`` at ``j``, read when indexed."""

    def __init__(self, items: Sequence[Any], positions: Sequence[int]) -> None:
        self.items, self.positions = items, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, j: int) -> Any:  # type: ignore[override]
        return self.items[self.positions[j]]


#: The seed of the support images' augmented views in eval: each train image's views depend on it and on the
#: image's index in the train split only, so every (shots, seed) run sees the same views of an image.
VIEW_SEED = 0


def support_features(
    accelerator: Any,
    encoder: Encoder,
    train: BenchmarkData,
    indices: list[int],
    cfg: RunConfig,
    cache: Path,
    views: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Global ``(n, D)`` and local ``(n, P, D)`` features of the train images ``indices`` (cached; local ones are
    kept and returned in float16: a 16-shot ImageNet support set is 16,000 images x patches x D), and the global
    features ``(n, V, D)`` of ``views`` augmented views of each (``None`` when it is 1)."""
    key = embedding_key(cfg, encoder, train) + hashlib.sha256(json.dumps(indices).encode()).hexdigest()[:8]
    if views > 1:
        key += f"-views{views}-seed{VIEW_SEED}"
    path = cache / f"support-{key}.safetensors"
    if path.is_file():
        cached = load_file(path)
        return cached["global"], cached["local"], cached.get("views")
    glob, local = encode_sharded(
        accelerator,
        encoder,
        _Take(readable(train.images, encoder, cfg.fast_decode), indices),  # read when encoded
        cfg.batch_size,
        lambda e, px: tuple(x.half() if x.dim() == 3 else x for x in global_and_local(e, px)),
        f"Encoding {train.name} support",
        cfg.fast_decode,
        cfg.resolved_workers(),
    )
    view_features = None
    if views > 1:  # N x V encodings, global only
        images = AugmentedViews([train.images[i] for i in indices], views, VIEW_SEED, view_side(encoder), indices)
        (flat,) = encode_sharded(
            accelerator,
            encoder,
            images,
            cfg.batch_size,
            lambda e, px: (e.encode_pixels(px),),
            f"Encoding {train.name} support views",
            cfg.fast_decode,
            cfg.resolved_workers(),
        )
        view_features = flat.reshape(len(indices), views, -1)
    if accelerator.is_main_process:
        tensors = {"global": glob, "local": local}
        if view_features is not None:
            tensors["views"] = view_features
        save_tensors(path, tensors)
    accelerator.wait_for_everyone()
    return glob, local, view_features


__all__ = ["VIEW_SEED", "embedding_key", "encode_sharded", "image_embeddings", "readable", "support_features"]
