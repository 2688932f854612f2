"""Test-time adaptation below the engine, pure tensors: TS^3 (synonym spaces that shift with the stream) and TDA."""

from s3_hf.tta.config import TS3_VERSION, TS3Config, tda_config
from s3_hf.tta.saved import SavedState, StateMeta
from s3_hf.tta.state import TS3State
from s3_hf.tta.tda import TDA

__all__ = ["TDA", "TS3_VERSION", "SavedState", "StateMeta", "TS3Config", "TS3State", "tda_config"]
