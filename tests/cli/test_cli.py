"""The s3 command end to end on a tiny local checkpoint."""

from __future__ import annotations

import json
import os

import pytest
from helpers import SYNONYMS, fake_hub

from s3_hf.cli import main


@pytest.fixture
def files(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("# classes\ncat\ndog\nairplane\n")
    syn = tmp_path / "synonyms.yaml"
    syn.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in SYNONYMS.items()))
    return labels, syn


def test_build_inspect_classify(files, tmp_path, tiny_clip_dir, photos, capsys):
    labels, syn = files
    out = tmp_path / "space"
    assert main(["build", str(labels), "--synonyms", str(syn), "--out", str(out), "--model", str(tiny_clip_dir)]) == 0
    assert "3 classes" in capsys.readouterr().out
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 classes, 16 concepts" in text and "domestic cat" in text
    assert main(["inspect", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == 3

    args = ["classify", str(photos[0]), str(photos[1]), "--model", str(tiny_clip_dir), "--json"]
    assert main([*args, "--space", str(out)]) == 0
    from_space = json.loads(capsys.readouterr().out)
    assert main([*args, "--labels", str(labels), "--synonyms", str(syn)]) == 0
    from_labels = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in from_space] == [str(photos[0]), str(photos[1])]
    for a, b in zip(from_space, from_labels, strict=True):
        assert [x["label"] for x in a["s3"]] == [x["label"] for x in b["s3"]]
        assert {x["label"] for x in a["clip"]} == {"cat", "dog", "airplane"}
    assert main(["classify", str(photos[0]), "--model", str(tiny_clip_dir), "--labels", "cat,dog"]) == 0
    assert "S^3 (local_center)" in capsys.readouterr().out


def test_demo_runs_on_a_local_checkpoint(tiny_clip_dir, capsys):
    assert main(["demo", "--model", str(tiny_clip_dir)]) == 0
    out = capsys.readouterr().out
    for name in ("chelsea", "coffee", "astronaut", "rocket", "camera"):
        assert name in out
    assert "CLIP (label)" in out


def test_unavailable_model_explains_what_to_do(capsys):
    assert main(["demo", "--model", "openai/clip-vit-base-patch32"]) == 2
    err = capsys.readouterr().err
    assert "point --model at a local CLIP checkpoint" in err


def test_errors_are_reported_not_raised(tmp_path, tiny_clip_dir, capsys):
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    assert "error:" in capsys.readouterr().err
    bad = tmp_path / "labels.txt"
    bad.write_text("cat\ncat\n")
    assert main(["build", str(bad), "--out", str(tmp_path / "o"), "--model", str(tiny_clip_dir)]) == 2
    assert "Duplicate" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_push(files, tmp_path, tiny_clip_dir, monkeypatch, capsys):
    labels, _ = files
    out = tmp_path / "space"
    main(["build", str(labels), "--out", str(out), "--model", str(tiny_clip_dir)])
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(["push", str(out), "org/space"]) == 2
    assert "hf auth login" in capsys.readouterr().err
    with fake_hub({}) as hub:
        assert main(["push", str(out), "org/space", "--token", "hf_x"]) == 0
    (commit,) = hub.commits
    assert commit["repo_id"] == "org/space" and "s3_config.json" in commit["files"]


def test_synonyms_then_build(tmp_path, tiny_clip_dir, capsys):
    from s3_hf.errors import WordNetMissingError
    from s3_hf.synonyms import WordNetSource, read_synonyms_file

    try:
        WordNetSource()
    except WordNetMissingError as err:
        if os.environ.get("S3_REQUIRE_WORDNET"):
            raise
        pytest.skip(f"WordNet corpus not installed here ({err})")
    table = tmp_path / "classes.tsv"
    table.write_text(
        "index\twnid\tclip_name\n0\tn01440764\ttench\n1\tn02691156\tairplane\n"
        "2\tn03773504\tmissile\n3\tn04008634\tmissile\n"
    )
    out = tmp_path / "syn.yaml"
    assert main(["synonyms", str(table), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 labels" in printed and "s3 build --synonyms" in printed
    mapping, prov = read_synonyms_file(out)
    assert list(mapping) == ["tench", "airplane", "missile", "projectile"]
    assert mapping["tench"] == ["Tinca tinca"] and "aeroplane" in mapping["airplane"]
    assert prov["name"] == "wordnet"
    # edit, then build from the file alone
    out.write_text(out.read_text().replace("- Tinca tinca", "- Tinca tinca\n  - doctor fish"))
    space_dir = tmp_path / "space"
    assert main(["build", "--synonyms", str(out), "--out", str(space_dir), "--model", str(tiny_clip_dir)]) == 0
    from s3_hf import SynonymSpace

    space = SynonymSpace.from_pretrained(space_dir)
    assert space.labels == ["tench", "airplane", "missile", "projectile"]
    assert space.concepts(0) == ["tench", "Tinca tinca", "doctor fish"]
    assert space.classes[0].source["generated_by"]["name"] == "wordnet"


def test_synonyms_llm_needs_a_model(tmp_path, capsys):
    labels = tmp_path / "l.txt"
    labels.write_text("cat\ndog\n")
    assert main(["synonyms", str(labels), "--source", "openai", "--out", str(tmp_path / "s.yaml")]) == 2
    assert "--model" in capsys.readouterr().err


def test_fewshot_fit_then_classify(files, tmp_path, tiny_clip_dir, photos, capsys, monkeypatch):
    from PIL import Image

    labels, syn = files
    space = tmp_path / "space"
    assert main(["build", str(labels), "--synonyms", str(syn), "--out", str(space), "--model", str(tiny_clip_dir)]) == 0
    support = tmp_path / "support"
    for label, photo in zip(["cat", "dog", "airplane", "cat", "dog"], photos, strict=True):
        (support / label).mkdir(parents=True, exist_ok=True)
        Image.open(photo).save(support / label / f"{photo.stem}.png")
    capsys.readouterr()
    assert main(["fewshot", str(support), "--space", str(space), "--model", str(tiny_clip_dir)]) == 0
    text = capsys.readouterr().out
    assert "5 support images (1-2 per class, 3 classes)" in text and "tuned on 2 validation images" in text
    assert (space / "ssp_config.json").is_file() and (space / "s3_config.json").is_file()

    args = ["classify", str(photos[4]), "--model", str(tiny_clip_dir), "--space", str(space)]
    assert main([*args, "--support", str(space), "--json"]) == 0
    from_adapter = json.loads(capsys.readouterr().out)
    assert main([*args, "--support", str(support), "--json"]) == 0  # fitted afresh: the same seed, the same result
    assert json.loads(capsys.readouterr().out) == from_adapter
    assert main([*args, "--support", str(support), "--fewshot-mode", "cache"]) == 0
    assert "S^3 + CACHE (local_center)" in capsys.readouterr().out
    # `s3 push` takes the adapter along with the space, in the same commit
    with fake_hub({}) as hub:
        assert main(["push", str(space), "org/space", "--token", "hf_x"]) == 0
    (commit,) = hub.commits
    assert {"ssp_config.json", "ssp_state.safetensors", "s3_config.json"} <= set(commit["files"])
    assert "few-shot adapter" in capsys.readouterr().out
    # nowhere to write: refused before any work
    assert main(["fewshot", str(support), "--labels", str(labels), "--model", str(tiny_clip_dir)]) != 0
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("verbose", [[], ["-v", "inspect"], ["inspect", "-v"]])
def test_errors_are_one_line_and_verbose_adds_the_traceback(tmp_path, capsys, verbose):
    args = verbose or ["inspect"]
    if "-v" in args and args[0] == "inspect":
        args = ["inspect", str(tmp_path / "nope"), "-v"]
    else:
        args = [*args, str(tmp_path / "nope")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ") and "local folder" in err
    assert ("Traceback (most recent call last)" in err) == bool(verbose)
    if not verbose:
        assert err.count("\n") == 1


def test_usage_mistakes_are_typed_one_line_errors(tmp_path, tiny_clip_dir, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["classify", str(empty), "--labels", "cat,dog", "--model", str(tiny_clip_dir)], "No images in"),
        (["classify", "x.jpg", "--model", str(tiny_clip_dir)], "exactly one of --space"),
        (["classify", "x.jpg", "--labels", "cat", "--model", str(tmp_path / "missing")], "does not exist"),
        (["classify", "x.jpg", "--labels", "cat", "--model", str(empty)], "no config.json"),
        (["eval", "--benchmarks", "x", "--metrics", "cosine"], "Unknown metric"),
        (["eval", "--benchmarks", "x", "--shots", "a,b"], "comma-separated integers"),
    ]
    for args, fragment in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and fragment in err and err.count("\n") == 1, (args, err)


def test_classify_abstains_and_scores_each_class_on_its_own(tiny_clip_dir, photos, capsys):
    from s3_hf.pipelines.classification import NONE_OF_THESE

    args = ["classify", str(photos[0]), "--model", str(tiny_clip_dir), "--labels", "cat,dog,airplane", "--json"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)[0]
    assert main([*args, "--abstain-threshold", "1"]) == 0
    (abstained,) = json.loads(capsys.readouterr().out)
    for method in ("s3", "clip"):
        assert abstained[method][0] == {"score": 1.0, "label": NONE_OF_THESE}
        assert abstained[method][1:] == plain[method]
    assert main([*args, "--multi-label"]) == 0
    (multi,) = json.loads(capsys.readouterr().out)
    assert {x["label"] for x in multi["clip"]} == {"cat", "dog", "airplane"}
    assert all(0 < x["score"] < 1 for x in multi["clip"]) and sum(x["score"] for x in multi["clip"]) != 1.0
    assert main([*args[:-1], "--abstain-threshold", "1"]) == 0  # the table names the abstention
    assert NONE_OF_THESE in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2", "nan", "half"])
def test_classify_refuses_a_bad_abstain_threshold_in_one_line(tiny_clip_dir, capsys, value):
    args = ["classify", "x.jpg", "--labels", "cat", "--model", str(tiny_clip_dir), "--abstain-threshold", value]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --abstain-threshold must be a number in (0, 1]") and err.count("\n") == 1, err
