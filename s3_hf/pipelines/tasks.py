"""The pipeline task name and its lazy registration with transformers.

``import s3_hf`` must stay light (no transformers) yet make ``pipeline("s3-zero-shot-classification")`` and
``pipeline("s3-open-vocabulary-segmentation")`` work.
So registration is deferred: if transformers' pipelines are already imported the task is registered at once,
otherwise a one-shot import hook registers it right after ``transformers.pipelines`` finishes loading.
"""

from __future__ import annotations

import importlib
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


#: task -> (module, class): the pipelines, imported by name when transformers' pipelines are (see ``register``).
PIPELINES = {
    TASK: ("s3_hf.pipelines.classification", "S3ZeroShotImageClassificationPipeline"),
    SEGMENTATION_TASK: ("s3_hf.pipelines.segmentation", "S3OpenVocabularySegmentationPipeline"),
}


def register() -> None:
    """Register the tasks with transformers: the one registration point. It runs when transformers' pipelines finish
    loading after ``import s3_hf``, and at the end of each pipeline module; while a pipeline module is still being
    imported (it imports transformers' pipelines first) it waits for that module's own call."""
    for module_name, class_name in PIPELINES.values():
        module = sys.modules.get(module_name)
        if module is not None and not hasattr(module, class_name):
            return
    from transformers import AutoModelForZeroShotImageClassification
    from transformers.pipelines import PIPELINE_REGISTRY, SUPPORTED_TASKS

    for task, (module_name, class_name) in PIPELINES.items():
        cls = getattr(importlib.import_module(module_name), class_name)  # its import may register it
        if task in PIPELINE_REGISTRY.supported_tasks:
            continue
        PIPELINE_REGISTRY.register_pipeline(
            task,
            pipeline_class=cls,
            pt_model=AutoModelForZeroShotImageClassification,
            default=SUPPORTED_TASKS["zero-shot-image-classification"]["default"],
            type="multimodal",
        )


class _Loader(importlib.abc.Loader):
    """Runs the real loader, then registers the task."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        register()

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
        register()
        return
    with _lock:
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


__all__ = ["PIPELINES", "SEGMENTATION_TASK", "TASK", "install", "register"]
