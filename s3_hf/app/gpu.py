"""ZeroGPU: the app's GPU work runs under ``spaces.GPU`` where the ``spaces`` package imports.

On a ZeroGPU Space a GPU is attached to the process only while a function decorated with ``spaces.GPU`` runs; the
engine is moved to ``cuda`` at start-up (the package makes CUDA look available until then). Elsewhere (CPU or
classic GPU Spaces, a laptop) ``spaces.GPU`` returns the function unchanged, and where the package is not installed
:func:`gpu` does the same: the app never depends on it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


def gpu(fn: F) -> F:
    """``fn`` decorated with ``spaces.GPU`` when the ``spaces`` package imports, else ``fn`` itself.

    Looked up when called (not when this module is imported), so the app built in a process decides.

    Args:
        fn: a request handler that runs the model.
    """
    try:
        spaces = importlib.import_module("spaces")
    except ImportError:
        return fn
    return spaces.GPU(fn)


__all__ = ["gpu"]
