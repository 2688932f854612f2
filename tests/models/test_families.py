"""Model families of transformers' zero-shot pipeline: S^3 with a label-only space scores exactly as transformers
does for each (a sigmoid with the logit bias for SigLIP and SigLIP 2, a softmax elsewhere; ALIGN and TIPSv2 divide
by a temperature), families it cannot serve are refused when the engine is made, and spaces and few-shot adapters
know which family they belong to."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import make_tiny_family
from PIL import Image
from transformers import AutoConfig, AutoModelForZeroShotImageClassification, pipeline
from transformers.models.auto.modeling_auto import MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES

import s3_hf
from s3_hf.engine.core import S3Engine, check_dual_encoder
from s3_hf.errors import InvalidConfigError, ModelMismatchError, S3Error
from s3_hf.io.images import load_image
from s3_hf.models.embedding import image_inputs
from s3_hf.models.families import UNSUPPORTED_FAMILIES, UnsupportedModelError, embedding_dim
from s3_hf.space.artifact import CONFIG_NAME
from s3_hf.text.encoding import encode_texts, max_text_tokens, token_lengths

LABELS = ["cat", "dog", "airplane", "cup of coffee"]
FAMILIES = ["clip", "siglip", "siglip2", "metaclip_2", "align", "altclip", "blip", "chinese_clip", "clipseg", "tipsv2"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_clip_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    out = {"clip": tiny_clip_dir}
    for family in FAMILIES[1:]:
        out[family] = make_tiny_family(root / family, family)
    return out


@pytest.fixture(scope="module")
def pipes(checkpoints) -> dict[str, tuple]:
    return {
        family: (pipeline(s3_hf.TASK, model=str(path)), pipeline("zero-shot-image-classification", model=str(path)))
        for family, path in checkpoints.items()
    }


@pytest.fixture(scope="module")
def transformers_results(pipes, photos) -> Callable[[str], list[list[dict]]]:
    """transformers' own pipeline on four photos, run once per family."""
    results: dict[str, list[list[dict]]] = {}

    def get(family: str) -> list[list[dict]]:
        if family not in results:
            results[family] = pipes[family][1]([Image.open(p) for p in photos[:4]], candidate_labels=LABELS)
        return results[family]

    return get


def as_dict(result: list[dict]) -> dict[str, float]:
    return {r["label"]: r["score"] for r in result}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("metric", ["label", "global_center", "nearest_point", "local_center"])
def test_label_only_equals_transformers(pipes, photos, transformers_results, family, metric):
    ours, _ = pipes[family]
    images = [Image.open(p) for p in photos[:4]]
    expected = transformers_results(family)
    for batch_size in (1, 4):
        got = ours(images, candidate_labels=LABELS, metric=metric, batch_size=batch_size)
        for a, b in zip(got, expected, strict=True):
            assert as_dict(a) == pytest.approx(as_dict(b), abs=1e-5)
    sums = [sum(as_dict(r).values()) for r in expected]
    if family.startswith("siglip"):  # independent per-class sigmoids: they need not sum to one
        assert ours.engine.family.scoring == "sigmoid" and any(abs(s - 1) > 1e-3 for s in sums)
    else:
        assert ours.engine.family.scoring == "softmax" and sums == pytest.approx([1.0] * len(sums))


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_equal_the_models_own(pipes, photos, family):
    """``τ·s + b`` is the model's own ``logits_per_image``: ``τ`` is ``exp(logit_scale)`` or ``1 / temperature``."""
    ours, _ = pipes[family]
    engine = ours.engine
    images = [load_image(p) for p in photos[:2]]
    texts = [f"This is a photo of {label}." for label in LABELS]
    tokens = ours.tokenizer(texts, return_tensors="pt", **engine.family.tokenizer_kwargs)
    with torch.no_grad():
        expected = ours.model(**tokens, **image_inputs(ours.image_processor, images)).logits_per_image
    resolved = engine.resolve(engine.request(LABELS, metric="label"))
    got = engine.scores(engine.encode_images(images), resolved).logits
    assert got.cpu() == pytest.approx(expected, abs=1e-4)
    temperature = getattr(ours.model, "temperature", None)
    if family in ("align", "tipsv2"):
        assert engine.logit_scale == pytest.approx(1 / float(temperature.detach()))
    else:
        assert temperature is None and engine.logit_scale == pytest.approx(float(ours.model.logit_scale.detach().exp()))


@pytest.mark.parametrize("family", FAMILIES)
def test_longest_text_fits_the_encoder(pipes, family):
    """A text of exactly ``max_text_tokens`` tokens encodes (AltCLIP's positions start after the padding index)."""
    ours, _ = pipes[family]
    limit = max_text_tokens(ours.model)
    assert limit == (64 if family == "altclip" else ours.model.config.text_config.max_position_embeddings)
    text = next(t for t in ("a" * n for n in range(limit + 1)) if token_lengths(ours.tokenizer, [t])[0] >= limit)
    assert token_lengths(ours.tokenizer, [text]) == [limit]
    assert encode_texts(ours.model, ours.tokenizer, [text]).shape == (1, embedding_dim(ours.model))


@pytest.mark.parametrize("family", FAMILIES)
def test_text_is_encoded_once(pipes, photos, family):
    ours, _ = pipes[family]
    calls = []
    hook = ours.model.text_model.register_forward_hook(lambda *a: calls.append(1))
    try:
        ours(str(photos[0]), candidate_labels=["a", "b"], synonyms={"a": ["aa"]})
        first = len(calls)
        ours([str(p) for p in photos[:3]], candidate_labels=["a", "b"], synonyms={"a": ["aa"]}, batch_size=2)
        assert first > 0 and len(calls) == first
    finally:
        hook.remove()


def test_spaces_record_and_enforce_their_family(pipes, checkpoints, photos, tmp_path):
    clip_pipe, siglip_pipe = pipes["clip"][0], pipes["siglip"][0]
    space = siglip_pipe.engine.build_space(LABELS)
    assert (space.config.model_family, space.config.scoring) == ("siglip", "sigmoid")
    assert space.config.tokenizer_kwargs == {"padding": "max_length", "max_length": 64, "truncation": True}
    folder = space.save_pretrained(tmp_path / "siglip-space")
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["model_family"] == "siglip" and config["scoring"] == "sigmoid"
    assert "- siglip" in (folder / "README.md").read_text()
    clip_space = clip_pipe.engine.build_space(LABELS)
    with pytest.raises(ModelMismatchError, match="built with a clip model"):
        siglip_pipe(str(photos[0]), synonym_space=clip_space)


@pytest.mark.parametrize("family", ["metaclip_2", "siglip", "siglip2"])
def test_fewshot_with_patch_tokens(pipes, photos, family):
    """SSP fits and classifies with every transformers family that has patch tokens in the joint space."""
    support = [(str(p), lab) for p, lab in zip(photos[:3], LABELS[:3], strict=True)]
    out = pipes[family][0](str(photos[3]), candidate_labels=LABELS[:3], support=support, fewshot={"alpha": 0.5})
    assert {r["label"] for r in out} == set(LABELS[:3])
    assert pipes[family][0].engine.encoder.has_patch_tokens


@pytest.mark.parametrize("family", ["align", "blip", "chinese_clip"])
def test_fewshot_needs_patch_tokens(pipes, photos, family):
    support = [(str(p), lab) for p, lab in zip(photos[:3], LABELS[:3], strict=True)]
    with pytest.raises(InvalidConfigError, match="patch tokens"):
        pipes[family][0](str(photos[3]), candidate_labels=LABELS[:3], support=support)


def test_siglip_patch_tokens_are_map_pooled_single_tokens():
    """With one patch, SigLIP's attention-pooling head sees one token, so the patch token's joint-space feature is
    the image embedding itself; with several, each is that head applied to its token alone."""
    from transformers import SiglipConfig, SiglipModel

    from s3_hf.models.encoders import TransformersEncoder

    layers = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    torch.manual_seed(0)
    for size, patches in ((8, 1), (16, 4)):
        vision = {**layers, "image_size": size, "patch_size": 8}
        config = SiglipConfig(text_config={**layers, "vocab_size": 99}, vision_config=vision)
        encoder = TransformersEncoder(SiglipModel(config).eval())
        pixels = torch.randn(2, 3, size, size)
        glob, local = encoder.global_and_local(pixels)
        assert local.shape == (2, patches, 32)
        assert torch.allclose(glob, encoder.encode_pixels(pixels), atol=1e-6)
        if patches == 1:
            assert torch.allclose(local[:, 0], glob, atol=1e-5)
        else:
            with torch.no_grad():
                hidden = encoder.model.vision_model(pixel_values=pixels).last_hidden_state
                want = torch.stack([encoder.model.vision_model.head(hidden[:, i : i + 1]) for i in range(patches)], 1)
            assert torch.allclose(local, torch.nn.functional.normalize(want, dim=-1), atol=1e-5)


def test_siglip2_padding_patches_get_no_feature(pipes, photos):
    """SigLIP 2 pads every image to a fixed number of patches; padding patches get a zero local feature."""
    encoder = pipes["siglip2"][0].engine.encoder
    inputs = encoder.image_inputs([load_image(photos[0]), load_image(photos[4])])
    glob, local = encoder.global_and_local(inputs)
    mask = inputs["pixel_attention_mask"].bool()
    assert not mask.all(), "the photos should need padding patches"
    assert torch.equal(local[~mask], torch.zeros_like(local[~mask]))
    assert torch.allclose(local[mask].norm(dim=-1), torch.ones(int(mask.sum())), atol=1e-5)
    assert torch.allclose(glob, encoder.encode_pixels(inputs), atol=1e-6)


TINY_UNSUPPORTED = {
    "blip-2": {
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        "qformer_config": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "vocab_size": 99,
            "encoder_hidden_size": 32,
        },
        "num_query_tokens": 4,
        "image_text_hidden_size": 16,
    },
    "videoprism": {
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "image_size": 32,
            "num_frames": 2,
            "tubelet_size": [1, 8, 8],
            "num_spatial_layers": 1,
            "num_temporal_layers": 1,
            "num_auxiliary_layers": 1,
        },
        "text_config": {
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "vocab_size": 99,
        },
    },
}


def test_every_transformers_family_is_served_or_refused():
    assert set(MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES) == set(FAMILIES) | set(UNSUPPORTED_FAMILIES)
    assert set(TINY_UNSUPPORTED) == set(UNSUPPORTED_FAMILIES)


@pytest.mark.parametrize(
    ("family", "why"),
    [
        ("blip-2", "blip-2 has no single image embedding.*one text and one image embedding"),
        ("videoprism", "videoprism encodes videos.*not images"),
    ],
)
def test_unsupported_families_are_refused(family, why):
    config = AutoConfig.for_model(family, **TINY_UNSUPPORTED[family])
    model = AutoModelForZeroShotImageClassification.from_config(config).eval()
    with pytest.raises(UnsupportedModelError, match=why) as err:
        S3Engine(model, None, None)
    assert "Use a dual encoder such as CLIP" in str(err.value)
    assert isinstance(err.value, S3Error)


def test_a_model_without_text_and_image_features_is_refused(tiny_model):
    text_tower = tiny_model[0].text_model
    with pytest.raises(UnsupportedModelError, match="not a CLIP-style dual encoder"):
        check_dual_encoder(text_tower)


def test_text_canonicalization_is_a_named_recorded_option(pipes, photos, tmp_path):
    from s3_hf.models.families import canonicalize

    assert canonicalize("A Photo of a Cup-of-Coffee.", "lower_no_punct") == "a photo of a cup of coffee"
    ours, _ = pipes["siglip2"]
    image = str(photos[0])
    plain = ours(image, candidate_labels=["Cat!", "dog"])
    canon = ours(image, candidate_labels=["Cat!", "dog"], canonicalization="lower_no_punct")
    same = ours(image, candidate_labels=["cat", "dog"], hypothesis_template="this is a photo of {}")
    # "This is a photo of Cat!." and "this is a photo of cat" tokenise alike once canonicalised
    assert [r["score"] for r in canon] == pytest.approx([r["score"] for r in same], abs=1e-6)
    assert [r["score"] for r in plain] != pytest.approx([r["score"] for r in canon], abs=1e-6)
    space = ours.engine.build_space(["Cat!", "dog"], canonicalization="lower_no_punct")
    assert space.config.text_canonicalization == "lower_no_punct"
    again = s3_hf.SynonymSpace.from_pretrained(space.save_pretrained(tmp_path / "canon"))
    assert again.config.text_canonicalization == "lower_no_punct"
    with pytest.raises(InvalidConfigError, match="canonicalization"):
        ours(image, candidate_labels=["cat", "dog"], canonicalization="upper")


def test_open_clip_folder_without_the_extra_is_a_typed_error(tmp_path, monkeypatch):
    """An open_clip checkpoint with the open_clip extra missing: a ModelLoadError that says what to install."""
    import sys

    from s3_hf.errors import ModelLoadError
    from s3_hf.models.encoders import is_open_clip_name, load_encoder

    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {}}))
    assert is_open_clip_name(tmp_path) and is_open_clip_name("hf-hub:org/name") and not is_open_clip_name("org/name")
    monkeypatch.setitem(sys.modules, "open_clip", None)  # what a missing package looks like to import
    for name in (tmp_path, "hf-hub:org/name"):
        with pytest.raises(ModelLoadError, match=r"s3-hf\[open_clip\]"):
            load_encoder(name, device="cpu")
