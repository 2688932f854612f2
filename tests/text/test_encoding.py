"""Templates and text/image encoding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from s3_hf.errors import TemplateError
from s3_hf.models.embedding import encode_images
from s3_hf.text.encoding import concept_text, encode_concepts, encode_texts
from s3_hf.text.templates import DEFAULT_TEMPLATE, IMAGENET_TEMPLATES, resolve_templates


def test_template_sets():
    assert len(IMAGENET_TEMPLATES) == 80 and len(set(IMAGENET_TEMPLATES)) == 80
    assert resolve_templates("imagenet80") == list(IMAGENET_TEMPLATES)
    assert resolve_templates(None) == [DEFAULT_TEMPLATE]
    assert resolve_templates("itap of a {}.") == ["itap of a {}."]
    assert resolve_templates(["a {}.", "the {}."]) == ["a {}.", "the {}."]


@pytest.mark.parametrize("bad", [[], ["no placeholder"], ["{} and {}"], "imagenet81"])
def test_bad_templates(bad):
    with pytest.raises(TemplateError):
        resolve_templates(bad)


def test_concept_text():
    assert concept_text("cat", "cat") == "cat"
    assert concept_text("kitty", "cat") == "kitty, which is a cat"
    assert concept_text("kitty", "cat", "{concept}") == "kitty"


def test_template_ensemble(tiny_model):
    model, tok = tiny_model
    templates = ["a photo of a {}.", "a drawing of the {}.", "itap of my {}."]
    got = encode_concepts(model, tok, ["cat", "kitty, which is a cat"], templates)
    for i, text in enumerate(["cat", "kitty, which is a cat"]):
        each = encode_texts(model, tok, [t.format(text) for t in templates])
        torch.testing.assert_close(got[i], F.normalize(each.mean(0), dim=0))
    assert torch.allclose(got.norm(dim=-1), torch.ones(2))


def test_batching_does_not_change_text_embeddings(tiny_model):
    model, tok = tiny_model
    texts = [f"a photo of a thing number {i}." for i in range(7)]
    torch.testing.assert_close(encode_texts(model, tok, texts, batch_size=2), encode_texts(model, tok, texts))


def test_encode_images(tiny_model, tiny_clip_dir, photos):
    from transformers import AutoImageProcessor

    model, _ = tiny_model
    proc = AutoImageProcessor.from_pretrained(tiny_clip_dir)
    emb = encode_images(model, proc, [str(p) for p in photos], batch_size=2)
    assert emb.shape == (len(photos), model.config.projection_dim)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(len(photos)), atol=1e-5)
