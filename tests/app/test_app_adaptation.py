"""The app's scores users can act on: "adapt over this session's images" (one TS^3 state per browser session, never
shared), its reset and status, and the abstain and multi-label controls, all ranked by the engine."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import gradio as gr
import pytest
import torch

from s3_hf.app.adaptation import SessionAdaptation
from s3_hf.app.handlers import AppHandlers
from s3_hf.app.inputs import prepare_image
from s3_hf.app.settings import AppSettings
from s3_hf.app.ui import create_app
from s3_hf.engine import S3Engine, rank
from s3_hf.engine.results import NONE_OF_THESE
from s3_hf.tta import TS3Config

LABELS = "cat, dog, airplane"
TABLE = {"headers": ["label", "synonyms (comma-separated)"], "data": [["cat", "kitty, house cat"]]}


@pytest.fixture(scope="module")
def engine(tiny_clip_dir) -> S3Engine:
    return S3Engine.from_pretrained(tiny_clip_dir)


@pytest.fixture(scope="module")
def settings(tiny_clip_dir) -> AppSettings:
    return AppSettings(model=str(tiny_clip_dir), max_sessions=8, session_minutes=5)


@pytest.fixture(scope="module")
def handlers(engine, settings) -> AppHandlers:
    return AppHandlers(engine, settings)


@pytest.fixture(scope="module")
def uploads(photos) -> list[str]:
    """The photos copied into Gradio's upload folder (the handlers read only client uploads)."""
    import shutil
    from pathlib import Path

    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / "adaptation-tests"
    folder.mkdir(parents=True, exist_ok=True)
    return [str(shutil.copy(p, folder / p.name)) for p in photos]


def run(handlers, image, labels=LABELS, *, top_k=3, abstain=None, multi_label=False, adapting=False, session=None):
    return handlers.classify(image, labels, "", "local_center", TABLE, top_k, abstain, multi_label, adapting, session)


def test_toggle_off_gives_the_static_scores_and_leaves_the_state_alone(handlers, engine, uploads):
    s3, *_, session = run(handlers, uploads[0])
    assert session is None
    request = engine.request(LABELS.split(", "), synonyms={"cat": ["kitty", "house cat"]}, templates="imagenet7")
    picture = prepare_image(uploads[0], engine.encoder.decode_min_side(), handlers.settings.max_side)
    resolved = engine.resolve(request)
    static = rank(engine.scores(engine.encode_pixels(engine.image_inputs([picture])), resolved), 0, resolved)
    assert s3 == {p.label: p.score for p in static}
    kept = SessionAdaptation(("other",), engine.stream(request).state_dict())
    *_, after = run(handlers, uploads[1], session=kept)
    assert after is kept  # off: the session's state is neither used nor changed


def test_adapting_counts_images_scores_the_first_as_static_and_resets(handlers, uploads):
    static, *_ = run(handlers, uploads[0])
    first, *_, session = run(handlers, uploads[0], adapting=True)
    assert first == static  # the first image of a stream is scored as S^3 exactly
    assert session.n_seen == 1
    for image in uploads[1:3]:
        *_, session = run(handlers, image, adapting=True, session=session)
    assert session.n_seen == 3
    assert "3 images seen" in handlers.adaptation(True, session)
    assert "off" in handlers.adaptation(False, session) and "3 images" in handlers.adaptation(False, session)
    state, message = handlers.reset_adaptation(True)
    assert state is None and "0 images seen" in message
    again, *_, session = run(handlers, uploads[0], adapting=True, session=state)
    assert again == static and session.n_seen == 1


def test_other_labels_start_afresh_and_say_so(handlers, uploads):
    *_, session = run(handlers, uploads[0], adapting=True)
    *_, session = run(handlers, uploads[1], adapting=True, session=session)
    assert session.n_seen == 2 and session.restarted_from == 0
    *_, session = run(handlers, uploads[1], labels="cat, dog", adapting=True, session=session)
    assert session.n_seen == 1 and session.restarted_from == 2
    status = handlers.adaptation(True, session)
    assert "started afresh" in status and "2 images" in status
    *_, session = run(handlers, uploads[2], labels="cat, dog", adapting=True, session=session)
    assert session.n_seen == 2 and "afresh" not in handlers.adaptation(True, session)


def test_adaptation_changes_later_scores(handlers, uploads):
    """With the caches weighted up, the images seen before change the scores of an image (TS^3 is doing work)."""
    from s3_hf.app import adaptation

    *_, session = run(handlers, uploads[0], adapting=True)
    for image in uploads[1:]:
        *_, session = run(handlers, image, adapting=True, session=session)
    engine = handlers.engine
    request = engine.request(LABELS.split(", "), synonyms={"cat": ["kitty", "house cat"]}, templates="imagenet7")
    v = engine.encode_images([uploads[0]])
    strong = TS3Config(pos_alpha=50.0, lam=1.0)
    logits, fresh = adaptation.adapt(engine, request, v, None, strong)
    logits2, _ = adaptation.adapt(engine, request, v, fresh, strong)
    assert not torch.equal(logits, logits2)


def test_abstain_puts_none_of_these_first_when_no_class_reaches_it(handlers, uploads):
    s3, clip, *_ = run(handlers, uploads[0], abstain=1.0)
    for shown in (s3, clip):
        assert next(iter(shown)) == NONE_OF_THESE and shown[NONE_OF_THESE] == 1.0
        assert len(shown) == 4  # the three classes stay, after it
    for never in (0.01, 0, None, ""):  # 0 and an empty field: never abstain
        s3, *_ = run(handlers, uploads[0], abstain=never)
        assert NONE_OF_THESE not in s3
    s3, *_ = run(handlers, uploads[0], abstain=1.0, top_k=1)
    assert list(s3) == [NONE_OF_THESE, max(run(handlers, uploads[0])[0].items(), key=lambda x: x[1])[0]]
    s3, *_ = run(handlers, uploads[0], abstain=1.0, adapting=True)
    assert next(iter(s3)) == NONE_OF_THESE


@pytest.mark.parametrize("value", [-0.1, 1.5, "x", True])
def test_bad_abstain_values_are_refused(handlers, uploads, value):
    with pytest.raises(gr.Error, match="Abstain below must be a probability from 0 to 1"):
        run(handlers, uploads[0], abstain=value)


def test_a_class_named_like_an_abstention_is_refused(handlers, uploads):
    with pytest.raises(gr.Error, match="label of an abstention"):
        run(handlers, uploads[0], labels=f"cat, {NONE_OF_THESE}", abstain=0.5)


def test_multi_label_scores_each_class_on_its_own(handlers, uploads):
    s3, *_ = run(handlers, uploads[0], multi_label=True)
    wider, *_ = run(handlers, uploads[0], labels=LABELS + ", car, tree", top_k=5, multi_label=True)
    assert all(0 < p < 1 for p in s3.values())
    for label, p in s3.items():  # another class list leaves a class's probability as it is
        assert wider[label] == pytest.approx(p, abs=1e-5)
    single, *_ = run(handlers, uploads[0])
    assert sum(single.values()) == pytest.approx(1.0, abs=1e-4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(engine, settings):
    app = create_app(engine, settings)
    port = free_port()
    app.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **settings.launch_options()
    )
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", app=app)
    app.close()


def test_two_sessions_never_share_a_state(served, photos):
    """Two clients (two browser sessions): one adapts over three images, the other sees none of them; each one's
    reset and status are its own. Old clients that send the first six inputs only still get the static scores."""
    from gradio_client import Client, handle_file

    first, second = Client(served.url, verbose=False), Client(served.url, verbose=False)

    def classify(client, image, adapting=True):
        return client.predict(
            handle_file(str(image)), LABELS, "", "local_center", TABLE, 3, None, False, adapting, api_name="/classify"
        )

    static, *_ = first.predict(handle_file(str(photos[0])), LABELS, "", "local_center", TABLE, 3, api_name="/classify")
    for image in photos[:3]:
        classify(first, image)
    assert "3 images seen" in first.predict(True, api_name="/adaptation")
    assert "0 images seen" in second.predict(True, api_name="/adaptation")
    s3, *_ = classify(second, photos[0])
    assert s3 == static  # the second session's first image: nothing of the first session's images in it
    assert "1 image seen" in second.predict(True, api_name="/adaptation")
    assert "3 images seen" in first.predict(True, api_name="/adaptation")
    assert "0 images seen" in first.predict(True, api_name="/reset_adaptation")
    assert "0 images seen" in first.predict(True, api_name="/adaptation")
    assert "1 image seen" in second.predict(True, api_name="/adaptation")
    # the server keeps at most max_sessions sessions' states (Gradio's LRU of sessions, from launch_options)
    assert served.app.state_session_capacity == 8
