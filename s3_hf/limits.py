"""Operator limits: the bounds every face checks before it allocates, each with a safe default and an environment
variable to change it. The one place a limit is defined; code reads it with :func:`get`, never a literal.

A limit protects a shared process (the Gradio app, a server around the pipeline) from one input that would take
all its memory or time. A user with a big machine and a real need raises it, e.g. ``S3_MAX_IMAGE_PIXELS=200e6``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from s3_hf.errors import InvalidConfigError


@dataclass(frozen=True)
class Limit:
    """One bound: its environment variable, its default and what it bounds (for messages and the README)."""

    env: str
    default: float
    what: str

    def get(self) -> float:
        """The bound in force: the environment variable when it is set, else the default."""
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default
        try:
            value = float(raw)
        except ValueError as err:
            raise InvalidConfigError(
                f"{self.env}={raw!r} is not a number; unset it or give one (default {self.default:g})."
            ) from err
        if not value > 0 or value != value or value == float("inf"):
            raise InvalidConfigError(f"{self.env}={raw!r} must be a positive finite number (default {self.default:g}).")
        return value

    def hint(self) -> str:
        """The sentence that tells a user how to raise the bound."""
        return f"The limit is {self.get():g} ({self.what}); set {self.env} to raise it."


#: Every limit, by name.
LIMITS: dict[str, Limit] = {}


def register(name: str, env: str, default: float, what: str) -> Limit:
    """Define a limit (module level, once)."""
    if name in LIMITS:
        raise ValueError(f"limit {name!r} is defined twice")
    LIMITS[name] = Limit(env, default, what)
    return LIMITS[name]


def get(name: str) -> float:
    """The value in force of the limit ``name``."""
    return LIMITS[name].get()


# The limits, defined here and nowhere else, each with a default that keeps a 2-core, few-GB process alive:
# NAME = register("name", "S3_ENV_VAR", default, "what it bounds")
SCORING_STATE_MB = register(
    "scoring_state_mb", "S3_MAX_SCORING_MB", 1024, "MB a space's dense scoring view may take, classes x largest class"
)
IMAGE_PIXELS = register("image_pixels", "S3_MAX_IMAGE_PIXELS", 50e6, "pixels of a decoded input image")
IMAGE_ASPECT = register("image_aspect", "S3_MAX_IMAGE_ASPECT", 20, "ratio of an input image's long side to its short")
SEGMENT_PIXELS = register(
    "segment_pixels", "S3_MAX_SEGMENT_PIXELS", 1e6, "pixels of the resized image segmentation slides its window over"
)
MODEL_PARAMS = register(
    "model_params", "S3_MAX_MODEL_PARAMS", 3e9, "parameters of a model initialised at random from a config alone"
)
STALE_TEMP_MINUTES = register(
    "stale_temp_minutes", "S3_STALE_TEMP_MINUTES", 60, "minutes before a killed save's temp folder or file is removed"
)


__all__ = ["LIMITS", "Limit", "get", "register"]
