"""Test-time adaptation below the engine, pure tensors: TS^3 (synonym spaces that shift with the stream) and TDA.

The options (:class:`TS3Config`) import without torch, so the command line can build its flags from them; the
state, its saved form and TDA are loaded on first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from s3_hf.tta.config import TS3_VERSION, TS3Config, tda_config

_LAZY = {"SavedState": ".saved", "StateMeta": ".saved", "TS3State": ".state", "TDA": ".tda"}

if TYPE_CHECKING:
    from s3_hf.tta.saved import SavedState, StateMeta
    from s3_hf.tta.state import TS3State
    from s3_hf.tta.tda import TDA


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 's3_hf.tta' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["TDA", "TS3_VERSION", "SavedState", "StateMeta", "TS3Config", "TS3State", "tda_config"]
