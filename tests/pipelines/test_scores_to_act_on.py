"""Scores users can act on: ``abstain_threshold`` ("none of these" first when no class is likely enough) and
``multi_label`` (each class scored on its own), in the pipeline; the default output stays transformers' own."""

from __future__ import annotations

import math

import pytest
from transformers import pipeline

import s3_hf
from s3_hf.errors import InvalidConfigError, InvalidLabelsError
from s3_hf.pipelines.classification import NONE_OF_THESE

LABELS = ["cat", "dog", "airplane", "cup of coffee", "rocket"]


def test_abstain_puts_none_of_these_first_and_keeps_the_ranking(s3_pipe, photos):
    image = str(photos[0])
    plain = s3_pipe(image, candidate_labels=LABELS)
    top = plain[0]["score"]
    assert NONE_OF_THESE == "none of these"
    # a threshold no class reaches: one entry first, the ranking after it unchanged, still sorted by score
    abstained = s3_pipe(image, candidate_labels=LABELS, abstain_threshold=1.0)
    assert abstained[0] == {"score": 1.0, "label": NONE_OF_THESE} and abstained[1:] == plain
    assert [r["score"] for r in abstained] == sorted((r["score"] for r in abstained), reverse=True)
    # reached (the threshold equals the top probability): exactly the default output
    assert s3_pipe(image, candidate_labels=LABELS, abstain_threshold=top) == plain
    # with top_k the classes are the top_k, after the abstention
    short = s3_pipe(image, candidate_labels=LABELS, abstain_threshold=1.0, top_k=2)
    assert short == [abstained[0], *plain[:2]]
    batch = s3_pipe([image, str(photos[1])], candidate_labels=LABELS, abstain_threshold=1.0)
    assert all(r[0]["label"] == NONE_OF_THESE for r in batch)


def test_abstain_refuses_a_class_called_none_of_these(s3_pipe, photos):
    labels = ["cat", NONE_OF_THESE]
    assert len(s3_pipe(str(photos[0]), candidate_labels=labels)) == 2  # a class like any other without abstaining
    with pytest.raises(InvalidLabelsError, match="label of an abstention"):
        s3_pipe(str(photos[0]), candidate_labels=labels, abstain_threshold=0.5)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"abstain_threshold": 0}, r"abstain_threshold must be a number in \(0, 1\]"),
        ({"abstain_threshold": 1.5}, "abstain_threshold"),
        ({"abstain_threshold": -0.1}, "abstain_threshold"),
        ({"abstain_threshold": float("nan")}, "abstain_threshold"),
        ({"abstain_threshold": "0.5"}, "abstain_threshold"),
        ({"abstain_threshold": True}, "abstain_threshold"),
        ({"multi_label": "yes"}, "multi_label must be True or False"),
        ({"multi_label": 1}, "multi_label"),
    ],
)
def test_bad_abstain_and_multi_label_values(s3_pipe, photos, options, fragment):
    with pytest.raises(InvalidConfigError, match=fragment):
        s3_pipe(str(photos[0]), candidate_labels=LABELS, **options)


def test_multi_label_softmax_family_is_clips_two_caption_softmax(s3_pipe, photos):
    """Each class against the caption naming no class: sigmoid(z_c - z_0), z_0 the template with an empty label,
    computed here from the encoders; a class's score does not depend on the other candidates."""
    engine = s3_pipe.engine
    image = str(photos[0])
    got = {r["label"]: r["score"] for r in s3_pipe(image, candidate_labels=LABELS, metric="label", multi_label=True)}
    v = engine.encode_images([image])[0]
    texts = engine.encoder.encode_texts([f"This is a photo of {x}." for x in ["", *LABELS]])
    z = engine.logit_scale * (texts @ v)
    for j, label in enumerate(LABELS, start=1):
        assert got[label] == pytest.approx(1 / (1 + math.exp(-(z[j] - z[0]).item())), abs=1e-5)
    assert sum(got.values()) != pytest.approx(1.0)  # not a distribution over the classes
    alone = s3_pipe(image, candidate_labels=LABELS[:2], metric="label", multi_label=True)
    assert {r["label"]: r["score"] for r in alone} == pytest.approx({x: got[x] for x in LABELS[:2]}, abs=1e-6)
    ranked = s3_pipe(image, candidate_labels=LABELS, multi_label=True)  # S^3's local centre: sorted, in (0, 1)
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    assert all(0 < r["score"] < 1 for r in ranked)


def test_multi_label_with_abstain_and_a_saved_space(s3_pipe, photos, small_space):
    out = s3_pipe(str(photos[0]), synonym_space=small_space, multi_label=True, abstain_threshold=1.0)
    assert out[0]["label"] == NONE_OF_THESE and len(out) == small_space.num_classes + 1


def test_multi_label_sigmoid_family_is_its_own_sigmoid(tmp_path, photos):
    from helpers import make_tiny_family

    pipe = pipeline(s3_hf.TASK, model=str(make_tiny_family(tmp_path / "siglip", "siglip")))
    image = str(photos[0])
    plain = pipe(image, candidate_labels=LABELS[:3])
    assert pipe(image, candidate_labels=LABELS[:3], multi_label=True) == plain
