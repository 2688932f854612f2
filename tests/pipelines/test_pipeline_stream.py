"""The classification pipeline's TS^3 handle (``pipe.stream``): the pipeline's output from adapted logits, the
static results beside them, batch-size invariance, refusals, and a pipeline that stays stateless."""

from __future__ import annotations

import pytest

from s3_hf.errors import InvalidConfigError, InvalidLabelsError, StreamMismatchError
from s3_hf.tta import TS3Config

LABELS = ["cat", "dog", "airplane"]
SYNONYMS = {"cat": ["kitten", "tabby"], "dog": ["puppy"], "airplane": ["jet", "aircraft"]}
# strong cache terms, so adaptation visibly moves the tiny random model's logits
LOUD = TS3Config(pos_alpha=50.0, neg_alpha=5.0, lam=1.0, kappa=0.0, shift_entropy=0.99)
ZERO = TS3Config(pos_alpha=0.0, neg_alpha=0.0, lam=0.0)


@pytest.fixture(scope="module")
def images(photos):
    return [str(p) for p in photos] * 2


def close(a, b):
    """Two pipeline outputs with the same labels in the same order and scores equal to float precision."""
    assert [[r["label"] for r in x] for x in a] == [[r["label"] for r in x] for x in b]
    for x, y in zip(a, b, strict=True):
        assert [r["score"] for r in x] == pytest.approx([r["score"] for r in y], rel=1e-5, abs=1e-6)


def test_zero_weights_give_the_plain_pipeline_for_every_image(s3_pipe, images):
    plain = s3_pipe(images, candidate_labels=LABELS, synonyms=SYNONYMS, top_k=2)
    stream = s3_pipe.stream(candidate_labels=LABELS, synonyms=SYNONYMS, top_k=2, tta=ZERO, batch_size=1)
    assert stream(images) == plain
    assert stream.n_seen == len(images)


def test_the_first_image_equals_the_plain_call_then_adaptation_moves_scores(s3_pipe, images):
    stream = s3_pipe.stream(candidate_labels=LABELS, synonyms=SYNONYMS, tta=LOUD)
    first = stream(images[0], batch_size=1)
    assert first == s3_pipe(images[0], candidate_labels=LABELS, synonyms=SYNONYMS)
    out = stream.scores(images[1:], batch_size=1)
    adapted, static = stream.rank(out), stream.rank(out, static=True)
    assert static == s3_pipe(images[1:], candidate_labels=LABELS, synonyms=SYNONYMS)
    assert adapted != static and all(len(r) == len(LABELS) for r in adapted)
    assert all(sum(p["score"] for p in r) == pytest.approx(1.0) for r in adapted)  # CLIP: softmax over classes


def test_a_stream_leaves_the_pipeline_stateless(s3_pipe, images):
    before = s3_pipe(images, candidate_labels=LABELS, synonyms=SYNONYMS)
    s3_pipe.stream(candidate_labels=LABELS, synonyms=SYNONYMS, tta=LOUD)(images)
    assert s3_pipe(images, candidate_labels=LABELS, synonyms=SYNONYMS) == before


def test_results_do_not_depend_on_the_batch_size(s3_pipe, images):
    one = s3_pipe.stream(candidate_labels=LABELS, synonyms=SYNONYMS, tta=LOUD)(images, batch_size=1)
    stream = s3_pipe.stream(candidate_labels=LABELS, synonyms=SYNONYMS, tta=LOUD, batch_size=3)
    close(stream(images[:4]) + stream(images[4:], batch_size=4), one)
    stream.reset()
    assert stream.n_seen == 0
    close(stream(images), one)


def test_abstain_and_multi_label_apply_to_the_adapted_scores(s3_pipe, images):
    options = {"candidate_labels": LABELS, "synonyms": SYNONYMS, "abstain_threshold": 1.0, "multi_label": True}
    stream = s3_pipe.stream(**options, tta=ZERO, batch_size=1)
    assert stream(images[:2]) == s3_pipe(images[:2], **options)


def test_other_labels_and_bad_options_are_refused(s3_pipe, images):
    stream = s3_pipe.stream(candidate_labels=LABELS, synonyms=SYNONYMS)
    with pytest.raises(StreamMismatchError, match="other labels"):
        stream(images[:1], candidate_labels=["cat", "dog"])
    assert stream.n_seen == 0
    with pytest.raises(InvalidLabelsError, match="candidate_labels"):
        s3_pipe.stream(tta=ZERO)
    with pytest.raises(InvalidConfigError, match="return_details"):
        s3_pipe.stream(candidate_labels=LABELS, return_details=True)
    with pytest.raises(InvalidConfigError, match="batch_size"):
        s3_pipe.stream(candidate_labels=LABELS, batch_size=0)
    with pytest.raises(InvalidConfigError, match="batch_size"):
        stream(images[:1], batch_size=True)
    with pytest.raises(InvalidConfigError, match="TS3Config"):
        s3_pipe.stream(candidate_labels=LABELS, tta={"lam": 1.0})
    with pytest.raises(InvalidConfigError, match="top_k"):
        s3_pipe.stream(candidate_labels=LABELS, top_k=0)


def test_a_saved_pipeline_stream_continues(s3_pipe, images, tmp_path):
    from s3_hf.tta import SavedState

    whole = s3_pipe.stream(candidate_labels=LABELS, synonyms=SYNONYMS, tta=LOUD, batch_size=1)(images)
    first = s3_pipe.stream(candidate_labels=LABELS, synonyms=SYNONYMS, tta=LOUD, batch_size=1)
    first(images[:3])
    first.state_dict().save(tmp_path / "state.safetensors")
    resumed = s3_pipe.stream(candidate_labels=LABELS, synonyms=SYNONYMS, tta=LOUD, batch_size=1)
    resumed.load_state_dict(SavedState.load(tmp_path / "state.safetensors"))
    assert resumed.n_seen == 3 and resumed(images[3:]) == whole[3:]
