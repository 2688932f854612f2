"""TDA (Karmanov et al., CVPR 2024) as a baseline beside TS^3: one point per class, the published cache rules.

TDA is TS^3 with the class shift off, TDA's order (each image updates the caches before it is scored, so it sees
itself) and TDA's entropy scale (H / log2 C), on plain CLIP scores ``v · t_c``: S^3 with one point per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from s3_hf.errors import StreamMismatchError
from s3_hf.tta.config import TS3Config, tda_config
from s3_hf.tta.state import TS3State


class TDA:
    """A TDA stream over fixed class text vectors.

    Args:
        text: unit class text vectors ``(C, D)``, one per label.
        labels: the class labels, in the rows' order.
        tau: the model's logit scale (100 for OpenAI CLIP).
        config: the options; :func:`~s3_hf.tta.config.tda_config` (TDA's ImageNet values) by default.
        model: the model's name, recorded in saved states.
    """

    def __init__(
        self,
        text: torch.Tensor,
        labels: Sequence[str],
        tau: float = 100.0,
        config: TS3Config | None = None,
        model: str = "",
    ) -> None:
        config = config or tda_config()
        if not config.tda_compat or config.lam:
            raise StreamMismatchError("TDA needs tda_compat=True and lam=0; use tda_config(...) to build its options.")
        self.text = text.detach().to("cpu", torch.float32)
        self.state = TS3State(config, labels, self.text.shape[1], tau, model=model, space_hash="tda")

    def __call__(self, feats: torch.Tensor) -> torch.Tensor:
        """Adapted logits ``(B, C)`` of unit image embeddings ``(B, D)``, in order.

        Args:
            feats: unit image embeddings.
        """
        feats = torch.atleast_2d(feats).detach().to("cpu", torch.float32)
        # float64 products rounded once: a float32 matmul's summation order alone moves logits near 50 by 1e-5
        return self.state(feats, (feats.double() @ self.text.double().T).float())

    def __getattr__(self, name: str) -> Any:
        if name in ("reset", "state_dict", "load_state_dict", "n_seen", "labels", "config"):
            return getattr(self.state, name)
        raise AttributeError(name)


__all__ = ["TDA"]
