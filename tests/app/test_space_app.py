"""The Gradio Space, built by create_app over a tiny engine, served on 127.0.0.1 and driven through gradio_client
and a browser."""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from s3_hf.app.inputs import ENTER_REPO_ID, IMAGE_UNREADABLE, parse_labels, parse_synonyms
from s3_hf.app.settings import AppSettings, local_spaces
from s3_hf.app.ui import EXAMPLE_LABELS, EXAMPLE_SYNONYMS, create_app, example_photos

ROOT = Path(__file__).resolve().parents[2]
#: Allow-listed folders that tests fill after start-up (a listed folder need not exist when the app starts).
LISTED = ("listed", "broken")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def allowed(small_space, tmp_path_factory) -> Path:
    """Folders for the allow-list: ``pets`` listed by name, ``shelf/*`` for the sub-folders of ``shelf``."""
    root = tmp_path_factory.mktemp("allowed")
    small_space.save_pretrained(root / "pets")
    small_space.save_pretrained(root / "shelf" / "birds")
    return root


@pytest.fixture(scope="module")
def settings(tiny_clip_dir, allowed) -> AppSettings:
    entries = [str(allowed / "pets"), f"{allowed / 'shelf'}/*", *(str(allowed / name) for name in LISTED)]
    return AppSettings(model=str(tiny_clip_dir), max_labels=100, local_spaces=local_spaces(os.pathsep.join(entries)))


@pytest.fixture(scope="module")
def app(tiny_clip_dir, settings):
    from s3_hf.engine import S3Engine

    demo = create_app(S3Engine.from_pretrained(tiny_clip_dir), settings)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **settings.launch_options()
    )
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", settings=settings)
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app.url, verbose=False)


def classify(client, image, labels="cat, dog, airplane", space="", metric="local_center", synonyms=None, top_k=3):
    from gradio_client import handle_file

    table = {"headers": ["label", "synonyms (comma-separated)"], "data": synonyms or [["", ""]]}
    return client.predict(
        handle_file(str(image)) if image is not None else None,
        labels,
        space,
        metric,
        table,
        top_k,
        api_name="/classify",
    )


def labels_of(result) -> list[str]:
    return [c["label"] for c in result["confidences"]]


def test_every_input_path(app, client, photos, small_space, allowed, tmp_path):
    # a synonyms row for a label that is not a class ("zebra") is ignored
    s3, clip, details, plot = classify(client, photos[0], synonyms=[["cat", "kitty, house cat"], ["zebra", "x"]])
    assert set(labels_of(s3)) == set(labels_of(clip)) == {"cat", "dog", "airplane"}
    rows = details["data"]
    assert len(rows) == 3 and {r[0] for r in rows} == {"cat", "dog", "airplane"}
    cat = next(r for r in rows if r[0] == "cat")
    assert "kitty (" in cat[4] or "kitty (" in cat[5]  # the synonym shows up, kept or pruned, with its similarity
    assert plot is not None
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # the figure is not left open in pyplot's registry, one more per request
    # every metric, top-k, a PNG and a greyscale image
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((40, 60), 100, dtype=np.uint8)).save(grey)
    for metric in ("label", "nearest_simplex", "local_center_knn"):
        s3, *_ = classify(client, grey, metric=metric, top_k=2)
        assert len(s3["confidences"]) == 2
    # a synonym-space artifact from a local folder the operator allows (listed before it was written)
    folder = small_space.save_pretrained(allowed / "listed")
    s3, clip, details, _ = classify(client, photos[1], labels="", space=str(folder))
    assert set(labels_of(s3)) == set(small_space.labels)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("no image", "No image"),
        ("no labels", "No classes"),
        ("500 labels", "too many"),
        ("unknown hub id", "not a local folder"),
        ("not an image", "not an image file"),
        ("bad metric", "Unknown metric"),
    ],
)
def test_bad_inputs_give_messages_and_the_app_keeps_serving(client, photos, tmp_path, kind, message):
    from gradio_client.exceptions import AppError

    image, labels, space, synonyms, metric = photos[0], "cat, dog", "", None, "local_center"
    if kind == "no image":
        image = None
    elif kind == "no labels":
        labels = " , "
    elif kind == "500 labels":
        labels = ", ".join(f"class {i}" for i in range(500))
    elif kind == "unknown hub id":
        labels, space = "", "someone/does-not-exist"
    elif kind == "not an image":
        image = tmp_path / "notes.png"
        image.write_text("hello")
    elif kind == "bad metric":
        metric = "cosine"
    with pytest.raises(AppError, match=message) as err:
        classify(client, image, labels=labels, space=space, synonyms=synonyms, metric=metric)
    assert "Traceback" not in str(err.value)
    s3, *_ = classify(client, photos[0])  # still serving
    assert labels_of(s3)


def predict(client, image, labels="cat, dog", space="", metric="local_center", table=None, top_k=3):
    """The API call with every argument as given: ``image`` a file to upload or a raw payload."""
    from gradio_client import handle_file

    if isinstance(image, Path):
        image = handle_file(str(image))
    table = table if table is not None else synonym_table([["", ""]])
    return client.predict(image, labels, space, metric, table, top_k, api_name="/classify")


def synonym_table(rows) -> dict:
    return {"headers": ["label", "synonyms (comma-separated)"], "data": rows}


def app_error(call) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        call()
    return str(err.value)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def write_file(name: str, data: bytes):
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return make


HOSTILE = {
    "labels not text": ({"labels": 5}, "Class labels must be text"),
    "label too long": ({"labels": "cat, " + "x" * 500}, "too long"),
    "duplicate labels": ({"labels": "cat, dog, Cat"}, "Duplicate labels"),
    "truncated image": ({"image": write_file("cut.png", png_header(64, 64)[:40])}, "could not be read"),
    "image over the pixel cap": ({"image": write_file("big.png", png_header(9000, 9000))}, "too large"),
    "decompression bomb": ({"image": write_file("bomb.png", png_header(40000, 40000))}, "too large"),
    "server file as image": ({"image": {"path": "/etc/hostname"}}, "could not be read"),
    "metric not text": ({"metric": 5}, "Unknown metric"),
    "metric missing": ({"metric": None}, "Unknown metric"),
    "top_k 0": ({"top_k": 0}, "Top k must be a whole number from 1 to 10"),
    "top_k 11": ({"top_k": 11}, "Top k must be"),
    "top_k a fraction": ({"top_k": 2.5}, "Top k must be"),
    "top_k not a number": ({"top_k": "many"}, "Top k must be"),
    "top_k missing": ({"top_k": None}, "Top k must be"),
    "thousands of synonym rows": ({"table": synonym_table([["cat", "kitty"]] * 5000)}, "5000 rows.*at most 200"),
    "very long synonym": ({"table": synonym_table([["cat", "x" * 5000]])}, "too long"),
    "too many synonyms": ({"table": synonym_table([["cat", ", ".join(f"cat {i}" for i in range(50))]])}, "at most 20"),
    "synonyms cell not text": ({"table": synonym_table([["cat", ["kitty"]]])}, "cells must be text"),
    "three cells": ({"table": synonym_table([["cat", "kitty", "tabby"]])}, "two cells"),
    "space not text": ({"space": 5}, "Enter a Hub repo id"),
    "space path": ({"space": "/etc"}, "Enter a Hub repo id"),
    "space parent path": ({"space": "../space"}, "Enter a Hub repo id"),
    "space id with three parts": ({"space": "org/name/more"}, "Enter a Hub repo id"),
}


@pytest.mark.parametrize(("overrides", "message"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_inputs_get_the_apps_message_and_the_app_keeps_serving(client, photos, tmp_path, overrides, message):
    args = {"image": photos[0], **overrides}
    if callable(args["image"]):
        args["image"] = args["image"](tmp_path)
    text = app_error(lambda: predict(client, **args))
    assert re.search(message, text), text
    assert "Traceback" not in text and tempfile.gettempdir() not in text and str(ROOT) not in text
    s3, *_ = classify(client, photos[0])  # still serving
    assert labels_of(s3)


def test_odd_but_valid_synonym_tables_are_read(app, client, photos):
    table = [[None, None], ["cat", "kitty,, kitty , house cat"], [7, 3.5], ["dog"], ["", "orphan"]]
    s3, _clip, details, _ = classify(client, photos[0], labels="cat, dog, 7", synonyms=table)
    assert set(labels_of(s3)) == {"cat", "dog", "7"}
    seven = next(r for r in details["data"] if r[0] == "7")
    assert "3.5" in seven[4] + seven[5]
    # rows that are None never get past Gradio's own payload check; called directly, they are skipped
    assert parse_synonyms({"data": [None, [None, None], ["cat", 5, ""]]}, app.settings) == {"cat": ["5"]}


def test_server_paths_get_one_message_whether_or_not_they_exist(
    app, client, photos, small_space, tmp_path, monkeypatch
):
    small_space.save_pretrained(tmp_path / "org" / "space")  # a real space, at a relative path shaped like a repo id
    monkeypatch.chdir(tmp_path)
    existing = [str(ROOT), str(ROOT / "pyproject.toml"), str(tmp_path / "org" / "space"), "./org/space", "org", "~"]
    missing = ["/no/such/folder", str(tmp_path / "nothing"), "./org/nothing", "nothing", "~nobody-here"]
    messages = {app_error(lambda s=s: classify(client, photos[0], labels="", space=s)) for s in existing + missing}
    assert messages == {ENTER_REPO_ID}
    # a repo id that names a folder beside the app is only looked up on the Hub (offline here), never read from disk
    here, absent = (
        app_error(lambda s=s: classify(client, photos[0], labels="", space=s)) for s in ("org/space", "org/none")
    )
    assert "not a local folder" in here
    assert here.replace("org/space", "ID") == absent.replace("org/none", "ID")
    # an image payload naming a server file, existing or not
    images = {app_error(lambda p=p: predict(client, {"path": p})) for p in (str(photos[1]), "/no/such/image.png")}
    assert images == {IMAGE_UNREADABLE}


def test_allow_listed_folders_work(app, client, photos, small_space, allowed):
    for folder in (allowed / "pets", allowed / "shelf" / "birds"):
        s3, *_ = classify(client, photos[1], labels="", space=str(folder))
        assert set(labels_of(s3)) == set(small_space.labels)
    s3, *_ = classify(client, photos[1], labels="cat", space=f"{allowed}/shelf/../pets/")  # the same folder
    assert labels_of(s3) == ["cat"]
    assert local_spaces("", str(allowed / "pets")) == {str(allowed / "pets")}  # S3_SPACE is always allowed
    assert local_spaces("", "org/name") == frozenset()  # ... and a Hub id stays a Hub id
    # the parent of allowed sub-folders, a sub-folder made after start-up and the allow-list's own root are not
    small_space.save_pretrained(allowed / "shelf" / "later")
    for folder in (allowed / "shelf", allowed / "shelf" / "later", allowed):
        assert app_error(lambda f=folder: classify(client, photos[1], labels="", space=str(f))) == ENTER_REPO_ID


def test_a_local_folder_needs_the_allow_list(app, client, photos, small_space, allowed, tmp_path):
    folder = small_space.save_pretrained(tmp_path / "space")
    assert app_error(lambda: classify(client, photos[1], labels="", space=str(folder))) == ENTER_REPO_ID
    assert str(allowed / "listed") in app.settings.local_spaces and str(folder) not in app.settings.local_spaces
    listed = small_space.save_pretrained(allowed / "listed", overwrite=True)
    s3, *_ = classify(client, photos[1], labels="", space=str(listed))
    assert set(labels_of(s3)) == set(small_space.labels)


def test_space_load_errors_name_no_server_paths(client, photos, small_space, allowed, tmp_path, monkeypatch):
    from helpers import fake_hub, folder_files

    folder = small_space.save_pretrained(allowed / "broken")
    (folder / "s3_space.safetensors").write_bytes(b"not safetensors")
    local = app_error(lambda: classify(client, photos[0], labels="", space=str(folder)))
    assert f"{str(folder)!r} could not be loaded: its files are damaged" in local and "safetensors" not in local
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    with fake_hub({"org/broken-s3": folder_files(folder)}):
        hub = app_error(lambda: classify(client, photos[0], labels="", space="org/broken-s3"))
    assert "'org/broken-s3' could not be loaded: its files are damaged" in hub
    assert str(tmp_path) not in hub and "safetensors" not in hub
    s3, *_ = classify(client, photos[0])
    assert labels_of(s3)


def test_huge_image_is_downscaled_and_classified(client, tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("RGB", (6000, 5000), (30, 120, 200)).save(huge)
    s3, *_ = classify(client, huge)
    assert len(s3["confidences"]) == 3


def test_twenty_concurrent_requests(client, photos):
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda i: classify(client, photos[i % len(photos)]), range(20)))
    assert len(results) == 20 and all(len(r[0]["confidences"]) == 3 for r in results)
    assert time.monotonic() - start < 120
    s3, *_ = classify(client, photos[0])
    assert labels_of(s3)


def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("S3_REQUIRE_BROWSER"):
            raise RuntimeError("chromium and chromedriver are required (apt-get install chromium chromium-driver)")
        pytest.skip("chromium/chromedriver not installed (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1500",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_browser_upload_classify_and_screenshot(app, photos, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(app.url)
        wait = WebDriverWait(browser, 60)
        upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#image-input input[type=file]")))
        upload.send_keys(str(photos[0]))
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#image-input img"))  # the upload has landed
        box = browser.find_element(By.CSS_SELECTOR, "textarea, input[type=text]")
        box.clear()
        box.send_keys("cat, dog, cup of coffee")
        button = browser.find_element(By.ID, "classify")
        wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR, "#image-input .translucent"))
        browser.execute_script("arguments[0].click();", button)
        wait.until(lambda b: "cup of coffee" in b.find_element(By.ID, "s3-result").text)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#projection img"))
        assert "cat" in browser.find_element(By.ID, "clip-result").text
        # adapt over this session's images: the status counts them
        assert "Adaptation is off" in browser.find_element(By.ID, "adapt-status").text
        browser.execute_script("arguments[0].click();", browser.find_element(By.CSS_SELECTOR, "#adapt input"))
        wait.until(lambda b: "0 images seen" in b.find_element(By.ID, "adapt-status").text)
        browser.execute_script("arguments[0].click();", button)
        wait.until(lambda b: "1 image seen" in b.find_element(By.ID, "adapt-status").text)
        # Never into the checkout unless asked: S3_SCREENSHOT_DIR=docs refreshes the README's screenshot.
        out = Path(os.environ.get("S3_SCREENSHOT_DIR") or tmp_path)
        out.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(out / "space_app.png"))
        assert (out / "space_app.png").stat().st_size > 10_000
    finally:
        browser.quit()


def test_bundled_examples_and_a_hub_space(app, client, small_space, tmp_path, monkeypatch):
    from helpers import fake_hub, folder_files

    examples = example_photos()
    assert [Path(p).stem for p in examples] == ["chelsea", "coffee", "astronaut", "rocket"]
    s3, _clip, *_ = classify(client, examples[1], labels=EXAMPLE_LABELS, synonyms=EXAMPLE_SYNONYMS)
    assert {c["label"] for c in s3["confidences"]} <= set(parse_labels(EXAMPLE_LABELS, app.settings))
    files = folder_files(small_space.save_pretrained(tmp_path / "space"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    with fake_hub({"org/pets-s3": files}):
        s3, *_ = classify(client, examples[0], labels="", space="org/pets-s3")
    assert {c["label"] for c in s3["confidences"]} == set(small_space.labels)


def test_segmentation_tab(client, photos):
    """Segment through the app's API: an overlay with a legend and, per class present, its area, score and the
    concept of its space that matched."""
    from gradio_client import handle_file

    table = {"headers": ["label", "synonyms (comma-separated)"], "data": [["cat", "kitty, house cat"]]}
    overlay, rows = client.predict(
        handle_file(str(photos[0])), "cat, dog, sky", "", "local_center", table, "sclip", api_name="/segment"
    )
    shown = Image.open(overlay if isinstance(overlay, str) else overlay["path"])
    assert shown.width > Image.open(photos[0]).width  # the legend sits on the right
    data = rows["data"]
    assert data and {r[0] for r in data} <= {"cat", "dog", "sky"}
    for label, area, score, concept in data:
        assert area.endswith("%") and 0 <= float(score) <= 1 and concept
        if label == "cat":
            assert concept in {"cat", "kitty", "house cat"}
    with pytest.raises(Exception, match="dense variant"):
        client.predict(handle_file(str(photos[0])), "cat", "", "local_center", table, "nope", api_name="/segment")


def test_the_apps_file_route_serves_nothing_outside_its_own_files(app, tmp_path, tiny_clip_dir):
    import httpx

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    config = tiny_clip_dir / "config.json"
    targets = [
        str(secret),
        str(config),
        "/etc/passwd",
        "../../../../../../etc/passwd",
        "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"..%2f..%2f..%2f..%2f..%2f..%2f..{secret}".replace("/", "%2f"),
    ]
    for target in targets:
        response = httpx.get(f"{app.url}gradio_api/file={target}", timeout=30)
        assert response.status_code in (403, 404), (target, response.status_code)
        assert b"TOP-SECRET" not in response.content and b"root:" not in response.content
        assert config.read_bytes()[:50] not in response.content
