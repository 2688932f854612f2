"""The s3-zero-shot-classification pipeline: equivalence with transformers, batching, caching, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import SYNONYMS
from PIL import Image
from transformers import pipeline

import s3_hf
from s3_hf.errors import (
    ArtifactNotFoundError,
    ImageLoadError,
    InvalidConfigError,
    InvalidLabelsError,
    SynonymsError,
    TemplateError,
)

LABELS = ["cat", "dog", "airplane", "cup of coffee", "rocket"]


@pytest.fixture(scope="module")
def hf_pipe(tiny_clip_dir):
    return pipeline("zero-shot-image-classification", model=str(tiny_clip_dir))


def as_dict(result: list[dict]) -> dict[str, float]:
    return {r["label"]: r["score"] for r in result}


@pytest.mark.parametrize("metric", ["label", "global_center", "nearest_point", "local_center"])
@pytest.mark.parametrize("template", [None, "a photo of a {}."])
def test_label_only_equals_transformers_pipeline(s3_pipe, hf_pipe, photos, metric, template):
    kwargs = {} if template is None else {"hypothesis_template": template}
    images = [str(p) for p in photos]
    ours = s3_pipe(images, candidate_labels=LABELS, metric=metric, **kwargs)
    theirs = hf_pipe(images, candidate_labels=LABELS, **kwargs)
    assert len(ours) == len(theirs) == len(images)
    for a, b in zip(ours, theirs, strict=True):
        assert [r["label"] for r in a] == [r["label"] for r in b]
        da, db = as_dict(a), as_dict(b)
        for label in LABELS:
            assert da[label] == pytest.approx(db[label], abs=1e-5)


def test_output_shape(s3_pipe, photos):
    single = s3_pipe(str(photos[0]), candidate_labels=LABELS, synonyms=SYNONYMS)
    assert isinstance(single, list) and set(single[0]) == {"score", "label"}
    assert sum(r["score"] for r in single) == pytest.approx(1.0, abs=1e-6)
    assert [r["score"] for r in single] == sorted((r["score"] for r in single), reverse=True)
    assert {r["label"] for r in single} == set(LABELS)
    top = s3_pipe(Image.open(photos[0]), candidate_labels=LABELS, synonyms=SYNONYMS, top_k=2)
    assert top == single[:2]
    assert s3_pipe(images=[str(photos[0])], candidate_labels=LABELS, synonyms=SYNONYMS) == [single]


def test_synonyms_change_scores(s3_pipe, photos):
    """With synonyms the scores are softmax(tau * local_center score) of the space built from them, computed here
    step by step; they differ from the label-only scores exactly for the classes that have synonyms."""
    from s3_hf import build_synonym_space
    from s3_hf.models.embedding import encode_pixels, pixel_values
    from s3_hf.space.scoring import score

    image = Image.open(photos[0]).convert("RGB")
    plain = as_dict(s3_pipe(image, candidate_labels=LABELS))
    with_syn = as_dict(s3_pipe(image, candidate_labels=LABELS, synonyms=SYNONYMS))
    v = encode_pixels(s3_pipe.model, pixel_values(s3_pipe.image_processor, [image]))
    tau = s3_pipe.model.logit_scale.exp()
    expected = {}
    for name, synonyms in (("plain", None), ("with_syn", SYNONYMS)):
        space = build_synonym_space(s3_pipe.model, s3_pipe.tokenizer, LABELS, synonyms)
        scores = score(v, space.scoring_state(), "local_center")
        expected[name] = dict(zip(LABELS, (tau * scores).softmax(-1)[0].tolist(), strict=True))
        logits = dict(zip(LABELS, scores[0].tolist(), strict=True))
        if synonyms is not None:
            label_only = build_synonym_space(s3_pipe.model, s3_pipe.tokenizer, LABELS).scoring_state()
            base = dict(zip(LABELS, score(v, label_only, "local_center")[0].tolist(), strict=True))
            changed = {lab for lab in LABELS if abs(logits[lab] - base[lab]) > 1e-6}
            assert changed == set(SYNONYMS) & set(LABELS)  # cat, dog, airplane have synonyms; the others do not
    assert plain == pytest.approx(expected["plain"], abs=1e-6)
    assert with_syn == pytest.approx(expected["with_syn"], abs=1e-6)


def test_batch_sizes_agree(s3_pipe, photos):
    images = [str(p) for p in photos] * 2  # 10 images: batches of 4 do not divide evenly
    kwargs = {"candidate_labels": LABELS, "synonyms": SYNONYMS, "return_details": True}
    one = s3_pipe(images, batch_size=1, **kwargs)
    four = s3_pipe(images, batch_size=4, **kwargs)
    # Same labels, order and details; scores equal up to float32 rounding (a batched matmul in the vision
    # tower may round differently from a single-image one).
    assert len(one) == len(four) == 10
    for a, b in zip(one, four, strict=True):
        assert [(r["label"], r["details"]) for r in a] == [(r["label"], r["details"]) for r in b]
        assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-6)


def test_text_is_encoded_once(tiny_clip_dir, photos):
    pipe = pipeline(s3_hf.TASK, model=str(tiny_clip_dir))
    calls = []
    hook = pipe.model.text_model.register_forward_hook(lambda *a: calls.append(1))
    try:
        kwargs = {"candidate_labels": LABELS, "synonyms": SYNONYMS, "templates": "imagenet80"}
        pipe(str(photos[0]), **kwargs)
        first = len(calls)
        assert first > 0
        pipe([str(p) for p in photos], batch_size=2, **kwargs)
        pipe(str(photos[1]), metric="nearest_simplex", **kwargs)
        assert len(calls) == first
    finally:
        hook.remove()


def test_return_details(s3_pipe, photos):
    out = s3_pipe(str(photos[0]), candidate_labels=LABELS, synonyms=SYNONYMS, return_details=True)
    by_label = {r["label"]: r["details"] for r in out}
    cat = by_label["cat"]
    assert cat["kept"] + cat["dropped"] and set(cat["kept"] + cat["dropped"]) == {"cat", *SYNONYMS["cat"]}
    assert cat["matched_concept"] in cat["kept"] and cat["matched_concept"] in cat["centre"]
    assert set(cat["centre"]) <= set(cat["kept"])
    assert by_label["rocket"] == {"matched_concept": "rocket", "kept": ["rocket"], "dropped": [], "centre": ["rocket"]}


def test_synonym_space_and_label_subset(s3_pipe, photos, small_space, tmp_path):
    full = s3_pipe(str(photos[0]), synonym_space=small_space)
    assert {r["label"] for r in full} == set(small_space.labels)
    folder = small_space.save_pretrained(tmp_path / "space")
    assert s3_pipe(str(photos[0]), synonym_space=str(folder)) == full
    sub = s3_pipe(str(photos[0]), synonym_space=small_space, candidate_labels=["dog", "cat"])
    assert {r["label"] for r in sub} == {"dog", "cat"}
    with pytest.raises(InvalidLabelsError, match="not classes of the synonym space"):
        s3_pipe(str(photos[0]), synonym_space=small_space, candidate_labels=["cat", "zebra"])
    with pytest.raises(InvalidConfigError, match="already fixes"):
        s3_pipe(str(photos[0]), synonym_space=small_space, synonyms=SYNONYMS)


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        ([], InvalidLabelsError, "No class labels"),
        (["cat", "cat"], InvalidLabelsError, "Duplicate"),
        (["cat", "Cat "], InvalidLabelsError, "Duplicate"),
        (["cat", ""], InvalidLabelsError, "non-empty"),
        (["cat", "   "], InvalidLabelsError, "non-empty"),
        (["cat", "x" * 80], InvalidLabelsError, "too long"),
        ("cat", InvalidLabelsError, "list of strings"),
        (None, InvalidLabelsError, "candidate_labels"),
        ([1, 2], InvalidLabelsError, "non-empty string"),
        (["cat", "Cat"], InvalidLabelsError, "Duplicate"),
    ],
)
def test_bad_labels(s3_pipe, photos, labels, error, match):
    with pytest.raises(error, match=match):
        s3_pipe(str(photos[0]), candidate_labels=labels)


def test_bad_options(s3_pipe, photos):
    img = str(photos[0])
    with pytest.raises(SynonymsError, match="name labels that are not classes"):
        s3_pipe(img, candidate_labels=["cat", "dog"], synonyms={"cta": ["kitty"]})
    with pytest.raises(InvalidConfigError, match="Unknown metric"):
        s3_pipe(img, candidate_labels=["cat", "dog"], metric="cosine")
    with pytest.raises(TemplateError, match="placeholder"):
        s3_pipe(img, candidate_labels=["cat", "dog"], templates=["a photo"])
    with pytest.raises(TemplateError, match="not both"):
        s3_pipe(img, candidate_labels=["cat", "dog"], templates=["a {}"], hypothesis_template="the {}")
    with pytest.raises(InvalidConfigError, match="top_k"):
        s3_pipe(img, candidate_labels=["cat", "dog"], top_k=0)
    with pytest.raises(InvalidConfigError, match="Unknown options"):
        s3_pipe(img, candidate_labels=["cat", "dog"], radios=0.3)


@pytest.mark.parametrize(
    ("space", "error", "fragment"),
    [
        (5, InvalidConfigError, "synonym_space must be"),
        ("/no/such/space/folder", ArtifactNotFoundError, "local folder"),
    ],
)
def test_bad_synonym_space(s3_pipe, photos, space, error, fragment):
    with pytest.raises(error, match=fragment):
        s3_pipe(str(photos[0]), synonym_space=space)


def test_space_options_with_a_saved_space(s3_pipe, photos, small_space):
    with pytest.raises(InvalidConfigError, match="only apply when a space is built"):
        s3_pipe(str(photos[0]), synonym_space=small_space, radius=0.2)


# ------------------------------------------------------------------------------------ hostile parameter table
HOSTILE_OPTIONS = [
    # (keyword arguments of one call, the typed error, a fragment of its message)
    ({"synonyms": {"cat": 5}}, SynonymsError, "list of strings"),
    ({"synonyms": {"cat": ["kitty", 3]}}, SynonymsError, "must all be strings"),
    ({"synonyms": ["cat", "kitty"]}, SynonymsError, "must be a mapping"),
    ({"synonyms": 5}, SynonymsError, "must be a mapping"),
    ({"synonyms": "no-such-synonyms.yaml"}, SynonymsError, "does not exist"),
    ({"templates": ["a {} of {name}"]}, TemplateError, "no other fields"),
    ({"templates": []}, TemplateError, "No prompt templates"),
    ({"templates": [5]}, TemplateError, "placeholder"),
    ({"hypothesis_template": "a photo"}, TemplateError, "placeholder"),
    ({"concept_format": "{concept} of {kind}"}, TemplateError, "may only use"),
    ({"concept_format": "just words"}, TemplateError, "must contain"),
    ({"metric": "cosine"}, InvalidConfigError, "Unknown metric"),
    ({"knn_k": 0}, InvalidConfigError, "knn_k"),
    ({"knn_k": "3"}, InvalidConfigError, "knn_k"),
    ({"top_k": 0}, InvalidConfigError, "top_k"),
    ({"top_k": 2.5}, InvalidConfigError, "top_k"),
    ({"batch_size": 0}, InvalidConfigError, "batch_size"),
    ({"num_workers": -1}, InvalidConfigError, "num_workers"),
    ({"timeout": -1}, InvalidConfigError, "timeout"),
    ({"radius": -0.1}, InvalidConfigError, "radius"),
    ({"radius": "big"}, InvalidConfigError, "radius"),
    ({"gap_ratio": 1.0}, InvalidConfigError, "gap_ratio"),
    ({"min_points": 0}, InvalidConfigError, "min_points"),
    ({"max_dim": "2"}, InvalidConfigError, "max_dim"),
    ({"radios": 0.3}, InvalidConfigError, "Unknown options"),
    ({"fewshot": {"mode": "cache"}}, InvalidConfigError, "support"),
    ({"support": [], "fewshot": {"top_s": 0}}, InvalidConfigError, "top_s"),
    ({"support": [], "fewshot": "cache"}, InvalidConfigError, "fewshot must be"),
    ({"support": [], "text_vector": "centroid"}, InvalidConfigError, "text_vector"),
    ({"support": "no/such/support/folder"}, InvalidLabelsError, "does not exist"),
    ({"tokenizer_kwargs": "padding"}, InvalidConfigError, "tokenizer_kwargs"),
]


@pytest.mark.parametrize(("options", "error", "fragment"), HOSTILE_OPTIONS)
def test_hostile_pipeline_parameters(s3_pipe, photos, options, error, fragment):
    with pytest.raises(error, match=fragment):
        s3_pipe(str(photos[0]), candidate_labels=LABELS[:3], **options)


def test_long_synonym_is_dropped_with_warning(s3_pipe, photos, caplog):
    out = s3_pipe(
        str(photos[0]),
        candidate_labels=["cat", "dog"],
        synonyms={"cat": ["kitty", "y" * 60]},
        return_details=True,
    )
    cat = next(r for r in out if r["label"] == "cat")["details"]
    assert set(cat["kept"] + cat["dropped"]) == {"cat", "kitty"}
    assert any("exceed" in r.message for r in caplog.records)


def test_bad_images(s3_pipe, tmp_path, photos):
    labels = ["cat", "dog"]
    with pytest.raises(ImageLoadError, match="Could not read image"):
        s3_pipe(str(tmp_path / "missing.jpg"), candidate_labels=labels)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ImageLoadError, match="not an image file"):
        s3_pipe(str(text), candidate_labels=labels)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(photos[0].read_bytes()[:2000])
    with pytest.raises(ImageLoadError, match="truncated"):
        s3_pipe(str(truncated), candidate_labels=labels)
    with pytest.raises(ImageLoadError, match="Cannot read an image"):
        s3_pipe(123, candidate_labels=labels)
    with pytest.raises(InvalidLabelsError, match="No image"):
        s3_pipe(None, candidate_labels=labels)


def test_odd_images_are_classified(s3_pipe, tmp_path):
    """Documented behaviour: tiny, greyscale, 16-bit and transparent images are converted to 8-bit RGB
    (16-bit rescaled to 0-255, transparency composited on white) and classified like any other."""
    labels = ["cat", "dog"]

    def run(im: Image.Image) -> dict[str, float]:
        path = tmp_path / f"im{len(list(tmp_path.iterdir()))}.png"
        im.save(path)
        out = s3_pipe(str(path), candidate_labels=labels)
        assert sum(r["score"] for r in out) == pytest.approx(1.0, abs=1e-6)
        return as_dict(out)

    run(Image.new("RGB", (1, 1), (200, 10, 10)))
    run(Image.new("RGB", (3, 60), (200, 10, 10)))  # up to S3_MAX_IMAGE_ASPECT (20:1)
    grey8 = run(Image.new("L", (40, 30), 128))
    rgb_grey = run(Image.new("RGB", (40, 30), (128, 128, 128)))
    assert grey8 == pytest.approx(rgb_grey)
    sixteen = Image.fromarray(np.full((30, 40), 128 * 257, dtype=np.uint16))
    assert sixteen.mode.startswith("I;16")
    assert run(sixteen) == pytest.approx(grey8)
    clear = run(Image.new("RGBA", (40, 30), (0, 0, 0, 0)))
    white = run(Image.new("RGB", (40, 30), (255, 255, 255)))
    assert clear == pytest.approx(white)


def test_empty_image_list(s3_pipe):
    assert s3_pipe([], candidate_labels=["cat", "dog"]) == []


def test_rejects_non_clip_models():
    from transformers import BertConfig, BertModel

    with pytest.raises(s3_hf.S3Error, match="not a CLIP-style"):
        s3_hf.S3ZeroShotImageClassificationPipeline(
            model=BertModel(
                BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=37)
            )
        )


def test_space_cache_is_bounded(tiny_clip_dir, photos):
    from s3_hf.engine.core import MAX_CACHED as MAX_CACHED_SPACES

    pipe = pipeline(s3_hf.TASK, model=str(tiny_clip_dir))
    calls = []
    pipe.model.text_model.register_forward_hook(lambda *a: calls.append(1))
    image = str(photos[0])
    pipe(image, candidate_labels=["cat", "dog"])
    first = len(calls)
    for i in range(MAX_CACHED_SPACES - 1):
        pipe(image, candidate_labels=["cat", f"class {i}"])
    pipe(image, candidate_labels=["cat", "dog"])  # still cached: the 16 most recent label sets are kept
    assert len(calls) == first * MAX_CACHED_SPACES
    pipe(image, candidate_labels=["cat", "newcomer"])  # evicts the least recently used ("class 0")
    pipe(image, candidate_labels=["cat", "class 0"])
    assert len(calls) == first * (MAX_CACHED_SPACES + 2)
