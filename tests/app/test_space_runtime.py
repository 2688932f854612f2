"""The Space at run time: ZeroGPU's ``spaces.GPU`` wraps the requests that run the model exactly where the ``spaces``
package imports (a stand-in module here; the real one is not installed), and the example photos' results are cached
lazily: nothing runs when the app is built or launched, the first pick computes them, later picks read the cache."""

from __future__ import annotations

import asyncio
import functools
import sys
import types
from pathlib import Path

import gradio as gr
import pytest

from s3_hf.app.gpu import gpu
from s3_hf.app.handlers import AppHandlers
from s3_hf.app.settings import AppSettings
from s3_hf.app.ui import EXAMPLE_LABELS, create_app

MODEL_REQUESTS = {"classify", "segment"}


def fake_spaces() -> types.ModuleType:
    """A stand-in for the ``spaces`` package: ``GPU(fn)`` returns a wrapper marked ``zerogpu`` (as the real one does
    on ZeroGPU hardware) and records ``fn``."""
    module = types.ModuleType("spaces")
    module.wrapped = []

    def GPU(fn):  # the package's own spelling
        @functools.wraps(fn)
        def on_gpu(*args, **kwargs):
            return fn(*args, **kwargs)

        on_gpu.zerogpu = None
        module.wrapped.append(fn)
        return on_gpu

    module.GPU = GPU
    return module


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    from s3_hf.engine import S3Engine

    return S3Engine.from_pretrained(tiny_clip_dir)


@pytest.fixture
def settings(tiny_clip_dir) -> AppSettings:
    return AppSettings(model=str(tiny_clip_dir))


@pytest.fixture
def examples_made(monkeypatch) -> list[gr.Examples]:
    """Every ``gr.Examples`` the app builds."""
    made: list[gr.Examples] = []
    create = gr.Examples  # gradio's factory function

    def recorded(*args, **kwargs):
        made.append(create(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(gr, "Examples", recorded)
    return made


def labels_shown(label_output) -> set[str]:
    """The classes a ``gr.Label`` output shows (its cached value is Gradio's LabelData)."""
    data = label_output.model_dump() if hasattr(label_output, "model_dump") else label_output
    return {c["label"] for c in data["confidences"]}


def event_functions(app: gr.Blocks) -> dict[str, object]:
    return {f.api_name: f.fn for f in app.fns.values() if isinstance(f.api_name, str)}


def test_gpu_wraps_only_where_the_spaces_package_imports(monkeypatch):
    def handler(x):
        return x + 1

    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError
    assert gpu(handler) is handler
    fake = fake_spaces()
    monkeypatch.setitem(sys.modules, "spaces", fake)
    wrapped = gpu(handler)
    assert wrapped is not handler and hasattr(wrapped, "zerogpu") and wrapped(1) == 2 and fake.wrapped == [handler]


def test_the_apps_model_requests_run_under_spaces_gpu(engine, settings, monkeypatch, examples_made, tmp_path):
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "cache"))
    fake = fake_spaces()
    monkeypatch.setitem(sys.modules, "spaces", fake)
    fns = event_functions(create_app(engine, settings))
    for name in MODEL_REQUESTS:
        assert hasattr(fns[name], "zerogpu"), name
    assert not hasattr(fns["adaptation"], "zerogpu") and not hasattr(fns["reset_adaptation"], "zerogpu")
    (examples,) = examples_made
    assert hasattr(examples.fn, "zerogpu") and len(fake.wrapped) == 3  # classify, segment, the examples' classify


def test_without_the_spaces_package_nothing_is_wrapped(engine, settings, monkeypatch, examples_made, tmp_path):
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "spaces", None)
    fns = event_functions(create_app(engine, settings))
    assert fns["classify"].__func__ is AppHandlers.classify and fns["segment"].__func__ is AppHandlers.segment
    (examples,) = examples_made
    assert not hasattr(examples.fn, "zerogpu")


def test_example_results_are_cached_lazily(engine, settings, monkeypatch, examples_made, tmp_path):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(cache))
    monkeypatch.setitem(sys.modules, "spaces", None)
    calls = []
    classify = AppHandlers.classify

    def counted(self, *args, **kwargs):
        calls.append(args[1:])
        return classify(self, *args, **kwargs)

    monkeypatch.setattr(AppHandlers, "classify", counted)
    create_app(engine, settings)
    (examples,) = examples_made
    assert examples.cache_examples == "lazy"
    asyncio.run(examples._start_caching())  # what the app runs when it launches
    assert calls == [] and not cache.exists()  # building and launching computed nothing

    s3, clip, details, plot = examples.load_from_cache(1)  # the first pick of the coffee photo
    assert len(calls) == 1 and any(Path(cache).rglob("log.csv"))
    labels, space, metric, _table, top_k = calls[0]
    assert (labels, space, metric, top_k) == (EXAMPLE_LABELS, "", "local_center", 5)
    shown = labels_shown(s3)
    assert shown and shown <= {label.strip() for label in EXAMPLE_LABELS.split(",")}
    assert labels_shown(clip) == shown
    assert details and plot is not None

    again = examples.load_from_cache(1)
    assert len(calls) == 1 and labels_shown(again[0]) == shown  # served from the cache


def test_a_space_built_for_a_synonym_space_shows_its_classes_in_the_examples(
    engine, tiny_clip_dir, small_space, monkeypatch, examples_made, tmp_path
):
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "cache"))
    folder = small_space.save_pretrained(tmp_path / "pets")
    settings = AppSettings.from_env({"S3_MODEL": str(tiny_clip_dir), "S3_SPACE": str(folder)})
    create_app(engine, settings)
    (examples,) = examples_made
    row = examples.examples[0]
    assert row[1:3] == ["", str(folder)]  # no typed labels: the space's classes
    s3, *_ = examples.load_from_cache(0)
    assert labels_shown(s3) <= set(small_space.labels)
