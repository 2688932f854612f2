"""WaffleCLIP and DCLIP as their authors' code computes them: the random descriptors' shape from the dataset's class
names and descriptors (``ExplainableML/WaffleCLIP`` ``waffle_tools.py``), seeded draws reported as mean and std,
and DCLIP's template choice (none, as ``classify_by_description_release``, or WaffleCLIP's)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers import SHARED

from s3_hf.baselines import build_method_space
from s3_hf.baselines.texts import (
    WAFFLE_SEEDS,
    dclip_template,
    waffle_descriptors,
    waffle_shape,
    waffle_texts,
    waffle_words,
)
from s3_hf.engine.core import S3Engine
from s3_hf.errors import SynonymsError

DCLIP_DIR = SHARED / "data" / "descriptors" / "dclip"
LABELS = ["cat", "dog", "airplane"]


def published_shape(keys: list[str], descriptors: list[str]) -> tuple[int, int, int, int, str]:
    """The published recipe (waffle_tools.py, mode ``waffle``) re-written with numpy, term by term: word count,
    word truncation, character groups, group length and character set."""
    wordify = [k.replace("_", " ") for k in keys]
    words = int(np.max([np.round(np.mean([len(x.split(" ")) for x in wordify])), 1]))
    length = int(np.round(np.mean([np.mean([len(y) for y in x.split(" ")]) for x in wordify])))
    chars = [x.replace(",", "").replace(".", "") for x in np.unique([w for d in descriptors for w in d.split(" ")])]
    characters = "".join(np.unique(list("".join(chars))))
    spaces = int(np.round(np.mean([np.sum(np.array(list(x)) == " ") for x in keys]))) + 1
    num_chars = int(np.ceil(np.mean([np.max([len(y) for y in x.split(" ")]) for x in keys])))
    num_chars += spaces - num_chars % spaces
    return words, length, spaces, num_chars // spaces, characters


def shape_tuple(shape) -> tuple[int, int, int, int, str]:
    return shape.words, shape.word_length, shape.groups, shape.group_length, shape.characters


# ------------------------------------------------------------------------------------------------ the shape
def test_shape_of_a_small_dataset_by_hand():
    labels = ["red fox", "cat", "black_footed albatross", "sea turtle"]
    shape = waffle_shape(labels, ["has a {bushy} tail.", "Orange, fur!"])
    # words per class (underscores as spaces) 2, 1, 3, 2: mean 2
    assert shape.words == 2
    # mean word length per class 3, 3, 20/3, 4.5: mean 4.29, rounded 4
    assert shape.word_length == 4
    # spaces per class (raw names) 1, 0, 1, 1: mean 0.75, rounded 1, plus 1
    assert shape.groups == 2
    # longest raw word 3, 3, 12 ("black_footed"), 6: mean 6; 6 + 2 - 6 % 2 = 8 characters in 2 groups
    assert shape.group_length == 4 and shape.string_length == 4 + 2 + 4
    # the descriptors' characters without whitespace, "," and "." (and braces), sorted by code point
    assert shape.characters == "!Oabefghilnrstuy" and shape.source == "descriptors"
    assert shape_tuple(shape)[:4] == published_shape(labels, ["x"])[:4]


def test_rounding_is_half_to_even_as_numpy():
    # 2.5 words on average rounds to 2, 1.5 to 2 (numpy's np.round, which the published code uses)
    assert waffle_shape(["a b", "c d e"]).words == 2
    assert waffle_shape(["a", "b c"]).words == 2
    # a class name of one 3-letter word: 3 % 1 == 0, so the published rule still adds a group: 4 characters
    assert (waffle_shape(["cat"]).groups, waffle_shape(["cat"]).group_length) == (1, 4)


def test_characters_fall_back_to_the_class_names():
    shape = waffle_shape(["Cat", "dog."], None)
    assert shape.characters == "Cadgot" and shape.source == "labels"
    assert waffle_shape(["cat"], [" ,.", ""]).source == "labels"  # descriptors with no usable character
    with pytest.raises(SynonymsError, match="at least one class"):
        waffle_shape([])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # EuroSAT, by hand: words 3,1,3,3,5,2,3,6,1,3 (mean 3); mean word lengths average 5.53 (6); spaces average
        # 2 (3 groups); longest words average 7.4 (8), 8 + 3 - 8 % 3 = 9 characters, 3 per group
        ("eurosat", (3, 6, 3, 3, "-abcdefghilmnopqrstuvwy")),
        # DTD: one word per class (1 word, 1 group); names average 7.38 characters (7), rounded up 8,
        # plus 1 for the single group: 9
        ("dtd", (1, 7, 1, 9, "()-abcdefghijklmnopqrstuvwxyz")),
    ],
)
def test_shape_on_published_benchmarks(name, expected):
    path = DCLIP_DIR / f"descriptors_{name}.json"
    if not path.is_file():
        pytest.skip(f"the shared DCLIP descriptors ({path}) are not on this machine")
    mapping = json.loads(path.read_text(encoding="utf-8"))
    keys, descriptors = list(mapping), [d for texts in mapping.values() for d in texts]
    shape = waffle_shape(keys, descriptors)
    assert shape_tuple(shape) == expected
    assert shape_tuple(shape) == published_shape(keys, descriptors)
    mean_length = sum(len(k) for k in keys) / len(keys)
    if name == "dtd":
        assert shape.word_length == round(mean_length) and shape.group_length == math.ceil(mean_length) + 1
    for word, string in zip(*[iter(waffle_descriptors(shape, 15, 0))] * 2, strict=True):
        assert len(word.split(" ")) == shape.words and all(len(w) <= shape.word_length for w in word.split(" "))
        groups = string.split(", ")
        assert [len(g) for g in groups] == [shape.group_length] * shape.groups
        assert set("".join(groups)) <= set(shape.characters)


@pytest.mark.parametrize("name", ["cub", "dtd", "eurosat", "food101", "imagenet", "pets", "places365"])
def test_every_published_file_gives_the_releases_shape(name):
    path = DCLIP_DIR / f"descriptors_{name}.json"
    if not path.is_file():
        pytest.skip(f"the shared DCLIP descriptors ({path}) are not on this machine")
    mapping = json.loads(path.read_text(encoding="utf-8"))
    descriptors = [d for texts in mapping.values() for d in texts]
    assert shape_tuple(waffle_shape(list(mapping), descriptors)) == published_shape(list(mapping), descriptors)


# ------------------------------------------------------------------------------------------------ the draws
def test_draws_are_seeded_shaped_and_differ_across_seeds():
    shape = waffle_shape(["red fox", "sea turtle"], ["pointed ears", "a long, thin tail"])
    draws = {seed: waffle_descriptors(shape, 15, seed) for seed in WAFFLE_SEEDS}
    assert WAFFLE_SEEDS == (0, 1, 2, 3, 4, 5, 6)  # the official script's 7 repetitions
    assert all(waffle_descriptors(shape, 15, seed) == d for seed, d in draws.items())
    assert len({tuple(d) for d in draws.values()}) == len(WAFFLE_SEEDS)
    truncated = {w[: shape.word_length] for w in waffle_words()}
    for d in draws.values():
        assert len(d) == 30
        for word, string in zip(d[::2], d[1::2], strict=True):
            assert len(word.split(" ")) == shape.words and set(word.split(" ")) <= truncated
            assert len(string) == shape.string_length and string[shape.group_length : shape.group_length + 2] == ", "
    # the cut is real: some words of the shipped list are longer than the mean word length
    assert any(len(w) > shape.word_length for w in waffle_words())


def test_which_rule_follows_the_descriptor_form():
    assert waffle_texts("cat", ["an odd one", "has fur", "qzxv, abcd", "antlers"]) == [
        "cat, which is an odd one",
        "cat, which has fur",
        "cat, which has qzxv, abcd",
        "cat, which has antlers",  # whole words: "antlers" is not the article "an"
    ]
    assert waffle_texts("pizza", ["crust"], concept="food") == ["food: a pizza, which has crust"]


# ------------------------------------------------------------------------------------------------ templates
@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    return S3Engine.from_pretrained(tiny_clip_dir, device="cpu")


@pytest.fixture
def encoded(monkeypatch):
    """The exact strings each baseline space sends to the text encoder."""
    seen: list[str] = []

    def encode(model, tokenizer, groups, templates, **kwargs):
        seen.extend(t.format(g[0]) for g in groups for t in templates)
        return torch.nn.functional.normalize(torch.randn(len(groups), 16), dim=-1)

    monkeypatch.setattr("s3_hf.baselines.spaces.encode_concept_groups", encode)
    return seen


DESCRIPTORS = {"cat": ["whiskers", "a small mammal"], "dog": ["can bark"]}


def test_dclip_default_is_the_released_code_no_template(engine, encoded):
    space = build_method_space(engine.encoder, None, LABELS, "dclip", descriptors=DESCRIPTORS)
    assert encoded == ["cat, which has whiskers", "cat, which is a small mammal", "dog, which can bark", "airplane"]
    assert space.config.templates == ["{}"]


def test_dclip_with_waffleclips_template(engine, encoded):
    build_method_space(engine.encoder, None, LABELS, "dclip", descriptors=DESCRIPTORS, dclip_template="waffle")
    assert encoded == [
        "A photo of a cat, which has whiskers.",
        "A photo of a cat, which is a small mammal.",
        "A photo of a dog, which can bark.",
        "A photo of a airplane.",
    ]


def test_dclip_template_names_and_errors():
    assert dclip_template("dclip") == "{}" and dclip_template("waffle") == "A photo of a {}."
    assert dclip_template("itap of a {}.") == "itap of a {}."
    for bad in ("clip", "{} and {}", "{label}"):
        with pytest.raises(SynonymsError, match="Unknown DCLIP template"):
            dclip_template(bad)


def test_waffle_space_uses_the_datasets_characters_and_its_own_template(engine, encoded):
    space = build_method_space(engine.encoder, None, LABELS, "waffle", descriptors=DESCRIPTORS, waffle_count=2, seed=5)
    shape = waffle_shape(LABELS, [d for texts in DESCRIPTORS.values() for d in texts])
    shared = waffle_descriptors(shape, 2, 5)
    want = [f"A photo of a {t}." for label in LABELS for t in waffle_texts(label, shared)]
    assert encoded == want and space.config.templates == ["A photo of a {}."]
    assert space.classes[0].source["shape"]["characters"] == shape.characters
    assert space.classes[0].source["seed"] == 5


def test_engine_defaults_to_the_authors_templates(engine):
    dclip = engine.request(LABELS, method="dclip", descriptors=DESCRIPTORS)
    waffle = engine.request(LABELS, method="waffle", waffle={"count": 1})
    s3 = engine.request(LABELS)
    assert dclip.space.templates == ("{}",) and waffle.space.templates == ("A photo of a {}.",)
    assert s3.space.templates == ("This is a photo of {}.",)
    given = engine.request(LABELS, method="dclip", descriptors=DESCRIPTORS, hypothesis_template="a photo of a {}.")
    assert given.space.templates == ("a photo of a {}.",)


# ------------------------------------------------------------------------------------------------ in s3 eval
def _data(labels):
    from s3_hf.evaluation.data.registry import BenchmarkData

    return BenchmarkData("toy", [], [], list(labels), ["a photo of a {}."])


def test_eval_builds_dclip_with_the_chosen_template_and_waffle_over_seven_draws(engine, tmp_path):
    from s3_hf.evaluation.config import EvalConfig
    from s3_hf.evaluation.methods import Draws, method_spaces

    path = tmp_path / "dclip.json"
    path.write_text(json.dumps({**DESCRIPTORS, "zebra": ["stripes"]}))
    cfg = EvalConfig.from_flags(model="m", benchmarks=[], synonyms=(), dclip=str(path), waffle=2)
    spaces = method_spaces(cfg, engine.encoder, _data(LABELS))
    assert spaces["dclip"][0].config.templates == ["{}"]
    draws, metric = spaces["waffle"]
    assert isinstance(draws, Draws) and draws.seeds == WAFFLE_SEEDS and metric == "mean_similarity"
    texts = [s.classes[0].concepts[0].text for s in draws.spaces]
    assert len(set(texts)) == len(WAFFLE_SEEDS)  # every draw its own descriptors
    # the random strings take their characters from every descriptor of the DCLIP file: "p" and "t" come from
    # "zebra", a class the benchmark does not have
    assert draws.spaces[0].classes[0].source["shape"]["characters"] == "abcehiklmnprstw"
    assert all(s.config.templates == ["A photo of a {}."] for s in draws.spaces)
    named = EvalConfig.from_flags(model="m", benchmarks=[], synonyms=(), dclip=str(path), dclip_template="waffle")
    assert method_spaces(named, engine.encoder, _data(LABELS))["dclip"][0].config.templates == ["A photo of a {}."]


def test_eval_reports_the_mean_and_std_over_draws(engine):
    from s3_hf.evaluation.classification import score_methods
    from s3_hf.evaluation.methods import Draws
    from s3_hf.evaluation.report import markdown
    from s3_hf.evaluation.results import RunResult

    label = build_method_space(engine.encoder, None, LABELS, "cupl", prompts={})
    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(40, label.config.embedding_dim), dim=-1)
    labels = [i % 3 for i in range(40)]
    draws = [build_method_space(engine.encoder, None, LABELS, "waffle", waffle_count=2, seed=s) for s in range(4)]
    single, single_predictions = score_methods(
        engine,
        emb,
        labels,
        {"label": (label, "label")} | {f"w{s}": (space, "mean_similarity") for s, space in enumerate(draws)},
    )
    together, predictions = score_methods(
        engine,
        emb,
        labels,
        {"label": (label, "label"), "waffle": (Draws((0, 1, 2, 3), tuple(draws)), "mean_similarity")},
    )
    single = {m: r.to_dict() for m, r in single.items()}
    together = {m: r.to_dict() for m, r in together.items()}
    got = together["waffle"]
    assert got["top1_std"] > 0  # the draws differ, so the spread is measured, not assumed
    for figure in ("top1", "top5", "mean_per_class"):
        values = [single[f"w{s}"][figure] for s in range(4)]
        assert got[figure] == pytest.approx(np.mean(values), abs=1e-12)
        assert got[f"{figure}_std"] == pytest.approx(np.std(values), abs=1e-12)
        assert got["draws"][figure] == values
    assert got["draws"]["seeds"] == [0, 1, 2, 3] and predictions["waffle"] == single_predictions["w0"]
    assert together["label"] == single["label"]  # a single method's record is unchanged
    summary = {"model": "m", "benchmarks": {"toy": {"samples": 40, "methods": together}}}
    table = markdown(RunResult.from_dict(summary))
    assert f"{100 * got['top1']:.2f} ± {100 * got['top1_std']:.2f}" in table and "mean ± std" in table
