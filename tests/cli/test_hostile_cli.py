"""Hostile and careless input to the command line and to the text it reads: labels, synonym cleaning, JSON/YAML
files, output names, out-of-range flags, unreadable images, terminals and pipes, interrupts; and `s3 inspect`, which
reads a space without torch and reports a damaged one as loading it does."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from s3_hf.cli import main, read_labels
from s3_hf.errors import ArtifactCorruptError, ArtifactError, ArtifactShapeError, InvalidLabelsError, SynonymsError
from s3_hf.io.files import load_json_text, load_yaml_text
from s3_hf.space.artifact import CARD_NAME, CONFIG_NAME, SYNONYMS_NAME, TENSORS_NAME, SynonymSpace
from s3_hf.space.build import check_labels
from s3_hf.space.files import read_summary
from s3_hf.synonyms import StaticSource, base
from s3_hf.synonyms.base import clean_all, clean_concepts_with_drops


class _CountingLabel(str):
    """A label that counts how often it is case-folded (the work cleaning does per label it compares)."""

    calls = 0

    def casefold(self) -> str:
        type(self).calls += 1
        return super().casefold()


def test_cleaning_many_labels_is_linear_in_label_comparisons(caplog):
    caplog.set_level(logging.ERROR)
    n = 3000
    labels = [_CountingLabel(f"label {i}") for i in range(n)]
    raw = {label: [f"{label} alias", f"label {(i + 1) % n}"] for i, label in enumerate(labels)}
    _CountingLabel.calls = 0
    cleaned = clean_all(labels, raw, 10)
    # Quadratic cleaning case-folds every label once per label (n * n = 9,000,000 here).
    assert _CountingLabel.calls <= 4 * n
    assert cleaned[labels[0]][0] == ["label 0", "label 0 alias"]
    assert [(d.text, d.kind) for d in cleaned[labels[0]][1]] == [("label 1", "other_label")]


def test_cleaning_with_an_index_matches_cleaning_with_the_label_list(caplog):
    caplog.set_level(logging.ERROR)
    labels = ["Crane", "heron", "Stork", "crane bird"]
    candidates = {
        "Crane": ["crane", "HERON", "crane bird ", "grus", "Grus", "a very long name of this bird here", "x", "y"],
        "heron": ["stork", "egret", "  ", "Egret"],
        "Stork": [],
        "crane bird": ["Crane", "grus"],
    }
    for label in labels:
        want = clean_concepts_with_drops(label, candidates[label], 2, labels)
        assert clean_all(labels, candidates, 2)[label] == want
        assert clean_concepts_with_drops(label, candidates[label], 2, base.label_index(labels)) == want


def test_build_indexes_the_labels_once(tiny_model, monkeypatch):
    from s3_hf import build_synonym_space

    calls = []
    real = base.label_index
    monkeypatch.setattr(base, "label_index", lambda labels: calls.append(1) or real(labels))
    model, tokenizer = tiny_model
    labels = [f"thing {i}" for i in range(12)]
    space = build_synonym_space(model, tokenizer, labels, {"thing 0": ["thing 1", "object zero"]})
    assert len(calls) == 1
    assert [c.text for c in space.classes[0].concepts] == ["thing 0", "object zero"]


# ------------------------------------------------------------------------------------------ hostile CLI table
DEEP = "[" * 50_000 + "]" * 50_000
LONG = ",".join(f"class number {i}" for i in range(40)) + ",class number 0"  # 600 characters, one repeat

# name -> file content, written into the test's folder; "{dir}" in an argument names that folder.
FILES = {
    "notjson.json": "cat, dog",
    "null.json": "null",
    "numbers.json": "[1, 2]",
    "object.json": '{"cat": 1}',
    "nulls.json": '["cat", null]',
    "deep.json": DEEP,
    "newline.json": '["ice\\ncream", "ice cream"]',
    "deep.yaml": "a: " + "[" * 50_000 + "]" * 50_000,
    "bad.yaml": "a: [unclosed",
    "synonyms.json": DEEP,
    "short.csv": "wnid,label\nn1,cat\nn2\n",
    "latin1.txt": "caf\xe9\n",
    "a.png": "not decoded before the names are checked",
    "a_overlay.png": "not decoded before the names are checked",
    "A.PNG": "not decoded before the names are checked",
}

HOSTILE = [
    # (id, argv, exit code, fragment of the one-line error)
    ("long labels", ["build", LONG], 2, "Duplicate labels 'class number 0'"),
    ("labels not json", ["build", "{dir}/notjson.json"], 2, "not valid JSON"),
    ("labels null", ["build", "{dir}/null.json"], 2, "JSON list of strings"),
    ("labels numbers", ["build", "{dir}/numbers.json"], 2, "JSON list of strings"),
    ("labels object", ["build", "{dir}/object.json"], 2, "JSON list of strings"),
    ("labels with null", ["build", "{dir}/nulls.json"], 2, "it holds null"),
    ("labels deep", ["build", "{dir}/deep.json"], 2, "nests lists or objects too deeply"),
    ("label with newline", ["build", "{dir}/newline.json"], 2, "Duplicate labels"),
    ("zero-width twin", ["build", "cat,c\u200bat"], 2, "Duplicate labels"),
    ("inner whitespace twin", ["build", "ice cream,ice  cream"], 2, "Duplicate labels"),
    ("unicode normalisation twin", ["build", "caf\u00e9,cafe\u0301"], 2, "Duplicate labels"),
    ("control character", ["build", "cat,d\x07og"], 2, "control character"),
    ("blank labels", ["build", " , \u200b"], 2, "No class labels"),
    ("labels table short row", ["build", "{dir}/short.csv"], 2, "Row 3"),
    ("labels not utf-8", ["build", "{dir}/latin1.txt"], 2, "not UTF-8"),
    ("synonyms deep json", ["build", "cat", "--synonyms", "{dir}/synonyms.json"], 2, "too deeply"),
    ("synonyms deep yaml", ["build", "--synonyms", "{dir}/deep.yaml"], 2, "too deeply"),
    ("synonyms bad yaml", ["build", "--synonyms", "{dir}/bad.yaml"], 2, "not valid YAML"),
    ("fewshot options deep", ["eval", "--benchmarks", "x", "--fewshot-options", DEEP], 2, "too deeply"),
    ("fewshot options not json", ["eval", "--benchmarks", "x", "--fewshot-options", "{top_s"], 2, "not valid JSON"),
    ("card results deep", ["card", "{dir}", "--results", "{dir}/deep.json"], 2, "too deeply"),
    ("segment overlay name", ["segment", "{dir}/a.png", "{dir}/a_overlay.png"], 2, "both be written to a_overlay.png"),
    ("segment same name", ["segment", "{dir}/a.png", "{dir}/a.png"], 2, "both be written to a.png"),
    ("segment names differ in case", ["segment", "{dir}/a.png", "{dir}/A.PNG"], 2, "both be written to A.png"),
]


@pytest.mark.parametrize(("argv", "code", "fragment"), [row[1:] for row in HOSTILE], ids=[row[0] for row in HOSTILE])
def test_hostile_cli_input(argv, code, fragment, tmp_path, capsys, monkeypatch):
    for name, content in FILES.items():
        data = content.encode("latin-1") if name == "latin1.txt" else content.encode("utf-8")
        (tmp_path / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{dir}", str(tmp_path)) for a in argv]
    if args[0] == "build":
        args += ["--model", str(tmp_path / "no-such-model"), "--out", str(tmp_path / "out")]
    if args[0] == "segment":
        args += ["--labels", "cat,dog", "--model", str(tmp_path / "no-such-model"), "--out", str(tmp_path / "out")]
    assert main(args) == code
    err = capsys.readouterr().err
    assert fragment in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_labels_are_normalised_once_for_every_face():
    assert check_labels(["ice\ncream", " caf\u00e9 ", "c\u200bat", "cafe\u0301 au lait"]) == [
        "ice cream",
        "café",
        "cat",
        "caf\u00e9 au lait",
    ]
    assert read_labels("ice  cream , c\u200bat") == ["ice cream", "cat"]
    with pytest.raises(InvalidLabelsError, match="Duplicate"):
        check_labels(["ice cream", "Ice\u00a0Cream"])


def test_synonym_file_keys_are_normalised_like_labels(tmp_path):
    path = tmp_path / "syn.json"
    path.write_text(json.dumps({"ice  cream": ["gelato"]}), encoding="utf-8")
    assert StaticSource(path).synonyms(check_labels(["ice cream"])) == {"ice cream": ["gelato"]}
    path.write_text(json.dumps({"ice cream": ["gelato"], "ice\u200b cream": []}), encoding="utf-8")
    with pytest.raises(SynonymsError, match="twice"):
        StaticSource(path)


@pytest.mark.parametrize("loader", [load_json_text, load_yaml_text])
def test_safe_loaders_turn_deep_nesting_into_the_callers_error(loader):
    with pytest.raises(SynonymsError, match="too deeply"):
        loader(DEEP, SynonymsError, "test input")
    assert loader("[[1]]", SynonymsError, "test input") == [[1]]


# ------------------------------------------------------------------------------------------ case by case
def _one_line_error(capsys, fragment: str) -> None:
    """One ``error:`` line, the last thing on stderr (progress bars of model loading may come before it)."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n") and fragment in errors[0], err
    assert "Traceback" not in err


def test_cli_labels_file_not_utf8(tmp_path, tiny_clip_dir, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_bytes("caf\xe9\ndog\n".encode("latin-1"))
    assert main(["build", str(labels), "--out", str(tmp_path / "o"), "--model", str(tiny_clip_dir)]) == 2
    _one_line_error(capsys, "not UTF-8")
    assert not (tmp_path / "o").exists()


def test_cli_labels_file_is_a_folder(tmp_path, tiny_clip_dir, capsys):
    (tmp_path / "labels.txt").mkdir()
    assert main(["build", str(tmp_path / "labels.txt"), "--out", str(tmp_path / "o"), "--model", str(tiny_clip_dir)])
    _one_line_error(capsys, "is a folder")


def test_cli_out_under_a_file(tmp_path, tiny_clip_dir, capsys):
    (tmp_path / "plain").write_text("x")
    out = tmp_path / "plain" / "space"
    assert main(["build", "cat,dog", "--out", str(out), "--model", str(tiny_clip_dir)]) == 2
    _one_line_error(capsys, "plain")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "does not exist"), ("{not json", "is not a results.json"), ("[1, 2]", "is not a results.json")],
)
def test_cli_card_results(small_space, tmp_path, capsys, content, fragment):
    space = small_space.save_pretrained(tmp_path / "space")
    results = tmp_path / "results.json"
    if content is not None:
        results.write_text(content)
    assert main(["card", str(space), "--results", str(results)]) == 2
    _one_line_error(capsys, fragment)


@pytest.mark.parametrize(
    "args",
    [
        ["build", "cat,dog", "--out", "o", "--max-concepts", "-1"],
        ["build", "cat,dog", "--out", "o", "--batch-size", "0"],
        ["build", "cat,dog", "--out", "o", "--min-points", "0"],
        ["inspect", "space", "--limit", "-1"],
        ["classify", "x.jpg", "--labels", "cat", "--top-k", "0"],
        ["synonyms", "l.txt", "--out", "s.yaml", "--max-synonyms", "-2"],
        ["bench", "--repeats", "0"],
        ["build", "cat,dog", "--out", "o", "--radius", "huge"],
    ],
)
def test_cli_out_of_range_flags_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err


def test_cli_yaml_labels_stay_strings(tmp_path, tiny_clip_dir):
    syn = tmp_path / "synonyms.yaml"
    syn.write_text("no: [nope]\n'on': []\n1.0: [one]\nnull: [nothing]\n")
    out = tmp_path / "space"
    assert main(["build", "--synonyms", str(syn), "--out", str(out), "--model", str(tiny_clip_dir)]) == 0
    assert SynonymSpace.from_pretrained(out).labels == ["no", "on", "1.0", "null"]


def test_cli_classify_skips_unreadable_images_unless_strict(tmp_path, tiny_clip_dir, photos, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.open(photos[0]).save(folder / "a.png")
    (folder / "b.jpg").write_text("not an image")
    Image.open(photos[1]).save(folder / "c.png")
    args = ["classify", str(folder), "--labels", "cat,dog", "--model", str(tiny_clip_dir), "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert [r["image"] for r in json.loads(captured.out)] == [str(folder / "a.png"), str(folder / "c.png")]
    assert main([*args, "--strict"]) == 2
    _one_line_error(capsys, "b.jpg")


def test_cli_build_never_loses_a_users_readme(tmp_path, tiny_clip_dir, capsys):
    out = tmp_path / "project"
    out.mkdir()
    (out / CARD_NAME).write_text("# my notes\n")
    assert main(["build", "cat,dog", "--out", str(out), "--model", str(tiny_clip_dir)]) == 2
    _one_line_error(capsys, "--overwrite")
    assert (out / CARD_NAME).read_text() == "# my notes\n" and os.listdir(out) == [CARD_NAME]


# ------------------------------------------------------------------------------------------ terminals and pipes
@pytest.fixture(scope="module")
def accented_space(tiny_model, tmp_path_factory):
    """A saved space with non-ASCII labels, large enough that its listing overflows a pipe's buffer."""
    from s3_hf import build_synonym_space

    model, tokenizer = tiny_model
    labels = [f"caf\u00e9 number {i}" for i in range(500)]
    synonyms = {label: [f"{label} synonym {j}" for j in range(6)] for label in labels}
    space = build_synonym_space(model, tokenizer, labels, synonyms, templates=["{}"], base_model="tiny")
    return space.save_pretrained(tmp_path_factory.mktemp("spaces") / "accented")


def _s3(command: str, **env: str) -> subprocess.CompletedProcess:
    """``command`` in a shell, where ``s3`` is this interpreter running the CLI."""
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    s3 = f"{shlex.quote(sys.executable)} -m s3_hf.cli"
    return subprocess.run(
        ["bash", "-c", command.replace("s3 ", s3 + " ", 1)], capture_output=True, text=True, env=environ, timeout=300
    )


def test_inspect_on_an_ascii_terminal_escapes_what_it_cannot_show(accented_space):
    res = _s3(f"s3 inspect {accented_space} --limit 3", PYTHONIOENCODING="ascii", LANG="C", LC_ALL="C")
    assert res.returncode == 0, res.stderr
    assert "caf\\xe9 number 0" in res.stdout
    assert res.stderr == ""


def test_a_reader_that_stops_early_ends_the_command_quietly(accented_space):
    listing = _s3(f"s3 inspect {accented_space} --limit 1000")
    assert listing.returncode == 0 and len(listing.stdout.encode()) > 100_000  # more than a pipe holds
    res = _s3(f"set -o pipefail; s3 inspect {accented_space} --limit 1000 | head -1")
    assert res.stdout.startswith("Synonym space for tiny")
    assert res.stderr == ""
    assert res.returncode == 1


def test_wordnet_synonyms_do_not_import_torch(tmp_path):
    from s3_hf.synonyms.wordnet import WordNetMissingError, load_wordnet

    try:
        load_wordnet()
    except WordNetMissingError as err:
        if os.environ.get("S3_REQUIRE_WORDNET"):
            raise
        pytest.skip(f"WordNet corpus not installed here ({err})")
    labels = tmp_path / "labels.txt"
    labels.write_text("airplane\ndog\n", encoding="utf-8")
    code = (
        "import sys; from s3_hf.cli import main\n"
        f"assert main(['synonyms', {str(labels)!r}, '--out', {str(tmp_path / 'syn.yaml')!r}]) == 0\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"
    assert "aeroplane" in (tmp_path / "syn.yaml").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ s3 inspect without torch
LIGHT = (
    "import sys; from s3_hf.cli import main; rc = main(sys.argv[1:]); "
    "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; "
    "assert not heavy, heavy; sys.exit(rc)"
)


def test_importing_the_cli_imports_neither_torch_nor_transformers():
    code = "import sys, s3_hf.cli; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_inspect_runs_without_importing_torch(saved, extra):
    res = subprocess.run(
        [sys.executable, "-c", LIGHT, "inspect", str(saved), *extra], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    assert str(saved.parent) not in res.stderr
    if extra:
        assert json.loads(res.stdout)["classes"] == 3
    else:
        assert res.stdout.startswith("Synonym space for ") and "dropped (why)" in res.stdout


def test_light_summary_equals_the_loaded_spaces_summary(saved, capsys):
    import torch

    loaded = SynonymSpace.from_pretrained(saved)
    light = read_summary(saved)
    assert light == loaded.summary()
    # and each count is what the tensors hold
    t = loaded.tensors
    sizes = t.simplex_indptr.diff()
    assert light.points == t.points.shape[0] and light.kept == int(t.kept.sum())
    assert light.simplices == {int(k): int((sizes == k).sum()) for k in torch.unique(sizes)}
    assert len(light.simplices) > 1  # a space with edges and triangles, not only single points
    assert main(["inspect", str(saved), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(loaded.summary().to_dict()))


def _truncate(folder: Path) -> None:
    data = (folder / TENSORS_NAME).read_bytes()
    (folder / TENSORS_NAME).write_bytes(data[: len(data) // 2])


def _flip_one_byte(folder: Path) -> None:
    data = bytearray((folder / TENSORS_NAME).read_bytes())
    data[-1] ^= 1
    (folder / TENSORS_NAME).write_bytes(bytes(data))


def _flip_a_kept_flag(folder: Path) -> None:
    syn = json.loads((folder / SYNONYMS_NAME).read_text())
    syn["classes"][0]["concepts"][0]["kept"] = False
    (folder / SYNONYMS_NAME).write_text(json.dumps(syn))


def _drop_a_class(folder: Path) -> None:
    syn = json.loads((folder / SYNONYMS_NAME).read_text())
    syn["classes"].pop()
    (folder / SYNONYMS_NAME).write_text(json.dumps(syn))


DAMAGE = {
    "no config": (lambda f: (f / CONFIG_NAME).unlink(), ArtifactError),
    "config not JSON": (lambda f: (f / CONFIG_NAME).write_text("{"), ArtifactCorruptError),
    "config nested too deep": (lambda f: (f / CONFIG_NAME).write_text("[" * 100_000), ArtifactCorruptError),
    "synonyms a list": (lambda f: (f / SYNONYMS_NAME).write_text("[]"), ArtifactCorruptError),
    "tensors truncated": (_truncate, ArtifactCorruptError),
    "tensors changed": (_flip_one_byte, ArtifactCorruptError),
    "kept flag edited": (_flip_a_kept_flag, ArtifactShapeError),
    "a class missing": (_drop_a_class, ArtifactShapeError),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_inspect_reports_a_damaged_space_as_loading_does(saved, case):
    damage, error = DAMAGE[case]
    damage(saved)
    with pytest.raises(error) as light:
        read_summary(saved)
    with pytest.raises(error) as full:
        SynonymSpace.from_pretrained(saved)
    assert str(light.value) == str(full.value)
    res = subprocess.run([sys.executable, "-c", LIGHT, "inspect", str(saved)], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and res.stderr.startswith("error: ")


def test_sigint_during_a_command_is_one_line_and_rc_130(saved):
    code = (
        "import signal, sys; import s3_hf.space.files as sf; from s3_hf.cli import main\n"
        # Python's own handler, as a process started from a terminal has it (a parent that ran this suite in the
        # background, without job control, passes SIGINT on ignored)
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        # raise_signal delivers to this thread and runs the handler before returning
        "sf.read_summary = lambda *a, **k: signal.raise_signal(signal.SIGINT)\n"
        "sys.exit(main(['inspect', sys.argv[1]]))"
    )
    res = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True, check=False)
    assert res.returncode == 130 and res.stderr == "interrupted\n" and res.stdout == ""


# ------------------------------------------------------------------------------------------ WordNet senses
@pytest.fixture(scope="module")
def wordnet():
    from s3_hf.errors import WordNetMissingError
    from s3_hf.synonyms import WordNetSource

    try:
        WordNetSource()
    except WordNetMissingError as err:
        if os.environ.get("S3_REQUIRE_WORDNET"):  # CI installs the corpus: these tests must run there
            raise
        pytest.skip(f"WordNet corpus not installed here ({err})")
    return WordNetSource


@pytest.mark.parametrize(
    ("labels", "sense"),
    [
        (["crane"], "crane.n.04"),  # no context: not a writer (instances), not a constellation (not physical)
        (["crane", "heron", "stork", "flamingo"], "crane.n.05"),  # the bird among birds
        (["crane", "forklift", "bulldozer", "tractor"], "crane.n.04"),  # the machine among machines
        (["mouse", "keyboard", "monitor", "printer"], "mouse.n.04"),
        (["mouse", "rat", "hamster", "squirrel"], "mouse.n.01"),
    ],
)
def test_wordnet_takes_the_sense_that_fits_and_records_it(wordnet, labels, sense, caplog):
    source = wordnet()
    with caplog.at_level(logging.WARNING):
        synonyms = source.synonyms(labels)
    assert source.used[labels[0]] == sense
    assert source.provenance()["senses"][labels[0]] == sense
    assert synonyms[labels[0]] == [x.replace("_", " ") for x in source.wn.synset(sense).lemma_names()][1:]
    assert f"using {sense}" in caplog.text


def test_a_given_wordnet_id_wins_over_the_context(wordnet):
    source = wordnet(senses={"crane": "n02012849"})
    source.synonyms(["crane", "forklift"])
    assert source.used["crane"] == "crane.n.05"


def test_class_records_keep_only_their_own_sense(wordnet, tiny_model):
    from s3_hf import build_synonym_space

    space = build_synonym_space(*tiny_model, ["crane", "heron"], wordnet(), templates=["{}"])
    assert space.config.provenance["senses"] == {"crane": "crane.n.05", "heron": "heron.n.02"}
    assert [c.source.get("sense") for c in space.classes] == ["crane.n.05", "heron.n.02"]
    assert all("senses" not in c.source for c in space.classes)


# ------------------------------------------------------------------------------------------ progress bars
def test_encoding_bars_count_images_and_texts(tiny_clip_dir, photos, capsys):
    from s3_hf import S3Engine

    encoder = S3Engine.from_pretrained(str(tiny_clip_dir)).encoder
    batches = list(encoder.encode_image_batches(photos, batch_size=2, progress=True, workers=0))
    assert len(batches) == 3
    encoder.encode_texts(["a", "b", "c", "d", "e", "f", "g"], batch_size=3, progress=True)
    err = capsys.readouterr().err
    assert "Encoding images: 100%" in err and f"{len(photos)}/{len(photos)}" in err
    assert "Encoding texts: 100%" in err and "7/7" in err
    assert re.search(r"img/s|s/img", err) and re.search(r"text/s|s/text", err)  # tqdm inverts slow rates


def test_a_space_saved_before_normalisation_still_serves_its_labels(tiny_model, tiny_clip_dir, tmp_path):
    from s3_hf import S3Engine, build_synonym_space

    space = build_synonym_space(*tiny_model, ["ice cream", "dog"], descriptors={"ice  cream": ["cold"]})
    assert space.classes[0].descriptors == ["cold"]
    folder = space.save_pretrained(tmp_path / "old")
    for name in ("s3_config.json", "synonyms.json"):  # as an older release wrote a label with two spaces
        path = folder / name
        path.write_text(path.read_text(encoding="utf-8").replace('"ice cream"', '"ice  cream"'), encoding="utf-8")
    engine = S3Engine.from_pretrained(str(tiny_clip_dir))
    selection = engine.space(candidate_labels=["dog", "ice  cream"], synonym_space=str(folder))
    assert selection.labels == ["dog", "ice  cream"]
