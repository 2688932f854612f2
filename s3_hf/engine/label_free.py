"""The label-free baseline of ``multi_label=True`` for softmax families: each class scored on its own against a
caption that names no class.

A softmax family (CLIP and its kin) is trained to compare captions with each other, so its logits say nothing on
their own: ``softmax`` makes the classes compete, and a sigmoid of a raw logit (``τ · cos`` with ``τ`` near 100) is
near 1 for every class. The per-class rule of this project is CLIP's own softmax over two captions, the class's and
the space's templates filled with an empty label (``"This is a photo of ."``)::

    p_c(v) = exp(z_c) / (exp(z_c) + exp(z_0)) = sigmoid(z_c - z_0),    z_0 = τ · cos(v, t_0) + b

with ``t_0`` the template ensemble of the empty label, encoded as the space's prompts were (its tokenizer arguments
and text canonicalisation). ``p_c`` depends on class ``c`` alone (another class list leaves it unchanged), is 0.5
when the image matches the class's prompt no better than a caption naming nothing, and uses the model's own
temperature (nothing is fitted). With few-shot support the class logits carry the adapter's terms and ``z_0`` does
not: the rule then compares the adapted logit with the zero-shot baseline. Sigmoid families (SigLIP, SigLIP 2)
need none of this: their logits are per-class already, and ``multi_label`` scores them as they always are.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from s3_hf.space.artifact import SynonymSpace
from s3_hf.text.encoding import encode_concepts

#: What fills each template's placeholder in the label-free caption.
LABEL_FREE_TEXT = ""


class LabelFreeBaseline:
    """The label-free caption's unit text vector per space's prompt settings, encoded once with ``encoder``."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self._vectors: dict[tuple[Any, ...], torch.Tensor] = {}

    def vector(self, space: SynonymSpace) -> torch.Tensor:
        """``t_0``, ``(D,)``: the space's templates with an empty label, encoded as its concepts were."""
        config = space.config
        key = (
            tuple(config.templates),
            json.dumps(config.tokenizer_kwargs, sort_keys=True),
            config.text_canonicalization,
        )
        if key not in self._vectors:
            self._vectors[key] = encode_concepts(
                self.encoder,
                None,
                [LABEL_FREE_TEXT],
                config.templates,
                tokenizer_kwargs=config.tokenizer_kwargs or None,
                canonicalization=config.text_canonicalization,
            )[0]
        return self._vectors[key]

    def logits(self, v: torch.Tensor, space: SynonymSpace, logit_scale: float, logit_bias: float = 0.0) -> torch.Tensor:
        """``z_0``, ``(B,)``, of unit image vectors ``v``: ``τ · cos(v, t_0) + b``."""
        t0 = self.vector(space).to(device=v.device, dtype=torch.float32)
        return logit_scale * (v.float() @ t0) + logit_bias


__all__ = ["LABEL_FREE_TEXT", "LabelFreeBaseline"]
