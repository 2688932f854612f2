"""A TS^3 state as tensors plus JSON metadata (:class:`SavedState`), and as a safetensors file.

The tensors are the bounded state and nothing else, so their size never grows with the stream: per cache item its
key, entropy and arrival index (``(D + 2) * 4`` bytes), the negative masks packed to one bit per class, and the
per-class and global running sums with their counts (``(C + 1) * (D + 1) * 4`` bytes).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from s3_hf.errors import StreamMismatchError, StreamStateError

STATE_FORMAT = "s3-tta-state-1"
_META_KEY = "s3_tta"
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class StateMeta:
    """What a state was made for: a state loads only into a stream made for the same things."""

    labels: tuple[str, ...]
    dim: int
    tau: float
    config_hash: str
    config: dict[str, Any]
    model: str = ""
    space_hash: str = ""
    n_seen: int = 0
    format: str = STATE_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, data: Any) -> StateMeta:
        try:
            meta = cls(**{**data, "labels": tuple(data["labels"])})
        except (TypeError, KeyError) as e:
            raise StreamStateError(
                f"The state's metadata is incomplete or malformed ({e}). Save the state again."
            ) from e
        if meta.format != STATE_FORMAT:
            raise StreamStateError(
                f"The state was written in format {meta.format!r}; this release reads "
                f"{STATE_FORMAT!r}. Start a new stream."
            )
        return meta

    def check_matches(self, mine: StateMeta) -> None:
        """Raise :class:`StreamMismatchError` unless this saved state was made for the same stream as ``mine``."""
        for what in ("labels", "model", "space_hash", "config_hash", "dim", "tau"):
            theirs, ours = getattr(self, what), getattr(mine, what)
            if theirs != ours:
                shown = (f"{len(theirs)} labels", f"{len(ours)} labels") if what == "labels" else (theirs, ours)
                raise StreamMismatchError(
                    f"This state was saved by a stream with another {what} ({shown[0]!r}, this stream has "
                    f"{shown[1]!r}). Load it into a stream made with the same labels, model, space and options, "
                    "or start from a fresh stream."
                )


@dataclass
class SavedState:
    """A state's tensors and its metadata (see :meth:`~s3_hf.tta.state.TS3State.state_dict`)."""

    tensors: dict[str, torch.Tensor]
    meta: StateMeta

    def nbytes(self) -> int:
        """Bytes held by the tensors."""
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def save(self, path: str | os.PathLike) -> Path:
        """Write the state as one safetensors file at ``path`` (atomically), the metadata as JSON inside it."""
        from s3_hf.io.files import save_tensors

        return save_tensors(path, self.tensors, metadata={_META_KEY: json.dumps(self.meta.to_dict())})

    @classmethod
    def load(cls, path: str | os.PathLike) -> SavedState:
        """Read a file :meth:`save` wrote; a :class:`StreamStateError` when it is damaged or not one."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}
                raw = (f.metadata() or {}).get(_META_KEY)
        except FileNotFoundError:
            raise
        except Exception as e:  # safetensors raises its own error types for damaged headers and data
            raise StreamStateError(f"{path} is not a readable state file ({e}). Save the state again.") from e
        if raw is None:
            raise StreamStateError(f"{path} holds tensors but no TS^3 state metadata: it is not a saved state.")
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise StreamStateError(f"{path}: the state's metadata is not JSON ({e}). Save the state again.") from e
        return cls(tensors, StateMeta.from_dict(data))


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A bool tensor flattened to bytes, eight entries per byte (the last byte padded with zeros)."""
    flat = mask.flatten().to(torch.uint8)
    pad = (-len(flat)) % 8
    flat = torch.cat([flat, flat.new_zeros(pad)]).view(-1, 8)
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
    return (flat * weights).sum(1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The inverse of :func:`pack_bits` for a mask of ``shape``."""
    n = 1
    for s in shape:
        n *= s
    if packed.dtype != torch.uint8 or packed.shape != ((n + 7) // 8,):
        raise StreamStateError(
            f"The saved negative masks have shape {tuple(packed.shape)}, expected ({(n + 7) // 8},)."
        )
    bits = packed[:, None].bitwise_right_shift(torch.arange(7, -1, -1, dtype=torch.uint8)) & 1
    return bits.flatten()[:n].bool().view(shape)


def to_index(x: torch.Tensor) -> torch.Tensor:
    """Counts and arrival indices as int32 (int64 only for streams past 2**31 images)."""
    small = x.numel() == 0 or int(x.max()) <= _INT32_MAX
    return x.to(torch.int32 if small else torch.int64)


def expect(
    tensors: dict[str, torch.Tensor], name: str, shape: tuple[int, ...], kinds: tuple[torch.dtype, ...]
) -> torch.Tensor:
    """``tensors[name]`` if it has ``shape`` and one of the dtypes ``kinds``; a :class:`StreamStateError` otherwise."""
    t = tensors.get(name)
    if t is None:
        raise StreamStateError(f"The saved state has no tensor {name!r}: it is incomplete. Save the state again.")
    if tuple(t.shape) != shape or t.dtype not in kinds:
        raise StreamStateError(
            f"The saved tensor {name!r} is {t.dtype} {tuple(t.shape)}, expected {kinds[0]} {shape}: the state "
            "belongs to another stream or is damaged."
        )
    return t


__all__ = ["STATE_FORMAT", "SavedState", "StateMeta", "expect", "pack_bits", "to_index", "unpack_bits"]
