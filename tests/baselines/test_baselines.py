"""The paper's comparison methods on the same embeddings as S^3: DCLIP, CuPL and WaffleCLIP as spaces, S^3 with
descriptors, GDA beside SSP, and the public descriptor files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import SHARED

from s3_hf import build_synonym_space
from s3_hf.baselines import (
    build_method_space,
    dclip_texts,
    descriptor_sentence,
    match_class_texts,
    read_class_texts,
    waffle_descriptors,
    waffle_texts,
)
from s3_hf.baselines.texts import waffle_shape, waffle_words
from s3_hf.engine.core import S3Engine
from s3_hf.errors import InvalidConfigError, SynonymsError
from s3_hf.fewshot.gda import fit_gda, fit_gda_head

LABELS = ["cat", "dog", "airplane"]


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    return S3Engine.from_pretrained(tiny_clip_dir, device="cpu")


@pytest.fixture(scope="module")
def v(engine, photos):
    return engine.encode_images([str(p) for p in photos[:3]])


# --------------------------------------------------------------------------------------------------- texts
def test_descriptor_sentences():
    assert descriptor_sentence("cat", "pointed ears") == "cat, which has pointed ears"
    assert descriptor_sentence("cat", "a small mammal") == "cat, which is a small mammal"
    assert descriptor_sentence("cat", "an animal with fur") == "cat, which is an animal with fur"
    assert descriptor_sentence("cat", "can climb trees") == "cat, which can climb trees"
    assert descriptor_sentence("cat", "used as a pet") == "cat, which is used as a pet"
    assert descriptor_sentence("cat", "antlers") == "cat, which has antlers"  # a noun that starts with "a"
    assert dclip_texts("cat", []) == ["cat"]  # no descriptors: the label alone


def test_waffle_texts_follow_the_paper_format_and_are_deterministic():
    shape = waffle_shape(LABELS, ["pointed ears", "a round shape"])
    first, again, other = (waffle_descriptors(shape, 15, seed) for seed in (3, 3, 4))
    assert first == again and first != other and len(first) == 30
    words = {w[: shape.word_length] for w in waffle_words()}
    for word, char_seq in zip(first[::2], first[1::2], strict=True):
        assert len(word.split()) == shape.words and set(word.split()) <= words
        assert len(char_seq) == shape.string_length and set(char_seq) <= set(shape.characters)
    texts = waffle_texts("cat", first)
    assert texts[0] == descriptor_sentence("cat", first[0]) and len(texts) == 30
    assert waffle_texts("cat", ["blue"], concept="animal") == ["animal: a cat, which has blue"]
    with pytest.raises(SynonymsError, match="positive integer"):
        waffle_descriptors(shape, 0)


def test_match_report():
    texts = {"Cat": ["a"], "hot_dog": ["b"], "zebra": ["c"], "dog": []}
    matched, report = match_class_texts(texts, ["cat", "hot dog", "dog", "cow"])
    assert matched == {"cat": ["a"], "hot dog": ["b"], "dog": []}
    assert (report.missing, report.empty, report.unused) == (["cow"], ["dog"], ["zebra"])
    assert "1 without an entry" in report.summary()


@pytest.mark.skipif(not (SHARED / "data" / "descriptors").is_dir(), reason="../shared/data/descriptors is absent")
def test_published_dclip_and_cupl_files_match_imagenet_classes():
    rows = (SHARED / "data" / "imagenet-sample" / "classes.tsv").read_text().splitlines()[1:]
    labels = [r.split("\t")[3] for r in rows]
    dclip = read_class_texts(SHARED / "data" / "descriptors" / "dclip" / "descriptors_imagenet.json", "DCLIP")
    matched, report = match_class_texts(dclip, labels)
    # DCLIP renames four CLIP names (its README): "newt" and "tights" find no entry and are reported; "missile" and
    # "sunglasses" name two classes each in CLIP's list, so the second of each still finds DCLIP's first entry
    assert sorted(report.missing) == ["newt", "tights"]
    assert sorted(report.unused) == ["eft", "maillot", "projectile", "sunglass"]
    assert len(report.matched) == 998 and all(matched[lab] for lab in report.matched)
    cupl = read_class_texts(
        SHARED / "data" / "descriptors" / "cupl" / "base_prompts" / "imagenet_prompts_base.json", "CuPL"
    )
    _, report = match_class_texts(cupl, labels)
    assert len(report.matched) + len(report.missing) + len(report.empty) == 1000
    assert len(report.matched) > 950, report.summary()


# ------------------------------------------------------------------------------------------------- methods
def test_cupl_with_one_prompt_per_class_equals_label(engine, v):
    prompts = {lab: [f"a photo of a {lab}."] for lab in LABELS}
    cupl = engine.scores(v, engine.resolve(engine.request(LABELS, method="cupl", prompts=prompts))).logits
    label = engine.request(LABELS, hypothesis_template="a photo of a {}.", metric="label")
    assert torch.allclose(cupl, engine.scores(v, engine.resolve(label)).logits, atol=1e-6)


def test_cupl_averages_its_prompts(engine, v, tmp_path):
    path = tmp_path / "cupl.json"
    path.write_text(json.dumps({"cat": ["a cat.", "a furry cat."], "dog": ["a dog."]}))
    space = engine.space(
        candidate_labels=LABELS, method="cupl", prompts=str(path), templates=["a photo of a {}."]
    ).space
    texts = [["a cat.", "a furry cat."], ["a dog."], ["a photo of a airplane."]]  # airplane: no prompt, template
    want = torch.nn.functional.normalize(torch.stack([engine.encoder.encode_texts(t).mean(0) for t in texts]), dim=-1)
    assert torch.allclose(space.tensors.points, want, atol=1e-6)
    assert space.config.method == "cupl" and space.config.provenance["match"]["missing"] == ["airplane"]


def test_dclip_is_the_mean_similarity_over_descriptors(engine, monkeypatch):
    """Planted text vectors: the DCLIP score is the mean of ``v · t`` over the class's descriptor texts."""
    planted = {
        "a photo of a cat, which has whiskers.": [1.0, 0.0, 0.0],
        "a photo of a cat, which has pointed ears.": [0.0, 1.0, 0.0],
        "a photo of a dog, which has floppy ears.": [0.0, 0.0, 1.0],
        "a photo of a airplane.": [0.6, 0.8, 0.0],
    }

    def encode(model, tokenizer, groups, templates, **kwargs):
        vecs = [planted[templates[0].format(g[0])] for g in groups]
        return torch.nn.functional.pad(torch.tensor(vecs), (0, 13))

    monkeypatch.setattr("s3_hf.baselines.spaces.encode_concept_groups", encode)
    descriptors = {"cat": ["whiskers", "pointed ears"], "dog": ["floppy ears"]}
    space = build_method_space(
        engine.encoder, None, LABELS, "dclip", descriptors=descriptors, templates=["a photo of a {}."]
    )
    image = torch.nn.functional.pad(torch.tensor([[0.36, 0.48, 0.8]]), (0, 13))
    state = space.scoring_state()
    from s3_hf.space.scoring import score

    got = score(image, state, space.config.metric)
    # by hand: cat (0.36 + 0.48) / 2, dog 0.8, airplane 0.36*0.6 + 0.48*0.8
    assert torch.allclose(got, torch.tensor([[0.42, 0.8, 0.6]], dtype=got.dtype), atol=1e-6)
    assert [len(c.concepts) for c in space.classes] == [2, 1, 1] and space.config.metric == "mean_similarity"


def test_waffle_space(engine, v):
    req = engine.request(LABELS, method="waffle", waffle={"count": 3, "seed": 1})
    space = engine.resolve(req).space
    assert [len(c.concepts) for c in space.classes] == [6, 6, 6] and space.config.method == "waffle"
    shared = waffle_descriptors(waffle_shape(LABELS), 3, 1)
    assert space.classes[0].concepts[0].text == descriptor_sentence("cat", shared[0])
    assert space.config.templates == ["A photo of a {}."]  # WaffleCLIP's own template by default
    assert engine.scores(v, engine.resolve(req)).logits.shape == (3, 3)


def test_method_errors(engine):
    with pytest.raises(InvalidConfigError, match="needs prompts"):
        engine.request(LABELS, method="cupl")
    with pytest.raises(InvalidConfigError, match="needs descriptors"):
        engine.request(LABELS, method="dclip")
    with pytest.raises(InvalidConfigError, match="Unknown method"):
        engine.request(LABELS, method="tip")
    with pytest.raises(InvalidConfigError, match="uses no synonyms"):
        engine.request(LABELS, method="waffle", synonyms={"cat": ["kitty"]})
    with pytest.raises(SynonymsError, match="does not exist"):
        engine.request(LABELS, method="cupl", prompts="missing.json")


def test_the_pipeline_takes_the_methods(s3_pipe, photos):
    out = s3_pipe(str(photos[0]), candidate_labels=LABELS, method="waffle", waffle={"count": 2})
    assert {r["label"] for r in out} == set(LABELS)


# ----------------------------------------------------------------------------------- S^3 with descriptors
def test_s3_with_one_descriptor_equals_s3_on_texts_that_contain_it(engine):
    descriptors = {"cat": ["whiskers"], "dog": ["floppy ears"], "airplane": ["two wings"]}
    with_desc = build_synonym_space(
        engine.encoder,
        None,
        LABELS,
        {"cat": ["kitty"]},
        concept_format="{concept}",
        descriptors=descriptors,
        templates=["a photo of a {}."],
    )
    written = [f"{lab}, which has {descriptors[lab][0]}" for lab in LABELS]
    plain = build_synonym_space(
        engine.encoder,
        None,
        written,
        {written[0]: ["kitty, which has whiskers"]},
        concept_format="{concept}",
        templates=["a photo of a {}."],
    )
    assert torch.allclose(with_desc.tensors.points, plain.tensors.points, atol=1e-6)
    assert with_desc.classes[0].descriptors == ["whiskers"]
    assert with_desc.config.descriptor_format == "{concept}, which has {descriptor}"
    assert plain.config.descriptor_format is None


def test_descriptors_round_trip_and_come_from_the_source(engine, tmp_path):
    from s3_hf import SynonymSpace
    from s3_hf.synonyms import StaticSource

    source = StaticSource({"cat": ["kitty"]}, descriptors={"cat": ["whiskers", "Whiskers", " "], "dog": ["a tail"]})
    space = engine.build_space(LABELS, source, descriptors=True)
    assert [c.descriptors for c in space.classes] == [["whiskers"], ["a tail"], []]
    loaded = SynonymSpace.from_pretrained(space.save_pretrained(tmp_path / "space"))
    assert [c.descriptors for c in loaded.classes] == [["whiskers"], ["a tail"], []]
    assert torch.equal(loaded.tensors.points, space.tensors.points)


# --------------------------------------------------------------------------------------------------- GDA
def test_gda_recovers_the_bayes_decisions_on_two_gaussians():
    gen = torch.Generator().manual_seed(0)
    means = torch.tensor([[1.0, 0.0, 0.5], [-0.5, 1.0, 0.0]], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.6, 0.0], [0.6, 1.0, 0.3], [0.0, 0.3, 0.5]], dtype=torch.float64)
    chol = torch.linalg.cholesky(cov)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(2).repeat_interleave(n)
        return means[y] + torch.randn(2 * n, 3, generator=gen, dtype=torch.float64) @ chol.T, y

    x, y = sample(5000)
    w, b = fit_gda_head(x, y.tolist(), 2)
    test, _ = sample(2000)
    precision = torch.linalg.inv(cov)
    bayes = (test @ precision @ means.T - 0.5 * (means @ precision * means).sum(-1)).argmax(-1)
    agree = float(((test @ w + b).argmax(-1) == bayes).double().mean())
    assert agree > 0.99, agree


def test_gda_without_support_returns_the_zero_shot_scores():
    zero_shot = torch.randn(5, 3)
    gda = fit_gda(torch.empty(0, 16), [], 3, zero_shot=torch.empty(0, 3))
    assert torch.equal(gda.logits(torch.randn(5, 16), zero_shot), zero_shot)


def test_gda_alpha_is_tuned_on_the_support_set():
    gen = torch.Generator().manual_seed(1)
    centres = torch.nn.functional.normalize(torch.randn(3, 8, generator=gen), dim=-1)
    y = torch.arange(3).repeat(8)
    x = torch.nn.functional.normalize(centres[y] + 0.3 * torch.randn(24, 8, generator=gen), dim=-1)
    wrong = torch.zeros(24, 3)
    wrong[torch.arange(24), (y + 1) % 3] = 5.0  # a zero-shot classifier that is always wrong
    gda = fit_gda(x, y.tolist(), 3, zero_shot=wrong, alpha_grid=(0.01, 100.0))
    assert gda.tuned and gda.alpha == 100.0  # only a large weight overrules the wrong zero-shot scores
    assert np.isfinite(gda.weights.numpy()).all()
