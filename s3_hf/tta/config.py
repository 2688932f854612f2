"""The options of TS^3, test-time adaptation of synonym spaces (:class:`TS3Config`), every default written once.

TS^3 as this project defines it (the paper publishes no formulas): static S^3 logits, plus a centred, shrunk shift
that translates each class's local centre, plus TDA-style positive and negative caches. The cache values and
thresholds are TDA's (kdiAAA/TDA, CVPR 2024); ``shift_entropy`` is DPE's 0.1 on this entropy scale; ``lam`` and
``kappa`` are ours (pick ``lam`` on a development split, never on a reported test set).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, fields
from typing import Any

from s3_hf.errors import InvalidConfigError
from s3_hf.validation import flag, integer, known_fields, number

#: Changes whenever the definition of TS^3 changes, so a saved state never meets a different rule.
TS3_VERSION = "ts3-1"

_SIZE_HINT = "Use 0 to turn that cache off."
_ENTROPY_HINT = (
    "Entropy bounds are fractions of the largest entropy (strictly between 0 and 1); with tda_compat=True they are "
    "read on TDA's scale (H / log2 C), e.g. TDA's (0.2, 0.5)."
)


@dataclass(frozen=True)
class TS3Config:
    """Options of a TS^3 stream (see ``TS3State``).

    Args:
        pos_size: positive cache items per class (S+).
        pos_alpha: weight of the positive cache term (alpha).
        pos_beta: sharpness of the positive cache term (beta).
        neg_size: negative cache items per class (S-).
        neg_alpha: weight of the negative cache term (alpha_n).
        neg_beta: sharpness of the negative cache term (beta_n).
        neg_entropy_low: an image enters the negative cache only if its entropy is above this ...
        neg_entropy_high: ... and below this.
        neg_mask_low: a negative item marks the classes whose probability is above this ...
        neg_mask_high: ... and below this.
        shift_entropy: images at or below this entropy feed their class's running sum (h_mu).
        lam: weight of the class shift (lambda; 0 turns it off).
        kappa: shrinkage of a class mean built from few images toward the global mean.
        tda_compat: TDA's order (update the caches before scoring, so each image sees itself) and TDA's entropy
            (H / log2 C instead of H / ln C).
    """

    pos_size: int = 3
    pos_alpha: float = 2.0
    pos_beta: float = 5.0
    neg_size: int = 2
    neg_alpha: float = 0.117
    neg_beta: float = 1.0
    neg_entropy_low: float = 0.2885
    neg_entropy_high: float = 0.7213
    neg_mask_low: float = 0.03
    neg_mask_high: float = 1.0
    shift_entropy: float = 0.1443
    lam: float = 0.1
    kappa: float = 3.0
    tda_compat: bool = False

    def __post_init__(self) -> None:
        integer("pos_size", self.pos_size, 0, hint=_SIZE_HINT)
        integer("neg_size", self.neg_size, 0, hint=_SIZE_HINT)
        for name in ("pos_alpha", "pos_beta", "neg_alpha", "neg_beta", "lam", "kappa"):
            number(name, getattr(self, name), low=0, finite=True)
        for name in ("neg_entropy_low", "neg_entropy_high", "shift_entropy"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1):
                raise InvalidConfigError(f"{name} must be a number in (0, 1), got {value!r}. {_ENTROPY_HINT}")
        if not self.neg_entropy_low < self.neg_entropy_high:
            raise InvalidConfigError(
                f"neg_entropy_low ({self.neg_entropy_low!r}) must be below neg_entropy_high "
                f"({self.neg_entropy_high!r}). {_ENTROPY_HINT}"
            )
        number("neg_mask_low", self.neg_mask_low, low=0, high=1)
        number("neg_mask_high", self.neg_mask_high, low=0, high=1)
        if not self.neg_mask_low < self.neg_mask_high:
            raise InvalidConfigError(
                f"neg_mask_low ({self.neg_mask_low!r}) must be below neg_mask_high ({self.neg_mask_high!r}): "
                "a negative item marks the classes whose probability lies between them."
            )
        flag("tda_compat", self.tda_compat)

    @property
    def entropy_base(self) -> float:
        """The base of the logarithm the largest entropy ``log C`` is taken in: e, or 2 with ``tda_compat``."""
        return 2.0 if self.tda_compat else math.e

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TS3Config:
        return cls(**known_fields(cls, data, "TS^3"))

    def config_hash(self) -> str:
        """sha256 of the options (and of the definition's version): equal configs, equal hashes, in any process."""
        values = {k: float(v) if isinstance(v, float) else v for k, v in self.to_dict().items()}
        text = json.dumps({"version": TS3_VERSION, **values}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def tda_config(**overrides: Any) -> TS3Config:
    """TDA as published (ImageNet config, no class shift, TDA's order and entropy scale), with ``overrides``.

    Args:
        overrides: any :class:`TS3Config` option.
    """
    values: dict[str, Any] = {
        "neg_entropy_low": 0.2,
        "neg_entropy_high": 0.5,
        "shift_entropy": 0.1,
        "lam": 0.0,
        "tda_compat": True,
    }
    return TS3Config(**{**values, **overrides})


@dataclass(frozen=True)
class ZeroConfig:
    """Options of ZERO-S^3, the stateless alternative (``tta="zero"``): S^3 scores of many augmented views of each
    image, the most confident views kept, one vote each (ZERO, Farina et al., NeurIPS 2024). No state and no order
    dependence; about ``views`` times the encoder's compute per image. The scores are vote fractions: not
    calibrated probabilities.

    Args:
        views: views per image: the image itself plus ``views - 1`` random resized crops (area ``scale``, aspect
            ``ratio``) at the model's input size, each flipped left-right with probability 1/2 (ZERO: 64).
        keep: the fraction of views, lowest entropy first, that vote (ZERO's gamma: 0.3, so 19 of 64).
        seed: the crops of an image come from a generator seeded by (seed, the image's pixels), so an image gets the
            same views in any call, position or batch.
        scale: the crops' area, as fractions of the image's.
        ratio: the crops' aspect ratio (width / height) range.
    """

    views: int = 64
    keep: float = 0.3
    seed: int = 0
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        integer("views", self.views, 1)
        number("keep", self.keep, low=0, high=1, open_low=True)
        integer("seed", self.seed, 0)
        if int(self.views * self.keep) < 1:
            raise InvalidConfigError(
                f"keep={self.keep!r} of {self.views} views keeps none: raise keep or views (ZERO: 0.3 of 64)."
            )
        for name, low in (("scale", 0.0), ("ratio", 0.0)):
            pair = getattr(self, name)
            if not (
                isinstance(pair, tuple | list)
                and len(pair) == 2
                and all(isinstance(x, int | float) and not isinstance(x, bool) and x > low for x in pair)
                and pair[0] <= pair[1]
            ):
                raise InvalidConfigError(f"{name} must be two positive numbers (low, high), got {pair!r}.")
        if self.scale[1] > 1:
            raise InvalidConfigError(f"scale is a fraction of the image's area, at most 1; got {self.scale!r}.")

    @property
    def voters(self) -> int:
        """How many views vote: ``int(views * keep)``, as ZERO counts them."""
        return int(self.views * self.keep)


__all__ = ["TS3_VERSION", "TS3Config", "ZeroConfig", "tda_config"]
