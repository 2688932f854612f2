"""Test-time adaptation below the engine, pure tensors: TS^3 (synonym spaces that shift with the stream), TDA, and
the stateless ZERO-S^3 (:class:`ZeroConfig`, :mod:`s3_hf.tta.zero`).

The options (:class:`TS3Config`) import without torch, so the command line can build its flags from them; the
state, its saved form and TDA are loaded on first use.
"""

from typing import TYPE_CHECKING

from s3_hf._lazy import lazy_exports
from s3_hf.tta.config import TS3_VERSION, TS3Config, ZeroConfig, tda_config

_LAZY = {"SavedState": ".saved", "StateMeta": ".saved", "TS3State": ".state", "TDA": ".tda"}

if TYPE_CHECKING:
    from s3_hf.tta.saved import SavedState, StateMeta
    from s3_hf.tta.state import TS3State
    from s3_hf.tta.tda import TDA


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["TDA", "TS3_VERSION", "SavedState", "StateMeta", "TS3Config", "TS3State", "ZeroConfig", "tda_config"]
