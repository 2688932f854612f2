"""The base of the s3-hf pipelines: one :class:`~s3_hf.engine.core.S3Engine` per pipeline, built from the model
transformers loaded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import Pipeline

from s3_hf.engine.core import S3Engine
from s3_hf.errors import InvalidConfigError, InvalidLabelsError
from s3_hf.models.loading import resolve_device


class S3Pipeline(Pipeline):
    """What the S^3 pipelines share: their engine (``pipe.engine``) and the checks of the call's inputs."""

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, **kwargs: Any) -> None:
        device = kwargs.get("device")
        if isinstance(device, str | torch.device) and device != "auto":
            resolve_device(device)  # an unknown or absent device is a typed error, not torch's raw one
        super().__init__(**kwargs)
        self.engine = S3Engine(self.model, self.tokenizer, self.image_processor)

    def __call__(self, image: Any = None, candidate_labels: Sequence[str] | None = None, **kwargs: Any) -> Any:
        """Run on one image or a list of images. See the class docstring for the options."""
        if "images" in kwargs:
            image = kwargs.pop("images")
        if image is None:
            raise InvalidLabelsError("No image given: pass an image path, URL or PIL image (or a list of them).")
        if isinstance(image, list | tuple) and not image:
            return []
        for name, low in (("batch_size", 1), ("num_workers", 0)):
            value = kwargs.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise InvalidConfigError(f"{name} must be an integer >= {low}, got {value!r}.")
        timeout = kwargs.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise InvalidConfigError(f"timeout must be a positive number of seconds, got {timeout!r}.")
        return super().__call__(image, candidate_labels=candidate_labels, **kwargs)


__all__ = ["S3Pipeline"]
