"""Hostile and careless input to the command line and to the text it reads: labels, synonym cleaning, JSON/YAML
files, output names, terminals and pipes."""

from __future__ import annotations

import logging

from s3_hf.synonyms import base
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
