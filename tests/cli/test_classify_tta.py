"""``s3 classify --tta ts3``: adaptation over the images in a stated, seeded order, the static S^3 top-1 beside the
adapted one, a state file that continues a stream, and bad values refused in one line."""

from __future__ import annotations

import json

import pytest

from s3_hf.cli import main

LOUD = ["--tta-pos-alpha", "50", "--tta-neg-alpha", "5", "--tta-lam", "1", "--tta-kappa", "0"]
ZERO = ["--tta-pos-alpha", "0", "--tta-neg-alpha", "0", "--tta-lam", "0"]


@pytest.fixture(scope="module")
def folder(photos):
    return str(photos[0].parent)


def run(capsys, *args: str) -> dict:
    assert main(["classify", *args]) == 0
    return json.loads(capsys.readouterr().out)


def one_error_line(err: str, fragment: str) -> None:
    """The command failed with one line naming ``fragment`` (after the model's loading bar, when it had loaded)."""
    line = err.split("\n")[-2] if err.endswith("\n") else ""
    assert line.split("\r")[-1].startswith("error: ") and fragment in line and "Traceback" not in err, err


def base(tiny_clip_dir, *images: str) -> list[str]:
    return [*images, "--model", str(tiny_clip_dir), "--labels", "cat,dog,airplane", "--json", "--tta", "ts3"]


def test_the_order_is_stated_and_fixed_by_the_seed(tiny_clip_dir, folder, photos, capsys):
    first = run(capsys, *base(tiny_clip_dir, folder), *LOUD)
    again = run(capsys, *base(tiny_clip_dir, folder), *LOUD, "--tta-seed", "1")  # 1 is the default
    other = run(capsys, *base(tiny_clip_dir, folder), *LOUD, "--tta-seed", "7")
    assert first == again
    order = first["tta"]["order"]
    assert sorted(order) == sorted(str(p) for p in photos) and order != other["tta"]["order"]
    assert [r["image"] for r in first["results"]] == order and [r["step"] for r in first["results"]] == [1, 2, 3, 4, 5]
    assert first["tta"]["seed"] == 1 and first["tta"]["n_seen"] == 5 and first["tta"]["state"] is None
    r0 = first["results"][0]
    assert r0["ts3"] == [{k: v for k, v in p.items() if k != "details"} for p in r0["s3"]]  # the first image: S^3
    assert any(r["ts3"][0]["score"] != r["s3"][0]["score"] for r in first["results"][1:])


def test_zero_weights_give_the_static_scores_for_every_image(tiny_clip_dir, folder, capsys):
    out = run(capsys, *base(tiny_clip_dir, folder), *ZERO)
    for r in out["results"]:
        assert r["ts3"] == [{k: v for k, v in p.items() if k != "details"} for p in r["s3"]]


def test_a_state_file_continues_the_stream_across_runs(tiny_clip_dir, folder, tmp_path, capsys):
    whole = run(capsys, *base(tiny_clip_dir, folder), *LOUD)["results"]
    state = tmp_path / "stream.safetensors"
    for n, r in enumerate(whole, 1):  # the same order, one image per run, through the state file
        part = run(capsys, *base(tiny_clip_dir, r["image"]), *LOUD, "--tta-state", str(state))
        assert part["tta"]["n_seen_before"] == n - 1 and part["tta"]["n_seen"] == n and state.is_file()
        (got,) = part["results"]
        assert got["step"] == n and [p["label"] for p in got["ts3"]] == [p["label"] for p in r["ts3"]]
        assert [p["score"] for p in got["ts3"]] == pytest.approx([p["score"] for p in r["ts3"]], rel=1e-4, abs=1e-5)
    # the table states the order, the steps and both top-1s
    args = [a for a in base(tiny_clip_dir, folder) if a != "--json"]
    assert main(["classify", *args, *LOUD, "--tta-state", str(state)]) == 0
    table = capsys.readouterr().out
    assert "--tta-seed 1, continuing a state that had seen 5" in table and "TS^3 (local_center)" in table
    assert "S^3 (local_center)" in table and "state saved to" in table and "(10 images seen)" in table


def test_a_state_of_another_stream_or_a_damaged_one_is_refused(tiny_clip_dir, folder, tmp_path, capsys):
    state = tmp_path / "stream.safetensors"
    run(capsys, *base(tiny_clip_dir, folder), *LOUD, "--tta-state", str(state))
    saved = state.read_bytes()
    other = [*base(tiny_clip_dir, folder), "--tta-state", str(state)]  # other options than the saved state's
    cases = [(other, "another config_hash"), ([*other, *LOUD, "--labels", "cat,dog"], "another labels")]
    for args, fragment in cases:
        assert main(["classify", *args]) == 2
        one_error_line(capsys.readouterr().err, fragment)
    assert state.read_bytes() == saved  # a refused state is left as it was
    state.write_bytes(saved[: len(saved) // 2])
    assert main(["classify", *base(tiny_clip_dir, folder), *LOUD, "--tta-state", str(state)]) == 2
    one_error_line(capsys.readouterr().err, "not a readable state file")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--tta-pos-size", "-1"], "pos_size"),
        (["--tta-neg-entropy-low", "1.5"], "neg_entropy_low must be a number in (0, 1)"),
        (["--tta-neg-entropy-low", "0.8", "--tta-neg-entropy-high", "0.5"], "must be below"),
        (["--tta-lam", "nan"], "lam"),
        (["--support", "somewhere"], "drop --support"),
    ],
)
def test_bad_tta_values_are_one_line_errors(tiny_clip_dir, tmp_path, capsys, extra, fragment):
    assert main(["classify", *base(tiny_clip_dir, "x.jpg"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1, err


@pytest.mark.parametrize("extra", [["--tta-lam", "1"], ["--tta-seed", "3"], ["--tta-state", "s.safetensors"]])
def test_tta_options_without_tta_are_refused(tiny_clip_dir, capsys, extra):
    args = ["classify", "x.jpg", "--model", str(tiny_clip_dir), "--labels", "cat", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "need --tta ts3" in err and err.count("\n") == 1, err


def test_tta_zero_adds_the_voted_ranking_and_equals_the_engine(tiny_clip_dir, photos, capsys):
    from s3_hf.engine.core import S3Engine
    from s3_hf.tta import ZeroConfig

    paths = [str(p) for p in photos[:2]]
    args = [*paths, "--model", str(tiny_clip_dir), "--labels", "cat,dog,airplane", "--tta", "zero", "--tta-seed", "4"]
    out = run(capsys, *args, "--json", "--top-k", "3")
    assert out["tta"]["method"] == "zero" and out["tta"]["seed"] == 4 and out["tta"]["views"] == 64
    assert [r["image"] for r in out["results"]] == paths  # stateless: the order given, not permuted
    engine = S3Engine.from_pretrained(tiny_clip_dir, device="cpu")
    want = engine.classify(paths, engine.request(["cat", "dog", "airplane"]), top_k=3, tta=ZeroConfig(seed=4))
    assert [r["zero"] for r in out["results"]] == [[p.to_dict() for p in r] for r in want]
    assert main(["classify", *args]) == 0
    table = capsys.readouterr().out
    assert "64 views per image, seeded by --tta-seed 4" in table and "ZERO-S^3 (local_center)" in table


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--tta-lam", "1"], "--tta-lam"),
        (["--tta-state", "s.safetensors"], "--tta-state"),
        (["--multi-label"], "multi"),
    ],
)
def test_tta_zero_refuses_stateful_options(tiny_clip_dir, capsys, extra, fragment):
    args = ["classify", "x.jpg", "--model", str(tiny_clip_dir), "--labels", "cat", "--tta", "zero", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "not with --tta zero" in err and err.count("\n") == 1, err
