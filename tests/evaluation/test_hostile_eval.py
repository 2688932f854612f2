"""Hostile and careless inputs to `s3 eval` and `s3 card`: benchmarks that share a name or change, files in --out
that s3 eval did not write, damaged earlier results, missing prerequisites, results that do not belong in a card;
and the gain figure, written whole or not at all."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from s3_hf.cli import main
from s3_hf.errors import EvalError, InvalidLabelsError, S3Error, WordNetMissingError

DEEP = "[" * 100_000 + "]" * 100_000  # parses to RecursionError in json


def image_folder(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """A tiny benchmark: one sub-folder per class with ``counts[class]`` 24x24 random PNGs."""
    rng = np.random.default_rng(seed)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def runner():
    from s3_hf.evaluation import runner

    return runner


@pytest.fixture
def no_model(monkeypatch):
    """Any model load or image encoding fails the test: what is checked must be checked before either."""
    from s3_hf.engine.core import S3Engine
    from s3_hf.models.encoders import Encoder

    def fail(*args, **kwargs):
        raise AssertionError("a model was loaded or an image encoded before the prerequisites were checked")

    monkeypatch.setattr(S3Engine, "from_pretrained", classmethod(fail))
    for name in ("encode_image_batches", "encode_pixels", "encode_images"):
        if hasattr(Encoder, name):
            monkeypatch.setattr(Encoder, name, fail)


def config(runner, model: Path, benchmarks: list[Path | str], out: Path, **kw):
    flags = {"synonyms": [], "batch_size": 8, **kw}
    return runner.EvalConfig.from_flags(
        model=str(model), benchmarks=[str(b) for b in benchmarks], out=str(out), **flags
    )


# ------------------------------------------------------------------------------- identity of a benchmark
def test_same_base_name_reports_each_benchmarks_own_numbers(tiny_clip_dir, tmp_path, runner):
    a = image_folder(tmp_path / "a" / "test", {"cat": 1, "dog": 2})
    b = image_folder(tmp_path / "b" / "test", {"cat": 2, "dog": 3, "fox": 1}, seed=1)
    out = tmp_path / "out"
    summary = runner.run(config(runner, tiny_clip_dir, [a, b], out)).to_dict()
    benches = summary["benchmarks"]
    assert set(benches) == {"a/test", "b/test"}
    assert (benches["a/test"]["samples"], benches["b/test"]["samples"]) == (3, 6)
    assert benches["b/test"]["class_names"] == ["cat", "dog", "fox"]
    files = {benches[n]["files"]["results"] for n in benches}
    assert len(files) == 2 and all((out / f).is_file() for f in files)
    assert json.loads((out / "results.json").read_text())["benchmarks"].keys() == {"a/test", "b/test"}
    table = (out / "results.md").read_text()
    assert "| a/test | 3 |" in table and "| b/test | 6 |" in table


def test_two_runs_into_one_out_and_changed_data_are_recomputed(tiny_clip_dir, tmp_path, runner, monkeypatch):
    a = image_folder(tmp_path / "a" / "test", {"cat": 1, "dog": 2})
    b = image_folder(tmp_path / "b" / "test", {"cat": 2, "dog": 3, "fox": 1}, seed=1)
    out = tmp_path / "out"
    assert runner.run(config(runner, tiny_clip_dir, [a], out)).to_dict()["benchmarks"]["test"]["samples"] == 3
    second = runner.run(config(runner, tiny_clip_dir, [b], out)).to_dict()["benchmarks"]["test"]
    assert second["samples"] == 6 and second["identity"]["path"] == str(b.resolve())
    # the same folder, one image more: its fingerprint changes and it is evaluated again
    image_folder(b, {"fox": 2}, seed=2)
    third = runner.run(config(runner, tiny_clip_dir, [b], out)).to_dict()["benchmarks"]["test"]
    assert third["samples"] == 7 and third["identity"]["fingerprint"] != second["identity"]["fingerprint"]
    # unchanged: reused, nothing encoded
    monkeypatch.setattr(runner, "image_embeddings", lambda *a, **k: pytest.fail("a finished benchmark re-encoded"))
    assert runner.run(config(runner, tiny_clip_dir, [b], out)).to_dict()["benchmarks"]["test"] == third


def test_benchmark_named_results_does_not_overwrite_the_runs_results(tiny_clip_dir, tmp_path, runner):
    bench = image_folder(tmp_path / "results", {"cat": 1, "dog": 1})
    out = tmp_path / "out"
    runner.run(config(runner, tiny_clip_dir, [bench], out))
    summary = json.loads((out / "results.json").read_text())
    assert summary["benchmarks"]["results"]["samples"] == 2 and "model" in summary
    assert summary["benchmarks"]["results"]["files"]["results"] not in {"results.json", "results.md"}


# ------------------------------------------------------------------------------------- files in --out
@pytest.fixture(scope="module")
def finished(tiny_clip_dir, tmp_path_factory):
    """An --out of one finished run, and its benchmark, to copy and tamper with."""
    from s3_hf.evaluation import runner

    root = tmp_path_factory.mktemp("finished")
    bench = image_folder(root / "bench", {"cat": 1, "dog": 2})
    runner.run(config(runner, tiny_clip_dir, [bench], root / "out"))
    return root / "out", bench


def _user_file(name: str):
    def tamper(out: Path, rec: dict) -> None:
        (out / name).unlink()
        (out / name).write_text("my own notes\n")
        manifest = json.loads((out / ".s3_eval_files.json").read_text())
        manifest["files"].remove(name)
        (out / ".s3_eval_files.json").write_text(json.dumps(manifest))

    return tamper


def _bench_file(text: str):
    def tamper(out: Path, rec: dict) -> None:
        (out / rec["files"]["results"]).write_text(text)

    return tamper


def _other_identity(out: Path, rec: dict) -> None:
    path = out / rec["files"]["results"]
    data = json.loads(path.read_text())
    data["identity"]["fingerprint"] = "another benchmark"
    data["samples"] = 999
    path.write_text(json.dumps(data))


def _bench_bytes(data: bytes):
    def tamper(out: Path, rec: dict) -> None:
        (out / rec["files"]["results"]).write_bytes(data)

    return tamper


def _manifest(text: str):
    def tamper(out: Path, rec: dict) -> None:
        (out / ".s3_eval_files.json").write_text(text)

    return tamper


def _directory_for_results(out: Path, rec: dict) -> None:
    _user_file("results.json")(out, rec)
    (out / "results.json").unlink()
    (out / "results.json").mkdir()


HOSTILE_OUT = [
    ("user results.md", _user_file("results.md"), "refused"),
    ("user results.json", _user_file("results.json"), "refused"),
    ("user gains.png", _user_file("gains.png"), "refused"),
    ("a folder named results.json", _directory_for_results, "refused always"),
    ("damaged manifest: nothing is taken as ours", _manifest("{not json"), "refused"),
    ("deeply nested manifest", _manifest(DEEP), "refused"),
    ("manifest holding a list", _manifest("[1, 2]"), "refused"),
    ("benchmark results not JSON", _bench_file("{truncated"), "recomputed"),
    ("benchmark results nested too deeply", _bench_file(DEEP), "recomputed"),
    ("benchmark results a JSON list", _bench_file("[]"), "recomputed"),
    ("benchmark results not UTF-8", _bench_bytes(b"\xff\xfe{"), "recomputed"),
    ("benchmark results of other data", _other_identity, "recomputed"),
]


@pytest.mark.parametrize(("case", "tamper", "outcome"), HOSTILE_OUT, ids=[c[0] for c in HOSTILE_OUT])
def test_hostile_out_folder(finished, tiny_clip_dir, tmp_path, runner, monkeypatch, caplog, case, tamper, outcome):
    template, bench = finished
    out = tmp_path / "out"
    shutil.copytree(template, out)
    summary = json.loads((out / "results.json").read_text())
    rec = summary["benchmarks"]["bench"]
    tamper(out, rec)
    cfg = config(runner, tiny_clip_dir, [bench], out)
    if outcome.startswith("refused"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("s3_hf.engine.core.S3Engine.from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
            match = "is a folder" if outcome == "refused always" else "not written by s3 eval.*--overwrite"
            with pytest.raises(EvalError, match=match):
                runner.run(cfg)
            cfg.run.overwrite = True  # the user says so: replaced, but a folder never is
            if outcome == "refused always":
                with pytest.raises(EvalError, match="is a folder"):
                    runner.run(cfg)
                return
        runner.run(cfg)
        cfg.run.overwrite = False  # the files are s3 eval's now: a run without --overwrite goes through
        runner.run(cfg)
        assert json.loads((out / "results.json").read_text())["benchmarks"]["bench"]["samples"] == 3
        return
    with caplog.at_level(logging.WARNING, logger="s3_hf.evaluation"):
        again = runner.run(cfg).to_dict()["benchmarks"]["bench"]
    assert again["samples"] == 3 and again["identity"] == rec["identity"]
    assert again["embeddings_cached"] is True  # recomputed (from the cached embeddings), not reused
    assert json.loads((out / rec["files"]["results"]).read_text())["samples"] == 3
    if case != "benchmark results of other data":
        assert "recomputed" in caplog.text


def test_out_of_an_earlier_run_is_reused_without_overwrite(finished, tiny_clip_dir, tmp_path, runner, monkeypatch):
    template, bench = finished
    out = tmp_path / "out"
    shutil.copytree(template, out)
    monkeypatch.setattr(runner, "image_embeddings", lambda *a, **k: pytest.fail("a finished benchmark re-encoded"))
    assert runner.run(config(runner, tiny_clip_dir, [bench], out)).to_dict()["benchmarks"]["bench"]["samples"] == 3


# --------------------------------------------------------------------------- prerequisites before encoding
def test_missing_wordnet_is_reported_before_any_model_or_image(tiny_clip_dir, tmp_path, runner, no_model, monkeypatch):
    monkeypatch.setenv("S3_WORDNET_DIR", str(tmp_path / "no-wordnet"))
    bench = image_folder(tmp_path / "bench", {"cat": 1})
    cfg = config(runner, tiny_clip_dir, [bench], tmp_path / "out")
    cfg.classification.synonyms = ["wordnet"]
    with pytest.raises(WordNetMissingError):
        runner.run(cfg)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"synonyms": ["missing.json"]}, S3Error, "does not exist"),
        ({"dclip": "missing.json"}, S3Error, "does not exist"),
        ({"cupl": "{}"}, S3Error, "does not exist"),
        ({"task": "detection"}, EvalError, "Unknown task"),
        ({"canonicalizations": ["shout"]}, S3Error, "shout"),
    ],
)
def test_bad_sources_are_reported_before_any_model_or_image(
    tiny_clip_dir, tmp_path, runner, no_model, change, error, match
):
    bench = image_folder(tmp_path / "bench", {"cat": 1})
    cfg = config(runner, tiny_clip_dir, [bench], tmp_path / "out", **change)
    with pytest.raises(error, match=match):
        runner.run(cfg)


def test_missing_extra_is_reported_before_any_model_or_image(tiny_clip_dir, tmp_path, runner, no_model, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "evaluate" else real(name, *a))
    with pytest.raises(EvalError, match=r"evaluate.*s3-hf\[eval\]"):
        runner.run(config(runner, tiny_clip_dir, [image_folder(tmp_path / "b", {"cat": 1})], tmp_path / "out"))


def test_segmentation_without_background_class_fails_before_any_model(tiny_clip_dir, tmp_path, runner, no_model):
    root = tmp_path / "seg"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.new("RGB", (8, 8)).save(root / "images" / "a.png")
    Image.new("L", (8, 8)).save(root / "masks" / "a.png")
    (root / "classes.txt").write_text("sky\ntree\n")
    cfg = config(runner, tiny_clip_dir, [root], tmp_path / "out", task="segmentation", background_threshold=0.5)
    with pytest.raises(EvalError, match="background"):
        runner.run(cfg)


def test_eval_train_split_missing_a_class_encodes_no_support(tiny_clip_dir, tmp_path, runner, monkeypatch):
    root = tmp_path / "bench"
    image_folder(root / "test", {"cat": 1, "dog": 1})
    image_folder(root / "train", {"cat": 2})
    (root / "train" / "dog").mkdir()
    monkeypatch.setattr(runner, "support_features", lambda *a, **k: pytest.fail("support encoded"))
    cfg = config(runner, tiny_clip_dir, [root], tmp_path / "out", shots=[1], seeds=[1])
    rec = runner.run(cfg).to_dict()["benchmarks"]["bench"]
    assert "no image of 1 classes (['dog'])" in rec["fewshot"]["error"] and "methods" in rec


def test_fewshot_support_missing_a_class_fails_before_encoding(small_space, tmp_path, monkeypatch, capsys):
    import s3_hf.engine.adapters

    monkeypatch.setattr(s3_hf.engine.adapters, "encode_support_images", lambda *a, **k: pytest.fail("support encoded"))
    space_dir = small_space.save_pretrained(tmp_path / "space")
    support = image_folder(tmp_path / "support", {small_space.labels[0]: 1, small_space.labels[1]: 1})
    model = small_space.config.base_model
    rc = main(["fewshot", str(support), "--space", str(space_dir), "--model", model, "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err.rsplit("it/s]\n", 1)[-1]  # after the model-loading progress bar
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and small_space.labels[2] in err
    # with --labels, the folder is checked before the model is even loaded
    monkeypatch.setattr("s3_hf.cli.common.load_engine", lambda *a, **k: pytest.fail("model loaded"))
    labels = ",".join(small_space.labels)
    rc = main(["fewshot", str(support), "--labels", labels, "--model", model, "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2 and "no image of 1 classes" in err and err.count("\n") == 1


def test_require_every_class_allows_none_or_all():
    from s3_hf.fewshot.support import require_every_class

    require_every_class([], ["a", "b"])
    require_every_class([1, 0, 1], ["a", "b"])
    with pytest.raises(InvalidLabelsError, match=r"\['b'\]"):
        require_every_class([0, 0], ["a", "b"])


# ------------------------------------------------------------------------------------------------ s3 card
def good_results(space) -> dict:
    source = dict(space.classes[0].source, date="another day")
    return {
        "model": space.config.base_model,
        "revision": space.config.base_model_revision,
        "random_weights": False,
        "benchmarks": {
            "mine": {
                "model": space.config.base_model,
                "class_names": list(space.labels),
                "random_weights": False,
                "methods": {"label": {"top1": 0.5}, f"s3/syn/{space.config.metric}": {"top1": 0.625}},
                "synonyms": {f"s3/syn/{space.config.metric}": source},
            },
            "other classes": {
                "class_names": ["x", "y"],
                "random_weights": False,
                "methods": {"label": {"top1": 0.9}},
                "synonyms": {},
            },
            "down": {"name": "down", "error": "offline"},
        },
    }


def _set(path: tuple, value):
    def change(results: dict) -> None:
        target = results
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _drop(path: tuple):
    def change(results: dict) -> None:
        target = results
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


def _other_source(results: dict) -> None:
    synonyms = results["benchmarks"]["mine"]["synonyms"]
    for method in synonyms:
        synonyms[method] = {"name": "wordnet", "version": "3.0"}


HOSTILE_CARD = [
    ("random weights", _set(("random_weights",), True), "random weights"),
    ("random weights as a string", _set(("random_weights",), "false"), "random weights"),
    ("random weights not recorded", _drop(("random_weights",)), "random weights"),
    ("random weights on one benchmark", _set(("benchmarks", "mine", "random_weights"), True), "random weights"),
    ("another model", _set(("model",), "/elsewhere/another-model"), "another-model"),
    ("another model on one benchmark", _set(("benchmarks", "mine", "model"), "org/other"), "org/other"),
    ("no model recorded", _drop(("model",)), "measured with None"),
    ("other classes", _set(("benchmarks", "mine", "class_names"), ["a", "b", "c"]), "classes"),
    ("classes not recorded", _drop(("benchmarks", "mine", "class_names")), "classes"),
    ("another synonym source", _other_source, "synonym source"),
    ("synonym source not recorded", _set(("benchmarks", "mine", "synonyms"), {}), "synonym source"),
    ("top-1 not a number", _set(("benchmarks", "mine", "methods", "label"), {"top1": "high"}), "Cannot write"),
    ("benchmarks null", _set(("benchmarks",), None), "benchmarks"),
]


@pytest.mark.parametrize(("case", "change", "match"), HOSTILE_CARD, ids=[c[0] for c in HOSTILE_CARD])
def test_card_refuses_results_that_do_not_belong(small_space, tmp_path, capsys, case, change, match):
    space_dir = small_space.save_pretrained(tmp_path / "space")
    before = (space_dir / "README.md").read_text()
    results = good_results(small_space)
    change(results)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    assert main(["card", str(space_dir), "--results", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err
    assert (space_dir / "README.md").read_text() == before  # nothing written


@pytest.mark.parametrize("text", ["{not json", DEEP, "[]", '"results"', "null"])
def test_card_refuses_unreadable_results_in_one_line(small_space, tmp_path, capsys, text):
    space_dir = small_space.save_pretrained(tmp_path / "space")
    path = tmp_path / "results.json"
    path.write_text(text)
    assert main(["card", str(space_dir), "--results", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_card_writes_only_the_benchmark_with_the_spaces_classes(small_space, tmp_path):
    space_dir = small_space.save_pretrained(tmp_path / "space")
    path = tmp_path / "results.json"
    path.write_text(json.dumps(good_results(small_space)))
    assert main(["card", str(space_dir), "--results", str(path)]) == 0
    card = (space_dir / "README.md").read_text()
    assert "value: 0.625" in card and "value: 0.5" in card and "other classes" not in card and "0.9" not in card


# ------------------------------------------------------------------------------------------ the rendered card
def test_card_links_only_hub_ids(small_space, monkeypatch):
    from s3_hf.space.card import hub_model_id, render_card

    local = small_space.config.base_model
    assert Path(local).is_absolute() and Path(local).exists()
    card = render_card(small_space)
    assert "https://huggingface.co/" + local not in card and "huggingface.co//" not in card
    assert f"`{local}`" in card and "base_model:" not in card
    monkeypatch.setattr(small_space.config, "base_model", "openai/clip-vit-base-patch32")
    card = render_card(small_space)
    assert "[openai/clip-vit-base-patch32](https://huggingface.co/openai/clip-vit-base-patch32)" in card
    assert "base_model: openai/clip-vit-base-patch32" in card
    for text in ("/abs/path/model", "../up/model", "https://example.com/x", "C:\\models\\clip", "a/b/c", "hf-hub:"):
        assert hub_model_id(text) is None, text
    assert hub_model_id("hf-hub:laion/CLIP-ViT-B-32") == "laion/CLIP-ViT-B-32"


def test_card_accepts_the_eval_of_the_spaces_own_model_classes_and_synonyms(tiny_clip_dir, tmp_path, runner, capsys):
    """End to end: `s3 build` and `s3 eval` with the same model, classes and synonyms file; `s3 card` takes it, and
    refuses the same results for a space built with other synonyms."""
    bench = image_folder(tmp_path / "pets", {"cat": 1, "dog": 2})
    syn = tmp_path / "syn.json"
    syn.write_text(json.dumps({"cat": ["kitty"], "dog": ["puppy"]}))
    cfg = config(runner, tiny_clip_dir, [bench], tmp_path / "out", metrics=["local_center"])
    cfg.classification.synonyms = [str(syn)]
    runner.run(cfg)
    results = tmp_path / "out" / "results.json"
    space = tmp_path / "space"
    build = ["build", "cat,dog", "--synonyms", str(syn), "--model", str(tiny_clip_dir), "--out", str(space)]
    assert main(build) == 0
    assert main(["card", str(space), "--results", str(results), "--method", "s3/syn/local_center"]) == 0
    assert "top-1 accuracy (s3/syn/local_center)" in (space / "README.md").read_text()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"cat": ["tabby"], "dog": ["hound"]}))
    assert main([*build[:3], str(other), *build[4:-1], str(tmp_path / "space2")]) == 0
    capsys.readouterr()
    assert main(["card", str(tmp_path / "space2"), "--results", str(results), "--method", "s3/syn/local_center"]) == 2
    assert "synonym source" in capsys.readouterr().err


def test_segment_background_threshold_without_background_fails_before_the_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("s3_hf.cli.common.load_engine", lambda *a, **k: pytest.fail("model loaded"))
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    argv = ["segment", str(tmp_path / "a.png"), "--labels", "sky,tree", "--background-threshold", "0.5"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'background'" in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------ eval's figure, atomically
GAINS = {"benchmarks": {"tiny": {"methods": {"label": {"top1": 0.5}, "local_center": {"top1": 0.6}}}}}


def test_eval_gain_figure_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import matplotlib.figure

    from s3_hf.evaluation.report import gain_figure
    from s3_hf.evaluation.results import RunResult

    path = tmp_path / "gains.png"
    assert gain_figure(RunResult.from_dict(GAINS), path) == path
    first = path.read_bytes()
    assert first.startswith(b"\x89PNG\r\n\x1a\n")  # a PNG although matplotlib wrote it under a .tmp name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gains.png"]

    real = matplotlib.figure.Figure.savefig

    def killed_half_way(self, fname, **kwargs):
        real(self, fname, **kwargs)
        Path(fname).write_bytes(Path(fname).read_bytes()[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        other = {"benchmarks": {"tiny": {"methods": {"label": {"top1": 0.1}, "x": {"top1": 0.9}}}}}
        gain_figure(RunResult.from_dict(other), path)
    assert path.read_bytes() == first  # the old figure stays whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gains.png"]
