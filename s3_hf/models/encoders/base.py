"""The encoder interface: everything S^3 needs from a vision-language dual encoder, and nothing more.

Spaces, metrics, artifacts, few-shot SSP, eval, the bench and the app talk to an :class:`Encoder` only, so they
are the same for every model family. Two implementations exist: :class:`~s3_hf.models.encoders.hf.TransformersEncoder`
(every family of transformers' zero-shot image classification that S^3 can serve) and
:class:`~s3_hf.models.encoders.openclip.OpenClipEncoder` (open_clip checkpoints, an optional extra).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from s3_hf.errors import InvalidConfigError
from s3_hf.models.families import FamilyInfo


class Encoder(abc.ABC):
    """A dual encoder: texts and images to unit vectors in one joint space, and the facts that turn their cosine
    similarities into scores.

    Attributes:
        model: the underlying model (a transformers model or an open_clip model).
        tokenizer: its tokenizer.
        image_processor: its image preprocessing (a transformers image processor or an open_clip transform).
        name: the checkpoint name recorded in spaces built with it.
        random_weights: True when the checkpoint held no weights (timings only, never accuracy).
    """

    model: Any
    tokenizer: Any
    image_processor: Any
    name: str
    random_weights: bool = False

    # ---------------------------------------------------------------------------------------------- facts
    @property
    @abc.abstractmethod
    def family(self) -> FamilyInfo:
        """The family, its scoring rule (softmax or sigmoid) and its tokenizer settings."""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """The size of the joint embedding space."""

    @property
    @abc.abstractmethod
    def max_text_tokens(self) -> int:
        """The text encoder's context length in tokens, special tokens included."""

    @property
    @abc.abstractmethod
    def logit_scale(self) -> float:
        """``τ``, the factor from cosine similarity to logit."""

    @property
    @abc.abstractmethod
    def logit_bias(self) -> float:
        """``b``, added to every logit (0 where the family has none)."""

    @property
    def revision(self) -> str | None:
        """The checkpoint's revision (commit hash) where known."""
        return None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def has_patch_tokens(self) -> bool:
        """Whether :meth:`global_and_local` is available (few-shot SSP needs it)."""
        return False

    # ---------------------------------------------------------------------------------------------- texts
    @torch.inference_mode()
    def encode_texts(
        self,
        texts: Sequence[str],
        batch_size: int = 256,
        progress: bool = False,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
    ) -> torch.Tensor:
        """Texts -> ``(N, D)`` unit vectors (float32, on the model's device), tokenised as the family needs;
        ``tokenizer_kwargs`` override the family's settings."""
        kwargs = {**self.family.tokenizer_kwargs, **(tokenizer_kwargs or {})}
        chunks = []
        with tqdm(total=len(texts), desc="Encoding texts", unit="text", disable=not progress) as bar:
            for start in range(0, len(texts), batch_size):
                batch = list(texts[start : start + batch_size])
                chunks.append(F.normalize(self._text_features(batch, kwargs).float(), dim=-1))
                bar.update(len(batch))
        return torch.cat(chunks) if chunks else torch.empty(0, self.dim)

    @abc.abstractmethod
    def _text_features(self, texts: list[str], tokenizer_kwargs: dict[str, Any]) -> torch.Tensor:
        """One batch of texts -> ``(n, D)`` text embeddings in the joint space (not yet normalised)."""

    @abc.abstractmethod
    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text, special tokens included, without truncation."""

    # --------------------------------------------------------------------------------------------- images
    @abc.abstractmethod
    def image_inputs(self, images: Sequence[Any]) -> dict[str, torch.Tensor]:
        """RGB PIL images -> the model's preprocessed image inputs (``pixel_values`` and any companions)."""

    @abc.abstractmethod
    def encode_pixels(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Preprocessed images (``pixel_values`` or all of :meth:`image_inputs`) -> ``(B, D)`` unit vectors."""

    def require_patch_tokens(self) -> None:
        """Raise :class:`~s3_hf.errors.InvalidConfigError` (saying what to use instead) unless the family has patch
        tokens in the joint space (:meth:`global_and_local`)."""
        if not self.has_patch_tokens:
            raise InvalidConfigError(
                f"{self.family.family} models ({self.name or type(self.model).__name__}) have no patch tokens in the "
                "joint space, which few-shot SSP needs. Classify zero-shot, or use a ViT of CLIP, MetaCLIP 2, "
                "SigLIP, SigLIP 2 or open_clip."
            )

    def global_and_local(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, D)`` unit global embeddings (exactly :meth:`encode_pixels`) and ``(B, P, D)`` unit patch tokens in
        the joint space. Families without patch tokens raise :class:`~s3_hf.errors.InvalidConfigError`."""
        self.require_patch_tokens()
        raise NotImplementedError  # a family with patch tokens implements this

    @property
    def has_dense_features(self) -> bool:
        """Whether :meth:`dense_features` is available (open-vocabulary segmentation needs it)."""
        return False

    def require_dense_features(self) -> None:
        """Raise :class:`~s3_hf.errors.InvalidConfigError` (saying what to use instead) unless
        :meth:`dense_features` is available."""
        if not self.has_dense_features:
            raise InvalidConfigError(
                f"{self.family.family} models ({self.name or type(self.model).__name__}) give no dense patch "
                "features here; open-vocabulary segmentation needs a ViT of CLIP, MetaCLIP 2 or open_clip."
            )

    def dense_features(
        self, pixels: torch.Tensor, variant: str | None = "naclip", positions: str = "size"
    ) -> torch.Tensor:
        """``(B, h, w, D)`` unit patch features in the joint space of normalised pixels ``(B, 3, H, W)`` of any size
        (a multiple of the patch size), with the last block replaced by ``variant`` (see :mod:`s3_hf.models.dense`) and
        position embeddings interpolated by rule ``positions`` (:func:`s3_hf.models.dense.interpolate_positions`)."""
        self.require_dense_features()
        raise NotImplementedError  # a family with dense features implements this

    def decode_min_side(self) -> int | None:
        """The smallest short side a decoded image needs for this model's preprocessing (its resize target, which
        covers its crop), or ``None`` where the preprocessing has no fixed target (SigLIP 2's patch budget). The
        fast decoding path (:func:`s3_hf.io.images.draft_jpeg`) never decodes below it."""
        size = getattr(self.image_processor, "size", None)
        get = (lambda k: size.get(k)) if isinstance(size, dict) else (lambda k: getattr(size, k, None))
        if get("shortest_edge"):
            crop = getattr(self.image_processor, "crop_size", None)
            crop_sides = [v for v in (getattr(crop, "height", None), getattr(crop, "width", None)) if v]
            if isinstance(crop, dict):
                crop_sides = [v for v in (crop.get("height"), crop.get("width")) if v]
            return int(max([get("shortest_edge"), *crop_sides]))
        if get("height") and get("width"):
            return int(max(get("height"), get("width")))
        return None

    def pixel_stats(self) -> tuple[list[float], list[float]]:
        """The mean and standard deviation the image preprocessing normalises with, per channel."""
        processor = self.image_processor
        return list(processor.image_mean), list(processor.image_std)

    @property
    def patch_size(self) -> int:
        """The vision tower's patch size in pixels."""
        raise InvalidConfigError(f"{self.family.family} models have no patch grid here.")

    def encode_images(
        self,
        images: Sequence[Any],
        batch_size: int = 32,
        progress: bool = False,
        *,
        fast: bool = False,
        workers: int | None = None,
    ) -> torch.Tensor:
        """Images (paths, URLs or PIL) -> ``(N, D)`` unit vectors. ``fast`` and ``workers`` as in
        :meth:`encode_image_batches` (workers change the time, never the result)."""
        chunks = [
            b.features
            for b in self.encode_image_batches(images, batch_size, fast=fast, workers=workers, progress=progress)
        ]
        return torch.cat(chunks) if chunks else torch.empty(0, self.dim)

    def encode_image_batches(
        self,
        images: Sequence[Any],
        batch_size: int = 32,
        *,
        fast: bool = False,
        workers: int | None = None,
        skip_errors: bool = False,
        features: Callable[[dict[str, torch.Tensor]], Any] | None = None,
        timeout: float | None = None,
        progress: bool = False,
    ) -> Iterator[ImageBatch]:
        """Read, preprocess and encode ``images`` batch by batch, several batches in flight at once
        (:mod:`s3_hf.io.parallel`); batches are yielded in input order.

        Args:
            images: paths, URLs, base64 strings or PIL images.
            batch_size: images per batch.
            fast: decode JPEGs at the smallest DCT scale that still covers the model's resize target
                (:func:`s3_hf.io.images.draft_jpeg`); ``False`` reads every pixel, exactly as transformers does.
            workers: worker threads (``None``: :func:`s3_hf.io.parallel.default_image_workers`; 0: none). On a CPU
                each decodes, preprocesses and encodes a batch on its share of torch's threads; on a GPU they
                decode and preprocess ahead of the encoder.
            skip_errors: report unreadable images in :attr:`ImageBatch.errors` instead of raising
                :class:`~s3_hf.errors.ImageLoadError`.
            features: what to compute from a batch's inputs (default :meth:`encode_pixels`; e.g.
                :meth:`global_and_local`).
            timeout: seconds to wait for a URL.
            progress: show a progress bar.
        """
        from s3_hf.io.parallel import batched, default_image_workers, map_batches, threads_per_worker

        compute = features or self.encode_pixels
        workers = default_image_workers(self.device) if workers is None else workers
        min_side = self.decode_min_side() if fast else None

        def read(chunk: Sequence[int]) -> tuple[list[int], list[tuple[int, Any]], dict | None]:
            return self._read_batch(images, chunk, min_side, timeout, skip_errors)

        def encoded(read_out: tuple[list[int], list[tuple[int, Any]], dict | None]) -> ImageBatch:
            ok, errors, inputs = read_out
            return ImageBatch(ok, errors, compute(inputs) if inputs is not None else None)

        chunks = batched(range(len(images)), batch_size)
        if len(chunks) < 2:
            workers = 0  # one batch: nothing to overlap, and in the caller it keeps all of torch's threads
        if self.device.type == "cpu":  # each worker runs a whole batch: the encoder is on the same cores
            threads = threads_per_worker(workers) if workers else None
            batches = map_batches(chunks, lambda c: encoded(read(c)), workers, threads)
        else:  # workers decode ahead; the accelerator encodes
            batches = (encoded(r) for r in map_batches(chunks, read, workers))
        with tqdm(total=len(images), desc="Encoding images", unit="img", disable=not progress) as bar:
            for batch in batches:
                bar.update(len(batch.indices) + len(batch.errors))
                yield batch

    def _read_batch(
        self, images: Sequence[Any], chunk: Sequence[int], min_side: int | None, timeout: float | None, skip: bool
    ) -> tuple[list[int], list[tuple[int, Any]], dict | None]:
        """Read and preprocess the images at positions ``chunk``: the positions read, ``(position, ImageLoadError)``
        of those that could not be (``skip``; else the error is raised) and the batch's model inputs (pinned for a
        GPU; ``None`` when nothing was read)."""
        from s3_hf.errors import ImageLoadError
        from s3_hf.io.images import load_image

        ok, errors, pictures = [], [], []
        for i in chunk:
            try:
                pictures.append(load_image(images[i], timeout=timeout, min_side=min_side))
                ok.append(i)
            except ImageLoadError as err:
                if not skip:
                    raise
                errors.append((i, err))
        inputs = self.image_inputs(pictures) if pictures else None
        if inputs is not None and self.device.type == "cuda":
            inputs = {k: v.pin_memory() for k, v in inputs.items()}
        return ok, errors, inputs


@dataclass(frozen=True)
class ImageBatch:
    """One batch of :meth:`Encoder.encode_image_batches`.

    Attributes:
        indices: positions (in the input) of the images that were read, in order.
        errors: ``(position, ImageLoadError)`` of the images that could not be read (with ``skip_errors``).
        features: what ``features`` computed for the images read (unit embeddings by default); ``None`` when no
            image of the batch could be read.
    """

    indices: list[int]
    errors: list[tuple[int, Any]]
    features: Any


def moved(inputs: torch.Tensor | Mapping[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> dict:
    """Image inputs as a dict on ``device``; floating tensors cast to ``dtype``."""
    inputs = {"pixel_values": inputs} if isinstance(inputs, torch.Tensor) else dict(inputs)
    return {k: v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device) for k, v in inputs.items()}


__all__ = ["Encoder", "ImageBatch", "moved"]
