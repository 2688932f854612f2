"""Synonym sources and cleaning."""

from __future__ import annotations

import json
import logging

import pytest

from s3_hf.errors import SynonymsError
from s3_hf.space.records import ConceptRecord
from s3_hf.synonyms import LabelOnlySource, StaticSource, SynonymSource, clean_concepts, resolve_source
from s3_hf.synonyms.base import clean_concepts_with_drops


def test_clean_concepts():
    got = clean_concepts(
        "cat",
        ["  kitty ", "Kitty", "CAT", "", "house   cat", "dog", "a very long name with six words", "tabby"],
        other_labels=["cat", "dog"],
    )
    assert got == ["cat", "kitty", "house cat", "tabby"]


def test_clean_concepts_caps_the_count():
    assert clean_concepts("x", [f"s{i}" for i in range(30)], max_concepts=3) == ["x", "s0", "s1", "s2"]


def test_clean_concepts_records_every_drop():
    raw = ["  kitty ", "Kitty", "CAT", "", "house   cat", "dog", "a very long name with six words", "tabby", "puss"]
    kept, dropped = clean_concepts_with_drops("cat", raw, max_concepts=3, other_labels=["cat", "dog"])
    assert kept == clean_concepts("cat", raw, max_concepts=3, other_labels=["cat", "dog"])
    assert kept == ["cat", "kitty", "house cat", "tabby"]
    assert dropped == [
        ConceptRecord.dropped("Kitty", "duplicate", "duplicate of 'kitty'"),
        ConceptRecord.dropped("CAT", "duplicate", "duplicate of the label"),
        ConceptRecord.dropped("dog", "other_label", "the label of another class ('dog')"),
        ConceptRecord.dropped("a very long name with six words", "too_long", "longer than 5 words"),
        ConceptRecord.dropped("puss", "limit", "over the limit of 3 synonyms"),
    ]  # blank candidates are not concepts: nothing to record
    assert clean_concepts_with_drops("x", ["a", "b", "b", "A"], max_concepts=1)[1] == [
        ConceptRecord.dropped("b", "limit", "over the limit of 1 synonyms"),
        ConceptRecord.dropped("b", "duplicate", "duplicate of 'b'"),
        ConceptRecord.dropped("A", "duplicate", "duplicate of 'a'"),
    ]


def test_clean_concepts_warns(caplog):
    with caplog.at_level(logging.WARNING):
        clean_concepts("cat", ["dog", "one two three four five six"], other_labels=["dog"])
    messages = " ".join(r.message for r in caplog.records)
    assert "another class" in messages and "longer than 5 words" in messages


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_static_file(tmp_path, suffix):
    path = tmp_path / f"syn{suffix}"
    data = {"cat": ["kitty", "feline"], "dog": "puppy"}
    path.write_text(json.dumps(data) if suffix == ".json" else "cat: [kitty, feline]\ndog: puppy\n")
    src = StaticSource(path)
    assert src.synonyms(["cat", "dog", "bird"]) == {"cat": ["kitty", "feline"], "dog": ["puppy"], "bird": []}
    assert src.provenance()["file"] == path.name and src.provenance()["name"] == "static"


def test_static_errors(tmp_path):
    with pytest.raises(SynonymsError, match="does not exist"):
        StaticSource(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(SynonymsError, match="Cannot parse"):
        StaticSource(bad)
    with pytest.raises(SynonymsError, match="list of strings"):
        StaticSource({"cat": [1, 2]})
    with pytest.raises(SynonymsError, match="must map"):
        StaticSource(["cat"])  # type: ignore[arg-type]


def test_resolve_source():
    assert isinstance(resolve_source(None), LabelOnlySource)
    assert isinstance(resolve_source({"cat": ["kitty"]}), StaticSource)
    src = LabelOnlySource()
    assert resolve_source(src) is src and isinstance(src, SynonymSource)
    assert src.synonyms(["a", "b"]) == {"a": [], "b": []}


def test_build_rejects_unknown_labels_in_a_file(tiny_model, tmp_path):
    from s3_hf import build_synonym_space

    path = tmp_path / "syn.json"
    path.write_text(json.dumps({"cat": ["kitty"], "cta": ["tom"]}))
    with pytest.raises(SynonymsError, match="cta"):
        build_synonym_space(*tiny_model, ["cat", "dog"], path)


def test_build_records_provenance(small_space):
    rec = small_space.classes[0]
    assert rec.source["name"] == "static" and "built" in rec.source
    assert rec.concepts[0].to_dict() == {"text": "cat", "kept": True}
