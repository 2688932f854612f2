"""LLM sources: the transformers back end with a tiny random LM, and the cache on a 1,000-label run."""

from __future__ import annotations

import logging

import torch
from helpers import char_tokenizer

from s3_hf import build_synonym_space
from s3_hf.synonyms import LLMSource, TransformersChatSource


def test_transformers_backend_with_garbage_output_falls_back(tmp_path, caplog, tiny_model):
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = char_tokenizer(model_max_length=4096)
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_positions=2048,
            n_embd=16,
            n_layer=1,
            n_head=2,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
    ).eval()
    src = TransformersChatSource(lm, tok, max_new_tokens=12, batch_size=2, cache=tmp_path / "cache")
    labels = ["cat", "dog", "airplane"]
    with caplog.at_level(logging.WARNING):
        got = src.synonyms(labels)
    assert set(got) == set(labels)
    for label, concepts in got.items():  # whatever survived cleaning is short and not a class label
        assert all(len(c.split()) <= 5 and c.casefold() not in labels for c in concepts), (label, concepts)
    assert src.fallbacks, "random weights produce garbage: at least one label falls back"
    assert any("falls back to label-only" in r.getMessage() for r in caplog.records)
    assert src.provenance()["name"] == "transformers" and src.provenance()["do_sample"] is False
    # the run's output builds a space (fallback labels are label-only)
    space = build_synonym_space(*tiny_model, labels, src)
    assert space.labels == labels and space.classes[0].source["name"] == "transformers"


class CountingSource(LLMSource):
    """An in-process back end that answers every label with two synonyms and counts its calls."""

    name = "counting"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def settings(self):
        return {"model": "counter-v1"}

    def _generate(self, batch):
        self.calls += len(batch)
        labels = [m[-1]["content"].split('"')[1] for m in batch]
        return [f'{{"synonyms": ["{label} variant", "{label} kind"]}}' for label in labels]


def test_thousand_labels_cached(tmp_path):
    labels = [f"class {i}" for i in range(1000)]
    first = CountingSource(cache=tmp_path / "cache")
    a = first.synonyms(labels)
    assert first.calls == 1000 and a["class 7"] == ["class 7 variant", "class 7 kind"]
    second = CountingSource(cache=tmp_path / "cache")
    assert second.synonyms(labels) == a
    assert second.calls == 0
    third = CountingSource(cache=tmp_path / "cache", domain="numbers")  # other context: a new question
    third.synonyms(labels[:3])
    assert third.calls == 3


class DescribingSource(CountingSource):
    """Answers with synonyms and, when the prompt asks for them, visual descriptors."""

    def _generate(self, batch):
        self.calls += len(batch)
        out = []
        for messages in batch:
            label = messages[-1]["content"].split('"')[1]
            asked = "descriptors" in messages[-1]["content"]
            desc = f', "descriptors": ["{label} fur", "{label} tail", "{label} fur"]' if asked else ""
            out.append(f'{{"synonyms": ["{label} variant"]{desc}}}')
        return out


def test_llm_descriptors_are_asked_for_kept_and_cached(tmp_path, tiny_model):
    src = DescribingSource(cache=tmp_path / "cache", descriptors=True)
    assert src.descriptors(["cat", "dog"]) == {"cat": ["cat fur", "cat tail"], "dog": ["dog fur", "dog tail"]}
    again = DescribingSource(cache=tmp_path / "cache", descriptors=True)
    assert again.descriptors(["cat", "dog"])["cat"] == ["cat fur", "cat tail"] and again.calls == 0  # cached
    plain = DescribingSource(cache=tmp_path / "cache")
    assert plain.descriptors(["cat", "dog"])["cat"] == [] and plain.calls == 2  # another question: no descriptors
    space = build_synonym_space(*tiny_model, ["cat", "dog"], src, descriptors=True)
    assert [c.descriptors for c in space.classes] == [["cat fur", "cat tail"], ["dog fur", "dog tail"]]
