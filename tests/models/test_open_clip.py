"""open_clip checkpoints through the encoder interface: label-only S^3 equals open_clip's own zero-shot recipe, spaces
record the family and refuse other models, SSP uses the ViT's patch tokens, and the CLI and eval take open_clip
folders and ``hf-hub:`` ids. These tests need the ``open_clip`` extra (which needs torchvision)."""

from __future__ import annotations

import json
import os

import pytest

try:
    import open_clip  # noqa: F401
except ImportError as _err:  # the extra is optional; CI runs this file in an environment that has it
    if os.environ.get("S3_REQUIRE_OPEN_CLIP") == "1":
        raise
    pytest.skip(
        f'open_clip is not installed ({_err}); pip install "s3-hf[open_clip]" to run these tests',
        allow_module_level=True,
    )

import torch
import torch.nn.functional as F
from helpers import fake_hub, folder_files, make_tiny_open_clip
from PIL import Image

from s3_hf import SegmentOptions, SynonymSpace
from s3_hf.cli import main
from s3_hf.engine.core import S3Engine
from s3_hf.errors import ModelLoadError, ModelMismatchError
from s3_hf.models.encoders import OpenClipEncoder, load_encoder

LABELS = ["cat", "dog", "airplane", "cup of coffee"]
TEMPLATE = "a photo of a {}."


@pytest.fixture(scope="module")
def oc_dir(tmp_path_factory):
    return make_tiny_open_clip(tmp_path_factory.mktemp("open_clip") / "tiny")


@pytest.fixture(scope="module")
def engine(oc_dir):
    return S3Engine.from_pretrained(oc_dir, device="cpu")


def recipe(encoder: OpenClipEncoder, images: list[Image.Image], labels: list[str], template: str) -> torch.Tensor:
    """open_clip's own zero-shot classification: ``build_zero_shot_classifier``, then a softmax (or, for a model
    with a logit bias, a sigmoid) of the scaled similarities."""
    from open_clip import build_zero_shot_classifier

    model = encoder.model
    with torch.no_grad():
        weights = build_zero_shot_classifier(model, encoder.tokenizer, labels, [template], device="cpu")
        v = model.encode_image(torch.stack([encoder.image_processor(im) for im in images]), normalize=True)
        logits = model.logit_scale.exp() * v @ weights
        if model.logit_bias is not None:
            return (logits + model.logit_bias).sigmoid()
    return logits.softmax(-1)


def probabilities(engine: S3Engine, images: list[Image.Image], metric: str, labels=LABELS) -> torch.Tensor:
    request = engine.request(labels, hypothesis_template=TEMPLATE, metric=metric)
    out = engine.classify(images, request, batch_size=len(images))
    return torch.tensor([[{p.label: p.score for p in ranked}[lab] for lab in labels] for ranked in out])


def test_loads_local_folder(engine, oc_dir):
    enc = engine.encoder
    assert isinstance(enc, OpenClipEncoder)
    assert (enc.family.family, enc.family.scoring, enc.dim, enc.max_text_tokens) == ("open_clip", "softmax", 16, 77)
    assert not enc.random_weights and enc.name == str(oc_dir)
    assert enc.has_patch_tokens


@pytest.mark.parametrize("metric", ["label", "global_center", "nearest_point", "local_center"])
def test_label_only_equals_open_clip_recipe(engine, photos, metric):
    images = [Image.open(p).convert("RGB") for p in photos[:4]]
    want = recipe(engine.encoder, images, LABELS, TEMPLATE)
    got = probabilities(engine, images, metric)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    one = torch.cat([probabilities(engine, [im], metric) for im in images])  # batch 1 agrees with batch 4
    assert torch.allclose(one, got, atol=1e-5)


def test_second_call_runs_no_text_forward(engine, photos):
    calls = []
    hook = engine.model.transformer.register_forward_hook(lambda *a: calls.append(1))
    try:
        request = engine.request(["cat", "dog", "bird"], hypothesis_template=TEMPLATE)
        engine.classify([str(photos[0])], request)
        first = len(calls)
        engine.classify([str(photos[1])], request)
    finally:
        hook.remove()
    assert first > 0 and len(calls) == first


def test_sigmoid_open_clip_model(tmp_path, photos):
    """An open_clip model with a logit bias (SigLIP-style) is scored with a per-class sigmoid, as open_clip does."""
    engine = S3Engine.from_pretrained(make_tiny_open_clip(tmp_path / "sig", logit_bias=-2.0), device="cpu")
    assert engine.family.scoring == "sigmoid" and engine.logit_bias == pytest.approx(-2.0)
    images = [Image.open(p).convert("RGB") for p in photos[:3]]
    want = recipe(engine.encoder, images, LABELS, TEMPLATE)
    assert torch.allclose(probabilities(engine, images, "local_center"), want, atol=1e-5)


def test_space_records_family_and_refuses_other_models(engine, tmp_path, tiny_clip_dir, photos):
    space = engine.build_space(LABELS, {"cat": ["kitty", "house cat"], "dog": ["puppy"]}, templates=[TEMPLATE])
    folder = space.save_pretrained(tmp_path / "space")
    cfg = json.loads((folder / "s3_config.json").read_text())
    assert (cfg["model_family"], cfg["scoring"]) == ("open_clip", "softmax")
    assert cfg["tokenizer_kwargs"] == {"context_length": 77}
    loaded = SynonymSpace.from_pretrained(folder)
    loaded.check_model(engine.encoder)
    assert "open_clip" in (folder / "README.md").read_text()
    hub_space = engine.build_space(LABELS, templates=[TEMPLATE], base_model="hf-hub:org/tiny-open-clip")
    card = hub_space.save_pretrained(tmp_path / "hub-space") / "README.md"
    assert "base_model: org/tiny-open-clip" in card.read_text() and "- open_clip" in card.read_text()
    out = engine.classify([str(photos[0])], engine.request(synonym_space=folder))
    assert {p.label for p in out[0]} == set(LABELS)
    clip = S3Engine.from_pretrained(tiny_clip_dir, device="cpu")
    with pytest.raises(ModelMismatchError, match="open_clip"):
        clip.classify([str(photos[0])], clip.request(synonym_space=folder))
    clip_space = clip.build_space(LABELS)
    with pytest.raises(ModelMismatchError, match="built with a clip model"):
        clip_space.check_model(engine.encoder)


def test_patch_tokens_and_ssp(engine, photos):
    enc = engine.encoder
    inputs = enc.image_inputs([Image.open(p).convert("RGB") for p in photos[:2]])
    glob, local = enc.global_and_local(inputs)
    with torch.no_grad():
        want = F.normalize(enc.model.encode_image(inputs["pixel_values"]), dim=-1)
        visual = enc.model.visual
        visual.output_tokens = True  # open_clip's own token output, for reference
        try:
            _, tokens = visual(inputs["pixel_values"])
        finally:
            visual.output_tokens = False
    assert torch.allclose(glob, want, atol=1e-6)
    assert local.shape == (2, 16, 16)
    assert torch.allclose(local, F.normalize(tokens @ visual.proj, dim=-1), atol=1e-6)
    support = [(str(p), lab) for p, lab in zip(photos[:3], LABELS[:3], strict=True)]
    request = engine.request(LABELS[:3], support=support, fewshot={"alpha": 0.5})
    out = engine.classify([str(photos[3])], request)
    assert {p.label for p in out[0]} == set(LABELS[:3])


def test_random_weights_folder(tmp_path):
    enc = load_encoder(make_tiny_open_clip(tmp_path / "shapes", weights=False), device="cpu")
    assert enc.random_weights


def test_hf_hub_id_through_the_hub(oc_dir, engine, photos):
    with fake_hub({"org/tiny-open-clip": folder_files(oc_dir)}):
        enc = load_encoder("hf-hub:org/tiny-open-clip", device="cpu")
    assert enc.name == "hf-hub:org/tiny-open-clip" and not enc.random_weights
    pixels = enc.image_inputs([Image.open(photos[0]).convert("RGB")])
    assert torch.allclose(enc.encode_pixels(pixels), engine.encoder.encode_pixels(pixels), atol=1e-6)


def test_hf_hub_id_offline_is_a_typed_error():
    with pytest.raises(ModelLoadError, match="open_clip"):
        load_encoder("hf-hub:org/not-cached-anywhere", device="cpu")


def test_cli_build_and_classify(oc_dir, tmp_path, photos, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS))
    out = tmp_path / "space"
    assert main(["build", str(labels), "--out", str(out), "--model", str(oc_dir)]) == 0
    assert json.loads((out / "s3_config.json").read_text())["model_family"] == "open_clip"
    capsys.readouterr()
    assert main(["classify", str(photos[0]), "--model", str(oc_dir), "--space", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)


def test_eval_on_a_local_folder(oc_dir, tmp_path, photos):
    from s3_hf.evaluation.runner import EvalConfig, run

    bench = tmp_path / "bench"
    for i, p in enumerate(photos[:4]):
        (bench / ["cat", "dog"][i % 2]).mkdir(parents=True, exist_ok=True)
        Image.open(p).convert("RGB").save(bench / ["cat", "dog"][i % 2] / f"{i}.png")
    config = EvalConfig.from_flags(model=str(oc_dir), benchmarks=[str(bench)], out=str(tmp_path / "out"), synonyms=[])
    summary = run(config)
    assert (summary.family, summary.scoring) == ("open_clip", "softmax")
    assert set(summary.benchmarks["bench"].methods) == {"label", "ensemble"}


def test_bench_on_an_open_clip_folder(oc_dir, tmp_path, photos):
    """`s3 bench` times S^3 against the bare open_clip encoder (transformers' pipeline cannot load the model: its
    column says so), and the few-shot part runs on the ViT's patch tokens."""
    out = tmp_path / "bench"
    args = ["bench", "--model", str(oc_dir), "--images", str(photos[0].parent), "--out", str(out)]
    args += ["--classes", "3", "--batch-sizes", "2", "--parts", "inference,fewshot", "--no-memory"]
    args += ["--num-images", "4", "--repeats", "1", "--device", "cpu", "--fewshot-classes", "3", "--fewshot-shots", "1"]
    assert main(args) == 0
    results = json.loads((out / "bench.json").read_text())
    (row,) = results["inference"]
    assert row["transformers_img_s"] is None and row["s3_local_center_img_s"] > 0 and row["bare_img_s"] > 0
    assert results["fewshot"]["patches"] == 16
    assert "n/a (not a transformers model)" in (out / "bench.md").read_text()


def test_dense_features_of_an_open_clip_vit(engine, photos):
    """Segmentation's dense features through open_clip: without a variant they are the ViT's own patch tokens
    through ln_post and the projection (SSP's local features); variants and other sizes keep the grid."""
    enc = engine.encoder
    inputs = enc.image_inputs([Image.open(photos[0]).convert("RGB")])
    _, local = enc.global_and_local(inputs)
    dense = enc.dense_features(inputs["pixel_values"], None)
    assert dense.shape == (1, 4, 4, 16) and torch.allclose(dense.reshape(1, 16, 16), local, atol=1e-5)
    for variant in ("maskclip", "sclip", "clearclip", "naclip"):
        out = enc.dense_features(torch.randn(1, 3, 48, 64), variant)
        assert out.shape == (1, 6, 8, 16) and torch.allclose(out.norm(dim=-1), torch.ones(1, 6, 8), atol=1e-5)
    options = SegmentOptions(short_side=40, window=32, stride=16)
    seg = engine.segment(str(photos[0]), engine.request(LABELS), options)
    assert seg.label_map.shape == Image.open(photos[0]).size[::-1]
