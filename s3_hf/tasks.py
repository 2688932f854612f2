"""The pipeline task name and its lazy registration with transformers.

``import s3_hf`` must stay light (no transformers) yet make ``pipeline("s3-zero-shot-classification")`` and
``pipeline("s3-open-vocabulary-segmentation")`` work.
So registration is deferred: if transformers' pipelines are already imported the task is registered at once,
otherwise a one-shot import hook registers it right after ``transformers.pipelines`` finishes loading.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from types import ModuleType
from typing import Any

TASK = "s3-zero-shot-classification"
SEGMENTATION_TASK = "s3-open-vocabulary-segmentation"
_TARGET = "transformers.pipelines"
_lock = threading.Lock()


def _register() -> None:
    pipeline = sys.modules.get(f"{__package__}.pipeline")
    if pipeline is not None and not hasattr(pipeline, "register"):
        return  # s3_hf.pipeline is being imported (it imports transformers' pipelines) and registers itself
    segment = sys.modules.get(f"{__package__}.segment_pipeline")
    if segment is not None and not hasattr(segment, "S3OpenVocabularySegmentationPipeline"):
        return  # likewise s3_hf.segment_pipeline: it registers both tasks once its class exists
    from .pipeline import register

    register()


class _Loader(importlib.abc.Loader):
    """Runs the real loader, then registers the task."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _register()

    def __getattr__(self, name: str) -> Any:  # e.g. get_resource_reader, is_package
        return getattr(self.loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``transformers.pipelines`` with the other finders and wraps its loader; removes itself once used."""

    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None) -> Any:
        if fullname != _TARGET:
            return None
        _uninstall()
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader)
        return spec


_finder = _Finder()


def _uninstall() -> None:
    with _lock:
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)


def install() -> None:
    """Register the task now if transformers' pipelines are loaded, else when they are."""
    if _TARGET in sys.modules:
        _register()
        return
    with _lock:
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


__all__ = ["SEGMENTATION_TASK", "TASK", "install"]
