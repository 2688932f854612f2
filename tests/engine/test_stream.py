"""The explicit TS^3 stream handle of the engine: adapted and static scores, order, state and refusals."""

from __future__ import annotations

import pytest
import torch

from s3_hf.engine import S3Engine
from s3_hf.errors import InvalidConfigError, StreamMismatchError
from s3_hf.tta import SavedState, TS3Config

LABELS = ["cat", "dog", "airplane"]
SYNONYMS = {"cat": ["kitten", "tabby"], "dog": ["puppy"], "airplane": ["jet", "aircraft"]}
# strong cache terms, so adaptation visibly moves the tiny random model's logits
LOUD = TS3Config(pos_alpha=50.0, neg_alpha=5.0, lam=1.0, kappa=0.0, shift_entropy=0.99)


@pytest.fixture(scope="module")
def engine(tiny_clip_dir):
    return S3Engine.from_pretrained(str(tiny_clip_dir), device="cpu")


@pytest.fixture(scope="module")
def images(photos):
    return [str(p) for p in photos] * 2


def test_a_stream_returns_static_scores_and_adapts_after_the_first_image(engine, images):
    stream = engine.stream(LABELS, synonyms=SYNONYMS, tta=LOUD)
    out = stream(images, batch_size=4)
    request = engine.request(LABELS, synonyms=SYNONYMS)
    static = engine.scores(engine.encode_images(images, batch_size=4), engine.resolve(request)).logits
    torch.testing.assert_close(out.static_scores, static)
    assert torch.equal(out.scores[0], out.static_scores[0])
    assert not torch.allclose(out.scores[1:], out.static_scores[1:])
    assert stream.n_seen == len(images) and out.labels == LABELS and len(out.predictions()) == len(images)


def test_results_do_not_depend_on_the_batch_size_and_reset_replays(engine, images):
    stream = engine.stream(LABELS, synonyms=SYNONYMS, tta=LOUD)
    v = engine.encode_images(images)
    whole = stream.embeddings(v).scores
    stream.reset()
    assert stream.n_seen == 0
    parts = torch.cat([stream.embeddings(v[i : i + 3]).scores for i in range(0, len(v), 3)])
    assert torch.equal(parts, whole)


def test_a_saved_stream_continues_and_other_streams_refuse_it(engine, images, tmp_path):
    v = engine.encode_images(images)
    whole = engine.stream(LABELS, synonyms=SYNONYMS, tta=LOUD).embeddings(v).scores
    first = engine.stream(LABELS, synonyms=SYNONYMS, tta=LOUD)
    first.embeddings(v[:5])
    first.state_dict().save(tmp_path / "stream.safetensors")
    resumed = engine.stream(LABELS, synonyms=SYNONYMS, tta=LOUD)
    resumed.load_state_dict(SavedState.load(tmp_path / "stream.safetensors"))
    assert torch.equal(resumed.embeddings(v[5:]).scores, whole[5:])
    other_space = engine.stream(LABELS, synonyms={"cat": ["tabby"]}, tta=LOUD)
    with pytest.raises(StreamMismatchError, match="space_hash"):
        other_space.load_state_dict(first.state_dict())
    with pytest.raises(StreamMismatchError, match="labels"):
        engine.stream(["dog", "cat", "airplane"], synonyms=SYNONYMS, tta=LOUD).load_state_dict(first.state_dict())


def test_other_labels_and_other_models_are_refused(engine, images):
    stream = engine.stream(LABELS, synonyms=SYNONYMS)
    with pytest.raises(StreamMismatchError, match="other labels"):
        stream(images[:1], candidate_labels=["cat", "dog"])
    with pytest.raises(StreamMismatchError, match="another model"):
        stream.embeddings(torch.zeros(2, 7))
    assert stream.n_seen == 0
    stream(images[:1], candidate_labels=LABELS)
    assert stream.n_seen == 1


def test_a_space_can_be_streamed_and_bad_options_are_refused(engine, images):
    space = engine.build_space(LABELS, SYNONYMS)
    stream = engine.stream(space)
    assert stream.labels == LABELS and stream.state.space_hash == space.tensors_hash()
    assert stream.state.model == engine.name and stream.state.tau == engine.logit_scale
    with pytest.raises(InvalidConfigError, match="TS3Config"):
        engine.stream(LABELS, tta={"lam": 0.1})
