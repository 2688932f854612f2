"""The TS^3 state and its step: score one image from the state *before* it updates it (see the README).

Per image, from the unit embedding ``v`` and the static S^3 scores ``s`` (``logits = tau * s``)::

    z_c = tau * (s_c + lam * v . delta_c)
          + tau / 100 * (alpha * sum_{k in K+_c} exp(-beta (1 - v.k)) - alpha_n * sum_{(k, b) in K-} b_c exp(...))
    delta_c = n_c / (n_c + kappa) * (sigma_c / n_c - sigma_g / t)

then the image updates the state under its static pseudo-label (never the adapted one, so nothing feeds back).
Batches are scored one image after another, so results never depend on the batch size.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import torch

from s3_hf.errors import InvalidLabelsError, StreamMismatchError, StreamStateError
from s3_hf.tta.cache import BoundedCache
from s3_hf.tta.config import TS3Config
from s3_hf.tta.saved import SavedState, StateMeta, expect, pack_bits, to_index, unpack_bits

_INTS = (torch.int32, torch.int64)


class TS3State:
    """A bounded TS^3 state for one stream: one set of labels, one model, one space, one config.

    Args:
        config: the options (:class:`~s3_hf.tta.config.TS3Config`).
        labels: the class labels, in score order.
        dim: the embedding size.
        tau: the model's logit scale ``exp(logit_scale)`` (100 for OpenAI CLIP).
        model: the model's name (and revision), recorded so a saved state never loads into another model's stream.
        space_hash: the synonym space's tensor hash, recorded likewise.
    """

    def __init__(
        self,
        config: TS3Config,
        labels: Sequence[str],
        dim: int,
        tau: float,
        model: str = "",
        space_hash: str = "",
    ) -> None:
        if not isinstance(config, TS3Config):
            raise TypeError(f"config must be a TS3Config, got {type(config).__name__}.")
        labels = tuple(labels)
        if not labels or len(set(labels)) != len(labels):
            raise InvalidLabelsError("A TS^3 stream needs at least one class label, without duplicates.")
        self.config = config
        self.labels = labels
        self.dim = int(dim)
        self.tau = float(tau)
        self.model, self.space_hash = model, space_hash
        self._log_c = math.log(len(labels)) / math.log(config.entropy_base) if len(labels) > 1 else 1.0
        self._lock = threading.RLock()
        self.reset()

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def n_seen(self) -> int:
        """Images this state has adapted on."""
        return self._t

    def reset(self) -> None:
        """Forget every image: the next one is scored as the first of a fresh stream."""
        c, d, cfg = self.num_classes, self.dim, self.config
        with self._lock:
            self.pos = BoundedCache(c, cfg.pos_size, d)
            self.neg = BoundedCache(c, cfg.neg_size, d, with_masks=True)
            self.class_sums = torch.zeros(c, d)
            self.class_counts = torch.zeros(c, dtype=torch.int64)
            self.global_sum = torch.zeros(d)
            self._t = 0
            self._shifted = 0  # images in the class sums

    def meta(self) -> StateMeta:
        """What this state is for (labels, model, space, config), with the stream's length."""
        return StateMeta(
            labels=self.labels,
            dim=self.dim,
            tau=self.tau,
            config_hash=self.config.config_hash(),
            config=self.config.to_dict(),
            model=self.model,
            space_hash=self.space_hash,
            n_seen=self._t,
        )

    def check_labels(self, labels: Sequence[str]) -> None:
        """Raise :class:`StreamMismatchError` unless ``labels`` are this stream's labels, in the same order."""
        if tuple(labels) != self.labels:
            raise StreamMismatchError(
                f"This stream adapts over {len(self.labels)} labels {list(self.labels)[:5]}...; it was called with "
                "other labels. Make a new stream for other labels (a stream's state only means something for the "
                "labels it was made with)."
            )

    def __call__(self, feats: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Adapted logits ``(B, C)`` of a batch, scored and absorbed one image after another in batch order.

        Args:
            feats: unit image embeddings ``(B, D)`` (or one, ``(D,)``).
            scores: their static S^3 scores ``(B, C)`` (or ``(C,)``), before the logit scale.
        """
        single = feats.dim() == 1
        feats, scores = self._check_inputs(feats, scores)
        with self._lock:
            out = (
                torch.stack([self._step(v, s) for v, s in zip(feats, scores, strict=True)])
                if len(feats)
                else (torch.zeros(0, self.num_classes))
            )
        return out[0] if single else out

    step = __call__

    def _check_inputs(self, feats: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, scores = torch.atleast_2d(feats), torch.atleast_2d(scores)
        if feats.shape[-1] != self.dim:
            raise StreamMismatchError(
                f"This stream was made for {self.dim}-dimensional embeddings and got {feats.shape[-1]}-dimensional "
                "ones: they come from another model. Feed it images encoded by the model it was made with."
            )
        if scores.shape != (len(feats), self.num_classes):
            raise StreamMismatchError(
                f"Expected scores of shape ({len(feats)}, {self.num_classes}) (one per image and label), got "
                f"{tuple(scores.shape)}: were they computed for other labels?"
            )
        return feats.detach().to("cpu", torch.float32), scores.detach().to("cpu", torch.float32)

    def _step(self, v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        logits = self.tau * s
        logp = torch.log_softmax(logits, 0)
        h = float((-(logp.exp() * logp).sum() / self._log_c).item()) if self.num_classes > 1 else 0.0
        y = int(logits.argmax())
        if self.config.tda_compat:
            self._absorb(v, logp, h, y)
            return self._score(v, s, logits)
        z = self._score(v, s, logits)
        self._absorb(v, logp, h, y)
        return z

    def _score(self, v: torch.Tensor, s: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        cfg, z = self.config, logits
        if cfg.lam and self._shifted:
            n = self.class_counts.to(torch.float32)
            means = (self.class_sums @ v) / n.clamp(min=1) - float(self.global_sum @ v) / self._t
            along = torch.where(n > 0, n / (n + cfg.kappa) * means, 0.0)
            z = self.tau * (s + cfg.lam * along)
        term = None
        if cfg.pos_alpha and self.pos.items:
            term = cfg.pos_alpha * self.pos.class_term(v, cfg.pos_beta)
        if cfg.neg_alpha and self.neg.items:
            neg = cfg.neg_alpha * self.neg.mask_term(v, cfg.neg_beta)
            term = -neg if term is None else term - neg
        if term is None:
            return z
        # one rounding to float32 at the end: logits near 50 have an ulp of 4e-6, so two roundings would show
        return (z.double() + (self.tau / 100.0) * term.double()).float()

    def _absorb(self, v: torch.Tensor, logp: torch.Tensor, h: float, y: int) -> None:
        cfg, i = self.config, self._t
        self.pos.insert(y, v, h, i)
        if cfg.neg_entropy_low < h < cfg.neg_entropy_high:
            p = logp.exp()
            self.neg.insert(y, v, h, i, (p > cfg.neg_mask_low) & (p < cfg.neg_mask_high))
        if h <= cfg.shift_entropy:
            self.class_sums[y] += v
            self.class_counts[y] += 1
            self._shifted += 1
        self.global_sum += v
        self._t += 1

    def state_dict(self) -> SavedState:
        """The state as tensors (bounded, whatever the stream's length) plus its metadata; a copy."""
        with self._lock:
            tensors = {
                "pos_keys": self.pos.keys.clone(),
                "pos_entropy": self.pos.entropy.clone(),
                "pos_arrival": to_index(self.pos.arrival),
                "neg_keys": self.neg.keys.clone(),
                "neg_entropy": self.neg.entropy.clone(),
                "neg_arrival": to_index(self.neg.arrival),
                "neg_masks": pack_bits(self.neg.masks),
                "class_sums": self.class_sums.clone(),
                "global_sum": self.global_sum.clone(),
                "counts": to_index(torch.cat([self.class_counts, torch.tensor([self._t])])),
            }
            return SavedState(tensors, self.meta())

    def load_state_dict(self, saved: SavedState) -> None:
        """Continue from ``saved``: everything is checked first, so a refused state leaves this one untouched.

        Raises:
            StreamMismatchError: the state was saved by a stream with other labels, model, space or options.
            StreamStateError: the state is damaged or incomplete.
        """
        if not isinstance(saved, SavedState):
            raise StreamStateError(f"Expected a SavedState (from state_dict() or SavedState.load), got {saved!r}.")
        saved.meta.check_matches(self.meta())
        parts = self._rebuild(saved)
        with self._lock:
            self.pos, self.neg, self.class_sums, self.class_counts, self.global_sum, self._t = parts
            self._shifted = int(self.class_counts.sum())

    def _rebuild(self, saved: SavedState) -> tuple:
        c, d, cfg, t = self.num_classes, self.dim, self.config, saved.tensors
        f32 = (torch.float32,)
        counts = expect(t, "counts", (c + 1,), _INTS).to(torch.int64)
        n_seen = int(counts[-1])
        if (counts < 0).any() or int(counts[:-1].sum()) > n_seen or n_seen != saved.meta.n_seen:
            raise StreamStateError("The saved counts are inconsistent with the stream's length: the state is damaged.")
        caches = []
        for name, size in (("pos", cfg.pos_size), ("neg", cfg.neg_size)):
            masks = unpack_bits(t.get("neg_masks", torch.zeros(0)), (c, size, c)) if name == "neg" else None
            caches.append(
                BoundedCache.from_tensors(
                    expect(t, f"{name}_keys", (c, size, d), f32),
                    expect(t, f"{name}_entropy", (c, size), f32),
                    expect(t, f"{name}_arrival", (c, size), _INTS).to(torch.int64),
                    masks,
                    n_seen,
                    "positive" if name == "pos" else "negative",
                )
            )
        sums, total = expect(t, "class_sums", (c, d), f32), expect(t, "global_sum", (d,), f32)
        if not (torch.isfinite(sums).all() and torch.isfinite(total).all()):
            raise StreamStateError("The saved running sums hold non-finite values: the state is damaged.")
        return caches[0], caches[1], sums.clone(), counts[:-1].clone(), total.clone(), n_seen


__all__ = ["TS3State"]
